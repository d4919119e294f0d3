using Softnet.Tests.Support;
using CsCheck;
using Softnet.Capture;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Packets;

/// <summary>Whatever the bytes, Decode returns a reason (never throws) and its offsets stay inside the frame.</summary>
public class PacketDecoderPropertyTests
{
    private static readonly LinkType[] LinkTypes =
        [LinkType.Ethernet, LinkType.Raw, LinkType.Ipv4, LinkType.Ipv6, LinkType.LinuxSll, LinkType.LinuxSll2, LinkType.Null];

    internal static readonly byte[][] Seeds =
    [
        TestFrames.Ipv4OptionsTcpSyn(), TestFrames.TcpSack(), TestFrames.Vlan8021qUdp(), TestFrames.QinQUdp(), TestFrames.TripleTagUdp(),
        TestFrames.ArpRequest(), TestFrames.IcmpEcho(), TestFrames.Icmpv6Echo(), TestFrames.Ipv6ExtTcp(), TestFrames.Ipv6Fragment(),
        TestFrames.Ipv4Fragment(), TestFrames.Vxlan(),
    ];

    internal static void AssertSane(ReadOnlySpan<byte> frame, LinkType lt)
    {
        var r = PacketDecoder.Decode(frame, lt, out var p);
        Assert.True(Enum.IsDefined(r));
        int len = frame.Length;
        void In(int off, string name)
        {
            if (off != -1) Assert.True(off >= 0 && off <= len, $"{name}={off} outside 0..{len} ({r})");
        }
        In(p.L2Offset, "L2");
        In(p.L3Offset, "L3");
        In(p.L4Offset, "L4");
        In(p.InnerL2Offset, "InnerL2");
        In(p.InnerL3Offset, "InnerL3");
        In(p.InnerL4Offset, "InnerL4");
        if (p.PayloadOffset != -1)
        {
            In(p.PayloadOffset, "Payload");
            Assert.True(p.PayloadLength >= 0 && p.PayloadOffset + p.PayloadLength <= len, $"payload {p.PayloadOffset}+{p.PayloadLength} > {len}");
        }
        if (p.InnerPayloadOffset != -1)
        {
            In(p.InnerPayloadOffset, "InnerPayload");
            Assert.True(p.InnerPayloadLength >= 0 && p.InnerPayloadOffset + p.InnerPayloadLength <= len);
        }
        if (r == DropReason.None)
        {
            // Offsets are ordered when the decode succeeded.
            if (p.L3Offset >= 0 && p.L2Offset >= 0) Assert.True(p.L2Offset < p.L3Offset);
            if (p.L4Offset >= 0) Assert.True(p.L3Offset < p.L4Offset && p.L4Offset <= p.PayloadOffset);
            if (p.SourceAddressOffset >= 0) Assert.True(p.DestinationAddressOffset + p.AddressLength <= len);
        }
    }

    [Fact]
    public void Random_bytes_never_throw_for_any_link_type()
    {
        Gen.Select(Gen.Byte.Array[0, 2000], Gen.Int[0, LinkTypes.Length - 1])
            .Sample((bytes, lt) => AssertSane(bytes, LinkTypes[lt]), iter: 20000);
    }

    [Fact]
    public void Random_bytes_behind_plausible_headers_never_throw()
    {
        // Random data is mostly rejected at the first header; fix the first bytes so deeper layers get exercised.
        Gen.Select(Gen.Byte.Array[0, 300], Gen.Int[0, 5]).Sample((bytes, kind) =>
        {
            var f = (byte[])bytes.Clone();
            LinkType lt = LinkType.Ethernet;
            switch (kind)
            {
                case 0 when f.Length > 14: f[12] = 0x08; f[13] = 0x00; if (f.Length > 15) f[14] = (byte)(0x40 | (f[14] & 0x0F)); break;
                case 1 when f.Length > 14: f[12] = 0x86; f[13] = 0xdd; f[14] = (byte)(0x60 | (f[14] & 0x0F)); break;
                case 2 when f.Length > 0: f[0] = (byte)(0x45); lt = LinkType.Raw; break;
                case 3 when f.Length > 0: f[0] = (byte)(0x60); lt = LinkType.Ipv6; break;
                case 4 when f.Length > 14: f[12] = 0x88; f[13] = 0xa8; break;
                case 5 when f.Length > 16: f[14] = 0x08; f[15] = 0x00; lt = LinkType.LinuxSll; if (f.Length > 16) f[16] = 0x45; break;
            }
            AssertSane(f, lt);
        }, iter: 20000);
    }

    [Fact]
    public void Mutated_valid_frames_never_throw()
    {
        Gen.Select(Gen.Int[0, Seeds.Length - 1], Gen.Int[0, 3], Gen.Select(Gen.Int[0, 4000], Gen.Byte).Array[1, 6], Gen.Int[0, 100])
            .Sample((seed, lt, flips, cut) =>
            {
                var f = (byte[])Seeds[seed].Clone();
                foreach (var (pos, val) in flips) f[pos % f.Length] ^= (byte)(val | 1);
                // Sometimes truncate, sometimes keep the whole frame.
                if (cut < 50) f = f[..(f.Length * cut / 50)];
                LinkType type = lt switch { 0 => LinkType.Ethernet, 1 => LinkType.Raw, 2 => LinkType.LinuxSll, _ => LinkType.LinuxSll2 };
                var framed = type switch
                {
                    LinkType.Raw => f.Length > 14 ? f[14..] : f,
                    LinkType.LinuxSll => PrefixSll(f, false),
                    LinkType.LinuxSll2 => PrefixSll(f, true),
                    _ => f,
                };
                AssertSane(framed, type);
            }, iter: 30000);
    }

    [Fact]
    public void Every_truncation_of_every_valid_frame_never_throws()
    {
        foreach (var s in Seeds)
            for (int n = 0; n <= s.Length; n++)
                AssertSane(s.AsSpan(0, n), LinkType.Ethernet);
    }

    private static byte[] PrefixSll(byte[] eth, bool v2)
    {
        if (eth.Length < 14) return eth;
        int hl = v2 ? 20 : 16;
        var f = new byte[hl + eth.Length - 14];
        if (v2) { f[0] = eth[12]; f[1] = eth[13]; }
        else { f[14] = eth[12]; f[15] = eth[13]; }
        eth.AsSpan(14).CopyTo(f.AsSpan(hl));
        return f;
    }
}

public class PacketDecoderAllocationTests
{
    [Fact]
    public void Decode_does_not_allocate()
    {
        var frames = PacketDecoderPropertyTests.Seeds;
        long sink = 0;
        // Warm up so tiering and static constructors do their allocations first.
        for (int w = 0; w < 3; w++)
            foreach (var f in frames) { PacketDecoder.Decode(f, LinkType.Ethernet, out var p); sink += p.L3Offset; }
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 20000; i++)
            foreach (var f in frames)
            {
                sink += (int)PacketDecoder.Decode(f, LinkType.Ethernet, out var p);
                sink += p.PayloadOffset;
            }
        long after = GC.GetAllocatedBytesForCurrentThread();
        AllocationAssert.NothingPerOperation(after - before, 20000L * frames.Length, "decodes");
        Assert.NotEqual(0, sink);
    }
}
