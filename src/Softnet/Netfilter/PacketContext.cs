using System.Buffers.Binary;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Netfilter;

/// <summary>
/// What netfilter sees of one packet: the fields matches read, the conntrack attachment (skb->_nfct)
/// and the mark. Filled by <see cref="FromIpv4"/> (or FromIpv6, Ipv6/PacketContext.Ipv6.cs) from packet bytes, or by
/// hand in tests. IPv4 addresses are host-order uints; IPv6 ones <see cref="Src6"/> / <see cref="Dst6"/>. No
/// allocation: interface names are references to strings the caller owns.
/// </summary>
public partial struct PacketContext
{
    public uint Src;
    public uint Dst;
    /// <summary>The output route's next hop (rt_nexthop: the gateway, else the destination), from POSTROUTING on;
    /// MASQUERADE picks its address by it.</summary>
    public uint Nexthop;
    public byte Protocol;
    public ushort SrcPort;
    public ushort DstPort;
    /// <summary>TCP flag byte (FIN 0x01 .. CWR 0x80).</summary>
    public byte TcpFlags;
    public byte IcmpType;
    public byte IcmpCode;
    /// <summary>ICMP echo / timestamp identifier.</summary>
    public ushort IcmpId;
    /// <summary>Fragment offset is non-zero (the -f match; such packets carry no L4 header).</summary>
    public bool IsFragment;
    /// <summary>IP datagram length (skb->len at L3), used for byte counters.</summary>
    public int Length;
    public string? InInterface;
    public string? OutInterface;
    public uint Mark;
    /// <summary>Packet time in nanoseconds; drives conntrack timeouts.</summary>
    public long TimestampNs;
    /// <summary>IPv4 TTL and TOS byte.</summary>
    public byte Ttl;
    public byte Tos;
    /// <summary>IP header length in bytes (where the L4 header starts in <see cref="Packet"/>).</summary>
    public byte IpHeaderLength;
    /// <summary>skb->pkt_type as eth_type_trans set it (PACKET_HOST for locally generated packets).</summary>
    public PacketType PktType;
    /// <summary>Ethernet source address of the received frame (48 bits, big-endian order), 0 when none.</summary>
    public ulong SrcMac;
    /// <summary>br_netfilter's nf_bridge_info, filled by the bridge path: the bridge port the frame came in on and
    /// the one it leaves by (null until known; a frame being bridged has a PhysOut), for -m physdev.</summary>
    public string? PhysIn;
    public string? PhysOut;
    /// <summary>The packet has a br_netfilter nf_bridge_info (it crossed a bridge with bridge-nf-call-iptables).</summary>
    public bool HasBridgeInfo;

    // TCP fields conntrack's window tracking needs.
    public uint TcpSeq;
    public uint TcpAck;
    public ushort TcpWindow;
    /// <summary>TCP payload length (segment data without headers).</summary>
    public int TcpPayloadLength;
    /// <summary>Window scale option value, or -1 when absent.</summary>
    public sbyte TcpWindowScale;
    public bool TcpSackPermitted;
    /// <summary>Highest SACK right edge, when the packet carries SACK blocks.</summary>
    public uint TcpSackMax;
    public bool TcpHasSack;

    // ICMP error: the embedded header's tuple, as sent (the kernel's icmp_error / nf_conntrack_inet_error).
    public bool HasInner;
    public uint InnerSrc;
    public uint InnerDst;
    public byte InnerProtocol;
    public ushort InnerSrcPort;
    public ushort InnerDstPort;
    public byte InnerIcmpType;
    public byte InnerIcmpCode;
    public ushort InnerIcmpId;

    /// <summary>The conntrack entry attached to this packet, if any.</summary>
    public Connection? Ct;
    public CtInfo CtInfo;
    /// <summary>Set by REJECT: what the stack should answer with when the verdict is Drop.</summary>
    public RejectWith Reject;
    /// <summary>Why the packet was dropped, when a hook returns Drop.</summary>
    public DropReason DropReason;
    /// <summary>Set by a match that cannot decide (xt_action_param.hotdrop: a malformed header, a full table): the
    /// table walk stops and drops the packet.</summary>
    public bool HotDrop;

