using System.Globalization;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>nf_conntrack_tuple for IPv6: 128-bit addresses, protocol and the per-protocol part (ports; for ICMPv6 the
/// echo id in the source "port" and type (high byte) and code (low byte) in the destination "port").</summary>
public struct Conn6Tuple : IEquatable<Conn6Tuple>
{
    public UInt128 Src;
    public UInt128 Dst;
    public ushort SrcPort;
    public ushort DstPort;
    public byte Protocol;
    public ushort Zone;

    public Conn6Tuple(UInt128 src, UInt128 dst, byte protocol, ushort srcPort, ushort dstPort)
    {
        Src = src; Dst = dst; Protocol = protocol; SrcPort = srcPort; DstPort = dstPort; Zone = 0;
    }

    public readonly byte IcmpType => (byte)(DstPort >> 8);
    public readonly byte IcmpCode => (byte)DstPort;
    public readonly ushort IcmpId => SrcPort;

    public readonly bool Equals(Conn6Tuple o)
        => Src == o.Src && Dst == o.Dst && SrcPort == o.SrcPort && DstPort == o.DstPort && Protocol == o.Protocol && Zone == o.Zone;
    public override readonly bool Equals(object? obj) => obj is Conn6Tuple t && Equals(t);
    public override readonly int GetHashCode()
        => HashCode.Combine(Src, Dst, (uint)SrcPort << 16 | DstPort, Protocol, Zone);

    /// <summary>nf_ct_invert_tuple: swap ends; ICMPv6 echo and node information map to their reply type
    /// (nf_conntrack_invert_icmpv6_tuple's invmap); false for other ICMPv6 types.</summary>
    public readonly bool TryInvert(out Conn6Tuple inverse)
    {
        inverse = new Conn6Tuple(Dst, Src, Protocol, DstPort, SrcPort) { Zone = Zone };
        if (Protocol == IpProtocols.Icmpv6)
        {
            byte inv = Icmpv6Inverse(IcmpType);
            if (inv == 0) return false;
            inverse.SrcPort = SrcPort;
            inverse.DstPort = (ushort)(inv << 8 | IcmpCode);
        }
        return true;
    }

    /// <summary>invmap: echo request 128 ↔ echo reply 129, node information query 139 ↔ reply 140; 0 for none.</summary>
    internal static byte Icmpv6Inverse(byte type) => type switch { 128 => 129, 129 => 128, 139 => 140, 140 => 139, _ => 0 };

    /// <summary>The tuple as conntrack -L prints it.</summary>
    public readonly void Append(StringBuilder sb)
    {
        sb.Append("src=").Append(Ip6Addr.Format(Src)).Append(" dst=").Append(Ip6Addr.Format(Dst)).Append(' ');
        if (Protocol is 6 or 17 or 132 or 136 or 33)
            sb.Append("sport=").Append(SrcPort).Append(" dport=").Append(DstPort).Append(' ');
        else if (Protocol == IpProtocols.Icmpv6)
            sb.Append("type=").Append(IcmpType).Append(" code=").Append(IcmpCode).Append(" id=").Append(IcmpId).Append(' ');
        else if (Protocol == IpProtocols.Gre)
            sb.Append("srckey=0x").Append(SrcPort.ToString("x", CultureInfo.InvariantCulture)).Append(" dstkey=0x").Append(DstPort.ToString("x", CultureInfo.InvariantCulture)).Append(' ');
    }

    public override readonly string ToString()
    {
        var sb = new StringBuilder();
        Append(sb);
        return sb.ToString().TrimEnd();
    }
}

/// <summary>The IPv6 part of a <see cref="Connection"/>: its two IPv6 tuples and the table that holds it. The entry's
/// <see cref="Connection.Original"/> / <see cref="Connection.Reply"/> keep the protocol and ports (addresses zero),
/// so family-neutral code (TCP tracking, the conntrack match's state and protocol) reads them as for IPv4.</summary>
public sealed class Ip6ConnInfo
{
    public Conn6Tuple Original;
    public Conn6Tuple Reply;
    internal Ip6Conntrack Table = null!;

    public ref Conn6Tuple Tuple(int dir) => ref dir == 0 ? ref Original : ref Reply;
}

/// <summary>
/// IPv6 connection tracking (nf_conntrack_l3proto_ipv6 with the TCP, UDP and ICMPv6 trackers, nf_conntrack_proto_icmpv6.c):
/// lookup of both tuple directions, creation bounded by nf_conntrack_max, confirmation at the last hook, ICMPv6 errors
/// RELATED to the connection they quote, ND / MLD untracked. The sysctls and TCP state machine are the namespace's IPv4
/// table's (<see cref="ConntrackTable"/>, one nf_conntrack per netns in the kernel). Single-threaded, one per namespace.
/// </summary>
public sealed class Ip6Conntrack
{
    private readonly NetfilterTables _owner;
    private readonly Dictionary<Conn6Tuple, (Connection Ct, byte Dir)> _hash = new();
    private int _count;
    // The gc worker's walk, incremental: confirmed entries in a ring, a few looked at per new entry, the expired deleted.
    private readonly Queue<(Connection Ct, int Generation)> _sweep = new();
    // Entries deleted or released since the last quiescent point, then the table's own slab of IPv6 entries (each keeps
    // its Ip6ConnInfo), so a steady stream of new connections allocates nothing once warm.
    private readonly List<Connection> _retired = new();
    private readonly Stack<Connection> _free = new();
    internal Ip6Nat? Nat;

    public Ip6Conntrack(NetfilterTables owner) => _owner = owner;

    /// <summary>The table whose sysctls (nf_conntrack_max, timeouts, tcp_loose, checksum, acct) this one follows.</summary>
    private ConntrackTable _v4 => _owner.Conntrack;
    public ConntrackOptions Options => _v4.Options;
    public ConntrackStats Stats { get; } = new();
    /// <summary>Confirmed entries (unexpired or not yet collected).</summary>
    public int Count => _count;

    private static bool IsExpired(Connection c, long nowNs) => nowNs - c.ExpiresNs >= 0;

    /// <summary>Finds the entry holding <paramref name="t"/> in either direction; an expired one is deleted and missed.</summary>
    public Connection? Find(in Conn6Tuple t, long nowNs, out int dir)
    {
        dir = 0;
        if (!_hash.TryGetValue(t, out var hit)) return null;
        if (IsExpired(hit.Ct, nowNs) && (hit.Ct.Status & CtStatus.FixedTimeout) == 0)
        {
            Delete(hit.Ct);
            return null;
        }
        dir = hit.Dir;
        return hit.Ct;
    }

    /// <summary>nf_conntrack_tuple_taken: a confirmed entry other than <paramref name="ignored"/> holds the tuple.</summary>
    internal bool Taken(in Conn6Tuple t, Connection ignored, long nowNs)
    {
        var ct = Find(t, nowNs, out _);
        return ct != null && ct != ignored;
    }

    /// <summary>All confirmed, unexpired entries.</summary>
    public IEnumerable<Connection> Entries(long nowNs)
    {
        var list = new List<Connection>();
        foreach (var (_, v) in _hash)
            if (v.Dir == 0 && !IsExpired(v.Ct, nowNs)) list.Add(v.Ct);
        return list;
    }

    /// <summary>Removes every expired entry (the gc worker).</summary>
    public int Gc(long nowNs)
    {
        var dead = new List<Connection>();
        foreach (var (_, v) in _hash)
            if (v.Dir == 0 && IsExpired(v.Ct, nowNs)) dead.Add(v.Ct);
        foreach (var c in dead) Delete(c);
        return dead.Count;
    }

    /// <summary>`conntrack -L -f ipv6` output, one line per entry.</summary>
    public string List(long nowNs)
    {
        var sb = new StringBuilder();
        foreach (var c in Entries(nowNs)) sb.Append(Format(c, nowNs)).Append('\n');
        return sb.ToString();
    }

    /// <summary>nf_ct_delete: unhash.</summary>
    public void Delete(Connection ct)
    {
        if ((ct.Status & CtStatus.Dying) != 0) return;
        ct.Status |= CtStatus.Dying;
        Nat?.Forget(ct);
        if (!ct.Confirmed || ct.V6 is not { } v6) return;
        _hash.Remove(v6.Original);
        _hash.Remove(v6.Reply);
        _count--;
        Retire(ct);
    }

    /// <summary>An entry that was never confirmed goes away with its packet (a drop, a clash at confirm).</summary>
    internal void ReleaseUnconfirmed(Connection ct)
    {
        if (ct.Confirmed) return;
        Nat?.Forget(ct);
        Retire(ct);
    }

    private void Retire(Connection ct)
    {
        if (ct.Retired) return;
        ct.Retired = true;
        _retired.Add(ct);
    }

    /// <summary>A quiescent point (no packet in flight holds an entry): what was deleted or released since is reused
    /// by the next new connections.</summary>
    public void Quiesce()
    {
        for (int i = 0; i < _retired.Count; i++)
        {
            var ct = _retired[i];
            // Confirmed after its release (a reset attached to a dropped packet's entry): it stays in the table.
            if (ct.Confirmed && (ct.Status & CtStatus.Dying) == 0) continue;
            ct.Generation++;
            _free.Push(ct);
        }
        _retired.Clear();
    }

    /// <summary>gc_worker, a little at a time: looks at the <paramref name="n"/> oldest-checked entries, deleting the
    /// expired and putting the others back at the end.</summary>
    private void Sweep(long nowNs, int n)
    {
        for (int i = 0; i < n && _sweep.Count > 0; i++)
        {
            var (ct, gen) = _sweep.Dequeue();
            // Gone, or reused for another connection since (which has its own place in the ring).
            if (gen != ct.Generation || (ct.Status & CtStatus.Dying) != 0 || !ct.Confirmed) continue;
            if (IsExpired(ct, nowNs) && (ct.Status & CtStatus.FixedTimeout) == 0) Delete(ct);
            else _sweep.Enqueue((ct, gen));
        }
    }

    /// <summary>Kills a connection while its packet is still in flight (nf_ct_kill_acct).</summary>
    internal void Kill(Connection ct)
    {
        if (ct.Confirmed) Delete(ct);
        else ct.Status |= CtStatus.Dying;
    }

    /// <summary>One line of `conntrack -L -f ipv6`: the IPv4 layout with IPv6 addresses.</summary>
    public static string Format(Connection ct, long nowNs)
    {
        var v6 = ct.V6!;
        var sb = new StringBuilder();
        byte proto = v6.Original.Protocol;
        string name = proto switch { 6 => "tcp", 17 => "udp", 58 => "icmpv6", 132 => "sctp", 136 => "udplite", 33 => "dccp", 47 => "gre", _ => "unknown" };
        sb.Append(name.PadRight(8)).Append(' ').Append(proto).Append(' ');
        long remaining = Math.Max(0, ct.ExpiresNs - nowNs) / 1_000_000_000L;
        sb.Append(remaining.ToString(CultureInfo.InvariantCulture)).Append(' ');
        ct.AppendState(sb, proto);
        v6.Original.Append(sb);
        if (ct.ZoneId != 0 && ct.ZoneDir == 1) sb.Append("zone-orig=").Append(ct.ZoneId).Append(' ');
        if (ct.HasAcct) sb.Append("packets=").Append(ct.PacketsOrig).Append(" bytes=").Append(ct.BytesOrig).Append(' ');
        if ((ct.Status & CtStatus.SeenReply) == 0) sb.Append("[UNREPLIED] ");
        v6.Reply.Append(sb);
        if (ct.ZoneId != 0 && ct.ZoneDir == 2) sb.Append("zone-reply=").Append(ct.ZoneId).Append(' ');
        if (ct.HasAcct) sb.Append("packets=").Append(ct.PacketsReply).Append(" bytes=").Append(ct.BytesReply).Append(' ');
        if ((ct.Status & CtStatus.Assured) != 0) sb.Append("[ASSURED] ");
        sb.Append("mark=").Append(ct.Mark);
        if (ct.ZoneId != 0 && ct.ZoneDir == 3) sb.Append(" zone=").Append(ct.ZoneId);
        ct.AppendDeltaTime(sb, nowNs);
        if (ct.Helper != null) sb.Append(" helper=").Append(ct.Helper);
        sb.Append(" use=1");
        return sb.ToString();
    }

    /// <summary>nf_ct_get_tuple for an IPv6 packet.</summary>
    internal static Conn6Tuple TupleOf(ref PacketContext p) => p.Protocol switch
    {
        6 or 17 or 132 or 136 => new Conn6Tuple(p.Src6, p.Dst6, p.Protocol, p.SrcPort, p.DstPort),
        IpProtocols.Icmpv6 => new Conn6Tuple(p.Src6, p.Dst6, IpProtocols.Icmpv6, p.IcmpId, (ushort)(p.IcmpType << 8 | p.IcmpCode)),
        _ => new Conn6Tuple(p.Src6, p.Dst6, p.Protocol, 0, 0),
    };

    /// <summary>ICMPv6 types nf_conntrack_icmpv6_error leaves untracked (noct_valid_new: MLD and neighbour discovery).</summary>
    private static bool Untracked(byte type) => type is 130 or 131 or 132 or 133 or 134 or 135 or 136 or 143;

    private Connection? Alloc(in Conn6Tuple orig, in Conn6Tuple reply, long nowNs)
    {
        if (Options.Max > 0 && _count + _v4.Count >= Options.Max) return null;
        // The table's own slab, not the shared ConnectionCache: IPv6 entries keep their Ip6ConnInfo and never go back
        // there, so taking from it would only drain the IPv4 tables' warm objects.
        var ct = _free.TryPop(out var reused) ? reused : new Connection();
        var v6 = ct.V6 ?? new Ip6ConnInfo();
        v6.Table = this;
        v6.Original = orig;
        v6.Reply = reply;
        ct.V6 = v6;
        ct.Original = new ConnTuple(0, 0, orig.Protocol, orig.SrcPort, orig.DstPort) { Zone = orig.Zone };
        ct.Reply = new ConnTuple(0, 0, reply.Protocol, reply.SrcPort, reply.DstPort) { Zone = reply.Zone };
        ct.ResetForReuse(_v4.Accounting, _v4.Timestamps ? nowNs : -1);
        return ct;
    }

    /// <summary>
    /// nf_conntrack_in for NFPROTO_IPV6 at <paramref name="hook"/>, with the packet's bytes <paramref name="ip"/> (from the
    /// IPv6 header) for the checksum checks of tcp_error / udp_error / icmpv6_error (PREROUTING, nf_conntrack_checksum).
    /// </summary>
    public Verdict In(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (p.CtInfo == CtInfo.Untracked || p.Ct != null) return Verdict.Accept;
        var tmpl = p.CtTemplate;
        p.CtTemplate = null;
        ushort zoneOrig = tmpl?.ZoneId(0, p.Mark) ?? 0, zoneReply = tmpl?.ZoneId(1, p.Mark) ?? 0;
        long now = p.TimestampNs;
        // nf_defrag_ipv6 hands conntrack whole packets; a fragment that reaches it here has no transport header to track.
        if (p.IsFragment) { Stats.Invalid++; return Verdict.Accept; }
        // ipv6_skip_exthdr finds no upper-layer header behind "no next header": no tuple, INVALID.
        if (p.Protocol == 59) { Stats.Invalid++; return Verdict.Accept; }
        if (p.Protocol == IpProtocols.Icmpv6)
        {
            if (ChecksumFails(ref p, hook, ip)) { Stats.Invalid++; return Verdict.Accept; }
            if (Untracked(p.IcmpType)) { p.CtInfo = CtInfo.Untracked; return Verdict.Accept; }
            if (PacketContext.IsIcmpv6Error(p.IcmpType)) return IcmpError(ref p, now, zoneOrig);
        }
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var tuple = TupleOf(ref p);
            tuple.Zone = zoneOrig;
            var ct = Find(tuple, now, out int dir);
            if (ct != null) Stats.Found++;
            else
            {
                if (!tuple.TryInvert(out var reply)) { Stats.Invalid++; return Verdict.Accept; }
                reply.Zone = zoneReply;
                ct = Alloc(tuple, reply, now);
                if (ct == null)
                {
                    Stats.Drop++;
                    p.DropReason = DropReason.ConntrackTableFull;
                    return Verdict.Drop;
                }
                if (tmpl != null)
                {
                    ct.ZoneId = tmpl.ZoneId(tmpl.ZoneDir == 2 ? 1 : 0, p.Mark);
                    ct.ZoneDir = tmpl.ZoneDir;
                    if (tmpl.Helper.Length != 0) ct.Helper = tmpl.Helper;
                }
                dir = 0;
            }
            CtInfo info = dir == 1 ? CtInfo.EstablishedReply
                : (ct.Status & CtStatus.SeenReply) != 0 ? CtInfo.Established
                : (ct.Status & CtStatus.Expected) != 0 ? CtInfo.Related : CtInfo.New;
            p.Ct = ct;
            p.CtInfo = info;
            int res = p.Protocol switch
            {
                6 when ChecksumFails(ref p, hook, ip) => ConntrackTable.InvalidVerdict,
                6 => TcpTracker.Packet(_v4, ct, ref p, dir, now),
                17 when UdpError(ref p, hook, ip) => ConntrackTable.InvalidVerdict,
                17 or 136 => UdpPacket(ct, now),
                IpProtocols.Icmpv6 => IcmpPacket(ct, now),
                _ => L4Tracker.Find(p.Protocol) is { } l4 ? l4.Packet(ct, ref p, Transport(ref p, ip), dir, now, Options, hook)
                    : Refresh(ct, now, Options.GenericTimeout.Ticks * 100),
            };
            if (res > 0)
            {
                if (res == ConntrackTable.AcceptVerdict) ConntrackTable.Account(ct, dir, p.Length);
                if (info == CtInfo.EstablishedReply) ct.Status |= CtStatus.SeenReply;
                return Verdict.Accept;
            }
            p.Ct = null;
            p.CtInfo = CtInfo.None;
            if (!ct.Confirmed) ReleaseUnconfirmed(ct);
            if (res == ConntrackTable.RepeatLookup) continue;
            Stats.Invalid++;
            if (res == ConntrackTable.DropVerdict) { Stats.Drop++; p.DropReason = DropReason.NetfilterDrop; return Verdict.Drop; }
            return Verdict.Accept;
        }
        return Verdict.Accept;
    }

    /// <summary>The transport header (past the extension headers) to the packet's end, as far as <paramref name="ip"/>
    /// holds it; empty when the caller gave no bytes.</summary>
    private static ReadOnlySpan<byte> Transport(ref PacketContext p, ReadOnlySpan<byte> ip)
    {
        int off = p.TransportOffset;
        if (ip.Length <= off) return default;
        return ip[off..Math.Min(Math.Max(p.Length, off), ip.Length)];
    }

    /// <summary>nf_ip6_checksum in PREROUTING with nf_conntrack_checksum: the transport checksum over the IPv6
    /// pseudo-header (upper-layer length = payload past the extension headers).</summary>
    private bool ChecksumFails(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (!Options.Checksum || hook != HookPoint.PreRouting || ip.IsEmpty || p.ChecksumVerified) return false;
        if (p.Length > ip.Length || p.TransportOffset > p.Length) return false;
        var l4 = ip[p.TransportOffset..p.Length];
        uint seed = Checksum.PseudoHeaderV6(ip[8..24], ip[24..40], p.Protocol, l4.Length);
        return !Checksum.Verify(l4, seed);
    }

    /// <summary>udp_error: a UDP length beyond the packet or below 8 is INVALID; checksum 0 skips the check.</summary>
    private bool UdpError(ref PacketContext p, HookPoint hook, ReadOnlySpan<byte> ip)
    {
        if (ip.IsEmpty || p.Length > ip.Length || p.TransportOffset > p.Length) return false;
        if (!Packets.Headers.UdpView.TryParse(ip[p.TransportOffset..p.Length], out var udp, out _)) return true;
        if (udp.Checksum == 0) return false;
        return ChecksumFails(ref p, hook, ip);
    }

    private static int Refresh(Connection ct, long now, long timeoutNs)
    {
        if ((ct.Status & CtStatus.FixedTimeout) == 0) ct.ExpiresNs = now + timeoutNs;
        return ConntrackTable.AcceptVerdict;
    }

    /// <summary>nf_conntrack_udp_packet: 30 s unreplied, 120 s once replied and older than 2 s (then ASSURED).</summary>
    private int UdpPacket(Connection ct, long now)
    {
        if (!ct.Confirmed) ct.UdpStreamNs = now + 2_000_000_000L;
        if ((ct.Status & CtStatus.SeenReply) != 0)
        {
            long extra = Options.UdpTimeout.Ticks * 100;
            bool stream = false;
            if (now - ct.UdpStreamNs > 0)
            {
                extra = Options.UdpStreamTimeout.Ticks * 100;
                stream = (ct.Status & CtStatus.Assured) == 0;
            }
            Refresh(ct, now, extra);
            if (stream) ct.Status |= CtStatus.Assured;
        }
        else Refresh(ct, now, Options.UdpTimeout.Ticks * 100);
        return ConntrackTable.AcceptVerdict;
    }

    /// <summary>nf_conntrack_icmpv6_packet: only echo requests and node information queries make a connection; 30 s.</summary>
    private int IcmpPacket(Connection ct, long now)
    {
        if (!ct.Confirmed && ct.V6!.Original.IcmpType is not (128 or 139)) return ConntrackTable.InvalidVerdict;
        return Refresh(ct, now, Options.Icmpv6Timeout.Ticks * 100);
    }

    /// <summary>icmpv6_error_message + nf_conntrack_inet_error: an ICMPv6 error is RELATED to the connection of the
    /// packet it quotes, when the outer destination is that connection's endpoint in the direction found.</summary>
    private Verdict IcmpError(ref PacketContext p, long now, ushort zone)
    {
        if (!p.HasInner) { Stats.Invalid++; return Verdict.Accept; }
        var inner = p.InnerProtocol == IpProtocols.Icmpv6
            ? new Conn6Tuple(p.InnerSrc6, p.InnerDst6, IpProtocols.Icmpv6, p.InnerIcmpId, (ushort)(p.InnerIcmpType << 8 | p.InnerIcmpCode))
            : p.InnerProtocol is 6 or 17 or 132 or 136
                ? new Conn6Tuple(p.InnerSrc6, p.InnerDst6, p.InnerProtocol, p.InnerSrcPort, p.InnerDstPort)
                : new Conn6Tuple(p.InnerSrc6, p.InnerDst6, p.InnerProtocol, 0, 0);
        if (!inner.TryInvert(out var lookup)) { Stats.Invalid++; return Verdict.Accept; }
        lookup.Zone = zone;
        var ct = Find(lookup, now, out int dir);
        if (ct == null || ct.V6!.Tuple(dir).Dst != p.Dst6) { Stats.Invalid++; return Verdict.Accept; }
        p.Ct = ct;
        p.CtInfo = dir == 1 ? CtInfo.RelatedReply : CtInfo.Related;
        return Verdict.Accept;
    }

    /// <summary>__nf_conntrack_confirm: hashes a new entry in both directions; a clash drops the packet.</summary>
    public Verdict Confirm(ref PacketContext p)
    {
        var ct = p.Ct;
        if (ct == null || p.CtInfo == CtInfo.Untracked || ct.Confirmed || ct.V6 is not { } v6) return Verdict.Accept;
        if (p.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply) return Verdict.Accept;
        if ((ct.Status & CtStatus.Dying) != 0) return Verdict.Accept;
        long now = p.TimestampNs;
        if (Find(v6.Original, now, out _) != null || Find(v6.Reply, now, out _) != null)
        {
            ReleaseUnconfirmed(ct);
            Stats.InsertFailed++;
            Stats.Drop++;
            p.Ct = null;
            p.CtInfo = CtInfo.None;
            p.DropReason = DropReason.NetfilterDrop;
            return Verdict.Drop;
        }
        ct.Status |= CtStatus.Confirmed;
        _hash[v6.Original] = (ct, 0);
        _hash[v6.Reply] = (ct, 1);
        _count++;
        Stats.Insert++;
        _sweep.Enqueue((ct, ct.Generation));
        Sweep(now, 2);
        return Verdict.Accept;
    }
}
