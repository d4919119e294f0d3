using Softnet.Napi;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Napi;

/// <summary>net_rx_action / napi_poll arithmetic in deterministic mode, checked against hand-traced kernel rounds.</summary>
public class NapiBudgetTests
{
    private static (NapiEngine Engine, FakePoller[] Pollers, IrqVector[] Irqs) Setup(int queues, long framesEach,
        NapiEngineOptions? options = null)
    {
        var engine = new NapiEngine(options ?? new NapiEngineOptions());
        var pollers = new FakePoller[queues];
        var irqs = new IrqVector[queues];
        for (int i = 0; i < queues; i++)
        {
            pollers[i] = new FakePoller(framesEach);
            irqs[i] = engine.AddQueue(pollers[i]);
        }
        foreach (var irq in irqs) irq.NotifyFrames((int)framesEach, 0);
        return (engine, pollers, irqs);
    }

    [Fact]
    public void ThreeQueues_EachRoundPollsEveryQueueOnce_NoSqueeze()
    {
        // 3 x 64 = 192 < 300: a round ends when its list is empty and only the repoll list is left (modern
        // net_rx_action), so the budget is never exhausted; 15 full rounds then one of 3 x 40.
        var (engine, pollers, irqs) = Setup(3, 1000);
        engine.Step(0);

        var cpu = engine.Cpus[0];
        Assert.Equal(3000, cpu.Processed);
        Assert.Equal(16, cpu.Rounds);
        Assert.Equal(0, cpu.TimeSqueeze);
        Assert.Equal(15, cpu.KsoftirqdRounds);
        Assert.Equal(1, cpu.KsoftirqdWakeups);
        Assert.Equal(48, cpu.Polls);
        Assert.False(cpu.HasWork);
        foreach (var p in pollers) Assert.Equal(1000, p.Consumed);
        foreach (var irq in irqs)
        {
            Assert.Equal(16, irq.Napi.Polls);
            Assert.Equal(15, irq.Napi.FullPolls);
            Assert.Equal(1, irq.Napi.Completions);
            Assert.Equal(1, irq.InterruptsFired);
            Assert.False(irq.IsMasked);
            Assert.Equal(NapiState.Idle, irq.Napi.State);
        }
    }

    [Fact]
    public void FiveQueues_BudgetRunsOut_TimeSqueeze()
    {
        // Round 1: 5 x 64 = 320 -> budget -20 -> squeeze. Round 2: each still returns 64 (== weight, so it stays
        // scheduled) -> squeeze. Round 3: every poll returns 0 and completes.
        var (engine, pollers, _) = Setup(5, 128);
        engine.Step(0);

        var cpu = engine.Cpus[0];
        Assert.Equal(640, cpu.Processed);
        Assert.Equal(2, cpu.TimeSqueeze);
        Assert.Equal(3, cpu.Rounds);
        Assert.Equal(15, cpu.Polls);
        foreach (var p in pollers) Assert.Equal(128, p.Consumed);
    }

    [Fact]
    public void SixQueues_SqueezedQueueGoesFirstNextRound()
    {
        // Round 1 polls A..E (squeeze, F untouched); the next list is [F] + repoll [A..E], so F is polled first.
        var (engine, pollers, irqs) = Setup(6, 100);
        int firstPollOfRound2 = -1;
        for (int i = 0; i < 6; i++)
        {
            int k = i;
            pollers[i].AfterPoll = p =>
            {
                if (engine.Cpus[0].Rounds == 2 && firstPollOfRound2 < 0) firstPollOfRound2 = k;
            };
        }
        engine.Step(0);

        var cpu = engine.Cpus[0];
        Assert.Equal(600, cpu.Processed);
        Assert.Equal(1, cpu.TimeSqueeze);
        Assert.Equal(3, cpu.Rounds);
        Assert.Equal(5, firstPollOfRound2);
        Assert.Equal(2, irqs[5].Napi.Polls); // 64 in round 2, 36 in round 3
        Assert.Equal(2, irqs[0].Napi.Polls);
    }

    [Fact]
    public void TimeLimit_VirtualCost_SqueezesReproducibly()
    {
        // 10 us per frame: A, B, C, D polls end at 640, 1280, 1920, 2560 us; the 2000 us limit is passed after D.
        var opts = new NapiEngineOptions { NsPerPacket = 10_000 };
        var (engine, _, _) = Setup(4, 1000, opts);
        engine.Step(0);
        Assert.Equal(256, engine.Cpus[0].Processed); // the CPU is busy until 2560 us: one round at t=0
        engine.RunUntilIdle();
        var cpu = engine.Cpus[0];
        Assert.Equal(4000, cpu.Processed);
        Assert.Equal(15, cpu.TimeSqueeze);
        Assert.Equal(16, cpu.Rounds);
        Assert.Equal(4000L * 10_000, cpu.FreeAtNs);

        // Half the cost: a full round takes 1280 us, never past the limit.
        var (engine2, _, _) = Setup(4, 1000, opts with { NsPerPacket = 5_000 });
        engine2.RunUntilIdle();
        Assert.Equal(0, engine2.Cpus[0].TimeSqueeze);
        Assert.Equal(4000, engine2.Cpus[0].Processed);
    }

