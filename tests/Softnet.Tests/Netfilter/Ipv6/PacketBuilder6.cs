using System.Buffers.Binary;
using Softnet.Netfilter;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>Builds IPv6 packets with valid transport checksums for netfilter tests.</summary>
internal static class PacketBuilder6
{
    public static UInt128 A(string s) => Ip6Addr.TryParse(s, out var a) ? a : throw new FormatException(s);

    internal static byte[] Ip(string src, string dst, byte nextHeader, int payloadLen, byte hopLimit = 64)
    {
        var b = new byte[40 + payloadLen];
        BinaryPrimitives.WriteUInt32BigEndian(b, 0x6000_0000);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)payloadLen);
        b[6] = nextHeader;
        b[7] = hopLimit;
        Ip6Addr.Write(b.AsSpan(8), A(src));
        Ip6Addr.Write(b.AsSpan(24), A(dst));
        return b;
    }

    private static uint Pseudo(byte[] b, byte proto, int len) => Checksum.PseudoHeaderV6(b.AsSpan(8, 16), b.AsSpan(24, 16), proto, len);

    public static byte[] Tcp(string src, ushort sport, string dst, ushort dport, byte flags, uint seq = 1000, uint ack = 0, int payload = 0, ushort window = 65535)
    {
        var b = Ip(src, dst, 6, 20 + payload);
        var t = b.AsSpan(40);
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], window);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)('0' + i % 10);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Pseudo(b, 6, t.Length)));
        return b;
    }

    public static byte[] Udp(string src, ushort sport, string dst, ushort dport, int payload = 8)
    {
        var b = Ip(src, dst, 17, 8 + payload);
        var u = b.AsSpan(40);
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u[2..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(u[4..], (ushort)u.Length);
        ushort c = Checksum.Compute(u, Pseudo(b, 17, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u[6..], c == 0 ? (ushort)0xFFFF : c);
        return b;
    }

    public static byte[] Icmp6(string src, string dst, byte type, byte code, ushort id = 0, ushort seq = 0, ReadOnlySpan<byte> body = default)
    {
        var b = Ip(src, dst, 58, 8 + body.Length);
        var h = b.AsSpan(40);
        h[0] = type;
        h[1] = code;
        BinaryPrimitives.WriteUInt16BigEndian(h[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(h[6..], seq);
        body.CopyTo(h[8..]);
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], Checksum.Compute(h, Pseudo(b, 58, h.Length)));
        return b;
    }

    /// <summary>An ICMPv6 error (type below 128) quoting <paramref name="quoted"/>.</summary>
    public static byte[] Icmp6Error(string src, string dst, byte type, byte code, byte[] quoted)
        => Icmp6(src, dst, type, code, 0, 0, quoted);

    public static PacketContext Ctx(byte[] packet, long timeNs = 0, string? inIf = null, string? outIf = null)
    {
        Assert.True(PacketContext.FromIpv6(packet, packet.Length, out var ctx, out var why), why.ToString());
        ctx.TimestampNs = timeNs;
        ctx.InInterface = inIf;
        ctx.OutInterface = outIf;
        return ctx;
    }

    /// <summary>The transport checksum (TCP, UDP, ICMPv6) verifies over the IPv6 pseudo-header.</summary>
    public static void AssertChecksumValid(byte[] b)
    {
        byte proto = b[6];
        var l4 = b.AsSpan(40);
        Assert.True(Checksum.Verify(l4, Pseudo(b, proto, l4.Length)), $"transport checksum of protocol {proto}");
    }

    public static string Src(byte[] b) => Ip6Addr.Format(Ip6Addr.Read(b.AsSpan(8)));
    public static string Dst(byte[] b) => Ip6Addr.Format(Ip6Addr.Read(b.AsSpan(24)));
    public static ushort SrcPort(byte[] b) => BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(40));
    public static ushort DstPort(byte[] b) => BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(42));
}
