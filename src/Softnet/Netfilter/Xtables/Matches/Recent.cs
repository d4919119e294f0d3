using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// xt_recent's per-namespace state (struct recent_net): the named address lists. A list is created by the
/// first rule that names it (checkentry) and keeps its mask and stamp capacity; entries are recycled from a
/// pool of ip_list_tot per list, so a --set at run time does not allocate.
/// </summary>
public sealed class RecentTables
{
    /// <summary>Module parameter ip_list_tot: addresses per list (oldest evicted beyond it).</summary>
    public int IpListTot { get; set; } = 100;

    private readonly Dictionary<string, RecentList> _lists = new(StringComparer.Ordinal);

    public RecentList? this[string name] => _lists.GetValueOrDefault(name);
    public IEnumerable<RecentList> Lists => _lists.Values;

    internal RecentList GetOrCreate(string name, uint mask, int nstampMask)
    {
        if (_lists.TryGetValue(name, out var t))
        {
            // A rule needing more stamps flushes the list and widens it (recent_mt_check).
            if (nstampMask > t.NstampsMaxMask) t.Resize(nstampMask);
            return t;
        }
        t = new RecentList(name, mask, nstampMask, IpListTot);
        _lists.Add(name, t);
        return t;
    }
}

/// <summary>One xt_recent list (struct recent_table): entries by address, LRU order, up to ip_list_tot.</summary>
public sealed class RecentList
{
    public string Name { get; }
    public uint Mask { get; }
    internal int NstampsMaxMask;
    private readonly int _max;
    private readonly Dictionary<uint, Entry> _byAddr;
    private Entry? _lruHead, _lruTail;
    private Entry? _free;
    public int Count { get; private set; }

    internal sealed class Entry
    {
        public uint Addr;
        public byte Ttl;
        public int Index;
        public int Nstamps;
        public long[] Stamps = Array.Empty<long>();
        public Entry? NextSame, LruPrev, LruNext;
    }

    internal RecentList(string name, uint mask, int nstampMask, int max)
    {
        Name = name;
        Mask = mask;
        NstampsMaxMask = nstampMask;
        _max = Math.Max(1, max);
        _byAddr = new Dictionary<uint, Entry>(_max + 1);
        for (int i = 0; i < _max; i++) _free = new Entry { Stamps = new long[nstampMask + 1], LruNext = _free };
    }

    internal void Resize(int nstampMask)
    {
        Flush();
        NstampsMaxMask = nstampMask;
        for (var e = _free; e != null; e = e.LruNext) e.Stamps = new long[nstampMask + 1];
    }

    /// <summary>Addresses in the list with their last-seen stamp (jiffies), oldest first.</summary>
    public IEnumerable<(uint Addr, byte Ttl, long LastSeen, int Hits)> Entries()
    {
        for (var e = _lruHead; e != null; e = e.LruNext)
            yield return (e.Addr, e.Ttl, e.Stamps[(e.Index - 1) & NstampsMaxMask], e.Nstamps);
    }

