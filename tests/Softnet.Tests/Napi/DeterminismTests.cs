using Softnet.Tests.Support;
using System.Text;
using Softnet.Napi;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Napi;

/// <summary>Deterministic mode: same input, same counters; and nothing allocated per packet.</summary>
public class DeterminismTests
{
    private sealed record Scenario(long[] Ts, int[] Queue);

    private static Scenario MakeScenario(int frames, int queues, int seed)
    {
        var rng = new Random(seed);
        var ts = new long[frames];
        var q = new int[frames];
        long t = 0;
        for (int i = 0; i < frames; i++)
        {
            // Long bursts faster than the modelled CPUs can poll (rings back up, polls use their whole weight), then idle gaps.
            t += rng.Next(2000) == 0 ? rng.Next(100_000, 2_000_000) : rng.Next(50, 400);
            ts[i] = t;
            q[i] = rng.Next(queues);
        }
        return new Scenario(ts, q);
    }

    private static (NapiEngine Engine, FakePoller[] Pollers, IrqVector[] Irqs) Build(int queues)
    {
        var engine = new NapiEngine(new NapiEngineOptions
        {
            Cpus = [0, 1],
            NsPerPacket = 600,
            NsPerPoll = 500,
            NetdevBudgetUsecs = 50,
        });
        var pollers = new FakePoller[queues];
        var irqs = new IrqVector[queues];
        for (int i = 0; i < queues; i++)
        {
            pollers[i] = new FakePoller();
            var moderation = i % 2 == 0 ? new InterruptModeration(20, 16) : InterruptModeration.Immediate;
            irqs[i] = engine.AddQueue(pollers[i], CpuMask.Of(i % 2), moderation);
        }
        return (engine, pollers, irqs);
    }

    private static void Run(NapiEngine engine, FakePoller[] pollers, IrqVector[] irqs, Scenario s)
    {
        for (int i = 0; i < s.Ts.Length; i++)
        {
            engine.Step(s.Ts[i]);
            int q = s.Queue[i];
            pollers[q].Pending++;
            irqs[q].NotifyFrames(1, s.Ts[i]);
        }
        engine.RunUntilIdle();
    }

    private static string Snapshot(NapiEngine engine)
    {
        var sb = new StringBuilder(engine.FormatSoftnetStat());
        foreach (var c in engine.Cpus)
            sb.Append($"cpu{c.Id} rounds={c.Rounds} ksoftirqd={c.KsoftirqdRounds}/{c.KsoftirqdWakeups} polls={c.Polls} free={c.FreeAtNs}\n");
        foreach (var v in engine.Vectors)
            sb.Append($"irq{v.Index} fired={v.InterruptsFired} masked={v.SuppressedWhileMasked} coalesced={v.Coalesced} polls={v.Napi.Polls} full={v.Napi.FullPolls} done={v.Napi.Completions}\n");
        sb.Append(engine.NowNs);
        return sb.ToString();
    }

    [Fact]
    public void SameInput_IdenticalCounters()
    {
        var s = MakeScenario(100_000, 4, seed: 42);
        string[] runs = new string[2];
        for (int r = 0; r < 2; r++)
        {
            var (engine, pollers, irqs) = Build(4);
            Run(engine, pollers, irqs, s);
            runs[r] = Snapshot(engine);

            var totals = engine.Totals();
            Assert.Equal(100_000, totals.Processed);                 // conservation
            Assert.Equal(100_000, pollers.Sum(p => p.Consumed));
            Assert.True(totals.TimeSqueeze > 0, "scenario should squeeze so the test means something");
            Assert.True(totals.SuppressedWhileMasked > 0);
            Assert.True(totals.Coalesced > 0);
        }
        Assert.Equal(runs[0], runs[1]);
    }

    [Fact]
    public void PollLoop_AllocatesNothingPerPacket()
    {
        var s = MakeScenario(200_000, 4, seed: 7);
        var (warm, wp, wi) = Build(4);
        Run(warm, wp, wi, s); // JIT and tiering out of the way

        var (engine, pollers, irqs) = Build(4);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(engine, pollers, irqs, s);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(200_000, engine.Totals().Processed);
        AllocationAssert.NothingPerOperation(allocated, 200_000, "packets");
    }
}
