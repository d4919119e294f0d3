using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Ip;

/// <summary>Builds the packets the stack originates: ARP, ICMP errors, TCP resets, Ethernet framing.</summary>
public static class PacketFactory
{

    /// <summary>arp_create: a 42-byte ARP frame (no padding: veth and bridges do not pad, tcpdump sees 42 bytes).</summary>
    public static byte[] Arp(ushort op, ReadOnlySpan<byte> ethDst, ReadOnlySpan<byte> ethSrc,
        ReadOnlySpan<byte> sha, uint sip, ReadOnlySpan<byte> tha, uint tip)
    {
        var f = new byte[ArpFrameLength];
        WriteArp(f, op, ethDst, ethSrc, sha, sip, tha, tip);
        return f;
    }

    public const int ArpFrameLength = 42;

    /// <summary><see cref="Arp"/> written in place (into an skb's data).</summary>
    public static void WriteArp(Span<byte> f, ushort op, ReadOnlySpan<byte> ethDst, ReadOnlySpan<byte> ethSrc,
        ReadOnlySpan<byte> sha, uint sip, ReadOnlySpan<byte> tha, uint tip)
    {
        EthernetView.Write(f, EthernetView.ReadMac(ethDst), EthernetView.ReadMac(ethSrc), EtherTypes.Arp);
        ArpView.WriteEthernetIpv4(f[EthernetView.HeaderLength..], op, EthernetView.ReadMac(sha), sip, tha.IsEmpty ? 0 : EthernetView.ReadMac(tha), tip);
    }