    /// <summary>/proc/net/xt_recent/NAME as recent_seq_show prints it: per address its TTL, last stamp, the index of
    /// the oldest, then every stamp (jiffies); least recently seen first (the kernel walks its hash buckets).</summary>
    public string ProcText()
    {
        var sb = new System.Text.StringBuilder();
        for (var e = _lruHead; e != null; e = e.LruNext)
        {
            sb.Append("src=").Append(Ipv4.Format(e.Addr)).Append(" ttl: ").Append(e.Ttl)
              .Append(" last_seen: ").Append(e.Stamps[(e.Index - 1) & NstampsMaxMask]).Append(" oldest_pkt: ").Append(e.Index);
            for (int i = 0; i < e.Nstamps; i++) sb.Append(i > 0 ? ", " : " ").Append(e.Stamps[i]);
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public void Flush()
    {
        while (_lruHead != null) Remove(_lruHead);
    }

    /// <summary>recent_entry_lookup: the first entry of the address whose TTL fits (0 matches any).</summary>
    internal Entry? Lookup(uint addr, byte ttl)
    {
        if (!_byAddr.TryGetValue(addr, out var e)) return null;
        for (; e != null; e = e.NextSame)
            if (ttl == e.Ttl || ttl == 0 || e.Ttl == 0) return e;
        return null;
    }

    internal void Remove(Entry e)
    {
        var head = _byAddr[e.Addr];
        if (head == e)
        {
            if (e.NextSame == null) _byAddr.Remove(e.Addr);
            else _byAddr[e.Addr] = e.NextSame;
        }
        else
        {
            var p = head;
            while (p.NextSame != e) p = p.NextSame!;
            p.NextSame = e.NextSame;
        }
        if (e.LruPrev != null) e.LruPrev.LruNext = e.LruNext; else _lruHead = e.LruNext;
        if (e.LruNext != null) e.LruNext.LruPrev = e.LruPrev; else _lruTail = e.LruPrev;
        e.NextSame = e.LruPrev = null;
        e.LruNext = _free;
        _free = e;
        Count--;
    }

    /// <summary>recent_entry_reap: drop the least recently used entry when its last stamp is before time.</summary>
    internal void Reap(long time, Entry working, bool update)
    {
        var e = _lruHead;
        if (e == null || (e == working && update)) return;
        if (time > e.Stamps[(e.Index - 1) & NstampsMaxMask]) Remove(e);
    }

    /// <summary>recent_entry_init: a new entry (evicting the LRU one when the list is full).</summary>
    internal Entry Init(uint addr, byte ttl, long jiffies)
    {
        if (Count >= _max) Remove(_lruHead!);
        var e = _free!;
        _free = e.LruNext;
        e.Addr = addr;
        e.Ttl = ttl;
        e.Stamps[0] = jiffies;
        e.Nstamps = 1;
        e.Index = 1;
        e.NextSame = null;
        if (_byAddr.TryGetValue(addr, out var head))
        {
            while (head.NextSame != null) head = head.NextSame;
            head.NextSame = e;
        }
        else _byAddr.Add(addr, e);
        e.LruPrev = _lruTail;
        e.LruNext = null;
        if (_lruTail != null) _lruTail.LruNext = e; else _lruHead = e;
        _lruTail = e;
        Count++;
        return e;
    }

    /// <summary>recent_entry_update: one more stamp and to the LRU tail.</summary>
    internal void Update(Entry e, long jiffies)
    {
        e.Index &= NstampsMaxMask;
        e.Stamps[e.Index++] = jiffies;
        if (e.Index > e.Nstamps) e.Nstamps = e.Index;
        if (e == _lruTail) return;
        if (e.LruPrev != null) e.LruPrev.LruNext = e.LruNext; else _lruHead = e.LruNext;
        e.LruNext!.LruPrev = e.LruPrev;
        e.LruPrev = _lruTail;
        e.LruNext = null;
        _lruTail!.LruNext = e;
        _lruTail = e;
    }
}

/// <summary>Kernel half of -m recent (xt_recent.c revision 1).</summary>
public sealed class RecentMatch : XtMatch
{
    public const byte CheckSet = 1, CheckCheck = 2, CheckUpdate = 4, CheckRemove = 8, CheckTtl = 16, CheckReap = 32;
    public uint Seconds, HitCount;
    public byte CheckSetFlags;
    public bool Invert;
    public string ListName = "DEFAULT";
    /// <summary>XT_RECENT_SOURCE (1) or XT_RECENT_DEST (2).</summary>
    public byte Side = 1;
    public uint Mask = 0xFFFFFFFF;
    internal RecentList? List;

    internal const int MaxNstamps = 65536;

    internal override string? CheckEntry(in XtCheck c)
    {
        int ops = 0;
        foreach (byte b in new[] { CheckSet, CheckRemove, CheckCheck, CheckUpdate }) if ((CheckSetFlags & b) != 0) ops++;
        if (ops != 1) return c.Invalid("recent: exactly one of --set, --rcheck, --update, --remove");
        if ((CheckSetFlags & (CheckSet | CheckRemove)) != 0 && (Seconds != 0 || HitCount != 0 || (CheckSetFlags & (CheckTtl | CheckReap)) != 0))
            return c.Invalid("recent: --set and --remove take no --seconds, --hitcount, --rttl or --reap");
        if ((CheckSetFlags & CheckReap) != 0 && Seconds == 0) return c.Invalid("recent: --reap needs --seconds");
        if (HitCount >= MaxNstamps) return c.Invalid($"recent: hitcount ({HitCount}) is larger than allowed maximum ({MaxNstamps - 1})");
        if (ListName.Length == 0 || ListName.Length >= 200 || ListName.Contains('/') || ListName is "." or "..")
            return c.Invalid("recent: invalid list name");
        int mask = HitCount != 0 ? (int)RoundupPow2(HitCount) - 1 : 31;
        List = c.Tables.Recent.GetOrCreate(ListName, Mask, mask);
        return null;
    }

    private static uint RoundupPow2(uint v)
    {
        uint p = 1;
        while (p < v) p <<= 1;
        return p;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables tables, HookPoint hook)
    {
        var t = List!;
        uint addr = (Side == 2 ? p.Dst : p.Src) & t.Mask;
        byte ttl = p.CurrentTtl;
        // The TTL as seen before forwarding: a packet with an output device and no local socket.
        if (hook is HookPoint.Forward or HookPoint.PostRouting && p.OutInterface != null) ttl++;
        long now = XtClock.Jiffies(p.TimestampNs);
        bool ret = Invert;
        var e = t.Lookup(addr, (CheckSetFlags & CheckTtl) != 0 ? ttl : (byte)0);
        if (e == null)
        {
            if ((CheckSetFlags & CheckSet) == 0) return ret;
            t.Init(addr, ttl, now);
            return !ret;
        }
        if ((CheckSetFlags & CheckSet) != 0) ret = !ret;
        else if ((CheckSetFlags & CheckRemove) != 0)
        {
            t.Remove(e);
            return !ret;
        }
        else if ((CheckSetFlags & (CheckCheck | CheckUpdate)) != 0)
        {
            long time = now - Seconds * (long)XtClock.Hz;
            uint hits = 0;
            for (int i = 0; i < e.Nstamps; i++)
            {
                if (Seconds != 0 && time > e.Stamps[i]) continue;
                if (HitCount == 0 || ++hits >= HitCount)
                {
                    ret = !ret;
                    break;
                }
            }
            if ((CheckSetFlags & CheckReap) != 0) t.Reap(time, e, (CheckSetFlags & CheckUpdate) != 0 && ret);
        }
        if ((CheckSetFlags & CheckSet) != 0 || ((CheckSetFlags & CheckUpdate) != 0 && ret))
        {
            t.Update(e, now);
            e.Ttl = ttl;
        }
        return ret;
    }
}

/// <summary>Userspace half of -m recent (libxt_recent.c, revision 1).</summary>
internal sealed class RecentMatchExtension : X6MatchExtension<RecentMatch>
{
    public override string Name => "recent";

    private const int OSet = 0, ORcheck = 1, OUpdate = 2, ORemove = 3, OSeconds = 4, OReap = 5, OHitcount = 6, ORttl = 7,
        OName = 8, ORsource = 9, ORdest = 10, OMask = 11;
    private const uint AnyOp = 1 << OSet | 1 << ORcheck | 1 << OUpdate | 1 << ORemove;

    private static readonly XtOpt[] Table =
    {
        Flag("set", OSet, invert: true, excl: AnyOp),
        Flag("rcheck", ORcheck, invert: true, excl: AnyOp),
        Flag("update", OUpdate, invert: true, excl: AnyOp),
        Flag("remove", ORemove, invert: true, excl: AnyOp),
        Arg("seconds", OSeconds),
        Flag("reap", OReap, also: 1 << OSeconds),
        Arg("hitcount", OHitcount),
        Flag("rttl", ORttl, excl: 1 << OSet | 1 << ORemove),
        Arg("name", OName),
        Flag("rsource", ORsource),
        Flag("rdest", ORdest),
        Arg("mask", OMask),
    };

    private protected override XtOpt[] Options => Table;

    private protected override void Parse(RecentMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case OSet: m.CheckSetFlags |= RecentMatch.CheckSet; if (invert) m.Invert = true; break;
            case ORcheck: m.CheckSetFlags |= RecentMatch.CheckCheck; if (invert) m.Invert = true; break;
            case OUpdate: m.CheckSetFlags |= RecentMatch.CheckUpdate; if (invert) m.Invert = true; break;
            case ORemove: m.CheckSetFlags |= RecentMatch.CheckRemove; if (invert) m.Invert = true; break;
            case OSeconds: m.Seconds = (uint)XtOptions.UInt(Name, o, arg!, 1, uint.MaxValue, a); break;
            case OReap: m.CheckSetFlags |= RecentMatch.CheckReap; break;
            case OHitcount: m.HitCount = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); break;
            case ORttl: m.CheckSetFlags |= RecentMatch.CheckTtl; break;
            case OName:
                // XTTYPE_STRING into a 200-byte field: longer names are an error.
                if (arg!.Length > 199) throw a.Error($"recent: option \"--name\" is too long (max 199 characters)");
                m.ListName = arg;
                break;
            case ORsource: m.Side = 1; break;
            case ORdest: m.Side = 2; break;
            case OMask:
                if (!XtOptions.TryInetAton(arg!, out m.Mask)) throw a.Error("getaddrinfo: Name or service not known");
                break;
        }
    }

