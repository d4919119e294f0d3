using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>nf_conntrack_tuple for IPv4: addresses, protocol and the per-protocol part. For ICMP the
/// source "port" is the echo id and the destination "port" holds type (high byte) and code (low byte).</summary>
public struct ConnTuple : IEquatable<ConnTuple>
{
    public uint Src;
    public uint Dst;
    public ushort SrcPort;
    public ushort DstPort;
    public byte Protocol;
    /// <summary>Conntrack zone id this tuple is hashed and compared in (nf_ct_zone_id of the entry's zone for the
    /// tuple's direction); 0 is the default zone.</summary>
    public ushort Zone;

    public ConnTuple(uint src, uint dst, byte protocol, ushort srcPort, ushort dstPort)
    {
        Src = src; Dst = dst; Protocol = protocol; SrcPort = srcPort; DstPort = dstPort;
    }

    public readonly byte IcmpType => (byte)(DstPort >> 8);
    public readonly byte IcmpCode => (byte)DstPort;
    public readonly ushort IcmpId => SrcPort;

    public readonly bool Equals(ConnTuple o)
        => Src == o.Src && Dst == o.Dst && SrcPort == o.SrcPort && DstPort == o.DstPort && Protocol == o.Protocol && Zone == o.Zone;

    public override readonly bool Equals(object? obj) => obj is ConnTuple t && Equals(t);
    public override readonly int GetHashCode() => (int)Hash(0);
    public static bool operator ==(ConnTuple a, ConnTuple b) => a.Equals(b);
    public static bool operator !=(ConnTuple a, ConnTuple b) => !a.Equals(b);

    /// <summary>A keyed mix of the tuple words (the role of hash_conntrack_raw's siphash).</summary>
    public readonly uint Hash(uint seed)
    {
        ulong h = seed ^ 0x9E3779B97F4A7C15UL;
        h = Mix(h ^ Src);
        h = Mix(h ^ Dst);
        h = Mix(h ^ ((ulong)SrcPort << 16 | DstPort));
        h = Mix(h ^ Protocol);
        if (Zone != 0) h = Mix(h ^ ((ulong)Zone << 24));
        return (uint)(h ^ (h >> 32));
    }

    private static ulong Mix(ulong x)
    {
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 31;
        x *= 0x94D049BB133111EBUL;
        return x ^ (x >> 29);
    }

    /// <summary>nf_ct_invert_tuple: swap ends; ICMP queries map to their reply type. False for ICMP types with no inverse.</summary>
    public readonly bool TryInvert(out ConnTuple inverse)
    {
        inverse = new ConnTuple(Dst, Src, Protocol, DstPort, SrcPort) { Zone = Zone };
        if (Protocol == 1)
        {
            byte inv = IcmpInverse(IcmpType);
            if (inv == 0xFF) return false;
            inverse.SrcPort = SrcPort;
            inverse.DstPort = (ushort)(inv << 8 | IcmpCode);
        }
        return true;
    }

    internal static byte IcmpInverse(byte type) => type switch
    {
        8 => 0, 0 => 8, 13 => 14, 14 => 13, 15 => 16, 16 => 15, 17 => 18, 18 => 17,
        _ => 0xFF,
    };

