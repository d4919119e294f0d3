using System.Buffers.Binary;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Nic;

/// <summary>Multi-buffer receive (ice_clean_rx_irq with EOP, ice_add_rx_frag): frames longer than one RX buffer,
/// the MTU check, and TCP aggregates from GRO/TSO captures.</summary>
public class MultiBufferTests
{
    private const int Data = 2048 - 256; // one buffer's data area with the default sizes

    private static byte[] Frame(int len, int seed)
    {
        var f = new byte[len];
        for (int i = 0; i < len; i++) f[i] = (byte)(seed * 31 + i * 7);
        if (len >= 14) BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x88B5); // not IP: never an aggregate
        return f;
    }

    private static List<RxDescriptor> PollAll(RxRing ring)
    {
        var batch = new RxDescriptor[256];
        var list = new List<RxDescriptor>();
        int n;
        while ((n = ring.Poll(batch, int.MaxValue)) > 0) list.AddRange(batch.AsSpan(0, n).ToArray());
        return list;
    }

    [Theory]
    [InlineData(Data + 1, 2)]
    [InlineData(2 * Data + 5, 3)]
    [InlineData(9014, 6)]
    [InlineData(9216 + 22, 6)]
    [InlineData(17 * Data, 17)]
    public void A_frame_spans_as_many_descriptors_as_it_needs_with_eop_on_the_last(int len, int buffers)
    {
        var pool = new PagePool(128);
        var ring = new RxRing(pool, size: 64) { MaxFrameSize = 17 * Data };
        var frame = Frame(len, 3);
        Assert.True(ring.TryReceive(frame, 5, 9, PktHashType.L4));
        Assert.Equal(buffers, ring.Pending);
        var d = PollAll(ring);
        Assert.Equal(buffers, d.Count);
        for (int i = 0; i < buffers; i++)
        {
            Assert.True(d[i].Done);
            Assert.Equal(i == buffers - 1, d[i].Eop);
            Assert.Equal(i < buffers - 1 ? Data : len - (buffers - 1) * Data, d[i].Length);
            Assert.Equal(9u, d[i].RssHash);
        }
        // Packets and bytes count the frame once; every buffer but the last is a non-EOP descriptor.
        Assert.Equal(1, ring.RxPackets);
        Assert.Equal(len, ring.RxBytes);
        Assert.Equal(buffers - 1, ring.NonEopDescs);
        Assert.Equal(buffers - 1, ring.Stats.NonEopDescs);

        var skbs = new SkbPool(8);
        var skb = new SkbBuilder(skbs).BuildSkb(pool, d.ToArray(), 2, pool.Headroom, d[0].Length);
        Assert.NotNull(skb);
        Assert.True(skb.Validate(out var problem), problem);
        Assert.Equal(len, skb.Len);
        Assert.Equal(Data, skb.HeadLen);
        Assert.Equal(buffers - 1, skb.NrFrags);
        Assert.Equal(buffers * pool.BufferSize, skb.TrueSize);
        for (int i = 0; i < skb.NrFrags; i++)
        {
            ref var f = ref skb.Frag(i);
            Assert.Equal(d[i + 1].BufferIndex, f.Index);
            Assert.Equal(pool.Headroom, f.Offset); // every buffer keeps the headroom in front of its data
            Assert.Equal(d[i + 1].Length, f.Size);
        }
        var copy = new byte[len];
        Assert.True(skb.CopyTo(copy));
        Assert.Equal(frame, copy);
        Assert.Equal(2, skb.QueueMapping);
        int inUse = pool.InUse;
        skb.Free();
        Assert.Equal(inUse - buffers, pool.InUse); // every buffer goes back with the skb
    }

    [Fact]
    public void A_frame_wraps_around_the_end_of_the_ring()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16) { MaxFrameSize = 4 * Data };
        var batch = new RxDescriptor[16];
        for (int i = 0; i < 14; i++) Assert.True(ring.TryReceive(Frame(60, i), 0, 0, PktHashType.None));
        foreach (var x in batch.AsSpan(0, ring.Poll(batch, int.MaxValue))) pool.Return(x.BufferIndex);
        ring.Refill();
        // Next descriptor is slot 14: a 4-buffer frame takes 14, 15, 0, 1.
        var frame = Frame(3 * Data + 100, 7);
        Assert.True(ring.TryReceive(frame, 0, 0, PktHashType.None));
        var d = PollAll(ring);
        Assert.Equal(4, d.Count);
        Assert.Equal([false, false, false, true], d.Select(x => x.Eop).ToArray());
        var skb = new SkbBuilder(new SkbPool(4)).BuildSkb(pool, d.ToArray(), 0, pool.Headroom, d[0].Length)!;
        var copy = new byte[frame.Length];
        Assert.True(skb.CopyTo(copy));
        Assert.Equal(frame, copy);
        skb.Free();
    }

    [Fact]
    public void Ring_full_mid_frame_drops_the_whole_frame_and_takes_no_descriptor()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16) { MaxFrameSize = 4 * Data }; // 15 posted
        for (int i = 0; i < 13; i++) Assert.True(ring.TryReceive(Frame(60, i), 0, 0, PktHashType.None));
        // Two free descriptors: a three-buffer frame does not fit, the NIC drops it whole (one rx_missed).
        Assert.False(ring.TryReceive(Frame(2 * Data + 1, 1), 0, 0, PktHashType.None));
        Assert.Equal(1, ring.RxMissed);
        Assert.Equal(13, ring.Pending);
        Assert.Equal(2, ring.Posted);
        // A two-buffer frame still fits exactly.
        Assert.True(ring.TryReceive(Frame(Data + 1, 2), 0, 0, PktHashType.None));
        Assert.Equal(15, ring.Pending);
        var d = PollAll(ring);
        Assert.Equal(15, d.Count);
        Assert.Equal(14, ring.RxPackets);
        Assert.Equal(1, ring.NonEopDescs);
        Assert.True(d[^1].Eop && !d[^2].Eop);
        foreach (var x in d) pool.Return(x.BufferIndex);
    }

    [Fact]
    public void Poll_budget_counts_frames_not_buffers()
    {
        var pool = new PagePool(128);
        var ring = new RxRing(pool, size: 64) { MaxFrameSize = 4 * Data };
        for (int i = 0; i < 5; i++) Assert.True(ring.TryReceive(Frame(2 * Data + 1, i), 0, 0, PktHashType.None)); // 3 buffers each
        var batch = new RxDescriptor[64];
        int n = ring.Poll(batch, maxFrames: 2);
        Assert.Equal(6, n);
        Assert.True(batch[5].Eop);
        Assert.Equal(2, ring.RxPackets);
        // A batch that ends inside a frame hands out its first buffers; the rest follows.
        n = ring.Poll(batch.AsSpan(0, 4), int.MaxValue);
        Assert.Equal(4, n);
        Assert.Equal(3, ring.RxPackets);
        Assert.False(batch[3].Eop);
    }

    [Fact]
    public void Frames_past_max_frame_size_are_oversize()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16) { MaxFrameSize = 3000 };
        Assert.True(ring.TryReceive(Frame(3000, 1), 0, 0, PktHashType.None));
        Assert.False(ring.TryReceive(Frame(3001, 1), 0, 0, PktHashType.None));
        Assert.Equal(1, ring.RxOversize);
        Assert.Equal(1, ring.Stats.RxLengthErrors);
        Assert.Equal(0, ring.RxMissed);
    }

    [Fact]
    public void Construct_skb_copies_the_headers_and_attaches_every_buffer_as_a_frag()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16) { MaxFrameSize = 9216 + 22 };
        var frame = SkbBuilderTests.Tcp4Frame(8948);
        Assert.True(ring.TryReceive(frame, 0, 0, PktHashType.None));
        var d = PollAll(ring).ToArray();
        Assert.Equal(6, d.Length);
        var builder = new SkbBuilder(new SkbPool(4), SkbBuilder.CreateHeadPool(4));
        var skb = builder.ConstructSkb(pool, d, 0, pool.Headroom, d[0].Length)!;
        Assert.True(skb.Validate(out var problem), problem);
        Assert.Equal(14 + 20 + 32, skb.HeadLen);
        Assert.Equal(6, skb.NrFrags); // the first buffer's rest, then five more buffers
        Assert.Equal(pool.Headroom + 66, skb.Frag(0).Offset);
        Assert.Equal(Data - 66, skb.Frag(0).Size);
        var copy = new byte[frame.Length];
        Assert.True(skb.CopyTo(copy));
        Assert.Equal(frame, copy);
        skb.Free();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Build_batch_makes_one_skb_per_frame_whatever_its_buffers(bool construct)
    {
        var pool = new PagePool(128);
        var ring = new RxRing(pool, size: 64) { MaxFrameSize = 9216 + 22 };
        var frames = new[] { SkbBuilderTests.Tcp4Frame(100), SkbBuilderTests.Tcp4Frame(8948), SkbBuilderTests.Tcp4Frame(2000), SkbBuilderTests.Tcp4Frame(10) };
        foreach (var f in frames) Assert.True(ring.TryReceive(f, 0, 0, PktHashType.None));
        var d = PollAll(ring).ToArray();
        Assert.Equal(1 + 6 + 2 + 1, d.Length);
        var builder = new SkbBuilder(new SkbPool(8), SkbBuilder.CreateHeadPool(8));
        var output = new Skb?[8];
        Assert.Equal(4, builder.BuildBatch(ring, d, output, construct));
        for (int i = 0; i < frames.Length; i++)
        {
            var copy = new byte[frames[i].Length];
            Assert.True(output[i]!.CopyTo(copy));
            Assert.Equal(frames[i], copy);
            output[i]!.Free();
        }
        Assert.Throws<ArgumentException>(() => builder.BuildBatch(ring, d.AsSpan(0, 3), output));
    }

    // ---------------- the NIC: MTU, oversize, aggregates ----------------

    private sealed class Collector : IRxHandler
    {
        public readonly List<(int Len, int Frags, int Segs, byte[] Bytes)> Skbs = [];
        public readonly List<int> PollWork = [];
        public bool Keep = true;

        public void Receive(Skb skb, RxQueue queue)
        {
            Assert.True(skb.Validate(out var problem), problem);
            if (Keep)
            {
                var bytes = new byte[skb.Len];
                Assert.True(skb.CopyTo(bytes));
                Skbs.Add((skb.Len, skb.NrFrags, skb.GsoSegs, bytes));
            }
            skb.Free();
        }

        public void PollEnd(RxQueue queue, int workDone, int budget) => PollWork.Add(workDone);
    }

    private static (VirtualNic Nic, NapiEngine Engine, Collector Stack) Nic(NicOptions options)
    {
        var engine = new NapiEngine(new NapiEngineOptions());
        var stack = new Collector();
        return (new VirtualNic(options, engine, stack), engine, stack);
    }

    [Fact]
    public void Mtu_9000_receives_jumbo_frames_multi_buffer_and_drops_longer_ones_as_oversize()
    {
        var (nic, engine, stack) = Nic(new NicOptions { Mtu = 9000 });
        var jumbo = SkbBuilderTests.Tcp4Frame(9000 - 20 - 32);               // 9014 bytes: fits
        var tagged = SkbBuilderTests.Tcp4Frame(9000 - 20 - 32, vlan: true);  // 9018 with its VLAN tag: fits
        var udpTooLong = Frame(9015, 1);                                     // one byte over, not TCP: oversize
        Assert.Equal(DropReason.None, nic.Offer(jumbo, 10));
        Assert.Equal(DropReason.None, nic.Offer(tagged, 11));
        Assert.Equal(DropReason.FrameTooLong, nic.Offer(udpTooLong, 12));
        engine.RunUntilIdle();
        Assert.Equal(2, stack.Skbs.Count);
        Assert.Equal((9014, 5), (stack.Skbs[0].Len, stack.Skbs[0].Frags));
        Assert.Equal(jumbo, stack.Skbs[0].Bytes);
        Assert.Equal(tagged, stack.Skbs[1].Bytes);
        var s = nic.Queues[0].Ring.Stats;
        Assert.Equal(2, s.RxPackets);
        Assert.Equal(9014 + 9018, s.RxBytes);
        Assert.Equal(10, s.NonEopDescs);
        Assert.Equal(1, s.RxOversize);
        Assert.Equal(1, s.RxLengthErrors);
        nic.Drain();
        Assert.Equal(0, nic.Queues[0].Pool.InUse);
    }

    [Fact]
    public void Default_mtu_1500_drops_a_frame_one_byte_over_and_allows_a_vlan_tag()
    {
        var (nic, engine, stack) = Nic(new NicOptions());
        Assert.Equal(DropReason.None, nic.Offer(Frame(1514, 1), 1));
        Assert.Equal(DropReason.FrameTooLong, nic.Offer(Frame(1515, 1), 2));
        var tagged = Frame(1518, 2);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(12), 0x8100);
        BinaryPrimitives.WriteUInt16BigEndian(tagged.AsSpan(16), 0x88B5);
        Assert.Equal(DropReason.None, nic.Offer(tagged, 3));
        engine.RunUntilIdle();
        Assert.Equal(2, stack.Skbs.Count);
        Assert.Equal(1, nic.Queues[0].Ring.RxOversize);
    }

    [Fact]
    public void A_64k_tcp_frame_from_a_gro_capture_becomes_a_gso_skb_with_frags_and_a_frag_list()
    {
        var (nic, engine, stack) = Nic(new NicOptions());
        var frame = SkbBuilderTests.Tcp4Frame(65535 - 20 - 32); // 65549 bytes: what tcpdump saw after GRO
        Assert.Equal(DropReason.None, nic.Offer(frame, 1));
        engine.RunUntilIdle();
        var (len, frags, segs, bytes) = Assert.Single(stack.Skbs);
        Assert.Equal(frame.Length, len);
        Assert.Equal(Skb.MaxFrags, frags);
        Assert.Equal((65535 - 52 + 1447) / 1448, segs); // MSS of a 1500 MTU with timestamps: 1448
        Assert.Equal(frame, bytes);
        var s = nic.Queues[0].Ring.Stats;
        Assert.Equal((1, segs, 0L), (s.RxGroSkbs, s.RxGroPackets, s.RxOversize));
        Assert.Equal(segs - 1, nic.Queues[0].AggregateSegments);
        nic.Drain();
        Assert.Equal(0, nic.Queues[0].Pool.InUse);
    }

    [Fact]
    public void Aggregate_skb_fields_follow_a_hardware_gro_completion()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 64);
        var frame = SkbBuilderTests.Tcp4Frame(20000);
        Assert.True(TcpAggregate.TryParse(frame, 1500, out var agg));
        Assert.Equal(new RxAggregate(1448, 14, 34, GsoType.TcpV4), agg);
        Assert.True(ring.TryReceive(frame, 0, 0, PktHashType.None, 0, agg));
        var d = PollAll(ring).ToArray();
        var skb = new SkbBuilder(new SkbPool(4)).BuildSkb(pool, d, 0, pool.Headroom, d[0].Length)!;
        Assert.Equal((1448, 14, GsoType.TcpV4), (skb.GsoSize, skb.GsoSegs, skb.GsoType));
        Assert.Equal(CsumState.Partial, skb.IpSummed);
        Assert.Equal(skb.Data + 34, skb.CsumStart);
        Assert.Equal(16, skb.CsumOffset);
        Assert.Null(skb.FragList); // 12 buffers: head + 11 frags
        skb.Free();
        // Not an aggregate: UDP, or lengths that disagree with the frame, or a payload within one MSS.
        var udp = SkbBuilderTests.Udp6Frame(3000, false);
        Assert.False(TcpAggregate.TryParse(udp, 1500, out _));
        var cut = frame.AsSpan(0, frame.Length - 1).ToArray();
        Assert.False(TcpAggregate.TryParse(cut, 1500, out _));
        Assert.False(TcpAggregate.TryParse(SkbBuilderTests.Tcp4Frame(1448), 1500, out _));
    }

    [Fact]
    public void A_frame_split_over_two_ring_polls_is_assembled_across_them()
    {
        // Weight 64: the queue takes at most 64 descriptors per ring poll; eleven 6-buffer frames need 66, so the
        // 11th frame's first four buffers wait in the queue while the next ring poll brings the last two.
        var (nic, engine, stack) = Nic(new NicOptions { Mtu = 9000, RingSize = 128 });
        var frames = Enumerable.Range(0, 11).Select(i => SkbBuilderTests.Tcp4Frame(8948 - i)).ToList();
        foreach (var f in frames) Assert.Equal(DropReason.None, nic.Offer(f, 1));
        engine.RunUntilIdle();
        Assert.Equal(frames.Count, stack.Skbs.Count);
        for (int i = 0; i < frames.Count; i++) Assert.Equal(frames[i], stack.Skbs[i].Bytes);
        Assert.Equal(0, nic.Queues[0].PartialFrameBuffers);
        Assert.Equal(11, stack.PollWork.Sum());
    }

    [Fact]
    public void Napi_budget_counts_multi_buffer_frames_once()
    {
        var (nic, engine, stack) = Nic(new NicOptions { Mtu = 9000, RingSize = 1024, Weight = 8 });
        for (int i = 0; i < 20; i++) Assert.Equal(DropReason.None, nic.Offer(SkbBuilderTests.Tcp4Frame(8948), 1));
        engine.RunUntilIdle();
        Assert.Equal(20, stack.Skbs.Count);
        Assert.All(stack.PollWork, w => Assert.InRange(w, 0, 8));
        Assert.Equal([8, 8, 4], stack.PollWork.Where(w => w > 0).ToArray());
    }

    [Fact]
    public void Mtu_is_validated_against_the_buffers_an_skb_can_hold()
    {
        Assert.Throws<ArgumentException>(() => new NicOptions { Mtu = 9217 }.Validate());
        Assert.Throws<ArgumentException>(() => new NicOptions { Mtu = 67 }.Validate());
        Assert.Throws<ArgumentException>(() => new NicOptions { Mtu = 9216, BufferSize = 768 }.Validate()); // 19 x 512 bytes
        new NicOptions { Mtu = 9216 }.Validate();
    }

    [Fact]
    public void Jumbo_receive_allocates_nothing_per_frame()
    {
        var (nic, engine, stack) = Nic(new NicOptions { Mtu = 9000, RingSize = 256 });
        stack.Keep = false;
        var jumbo = SkbBuilderTests.Tcp4Frame(8948);
        var aggregate = SkbBuilderTests.Tcp4Frame(40000);
        void Run(int n)
        {
            for (int i = 0; i < n; i++)
            {
                nic.Offer(i % 8 == 0 ? aggregate : jumbo, i + 1);
                if (i % 16 == 15) engine.RunUntilIdle();
            }
            engine.RunUntilIdle();
        }
        Run(2000);
        int rounds = AllocationAssert.NothingPerOperation(() => Run(20000), 20000, "jumbo frames");
        Assert.Equal(0, nic.Queues[0].Drops.Total);
        Assert.Equal(2000 + 20000 * rounds, nic.Queues[0].Ring.RxPackets);
    }
}