    private protected override void Check(RecentMatch m, uint flags, Rule rule, ArgReader a)
    {
        if ((flags & AnyOp) == 0)
            throw a.Error("recent: you must specify one of `--set', `--rcheck' `--update' or `--remove'");
    }

    internal override void Save(RecentMatch m, StringBuilder sb)
    {
        if (m.Invert) sb.Append(" !");
        if ((m.CheckSetFlags & RecentMatch.CheckSet) != 0) sb.Append(" --set");
        if ((m.CheckSetFlags & RecentMatch.CheckCheck) != 0) sb.Append(" --rcheck");
        if ((m.CheckSetFlags & RecentMatch.CheckUpdate) != 0) sb.Append(" --update");
        if ((m.CheckSetFlags & RecentMatch.CheckRemove) != 0) sb.Append(" --remove");
        if (m.Seconds != 0) sb.Append(" --seconds ").Append(m.Seconds);
        if ((m.CheckSetFlags & RecentMatch.CheckReap) != 0) sb.Append(" --reap");
        if (m.HitCount != 0) sb.Append(" --hitcount ").Append(m.HitCount);
        if ((m.CheckSetFlags & RecentMatch.CheckTtl) != 0) sb.Append(" --rttl");
        sb.Append(" --name ").Append(m.ListName);
        sb.Append(" --mask ").Append(XtOptions.Ip(m.Mask));
        if (m.Side == 1) sb.Append(" --rsource");
        if (m.Side == 2) sb.Append(" --rdest");
    }

