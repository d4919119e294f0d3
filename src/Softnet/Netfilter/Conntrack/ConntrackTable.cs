using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.Text;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Netfilter.Conntrack;

/// <summary>Sysctls of nf_conntrack with the kernel's defaults.</summary>
public sealed class ConntrackOptions
{
    /// <summary>net.netfilter.nf_conntrack_max.</summary>
    public int Max { get; init; } = 262144;
    /// <summary>net.netfilter.nf_conntrack_buckets: the kernel sizes it from memory, and with a few GB or more it
    /// equals nf_conntrack_max (262144 on this project's machines, as `sysctl net.netfilter` shows).</summary>
    public int Buckets { get; init; } = 262144;
    /// <summary>nf_conntrack_tcp_loose: pick up connections from a mid-stream ACK.</summary>
    public bool TcpLoose { get; init; } = true;
    /// <summary>nf_conntrack_tcp_be_liberal: only out-of-window RSTs are INVALID.</summary>
    public bool TcpBeLiberal { get; init; }
    /// <summary>nf_conntrack_tcp_ignore_invalid_rst.</summary>
    public bool TcpIgnoreInvalidRst { get; init; }
    /// <summary>nf_conntrack_checksum: verify TCP/UDP/ICMP checksums in PREROUTING; a bad one makes the packet INVALID.</summary>
    public bool Checksum { get; init; } = true;
    public int TcpMaxRetrans { get; init; } = 3;
    public TimeSpan UdpTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan UdpStreamTimeout { get; init; } = TimeSpan.FromSeconds(120);
    public TimeSpan IcmpTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>net.netfilter.nf_conntrack_icmpv6_timeout.</summary>
    public TimeSpan Icmpv6Timeout { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan GenericTimeout { get; init; } = TimeSpan.FromSeconds(600);
    /// <summary>nf_conntrack_gre_timeout: a GRE flow no reply was seen for.</summary>
    public TimeSpan GreTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>nf_conntrack_gre_timeout_stream: a GRE flow with replies (then ASSURED).</summary>
    public TimeSpan GreStreamTimeout { get; init; } = TimeSpan.FromSeconds(180);
    /// <summary>Per SCTP state (index SctpCtState; NONE has CLOSED's default, which no sysctl changes): the
    /// nf_conntrack_sctp_timeout_* keys.</summary>
    public long[] SctpTimeoutsNs { get; init; } = SctpTracker.DefaultTimeouts();
    /// <summary>Per TCP state (index TcpCtState), then RETRANS and UNACK (tcp_timeouts[]).</summary>
    public long[] TcpTimeoutsNs { get; init; } = TcpTracker.DefaultTimeouts();
    /// <summary>Hash seed (the kernel's random nf_conntrack_hash_rnd); fixed for reproducible bucket placement.</summary>
    public uint HashSeed { get; init; } = 0x5F3759DF;
}

/// <summary>Counters as `conntrack -S` shows them.</summary>
public sealed class ConntrackStats
{
    public long Found, Invalid, Insert, InsertFailed, Drop, EarlyDrop, Error;
}

/// <summary>
/// The conntrack hash table (nf_conntrack_core.c): lookup of both tuple directions, creation bounded by
/// nf_conntrack_max with early_drop, confirmation at the last hook, expiry on the caller's clock.
/// Single-threaded: one table per namespace, used from one worker.
/// </summary>
public sealed class ConntrackTable
{
    public ConntrackOptions Options { get; }
    public ConntrackStats Stats { get; } = new();
    /// <summary>net.netfilter.nf_conntrack_acct: new entries carry packet/byte counters that `conntrack -L` shows
    /// (-m connbytes turns it on, as its checkentry does).</summary>
    public bool Accounting { get; set; }
    /// <summary>net.netfilter.nf_conntrack_timestamp: new entries get nf_conn_tstamp (`conntrack -L` prints delta-time=).</summary>
    public bool Timestamps { get; set; }
    private HashLink[] _buckets;
    // One 16-bit summary per bucket, beside the table rather than in it: bit (hash & 15) is set for every node hashed
    // into the bucket (cleared again as nodes leave). A lookup whose bit is clear knows the tuple is absent without
    // reading the bucket or any entry; for a new connection's lookups (nf_conntrack_in's, nf_nat_used_tuple's) that
    // is the common case, and this array is a quarter the size of the buckets, so it stays in cache where they do
    // not. The kernel has no such filter; it changes no answer, only which memory a miss touches.
    private ushort[] _filters = NoFilters;
    private static readonly ushort[] NoFilters = new ushort[1];

