using Softnet.Tests.Support;
using System.Buffers.Binary;
using System.Net;
using System.Net.NetworkInformation;
using PacketDotNet;
using CsCheck;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Nic;

public class RssHasherTests
{
    [Fact]
    public unsafe void The_ports_ipv4_parse_by_pointer_hashes_as_the_frame_parse()
    {
        // Untagged IPv4 with any header length, total length, fragment field, protocol and frame length, with the port
        // hashing turned on and off per protocol: the port's pointer parse must give the frame parse's verdict, hash and type.
        var fieldSets = new[] { RssHashFields.Default, new RssHashFields(false, false, true, true), new RssHashFields(true, false, true, false) };
        Gen.Select(Gen.Int[34, 120], Gen.UShort, Gen.UShort, Gen.Int[0, 3].Select(i => new byte[] { 6, 17, 1, 132 }[i]), Gen.Int[0, 2], Gen.Int[0, int.MaxValue])
            .Sample((length, total, frag, proto, fields, seed) =>
            {
                var f = new byte[length];
                new Random(seed).NextBytes(f);
                f[12] = 0x08; f[13] = 0x00; f[14] = new byte[] { 0x45, 0x45, 0x46, 0x4F, 0x44, 0x55 }[seed % 6];
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(total % 140));
                BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), (ushort)(frag & (seed % 3 == 0 ? 0xFFFF : 0x4000)));
                f[23] = proto;
                var rss = new RssHasher(RssHasher.DefaultKey, fieldSets[fields]);
                bool expected = rss.TryHashFrame(f, out uint h1, out var t1);
                bool got;
                uint h2;
                RssHashType t2;
                fixed (byte* p = f) got = rss.TryHashIpv4(p + 14, length - 14, out h2, out t2);
                Assert.Equal(expected, got);
                Assert.Equal(t1, t2);
                Assert.Equal(h1, h2);
            });
    }

    // Microsoft, "Verifying the RSS Hash Calculation" (Windows driver docs), also the Intel 82599 datasheet
    // section 7.1.2.8.3: the source is first in the hash input. Hashes without ports (IPv4) and with TCP ports.
    public static TheoryData<string, ushort, string, ushort, uint, uint> Ipv4Vectors => new()
    {
        { "66.9.149.187", 2794, "161.142.100.80", 1766, 0x323e8fc2, 0x51ccc178 },
        { "199.92.111.2", 14230, "65.69.140.83", 4739, 0xd718262a, 0xc626b0ea },
        { "24.19.198.95", 12898, "12.22.207.184", 38024, 0xd2d0a5de, 0x5c2b394a },
        { "38.27.205.30", 48228, "209.142.163.6", 2217, 0x82989176, 0xafc7327f },
        { "153.39.163.191", 44251, "202.188.127.2", 1303, 0x5d1809c5, 0x10e828a2 },
    };

    public static TheoryData<string, ushort, string, ushort, uint, uint> Ipv6Vectors => new()
    {
        { "3ffe:2501:200:1fff::7", 2794, "3ffe:2501:200:3::1", 1766, 0x2cc18cd5, 0x40207d3d },
        { "3ffe:501:8::260:97ff:fe40:efab", 14230, "ff02::1", 4739, 0x0f0c461c, 0xdde51bbf },
        { "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, "fe80::200:f8ff:fe21:67cf", 38024, 0x4b61e985, 0x02d1feef },
    };

    private static readonly RssHasher Hasher = new();

    private static byte[] Ip(string s) => IPAddress.Parse(s).GetAddressBytes();

    /// <summary>Microsoft's ComputeHash pseudocode, bit by bit: the reference the table version must equal.</summary>
    private static uint NaiveToeplitz(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input)
    {
        uint result = 0;
        for (int bitIndex = 0; bitIndex < input.Length * 8; bitIndex++)
        {
            if ((input[bitIndex / 8] & (0x80 >> (bitIndex % 8))) == 0) continue;
            uint window = 0;
            for (int k = 0; k < 32; k++)
            {
                int kb = bitIndex + k;
                int bit = (key[kb / 8] >> (7 - kb % 8)) & 1;
                window = window << 1 | (uint)bit;
            }
            result ^= window;
        }
        return result;
    }

    [Theory]
    [MemberData(nameof(Ipv4Vectors))]
    public void Microsoft_ipv4_verification_vectors(string src, ushort sport, string dst, ushort dport, uint ipOnly, uint withPorts)
    {
        Assert.Equal(ipOnly, Hasher.HashV4(Ip(src), Ip(dst)));
        Assert.Equal(withPorts, Hasher.HashV4(Ip(src), Ip(dst), sport, dport));

        byte[] input = [.. Ip(src), .. Ip(dst), (byte)(sport >> 8), (byte)sport, (byte)(dport >> 8), (byte)dport];
        Assert.Equal(withPorts, Hasher.Hash(input));
        Assert.Equal(ipOnly, Hasher.Hash(input.AsSpan(0, 8)));
        Assert.Equal(withPorts, NaiveToeplitz(RssHasher.DefaultKey, input));
    }

    [Theory]
    [MemberData(nameof(Ipv6Vectors))]
    public void Microsoft_ipv6_verification_vectors(string src, ushort sport, string dst, ushort dport, uint ipOnly, uint withPorts)
    {
        Assert.Equal(ipOnly, Hasher.HashV6(Ip(src), Ip(dst)));
        Assert.Equal(withPorts, Hasher.HashV6(Ip(src), Ip(dst), sport, dport));

        byte[] input = [.. Ip(src), .. Ip(dst), (byte)(sport >> 8), (byte)sport, (byte)(dport >> 8), (byte)dport];
        Assert.Equal(withPorts, Hasher.Hash(input));
        Assert.Equal(ipOnly, Hasher.Hash(input.AsSpan(0, 32)));
    }

    [Theory]
    [MemberData(nameof(Ipv4Vectors))]
    public void Frame_hash_equals_typed_helper_ipv4(string src, ushort sport, string dst, ushort dport, uint ipOnly, uint withPorts)
    {
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv4(Ip(src), Ip(dst), 6, sport, dport), out uint h, out var t));
        Assert.Equal((withPorts, RssHashType.TcpIpv4), (h, t));
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv4(Ip(src), Ip(dst), 17, sport, dport), out h, out t));
        Assert.Equal((withPorts, RssHashType.UdpIpv4), (h, t));
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv4(Ip(src), Ip(dst), 1, sport, dport), out h, out t));
        Assert.Equal((ipOnly, RssHashType.Ipv4), (h, t));
    }

    [Theory]
    [MemberData(nameof(Ipv6Vectors))]
    public void Frame_hash_equals_typed_helper_ipv6(string src, ushort sport, string dst, ushort dport, uint ipOnly, uint withPorts)
    {
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv6(Ip(src), Ip(dst), 6, sport, dport), out uint h, out var t));
        Assert.Equal((withPorts, RssHashType.TcpIpv6), (h, t));
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv6(Ip(src), Ip(dst), 17, sport, dport), out h, out t));
        Assert.Equal((withPorts, RssHashType.UdpIpv6), (h, t));
        Assert.True(Hasher.TryHashFrame(RssTestFrames.Ipv6(Ip(src), Ip(dst), 58, sport, dport), out h, out t));
        Assert.Equal((ipOnly, RssHashType.Ipv6), (h, t));
    }

    [Fact]
    public void Frames_built_by_PacketDotNet_hash_like_the_vectors()
    {
        // An independent frame builder, so the parser is not only checked against our own test helper.
        var mac = PhysicalAddress.Parse("02-00-00-00-00-01");
        var tcp4 = new EthernetPacket(mac, mac, EthernetType.IPv4)
        {
            PayloadPacket = new IPv4Packet(IPAddress.Parse("66.9.149.187"), IPAddress.Parse("161.142.100.80"))
            {
                PayloadPacket = new TcpPacket(2794, 1766),
            },
        };
        tcp4.UpdateCalculatedValues();
        Assert.True(Hasher.TryHashFrame(tcp4.Bytes, out uint h, out var t));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h, t));

        var udp6 = new EthernetPacket(mac, mac, EthernetType.IPv6)
        {
            PayloadPacket = new IPv6Packet(IPAddress.Parse("3ffe:501:8::260:97ff:fe40:efab"), IPAddress.Parse("ff02::1"))
            {
                PayloadPacket = new UdpPacket(14230, 4739),
            },
        };
        udp6.UpdateCalculatedValues();
        Assert.True(Hasher.TryHashFrame(udp6.Bytes, out h, out t));
        Assert.Equal((0xdde51bbfu, RssHashType.UdpIpv6), (h, t));
    }

    [Fact]
    public void Vlan_and_qinq_tags_are_skipped()
    {
        var (src, dst) = (Ip("66.9.149.187"), Ip("161.142.100.80"));
        byte[] plain = RssTestFrames.Ipv4(src, dst, 6, 2794, 1766);
        Assert.True(Hasher.TryHashFrame(RssTestFrames.WithTags(plain, 0x8100), out uint h1, out var t1));
        Assert.True(Hasher.TryHashFrame(RssTestFrames.WithTags(plain, 0x88a8, 0x8100), out uint h2, out var t2));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h1, t1));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h2, t2));
    }

    [Fact]
    public void Ipv4_options_are_skipped_by_ihl()
    {
        byte[] f = RssTestFrames.Ipv4(Ip("66.9.149.187"), Ip("161.142.100.80"), 6, 2794, 1766, optionBytes: 8);
        Assert.True(Hasher.TryHashFrame(f, out uint h, out var t));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h, t));
    }

    [Theory]
    [InlineData(0x2000)]      // MF set, first fragment: ports are present but must not be used
    [InlineData(0x0010)]      // offset 16*8, last fragment
    [InlineData(0x2100)]      // middle fragment
    public void Ipv4_fragments_hash_addresses_only(ushort fragField)
    {
        byte[] f = RssTestFrames.Ipv4(Ip("66.9.149.187"), Ip("161.142.100.80"), 6, 2794, 1766, fragField: fragField);
        Assert.True(Hasher.TryHashFrame(f, out uint h, out var t));
        Assert.Equal((0x323e8fc2u, RssHashType.Ipv4), (h, t));
    }

    [Fact]
    public void Ipv4_dont_fragment_bit_is_not_a_fragment()
    {
        byte[] f = RssTestFrames.Ipv4(Ip("66.9.149.187"), Ip("161.142.100.80"), 6, 2794, 1766, fragField: 0x4000);
        Assert.True(Hasher.TryHashFrame(f, out uint h, out var t));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h, t));
    }

    [Fact]
    public void Ipv6_extension_headers_are_walked_to_find_the_ports()
    {
        byte[] src = Ip("3ffe:2501:200:1fff::7"), dst = Ip("3ffe:2501:200:3::1");
        // hop-by-hop (8 bytes), routing (24 bytes), destination options (16 bytes), then TCP.
        byte[] f = RssTestFrames.Ipv6(src, dst, 6, 2794, 1766, extensions: [(0, 8), (43, 24), (60, 16)]);
        Assert.True(Hasher.TryHashFrame(f, out uint h, out var t));
        Assert.Equal((0x40207d3du, RssHashType.TcpIpv6), (h, t));
    }

    [Fact]
    public void Ipv6_fragment_header_hashes_addresses_only()
    {
        byte[] src = Ip("3ffe:2501:200:1fff::7"), dst = Ip("3ffe:2501:200:3::1");
        byte[] f = RssTestFrames.Ipv6(src, dst, 17, 2794, 1766, extensions: [(0, 8), (44, 8)]);
        Assert.True(Hasher.TryHashFrame(f, out uint h, out var t));
        Assert.Equal((0x2cc18cd5u, RssHashType.Ipv6), (h, t));
    }

    [Fact]
    public void Udp_on_two_tuple_when_configured_like_ethtool_sd()
    {
        var fields = RssHashFields.Default.With("udp4", "sd").With("udp6", "sd");
        var hasher = new RssHasher(RssHasher.DefaultKey, fields);
        byte[] s4 = Ip("66.9.149.187"), d4 = Ip("161.142.100.80");
        Assert.True(hasher.TryHashFrame(RssTestFrames.Ipv4(s4, d4, 17, 2794, 1766), out uint h, out var t));
        Assert.Equal((0x323e8fc2u, RssHashType.Ipv4), (h, t));
        Assert.True(hasher.TryHashFrame(RssTestFrames.Ipv4(s4, d4, 6, 2794, 1766), out h, out t));
        Assert.Equal((0x51ccc178u, RssHashType.TcpIpv4), (h, t));
        byte[] s6 = Ip("3ffe:2501:200:1fff::7"), d6 = Ip("3ffe:2501:200:3::1");
        Assert.True(hasher.TryHashFrame(RssTestFrames.Ipv6(s6, d6, 17, 2794, 1766), out h, out t));
        Assert.Equal((0x2cc18cd5u, RssHashType.Ipv6), (h, t));
        Assert.Throws<FormatException>(() => fields.With("udp4", "sdf"));
        Assert.Throws<FormatException>(() => fields.With("sctp9", "sd"));
    }

    [Fact]
    public void Non_ip_and_truncated_frames_are_not_hashed()
    {
        byte[] arp = new byte[60];
        arp[12] = 0x08; arp[13] = 0x06;
        Assert.False(Hasher.TryHashFrame(arp, out uint h, out var t));
        Assert.Equal((0u, RssHashType.None), (h, t));
        byte[] full = RssTestFrames.Ipv4(Ip("1.2.3.4"), Ip("5.6.7.8"), 6, 1, 2);
        Assert.False(Hasher.TryHashFrame(full.AsSpan(0, 14 + 19), out _, out _));
        byte[] v6 = RssTestFrames.Ipv6(Ip("::1"), Ip("::2"), 6, 1, 2, extensions: [(0, 16)]);
        Assert.False(Hasher.TryHashFrame(v6.AsSpan(0, 14 + 40 + 8), out _, out t));
        Assert.Equal(RssHashType.None, t);
    }

    [Fact]
    public void Fifty_two_byte_key_equals_its_forty_byte_prefix_for_standard_inputs()
    {
        byte[] key52 = [.. RssHasher.DefaultKey, .. new byte[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }];
        var h52 = new RssHasher(key52);
        Assert.Equal(48, h52.MaxInputLength);
        Assert.Equal(0x51ccc178u, h52.HashV4(Ip("66.9.149.187"), Ip("161.142.100.80"), 2794, 1766));
        var ex = Assert.Throws<ArgumentException>(() => new RssHasher(new byte[16]));
        Assert.Contains("40 bytes", ex.Message);
        Assert.Throws<ArgumentException>(() => Hasher.Hash(new byte[37]));
    }

    [Fact]
    public void Table_hash_equals_bitwise_reference_for_random_keys_and_inputs()
    {
        Gen.Select(Gen.Byte.Array[40], Gen.Byte.Array[0, 36]).Sample((key, input) =>
            Assert.Equal(NaiveToeplitz(key, input), new RssHasher(key).Hash(input)), iter: 200);
    }

    [Fact]
    public void Remembered_tuples_hash_as_the_typed_helper_computes_them()
    {
        // Runs of frames from a few flows, whose tuples share memo slots and differ in one word or the other: every frame
        // hash (remembered or not) equals the typed helper's, which never remembers. A fresh hasher per run, so a run
        // starts with the all-zero entries (the zero tuple among the inputs).
        var word = Gen.OneOf(Gen.Const(0u), Gen.UInt[0, 3], Gen.UInt);
        var tuple = Gen.Select(word, word, word);
        Gen.Select(tuple.Array[1, 6], Gen.Int[0, 5].Array[1, 40], Gen.Bool).Sample((flows, order, tcp) =>
        {
            var hasher = new RssHasher();
            foreach (int i in order)
            {
                var (src, dst, ports) = flows[i % flows.Length];
                byte[] s = new byte[4], d = new byte[4];
                BinaryPrimitives.WriteUInt32BigEndian(s, src);
                BinaryPrimitives.WriteUInt32BigEndian(d, dst);
                ushort sport = (ushort)(ports >> 16), dport = (ushort)ports;
                Assert.True(hasher.TryHashFrame(RssTestFrames.Ipv4(s, d, tcp ? (byte)6 : (byte)17, sport, dport), out uint h, out _));
                Assert.Equal(hasher.HashV4(s, d, sport, dport), h);
            }
        }, iter: 2000);
    }

    [Fact]
    public void TryHashFrame_never_throws_on_random_bytes()
    {
        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            bool ok = Hasher.TryHashFrame(bytes, out uint h, out var t);
            Assert.True(ok || (h == 0 && t == RssHashType.None));
        }, iter: 5000);
        // Random bytes behind a valid Ethernet/IP prefix exercise the deeper parsers.
        Gen.Select(Gen.Byte.Array[0, 120], Gen.Int[0, 3]).Sample((tail, kind) =>
        {
            byte[] f = new byte[14 + tail.Length];
            ushort et = kind switch { 0 => 0x0800, 1 => 0x86dd, 2 => 0x8100, _ => 0x88a8 };
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), et);
            tail.CopyTo(f, 14);
            if (tail.Length > 0) f[14] = (byte)((kind == 1 ? 0x60 : 0x40) | (tail[0] & 0x0f));
            Hasher.TryHashFrame(f, out _, out _);
        }, iter: 5000);
    }

    [Fact]
    public void Hashing_does_not_allocate()
    {
        byte[] v4 = RssTestFrames.Ipv4(Ip("66.9.149.187"), Ip("161.142.100.80"), 6, 2794, 1766);
        byte[] v6 = RssTestFrames.Ipv6(Ip("3ffe:2501:200:1fff::7"), Ip("3ffe:2501:200:3::1"), 17, 2794, 1766, extensions: [(0, 8)]);
        byte[] s = Ip("66.9.149.187"), d = Ip("161.142.100.80");
        var table = RssIndirectionTable.Equal(8);
        uint acc = 0;
        for (int i = 0; i < 100; i++) Run();  // warm up (tiering)
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 10_000; i++) Run();
        long after = GC.GetAllocatedBytesForCurrentThread();
        AllocationAssert.NothingPerOperation(after - before, 10_000, "hash rounds");
        Assert.NotEqual(0u, acc);

        void Run()
        {
            Hasher.TryHashFrame(v4, out uint a, out _);
            Hasher.TryHashFrame(v6, out uint b, out _);
            acc += a ^ b ^ Hasher.HashV4(s, d, 1, 2) ^ Hasher.Hash(v4.AsSpan(0, 36)) ^ (uint)table.QueueFor(a);
        }
    }
}

