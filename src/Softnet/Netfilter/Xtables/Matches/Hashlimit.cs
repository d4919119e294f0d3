using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>xt_hashlimit's per-namespace tables (struct hashlimit_net), by --hashlimit-name.</summary>
public sealed class HashlimitTables
{
    private readonly Dictionary<string, HashlimitTable> _tables = new(StringComparer.Ordinal);

    public HashlimitTable? this[string name] => _tables.GetValueOrDefault(name);

    /// <summary>htable_find_get / htable_create: the first rule naming a table fixes its configuration.</summary>
    internal HashlimitTable GetOrCreate(string name, HashlimitConfig cfg)
    {
        if (_tables.TryGetValue(name, out var t)) return t;
        t = new HashlimitTable(name, cfg);
        _tables.Add(name, t);
        return t;
    }
}

/// <summary>struct hashlimit_cfg3: what a rule asks for (and, for the rule that creates a table, the table's own).</summary>
public struct HashlimitConfig
{
    public const uint HashDip = 1, HashDpt = 2, HashSip = 4, HashSpt = 8, Invert = 16, Bytes = 32, RateMatch = 64;
    public uint Mode;
    public ulong Avg, Burst = 5;
    public uint Size, Max, GcInterval = 1000, Expire;
    public byte SrcMask = 32, DstMask = 32;
    public uint Interval;

    public HashlimitConfig() { }
}

/// <summary>One hashlimit table (struct xt_hashlimit_htable): a token bucket per key, expiring idle keys.</summary>
public sealed class HashlimitTable
{
    public string Name { get; }
    internal HashlimitConfig Cfg;
    private readonly Dictionary<(uint Src, uint Dst, ushort Sport, ushort Dport), Entry> _entries = new();
    private long _nextGc = long.MinValue;
    private readonly List<(uint, uint, ushort, ushort)> _gcScratch = new();

    internal sealed class Entry
    {
        public long Expires, Prev;
        public ulong Credit, CreditCap, Cost;
        public uint IntervalSecs;
        public bool PrevWindow;
        public ulong CurrentRate, Rate;
        public long RateBurst;
    }

    public int Count => _entries.Count;

    internal HashlimitTable(string name, HashlimitConfig cfg)
    {
        Name = name;
        Cfg = cfg;
        // htable_create: 8192 buckets on a machine with more than 1 GiB, max 8 × size unless given (at least size).
        if (Cfg.Size == 0) Cfg.Size = 8192;
        if (Cfg.Max == 0) Cfg.Max = 8 * Cfg.Size;
        else if (Cfg.Max < Cfg.Size) Cfg.Max = Cfg.Size;
    }

    internal static long MsToJiffies(uint ms) => (ms * (long)XtClock.Hz + 999) / 1000;

    private static ulong Hz => (ulong)XtClock.Hz;

    /// <summary>CREDITS_PER_JIFFY (revision 2 and 3): the power of two below 2^64 / (HZ·86400).</summary>
    internal static ulong CreditsPerJiffy => PowerOfTwoBelow(ulong.MaxValue / (Hz * 86400));
    internal static ulong CreditsPerJiffyBytes => PowerOfTwoBelow(0xFFFFFFFFUL / Hz);

    private static ulong PowerOfTwoBelow(ulong x) => x == 0 ? 0 : 1UL << (63 - System.Numerics.BitOperations.LeadingZeroCount(x));

    internal static ulong UserToCredits(ulong user)
    {
        const ulong scale = 1_000_000;
        ulong hzCpj = unchecked(Hz * CreditsPerJiffy);
        if (scale >= hzCpj) return user / (scale / hzCpj);
        return unchecked(user * (hzCpj / scale));
    }

    internal static uint UserToCreditsByte(ulong user) => (uint)(unchecked(user * Hz * CreditsPerJiffyBytes) >> 32);

    /// <summary>The collection of expired entries the kernel's gc work does every gc_interval, run on the packet clock.</summary>
    private void Gc(long now)
    {
        if (_nextGc == long.MinValue) { _nextGc = now + MsToJiffies(Cfg.GcInterval); return; }
        if (now < _nextGc) return;
        _gcScratch.Clear();
        foreach (var (k, e) in _entries) if (now >= e.Expires) _gcScratch.Add(k);
        foreach (var k in _gcScratch) _entries.Remove(k);
        _nextGc = now + MsToJiffies(Cfg.GcInterval);
    }