    /// <summary>dst_mtu of the packet's route (the output device's MTU) where the stack has routed it (FORWARD,
    /// OUTPUT, POSTROUTING); 0 when unknown. TCPMSS --clamp-mss-to-pmtu reads it.</summary>
    public int OutMtu;
    /// <summary>MTU of the route back to the source address (tcpmss_reverse_mtu); 0 when there is none.</summary>
    public int ReverseMtu;
    /// <summary>skb->ip_summed: how far the transport checksum is done (CHECKSUM_PARTIAL: only the pseudo-header
    /// sum is in the field; the mangling targets and CHECKSUM --checksum-fill follow it).</summary>
    public CsumState IpSummed;
    /// <summary>skb_is_gso: the packet is a GSO super-packet (CHECKSUM leaves those alone).</summary>
    public bool Gso;
    /// <summary>skb->nf_trace, set by TRACE: the tracer follows packets that carry it.</summary>
    public bool Trace;
    /// <summary>The skb's <see cref="Skb.TraceId"/>: the rule walk records each rule this packet hits for the
    /// <see cref="Telemetry.PacketTracer"/> (0: not traced, one compare per rule hit).</summary>
    public int TraceId;
    /// <summary>The CT target's template attached in the raw table (zone, helper, events), which nf_conntrack_in
    /// consumes when it looks the packet up; null when none.</summary>
    public Xtables.CtTarget? CtTemplate;

    // IPv6 (filled by FromIpv6, Ipv6/PacketContext.Ipv6.cs).
    /// <summary>The packet is IPv6 (PacketContext.FromIpv6):
    /// addresses are in <see cref="Src6"/> / <see cref="Dst6"/>, <see cref="Ttl"/> is the hop limit and <see cref="Tos"/>
    /// the traffic class.</summary>
    public bool IsIpv6;
    public UInt128 Src6;
    public UInt128 Dst6;
    /// <summary>ICMPv6 error: the quoted packet's addresses.</summary>
    public UInt128 InnerSrc6;
    public UInt128 InnerDst6;
    /// <summary>Where the upper-layer header starts, from the IPv6 header (after the extension headers).</summary>
    public ushort TransportOffset;
    /// <summary>The packet carries a fragment header (a first fragment too: conntrack sees only reassembled packets).</summary>
    public bool HasFragmentHeader;

    // The IPv4 datagram's linear bytes, attached by NetfilterTables.Hook for the duration of the hook
    // (the caller's span is pinned there; datapath packet memory is pinned pool memory anyway).
    private unsafe byte* _packet;
    private int _packetLength;

    /// <summary>The IPv4 datagram (from the IP header on) for matches that read beyond the parsed fields
    /// (u32, string, length, tcpmss); empty outside a hook or when the caller passed no bytes.</summary>
    public readonly unsafe ReadOnlySpan<byte> Packet => new(_packet, _packetLength);

    /// <summary>The same bytes, writable, for targets that rewrite the packet (TCPMSS, DSCP, TTL...).</summary>
    public readonly unsafe Span<byte> WritablePacket => new(_packet, _packetLength);

    /// <summary>Six address bytes as the 48-bit number <see cref="SrcMac"/> holds.</summary>
    public static ulong MacOf(ReadOnlySpan<byte> mac)
    {
        ulong v = 0;
        for (int i = 0; i < 6; i++) v = v << 8 | mac[i];
        return v;
    }

    /// <summary>The TTL as the header holds it now (after forwarding decremented it), else the parsed one.</summary>
    public readonly byte CurrentTtl => _packetLength > 8 ? Packet[8] : Ttl;

    /// <summary>The TOS byte as the header holds it now, else the parsed one.</summary>
    public readonly byte CurrentTos => _packetLength > 1 ? Packet[1] : Tos;

    internal unsafe void AttachPacket(byte* data, int length)
    {
        _packet = data;
        _packetLength = data == null ? 0 : length;
    }