/// <summary>Minimal frame builders for the RSS tests (checksums are irrelevant to RSS and left zero).</summary>
internal static class RssTestFrames
{
    public static byte[] Ipv4(byte[] src, byte[] dst, byte proto, ushort sport, ushort dport,
        int optionBytes = 0, ushort fragField = 0, int payload = 12)
    {
        int ihl = 20 + optionBytes;
        byte[] f = new byte[14 + ihl + 8 + payload];
        f[12] = 0x08; f[13] = 0x00;
        Span<byte> ip = f.AsSpan(14);
        ip[0] = (byte)(0x40 | ihl / 4);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(ihl + 8 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(6), fragField);
        ip[8] = 64;
        ip[9] = proto;
        src.CopyTo(ip.Slice(12));
        dst.CopyTo(ip.Slice(16));
        for (int i = 0; i < optionBytes; i++) ip[20 + i] = 1; // NOP options
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(ihl), sport);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(ihl + 2), dport);
        return f;
    }

    public static byte[] Ipv6(byte[] src, byte[] dst, byte proto, ushort sport, ushort dport,
        (byte Type, int Length)[]? extensions = null, int payload = 12)
    {
        extensions ??= [];
        int extLen = 0;
        foreach (var e in extensions) extLen += e.Length;
        byte[] f = new byte[14 + 40 + extLen + 8 + payload];
        f[12] = 0x86; f[13] = 0xdd;
        Span<byte> ip = f.AsSpan(14);
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(4), (ushort)(extLen + 8 + payload));
        ip[6] = extensions.Length > 0 ? extensions[0].Type : proto;
        ip[7] = 64;
        src.CopyTo(ip.Slice(8));
        dst.CopyTo(ip.Slice(24));
        int off = 40;
        for (int i = 0; i < extensions.Length; i++)
        {
            ip[off] = i + 1 < extensions.Length ? extensions[i + 1].Type : proto;
            if (extensions[i].Type == 44)
                ip[off + 1] = 0; // fragment header: reserved byte; offset 0 with M set below
            else
                ip[off + 1] = (byte)(extensions[i].Length / 8 - 1);
            if (extensions[i].Type == 44) ip[off + 3] = 1;
            off += extensions[i].Length;
        }
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(off), sport);
        BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(off + 2), dport);
        return f;
    }

    /// <summary>Inserts VLAN tags (outer first) after the MAC addresses.</summary>
    public static byte[] WithTags(byte[] frame, params ushort[] tpids)
    {
        byte[] f = new byte[frame.Length + 4 * tpids.Length];
        frame.AsSpan(0, 12).CopyTo(f);
        int off = 12;
        foreach (ushort tpid in tpids)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(off), tpid);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(off + 2), 100); // VID 100
            off += 4;
        }
        frame.AsSpan(12).CopyTo(f.AsSpan(off));
        return f;
    }
}
