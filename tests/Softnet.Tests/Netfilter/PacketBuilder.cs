using System.Buffers.Binary;
using Softnet.Netfilter;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Netfilter;

/// <summary>Builds IPv4 datagrams with valid checksums for netfilter tests.</summary>
internal static class PacketBuilder
{
    public static uint A(string s) => Ipv4.Parse(s);

    internal static byte[] Ip(uint src, uint dst, byte proto, int l4Len)
    {
        var b = new byte[20 + l4Len];
        b[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)b.Length);
        b[8] = 64;
        b[9] = proto;
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), dst);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum.Compute(b.AsSpan(0, 20)));
        return b;
    }

    public static byte[] Tcp(string src, ushort sport, string dst, ushort dport, byte flags, uint seq = 1000, uint ack = 0, int payload = 0, ushort window = 65535)
    {
        var b = Ip(A(src), A(dst), 6, 20 + payload);
        var t = b.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], window);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)('0' + i % 10);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(b.AsSpan(12, 4), b.AsSpan(16, 4), 6, t.Length)));
        return b;
    }

    public static byte[] Udp(string src, ushort sport, string dst, ushort dport, int payload = 8)
    {
        var b = Ip(A(src), A(dst), 17, 8 + payload);
        var u = b.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(u[4..], (ushort)u.Length);
        ushort c = Checksum.Compute(u, Checksum.PseudoHeaderV4(b.AsSpan(12, 4), b.AsSpan(16, 4), 17, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], c == 0 ? (ushort)0xFFFF : c);
        return b;
    }

    public static byte[] Icmp(string src, string dst, byte type, byte code, ushort id, ReadOnlySpan<byte> body = default)
    {
        var b = Ip(A(src), A(dst), 1, 8 + body.Length);
        var h = b.AsSpan(20);
        h[0] = type;
        h[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], id);
        body.CopyTo(h[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], Checksum.Compute(h));
        return b;
    }

    public static PacketContext Ctx(byte[] packet, long timeNs = 0, string? inIf = null, string? outIf = null)
    {
        Assert.True(PacketContext.FromIpv4(packet, packet.Length, out var ctx, out _));
        ctx.TimestampNs = timeNs;
        ctx.InInterface = inIf;
        ctx.OutInterface = outIf;
        return ctx;
    }

    /// <summary>Verifies the IP header checksum and the TCP/UDP/ICMP checksum of a datagram.</summary>
    public static void AssertChecksumsValid(byte[] b)
    {
        Assert.True(Checksum.Verify(b.AsSpan(0, 20)), "IP header checksum");
        var l4 = b.AsSpan(20);
        switch (b[9])
        {
            case 6: Assert.True(Checksum.Verify(l4, Checksum.PseudoHeaderV4(b.AsSpan(12, 4), b.AsSpan(16, 4), 6, l4.Length)), "TCP checksum"); break;
            case 17: Assert.True(Checksum.Verify(l4, Checksum.PseudoHeaderV4(b.AsSpan(12, 4), b.AsSpan(16, 4), 17, l4.Length)), "UDP checksum"); break;
            case 1: Assert.True(Checksum.Verify(l4), "ICMP checksum"); break;
        }
    }
}
