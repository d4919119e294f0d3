using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Telemetry;

/// <summary>
/// How a <see cref="PacketTracer"/>'s journeys read: one line per stage, as pwru and `xtables-monitor --trace` print
/// them (<c>#3 +12.000us nodeB netfilter raw PREROUTING rule 1 (PREROUTING): -A PREROUTING -j NOTRACK => NOTRACK</c>),
/// JSON lines (one object per event, with the packet id), and pcapng with each journey as its packet's comment.
/// </summary>
public static class TraceText
{
    private static readonly string[] StageNames = Enum.GetNames<TraceStage>().Select(n => n.ToLowerInvariant()).ToArray();

    public static string StageName(TraceStage s) => StageNames[(int)s];

    /// <summary>One event: packet id, time since the first frame, namespace (or "nic"), stage, what happened.</summary>
    public static string Line(TraceEvent e)
        => string.Create(CultureInfo.InvariantCulture, $"#{e.Packet} +{e.TimeNs / 1000.0:F3}us {e.Namespace ?? "nic"} {StageName(e.Stage)} {e.Text}");

    /// <summary>A journey's header line: where the packet came from and what it is.</summary>
    public static string Header(TraceJourney j)
        => string.Create(CultureInfo.InvariantCulture,
            $"#{j.Id} {j.Origin}{(j.FrameNumber > 0 ? $" frame {j.FrameNumber}" : "")} len {j.WireLength}: {j.Summary}");

