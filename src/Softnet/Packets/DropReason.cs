namespace Softnet.Packets;

/// <summary>
/// Why a frame was dropped. Mirrors the spirit of the kernel's SKB_DROP_REASON_* (include/net/dropreason-core.h):
/// every drop in the datapath carries one of these, never an exception.
/// Names are rendered in snake_case by <see cref="DropReasons.Name"/> for reports.
/// </summary>
public enum DropReason : ushort
{
    None = 0,
    // link layer
    UnsupportedLinkType,
    EthTruncated,
    VlanTruncated,
    SllTruncated,
    ArpTruncated,
    // IPv4
    IpHeaderTruncated,
    IpBadVersion,
    IpBadIhl,
    IpBadTotalLength,
    IpOptionsMalformed,
    // IPv6
    Ipv6HeaderTruncated,
    Ipv6BadVersion,
    Ipv6BadPayloadLength,
    Ipv6ExtHeaderTruncated,
    // transport
    TcpHeaderTruncated,
    TcpBadDoff,
    TcpOptionsMalformed,
    UdpHeaderTruncated,
    UdpBadLength,
    IcmpTruncated,
    Icmpv6Truncated,
    VxlanTruncated,
    // checksum
    IpCsumError,
    TcpCsumError,
    UdpCsumError,
    IcmpCsumError,
    // resources (NIC, pools)
    RingFull,
    PoolExhausted,
    XdpDrop,
    XdpAborted,
    FrameTooLong,
    // netfilter
    NetfilterDrop,
    NetfilterNatFailed,
    ConntrackTableFull,
    // IP receive / forward and the topology (scenario replay)
    OtherHost,
    UnhandledProtocol,
    /// <summary>SKB_DROP_REASON_INVALID_PROTO: an ICMP message a broadcast or multicast may not carry (or an echo
    /// to one, with icmp_echo_ignore_broadcasts).</summary>
    InvalidProto,
    /// <summary>SKB_DROP_REASON_NO_SOCKET: a datagram or segment no socket takes.</summary>
    NoSocket,
    /// <summary>SKB_DROP_REASON_SOCKET_RCVBUFF: the socket's receive buffer is full.</summary>
    SocketRcvBuff,
    /// <summary>SKB_DROP_REASON_TCP_FLAGS: a TCP segment whose flags this state does not take.</summary>
    TcpFlags,
    /// <summary>SKB_DROP_REASON_TCP_RFC7323_PAWS: an old timestamp.</summary>
    TcpRfc7323Paws,
    /// <summary>SKB_DROP_REASON_TCP_OLD_SEQUENCE: before the window.</summary>
    TcpOldSequence,
    /// <summary>SKB_DROP_REASON_TCP_INVALID_SEQUENCE: beyond the window.</summary>
    TcpInvalidSequence,
    /// <summary>SKB_DROP_REASON_TCP_RESET: a RST (acted on, or answered with a challenge ACK).</summary>
    TcpReset,
    /// <summary>SKB_DROP_REASON_TCP_INVALID_SYN: a SYN on a synchronized connection.</summary>
    TcpInvalidSyn,
    /// <summary>SKB_DROP_REASON_TCP_ACK_UNSENT_DATA: it acknowledges what was never sent.</summary>
    TcpAckUnsentData,
    /// <summary>SKB_DROP_REASON_SOCKET_BACKLOG: the owned socket's backlog is over its limit (tcp_add_backlog).</summary>
    SocketBacklog,
    /// <summary>SKB_DROP_REASON_TCP_ZEROWINDOW: data while the window is closed.</summary>
    TcpZeroWindow,
    /// <summary>SKB_DROP_REASON_TCP_OLD_DATA: a retransmission of data already received.</summary>
    TcpOldData,
    /// <summary>SKB_DROP_REASON_TCP_OVERWINDOW: data beyond the window.</summary>
    TcpOverWindow,
    /// <summary>SKB_DROP_REASON_PROTO_MEM: the receive buffer is full.</summary>
    ProtoMem,
    /// <summary>SKB_DROP_REASON_TCP_OFO_DROP: out-of-order data that could not be kept (or already delivered).</summary>
    TcpOfoDrop,
    /// <summary>SKB_DROP_REASON_TCP_OFOMERGE: out-of-order data already queued.</summary>
    TcpOfoMerge,
    /// <summary>SKB_DROP_REASON_TCP_CLOSE: the connection is gone.</summary>
    TcpClose,
    /// <summary>SKB_DROP_REASON_SOCKET_BACKLOG / the listener's accept queue is full (ListenDrops).</summary>
    TcpListenOverflow,
    DeviceDown,
    IpMartianSource,
    IpMartianDestination,
    IpRpFilter,
    IpNoRoute,
    IpForwardingDisabled,
    IpBlackhole,
    IpRouteUnreachable,
    IpRouteProhibited,
    IpForwardNotHost,
    IpTtlExpired,
    IpFragNeeded,
    IpFragmentationNotModeled,
    MulticastNotJoined,
    NeighFailed,
    /// <summary>The neighbour's queue of packets awaiting resolution overflowed (SKB_DROP_REASON_NEIGH_QUEUEFULL).</summary>
    NeighQueueFull,
    VethPeerDown,
    BridgeInvalidSource,
    BridgeLinkLocal,
    BridgeSamePort,
    Ipv6NotModeled,
    /// <summary>br_netfilter DNAT to a host on the same bridge whose neighbour entry is not resolved (ARP from
    /// the bridged-DNAT path is not modeled).</summary>
    BridgeDnatNeighUnresolved,
    NotSpecified,
    /// <summary>A stack-local skb pool was exhausted (SKB_DROP_REASON_NOMEM).</summary>
    SkbAllocFailed,
    /// <summary>TCPMSS had to insert the MSS option but the caller passed no room behind the datagram (the kernel
    /// would expand the skb's head; see NetfilterTables.MayGrowPackets).</summary>
    NetfilterTcpmssNoRoom,
    // IPv4 reassembly (net/ipv4/ip_fragment.c) and fragmentation (ip_output.c)
    /// <summary>A fragment lying wholly inside what the queue already holds (SKB_DROP_REASON_DUP_FRAG): dropped,
    /// the queue kept.</summary>
    FragDuplicate,
    /// <summary>A fragment overlapping held data without being a duplicate (RFC 5722): it and the whole queue go.</summary>
    FragOverlap,
    /// <summary>A fragment whose length or offset contradicts the queue (end before the known end, a second last
    /// fragment with another end, data past the last fragment, no data): it and the whole queue go.</summary>
    FragInvalid,
    /// <summary>A held fragment whose queue expired after ipfrag_time (SKB_DROP_REASON_FRAG_REASM_TIMEOUT).</summary>
    FragReasmTimeout,
    /// <summary>Reassembly memory (truesize) above ipfrag_high_thresh: no queue for the fragment.</summary>
    FragMemoryLimit,
    /// <summary>A held fragment dropped when its queue was restarted: more than ipfrag_max_dist fragments from the
    /// same source came in between (ip_frag_too_far).</summary>
    FragTooFar,
    /// <summary>The reassembled datagram would be longer than 65535 bytes, or its fragments mix ECN not-ECT with
    /// ECT/CE: the queue goes.</summary>
    FragReasmFailed,
    /// <summary>ip_fragment: DF set on a datagram larger than the MTU that may not be fragmented (IpFragFails).</summary>
    FragFailed,
    /// <summary>A SYN to a listener whose request queue is over its backlog, with tcp_syncookies 0
    /// (TCPReqQFullDrop).</summary>
    TcpReqQueueFull,
    /// <summary>ip_rcv_options: a source-routed datagram on a device without accept_source_route (in conf.all and
    /// the device's own): dropped, nothing counted.</summary>
    IpSourceRouteRejected,
    /// <summary>ip_options_rcv_srr refused the source route: not PACKET_HOST, a route that is neither local nor
    /// unicast, a strict route not addressed to us, a next hop without a usable route, or a bad pointer.</summary>
    IpSourceRouteFailed,
    /// <summary>ip_forward: a strict source route whose next hop is not directly connected (ICMP 3/5).</summary>
    IpStrictRouteFailed,
    /// <summary>disable_ipv6 on the device (SKB_DROP_REASON_IPV6DISABLED): ip6_rcv_core counts InDiscards.</summary>
    Ipv6Disabled,
    /// <summary>ip6_rcv_core: a loopback or multicast source, a loopback destination on the wire, a multicast
    /// destination of scope 0 or 1 (IP_INHDR, InHdrErrors).</summary>
    Ipv6BadAddress,
    /// <summary>A hop-by-hop or destination option that is malformed (padding over 7 bytes, bad length) or that its
    /// type's action drops (SKB_DROP_REASON_IP_INHDR / UNHANDLED_PROTO).</summary>
    Ipv6BadOption,
    /// <summary>ip6_forward: hop limit 1 or 0 (ICMPv6 time exceeded).</summary>
    Ipv6HopLimitExceeded,
    /// <summary>ip6_forward: longer than the egress MTU (ICMPv6 packet too big; SKB_DROP_REASON_PKT_TOO_BIG).</summary>
    Ipv6PacketTooBig,
    /// <summary>ip6_forward: an unspecified, multicast, loopback or link-local source (InAddrErrors).</summary>
    Ipv6ForwardBadSource,
    /// <summary>No IPv6 route (ip6_pkt_discard: ICMPv6 no route, InNoRoutes).</summary>
    Ipv6NoRoute,
    /// <summary>A routing header the host will not process (unknown type with segments left: parameter problem),
    /// or one to a multicast destination (InAddrErrors / InHdrErrors).</summary>
    Ipv6BadRoutingHeader,
    /// <summary>A next header no protocol handles (ICMPv6 parameter problem 1, InUnknownProtos).</summary>
    Ipv6UnknownNextHeader,
    /// <summary>An ICMPv6 message with a bad checksum (SKB_DROP_REASON_ICMP_CSUM).</summary>
    Icmpv6CsumError,
    /// <summary>A neighbour discovery message ndisc_rcv refuses: hop limit not 255, code not 0, bad options, a
    /// target not ours (SKB_DROP_REASON_IPV6_NDISC_*).</summary>
    NdiscInvalid,
    /// <summary>An IPv6 reassembly queue overrun (ip6frag_high_thresh) or a fragment ip6_frag_queue refuses (bad
    /// length: parameter problem).</summary>
    Ipv6FragInvalid,
    /// <summary>A device bound to a real interface could not queue the frame: the live port's TX ring was full
    /// (a driver's NETDEV_TX_BUSY that the qdisc drops) or the frame did not fit a slot.</summary>
    TxRingFull,
    /// <summary>SKB_DROP_REASON_VXLAN_NO_REMOTE: a VXLAN device has no FDB entry (and no default one) for the
    /// destination MAC.</summary>
    VxlanNoRemote,
    /// <summary>SKB_DROP_REASON_VXLAN_INVALID_HDR: the VXLAN header lacks the I flag or sets reserved bits.</summary>
    VxlanInvalidHdr,
    /// <summary>SKB_DROP_REASON_VXLAN_VNI_NOT_FOUND: no VXLAN device on the port has the packet's VNI.</summary>
    VxlanVniNotFound,
    /// <summary>SKB_DROP_REASON_LOCAL_MAC: a decapsulated frame carries the VXLAN device's own source MAC (a loop).</summary>
    LocalMac,
    /// <summary>SKB_DROP_REASON_PKT_TOO_SMALL: shorter than the headers the protocol needs (VXLAN's 8 bytes and the
    /// inner Ethernet header).</summary>
    PktTooSmall,
    /// <summary>SKB_DROP_REASON_IP_TUNNEL_ECN: outer CE over an inner packet that is not ECN-capable (RFC 6040 4.2).</summary>
    IpTunnelEcn,
    /// <summary>SKB_DROP_REASON_CPU_BACKLOG: the target CPU's backlog held more than netdev_max_backlog, or the
    /// flow limit refused the flow (RPS).</summary>
    CpuBacklog,
    /// <summary>SKB_DROP_REASON_RECURSION_LIMIT: transmit nested past XMIT_RECURSION_LIMIT (a loop of virtual devices).</summary>
    RecursionLimit,
    /// <summary>SKB_DROP_REASON_MAC_INVALID_SOURCE: a learning VXLAN device got a frame from a multicast or zero MAC.</summary>
    MacInvalidSource,
    /// <summary>SKB_DROP_REASON_VXLAN_ENTRY_EXISTS: learning would move a configured FDB entry.</summary>
    VxlanEntryExists,
}

public static class DropReasons
{
    private static readonly string[] Names = BuildNames();

    /// <summary>snake_case name as used in reports, e.g. <c>ip_header_truncated</c>.</summary>
    public static string Name(DropReason reason)
    {
        var i = (int)reason;
        return (uint)i < (uint)Names.Length ? Names[i] : "unknown";
    }

    public static int Count => Names.Length;

    private static string[] BuildNames()
    {
        var values = Enum.GetValues<DropReason>();
        var names = new string[values.Max(v => (int)v) + 1];
        foreach (var v in values)
            names[(int)v] = ToSnake(v.ToString());
        return names;
    }

    internal static string ToSnake(string pascal)
    {
        var sb = new System.Text.StringBuilder(pascal.Length + 8);
        for (int i = 0; i < pascal.Length; i++)
        {
            char c = pascal[i];
            if (char.IsUpper(c))
            {
                if (i > 0) sb.Append('_');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
