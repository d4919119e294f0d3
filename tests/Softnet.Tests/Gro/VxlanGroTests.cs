using System.Buffers.Binary;
using CsCheck;
using Softnet.Gro;
using Softnet.Packets;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>A TCP segment inside VXLAN: outer Ethernet / IPv4 / UDP / VXLAN around <see cref="Inner"/>'s frame.</summary>
public sealed record VxlanSeg
{
    public const int Overhead = VxlanPackets.Overhead;

    public required TcpSeg Inner { get; init; }
    public uint Vni { get; init; } = 1;
    /// <summary>The VXLAN flags word (I set: VNI valid).</summary>
    public uint Flags { get; init; } = 0x0800_0000;
    public ushort Sport { get; init; } = 45000;
    public ushort Dport { get; init; } = 8472;
    /// <summary>Fill the outer UDP checksum (else 0, as flannel's VXLAN sends).</summary>
    public bool UdpCsum { get; init; }
    public bool BadUdpCsum { get; init; }
    public ushort OuterId { get; init; } = 100;
    public bool OuterDf { get; init; }
    public byte OuterTtl { get; init; } = 64;

    /// <summary>The next segment of the inner flow, the outer ID counting up with it.</summary>
    public VxlanSeg Next(int? payloadLen = null) => this with { Inner = Inner.Next(payloadLen), OuterId = (ushort)(OuterId + 1) };

    public byte[] Build() => VxlanPackets.Frame([2, 0, 10, 0, 0, 2], [2, 0, 10, 0, 0, 1],
        VxlanPackets.Datagram(Inner.Build(), [192, 168, 0, 1], [192, 168, 0, 2], Vni, Sport, Dport, Flags, OuterId, OuterDf,
            OuterTtl, udpChecksum: UdpCsum, checksumXor: (ushort)(BadUdpCsum ? 0x0101 : 0)));

    public static VxlanSeg[] Train(VxlanSeg first, int n)
    {
        var a = new VxlanSeg[n];
        a[0] = first;
        for (int i = 1; i < n; i++) a[i] = a[i - 1].Next();
        return a;
    }
}

/// <summary>
/// udp_tunnel GRO for VXLAN (udp4_gro_receive → udp_gro_receive → vxlan_gro_receive → eth_gro_receive → inner
/// inet_gro_receive → tcp4_gro_receive) and its completion.
/// </summary>
public class VxlanGroTests
{
    /// <summary>What GRO passed up: each skb's frame (from its MAC header) and its GSO/encapsulation metadata.</summary>
    private sealed record Out(byte[] Frame, int GsoSegs, int GsoSize, GsoType GsoType, bool Encapsulation,
        int InnerMac, int InnerNetwork, int InnerTransport, ushort InnerProtocol, CsumState IpSummed)
    {
        /// <summary>The inner frame of a delivered VXLAN packet.</summary>
        public byte[] InnerFrame => Frame[VxlanSeg.Overhead..];
        public int Payload => Delivered.Parse(InnerFrame).Payload;
    }

