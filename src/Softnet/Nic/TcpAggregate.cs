using System.Buffers.Binary;
using Softnet.Packets;

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
        if (frame.Length > NicOptions.MaxAggregateFrame || frame.Length < NicOptions.EthHlen) return false;
        int off = NicOptions.EthHlen;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        for (int tags = 0; (type == 0x8100 || type == 0x88A8) && tags < 2; tags++)
        {
            if (frame.Length < off + 4) return false;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(off + 2));
            off += 4;
        }
        int ipLen;
        GsoType gso;
        if (type == 0x0800)
        {
            if (frame.Length < off + 20 || (frame[off] >> 4) != 4) return false;
            ipLen = (frame[off] & 0x0F) * 4;
            if (ipLen < 20 || frame.Length < off + ipLen || frame[off + 9] != 6) return false;
            if (BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(off + 2)) != frame.Length - off) return false;
            if ((BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(off + 6)) & 0x3FFF) != 0) return false; // MF or an offset
            gso = GsoType.TcpV4;
        }
        else if (type == 0x86DD)
        {
            if (frame.Length < off + 40 || (frame[off] >> 4) != 6 || frame[off + 6] != 6) return false;
            ipLen = 40;
            if (BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(off + 4)) != frame.Length - off - 40) return false;
            gso = GsoType.TcpV6;
        }
        else return false;

        int l4 = off + ipLen;
        if (frame.Length < l4 + 20) return false;
        int thLen = (frame[l4 + 12] >> 4) * 4;
        if (thLen < 20 || frame.Length < l4 + thLen) return false;
        int payload = frame.Length - l4 - thLen;
        int mss = mtu - ipLen - thLen;
        if (mss <= 0 || payload <= mss) return false;
        int segs = (payload + mss - 1) / mss;
        if ((frame[l4 + 13] & 0x80) != 0) gso |= GsoType.TcpEcn; // tcp_gro_complete: CWR marks an ECN aggregate
        aggregate = new RxAggregate(mss, (ushort)segs, (ushort)l4, gso);
        return true;
    }

    /// <summary>VLAN tags (802.1Q / 802.1ad) at the front of an Ethernet frame, at most two.</summary>
    public static int VlanTags(ReadOnlySpan<byte> frame)
    {
        int tags = 0;
        int at = 12;
        while (tags < 2 && frame.Length >= at + 4)
        {
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(at));
            if (type != 0x8100 && type != 0x88A8) break;
            tags++;
            at += 4;
        }
        return tags;
    }
}
