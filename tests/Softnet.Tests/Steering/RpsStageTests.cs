using Softnet.Capture.Generator;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Steering;
using Xunit;

namespace Softnet.Tests.Steering;

/// <summary>RPS and RFS between GRO and the stack: get_rps_cpu, the per-CPU backlogs and their counters.</summary>
public class RpsStageTests
{
    private sealed class Counter : IRxHandler
    {
        public long Received;
        public void Receive(Skb skb, RxQueue queue) { Received++; skb.Free(); }
        public void PollEnd(RxQueue queue, int workDone, int budget) { }
    }

    private static List<byte[]> Frames(int streams, long bytes = 300_000)
    {
        using var r = new GeneratorCaptureReader(new GeneratorOptions { Streams = streams, Bytes = bytes, Seed = 5 });
        var list = new List<byte[]>();
        while (r.TryRead(out _, out var f)) list.Add(f.ToArray());
        return list;
    }

    private static (VirtualNic Nic, NapiEngine Engine, RpsStage Rps, Counter Stack) Rig(RpsOptions o, NicOptions? nic = null)
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        var stack = new Counter();
        var rps = new RpsStage(engine, (nic ?? new NicOptions()).Queues, o, stack);
        return (new VirtualNic(nic ?? new NicOptions { Moderation = InterruptModeration.Immediate }, engine, rps), engine, rps, stack);
    }

    [Fact]
    public void Rps_cpus_moves_the_stack_to_the_masked_cpu_with_an_ipi_per_backlog_schedule()
    {
        Assert.True(CpuMask.TryParse("2", out var cpu1));
        var (nic, engine, rps, stack) = Rig(new RpsOptions { RpsCpus = cpu1 });
        var frames = Frames(2);
        long t = 1;
        foreach (var f in frames) { nic.Offer(f, t); t += 10_000; engine.Step(t); }
        engine.RunUntilIdle();
        Assert.Equal(frames.Count, stack.Received);
        Assert.Equal(frames.Count, rps.Steered);
        var c0 = engine.Cpus[0];
        var c1 = engine.Cpus[1];
        // The NIC's CPU polled the ring; CPU 1 ran every skb's stack out of its backlog, each backlog schedule an IPI.
        // processed counts __netif_receive_skb_core runs: all on CPU 1.
        Assert.Equal(0, c0.Processed);
        Assert.True(c0.Polls > 0);
        Assert.Equal(frames.Count, c1.Processed);
        Assert.True(c1.ReceivedRps > 0);
        Assert.Equal(c1.Rounds, c1.ReceivedRps);
        Assert.Equal(0, c0.ReceivedRps);
    }

    [Fact]
    public void Without_a_map_or_with_a_zero_hash_the_skb_goes_up_on_the_polling_cpu()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        var rps = new RpsStage(engine, 1, new RpsOptions { RpsCpus = CpuMask.Of(1) }, new Counter());
        var pool = new PagePool(4);
        var skbs = new SkbPool(4);
        var skb = skbs.Alloc(pool)!;
        Assert.Equal(-1, rps.GetRpsCpu(skb, 0, out _)); // hash 0
        skb.SetHash(0x8000_0000, PktHashType.L4);
        Assert.Equal(1, rps.GetRpsCpu(skb, 0, out int slot));
        Assert.Equal(-1, slot);
        skb.Free();
    }

    [Theory]
    [InlineData(0x12345678u, 256, 119)]
    [InlineData(1u, 256, 97)]
    [InlineData(0xffffffffu, 4096, 2531)]
    [InlineData(0xffffffffu, 1, 0)]
    public void Rfs_slot_is_hash_32_over_the_tables_bits(uint hash, int len, int slot)
        => Assert.Equal(slot, RpsBacklogs<int>.RfsSlot(hash, len));

    [Fact]
    public void Reciprocal_scale_picks_the_cpu_from_the_hash()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        Assert.True(CpuMask.TryParse("3", out var both));
        var rps = new RpsStage(engine, 1, new RpsOptions { RpsCpus = both }, new Counter());
        var pool = new PagePool(4);
        var skb = new SkbPool(4).Alloc(pool)!;
        foreach (var (hash, cpu) in new[] { (1u, 0), (0x7fff_ffffu, 0), (0x8000_0000u, 1), (0xffff_ffffu, 1) })
        {
            skb.SetHash(hash, PktHashType.L4);
            Assert.Equal(cpu, rps.GetRpsCpu(skb, 0, out _));
        }
        skb.Free();
    }

    [Fact]
    public void A_full_backlog_drops_past_netdev_max_backlog_plus_one_and_counts_on_the_target()
    {
        var (nic, engine, rps, stack) = Rig(new RpsOptions { RpsCpus = CpuMask.Of(1), NetdevMaxBacklog = 10 });
        var frames = Frames(1).Take(200).ToList();
        foreach (var f in frames) nic.Offer(f, 5); // one burst: CPU 0 polls them all before CPU 1 runs
        engine.RunUntilIdle();
        var c1 = engine.Cpus[1];
        // netdev_budget 300 lets CPU 0's first round take all 200: 11 fit the backlog (qlen <= 10 is still let in).
        Assert.Equal(11, stack.Received);
        Assert.Equal(189, c1.Dropped);
        Assert.Equal(189, rps.BacklogDrops);
        Assert.Equal(189, nic.Queues[0].Drops[DropReason.CpuBacklog]);
        Assert.Equal(0, engine.Cpus[0].Dropped);
    }

    [Fact]
    public void The_flow_limit_refuses_a_flow_that_fills_half_the_backlog_history()
    {
        // The flow limit is the enqueuing CPU's (CPU 0 polls the NIC), whatever backlog the packets go to.
        var (nic, engine, rps, stack) = Rig(new RpsOptions { RpsCpus = CpuMask.Of(1), NetdevMaxBacklog = 200, FlowLimitCpus = CpuMask.Of(0) });
        var one = Frames(1)[5]; // one direction of one flow: one hash
        var frames = Enumerable.Repeat(one, 300).ToList();
        foreach (var f in frames) nic.Offer(f, 5);
        engine.RunUntilIdle();
        var c0 = engine.Cpus[0];
        var c1 = engine.Cpus[1];
        // From half the backlog (100 queued) every packet of the one flow enters the history; the 65th is one more than
        // half of the 128 slots, and it and all after it are refused.
        Assert.Equal(100 + 64, stack.Received);
        Assert.Equal(300 - 164, c0.FlowLimitCount);
        Assert.Equal(0, c1.FlowLimitCount);
        Assert.Equal(300 - 164, c1.Dropped); // sd->dropped of the target backlog
    }

    [Fact]
    public void Rfs_steers_a_flow_to_its_readers_cpu_once_its_old_backlog_has_drained()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        var rps = new RpsStage(engine, 1, new RpsOptions { RpsCpus = CpuMask.Of(0), RpsFlowCnt = 256, SockFlowEntries = 1024 }, new Counter());
        var pool = new PagePool(4);
        var skb = new SkbPool(4).Alloc(pool)!;
        const uint hash = 0x1234_5678;
        skb.SetHash(hash, PktHashType.L4);
        Assert.Equal(0, rps.GetRpsCpu(skb, 0, out int slot)); // no reader recorded: the rps_cpus map
        Assert.Equal(-1, slot);
        rps.SockFlows!.Record(hash, 1); // the reader ran on CPU 1
        Assert.Equal(1, rps.GetRpsCpu(skb, 0, out slot));
        Assert.True(slot >= 0);
        // Another flow sharing the sock-table slot (same low bits, other high bits) is not taken for this one.
        skb.SetHash(hash ^ 0x8000_0000, PktHashType.L4);
        Assert.Equal(0, rps.GetRpsCpu(skb, 0, out _));
        skb.Free();
    }

    [Fact]
    public void Threaded_mode_is_refused()
    {
        using var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Threaded, Cpus = [0] });
        var e = Assert.Throws<ArgumentException>(() => new RpsStage(engine, 1, new RpsOptions { RpsCpus = CpuMask.Of(0) }, new Counter()));
        Assert.Contains("deterministic", e.Message);
    }
}