    /// <summary>hashlimit_mt_common for one packet; null when the packet cannot be keyed or the table is full (hotdrop).</summary>
    internal bool? Match(ref PacketContext p, uint ruleMode)
    {
        long now = XtClock.Jiffies(p.TimestampNs);
        Gc(now);
        uint src = (Cfg.Mode & HashlimitConfig.HashSip) != 0 ? p.Src & Ipv4.Mask(Cfg.SrcMask) : 0;
        uint dst = (Cfg.Mode & HashlimitConfig.HashDip) != 0 ? p.Dst & Ipv4.Mask(Cfg.DstMask) : 0;
        ushort sport = 0, dport = 0;
        // proto_ports_offset: TCP, UDP, UDP-Lite, SCTP, DCCP have the ports first (read as found, even in a non-first
        // fragment, as hashlimit_init_dst does); other protocols hash with ports 0.
        if ((Cfg.Mode & (HashlimitConfig.HashSpt | HashlimitConfig.HashDpt)) != 0 && p.Protocol is 6 or 17 or 132 or 136 or 33)
        {
            if (!p.IsFragment && p.Protocol is 6 or 17) { sport = p.SrcPort; dport = p.DstPort; }
            else
            {
                var pkt = p.Packet;
                int off = p.IpHeaderLength;
                if (pkt.Length < off + 4) return null;
                sport = (ushort)(pkt[off] << 8 | pkt[off + 1]);
                dport = (ushort)(pkt[off + 2] << 8 | pkt[off + 3]);
            }
            if ((Cfg.Mode & HashlimitConfig.HashSpt) == 0) sport = 0;
            if ((Cfg.Mode & HashlimitConfig.HashDpt) == 0) dport = 0;
        }
        var key = (src, dst, sport, dport);
        if (!_entries.TryGetValue(key, out var dh))
        {
            if (Cfg.Max != 0 && _entries.Count >= Cfg.Max) return null;
            dh = new Entry { Expires = now + MsToJiffies(Cfg.Expire) };
            Init(dh, now);
            _entries.Add(key, dh);
        }
        else
        {
            dh.Expires = now + MsToJiffies(Cfg.Expire);
            Recalc(dh, now);
        }
        bool invert = (ruleMode & HashlimitConfig.Invert) != 0;
        if ((ruleMode & HashlimitConfig.RateMatch) != 0)
        {
            dh.CurrentRate += (ruleMode & HashlimitConfig.Bytes) != 0 ? (ulong)p.Length : 1;
            if (!dh.PrevWindow && (long)dh.CurrentRate <= dh.RateBurst) return !invert;
            return invert;
        }
        ulong cost = (ruleMode & HashlimitConfig.Bytes) != 0 ? ByteCost((uint)p.Length, dh) : dh.Cost;
        if (dh.Credit >= cost)
        {
            dh.Credit -= cost;
            return !invert;
        }
        return invert;
    }

    private void Init(Entry dh, long now)
    {
        dh.Prev = now;
        if ((Cfg.Mode & HashlimitConfig.RateMatch) != 0)
        {
            dh.PrevWindow = false;
            dh.CurrentRate = 0;
            if ((Cfg.Mode & HashlimitConfig.Bytes) != 0)
            {
                uint u = (uint)Cfg.Avg;
                ulong r = u != 0 ? uint.MaxValue / u : uint.MaxValue;
                dh.Rate = (r - 1) << 4;
                dh.RateBurst = (long)(Cfg.Burst != 0 ? Cfg.Burst * dh.Rate : dh.Rate);
            }
            else
            {
                dh.Rate = Cfg.Avg != 0 ? 1_000_000 / Cfg.Avg : 0;
                dh.RateBurst = (long)(Cfg.Burst + dh.Rate);
            }
            dh.IntervalSecs = Cfg.Interval;
        }
        else if ((Cfg.Mode & HashlimitConfig.Bytes) != 0)
        {
            dh.Credit = CreditsPerJiffyBytes * Hz;
            dh.Cost = UserToCreditsByte(Cfg.Avg);
            dh.CreditCap = Cfg.Burst;
        }
        else
        {
            dh.Credit = UserToCredits(unchecked(Cfg.Avg * Cfg.Burst));
            dh.Cost = UserToCredits(Cfg.Avg);
            dh.CreditCap = dh.Credit;
        }
    }