    /// <summary>The summary bit of a node with this hash (NAT's bysource chains use the same).</summary>
    internal static ushort FilterBit(uint hash) => (ushort)(1 << (int)(hash & 15));
    private int _count;
    internal NatEngine? Nat;

    public ConntrackTable(ConntrackOptions? options = null)
    {
        Options = options ?? new ConntrackOptions();
        // nf_conntrack_buckets entries, fixed as the kernel's table is, taken from the pool at the first insert: a
        // table only parsed or never used costs nothing, and lookups before then search one empty bucket.
        _buckets = NoBuckets;
    }

    private static readonly HashLink[] NoBuckets = new HashLink[1];

    /// <summary>Connections allocated (confirmed and in flight), the kernel's net->ct.count.</summary>
    public int Count => _count;

    private int Bucket(in ConnTuple t) => BucketOf(t.Hash(Options.HashSeed));

    private int BucketOf(uint hash) => (int)(((ulong)hash * (ulong)_buckets.Length) >> 32);

    /// <summary>Finds a confirmed entry by either tuple, collecting expired entries it meets on the way.</summary>
    public Connection? Find(in ConnTuple t, long nowNs, out int dir) => Find(t, t.Zone, nowNs, out dir);

    /// <summary>
    /// __nf_conntrack_find_get with a zone: <paramref name="t"/> carries the packet's original-direction zone id
    /// (hash and tuple compare), and a reply-direction entry must also have the packet's reply-direction zone id
    /// <paramref name="replyZone"/> (nf_ct_zone_equal).
    /// </summary>
    public Connection? Find(in ConnTuple t, ushort replyZone, long nowNs, out int dir)
    {
        var ct = Lookup(t, t.Hash(Options.HashSeed), replyZone, nowNs, out dir);
        if (ct != null) Stats.Found++;
        return ct;
    }

    /// <summary>nf_conntrack_find_get as NAT calls it: the tuple's own zone, no statistics.</summary>
    internal Connection? FindNoStats(in ConnTuple t, long nowNs, out int dir)
        => Lookup(t, t.Hash(Options.HashSeed), t.Zone, nowNs, out dir);

    /// <summary>The chain walk of <see cref="Find"/> for a tuple whose hash the caller has.</summary>
    private Connection? Lookup(in ConnTuple t, uint h, ushort replyZone, long nowNs, out int dir)
    {
        int b = BucketOf(h);
        dir = 0;
        // The bucket is asked for before the summary is read, so the two loads overlap: a hit needs both, and a new
        // entry links into this bucket at confirm.
        Prefetch(ref _buckets[b]);
        if ((_filters[b] & FilterBit(h)) == 0) return null;
        for (var n = _buckets[b]; n.Ct is { } ct;)
        {
            int d = n.Dir;
            if (IsExpired(ct, nowNs))
            {
                // Unhashing may unlink the entry's other node too: walk again from the head.
                Delete(ct);
                n = _buckets[b];
                continue;
            }
            if (ct.HashOf(d) == h && ct.Tuple(d).Equals(t) && (d == 0 || ct.Reply.Zone == replyZone)) { dir = d; return ct; }
            n = ct.Next(d);
        }
        dir = 0;
        return null;
    }

    /// <summary>nf_conntrack_tuple_taken: is <paramref name="t"/> used by a confirmed entry other than <paramref name="ignored"/>?</summary>
    public bool TupleTaken(in ConnTuple t, Connection ignored, long nowNs)
    {
        uint h = t.Hash(Options.HashSeed);
        int b = BucketOf(h);
        if ((_filters[b] & FilterBit(h)) == 0) return false;
        for (var n = _buckets[b]; n.Ct is { } ct; n = ct.Next(n.Dir))
        {
            if (ct == ignored || ct.HashOf(n.Dir) != h) continue;
            if (IsExpired(ct, nowNs)) continue;
            // Both entries for one flow (their original tuples equal): not a clash for NAT to avoid; confirm resolves it.
            if (ct.Tuple(n.Dir).Equals(t) && !ct.Original.Equals(ignored.Original)) return true;
        }
        return false;
    }