    /// <summary>True for ICMP types that carry an embedded datagram (dest unreachable, source quench,
    /// redirect, time exceeded, parameter problem).</summary>
    public static bool IsIcmpError(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>GRO (or the NIC) already verified the transport checksum (CHECKSUM_UNNECESSARY): conntrack's
    /// nf_ip_checksum skips it.</summary>
    public bool ChecksumVerified;

    /// <summary>
    /// Fills a context from an IPv4 datagram whose headers are in <paramref name="linear"/> and whose whole length
    /// is <paramref name="length"/> (a GSO skb's payload may continue past the linear bytes), through the header
    /// views. Returns false with a reason for headers too short to read; L4 fields stay zero for non-first fragments.
    /// </summary>
    public static bool FromIpv4(ReadOnlySpan<byte> linear, int length, out PacketContext ctx, out DropReason reason)
    {
        if (Ipv4View.TryParseReceived(linear, length, out var ip, out reason, verifyChecksum: false)) return FromIpv4(ip, out ctx, out reason);
        ctx = default;
        return false;
    }

    /// <summary>Fills a context from an IPv4 header already parsed (see <see cref="Ipv4View.Checked"/>): its fields and
    /// the transport header after it. False with a reason for a transport header too short to read.</summary>
    public static bool FromIpv4(Ipv4View ip, out PacketContext ctx, out DropReason reason)
    {
        ctx = default;
        ctx.TcpWindowScale = -1;
        reason = DropReason.None;
        int total = ip.TotalLength, ihl = ip.HeaderLength;
        ctx.Length = total;
        ctx.Ttl = ip.Ttl;
        ctx.Tos = ip.Tos;
        ctx.IpHeaderLength = (byte)ihl;
        ctx.Protocol = ip.Protocol;
        ctx.Src = ip.SourceAddress;
        ctx.Dst = ip.DestinationAddress;
        ctx.IsFragment = ip.FragmentOffset != 0;
        if (ctx.IsFragment) return true;
        var l4 = ip.Payload;
        switch (ctx.Protocol)
        {
            case IpProtocols.Tcp:
            {
                if (!TcpView.TryParse(l4, out var tcp, out reason))
                {
                    // A header cut short by the linear part of a GSO skb is still a TCP header too short to read.
                    return false;
                }
                ctx.SrcPort = tcp.SourcePort;
                ctx.DstPort = tcp.DestinationPort;
                ctx.TcpSeq = tcp.SequenceNumber;
                ctx.TcpAck = tcp.AckNumber;
                ctx.TcpFlags = (byte)tcp.Flags;
                ctx.TcpWindow = tcp.Window;
                ctx.TcpPayloadLength = total - ihl - tcp.HeaderLength;
                ReadTcpOptions(tcp.Options, ref ctx);
                break;
            }
            case IpProtocols.Udp:
            {
                if (!UdpView.TryParseHeader(l4, out var udp, out reason)) return false;
                ctx.SrcPort = udp.SourcePort;
                ctx.DstPort = udp.DestinationPort;
                break;
            }
            case IpProtocols.Sctp:
                // nf_ct_get_tuple reads the two ports; the tracker checks the rest (sctp_error).
                if (l4.Length >= 4) { ctx.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4); ctx.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]); }
                break;
            case IpProtocols.Icmp:
            {
                if (!IcmpView.TryParse(l4, out var icmp, out reason)) return false;
                ctx.IcmpType = icmp.Type;
                ctx.IcmpCode = icmp.Code;
                ctx.IcmpId = icmp.Identifier;
                if (IsIcmpError(ctx.IcmpType)) ReadInner(l4[8..], ref ctx);
                break;
            }
        }
        reason = DropReason.None;
        return true;
    }

    /// <summary>The tuple of the datagram an ICMP error quotes (its header and the first 8 bytes after it).</summary>
    private static void ReadInner(ReadOnlySpan<byte> inner, ref PacketContext ctx)
    {
        // The quoted datagram is cut after 8 bytes of its transport header: its total length is not checked.
        if (!Ipv4View.TryParseReceived(inner, int.MaxValue, out var ip, out _, verifyChecksum: false)) return;
        var l4 = ip.Payload;
        if (l4.Length < 8) return;
        ctx.InnerProtocol = ip.Protocol;
        ctx.InnerSrc = ip.SourceAddress;
        ctx.InnerDst = ip.DestinationAddress;
        if (ctx.InnerProtocol is IpProtocols.Tcp or IpProtocols.Udp or IpProtocols.Sctp)
        {
            // Each starts with the two ports (nf_ct_get_tuple reads no more of a quoted header), all the first 8 bytes
            // guarantee of a TCP one.
            UdpView.TryParseHeader(l4, out var ports, out _);
            ctx.InnerSrcPort = ports.SourcePort;
            ctx.InnerDstPort = ports.DestinationPort;
        }
        else if (ctx.InnerProtocol == IpProtocols.Icmp && IcmpView.TryParse(l4, out var icmp, out _))
        {
            ctx.InnerIcmpType = icmp.Type;
            ctx.InnerIcmpCode = icmp.Code;
            ctx.InnerIcmpId = icmp.Identifier;
        }
        else return;
        ctx.HasInner = true;
    }

    /// <summary>The options conntrack's window tracking reads (tcp_options / tcp_sack), through the shared
    /// option reader; a malformed option ends the walk, as in the kernel.</summary>
    private static void ReadTcpOptions(ReadOnlySpan<byte> opts, ref PacketContext ctx)
    {
        var r = new TcpOptionReader(opts);
        while (r.MoveNext())
        {
            var d = r.Data;
            switch (r.Kind)
            {
                case TcpOptionKinds.WindowScale when r.Length == 3:
                    ctx.TcpWindowScale = (sbyte)Math.Min((int)d[0], 14);
                    break;
                case TcpOptionKinds.SackPermitted when r.Length == 2:
                    ctx.TcpSackPermitted = true;
                    break;
                case TcpOptionKinds.Sack when r.Length >= 10 && (r.Length - 2) % 8 == 0:
                    for (int b = 0; b + 8 <= d.Length; b += 8)
                    {
                        uint right = BinaryPrimitives.ReadUInt32BigEndian(d[(b + 4)..]);
                        if (!ctx.TcpHasSack || (int)(right - ctx.TcpSackMax) > 0) ctx.TcpSackMax = right;
                        ctx.TcpHasSack = true;
                    }
                    break;
            }
        }
    }
}
