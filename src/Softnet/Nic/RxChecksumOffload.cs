using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Nic;

/// <summary>
/// The NIC's receive checksum offload (ethtool -K DEV rx on, NETIF_F_RXCSUM), as ice's hardware and ice_rx_csum
/// (drivers/net/ethernet/intel/ice/ice_txrx_lib.c, the version that reports CHECKSUM_UNNECESSARY for TCP, UDP and
/// SCTP) treat a frame: the port checks the IPv4 header checksum of every IPv4 packet and the TCP or UDP checksum of
/// an unfragmented segment, and writes the result into the descriptor (L3L4P with the IPE and L4E error bits). The
/// driver then marks a clean TCP or UDP frame CHECKSUM_UNNECESSARY (csum_level 0), so GRO and the stack sum nothing,
/// and counts a failed one (hw_csum_rx_error, ethtool's rx_csum_bad.nic) and leaves it CHECKSUM_NONE for the stack to
/// verify and drop. Everything else arrives CHECKSUM_NONE and uncounted, and the stack checks it as it would anyway:
/// fragments, ICMP and other protocols. Where ice goes further, the model stops short, on purpose and with the same
/// outcome for every packet (only rx_csum_bad.nic misses their failures): SCTP (ice checks its CRC32c); IPv6 with
/// extension headers (ice checks most of them, and counts IPV6EXADD ones as failures); and the inner checksum of a
/// UDP tunnel, which ice checks (csum_level 1) for the ports the vxlan or geneve driver programs into it: the port
/// does not model that programming, so tunnelled frames look like plain UDP to it and their inner checksum is
/// verified by GRO or the stack.
/// </summary>
public static class RxChecksumOffload
{
    /// <summary>The descriptor status bits for <paramref name="frame"/> (an Ethernet frame as it came off the wire):
    /// 0, or <see cref="RxDescriptor.L3L4Processed"/> with <see cref="RxDescriptor.IpChecksumError"/> or
    /// <see cref="RxDescriptor.L4ChecksumError"/> when a check failed.</summary>
    public static unsafe int Status(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < EthernetView.HeaderLength) return 0;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(12));
        int off = EthernetView.HeaderLength;
        if (!VlanStackView.TrySkip(frame, ref off, ref type, out _)) return 0;
        fixed (byte* f = frame)
        {
            return type switch
            {
                EtherTypes.Ipv4 => Ipv4(f + off, frame.Length - off),
                EtherTypes.Ipv6 => Ipv6(f + off, frame.Length - off),
                _ => 0,
            };
        }
    }

    /// <summary>The status of an IPv4 packet at <paramref name="ip"/>, <paramref name="length"/> bytes to the frame's end
    /// (the port's parser calls it directly for an untagged IPv4 frame).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe int Ipv4(byte* ip, int length)
    {
        if (length < 20 || ip[0] >> 4 != 4) return 0;
        int ihl = (ip[0] & 0x0F) * 4;
        int total = Be16(ip + 2);
        // A header whose lengths do not fit the frame is not one the parser can check.
        if (ihl < 20 || total < ihl || total > length) return 0;
        // The sums are taken over native-order words and folded once: a check needs no byte swaps (see SumNativeUnfolded).
        bool headerOk = ihl == 20 ? Checksum.Ipv4HeaderOk(ip) : Checksum.Fold64(Checksum.SumNativeUnfolded(ip, ihl)) == 0xFFFF;
        if (!headerOk) return RxDescriptor.L3L4Processed | RxDescriptor.IpChecksumError;
        // Only an unfragmented TCP or UDP segment has a transport checksum the port checks.
        byte proto = ip[9];
        if ((Be16(ip + 6) & 0x3FFF) != 0 || proto is not (IpProtocols.Tcp or IpProtocols.Udp)) return 0;
        byte* l4 = ip + ihl;
        int l4Length = total - ihl;
        if (!L4Fits(l4, l4Length, proto)) return 0;
        // A UDP datagram sent without a checksum has nothing to check (udp4_csum_init accepts it as it is).
        if (proto == IpProtocols.Udp && Be16(l4 + 6) == 0) return RxDescriptor.L3L4Processed;
        // The pseudo-header: both addresses, then the words (0, protocol) and (length) as they would lie in memory.
        ulong pseudo = (ulong)U32(ip + 12) + U32(ip + 16) + Native16(proto) + Native16((ushort)l4Length);
        return L4(pseudo, l4, l4Length);
    }

    private static unsafe int Ipv6(byte* ip, int length)
    {
        if (length < 40 || ip[0] >> 4 != 6) return 0;
        int payload = Be16(ip + 4);
        byte next = ip[6];
        // Jumbograms (payload length 0) and extension headers are not parsed by the port.
        if (payload == 0 || 40 + payload > length || next is not (IpProtocols.Tcp or IpProtocols.Udp)) return 0;
        byte* l4 = ip + 40;
        if (!L4Fits(l4, payload, next)) return 0;
        // IPv6 UDP must carry a checksum; a zero one is for the stack to refuse (or a socket's no_check6_rx to accept).
        if (next == IpProtocols.Udp && Be16(l4 + 6) == 0) return 0;
        ulong pseudo = (ulong)Native16(next) + Native16((ushort)payload);
        for (int i = 8; i < 40; i += 4) pseudo += U32(ip + i);
        return L4(pseudo, l4, payload);
    }

    /// <summary>The transport header is whole, and a UDP header's length is the datagram's: a datagram padded or cut
    /// inside its IP packet is the stack's to judge (udp_rcv trims or drops it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe bool L4Fits(byte* l4, int length, byte proto)
        => proto == IpProtocols.Tcp ? length >= 20 : length >= 8 && Be16(l4 + 4) == length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe int L4(ulong pseudo, byte* l4, int length)
        => Checksum.Fold64(pseudo + Checksum.SumNativeUnfolded(l4, length)) == 0xFFFF
            ? RxDescriptor.L3L4Processed
            : RxDescriptor.L3L4Processed | RxDescriptor.L4ChecksumError;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe ushort Be16(byte* p) => Native16(Unsafe.ReadUnaligned<ushort>(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe uint U32(byte* p) => Unsafe.ReadUnaligned<uint>(p);

    /// <summary>A network-order 16-bit word as the native-order read of its two bytes gives it (and back).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ushort Native16(ushort value) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(value) : value;
}
