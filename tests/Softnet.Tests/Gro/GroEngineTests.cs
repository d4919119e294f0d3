using CsCheck;
using Softnet.Gro;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>The list machinery of net/core/gro.c and dev.c: buckets, MAX_GRO_SKBS, ageing, flush timeout,
/// gro_normal batching.</summary>
public class GroEngineTests
{
    private sealed class Recorder : IGroSink
    {
        public readonly List<byte[]> Frames = new();
        public readonly List<int> BatchSizes = new();

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            BatchSizes.Add(batch.Length);
            foreach (var skb in batch)
            {
                Frames.Add(GroTap.ToArray(skb));
                skb.Free();
            }
        }
    }

    private sealed class Rig
    {
        public readonly PagePool Pool = new(4096);
        public readonly SkbPool Skbs = new(4096);
        public readonly Recorder Sink = new();
        public readonly GroEngine Engine;

        public Rig(GroOptions? o = null) => Engine = new GroEngine(o ?? new GroOptions(), Sink);

        public GroResult Rx(TcpSeg s, long now, uint hash = 0) => Rx(s.Build(), now, hash);

        public GroResult Rx(byte[] frame, long now, uint hash = 0)
        {
            Assert.True(Pool.TryRent(out int i));
            frame.CopyTo(Pool.Slice(i, Pool.Headroom, frame.Length));
            var skb = Skbs.Build(Pool, i, Pool.Headroom, frame.Length)!;
            skb.ResetMacHeader();
            if (hash != 0) skb.SetHash(hash, PktHashType.L4);
            return Engine.Receive(skb, now);
        }

        public ushort[] Sports => Sink.Frames.Select(f => Delivered.Parse(f).Sport).Select(p => (ushort)p).ToArray();
    }

    private static TcpSeg Flow(int i) => new() { Sport = (ushort)(10000 + i) };

    [Fact]
    public void Gro_results_held_merged_free_normal()
    {
        var r = new Rig();
        var a = new TcpSeg();
        Assert.Equal(GroResult.Held, r.Rx(a, 0));
        Assert.Equal(GroResult.MergedFree, r.Rx(a.Next(), 0));
        Assert.Equal(GroResult.Normal, r.Rx(a.Next().Next(0), 0));
        Assert.Equal(1, r.Engine.Stats.Held);
        Assert.Equal(1, r.Engine.Stats.Merged);
    }

    [Fact]
    public void Gro_merges_past_17_frags_onto_the_frag_list()
    {
        var r = new Rig();
        var t = GroRun.Train(new TcpSeg(), 20);
        var results = t.Select(s => r.Rx(s, 0)).ToList();
        Assert.Equal(GroResult.Held, results[0]);
        Assert.All(results.Skip(1).Take(17), x => Assert.Equal(GroResult.MergedFree, x));
        Assert.Equal(GroResult.Merged, results[18]); // frags full: the skb itself joins the frag_list
        Assert.Equal(GroResult.MergedFree, results[19]); // then frags go onto that frag_list member
        r.Engine.PollComplete(20, 64, 0);
        Assert.Equal([2000], Delivered.Payloads(r.Sink.Frames));
        Assert.Equal(1, r.Engine.Stats.FragListMerges);
        Assert.Equal(0, r.Skbs.InUse);
        Assert.Equal(0, r.Pool.InUse);
    }

    [Fact]
    public void Gro_max_gro_skbs_evicts_the_oldest_of_a_bucket()
    {
        var r = new Rig();
        for (int i = 0; i < 9; i++) r.Rx(Flow(i), 0);
        // The ninth flow pushed out the first one at once (queued on rx_list, not yet passed up).
        Assert.Equal(1, r.Engine.Stats.Flushed(GroFlushReason.EvictedOldest));
        Assert.Equal(8, r.Engine.HeldCount);
        r.Engine.PollComplete(9, 64, 0);
        // Poll end flushes the bucket oldest first.
        Assert.Equal(Enumerable.Range(0, 9).Select(i => (ushort)(10000 + i)).ToArray(), r.Sports);
    }

    [Fact]
    public void Gro_interleaved_flows_beyond_the_list_do_not_merge()
    {
        var r = new Rig();
        var flows = Enumerable.Range(0, 10).Select(Flow).ToArray();
        for (int round = 0; round < 3; round++)
            for (int i = 0; i < 10; i++)
            {
                r.Rx(flows[i], 0);
                flows[i] = flows[i].Next();
            }
        r.Engine.PollComplete(30, 64, 0);
        // Round robin over 10 flows with 8 slots: every flow is evicted before its next segment arrives.
        Assert.All(Delivered.Payloads(r.Sink.Frames), p => Assert.Equal(100, p));
        Assert.Equal(30, r.Sink.Frames.Count);
    }

    [Fact]
    public void Gro_buckets_follow_the_rss_hash_and_flush_in_bucket_order()
    {
        var r = new Rig();
        // Flow 0 in bucket 5, flow 1 in bucket 2: bucket 2 is flushed first.
        r.Rx(Flow(0), 0, hash: 0x15);
        r.Rx(Flow(1), 0, hash: 0x12);
        r.Engine.PollComplete(2, 64, 0);
        Assert.Equal([10001, 10000], r.Sports);
    }

    [Fact]
    public void Gro_different_hash_never_merges()
    {
        var r = new Rig();
        var a = new TcpSeg();
        r.Rx(a, 0, hash: 0x1);
        r.Rx(a.Next(), 0, hash: 0x9); // same bucket (1), different raw hash
        r.Engine.PollComplete(2, 64, 0);
        Assert.Equal([100, 100], Delivered.Payloads(r.Sink.Frames));
    }

    [Fact]
    public void Gro_different_source_mac_is_another_flow()
    {
        var r = new Rig();
        var a = new TcpSeg();
        r.Rx(a, 0);
        r.Rx(a.Next() with { SrcMac = 9 }, 0);
        r.Engine.PollComplete(2, 64, 0);
        Assert.Equal([100, 100], Delivered.Payloads(r.Sink.Frames));
    }

    [Fact]
    public void Gro_flush_old_keeps_skbs_of_the_current_jiffy()
    {
        var r = new Rig();
        r.Rx(Flow(0), 100_000);
        // Budget used up: __napi_poll flushes only old skbs (HZ=1000: older than the current jiffy).
        r.Engine.PollComplete(64, 64, 900_000);
        Assert.Empty(r.Sink.Frames);
        r.Engine.PollComplete(64, 64, 1_000_000);
        Assert.Single(r.Sink.Frames);
        Assert.Equal(1, r.Engine.Stats.Flushed(GroFlushReason.Aged));
    }

    [Fact]
    public void Gro_flush_old_stops_at_the_first_young_skb_of_a_bucket()
    {
        var r = new Rig();
        r.Rx(Flow(0), 0);
        r.Rx(Flow(1), 1_500_000);
        r.Rx(Flow(2), 1_600_000);
        r.Engine.PollComplete(64, 64, 1_700_000);
        Assert.Equal([10000], r.Sports);
        Assert.Equal(2, r.Engine.HeldCount);
    }

    [Fact]
    public void Gro_hz_below_1000_flushes_all_when_budget_is_used()
    {
        var r = new Rig(new GroOptions { Hz = 250 });
        r.Rx(Flow(0), 0);
        r.Engine.PollComplete(64, 64, 0);
        Assert.Single(r.Sink.Frames);
    }

    [Fact]
    public void Gro_flush_interval_replaces_the_jiffy()
    {
        var r = new Rig(new GroOptions { FlushIntervalNs = 5_000_000 });
        r.Rx(Flow(0), 0);
        r.Engine.PollComplete(64, 64, 4_000_000);
        Assert.Empty(r.Sink.Frames);
        r.Engine.PollComplete(64, 64, 5_000_000);
        Assert.Single(r.Sink.Frames);
    }

    [Fact]
    public void Gro_flush_timeout_keeps_young_skbs_until_the_timer()
    {
        var r = new Rig(new GroOptions { GroFlushTimeoutNs = 200_000 });
        r.Rx(Flow(0), 10_000);
        r.Engine.PollComplete(1, 64, 20_000);
        Assert.Empty(r.Sink.Frames);
        Assert.Equal(220_000, r.Engine.TimerDeadlineNs);
        r.Engine.TimerFired(220_000);
        Assert.Single(r.Sink.Frames);
        Assert.Null(r.Engine.TimerDeadlineNs);
    }

    [Fact]
    public void Gro_without_timeout_poll_end_flushes_everything()
    {
        var r = new Rig();
        r.Rx(Flow(0), 0);
        r.Engine.PollComplete(1, 64, 0);
        Assert.Single(r.Sink.Frames);
        Assert.Equal(1, r.Engine.Stats.Flushed(GroFlushReason.PollEnd));
    }

    [Fact]
    public void Gro_normal_batches_of_eight_segments()
    {
        var r = new Rig();
        var ack = new TcpSeg { PayloadLen = 0 };
        for (int i = 0; i < 10; i++) r.Rx(ack with { Ack = 5000 + (uint)i }, 0);
        // Eight NORMAL packets fill a batch and go up; the other two wait for the end of the poll.
        Assert.Equal([8], r.Sink.BatchSizes);
        r.Engine.PollComplete(10, 64, 0);
        Assert.Equal([8, 2], r.Sink.BatchSizes);
    }

    [Fact]
    public void Gro_normal_batch_counts_segments_of_merged_skbs()
    {
        var r = new Rig();
        var t = GroRun.Train(new TcpSeg(), 9);
        foreach (var s in t) r.Rx(s, 0);
        r.Rx(t[8].Next() with { Ack = 1 }, 0); // ACK change: the 9-segment skb completes
        // One skb of 9 segments reaches the batch size on its own.
        Assert.Equal([1], r.Sink.BatchSizes);
        Assert.Equal([900], Delivered.Payloads(r.Sink.Frames));
    }

    [Fact]
    public void Gro_delivery_order_completed_flow_before_the_normal_packet()
    {
        var r = new Rig();
        var a = new TcpSeg();
        r.Rx(a, 0);
        r.Rx(a.Next() with { Flags = TcpSeg.AckF | TcpSeg.Syn }, 0);
        r.Engine.PollComplete(2, 64, 0);
        Assert.Equal([a.Seq, a.Seq + 100], r.Sink.Frames.Select(f => Delivered.Parse(f).Seq).ToArray());
    }

    [Fact]
    public void Gro_stats_count_flush_rules_and_histogram()
    {
        var r = new Rig();
        var a = new TcpSeg();
        r.Rx(a, 0);
        r.Rx(a.Next(), 0);
        r.Rx(a.Next().Next() with { Ack = 1 }, 0);
        r.Engine.PollComplete(3, 64, 0);
        var st = r.Engine.Stats;
        Assert.Equal(1, st.Flushed(GroFlushReason.AckChanged));
        Assert.Equal(1, st.Histogram(2));
        Assert.Equal(1, st.Histogram(1));
        Assert.Equal(1.5, st.MergeRatio);
        using var ms = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(ms)) st.WriteJson(w);
        using var doc = System.Text.Json.JsonDocument.Parse(ms.ToArray());
        Assert.Equal(1, doc.RootElement.GetProperty("flushed").GetProperty("flush_rule").GetProperty("ack_changed").GetInt32());
        Assert.Equal("gro", st.Key);
        Assert.Single(st.Flows);
    }

    [Fact]
    public void Gro_all_buffers_return_to_their_pools()
    {
        var r = new Rig();
        var t = GroRun.Train(new TcpSeg { PayloadLen = 1448 }, 100);
        foreach (var s in t) r.Rx(s, 0);
        r.Engine.PollComplete(100, 200, 0);
        Assert.Equal(0, r.Skbs.InUse);
        Assert.Equal(0, r.Pool.InUse);
    }
    /// <summary>Counts each delivered skb under its flow key, as GroStats did before it looked flows up by the RSS hash.</summary>
    private sealed class FlowTally : IGroSink
    {
        public readonly Dictionary<uint, (long Segments, long Skbs)> Flows = new();

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (var skb in batch)
            {
                uint key = FlowHash.Compute(skb);
                Flows.TryGetValue(key, out var c);
                Flows[key] = (c.Segments + Math.Max((int)skb.Gro.Count, 1), c.Skbs + 1);
                skb.Free();
            }
        }
    }

    [Fact]
    public void Per_flow_counts_found_by_rss_hash_match_the_flow_key()
    {
        // Flows that share a hash slot, one flow under several hashes, no hash, IP options, IPv6, UDP and ICMP:
        // a slot hit must be confirmed by the tuple, whatever the hash says.
        Gen.Select(Gen.Int[0, 15].Array[1, 300], Gen.Int[0, 4].Array[300]).Sample((flows, hashes) =>
        {
            var tally = new FlowTally();
            var engine = new GroEngine(new GroOptions(), tally);
            var pool = new PagePool(4096);
            var skbs = new SkbPool(4096);
            var segs = new TcpSeg[16];
            for (int f = 0; f < segs.Length; f++)
                segs[f] = new TcpSeg { Sport = (ushort)(1000 + (f & 1)), SrcIp = (byte)(1 + ((f >> 1) & 1)), IpOptions = (f & 4) != 0 ? [1, 1, 1, 1] : [], V6 = f == 15 };
            for (int n = 0; n < flows.Length; n++)
            {
                int f = flows[n];
                byte[] frame = segs[f].Build();
                segs[f] = segs[f].Next();
                if (f is 8 or 9) frame[14 + 9] = IpProtocols.Udp;
                if (f is 10) frame[14 + 9] = 1;
                Assert.True(pool.TryRent(out int b));
                frame.CopyTo(pool.Slice(b, pool.Headroom, frame.Length));
                var skb = skbs.Build(pool, b, pool.Headroom, frame.Length)!;
                skb.ResetMacHeader();
                uint hash = hashes[n] switch { 0 => 0u, 1 => 5u, 2 => 5u + 128, 3 => 77u, _ => (uint)f };
                if (hash != 0) skb.SetHash(hash, PktHashType.L4);
                engine.Receive(skb, n);
                if (n % 7 == 6) engine.PollComplete(7, 64, n);
            }
            engine.PollComplete(0, 64, flows.Length);
            var expected = tally.Flows.OrderBy(kv => kv.Key).ToList();
            // A sum of engines (the report's) and the engine's own flows both read the counts the RSS slots still hold,
            // without moving them: reading again counts nothing twice.
            Assert.Equal(expected, Summed(engine.Stats));
            var got = engine.Stats.Flows.ToDictionary(kv => kv.Key, kv => (kv.Value.Segments, kv.Value.Skbs));
            Assert.Equal(expected, got.OrderBy(kv => kv.Key));
            Assert.Equal(expected, Summed(engine.Stats));
        });

        static List<KeyValuePair<uint, (long, long)>> Summed(GroStats stats)
        {
            var total = GroStats.Empty(new GroOptions());
            total.AddFrom(stats);
            return total.Flows.ToDictionary(kv => kv.Key, kv => (kv.Value.Segments, kv.Value.Skbs)).OrderBy(kv => kv.Key).ToList();
        }
    }
}