    /// <summary>Writes a 20-byte IPv4 header (no options) with its checksum.</summary>
    public static void Ipv4Header(Span<byte> h, byte tos, int totalLength, ushort id, bool df, byte ttl, byte protocol, uint src, uint dst)
    {
        h[0] = 0x45;
        h[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(h[6..], df ? (ushort)0x4000 : (ushort)0);
        h[8] = ttl;
        h[9] = protocol;
        h[10] = h[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(h[12..], src);
        BinaryPrimitives.WriteUInt32BigEndian(h[16..], dst);
        BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.Compute(h[..20]));
    }

    /// <summary>
    /// __icmp_send's packet: IPv4 (TOS = original's TOS bits | 0xC0, no DF, TTL ip_default_ttl, IP ID
    /// <paramref name="ipId"/> — the kernel's is randomly keyed, comparisons must ignore it) + ICMP header
    /// with <paramref name="info"/> in the second word + as much of <paramref name="original"/> as fits in 576 bytes.
    /// </summary>
    public static byte[] IcmpError(ReadOnlySpan<byte> original, byte type, byte code, uint info, uint src, uint dst, byte ttl, int routeMtu, ushort ipId = 0)
    {
        var p = new byte[IcmpErrorLength(original.Length, routeMtu)];
        WriteIcmpError(p, original, type, code, info, src, dst, ttl, ipId);
        return p;
    }

    /// <summary>The length of the error about a datagram of <paramref name="originalLength"/> bytes: headers plus as
    /// much of it as fits in 576 bytes (or the route's MTU, if smaller).</summary>
    public static int IcmpErrorLength(int originalLength, int routeMtu)
        => 28 + Math.Min(originalLength, Math.Min(routeMtu, 576) - 20 - 8);

    /// <summary><see cref="IcmpErrorLength(int, int)"/> for an error carrying <paramref name="optlen"/> bytes of IP
    /// options (__icmp_send takes them off the room for the quote); 0 when no room is left for a quoted header.</summary>
    public static int IcmpErrorLength(int originalLength, int routeMtu, int optlen)
    {
        int room = Math.Min(routeMtu, 576) - 20 - optlen - 8;
        return room <= 20 ? 0 : 28 + optlen + Math.Min(originalLength, room);
    }

    /// <summary>An IPv4 header of 20 + <paramref name="opt"/>.OptLen bytes: <see cref="Ipv4Header"/>'s fields and the
    /// answer's options as ip_options_build writes them (<paramref name="realDst"/> ends a source route; our
    /// <paramref name="src"/> and <paramref name="now"/> fill record route and timestamp); checksum over it all.</summary>
    public static void Ipv4HeaderWithOptions(Span<byte> h, byte tos, int totalLength, ushort id, bool df, byte ttl, byte protocol,
        uint src, uint dst, in Ip.IpOptions opt, ReadOnlySpan<byte> optData, uint realDst, uint now)
    {
        Ipv4Header(h, tos, totalLength, id, df, ttl, protocol, src, dst);
        if (opt.OptLen == 0) return;
        int hl = 20 + opt.OptLen;
        h[0] = (byte)(0x40 | (hl >> 2));
        Ip.Ipv4Options.Build(h[..hl], opt, optData, realDst, src, now);
        h[10] = h[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(h[10..], Checksum.Compute(h[..hl]));
    }

    /// <summary><see cref="WriteIcmpError(Span{byte}, ReadOnlySpan{byte}, byte, byte, uint, uint, uint, byte, ushort)"/>
    /// with the options __icmp_send echoes (<paramref name="opt"/>, built into the header; the IP destination is the
    /// reversed source route's first hop when there is one, <paramref name="realDst"/> ends that route).</summary>
    public static void WriteIcmpError(Span<byte> p, ReadOnlySpan<byte> original, byte type, byte code, uint info, uint src, uint dst, byte ttl, ushort ipId,
        in Ip.IpOptions opt, ReadOnlySpan<byte> optData, uint realDst, uint now)
    {
        int hl = 20 + opt.OptLen;
        int data = p.Length - hl - 8;
        byte tos = (byte)((original[1] & 0x1E) | 0xC0);
        Ipv4HeaderWithOptions(p, tos, p.Length, ipId, false, ttl, IpProtocols.Icmp, src, dst, opt, optData, realDst, now);
        var icmp = p[hl..];
        icmp[0] = type;
        icmp[1] = code;
        icmp[2] = icmp[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], info);
        original[..data].CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
    }

    /// <summary><see cref="IcmpError"/> written in place; <paramref name="p"/> is <see cref="IcmpErrorLength"/> long.</summary>
    public static void WriteIcmpError(Span<byte> p, ReadOnlySpan<byte> original, byte type, byte code, uint info, uint src, uint dst, byte ttl, ushort ipId)
    {
        int data = p.Length - 28;
        byte tos = (byte)((original[1] & 0x1E) | 0xC0);
        Ipv4Header(p, tos, p.Length, ipId, false, ttl, IpProtocols.Icmp, src, dst);
        var icmp = p[20..];
        icmp[0] = type;
        icmp[1] = code;
        icmp[2] = icmp[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], info);
        original[..data].CopyTo(icmp[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
    }

    /// <summary>
    /// nf_send_reset: a 40-byte RST answering the TCP segment in <paramref name="original"/>. IP ID 0, DF,
    /// TTL <paramref name="ttl"/>; with ACK set in the original, seq = its ack and only RST; otherwise seq 0,
    /// ack = seq + SYN + FIN + payload length, RST|ACK. Window 0. The TCP checksum is complete here; the kernel
    /// leaves it CHECKSUM_PARTIAL and a veth with tx offload on transmits the pseudo-header sum only.
    /// </summary>
    public static byte[]? TcpReset(ReadOnlySpan<byte> original, byte ttl)
    {
        var p = new byte[TcpResetLength];
        return WriteTcpReset(p, original, ttl) ? p : null;
    }

    public const int TcpResetLength = 40;

    /// <summary><see cref="TcpReset"/> written in place into 40 bytes; false when no reset is due (not TCP, or a RST).</summary>
    public static bool WriteTcpReset(Span<byte> p, ReadOnlySpan<byte> original, byte ttl)
    {
        if (!Ipv4View.TryParse(original, out var ip, out _) || !TcpView.TryParse(ip.Payload, out var oth, out _)) return false;
        var flags = oth.Flags;
        if ((flags & TcpFlags.Rst) != 0) return false;
        p.Clear();
        Ipv4Header(p, 0, 40, 0, true, ttl, IpProtocols.Tcp, ip.DestinationAddress, ip.SourceAddress);
        var t = p[20..];
        BinaryPrimitives.WriteUInt16BigEndian(t, oth.DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], oth.SourcePort);
        byte outFlags = (byte)TcpFlags.Rst;
        if ((flags & TcpFlags.Ack) != 0)
        {
            BinaryPrimitives.WriteUInt32BigEndian(t[4..], oth.AckNumber);
        }
        else
        {
            int payload = ip.Payload.Length - oth.HeaderLength;
            uint ack = oth.SequenceNumber + ((flags & TcpFlags.Syn) != 0 ? 1u : 0u) + ((flags & TcpFlags.Fin) != 0 ? 1u : 0u) + (uint)payload;
            BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
            outFlags |= (byte)TcpFlags.Ack;
        }
        t[12] = 5 << 4;
        t[13] = outFlags;
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(p.Slice(12, 4), p.Slice(16, 4), IpProtocols.Tcp, 20)));
        return true;
    }

    /// <summary>nf_ip_checksum as REJECT uses it: is the transport checksum of this unfragmented datagram right?
    /// Protocols without a checksum Softnet knows (and UDP with checksum 0) count as right.</summary>
    public static bool TransportChecksumOk(ReadOnlySpan<byte> datagram)
    {
        if (!Ipv4View.TryParse(datagram, out var ip, out _)) return false;
        var l4 = ip.Payload;
        uint pseudo = Checksum.PseudoHeaderV4(ip.Source, ip.Destination, ip.Protocol, l4.Length);
        switch (ip.Protocol)
        {
            case IpProtocols.Tcp:
                return TcpView.TryParse(l4, out var tcp, out _) && tcp.VerifyChecksum(pseudo);
            case IpProtocols.Udp:
                return UdpView.TryParseHeader(l4, out var udp, out _) && (udp.Checksum == 0 || Checksum.Verify(l4, pseudo));
            case IpProtocols.Icmp:
                return IcmpView.TryParse(l4, out var icmp, out _) && icmp.VerifyChecksum();
            default:
                return true;
        }
    }

    /// <summary>ip_decrease_ttl: TTL - 1 with the kernel's incremental checksum update (bit-exact with it).</summary>
    public static void DecreaseTtl(Span<byte> ip)
    {
        uint check = BinaryPrimitives.ReadUInt16LittleEndian(ip[10..]);
        // The kernel adds htons(0x0100) to the raw (network-order) checksum word, read here as little-endian like x86 does.
        check += 0x0001;
        check += check >= 0xFFFF ? 1u : 0u;
        BinaryPrimitives.WriteUInt16LittleEndian(ip[10..], (ushort)check);
        ip[8]--;
    }
}
