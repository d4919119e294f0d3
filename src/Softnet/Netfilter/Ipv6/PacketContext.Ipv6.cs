using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Netfilter;

/// <summary>The IPv6 half of the packet context: what ip6_tables, IPv6 conntrack and NAT66 read of an IPv6 packet.</summary>
public partial struct PacketContext
{
    /// <summary>ICMPv6 types below 128 are errors (destination unreachable, packet too big, time exceeded, parameter problem).</summary>
    public static bool IsIcmpv6Error(byte type) => type < 128;

    /// <summary>
    /// Fills a context from an IPv6 packet whose headers are in <paramref name="linear"/> (from the IPv6 header on) and
    /// whose whole length is <paramref name="length"/> (a GSO skb's payload may continue past the linear bytes): its
    /// fields, the upper-layer protocol past the extension headers (ipv6_find_hdr), and the transport header after them.
    /// False with a reason for a header too short to read; the L4 fields stay zero for a fragment other than the first.
    /// </summary>
    public static bool FromIpv6(ReadOnlySpan<byte> linear, int length, out PacketContext ctx, out DropReason reason)
    {
        ctx = default;
        ctx.TcpWindowScale = -1;
        ctx.IsIpv6 = true;
        if (linear.Length > length) linear = linear[..length];
        if (!Ipv6View.TryParseHeader(linear, out var ip))
        {
            reason = linear.Length >= Ipv6View.HeaderLength ? DropReason.Ipv6BadVersion : DropReason.Ipv6HeaderTruncated;
            return false;
        }
        int total = Ipv6View.HeaderLength + ip.PayloadLength;
        if (total > length) { reason = DropReason.Ipv6BadPayloadLength; return false; }
        ctx.Length = total;
        ctx.Src6 = Ip6Addr.Read(ip.Source);
        ctx.Dst6 = Ip6Addr.Read(ip.Destination);
        ctx.Ttl = ip.HopLimit;
        ctx.Tos = ip.TrafficClass;
        ctx.IpHeaderLength = Ipv6View.HeaderLength;
        var payload = ip.Payload;
        var ext = new Ipv6ExtensionHeaderReader(payload, ip.NextHeader);
        while (ext.MoveNext())
        {
            if (ext.Type != IpProtocols.Fragment) continue;
            ctx.HasFragmentHeader = true;
            if ((ext.Data[2] << 8 | ext.Data[3] & 0xF8) != 0) ctx.IsFragment = true;
        }
        if (ext.Error != DropReason.None) { reason = ext.Error; return false; }
        ctx.Protocol = ext.NextHeader;
        int off = ext.NextOffset;
        ctx.TransportOffset = (ushort)(Ipv6View.HeaderLength + off);
        reason = DropReason.None;
        if (ctx.IsFragment) return true;
        var l4 = payload[off..];
        switch (ctx.Protocol)
        {
            case IpProtocols.Tcp:
            {
                if (!TcpView.TryParse(l4, out var tcp, out reason)) return false;
                ctx.SrcPort = tcp.SourcePort;
                ctx.DstPort = tcp.DestinationPort;
                ctx.TcpSeq = tcp.SequenceNumber;
                ctx.TcpAck = tcp.AckNumber;
                ctx.TcpFlags = (byte)tcp.Flags;
                ctx.TcpWindow = tcp.Window;
                ctx.TcpPayloadLength = total - ctx.TransportOffset - tcp.HeaderLength;
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
            case IpProtocols.Icmpv6:
            {
                if (!Icmpv6View.TryParse(l4, out var icmp, out reason)) return false;
                ctx.IcmpType = icmp.Type;
                ctx.IcmpCode = icmp.Code;
                ctx.IcmpId = icmp.Identifier;
                if (IsIcmpv6Error(ctx.IcmpType)) ReadInner6(icmp.Payload, ref ctx);
                break;
            }
        }
        reason = DropReason.None;
        return true;
    }

    /// <summary>The tuple of the packet an ICMPv6 error quotes (nf_ct_get_tuplepr past its extension headers).</summary>
    private static void ReadInner6(ReadOnlySpan<byte> inner, ref PacketContext ctx)
    {
        // The quoted packet is cut short: only its fixed header is checked, not its payload length.
        if (!Ipv6View.TryParseHeader(inner, out var ip)) return;
        var ext = new Ipv6ExtensionHeaderReader(inner[Ipv6View.HeaderLength..], ip.NextHeader);
        bool nonFirst = false;
        while (ext.MoveNext())
            if (ext.Type == IpProtocols.Fragment && (ext.Data[2] << 8 | ext.Data[3] & 0xF8) != 0) nonFirst = true;
        if (ext.Error != DropReason.None || nonFirst) return;
        var l4 = inner[(Ipv6View.HeaderLength + ext.NextOffset)..];
        byte proto = ext.NextHeader;
        ctx.InnerProtocol = proto;
        ctx.InnerSrc6 = Ip6Addr.Read(ip.Source);
        ctx.InnerDst6 = Ip6Addr.Read(ip.Destination);
        if (proto is IpProtocols.Tcp or IpProtocols.Udp or 132 or 136)
        {
            if (l4.Length < 4) return;
            ctx.InnerSrcPort = (ushort)(l4[0] << 8 | l4[1]);
            ctx.InnerDstPort = (ushort)(l4[2] << 8 | l4[3]);
        }
        else if (proto == IpProtocols.Icmpv6)
        {
            if (!Icmpv6View.TryParse(l4, out var icmp, out _)) return;
            ctx.InnerIcmpType = icmp.Type;
            ctx.InnerIcmpCode = icmp.Code;
            ctx.InnerIcmpId = icmp.Identifier;
        }
        ctx.HasInner = true;
    }
}