    internal override void List(RecentMatch m, StringBuilder sb)
    {
        if (m.Invert) sb.Append(" !");
        sb.Append(" recent:");
        if ((m.CheckSetFlags & RecentMatch.CheckSet) != 0) sb.Append(" SET");
        if ((m.CheckSetFlags & RecentMatch.CheckCheck) != 0) sb.Append(" CHECK");
        if ((m.CheckSetFlags & RecentMatch.CheckUpdate) != 0) sb.Append(" UPDATE");
        if ((m.CheckSetFlags & RecentMatch.CheckRemove) != 0) sb.Append(" REMOVE");
        if (m.Seconds != 0) sb.Append(" seconds: ").Append(m.Seconds);
        if ((m.CheckSetFlags & RecentMatch.CheckReap) != 0) sb.Append(" reap");
        if (m.HitCount != 0) sb.Append(" hit_count: ").Append(m.HitCount);
        if ((m.CheckSetFlags & RecentMatch.CheckTtl) != 0) sb.Append(" TTL-Match");
        sb.Append(" name: ").Append(m.ListName);
        if (m.Side == 1) sb.Append(" side: source");
        if (m.Side == 2) sb.Append(" side: dest");
        sb.Append(" mask: ").Append(XtOptions.Ip(m.Mask));
    }
}
