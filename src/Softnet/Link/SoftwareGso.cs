using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// Software GSO at transmit for a device without TSO (validate_xmit_skb → skb_gso_segment → inet_gso_segment /
/// ipv6_gso_segment → tcp_gso_segment): a GRO-built TCP skb leaves as the MSS-sized frames it was made of. Each segment
/// gets the headers with its own lengths, IPv4 ID (+1 per segment unless SKB_GSO_TCP_FIXEDID) and header checksum,
/// its sequence number, FIN and PSH only on the last segment and CWR only on the first, and a full TCP checksum
/// (the device does no checksum offload either: skb_checksum_help). Frames are built one at a time in a per-thread
/// buffer and handed to <see cref="IDeviceWire.Send"/>, which copies them.
/// </summary>
public static class SoftwareGso
{
    [ThreadStatic] private static byte[]? t_frame;

    /// <summary>Whether <paramref name="skb"/> must be segmented or have its checksum completed before a device
    /// without offloads sends it.</summary>
    public static bool Needed(Skb skb) => skb.IsGso || skb.IpSummed == CsumState.Partial;

    /// <summary>
    /// Sends <paramref name="skb"/> (data at its Ethernet header) as its segments. Returns why it could not, or
    /// <see cref="DropReason.None"/>: a layout this does not segment (not Ethernet / IPv4 or IPv6 / TCP, IPv6 extension
    /// headers, headers not linear) is <see cref="DropReason.NotSpecified"/>, a segment the wire refuses
    /// <see cref="DropReason.TxRingFull"/> (the segments before it have left, as with a real qdisc).
    /// </summary>
    public static DropReason Transmit(Skb skb, IDeviceWire wire)
    {
        var linear = skb.LinearData;
        if (linear.Length < 14 + 20) return DropReason.NotSpecified;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(linear[12..]);
        int l3 = 14, ipLen;
        // skb_udp_tunnel_segment: a UDP tunnel aggregate (VXLAN GRO forwarded on) is cut by its inner TCP, each
        // segment under a copy of the outer IPv4/UDP/tunnel headers with its own lengths, ID and checksums.
        int outerUdp = 0;
        if (skb.Encapsulation && (skb.GsoType & GsoType.EncapAll) != 0)
        {
            if (type != EtherTypes.Ipv4 || linear[14 + 9] != IpProtocols.Udp) return DropReason.NotSpecified;
            outerUdp = 14 + (linear[14] & 0x0F) * 4;
            l3 = skb.InnerNetworkHeader - skb.Data;
            type = skb.InnerProtocol;
            if (l3 < outerUdp + 8 || l3 > linear.Length - 20) return DropReason.NotSpecified;
        }
        bool v4;
        if (type == EtherTypes.Ipv4)
        {
            v4 = true;
            ipLen = (linear[l3] & 0x0F) * 4;
            if (ipLen < 20 || linear[l3 + 9] != IpProtocols.Tcp) return DropReason.NotSpecified;
        }
        else if (type == EtherTypes.Ipv6)
        {
            v4 = false;
            ipLen = 40;
            if (linear.Length < l3 + 40 || linear[l3 + 6] != IpProtocols.Tcp) return DropReason.NotSpecified;
        }
        else return DropReason.NotSpecified;
        int l4 = l3 + ipLen;
        if (linear.Length < l4 + 20) return DropReason.NotSpecified;
        int tcpLen = (linear[l4 + 12] >> 4) * 4;
        int hdr = l4 + tcpLen;
        if (tcpLen < 20 || linear.Length < hdr) return DropReason.NotSpecified;
        int payload = skb.Len - hdr;
        int mss = skb.IsGso ? skb.GsoSize : Math.Max(payload, 1);
        if (payload < 0 || mss <= 0) return DropReason.NotSpecified;

        var frame = t_frame ??= new byte[14 + 60 + 60 + 65536];
        if (hdr + mss > frame.Length) return DropReason.NotSpecified;
        var headers = linear[..hdr];
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(headers[(l4 + 4)..]);
        ushort id = v4 ? BinaryPrimitives.ReadUInt16BigEndian(headers[(l3 + 4)..]) : (ushort)0;
        // With a tunnel, SKB_GSO_TCP_FIXEDID speaks of the outer header and the _INNER bit of the inner one.
        bool fixedId = (skb.GsoType & (outerUdp != 0 ? GsoType.TcpFixedIdInner : GsoType.TcpFixedId)) != 0;
        bool outerFixedId = (skb.GsoType & GsoType.TcpFixedId) != 0;
        ushort outerId = outerUdp != 0 ? BinaryPrimitives.ReadUInt16BigEndian(headers[(14 + 4)..]) : (ushort)0;
        byte flags = headers[l4 + 13];
        int segments = payload == 0 ? 1 : (payload + mss - 1) / mss;
        for (int i = 0; i < segments; i++)
        {
            int off = i * mss;
            int len = Math.Min(mss, payload - off);
            var f = frame.AsSpan(0, hdr + len);
            headers.CopyTo(f);
            if (len > 0 && !skb.CopyBits(hdr + off, f[hdr..])) return DropReason.NotSpecified;
            var ip = f[l3..];
            if (v4)
            {
                BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ipLen + tcpLen + len));
                BinaryPrimitives.WriteUInt16BigEndian(ip[4..], fixedId ? id : (ushort)(id + i));
                ip[10] = 0;
                ip[11] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..ipLen]));
            }
            else BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(tcpLen + len));
            var tcp = f[l4..];
            BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], seq + (uint)off);
            byte fl = flags;
            if (i < segments - 1) fl &= unchecked((byte)~(0x01 | 0x08)); // FIN, PSH: the last segment's
            if (i > 0) fl &= unchecked((byte)~0x80);                      // CWR: the first segment's
            tcp[13] = fl;
            tcp[16] = 0;
            tcp[17] = 0;
            int l4Len = tcpLen + len;
            uint pseudo = v4
                ? Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), IpProtocols.Tcp, l4Len)
                : Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), IpProtocols.Tcp, l4Len);
            BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Compute(tcp[..l4Len], pseudo));
            if (outerUdp != 0) FinishOuter(f, outerUdp, outerFixedId ? outerId : (ushort)(outerId + i), (skb.GsoType & GsoType.UdpTunnelCsum) != 0);
            if (!wire.Send(f)) return DropReason.TxRingFull;
        }
        return DropReason.None;
    }

    /// <summary>The outer IPv4 and UDP headers of one tunnel segment: lengths, ID, header checksum, and the UDP
    /// checksum when the tunnel has one (SKB_GSO_UDP_TUNNEL_CSUM; a computed 0 is sent as 0xFFFF).</summary>
    private static void FinishOuter(Span<byte> f, int udpOffset, ushort id, bool udpCsum)
    {
        var ip = f[14..];
        int ipLen = udpOffset - 14;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(f.Length - 14));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
        ip[10] = 0;
        ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..ipLen]));
        var udp = f[udpOffset..];
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        udp[6] = 0;
        udp[7] = 0;
        if (!udpCsum) return;
        ushort c = Checksum.Compute(udp, Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), IpProtocols.Udp, udp.Length));
        BinaryPrimitives.WriteUInt16BigEndian(udp[6..], c == 0 ? (ushort)0xFFFF : c);
    }
}