    /// <summary>A journey as text: its header, then its events (the pcapng comment).</summary>
    public static string Journey(TraceJourney j)
    {
        var sb = new StringBuilder();
        sb.Append(Header(j)).Append('\n');
        foreach (var e in j.Events) sb.Append(Line(e)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Every journey, packet after packet, each under its header.</summary>
    public static string Format(PacketTracer tracer)
    {
        var sb = new StringBuilder();
        foreach (var j in tracer.Journeys) sb.Append(Journey(j));
        if (tracer.NotKept > 0) sb.Append($"# {tracer.NotKept} more selected packets not traced (--trace keeps {tracer.MaxPackets})\n");
        return sb.ToString();
    }

    /// <summary>JSON lines: one object per event, in the order they happened.</summary>
    public static void WriteJson(PacketTracer tracer, Stream stream)
    {
        var newline = "\n"u8.ToArray();
        foreach (var e in tracer.Events)
        {
            using (var w = new Utf8JsonWriter(stream))
            {
                w.WriteStartObject();
                w.WriteNumber("packet", e.Packet);
                w.WriteNumber("time_ns", e.TimeNs);
                w.WriteString("stage", StageName(e.Stage));
                if (e.Namespace is not null) w.WriteString("ns", e.Namespace);
                w.WriteString("text", e.Text);
                if (e.Table is not null) w.WriteString("table", e.Table);
                if (e.Chain is not null) w.WriteString("chain", e.Chain);
                if (e.RuleNumber > 0) w.WriteNumber("rule", e.RuleNumber);
                if (e.RuleText is not null) w.WriteString("rule_text", e.RuleText);
                if (e.Verdict is not null) w.WriteString("verdict", e.Verdict);
                if (e.KernelReason is not null)
                {
                    w.WriteString("drop_reason", e.KernelReason);
                    w.WriteString("softnet_reason", DropReasons.Name(e.Reason));
                }
                if (tracer.Journey(e.Packet) is { } j && j.Events.Count > 0 && ReferenceEquals(j.Events[0], e))
                {
                    w.WriteString("origin", j.Origin);
                    w.WriteString("summary", j.Summary);
                }
                w.WriteEndObject();
            }
            stream.Write(newline);
        }
    }

    /// <summary>The traced packets as pcapng, each with its journey as the packet's opt_comment (tshark's
    /// frame.comment). Frames from the capture keep their link type; packets a namespace made are raw IP.</summary>
    public static void WritePcapng(PacketTracer tracer, string path)
    {
        var types = tracer.Journeys.Select(j => j.LinkType).Distinct().ToList();
        if (types.Count == 0) types.Add(LinkType.Ethernet);
        var interfaces = types.Select(t => new CaptureInterface(t, 262144, "trace " + t.ToString().ToLowerInvariant(), 1_000_000_000)).ToList();
        using var w = PcapngWriter.Create(path, interfaces);
        foreach (var j in tracer.Journeys)
            w.Write(j.ArrivalNs, j.Frame, Journey(j).TrimEnd('\n'), j.WireLength, types.IndexOf(j.LinkType));
    }

    // ---------------- packet words ----------------

    public static string HookName(HookPoint hook) => hook switch
    {
        HookPoint.PreRouting => "PREROUTING",
        HookPoint.LocalIn => "INPUT",
        HookPoint.Forward => "FORWARD",
        HookPoint.LocalOut => "OUTPUT",
        _ => "POSTROUTING",
    };

    public static string CtInfoName(CtInfo info) => info switch
    {
        CtInfo.New => "new",
        CtInfo.Established => "established",
        CtInfo.EstablishedReply => "established reply",
        CtInfo.Related => "related",
        CtInfo.RelatedReply => "related reply",
        CtInfo.Untracked => "untracked",
        _ => "none",
    };

    public static string ProtocolName(byte p) => p switch
    {
        IpProtocols.Tcp => "tcp",
        IpProtocols.Udp => "udp",
        IpProtocols.Icmp => "icmp",
        58 => "icmpv6",
        2 => "igmp",
        _ => "proto " + p.ToString(CultureInfo.InvariantCulture),
    };

    public static string Upper(string pascal) => DropReasons.ToSnake(pascal).ToUpperInvariant();
    public static string Lower(string pascal) => DropReasons.ToSnake(pascal);

    /// <summary>What a frame is, tcpdump-like: addresses, ports, protocol, TCP flags.</summary>
    public static string Summary(ReadOnlySpan<byte> frame, LinkType linkType)
    {
        int l3 = 0;
        ushort type = 0;
        switch (linkType)
        {
            case LinkType.Ethernet:
                if (frame.Length < 14) return "truncated ethernet frame";
                type = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
                l3 = 14;
                while ((type == EtherTypes.Vlan || type == EtherTypes.QinQ) && frame.Length >= l3 + 4)
                {
                    type = BinaryPrimitives.ReadUInt16BigEndian(frame[(l3 + 2)..]);
                    l3 += 4;
                }
                break;
            case LinkType.LinuxSll:
                if (frame.Length < 16) return "truncated sll frame";
                type = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]);
                l3 = 16;
                break;
            case LinkType.LinuxSll2:
                if (frame.Length < 20) return "truncated sll2 frame";
                type = BinaryPrimitives.ReadUInt16BigEndian(frame);
                l3 = 20;
                break;
            default:
                if (frame.Length < 1) return "empty";
                type = (frame[0] >> 4) == 6 ? EtherTypes.Ipv6 : EtherTypes.Ipv4;
                break;
        }
        if (type == EtherTypes.Arp) return "arp";
        if (type != EtherTypes.Ipv4 && type != EtherTypes.Ipv6) return "ethertype 0x" + type.ToString("x4", CultureInfo.InvariantCulture);
        return Tuple(frame[l3..]);
    }

    /// <summary>An IP packet's tuple: "10.0.0.1:5000 > 10.0.0.2:80 tcp [S]" (ICMP: type/code).</summary>
    public static string Tuple(ReadOnlySpan<byte> ip)
    {
        if (ip.Length < 1) return "empty";
        int version = ip[0] >> 4;
        byte proto;
        string src, dst;
        int l4;
        bool later = false;
        if (version == 4)
        {
            if (ip.Length < 20) return "truncated ipv4";
            proto = ip[9];
            src = new System.Net.IPAddress(ip.Slice(12, 4)).ToString();
            dst = new System.Net.IPAddress(ip.Slice(16, 4)).ToString();
            l4 = (ip[0] & 0xF) * 4;
            later = (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) != 0;
        }
        else if (version == 6)
        {
            if (ip.Length < 40) return "truncated ipv6";
            proto = ip[6];
            src = new System.Net.IPAddress(ip.Slice(8, 16)).ToString();
            dst = new System.Net.IPAddress(ip.Slice(24, 16)).ToString();
            l4 = 40;
        }
        else return "ip version " + version;
        var t = ip.Length > l4 && !later ? ip[l4..] : default;
        string name = ProtocolName(proto);
        if ((proto == IpProtocols.Tcp || proto == IpProtocols.Udp) && t.Length >= 4)
        {
            ushort sp = BinaryPrimitives.ReadUInt16BigEndian(t), dp = BinaryPrimitives.ReadUInt16BigEndian(t[2..]);
            string flags = proto == IpProtocols.Tcp && t.Length >= 14 ? " [" + TcpFlags(t[13]) + "]" : "";
            return $"{src}:{sp} > {dst}:{dp} {name}{flags}";
        }
        if ((proto == IpProtocols.Icmp || proto == 58) && t.Length >= 2)
            return $"{src} > {dst} {name} type {t[0]} code {t[1]}";
        return $"{src} > {dst} {name}{(later ? " fragment" : "")}";
    }

