using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>GRO on skbs the NIC built from several RX buffers (jumbo frames) and on hardware-GRO aggregates
/// (GSO skbs): skb_gro_receive's frag and size limits, dev_gro_receive's and tcp_gro_receive's GSO rules.
/// The byte-for-byte comparison with the kernel is GroJumboKernelComparisonTests (kernel tests).</summary>
public class GroJumboTests
{
    private sealed record Out(int Len, int Frags, int FragListMembers, int MembersFrags, int GsoSize, int GsoSegs, GsoType GsoType, byte[] Bytes);

    private sealed class Recorder : IGroSink
    {
        public readonly List<Out> Skbs = [];

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (var skb in batch)
            {
                Assert.True(skb.Validate(out var problem), problem);
                int members = 0, memberFrags = 0;
                for (var m = skb.FragList; m != null; m = m.Next) { members++; memberFrags += m.NrFrags; }
                Skbs.Add(new Out(skb.Len, skb.NrFrags, members, memberFrags, skb.GsoSize, skb.GsoSegs, skb.GsoType, GroTap.ToArray(skb)));
                skb.Free();
            }
        }
    }

    /// <summary>An RX ring of 2 KB buffers in front of a GRO engine, as the replay path has it.</summary>
    private sealed class Rig
    {
        public readonly PagePool Pool = new(4096);
        public readonly RxRing Ring;
        public readonly SkbBuilder Builder = new(new SkbPool(4096));
        public readonly Recorder Sink = new();
        public readonly GroEngine Engine;
        private readonly RxDescriptor[] _descs = new RxDescriptor[64];
        private readonly int _mtu;

        public Rig(int mtu, GroOptions? o = null)
        {
            _mtu = mtu;
            Ring = new RxRing(Pool, 256) { MaxFrameSize = mtu + 22 };
            Engine = new GroEngine(o ?? new GroOptions { RxChecksum = RxChecksum.Unnecessary }, Sink);
        }

        public GroResult Rx(byte[] frame, long now = 1)
        {
            RxAggregate agg = default;
            if (frame.Length > _mtu + 14) Assert.True(TcpAggregate.TryParse(frame, _mtu, out agg));
            Assert.True(Ring.TryReceive(frame, now, 0, PktHashType.None, 0, agg));
            int n = Ring.Poll(_descs, 1);
            var skb = Builder.BuildSkb(Pool, _descs.AsSpan(0, n), 0, Pool.Headroom, _descs[0].Length)!;
            if (skb.IpSummed != CsumState.Partial) GroReplay.SetChecksumState(skb, Engine.Options.RxChecksum);
            return Engine.Receive(skb, now);
        }

        public void Flush() => Engine.PollComplete(1, 64, 1);
    }

    [Fact]
    public void Jumbo_segments_merge_seven_to_a_64k_skb_frags_first_then_frag_list()
    {
        var r = new Rig(9000);
        var seg = new TcpSeg { PayloadLen = 8948 };
        var sent = new List<byte[]>();
        for (int i = 0; i < 16; i++, seg = seg.Next())
        {
            var f = seg.Build();
            Assert.Equal(9014, f.Length);
            sent.Add(f);
            r.Rx(f);
        }
        r.Flush();
        Assert.Equal([62702, 62702, 17962], r.Sink.Skbs.Select(s => s.Len + 14).ToArray());
        var first = r.Sink.Skbs[0];
        // Each 9014-byte frame is 6 buffers: head + 5 frags. The second and third segments' heads and frags fill
        // the 17 slots; the other four are chained on the frag_list, each stealing the next one's head and frags.
        Assert.Equal(Skb.MaxFrags, first.Frags);
        Assert.Equal(2, first.FragListMembers);
        Assert.Equal((8948, 7, GsoType.TcpV4), (first.GsoSize, first.GsoSegs, first.GsoType));
        Assert.Equal(2, r.Sink.Skbs[2].GsoSegs);
        Assert.Equal(16, r.Engine.Stats.DeliveredSegments);
        Assert.Equal(16 * 6, r.Ring.Stats.NonEopDescs + 16);
        // Payload bytes survive in order.
        var payload = r.Sink.Skbs.SelectMany(s => s.Bytes.Skip(14 + 20 + 32)).ToArray();
        Assert.Equal(sent.SelectMany(f => f.Skip(14 + 20 + 32)).ToArray(), payload);
    }

    [Fact]
    public void A_whole_aggregate_is_held_counts_as_its_segments_and_takes_segments_of_its_size()
    {
        var r = new Rig(1500);
        var agg = new TcpSeg { PayloadLen = 3 * 1448 };
        Assert.Equal(GroResult.Held, r.Rx(agg.Build()));
        // The aggregate kept its first segment's IP ID; the wire segment after it has ID + 3 (inet_gro_receive
        // expects the held ID plus the held count).
        var next = agg.Next(1448) with { Id = (ushort)(agg.Id + 3) };
        Assert.Equal(GroResult.MergedFree, r.Rx(next.Build()));
        // Another aggregate with the same gso_size merges too; its 2 segments add to the count.
        var third = next.Next(2 * 1448);
        Assert.Equal(GroResult.MergedFree, r.Rx(third.Build()));
        r.Flush();
        var o = Assert.Single(r.Sink.Skbs);
        Assert.Equal((1448, 6), (o.GsoSize, o.GsoSegs));
        Assert.Equal(14 + 20 + 32 + 6 * 1448, o.Len + 14);
    }

    [Fact]
    public void An_aggregate_with_a_short_last_segment_or_another_gso_size_ends_the_flow()
    {
        var r = new Rig(1500);
        var a = new TcpSeg { PayloadLen = 2 * 1448 + 100 }; // 3 segments, the last short: flushed at once
        Assert.Equal(GroResult.Normal, r.Rx(a.Build()));
        r.Flush();
        Assert.Single(r.Sink.Skbs);
        Assert.Equal(3, r.Sink.Skbs[0].GsoSegs);
        Assert.Equal(1448, r.Sink.Skbs[0].GsoSize);

        var r2 = new Rig(1500);
        var b = new TcpSeg { PayloadLen = 1000 };
        Assert.Equal(GroResult.Held, r2.Rx(b.Build()));                        // gso_size 1000
        Assert.Equal(GroResult.Held, r2.Rx(b.Next(2 * 1448).Build()));          // gso_size 1448 != 1000: not merged
        r2.Flush();
        Assert.Equal([1, 2], r2.Sink.Skbs.Select(s => Math.Max(s.GsoSegs, 1)).ToArray());
    }

    [Fact]
    public void A_64k_aggregate_with_a_frag_list_goes_up_unmerged()
    {
        var r = new Rig(1500);
        var a = new TcpSeg { PayloadLen = 45 * 1448 };
        Assert.Equal(GroResult.Normal, r.Rx(a.Build()));
        r.Flush();
        var o = Assert.Single(r.Sink.Skbs);
        Assert.True(o.FragListMembers > 0);
        Assert.Equal((1448, 45), (o.GsoSize, o.GsoSegs));
        Assert.Equal(a.Build(), o.Bytes);
    }
}