    private static bool IsExpired(Connection c, long nowNs) => nowNs - c.ExpiresNs >= 0;

    /// <summary>All confirmed, unexpired entries.</summary>
    public IEnumerable<Connection> Entries(long nowNs)
    {
        var seen = new List<Connection>();
        foreach (var head in _buckets)
            for (var n = head; n.Ct is { } ct; n = ct.Next(n.Dir))
                if (n.Dir == 0 && !IsExpired(ct, nowNs)) seen.Add(ct);
        return seen;
    }

    /// <summary>Removes every expired entry (the gc worker).</summary>
    public int Gc(long nowNs)
    {
        var dead = new List<Connection>();
        foreach (var head in _buckets)
            for (var n = head; n.Ct is { } ct; n = ct.Next(n.Dir))
                if (n.Dir == 0 && IsExpired(ct, nowNs)) dead.Add(ct);
        foreach (var c in dead) Delete(c);
        return dead.Count;
    }

    /// <summary>`conntrack -L` output, one line per entry.</summary>
    public string List(long nowNs)
    {
        var sb = new StringBuilder();
        foreach (var c in Entries(nowNs)) sb.Append(c.Format(nowNs)).Append('\n');
        return sb.ToString();
    }

    /// <summary>nf_ct_delete / nf_ct_kill: unhash and release.</summary>
    public void Delete(Connection ct)
    {
        if ((ct.Status & CtStatus.Dying) != 0) return;
        ct.Status |= CtStatus.Dying;
        if (ct.Confirmed)
        {
            Unlink(ct, 0);
            Unlink(ct, 1);
            Nat?.Forget(ct);
            _count--;
            Retire(ct);
        }
    }

    /// <summary>Releases an entry that never got confirmed (its packet was dropped before the last hook).</summary>
    internal void ReleaseUnconfirmed(Connection ct)
    {
        if (ct.Confirmed) return;
        Nat?.Forget(ct);
        _count--;
        Retire(ct);
    }

    private readonly List<Connection> _retired = new();

    private void Retire(Connection ct)
    {
        if (ct.Retired) return;
        ct.Retired = true;
        _retired.Add(ct);
    }

    /// <summary>A quiescent point (the stack has drained: no packet in flight holds an entry): what was deleted or
    /// released since goes back to <see cref="ConnectionCache"/>. An entry confirmed after its release (a reset
    /// attached to a dropped packet's entry) stays where it is.</summary>
    public void Quiesce()
    {
        if (_retired.Count == 0) return;
        _retired.RemoveAll(c => c.Confirmed && (c.Status & CtStatus.Dying) == 0);
        ConnectionCache.Return(_retired);
    }

    /// <summary>nf_conntrack_cleanup_net: the namespace goes away and every entry with it, back to the slab. Callers
    /// must hold no entry of this table afterwards.</summary>
    public void Release()
    {
        foreach (var head in _buckets)
            for (var n = head; n.Ct is { } ct; n = ct.Next(n.Dir))
                if (n.Dir == 0) Retire(ct);
        if (_buckets != NoBuckets) BucketArrays<HashLink>.Return(_buckets);
        if (_filters != NoFilters) BucketArrays<ushort>.Return(_filters);
        _buckets = NoBuckets;
        _filters = NoFilters;
        Nat?.Release();
        _count = 0;
        ConnectionCache.Return(_retired);
    }

    private void Unlink(Connection ct, int dir)
    {
        int b = BucketOf(ct.HashOf(dir));
        ref HashLink link = ref _buckets[b];
        while (link.Ct is { } n)
        {
            if (n == ct && link.Dir == dir)
            {
                link = ct.Next(dir);
                ct.Next(dir) = default;
                // The bucket's summary, from the nodes that remain.
                ushort f = 0;
                for (var r = _buckets[b]; r.Ct is { } c; r = c.Next(r.Dir)) f |= FilterBit(c.HashOf(r.Dir));
                _filters[b] = f;
                return;
            }
            link = ref n.Next(link.Dir);
        }
        // Not in the bucket its hash names: a tuple changed after it was hashed, which nothing may do.
        System.Diagnostics.Debug.Fail($"conntrack entry {ct.Original} not found in its direction-{dir} bucket");
    }

