using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Nic;

/// <summary>
/// How a frame longer than the MTU allows gets in: captures taken on a Linux host hold what the stack held, and
/// tcpdump on a device doing GRO (or on a sender doing TSO) sees TCP packets of up to 64 KB. Such a frame is not
/// something a wire delivers, so the port treats it as what a NIC with hardware GRO (NETIF_F_GRO_HW: bnxt's TPA,
/// mlx5's SHAMPO) hands the driver: one completion spanning many buffers, plus the aggregate's segment size and
/// count. The driver then builds a GSO skb of it (gso_size, gso_segs, SKB_GSO_TCPV4/6, CHECKSUM_PARTIAL, as
/// those drivers do through tcp_gro_complete), and software GRO treats it the way dev_gro_receive treats a GSO
/// skb: NAPI_GRO_CB(skb)->count = gso_segs, merged only with segments of the same gso_size.
/// <para>The segment size is the MSS a sender on this MTU uses (tcp_mtu_to_mss: the MTU less the IP header and
/// the TCP header with its options, which every segment of the aggregate carried alike): the payload is whole
/// segments of that size and a shorter last one, as GRO built it. Only TCP over IPv4 (not fragmented) or IPv6
/// (TCP right after the fixed header) with lengths that agree with the frame qualifies; any other long frame is
/// an oversize frame and dropped (rx_oversize, counted in rx_length_errors).</para>
/// </summary>
public static class TcpAggregate
{
    /// <summary>The aggregate's GSO fields when <paramref name="frame"/> is a TCP packet longer than
    /// <paramref name="mtu"/> allows; false for anything else.</summary>
    public static bool TryParse(ReadOnlySpan<byte> frame, int mtu, out RxAggregate aggregate)
    {
        aggregate = default;
        if (frame.Length > NicOptions.MaxAggregateFrame) return false;
        if (!VlanStackView.TryParse(frame, out var tags, out _) || tags.Count > 2) return false;
        int off = tags.PayloadOffset;
        var l3 = frame[off..];
        int ipLen;
        GsoType gso;
        ReadOnlySpan<byte> segment;
        if (tags.InnerEtherType == EtherTypes.Ipv4)
        {
            if (!Ipv4View.TryParse(l3, out var ip, out _) || ip.Protocol != IpProtocols.Tcp) return false;
            if (ip.TotalLength != l3.Length || ip.IsFragment) return false; // MF or an offset
            ipLen = ip.HeaderLength;
            segment = ip.Payload;
            gso = GsoType.TcpV4;
        }
        else if (tags.InnerEtherType == EtherTypes.Ipv6)
        {
            if (!Ipv6View.TryParse(l3, out var ip, out _) || ip.NextHeader != IpProtocols.Tcp) return false;
            if (ip.PayloadLength != l3.Length - Ipv6View.HeaderLength) return false;
            ipLen = Ipv6View.HeaderLength;
            segment = ip.Payload;
            gso = GsoType.TcpV6;
        }
        else return false;

        if (!TcpView.TryParse(segment, out var tcp, out _)) return false;
        int l4 = off + ipLen;
        int thLen = tcp.HeaderLength;
        int payload = tcp.Payload.Length;
        int mss = mtu - ipLen - thLen;
        if (mss <= 0 || payload <= mss) return false;
        int segs = (payload + mss - 1) / mss;
        if (tcp.Cwr) gso |= GsoType.TcpEcn; // tcp_gro_complete: CWR marks an ECN aggregate
        aggregate = new RxAggregate(mss, (ushort)segs, (ushort)l4, gso);
        return true;
    }

    /// <summary>VLAN tags (802.1Q / 802.1ad) at the front of an Ethernet frame, at most two.</summary>
    public static int VlanTags(ReadOnlySpan<byte> frame)
        => VlanStackView.TryParse(frame, out var tags, out _) ? Math.Min(tags.Count, 2) : 0;
}