    private sealed class Recorder : IGroSink
    {
        public readonly List<Out> Skbs = new();

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (var skb in batch)
            {
                Skbs.Add(new Out(GroTap.ToArray(skb), skb.GsoSegs, skb.GsoSize, skb.GsoType, skb.Encapsulation,
                    skb.InnerMacHeader - skb.Data, skb.InnerNetworkHeader - skb.Data, skb.InnerTransportHeader - skb.Data,
                    skb.InnerProtocol, skb.IpSummed));
                skb.Free();
            }
        }
    }

    /// <summary>One NAPI poll: every frame received, then the poll completes (flush).</summary>
    private static List<Out> Poll(IEnumerable<byte[]> frames, GroOptions? options = null, bool tunnel = true, RxChecksum rx = RxChecksum.None)
    {
        var pool = new PagePool(512);
        var skbs = new SkbPool(512);
        var sink = new Recorder();
        var engine = new GroEngine(options ?? new GroOptions(), sink);
        if (tunnel) engine.AddUdpTunnel(8472, VxlanGro.Instance);
        int n = 0;
        foreach (var frame in frames)
        {
            Assert.True(pool.TryRent(out int i));
            frame.CopyTo(pool.Slice(i, pool.Headroom, frame.Length));
            var skb = skbs.Build(pool, i, pool.Headroom, frame.Length)!;
            skb.ResetMacHeader();
            GroReplay.SetChecksumState(skb, rx);
            engine.Receive(skb, 1_000_000);
            n++;
        }
        engine.PollComplete(n, int.MaxValue, 1_000_000);
        return sink.Skbs;
    }

    private static List<Out> Poll(params VxlanSeg[] segs) => Poll(segs.Select(s => s.Build()));

    private static VxlanSeg First(int payload = 1398, bool udpCsum = false)
        => new() { Inner = new TcpSeg { PayloadLen = payload }, UdpCsum = udpCsum };

    [Fact]
    public void A_run_of_one_inner_flow_merges_into_one_encapsulated_skb()
    {
        var train = VxlanSeg.Train(First(), 8);
        var o = Assert.Single(Poll(train));
        Assert.Equal(8 * 1398, o.Payload);
        Assert.Equal(8, o.GsoSegs);
        Assert.Equal(1398, o.GsoSize);
        Assert.True(o.Encapsulation);
        Assert.Equal(GsoType.UdpTunnel | GsoType.TcpV4, o.GsoType & (GsoType.UdpTunnel | GsoType.UdpTunnelCsum | GsoType.TcpV4));
        Assert.Equal(CsumState.Partial, o.IpSummed);
        // Offsets from skb->data, which is at the outer IPv4 header.
        Assert.Equal(20 + 8 + 8, o.InnerMac);
        Assert.Equal(20 + 8 + 8 + 14, o.InnerNetwork);
        Assert.Equal(20 + 8 + 8 + 14 + 20, o.InnerTransport);
        Assert.Equal(EtherTypes.Ipv4, o.InnerProtocol);
        // Every length field describes the merged packet; the outer IPv4 header checksum still verifies.
        var f = o.Frame;
        Assert.Equal(f.Length - 14, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16)));
        Assert.True(Checksum.Verify(f.AsSpan(14, 20)));
        Assert.Equal(f.Length - 34, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(38)));
        Assert.Equal(f.Length - 64, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(66)));
        Assert.True(Checksum.Verify(f.AsSpan(64, 20)));
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(40))); // no outer checksum stays none
    }

    [Fact]
    public void Without_a_tunnel_socket_on_the_port_vxlan_is_plain_udp_and_never_merges()
    {
        var outp = Poll(VxlanSeg.Train(First(), 6).Select(s => s.Build()), tunnel: false);
        Assert.Equal(6, outp.Count);
        Assert.All(outp, o => Assert.False(o.Encapsulation));
        // Another port than the registered one is not the tunnel's either.
        var other = Poll(VxlanSeg.Train(First() with { Dport = 4789 }, 4));
        Assert.Equal(4, other.Count);
    }

    [Fact]
    public void Removing_the_tunnel_stops_the_merging()
    {
        var engine = new GroEngine(new GroOptions());
        engine.AddUdpTunnel(8472, VxlanGro.Instance);
        engine.AddUdpTunnel(8472, VxlanGro.Instance); // a second device on the same socket
        Assert.True(engine.HasUdpTunnels);
        Assert.True(engine.RemoveUdpTunnel(8472));
        Assert.True(engine.HasUdpTunnels);
        Assert.True(engine.RemoveUdpTunnel(8472));
        Assert.False(engine.HasUdpTunnels);
        Assert.False(engine.RemoveUdpTunnel(8472));
    }

    [Fact]
    public void A_different_vni_is_another_flow()
    {
        var a = VxlanSeg.Train(First(), 3);
        var b = VxlanSeg.Train(a[^1].Next() with { Vni = 2 }, 3);
        var outp = Poll([.. a, .. b]);
        Assert.Equal(2, outp.Count);
        Assert.Equal([3 * 1398, 3 * 1398], outp.Select(o => o.Payload).OrderBy(x => x).ToArray());
    }

    [Fact]
    public void Different_vxlan_flags_are_another_flow()
    {
        var a = VxlanSeg.Train(First(), 3);
        var b = VxlanSeg.Train(a[^1].Next() with { Flags = 0x0800_0100 }, 3);
        Assert.Equal(2, Poll([.. a, .. b]).Count);
    }

    [Fact]
    public void Another_inner_flow_in_the_same_outer_flow_is_held_apart()
    {
        // Same outer 5-tuple (a tunnel endpoint pair, one source port), two inner TCP flows interleaved.
        var x = VxlanSeg.Train(First(), 4);
        var y = VxlanSeg.Train(First() with { Inner = new TcpSeg { PayloadLen = 1398, Sport = 40001, Seq = 77 } }, 4);
        var frames = new List<VxlanSeg>();
        ushort id = 100;
        for (int i = 0; i < 4; i++)
        {
            frames.Add(x[i] with { OuterId = id++ });
            frames.Add(y[i] with { OuterId = id++ });
        }
        var outp = Poll([.. frames]);
        // The outer ID of each inner flow advances by two per segment: after the first merge attempt the outer
        // header flushes (neither incrementing by the count nor fixed), as the kernel's inet_gro_flush decides.
        Assert.True(outp.Count > 2);
        Assert.All(outp.GroupBy(o => Delivered.Parse(o.InnerFrame).Sport), g => Assert.Equal(4 * 1398, g.Sum(o => o.Payload)));
        // With each inner flow keeping its own consecutive outer IDs (TSO senders reserve an ID block per skb),
        // both merge fully and stay apart.
        var clean = Poll([.. x.Zip(y.Select(s => s with { OuterId = (ushort)(s.OuterId + 1000) })).SelectMany(p => new[] { p.First, p.Second })]);
        Assert.Equal(2, clean.Count);
        Assert.Equal([40000, 40001], clean.Select(o => (int)Delivered.Parse(o.InnerFrame).Sport).OrderBy(v => v).ToArray());
        Assert.All(clean, o => Assert.Equal(4 * 1398, o.Payload));
    }

    [Fact]
    public void Outer_checksum_on_one_and_not_the_other_is_another_flow()
    {
        var a = VxlanSeg.Train(First(udpCsum: true), 3);
        var b = VxlanSeg.Train(a[^1].Next() with { UdpCsum = false }, 3);
        var outp = Poll([.. a, .. b]);
        Assert.Equal(2, outp.Count);
        var withCsum = outp.Single(o => (o.GsoType & GsoType.UdpTunnelCsum) != 0);
        Assert.Equal(3 * 1398, withCsum.Payload);
        // udp4_gro_complete leaves the pseudo-header sum for the merged length in the outer checksum.
        var f = withCsum.Frame;
        ushort expect = (ushort)Checksum.PseudoHeaderV4(f.AsSpan(26, 4), f.AsSpan(30, 4), 17, f.Length - 34);
        Assert.Equal(expect, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(40)));
    }

    [Fact]
    public void A_bad_outer_checksum_is_passed_up_unmerged()
    {
        var t = VxlanSeg.Train(First(udpCsum: true), 4);
        t[2] = t[2] with { BadUdpCsum = true };
        var outp = Poll(t);
        // The bad one goes up at once, unmerged; the held two then complete when the next one's sequence gap shows.
        Assert.Equal([1398, 2 * 1398, 1398], outp.Select(o => o.Payload).ToArray());
    }

    [Theory]
    [InlineData(RxChecksum.None)]
    [InlineData(RxChecksum.Unnecessary)]
    [InlineData(RxChecksum.Complete)]
    public void Checksummed_tunnels_merge_whatever_the_device_verified(RxChecksum rx)
    {
        var outp = Poll(VxlanSeg.Train(First(udpCsum: true), 6).Select(s => s.Build()), rx: rx);
        var o = Assert.Single(outp);
        Assert.Equal(6 * 1398, o.Payload);
    }

    [Fact]
    public void A_bad_inner_tcp_checksum_is_caught_through_the_outer_sum()
    {
        var t = VxlanSeg.Train(First(udpCsum: false), 4);
        t[1] = t[1] with { Inner = t[1].Inner with { BadChecksum = true } };
        var outp = Poll(t);
        Assert.Equal([1398, 1398, 2 * 1398], outp.Select(o => o.Payload).ToArray());
    }

    [Fact]
    public void Outer_ids_must_count_up_or_stay_fixed()
    {
        var inc = VxlanSeg.Train(First(), 5);
        Assert.Single(Poll(inc));
        var fixedIds = inc.Select(s => s with { OuterId = 7 }).ToArray();
        var f = Assert.Single(Poll(fixedIds));
        Assert.Equal(5 * 1398, f.Payload);
        Assert.True((f.GsoType & GsoType.TcpFixedId) != 0);
        Assert.True((f.GsoType & GsoType.TcpFixedIdInner) == 0);
        var jump = inc.Select((s, i) => s with { OuterId = (ushort)(100 + (i < 3 ? i : i + 10)) }).ToArray();
        Assert.Equal([3 * 1398, 2 * 1398], Poll(jump).Select(o => o.Payload).ToArray());
    }

    [Fact]
    public void Inner_fixed_ids_are_a_separate_choice_from_the_outer()
    {
        var t = VxlanSeg.Train(First(), 5).Select(s => s with { Inner = s.Inner with { Id = 9 } }).ToArray();
        var o = Assert.Single(Poll(t));
        Assert.True((o.GsoType & GsoType.TcpFixedIdInner) != 0);
        Assert.True((o.GsoType & GsoType.TcpFixedId) == 0);
    }

    [Fact]
    public void Before_the_id_rework_an_outer_header_with_df_is_not_id_checked()
    {
        var old = new GroOptions { FixedIdRequiresDf = true };
        var random = VxlanSeg.Train(First() with { OuterDf = true }, 5).Select((s, i) => s with { OuterId = (ushort)(i * 977) }).ToArray();
        Assert.Single(Poll(random.Select(s => s.Build()), old));
        // The current rule checks it: each jump flushes.
        Assert.Equal(5, Poll(random).Count);
        // Without DF the old rule checks it too.
        var noDf = random.Select(s => s with { OuterDf = false }).ToArray();
        Assert.Equal(5, Poll(noDf.Select(s => s.Build()), old).Count);
    }

    [Fact]
    public void Outer_ttl_change_flushes()
    {
        var t = VxlanSeg.Train(First(), 4);
        t[2] = t[2] with { OuterTtl = 63 };
        t[3] = t[3] with { OuterTtl = 63 };
        Assert.Equal([2 * 1398, 2 * 1398], Poll(t).Select(o => o.Payload).ToArray());
    }

    [Fact]
    public void Merging_stops_short_of_64k_and_starts_again()
    {
        var t = VxlanSeg.Train(First(), 60);
        var outp = Poll(t);
        Assert.True(outp.Count > 1);
        Assert.All(outp, o => Assert.True(o.Frame.Length - 14 < GroEngine.GroLegacyMaxSize));
        Assert.Equal(60 * 1398, outp.Sum(o => o.Payload));
        // The first aggregate took as many segments as fit: outer IP + UDP + VXLAN + inner headers + n * MSS < 64 KiB.
        int headers = 20 + 8 + 8 + 14 + 20 + 32;
        Assert.Equal((GroEngine.GroLegacyMaxSize - 1 - headers) / 1398, outp[0].GsoSegs);
    }

    [Fact]
    public void A_short_segment_ends_the_aggregate()
    {
        var t = VxlanSeg.Train(First(), 4);
        t[3] = t[2].Next(500);
        var o = Assert.Single(Poll(t));
        Assert.Equal(3 * 1398 + 500, o.Payload);
    }

    [Fact]
    public void Inner_udp_and_non_ip_pass_up_unmerged()
    {
        // An inner frame whose EtherType has no GRO handler (ARP).
        var arp = VxlanSeg.Train(First(), 3).Select(s => { var f = s.Build(); f[VxlanSeg.Overhead + 12] = 0x08; f[VxlanSeg.Overhead + 13] = 0x06; return f; });
        Assert.Equal(3, Poll(arp).Count);
    }

    private sealed class Wire : Softnet.Link.IDeviceWire
    {
        public readonly List<byte[]> Frames = new();
        public bool Send(ReadOnlySpan<byte> frame) { Frames.Add(frame.ToArray()); return true; }
        public bool Carrier => true;
    }

    private sealed class Keep : IGroSink
    {
        public readonly List<Skb> Skbs = new();
        public void Deliver(ReadOnlySpan<Skb> batch) { foreach (var s in batch) Skbs.Add(s); }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void Software_gso_cuts_a_forwarded_aggregate_back_into_the_frames_it_was(bool udpCsum, bool fixedOuter)
    {
        // skb_udp_tunnel_segment after GRO: the segments are the original frames again, byte for byte.
        var t = VxlanSeg.Train(First(udpCsum: udpCsum), 7);
        t[^1] = t[^2].Next(700) with { Inner = t[^2].Next(700).Inner with { Flags = TcpSeg.AckF | TcpSeg.Psh } };
        if (fixedOuter) t = t.Select(s => s with { OuterId = 5 }).ToArray();
        var frames = t.Select(s => s.Build()).ToList();
        var pool = new PagePool(64);
        var skbs = new SkbPool(64);
        var sink = new Keep();
        var engine = new GroEngine(new GroOptions(), sink);
        engine.AddUdpTunnel(8472, VxlanGro.Instance);
        foreach (var frame in frames)
        {
            Assert.True(pool.TryRent(out int i));
            frame.CopyTo(pool.Slice(i, pool.Headroom, frame.Length));
            var b = skbs.Build(pool, i, pool.Headroom, frame.Length)!;
            b.ResetMacHeader();
            engine.Receive(b, 1000);
        }
        engine.PollComplete(frames.Count, int.MaxValue, 1000);
        var skb = Assert.Single(sink.Skbs);
        Assert.True(skb.Encapsulation && skb.IsGso);
        skb.Push(14);
        var wire = new Wire();
        Assert.Equal(DropReason.None, Softnet.Link.SoftwareGso.Transmit(skb, wire));
        skb.Free();
        Assert.Equal(frames.Count, wire.Frames.Count);
        for (int i = 0; i < frames.Count; i++) Assert.Equal(frames[i], wire.Frames[i]);
    }

    [Fact]
    public void Vxlan_gro_allocates_nothing_per_segment()
    {
        var gro = new GroSteadyState();
        gro.Engine.AddUdpTunnel(8472, VxlanGro.Instance);
        // Two outer flows (two source ports), each with its inner flow, with and without an outer checksum.
        var a = VxlanSeg.Train(First(udpCsum: true), 24);
        var b = VxlanSeg.Train(First() with { Sport = 50000, Inner = new TcpSeg { PayloadLen = 1398, Sport = 40001 } }, 24);
        var frames = a.Zip(b).SelectMany(p => new[] { p.First.Build(), p.Second.Build() }).ToArray();
        for (int w = 0; w < 20; w++) gro.Run(frames);
        Assert.True(gro.Engine.Stats.Merged > 0);
        long bytes = gro.AllocatedOver(frames, 200);
        Softnet.Tests.Support.AllocationAssert.NothingPerOperation(bytes, 200 * frames.Length, "segments");
        Assert.Equal(0, gro.Skbs.InUse);
    }

    [Fact]
    public void Merged_inner_payload_is_the_concatenation_of_the_inputs()
    {
        Gen.Select(Gen.Int[1, 70], Gen.Int[1, 1398], Gen.Bool, Gen.Int[0, 2], Gen.Int[0, int.MaxValue]).Sample((n, last, csum, rxIndex, seed) =>
        {
            var rng = new Random(seed);
            var first = new VxlanSeg { Inner = new TcpSeg { PayloadLen = 1398, Seq = (uint)rng.Next() }, UdpCsum = csum, Sport = (ushort)rng.Next(32768, 61000) };
            var t = VxlanSeg.Train(first, n);
            t[^1] = n == 1 ? t[0] with { Inner = t[0].Inner with { PayloadLen = last } } : t[^2].Next(last);
            var sent = new List<byte>();
            foreach (var s in t)
                for (int i = 0; i < s.Inner.PayloadLen; i++) sent.Add(TcpSeg.PayloadByte(s.Inner.Seq, i));
            var outp = Poll(t.Select(s => s.Build()), rx: (RxChecksum)rxIndex);
            var got = new List<byte>();
            foreach (var o in outp) got.AddRange(Delivered.PayloadBytes(o.InnerFrame).ToArray());
            Assert.Equal(sent, got);
            Assert.Equal(n, outp.Sum(o => Math.Max(1, o.GsoSegs)));
            Assert.All(outp, o => Assert.True(o.GsoSegs <= 1 || o.Encapsulation));
        }, iter: 200);
    }
}