    private static string TcpFlags(byte f)
    {
        var sb = new StringBuilder(6);
        if ((f & 0x02) != 0) sb.Append('S');
        if ((f & 0x01) != 0) sb.Append('F');
        if ((f & 0x04) != 0) sb.Append('R');
        if ((f & 0x08) != 0) sb.Append('P');
        if ((f & 0x20) != 0) sb.Append('U');
        if ((f & 0x10) != 0) sb.Append('.');
        return sb.Length == 0 ? "none" : sb.ToString();
    }
}

/// <summary>
/// The kernel's name for each Softnet drop reason (enum skb_drop_reason, include/net/dropreason-core.h, and the
/// subsystem reasons of VXLAN): what pwru and `perf trace -e skb:kfree_skb` print. Where the kernel has no reason of its
/// own the nearest one it uses at that place is given (an ip_error after ip_route_input_slow: IP_INADDRERRORS for
/// forwarding off, IP_INNOROUTES for no route), and NOT_SPECIFIED where it frees the skb without one; the trace prints
/// Softnet's specific reason beside it.
/// </summary>
public static class KernelDropReasons
{
    private static readonly string[] Names = Build();

    public static string Name(DropReason reason) => (uint)reason < (uint)Names.Length ? Names[(int)reason] : "SKB_DROP_REASON_NOT_SPECIFIED";

    private static string[] Build()
    {
        var names = new string[DropReasons.Count];
        for (int i = 0; i < names.Length; i++) names[i] = "SKB_DROP_REASON_" + Kernel((DropReason)i);
        return names;
    }