    private void Recalc(Entry dh, long now)
    {
        ulong delta = (ulong)(now - dh.Prev);
        if (delta == 0) return;
        if ((Cfg.Mode & HashlimitConfig.RateMatch) != 0)
        {
            ulong interval = dh.IntervalSecs * Hz;
            if (delta < interval) return;
            dh.Prev = now;
            dh.PrevWindow = dh.CurrentRate * interval > delta * dh.Rate;
            dh.CurrentRate = 0;
            return;
        }
        dh.Prev = now;
        ulong cap;
        if ((Cfg.Mode & HashlimitConfig.Bytes) != 0)
        {
            ulong before = dh.Credit;
            dh.Credit = unchecked(dh.Credit + CreditsPerJiffyBytes * delta);
            cap = CreditsPerJiffyBytes * Hz;
            if (before >= dh.Credit) { dh.Credit = cap; return; }
        }
        else
        {
            dh.Credit = unchecked(dh.Credit + delta * CreditsPerJiffy);
            cap = dh.CreditCap;
        }
        if (dh.Credit > cap) dh.Credit = cap;
    }

    private static ulong ByteCost(uint len, Entry dh)
    {
        ulong tmp = ((ulong)(len >> 4) + 1) * dh.Cost;
        ulong full = CreditsPerJiffyBytes * Hz;
        if (tmp > full) tmp = full;
        if (dh.Credit < tmp && dh.CreditCap != 0)
        {
            dh.CreditCap--;
            dh.Credit = full;
        }
        return (uint)tmp;
    }
}

/// <summary>Kernel half of -m hashlimit (xt_hashlimit.c revision 3).</summary>
public sealed class HashlimitMatch : XtMatch
{
    public HashlimitConfig Cfg = new() { SrcMask = 32, DstMask = 32 };
    public string TableName = "";
    internal HashlimitTable? Table;
    /// <summary>Userspace bookkeeping (libxt's udata "mult"): the parsed rate's unit in seconds, 15 for byte rates.</summary>
    internal uint UnitSeconds = 1;

    internal override string? CheckEntry(in XtCheck c)
    {
        if (TableName.Length == 0 || TableName.Contains('/') || TableName is "." or "..") return c.Invalid("hashlimit: bad table name");
        if (Cfg.GcInterval == 0 || Cfg.Expire == 0) return c.Invalid("hashlimit: gcinterval and expire must not be 0");
        if (Cfg.SrcMask > 32 || Cfg.DstMask > 32) return c.Invalid("hashlimit: mask longer than 32");
        if ((Cfg.Mode & HashlimitConfig.RateMatch) != 0)
        {
            if (Cfg.Avg == 0 || Cfg.Avg > uint.MaxValue)
                return $"RULE_APPEND failed (Numerical result out of range): rule in chain {c.Chain} (hashlimit: invalid rate)";
            if (Cfg.Interval == 0) return c.Invalid("hashlimit: invalid interval");
        }
        else if ((Cfg.Mode & HashlimitConfig.Bytes) != 0)
        {
            if (HashlimitTable.UserToCreditsByte(Cfg.Avg) == 0) return c.Invalid($"hashlimit: overflow, rate too high: {Cfg.Avg}");
        }
        else if (Cfg.Burst == 0 || HashlimitTable.UserToCredits(unchecked(Cfg.Avg * Cfg.Burst)) < HashlimitTable.UserToCredits(Cfg.Avg))
            return $"RULE_APPEND failed (Numerical result out of range): rule in chain {c.Chain} (hashlimit: overflow, try lower: {Cfg.Avg}/{Cfg.Burst})";
        Table = c.Tables.Hashlimit.GetOrCreate(TableName, Cfg);
        return null;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (Table!.Match(ref p, Cfg.Mode) is { } m) return m;
        // No key (a non-first fragment with ports asked for) or the table is full: hotdrop.
        p.HotDrop = true;
        return false;
    }
}

/// <summary>Userspace half of -m hashlimit (libxt_hashlimit.c revision 3).</summary>
internal sealed class HashlimitMatchExtension : X6MatchExtension<HashlimitMatch>
{
    public override string Name => "hashlimit";
    private const int OUpto = 0, OAbove = 1, OMode = 3, OSrcMask = 4, ODstMask = 5, OName = 6, OBurst = 7, OSize = 8, OMax = 9,
        OGc = 10, OExpire = 11, ORateMatch = 12, OInterval = 13;
    private const ulong Scale = 1_000_000;