    /// <summary>The tuple as conntrack -L prints it: "src=.. dst=.. sport=.. dport=.." or "type= code= id=".</summary>
    public readonly void Append(StringBuilder sb)
    {
        sb.Append("src=").Append(Ipv4.Format(Src)).Append(" dst=").Append(Ipv4.Format(Dst)).Append(' ');
        if (Protocol is 6 or 17 or 132 or 136 or 33)
            sb.Append("sport=").Append(SrcPort).Append(" dport=").Append(DstPort).Append(' ');
        else if (Protocol == 1)
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

/// <summary>ct->status bits (IPS_*), same values as the kernel.</summary>
[Flags]
public enum CtStatus : uint
{
    None = 0,
    Expected = 1 << 0,
    SeenReply = 1 << 1,
    Assured = 1 << 2,
    Confirmed = 1 << 3,
    SrcNat = 1 << 4,
    DstNat = 1 << 5,
    SeqAdjust = 1 << 6,
    SrcNatDone = 1 << 7,
    DstNatDone = 1 << 8,
    Dying = 1 << 9,
    FixedTimeout = 1 << 10,
    NatClash = 1 << 15,
}

/// <summary>TCP conntrack states (enum tcp_conntrack).</summary>
public enum TcpCtState : byte
{
    None = 0,
    SynSent,
    SynRecv,
    Established,
    FinWait,
    CloseWait,
    LastAck,
    TimeWait,
    Close,
    SynSent2,
    /// <summary>sIV in the transition table.</summary>
    Max,
    /// <summary>sIG in the transition table.</summary>
    Ignore,
}

/// <summary>ip_ct_tcp_state: what conntrack knows of one direction's sequence space.</summary>
public struct TcpPeerState
{
    public uint End, MaxEnd, MaxWin, MaxAck;
    public byte Scale;
    public byte Flags;
}

/// <summary>One tracked connection (struct nf_conn): both tuples, status, timeout, mark, protocol state.</summary>
public sealed class Connection
{
    public ConnTuple Original;
    public ConnTuple Reply;
    public CtStatus Status;
    public uint Mark;
    /// <summary>The entry's conntrack zone (CT --zone): id and directions (1 original, 2 reply, 3 both), as
    /// conntrack -L prints them: "zone=N" after the mark, or "zone-orig=N" / "zone-reply=N" after that tuple.</summary>
    public ushort ZoneId;
    public byte ZoneDir = 3;
    /// <summary>The conntrack helper a CT --helper template assigned (its protocol logic is not modeled), or null.</summary>
    public string? Helper;
    /// <summary>nf_conn_acct: packets and bytes (IP length) accepted per direction (0 original, 1 reply).</summary>
    public long PacketsOrig, BytesOrig, PacketsReply, BytesReply;
    /// <summary>The entry has the accounting extension (created while nf_conntrack_acct was on).</summary>
    public bool HasAcct;
    /// <summary>nf_conn_tstamp's start (the scenario clock, ns) when nf_conntrack_timestamp was on as the entry was
    /// made; -1 without the extension.</summary>
    public long TstampStartNs = -1;
    /// <summary>Absolute expiry on the caller's clock (ns).</summary>
    public long ExpiresNs;
    /// <summary>Output device MASQUERADE chose, so the binding can be dropped when the device goes away.</summary>
    public string? MasqueradeDevice;
    /// <summary>The IPv6 tuples of an IPv6 entry (<see cref="Ip6Conntrack"/>); null for IPv4.</summary>
    public Ip6ConnInfo? V6;

    // TCP (struct ip_ct_tcp)
    public TcpCtState TcpState;
    internal TcpPeerState Seen0, Seen1;
    internal byte LastDir, LastWscale, LastFlags, Retrans;
    internal byte LastIndex = TcpTracker.NoneSet;
    internal uint LastSeq, LastAck, LastEnd;
    internal ushort LastWin;

    /// <summary>SCTP (struct ip_ct_sctp).</summary>
    public SctpConnState Sctp;

    /// <summary>UDP: time after which a replied flow counts as a stream (creation + 2 s).</summary>
    internal long UdpStreamNs;

    // tuplehash[IP_CT_DIR_ORIGINAL/REPLY]: the entry is its own hash node in both directions, as nf_conn embeds its
    // nf_conntrack_tuple_hash pair, so a chain walk reads one object per node (tuple, expiry and link together).
    internal HashLink NextOrig, NextReply;
    /// <summary>What a hash chain holds for the reply direction (the original direction is the entry itself).</summary>
    internal readonly ReplyNode ReplyHashNode;
    /// <summary>Each tuple's hash, taken when the entry is hashed in (a confirmed entry's tuples no longer change), so
    /// a walk skips other tuples by one compare and growing the table or unlinking needs no rehash.</summary>
    internal uint HashOrig, HashReply;
    /// <summary>nat_bysource: the next connection in this one's NAT source chain, while <see cref="InBySource"/>.</summary>
    internal Connection? NextBySource;
    internal uint BySourceHash;
    internal bool InBySource;
    /// <summary>Bumped each time the object goes back to <see cref="ConnectionCache"/>: a holder that kept a reference
    /// across packets (nf_conncount's lists) sees that its entry is gone.</summary>
    public int Generation;
    /// <summary>Handed to the table's retired list already (an entry goes back to the slab once).</summary>
    internal bool Retired;

    public Connection() : this(new ReplyNode()) { }

    /// <summary>A new entry, its reply node allocated first so the two sit together in memory.</summary>
    internal static Connection Create() => new(new ReplyNode());

    private Connection(ReplyNode reply)
    {
        ReplyHashNode = reply;
        reply.Ct = this;
    }

    /// <summary>Clears the per-connection state for a new entry (what __nf_conntrack_alloc zeroes), tuples aside.</summary>
    internal void ResetForReuse(bool accounting, long tstampStartNs)
    {
        TstampStartNs = tstampStartNs;
        Status = CtStatus.None;
        Mark = 0;
        ZoneId = 0;
        ZoneDir = 3;
        Helper = null;
        HasAcct = accounting;
        MasqueradeDevice = null;
        TcpState = TcpCtState.None;
        Seen0 = default;
        Seen1 = default;
        LastDir = LastWscale = LastFlags = Retrans = 0;
        LastIndex = TcpTracker.NoneSet;
        LastSeq = LastAck = LastEnd = 0;
        LastWin = 0;
        PacketsOrig = BytesOrig = PacketsReply = BytesReply = 0;
        ExpiresNs = 0;
        UdpStreamNs = 0;
        Sctp = default;
        NextBySource = null;
        BySourceHash = 0;
        InBySource = false;
        Retired = false;
        NextOrig = NextReply = default;
    }

    public bool Confirmed => (Status & CtStatus.Confirmed) != 0;
    public bool Assured => (Status & CtStatus.Assured) != 0;

    internal ref HashLink Next(int dir) => ref dir == 0 ? ref NextOrig : ref NextReply;
    internal uint HashOf(int dir) => dir == 0 ? HashOrig : HashReply;

    internal ref TcpPeerState Seen(int dir) => ref dir == 0 ? ref Seen0 : ref Seen1;

    public ref ConnTuple Tuple(int dir) => ref dir == 0 ? ref Original : ref Reply;

    /// <summary>One line of `conntrack -L` (libnetfilter_conntrack's default output).</summary>
    public string Format(long nowNs)
    {
        if (V6 != null) return Ip6Conntrack.Format(this, nowNs);
        var sb = new StringBuilder();
        string proto = Original.Protocol switch { 6 => "tcp", 17 => "udp", 1 => "icmp", 132 => "sctp", 136 => "udplite", 33 => "dccp", 47 => "gre", _ => "unknown" };
        sb.Append(proto.PadRight(8)).Append(' ').Append(Original.Protocol).Append(' ');
        long remaining = Math.Max(0, ExpiresNs - nowNs) / 1_000_000_000L;
        sb.Append(remaining.ToString(CultureInfo.InvariantCulture)).Append(' ');
        AppendState(sb, Original.Protocol);
        Original.Append(sb);
        if (ZoneId != 0 && ZoneDir == 1) sb.Append("zone-orig=").Append(ZoneId).Append(' ');
        if (HasAcct) sb.Append("packets=").Append(PacketsOrig).Append(" bytes=").Append(BytesOrig).Append(' ');
        if ((Status & CtStatus.SeenReply) == 0) sb.Append("[UNREPLIED] ");
        Reply.Append(sb);
        if (ZoneId != 0 && ZoneDir == 2) sb.Append("zone-reply=").Append(ZoneId).Append(' ');
        if (HasAcct) sb.Append("packets=").Append(PacketsReply).Append(" bytes=").Append(BytesReply).Append(' ');
        if ((Status & CtStatus.Assured) != 0) sb.Append("[ASSURED] ");
        sb.Append("mark=").Append(Mark);
        // A zone for both directions is the entry's zone; a one-direction zone is printed with its tuple.
        if (ZoneId != 0 && ZoneDir == 3) sb.Append(" zone=").Append(ZoneId);
        AppendDeltaTime(sb, nowNs);
        if (Helper != null) sb.Append(" helper=").Append(Helper);
        sb.Append(" use=1");
        return sb.ToString();
    }

    /// <summary>print_conntrack of the trackers that have one: TCP's and SCTP's state names.</summary>
    internal void AppendState(StringBuilder sb, byte protocol)
    {
        if (protocol == IpProtocols.Tcp) sb.Append(TcpTracker.StateName(TcpState)).Append(' ');
        else if (protocol == IpProtocols.Sctp) sb.Append(SctpTracker.StateName(Sctp.State)).Append(' ');
    }

    /// <summary>libnetfilter_conntrack's delta-time of a timestamped entry: whole seconds now less whole seconds at the
    /// start (each truncated, as it divides both by NSEC_PER_SEC).</summary>
    internal void AppendDeltaTime(StringBuilder sb, long nowNs)
    {
        if (TstampStartNs < 0) return;
        sb.Append(" delta-time=").Append(Math.Max(0, nowNs / 1_000_000_000L - TstampStartNs / 1_000_000_000L));
    }

    public override string ToString() => Format(0);
}

/// <summary>A link in a conntrack hash chain (the hnnode of nf_conntrack_tuple_hash): one reference, to the entry
/// itself for its original tuple or to its <see cref="ReplyNode"/> for the reply tuple, so a bucket is 8 bytes as
/// the kernel's hlist head is; null ends the chain.</summary>
internal readonly struct HashLink
{
    private readonly object? _node;

    public HashLink(Connection ct, int dir) => _node = dir == 0 ? ct : ct.ReplyHashNode;

    public Connection? Ct => _node is ReplyNode r ? r.Ct : Unsafe.As<Connection?>(_node);
    public int Dir => _node is ReplyNode ? 1 : 0;
}

/// <summary>The reply direction's chain node: allocated just before its entry, so both share a cache line or two.</summary>
internal sealed class ReplyNode
{
    public Connection Ct = null!;
}
