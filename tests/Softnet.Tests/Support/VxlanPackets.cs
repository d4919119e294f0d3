using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.Tests.Support;

/// <summary>VXLAN packets (RFC 7348) as a tunnel endpoint puts them on the wire: outer IPv4 / UDP / VXLAN header around
/// an inner Ethernet frame. Shared by the unit tests, the kernel comparisons and the bench (linked files), so every one
/// of them builds the same outer headers.</summary>
internal static class VxlanPackets
{
    /// <summary>Outer Ethernet, IPv4 (no options), UDP and VXLAN headers before the inner frame.</summary>
    public const int Overhead = 14 + 20 + 8 + 8;

    /// <summary>The VXLAN flags word with only I set (the VNI is valid).</summary>
    public const uint FlagI = 0x0800_0000;

    /// <summary>
    /// The outer IPv4 datagram: UDP <paramref name="sport"/> → <paramref name="dport"/>, VXLAN <paramref name="flags"/>
    /// and <paramref name="vni"/>, then <paramref name="inner"/>. The UDP checksum is 0 (as vxlan devices send by
    /// default) unless <paramref name="udpChecksum"/>, when it is filled in and then XORed with <paramref name="checksumXor"/>
    /// (non-zero: a wrong checksum). DF only if asked: a tunnel's outer header has none by default.
    /// </summary>
    public static byte[] Datagram(ReadOnlySpan<byte> inner, byte[] src, byte[] dst, uint vni = 1, ushort sport = 45000,
        ushort dport = 8472, uint flags = FlagI, ushort id = 0, bool df = false, byte ttl = 64, byte tos = 0,
        bool udpChecksum = false, ushort checksumXor = 0)
    {
        var b = new byte[20 + 8 + 8 + inner.Length];
        var ip = b.AsSpan(0, 20);
        ip[0] = 0x45;
        ip[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)b.Length);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)(df ? 0x4000 : 0));
        ip[8] = ttl;
        ip[9] = 17;
        src.CopyTo(ip[12..]);
        dst.CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip));
        var udp = b.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(udp, sport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)udp.Length);
        BinaryPrimitives.WriteUInt32BigEndian(udp[8..], flags);
        BinaryPrimitives.WriteUInt32BigEndian(udp[12..], vni << 8);
        inner.CopyTo(udp[16..]);
        if (udpChecksum)
        {
            ushort c = Checksum.Compute(udp, Checksum.PseudoHeaderV4(src, dst, 17, udp.Length));
            if (c == 0) c = 0xFFFF;
            BinaryPrimitives.WriteUInt16BigEndian(udp[6..], (ushort)(c ^ checksumXor));
        }
        return b;
    }

    /// <summary><paramref name="datagram"/> (IPv4) in an Ethernet frame <paramref name="smac"/> → <paramref name="dmac"/>.</summary>
    public static byte[] Frame(byte[] dmac, byte[] smac, byte[] datagram)
    {
        var f = new byte[14 + datagram.Length];
        dmac.CopyTo(f, 0);
        smac.CopyTo(f, 6);
        f[12] = 0x08;
        datagram.CopyTo(f, 14);
        return f;
    }
}