    private static string Kernel(DropReason r) => r switch
    {
        DropReason.EthTruncated or DropReason.VlanTruncated or DropReason.SllTruncated or DropReason.ArpTruncated => "PKT_TOO_SMALL",
        // ip_rcv_core: a short or malformed header is IP_INHDR; a frame shorter than tot_len PKT_TOO_SMALL.
        DropReason.IpHeaderTruncated or DropReason.IpBadVersion or DropReason.IpBadIhl or DropReason.IpOptionsMalformed => "IP_INHDR",
        DropReason.IpBadTotalLength => "PKT_TOO_SMALL",
        DropReason.Ipv6HeaderTruncated or DropReason.Ipv6BadVersion or DropReason.Ipv6BadPayloadLength => "IP_INHDR",
        DropReason.Ipv6ExtHeaderTruncated => "IPV6_BAD_EXTHDR",
        DropReason.TcpHeaderTruncated or DropReason.TcpBadDoff or DropReason.UdpHeaderTruncated or DropReason.UdpBadLength
            or DropReason.IcmpTruncated or DropReason.Icmpv6Truncated or DropReason.VxlanTruncated or DropReason.PktTooSmall => "PKT_TOO_SMALL",
        DropReason.TcpOptionsMalformed => "TCP_FLAGS",
        DropReason.IpCsumError => "IP_CSUM",
        DropReason.TcpCsumError => "TCP_CSUM",
        DropReason.UdpCsumError => "UDP_CSUM",
        DropReason.IcmpCsumError or DropReason.Icmpv6CsumError => "ICMP_CSUM",
        DropReason.RingFull => "FULL_RING",
        DropReason.PoolExhausted or DropReason.SkbAllocFailed or DropReason.FragMemoryLimit => "NOMEM",
        DropReason.XdpDrop or DropReason.XdpAborted => "XDP",
        DropReason.FrameTooLong or DropReason.IpFragNeeded or DropReason.FragFailed or DropReason.Ipv6PacketTooBig => "PKT_TOO_BIG",
        DropReason.NetfilterDrop or DropReason.NetfilterNatFailed or DropReason.ConntrackTableFull or DropReason.NetfilterTcpmssNoRoom => "NETFILTER_DROP",
        DropReason.OtherHost or DropReason.IpForwardNotHost => "OTHERHOST",
        DropReason.UnhandledProtocol => "UNHANDLED_PROTO",
        DropReason.InvalidProto => "INVALID_PROTO",
        DropReason.NoSocket => "NO_SOCKET",
        DropReason.SocketRcvBuff => "SOCKET_RCVBUFF",
        DropReason.TcpFlags => "TCP_FLAGS",
        DropReason.TcpRfc7323Paws => "TCP_RFC7323_PAWS",
        DropReason.TcpOldSequence => "TCP_OLD_SEQUENCE",
        DropReason.TcpInvalidSequence => "TCP_INVALID_SEQUENCE",
        DropReason.TcpReset => "TCP_RESET",
        DropReason.TcpInvalidSyn => "TCP_INVALID_SYN",
        DropReason.TcpAckUnsentData => "TCP_ACK_UNSENT_DATA",
        DropReason.SocketBacklog => "SOCKET_BACKLOG",
        DropReason.TcpZeroWindow => "TCP_ZEROWINDOW",
        DropReason.TcpOldData => "TCP_OLD_DATA",
        DropReason.TcpOverWindow => "TCP_OVERWINDOW",
        DropReason.ProtoMem => "PROTO_MEM",
        DropReason.TcpOfoDrop => "TCP_OFO_DROP",
        DropReason.TcpOfoMerge => "TCP_OFOMERGE",
        DropReason.TcpClose => "TCP_CLOSE",
        DropReason.TcpListenOverflow or DropReason.TcpReqQueueFull => "SOCKET_BACKLOG",
        DropReason.DeviceDown or DropReason.VethPeerDown => "DEV_READY",
        // ip_route_input_slow's martian checks (named since Linux 6.13).
        DropReason.IpMartianSource => "IP_INVALID_SOURCE",
        DropReason.IpMartianDestination => "IP_INVALID_DEST",
        DropReason.IpRpFilter => "IP_RPFILTER",
        // ip_error: -ENETUNREACH (no route) and -EHOSTUNREACH (forwarding off, an unreachable route).
        DropReason.IpNoRoute or DropReason.Ipv6NoRoute => "IP_INNOROUTES",
        DropReason.IpForwardingDisabled or DropReason.IpRouteUnreachable => "IP_INADDRERRORS",
        // ip_forward's too_many_hops, ip6_forward's hop limit.
        DropReason.IpTtlExpired or DropReason.Ipv6HopLimitExceeded => "IP_INHDR",
        DropReason.NeighFailed => "NEIGH_FAILED",
        DropReason.NeighQueueFull => "NEIGH_QUEUEFULL",
        DropReason.FragDuplicate => "DUP_FRAG",
        DropReason.FragReasmTimeout => "FRAG_REASM_TIMEOUT",
        DropReason.FragTooFar => "FRAG_TOO_FAR",
        DropReason.Ipv6Disabled => "IPV6DISABLED",
        DropReason.Ipv6BadAddress or DropReason.Ipv6BadOption or DropReason.Ipv6BadRoutingHeader or DropReason.Ipv6ForwardBadSource => "IP_INHDR",
        DropReason.Ipv6UnknownNextHeader => "IP_NOPROTO",
        DropReason.NdiscInvalid => "IPV6_NDISC_BAD_OPTIONS",
        DropReason.TxRingFull => "FULL_RING",
        DropReason.VxlanNoRemote => "VXLAN_NO_REMOTE",
        DropReason.VxlanInvalidHdr => "VXLAN_INVALID_HDR",
        DropReason.VxlanVniNotFound => "VXLAN_VNI_NOT_FOUND",
        DropReason.VxlanEntryExists => "VXLAN_ENTRY_EXISTS",
        DropReason.LocalMac => "LOCAL_MAC",
        DropReason.IpTunnelEcn => "IP_TUNNEL_ECN",
        DropReason.CpuBacklog => "CPU_BACKLOG",
        DropReason.RecursionLimit => "RECURSION_LIMIT",
        DropReason.MacInvalidSource => "MAC_INVALID_SOURCE",
        _ => "NOT_SPECIFIED",
    };
}