    /// <summary><see cref="PrefetchFor"/> for an Ethernet frame: IPv4 ones only (others: -1).</summary>
    public int PrefetchForFrame(ReadOnlySpan<byte> frame)
        => frame.Length >= 34 && frame[12] == 0x08 && frame[13] == 0x00 ? PrefetchFor(frame[14..]) : -1;

    /// <summary>
    /// A hint, not a lookup (no kernel counterpart): the bucket and summary the datagram at <paramref name="ip"/> (an
    /// IPv4 header and what follows) hashes to in the default zone are asked of memory ahead of nf_conntrack_in.
    /// Wrong guesses (a zone from a CT template, a fragment, a malformed header) cost one useless prefetch.
    /// </summary>
    /// <returns>The bucket asked for (for <see cref="PrefetchEntry"/> a frame later), or -1.</returns>
    public int PrefetchFor(ReadOnlySpan<byte> ip)
    {
        if (_buckets == NoBuckets || ip.Length < 20) return -1;
        int ihl = (ip[0] & 0xF) * 4;
        byte proto = ip[9];
        ushort sport = 0, dport = 0;
        if (proto is 6 or 17 or 132 or 136)
        {
            if (ip.Length < ihl + 4) return -1;
            sport = BinaryPrimitives.ReadUInt16BigEndian(ip[ihl..]);
            dport = BinaryPrimitives.ReadUInt16BigEndian(ip[(ihl + 2)..]);
        }
        var t = new ConnTuple(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]), proto, sport, dport);
        int b = BucketOf(t.Hash(Options.HashSeed));
        Prefetch(ref _buckets[b]);
        Prefetch(ref _filters[b]);
        return b;
    }

    /// <summary>
    /// The second half of <see cref="PrefetchFor"/> (no kernel counterpart), a frame later when the bucket has landed:
    /// the first entry chained there is asked of memory, its tuples, hashes, timeout and tracker state (the lines a
    /// hit reads next, each a miss that depends on the one before). An empty or changed bucket costs a useless hint.
    /// </summary>
    public unsafe void PrefetchEntry(int bucket)
    {
        var buckets = _buckets;
        if ((uint)bucket >= (uint)buckets.Length || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        // The head's object reference read as an address, not dereferenced: a prefetch of a stale one never faults.
        byte* node = (byte*)Unsafe.As<HashLink, nint>(ref buckets[bucket]);
        if (node == null) return;
        for (int line = 0; line < EntryLines; line++) System.Runtime.Intrinsics.X86.Sse.Prefetch0(node + line * 64);
    }

    /// <summary>Cache lines of an entry (and of its reply node, allocated just after it) a hit and its tracker read.</summary>
    private const int EntryLines = 5;

    /// <summary>A hint to the memory system (no kernel counterpart): the bucket <paramref name="hash"/> names will be
    /// written soon.</summary>
    internal void PrefetchBucket(uint hash)
    {
        if (_buckets == NoBuckets) return;
        int b = BucketOf(hash);
        Prefetch(ref _buckets[b]);
        Prefetch(ref _filters[b]);
    }

    internal static unsafe void Prefetch<T>(ref T location)
    {
        // The address as it is now; the GC moving the array meanwhile only wastes the hint.
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref location));
    }

    private void Link(Connection ct, int dir, uint h)
    {
        if (_buckets == NoBuckets)
        {
            _buckets = BucketArrays<HashLink>.Rent(Math.Max(1, Options.Buckets));
            _filters = BucketArrays<ushort>.Rent(_buckets.Length);
        }
        int b = BucketOf(h);
        ct.Next(dir) = _buckets[b];
        _buckets[b] = new HashLink(ct, dir);
        _filters[b] |= FilterBit(h);
    }

    /// <summary>
    /// early_drop: from the new tuple's bucket, look at up to NF_CT_EVICTION_RANGE (8) buckets; in the first
    /// bucket holding non-assured entries, delete all of them (expired ones are collected, not counted).
    /// </summary>
    private bool EarlyDrop(in ConnTuple t, long nowNs)
    {
        int bucket = Bucket(t);
        for (int i = 0; i < 8; i++, bucket = (bucket + 1) % _buckets.Length)
        {
            int drops = 0;
            for (var n = _buckets[bucket]; n.Ct is { } ct;)
            {
                if (IsExpired(ct, nowNs)) { Delete(ct); n = _buckets[bucket]; continue; }
                if ((ct.Status & (CtStatus.Assured | CtStatus.Dying)) == 0 && ct.Confirmed)
                {
                    // The other direction's node may be the next one: walk again from the head after unlinking.
                    Delete(ct);
                    drops++;
                    n = _buckets[bucket];
                    continue;
                }
                n = ct.Next(n.Dir);
            }
            if (drops > 0)
            {
                Stats.EarlyDrop += drops;
                return true;
            }
        }
        return false;
    }

    /// <summary>__nf_conntrack_alloc: respects nf_conntrack_max, trying early_drop when full.</summary>
    private Connection? Alloc(in ConnTuple orig, in ConnTuple reply, uint origHash, long nowNs)
    {
        if (Options.Max > 0 && _count >= Options.Max && !EarlyDrop(orig, nowNs)) return null;
        // From the slab when it has one (only objects no packet can reach any more go back to it).
        var ct = ConnectionCache.Rent() ?? Connection.Create();
        ct.Original = orig;
        ct.Reply = reply;
        // The original tuple never changes (NAT rewrites only the reply): its hash is the lookup's.
        ct.HashOrig = origHash;
        ct.Status = CtStatus.None;
        ct.Mark = 0;
        ct.ZoneId = 0;
        ct.ZoneDir = 3;
        ct.Helper = null;
        ct.HasAcct = Accounting;
        ct.TstampStartNs = Timestamps ? nowNs : -1;
        ct.MasqueradeDevice = null;
        ct.TcpState = TcpCtState.None;
        ct.Seen0 = default;
        ct.Seen1 = default;
        ct.LastDir = ct.LastWscale = ct.LastFlags = ct.Retrans = 0;
        ct.LastIndex = TcpTracker.NoneSet;
        ct.LastSeq = ct.LastAck = ct.LastEnd = 0;
        ct.LastWin = 0;
        ct.PacketsOrig = ct.BytesOrig = ct.PacketsReply = ct.BytesReply = 0;
        ct.ExpiresNs = 0;
        ct.UdpStreamNs = 0;
        ct.Sctp = default;
        ct.NextBySource = null;
        ct.BySourceHash = 0;
        ct.InBySource = false;
        ct.Retired = false;
        ct.NextOrig = ct.NextReply = default;
        _count++;
        return ct;
    }

    /// <summary>Builds the packet's original-direction tuple (nf_ct_get_tuple).</summary>
    internal static ConnTuple TupleOf(ref PacketContext p)
    {
        return p.Protocol switch
        {
            // DCCP (33) has no tracker since Linux 6.16: the generic one, whose tuple has no ports.
            6 or 17 or 132 or 136 => new ConnTuple(p.Src, p.Dst, p.Protocol, p.SrcPort, p.DstPort),
            1 => new ConnTuple(p.Src, p.Dst, 1, p.IcmpId, (ushort)(p.IcmpType << 8 | p.IcmpCode)),
            _ => new ConnTuple(p.Src, p.Dst, p.Protocol, 0, 0),
        };
    }

    /// <summary>
    /// nf_conntrack_in at <paramref name="hook"/> with the datagram's bytes <paramref name="ip"/> (from the IPv4
    /// header, at least <see cref="PacketContext.Length"/> long), which the protocol error checks read: with
    /// nf_conntrack_checksum set, a TCP/UDP/ICMP checksum that fails in PREROUTING makes the packet INVALID. An
    /// empty span skips those checks (a checksum already known good, CHECKSUM_UNNECESSARY).
    /// </summary>
    public Verdict In(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (p.CtInfo == CtInfo.Untracked || p.Ct != null) return Verdict.Accept;
        // A CT template from the raw table gives the zone; nf_conntrack_in detaches it before the lookup.
        var tmpl = p.CtTemplate;
        p.CtTemplate = null;
        ushort zoneOrig = tmpl?.ZoneId(0, p.Mark) ?? 0, zoneReply = tmpl?.ZoneId(1, p.Mark) ?? 0;
        long now = p.TimestampNs;
        if (p.IsFragment) { Stats.Invalid++; return Verdict.Accept; }
        if (p.Protocol == 1)
        {
            // icmp_error: the checksum comes before the type checks, for queries and errors alike.
            if (ChecksumFails(ref p, hook, ip)) { Stats.Invalid++; return Verdict.Accept; }
            if (p.IcmpType > 18) { Stats.Invalid++; return Verdict.Accept; }
            if (PacketContext.IsIcmpError(p.IcmpType)) return IcmpError(ref p, now, zoneOrig, zoneReply);
        }
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var tuple = TupleOf(ref p);
            tuple.Zone = zoneOrig;
            uint hash = tuple.Hash(Options.HashSeed);
            var ct = Lookup(tuple, hash, zoneReply, now, out int dir);
            if (ct != null) Stats.Found++;
            else
            {
                if (!tuple.TryInvert(out var reply)) { Stats.Invalid++; return Verdict.Accept; }
                reply.Zone = zoneReply;
                ct = Alloc(tuple, reply, hash, now);
                if (ct != null)
                {
                    // A new entry is linked at confirm, a microsecond or so from now, into its original tuple's bucket
                    // (the lookup above already asked for it) and, if NAT leaves it alone, its reply's; and NAT's source
                    // binding links it into its source's chain. Ask for those lines now.
                    PrefetchBucket(reply.Hash(Options.HashSeed));
                    Nat?.PrefetchSource(tuple);
                }
                if (ct != null && tmpl != null)
                {
                    ct.ZoneId = tmpl.ZoneId(tmpl.ZoneDir == 2 ? 1 : 0, p.Mark);
                    ct.ZoneDir = tmpl.ZoneDir;
                    if (tmpl.Helper.Length != 0) ct.Helper = tmpl.Helper;
                }
                if (ct == null)
                {
                    Stats.Drop++;
                    p.DropReason = DropReason.ConntrackTableFull;
                    return Verdict.Drop;
                }
                dir = 0;
            }
            CtInfo info = dir == 1 ? CtInfo.EstablishedReply
                : (ct.Status & CtStatus.SeenReply) != 0 ? CtInfo.Established
                : (ct.Status & CtStatus.Expected) != 0 ? CtInfo.Related : CtInfo.New;
            p.Ct = ct;
            p.CtInfo = info;
            // tcp_error / udp_error run inside the protocol's packet function, after the lookup made the entry.
            int res = p.Protocol switch
            {
                6 when ChecksumFails(ref p, hook, ip) => InvalidVerdict,
                6 => TcpTracker.Packet(this, ct, ref p, dir, now),
                17 when UdpError(ref p, hook, ip) => InvalidVerdict,
                17 or 136 => UdpPacket(ct, ref p, now),
                1 => IcmpPacket(ct, now),
                _ => L4Tracker.Find(p.Protocol) is { } l4 ? l4.Packet(ct, ref p, Transport(ref p, ip), dir, now, Options, hook)
                    : Refresh(ct, now, Options.GenericTimeout.Ticks * 100),
            };
            if (res > 0)
            {
                // nf_ct_refresh_acct: the accepted packet counts in its direction (one let through unrefreshed does not).
                if (res == AcceptVerdict) Account(ct, dir, p.Length);
                if (info == CtInfo.EstablishedReply) ct.Status |= CtStatus.SeenReply;
                return Verdict.Accept;
            }
            // Invalid for the tracker: detach, and release an entry made only for this packet.
            p.Ct = null;
            p.CtInfo = CtInfo.None;
            if (!ct.Confirmed) ReleaseUnconfirmed(ct);
            if (res == RepeatLookup) continue;
            Stats.Invalid++;
            if (res == DropVerdict) { Stats.Drop++; p.DropReason = DropReason.NetfilterDrop; return Verdict.Drop; }
            return Verdict.Accept;
        }
        return Verdict.Accept;
    }

    /// <summary>
    /// The nf_checksum test of tcp_error / udp_error / icmp_error: only in PREROUTING (the output path trusts its
    /// own checksums) and only with nf_conntrack_checksum. nf_ip_checksum sums from skb->data, which in PREROUTING is
    /// the IP header, over skb->len (the IP total length), seeded with the pseudo-header for TCP and UDP (L4 length
    /// = total length minus header, not the UDP length field). The verified header adds ones'-complement zero.
    /// </summary>
    private bool ChecksumFails(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (!Options.Checksum || hook != HookPoint.PreRouting || ip.IsEmpty || p.ChecksumVerified) return false;
        if (p.Length < 20 || p.Length > ip.Length) return false;
        var dgram = ip[..p.Length];
        int ihl = p.IpHeaderLength;
        uint seed = p.Protocol is 6 or 17
            ? Checksum.PseudoHeaderV4(dgram[12..16], dgram[16..20], p.Protocol, dgram.Length - ihl)
            : 0;
        return !Checksum.Verify(dgram, seed);
    }

    /// <summary>udp_error: a UDP length beyond the datagram or below 8 is INVALID; checksum 0 means none (IPv4).</summary>
    private bool UdpError(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (ip.IsEmpty || p.Length > ip.Length) return false;
        // The UDP length must cover the header and stay within the datagram (UdpView checks both).
        if (!UdpView.TryParse(ip[p.IpHeaderLength..p.Length], out var udp, out _)) return true;
        if (udp.Checksum == 0) return false;
        return ChecksumFails(ref p, hook, ip);
    }

    /// <summary>A tracker's answers: accept (refreshed and counted), accept as NF_ACCEPT straight out of the tracker
    /// (no nf_ct_refresh_acct: timeout and counters unchanged), invalid (detached, counted in the invalid stat), drop,
    /// and look up again (an old entry was killed).</summary>
    internal const int AcceptVerdict = 1, AcceptUnrefreshed = 2, InvalidVerdict = 0, DropVerdict = -1, RepeatLookup = -2;

    /// <summary>nf_ct_acct_update: an accepted packet counts in its direction.</summary>
    internal static void Account(Connection ct, int dir, int length)
    {
        if (dir == 0) { ct.PacketsOrig++; ct.BytesOrig += length; }
        else { ct.PacketsReply++; ct.BytesReply += length; }
    }

    /// <summary>The transport header to the datagram's end (skb->len past dataoff), as far as <paramref name="ip"/>
    /// holds it; empty when the caller gave no bytes.</summary>
    private static ReadOnlySpan<byte> Transport(ref PacketContext p, ReadOnlySpan<byte> ip)
    {
        int ihl = p.IpHeaderLength;
        if (ip.Length <= ihl) return default;
        return ip[ihl..Math.Min(Math.Max(p.Length, ihl), ip.Length)];
    }

    internal static int Refresh(Connection ct, long now, long timeoutNs)
    {
        if ((ct.Status & CtStatus.FixedTimeout) == 0) ct.ExpiresNs = now + timeoutNs;
        return AcceptVerdict;
    }

    /// <summary>nf_conntrack_udp_packet: 30 s unreplied, 120 s once a reply was seen and the flow lives past 2 s (then ASSURED).</summary>
    private int UdpPacket(Connection ct, ref PacketContext p, long now)
    {
        if (!ct.Confirmed) ct.UdpStreamNs = now + 2_000_000_000L;
        // The first reply still sees SEEN_REPLY clear: the core sets it after the tracker ran.
        bool seenReply = (ct.Status & CtStatus.SeenReply) != 0;
        if (seenReply)
        {
            long extra = Options.UdpTimeout.Ticks * 100;
            bool stream = false;
            if (now - ct.UdpStreamNs > 0)
            {
                extra = Options.UdpStreamTimeout.Ticks * 100;
                stream = (ct.Status & CtStatus.Assured) == 0;
            }
            Refresh(ct, now, extra);
            if ((ct.Status & CtStatus.NatClash) != 0) return AcceptVerdict;
            if (stream) ct.Status |= CtStatus.Assured;
        }
        else Refresh(ct, now, Options.UdpTimeout.Ticks * 100);
        return AcceptVerdict;
    }

    /// <summary>nf_conntrack_icmp_packet: only query types (echo, timestamp, info, address mask) make a connection.</summary>
    private int IcmpPacket(Connection ct, long now)
    {
        byte t = ct.Original.IcmpType;
        if (t is not (8 or 13 or 15 or 17)) return InvalidVerdict;
        return Refresh(ct, now, Options.IcmpTimeout.Ticks * 100);
    }

    /// <summary>icmp_error + nf_conntrack_inet_error: an ICMP error is RELATED to the connection of the
    /// datagram it quotes, when the outer destination is that connection's endpoint.</summary>
    private Verdict IcmpError(ref PacketContext p, long now, ushort zoneOrig, ushort zoneReply)
    {
        if (!p.HasInner) { Stats.Invalid++; return Verdict.Accept; }
        var inner = p.InnerProtocol == 1
            ? new ConnTuple(p.InnerSrc, p.InnerDst, 1, p.InnerIcmpId, (ushort)(p.InnerIcmpType << 8 | p.InnerIcmpCode))
            : p.InnerProtocol is 6 or 17 or 132 or 136
                ? new ConnTuple(p.InnerSrc, p.InnerDst, p.InnerProtocol, p.InnerSrcPort, p.InnerDstPort)
                : new ConnTuple(p.InnerSrc, p.InnerDst, p.InnerProtocol, 0, 0);
        if (!inner.TryInvert(out var lookup)) { Stats.Invalid++; return Verdict.Accept; }
        lookup.Zone = zoneOrig;
        var ct = Find(lookup, zoneReply, now, out int dir);
        if (ct == null || ct.Tuple(dir).Dst != p.Dst) { Stats.Invalid++; return Verdict.Accept; }
        p.Ct = ct;
        p.CtInfo = dir == 1 ? CtInfo.RelatedReply : CtInfo.Related;
        return Verdict.Accept;
    }

    /// <summary>
    /// __nf_conntrack_confirm (last hook of LOCAL_IN and POST_ROUTING): hashes a new entry in both directions.
    /// A tuple already present (another flow raced to it) fails the insert and drops the packet.
    /// </summary>
    public Verdict Confirm(ref PacketContext p)
    {
        var ct = p.Ct;
        if (ct == null || p.CtInfo == CtInfo.Untracked || ct.Confirmed) return Verdict.Accept;
        if (p.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply) return Verdict.Accept;
        if ((ct.Status & CtStatus.Dying) != 0)
        {
            // Killed while in flight (RST as only answer): never inserted.
            ReleaseUnconfirmed(ct);
            p.Ct = ct;
            return Verdict.Accept;
        }
        long now = p.TimestampNs;
        // The reply tuple is final now (NAT has bound both manips): hash it once for the clash check and the insert.
        ct.HashReply = ct.Reply.Hash(Options.HashSeed);
        if (Lookup(ct.Original, ct.HashOrig, ct.Original.Zone, now, out _) != null || Lookup(ct.Reply, ct.HashReply, ct.Reply.Zone, now, out _) != null)
        {
            Stats.InsertFailed++;
            Stats.Drop++;
            ReleaseUnconfirmed(ct);
            p.Ct = null;
            p.CtInfo = CtInfo.None;
            p.DropReason = DropReason.NetfilterDrop;
            return Verdict.Drop;
        }
        ct.Status |= CtStatus.Confirmed;
        Link(ct, 0, ct.HashOrig);
        Link(ct, 1, ct.HashReply);
        Stats.Insert++;
        return Verdict.Accept;
    }

    /// <summary>Kills a connection while its packet is still in flight (nf_ct_kill_acct).</summary>
    internal void Kill(Connection ct)
    {
        if (ct.V6 != null) { ct.V6.Table.Kill(ct); return; }
        if (ct.Confirmed) Delete(ct);
        else ct.Status |= CtStatus.Dying;
    }
}