    private static readonly XtOpt[] Table =
    {
        Arg("hashlimit-upto", OUpto, invert: true, excl: 1 << OAbove),
        Arg("hashlimit-above", OAbove, invert: true, excl: 1 << OUpto),
        Arg("hashlimit", OUpto, invert: true, excl: 1 << OAbove),
        Arg("hashlimit-srcmask", OSrcMask), Arg("hashlimit-dstmask", ODstMask), Arg("hashlimit-burst", OBurst),
        Arg("hashlimit-htable-size", OSize), Arg("hashlimit-htable-max", OMax), Arg("hashlimit-htable-gcinterval", OGc),
        Arg("hashlimit-htable-expire", OExpire), Arg("hashlimit-mode", OMode), Arg("hashlimit-name", OName, mandatory: true),
        Flag("hashlimit-rate-match", ORateMatch), Arg("hashlimit-rate-interval", OInterval),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(HashlimitMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case OUpto or OAbove:
                if (o.Id == OUpto ? invert : !invert) m.Cfg.Mode |= HashlimitConfig.Invert;
                if (ParseBytes(arg!, out ulong cost, a)) { m.Cfg.Avg = cost; m.Cfg.Mode |= HashlimitConfig.Bytes; m.UnitSeconds = 15; }
                else if (ParseRate(arg!, out ulong avg, out uint unit, a)) { m.Cfg.Avg = avg; m.UnitSeconds = unit; }
                else throw a.Error($"hashlimit: Bad value for \"--{(o.Id == OUpto ? "hashlimit-upto" : "hashlimit-above")}\" option: \"{arg}\"");
                break;
            case OMode:
                foreach (var tok in arg!.Split(',', '|'))
                {
                    if (tok.Length == 0) continue;
                    m.Cfg.Mode |= tok switch
                    {
                        "dstip" => HashlimitConfig.HashDip,
                        "srcip" => HashlimitConfig.HashSip,
                        "srcport" => HashlimitConfig.HashSpt,
                        "dstport" => HashlimitConfig.HashDpt,
                        _ => throw a.Error($"hashlimit: Bad value for \"--hashlimit-mode\" option: \"{arg}\""),
                    };
                }
                break;
            case OSrcMask: m.Cfg.SrcMask = (byte)XtOptions.UInt(Name, o, arg!, 0, 128, a); break;
            case ODstMask: m.Cfg.DstMask = (byte)XtOptions.UInt(Name, o, arg!, 0, 128, a); break;
            case OName:
                if (arg!.Length == 0) throw a.Error($"{Name}: option \"--hashlimit-name\" must not be empty");
                if (arg.Length > 254) throw a.Error($"{Name}: option \"--hashlimit-name\" is too long (max 254 characters)");
                m.TableName = arg;
                break;
            case OBurst: m.Cfg.Burst = ParseBurst(arg!, a); break;
            case OSize: m.Cfg.Size = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); break;
            case OMax: m.Cfg.Max = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); break;
            case OGc: m.Cfg.GcInterval = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); break;
            case OExpire: m.Cfg.Expire = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); break;
            case ORateMatch: m.Cfg.Mode |= HashlimitConfig.RateMatch; break;
            default:
            {
                int r = (int)Atoll(arg!);
                if (r <= 0) throw a.Error($"hashlimit: Bad value for \"--hashlimit-rate-interval\" option: \"{arg}\"");
                m.Cfg.Interval = (uint)r;
                break;
            }
        }
    }

    private static long Atoll(string s)
    {
        int i = 0;
        while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
        bool neg = false;
        if (i < s.Length && s[i] is '+' or '-') neg = s[i++] == '-';
        long v = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i]) && v < long.MaxValue / 10) v = v * 10 + (s[i++] - '0');
        return neg ? -v : v;
    }

    private static ulong Factor(char c) => c switch { 'm' => 1024 * 1024, 'k' => 1024, _ => 1 };

    internal static ulong BytesToCost(ulong bytes) => uint.MaxValue / ((uint)(bytes >> 4) + 1UL);

    internal static ulong CostToBytes(ulong cost)
    {
        ulong r = cost != 0 ? uint.MaxValue / cost : uint.MaxValue;
        return (r - 1) << 4;
    }

    private static bool ParseBytes(string rate, out ulong cost, ArgReader a)
    {
        cost = 0;
        int at = rate.IndexOf("b/s", StringComparison.Ordinal);
        if (at <= 0) return false;
        long r = Atoll(rate);
        if (r == 0) return false;
        ulong tmp = unchecked((ulong)r * Factor(rate[at - 1]));
        cost = BytesToCost(tmp);
        if (cost == 0) throw a.Error($"Rate too high \"{rate}\"");
        return true;
    }

    private static bool ParseRate(string rate, out ulong avg, out uint mult, ArgReader a)
    {
        avg = 0;
        if (!Opt.RateUnit(rate, out mult)) return false;
        long r = Atoll(rate);
        if (r == 0) return false;
        avg = unchecked(Scale * mult / (ulong)r);
        if (avg == 0) throw a.Error($"Rate too fast \"{rate}\"");
        return true;
    }

    private static ulong ParseBurst(string burst, ArgReader a)
    {
        int i = 0;
        ulong v = 0;
        bool any = false;
        while (i < burst.Length && char.IsAsciiDigit(burst[i])) { v = unchecked(v * 10 + (ulong)(burst[i] - '0')); i++; any = true; }
        bool atEnd = i == burst.Length;
        if (!any || v < 1 || (atEnd && v > 1_000_000)) throw a.Error("bad value for option \"--hashlimit-burst\", or out of range (1-1000000).");
        return unchecked(v * Factor(i < burst.Length ? burst[i] : '\0'));
    }

    private protected override void Check(HashlimitMatch m, uint flags, Rule rule, ArgReader a)
    {
        uint mult = m.UnitSeconds;
        if ((flags & (1 << OUpto | 1 << OAbove)) == 0) throw a.Error("You have to specify --hashlimit");
        if ((flags & (1 << OExpire)) == 0) m.Cfg.Expire = mult * 1000;
        if ((m.Cfg.Mode & HashlimitConfig.Bytes) != 0)
        {
            ulong burst = 0;
            if ((flags & (1 << OBurst)) != 0)
            {
                ulong unit = CostToBytes(m.Cfg.Avg);
                if (m.Cfg.Burst < unit) throw a.Error($"burst cannot be smaller than {unit}b");
                burst = m.Cfg.Burst / unit;
                if (m.Cfg.Burst % unit != 0) burst++;
                if ((flags & (1 << OExpire)) == 0) m.Cfg.Expire = 60 * 1000;
            }
            m.Cfg.Burst = (uint)burst;
        }
        else if (m.Cfg.Burst > 1_000_000) throw a.Error("bad value for option \"--hashlimit-burst\", or out of range (1-1000000).");
        if ((flags & (1 << ORateMatch)) != 0)
        {
            if ((m.Cfg.Mode & HashlimitConfig.Bytes) == 0) m.Cfg.Avg /= mult;
            if (m.Cfg.Interval == 0) m.Cfg.Interval = (m.Cfg.Mode & HashlimitConfig.Bytes) != 0 ? 1 : mult;
        }
    }

    private static uint PrintRate(StringBuilder sb, ulong period)
    {
        if (period == 0) { sb.Append(" inf"); return 0; }
        ReadOnlySpan<ulong> mult = [Scale * 86400, Scale * 3600, Scale * 60, Scale];
        string[] names = ["day", "hour", "min", "sec"];
        int i;
        for (i = 1; i < mult.Length; i++)
            if (period > mult[i] || mult[i] / period < mult[i] % period) break;
        sb.Append(' ').Append((mult[i - 1] / period).ToString(CultureInfo.InvariantCulture)).Append('/').Append(names[i - 1]);
        return (uint)(mult[i - 1] / Scale * 1000);
    }

    private static readonly (string Name, ulong Thresh)[] Units = [("m", 1024 * 1024), ("k", 1024), ("", 1)];

    private static uint PrintBytes(StringBuilder sb, ulong avg, ulong burst, string prefix)
    {
        ulong r = CostToBytes(avg);
        int i;
        for (i = 0; i < Units.Length - 1; i++)
            if (r >= Units[i].Thresh && BytesToCost(r & ~(Units[i].Thresh - 1)) == avg) break;
        sb.Append(' ').Append(r / Units[i].Thresh).Append(Units[i].Name).Append("b/s");
        if (burst == 0) return 15 * 1000;
        r *= burst;
        sb.Append(' ').Append(prefix);
        for (i = 0; i < Units.Length - 1; i++)
            if (r >= Units[i].Thresh) break;
        sb.Append("burst ").Append(r / Units[i].Thresh).Append(Units[i].Name).Append('b');
        return 60 * 1000;
    }

    private static void Mode(StringBuilder sb, uint mode, char sep)
    {
        sb.Append(' ');
        bool prev = false;
        void Add(string s) { if (prev) sb.Append(sep); sb.Append(s); prev = true; }
        if ((mode & HashlimitConfig.HashSip) != 0) Add("srcip");
        if ((mode & HashlimitConfig.HashSpt) != 0) Add("srcport");
        if ((mode & HashlimitConfig.HashDip) != 0) Add("dstip");
        if ((mode & HashlimitConfig.HashDpt) != 0) Add("dstport");
    }

    private const uint HashAny = HashlimitConfig.HashDip | HashlimitConfig.HashDpt | HashlimitConfig.HashSip | HashlimitConfig.HashSpt;

    internal override void Save(HashlimitMatch m, StringBuilder sb)
    {
        var c = m.Cfg;
        sb.Append((c.Mode & HashlimitConfig.Invert) != 0 ? " --hashlimit-above" : " --hashlimit-upto");
        uint quantum;
        if ((c.Mode & HashlimitConfig.Bytes) != 0) quantum = PrintBytes(sb, c.Avg, c.Burst, "--hashlimit-");
        else
        {
            quantum = PrintRate(sb, c.Avg);
            sb.Append(" --hashlimit-burst ").Append(c.Burst);
        }
        if ((c.Mode & HashAny) != 0) { sb.Append(" --hashlimit-mode"); Mode(sb, c.Mode, ','); }
        sb.Append(" --hashlimit-name ").Append(m.TableName);
        if (c.Size != 0) sb.Append(" --hashlimit-htable-size ").Append(c.Size);
        if (c.Max != 0) sb.Append(" --hashlimit-htable-max ").Append(c.Max);
        if (c.GcInterval != 1000) sb.Append(" --hashlimit-htable-gcinterval ").Append(c.GcInterval);
        if (c.Expire != quantum) sb.Append(" --hashlimit-htable-expire ").Append(c.Expire);
        if (c.SrcMask != 32) sb.Append(" --hashlimit-srcmask ").Append(c.SrcMask);
        if (c.DstMask != 32) sb.Append(" --hashlimit-dstmask ").Append(c.DstMask);
        if ((c.Mode & HashlimitConfig.RateMatch) != 0)
        {
            sb.Append(" --hashlimit-rate-match");
            if (c.Interval != 1) sb.Append(" --hashlimit-rate-interval ").Append(c.Interval);
        }
    }

    internal override void List(HashlimitMatch m, StringBuilder sb)
    {
        var c = m.Cfg;
        sb.Append((c.Mode & HashlimitConfig.Invert) != 0 ? " limit: above" : " limit: up to");
        uint quantum;
        if ((c.Mode & HashlimitConfig.Bytes) != 0) quantum = PrintBytes(sb, c.Avg, c.Burst, "");
        else
        {
            ulong period = c.Avg;
            if (c.Interval != 0) period *= c.Interval;
            quantum = PrintRate(sb, period);
            sb.Append(" burst ").Append(c.Burst);
        }
        if ((c.Mode & HashAny) != 0) { sb.Append(" mode"); Mode(sb, c.Mode, '-'); }
        if (c.Size != 0) sb.Append(" htable-size ").Append(c.Size);
        if (c.Max != 0) sb.Append(" htable-max ").Append(c.Max);
        if (c.GcInterval != 1000) sb.Append(" htable-gcinterval ").Append(c.GcInterval);
        if (c.Expire != quantum) sb.Append(" htable-expire ").Append(c.Expire);
        if (c.SrcMask != 32) sb.Append(" srcmask ").Append(c.SrcMask);
        if (c.DstMask != 32) sb.Append(" dstmask ").Append(c.DstMask);
        if ((c.Mode & HashlimitConfig.RateMatch) != 0)
        {
            sb.Append(" rate-match");
            if (c.Interval != 1) sb.Append(" rate-interval ").Append(c.Interval);
        }
    }
}