    [Fact]
    public void BusyCpu_DefersLaterRoundsOnTheVirtualClock()
    {
        // 1 us per frame: 64 frames keep the CPU busy until 64 us; Step(10 us) must not start the second round.
        var opts = new NapiEngineOptions { NsPerPacket = 1_000 };
        var (engine, pollers, _) = Setup(1, 128, opts);
        engine.Step(10_000);
        Assert.Equal(64, pollers[0].Consumed);
        engine.Step(64_000);
        Assert.Equal(128, pollers[0].Consumed);
        Assert.Equal(128_000, engine.Cpus[0].FreeAtNs);
    }

    [Fact]
    public void Weight_IsConfigurable()
    {
        var engine = new NapiEngine();
        var p = new FakePoller(100);
        var irq = engine.AddQueue(p, weight: 16);
        irq.NotifyFrames(100, 0);
        engine.Step(0);
        Assert.Equal(7, irq.Napi.Polls); // 6 x 16 + 4
        Assert.Equal(100, engine.Cpus[0].Processed);
    }

    [Fact]
    public void Affinity_PicksLowestAllowedEngineCpu()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [1, 0] });
        var a = engine.AddQueue(new FakePoller(10), CpuMask.Parse("1"));
        var b = engine.AddQueue(new FakePoller(20), CpuMask.Parse("2"));
        var c = engine.AddQueue(new FakePoller(30), CpuMask.Parse("3"));
        var d = engine.AddQueue(new FakePoller(40), CpuMask.Parse("4")); // CPU 2 is not an engine CPU
        Assert.Equal(0, a.TargetCpu.Id);
        Assert.Equal(1, b.TargetCpu.Id);
        Assert.Equal(0, c.TargetCpu.Id);
        Assert.Equal(0, d.TargetCpu.Id);
        foreach (var v in engine.Vectors) v.NotifyFrames(1, 0);
        engine.Step(0);
        var byId = engine.Cpus.ToDictionary(x => x.Id);
        Assert.Equal(80, byId[0].Processed);
        Assert.Equal(20, byId[1].Processed);

        b.Affinity = CpuMask.Parse("1");
        Assert.Equal(0, b.TargetCpu.Id);
    }

    [Fact]
    public void Completion_RearmsInterrupt_AndFramesWhileMaskedAreSuppressed()
    {
        var engine = new NapiEngine();
        var p = new FakePoller();
        var irq = engine.AddQueue(p);

        p.Pending++;
        irq.NotifyFrames(1, 0);
        Assert.True(irq.IsMasked);
        Assert.Equal(NapiState.Scheduled, irq.Napi.State);

        p.Pending++;
        irq.NotifyFrames(1, 0); // NAPI already owns the queue
        Assert.Equal(1, irq.SuppressedWhileMasked);
        Assert.Equal(1, irq.InterruptsFired);

        engine.Step(0);
        Assert.False(irq.IsMasked);
        Assert.Equal(NapiState.Idle, irq.Napi.State);
        Assert.Equal(1, irq.Napi.Completions);
        Assert.Equal(2, p.Consumed);

        p.Pending++;
        irq.NotifyFrames(1, 1000);
        Assert.Equal(2, irq.InterruptsFired);
        engine.Step(1000);
        Assert.Equal(3, p.Consumed);
    }

    [Fact]
    public void FramesLandingBeforeRearm_FireAgainAtOnce()
    {
        var engine = new NapiEngine();
        var p = new FakePoller(10);
        var irq = engine.AddQueue(p);
        bool injected = false;
        p.AfterPoll = fp =>
        {
            // Descriptors written after the ring looked empty but before the driver re-enabled the interrupt.
            if (!injected) { injected = true; fp.Pending += 5; irq.NotifyFrames(5, 0); }
        };
        irq.NotifyFrames(10, 0);
        engine.Step(0);
        Assert.Equal(15, p.Consumed);
        Assert.Equal(2, irq.InterruptsFired);
        Assert.Equal(5, irq.SuppressedWhileMasked);
        Assert.False(irq.IsMasked);
    }

    [Fact]
    public void ScheduleWhileScheduled_IsMissed_AndCompletionReschedules()
    {
        var engine = new NapiEngine();
        var p = new FakePoller(3);
        var irq = engine.AddQueue(p);
        irq.NotifyFrames(3, 0);
        Assert.False(irq.Napi.Schedule(irq.TargetCpu, 0)); // already scheduled: NAPI_STATE_MISSED
        engine.Step(0);
        Assert.Equal(1, irq.Napi.MissedReschedules);
        Assert.Equal(2, irq.Napi.Polls);
        Assert.Equal(1, irq.Napi.Completions);
        Assert.Equal(NapiState.Idle, irq.Napi.State);
        Assert.False(irq.IsMasked);
    }

    [Fact]
    public void PollerReturningMoreThanBudget_Throws()
    {
        var engine = new NapiEngine();
        var irq = engine.AddQueue(new LyingPoller());
        irq.NotifyFrames(1, 0);
        Assert.Throws<InvalidOperationException>(() => engine.Step(0));
    }

    private sealed class LyingPoller : INapiPoller
    {
        public int Poll(int budget) => budget + 1;
        public bool HasWork => true;
    }
}
