using Softnet.Napi;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Napi;

/// <summary>A task (an application thread) on a CPU in deterministic mode: softirq first, ksoftirqd shares.</summary>
public class CpuTaskTests
{
    private sealed class Task(long cost, long more = 0) : CpuTask
    {
        public readonly List<long> Done = new();
        private long _more = more;
        public override long Start(long nowNs) => cost;
        public override long More(long nowNs)
        {
            long m = _more;
            _more = 0;
            return m;
        }
        public override void Complete(long nowNs) => Done.Add(nowNs);
    }

    [Fact]
    public void A_task_alone_completes_when_its_cpu_time_is_up()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0] });
        var t = new Task(5_000);
        engine.Cpus[0].WakeTask(t, 1_000);
        engine.RunUntilIdle();
        Assert.Equal([6_000], t.Done);
        Assert.Equal(5_000, engine.Cpus[0].TaskCpuNs);
    }

    [Fact]
    public void Softirq_preempts_the_task_and_delays_it_by_the_rounds_time()
    {
        // 100 frames at 100 ns each fit one round (netdev_budget 300): 10 µs of softirq.
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0], NsPerPacket = 100 });
        var poller = new FakePoller(100);
        var irq = engine.AddQueue(poller);
        var t = new Task(5_000);
        engine.Cpus[0].WakeTask(t, 1_000);
        engine.Step(2_000);          // the task has run 1 µs
        irq.NotifyFrames(100, 2_000); // the interrupt: NET_RX at 2 µs, a 10 µs round
        engine.RunUntilIdle();
        Assert.Equal(100, poller.Consumed);
        Assert.Equal([6_000 + 10_000], t.Done);
        Assert.Equal(10_000, engine.Cpus[0].TaskPreemptedNs);
    }

    [Fact]
    public void In_ksoftirqd_mode_the_task_and_the_rounds_share_the_cpu()
    {
        // netdev_budget 64 with 640 frames: every round leaves work, so all but the first run as ksoftirqd.
        var opts = new NapiEngineOptions { Cpus = [0], NsPerPacket = 100, NetdevBudget = 64 };
        var shared = new NapiEngine(opts);
        var poller = new FakePoller(640);
        var irq = shared.AddQueue(poller);
        var t = new Task(20_000);
        irq.NotifyFrames(640, 1);
        shared.Cpus[0].WakeTask(t, 1);
        shared.RunUntilIdle();
        var c = shared.Cpus[0];
        Assert.True(c.KsoftirqdRounds > 0);
        // Ten rounds of 6.4 µs; the task's 20 µs got half of each ksoftirqd round: it ends before all rounds are done
        // plus its own time would have taken (64 µs + 20 µs), and after 20 µs plus the first round.
        Assert.Single(t.Done);
        Assert.InRange(t.Done[0], 1 + 6_400 + 20_000, 1 + 64_000 + 20_000 - 1);
        Assert.Equal(640, poller.Consumed);
    }

    [Fact]
    public void Work_that_came_during_the_task_extends_it()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0] });
        var t = new Task(5_000, more: 3_000);
        engine.Cpus[0].WakeTask(t, 0);
        engine.RunUntilIdle();
        Assert.Equal([8_000], t.Done);
        Assert.Equal(8_000, engine.Cpus[0].TaskCpuNs);
    }

    [Fact]
    public void A_task_woken_twice_runs_once_per_wake_while_running()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0] });
        var t = new Task(1_000);
        var cpu = engine.Cpus[0];
        cpu.WakeTask(t, 0);
        cpu.WakeTask(t, 0); // running already: queued again once
        cpu.WakeTask(t, 0);
        engine.RunUntilIdle();
        Assert.Equal([1_000, 2_000], t.Done);
    }
}
