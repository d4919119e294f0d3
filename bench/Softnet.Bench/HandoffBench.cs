using System.Diagnostics;
using Softnet.Napi;
using Softnet.Nic;

namespace Softnet.Bench;

/// <summary>
/// `bench pipeline --case handoff`: what the cross-CPU handoff costs deliver_64's driver poll (RxQueue.Poll: ring,
/// build_skb, free), apart from the NAPI loop and from preemption. The same poll runs on frames the port wrote from
/// the other CPU (the port offering bursts as fast as it goes, the poller spinning on the queue) and on frames the
/// polling thread wrote itself just before (deterministic mode's order), in alternating rounds so both see the same
/// load. Each poll is timed on its own and kept only if it returned frames and took under 20 µs, so a poll the
/// scheduler preempted does not count. On a shared machine the same-CPU figure holds within a few percent; the
/// cross-CPU one still moves with the load (the port's share of its CPU sets how full the ring runs), so compare
/// variants in alternating runs and by their first quartiles.
/// </summary>
internal static class HandoffBench
{
    private const double RoundSeconds = 0.3;

    public static int Run(BenchArgs args)
    {
        var allowed = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        if (allowed is null || allowed.Length < 2)
        {
            Console.WriteLine("handoff: skipped, needs two CPUs");
            return 0;
        }
        var frames = PipelineBench.SmallFrames();
        int rounds = args.Rounds > 0 ? args.Rounds : 12;
        var crossCpu = new List<double>();
        var sameCpu = new List<double>();
        var saved = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        try
        {
            for (int r = 0; r < rounds; r++)
            {
                double x = CrossCpu(frames, allowed[0], allowed[1]), y = SameCpu(frames, allowed[0]);
                if (r == 0) continue; // the JIT's tiers settle in the first round
                crossCpu.Add(x);
                sameCpu.Add(y);
            }
        }
        finally
        {
            if (saved is not null) CpuAffinity.TrySetCurrentThreadAffinity(saved);
        }
        crossCpu.Sort();
        sameCpu.Sort();
        double c = crossCpu[crossCpu.Count / 4], s = sameCpu[sameCpu.Count / 4];
        Console.WriteLine($"handoff deliver_64 poll, {rounds - 1} rounds of {RoundSeconds} s each way (first quartile / median of the rounds):");
        Console.WriteLine($"  written by the port on CPU {allowed[1]}, polled on CPU {allowed[0]}: {c,6:F1} / {crossCpu[crossCpu.Count / 2]:F1} ns/frame");
        Console.WriteLine($"  written and polled on CPU {allowed[0]}:{"",21} {s,6:F1} / {sameCpu[sameCpu.Count / 2]:F1} ns/frame");
        Console.WriteLine($"  cross-CPU handoff: {c - s:F1} ns/frame, {c / s:F2}x");
        return 0;
    }

    private static double CrossCpu(List<byte[]> frames, int pollCpu, int portCpu)
    {
        // Threaded mode for the pools' ownership (the poller's first rent claims them); no worker is started: the
        // poller below calls the queue's poll itself, and the vector, masked at the first interrupt, stays masked.
        using var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Threaded, Cpus = [pollCpu] });
        var nic = new VirtualNic(new NicOptions(), engine, new PipelineBench.FreeStack());
        var q = nic.Queues[0];
        int stop = 0;
        var sample = new Sample();
        var poller = new Thread(() =>
        {
            CpuAffinity.TryPinCurrentThread(pollCpu, out _);
            while (Volatile.Read(ref stop) == 0) sample.Poll(q);
        }) { IsBackground = true, Name = "handoff-poll" };
        poller.Start();
        CpuAffinity.TryPinCurrentThread(portCpu, out _);
        int cursor = 0;
        long end = Stopwatch.GetTimestamp() + (long)(RoundSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            for (int i = 0; i < 64; i++)
            {
                nic.OfferInBurst(frames[cursor], 1);
                if (++cursor == frames.Count) cursor = 0;
            }
            nic.EndBurst(1);
        }
        Volatile.Write(ref stop, 1);
        poller.Join();
        nic.Drain();
        return sample.NsPerFrame;
    }

    private static double SameCpu(List<byte[]> frames, int cpu)
    {
        CpuAffinity.TryPinCurrentThread(cpu, out _);
        var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Deterministic, Cpus = [cpu] });
        var nic = new VirtualNic(new NicOptions(), engine, new PipelineBench.FreeStack());
        var q = nic.Queues[0];
        var sample = new Sample();
        int fill = nic.Options.RingSize - 1, cursor = 0;
        long end = Stopwatch.GetTimestamp() + (long)(RoundSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < end)
        {
            for (int i = 0; i < fill; i++)
            {
                nic.Offer(frames[cursor], 1);
                if (++cursor == frames.Count) cursor = 0;
            }
            while (sample.Poll(q) > 0) { }
        }
        nic.Drain();
        return sample.NsPerFrame;
    }

    /// <summary>Polls timed one by one; preempted ones (20 µs or more) and empty ones left out.</summary>
    private sealed class Sample
    {
        private static readonly long Preempted = Stopwatch.Frequency / 50_000;
        private long _frames, _ticks;

        public int Poll(RxQueue q)
        {
            long t0 = Stopwatch.GetTimestamp();
            int n = q.Poll(NapiStruct.DefaultWeight);
            long dt = Stopwatch.GetTimestamp() - t0;
            if (n > 0 && dt < Preempted)
            {
                _frames += n;
                _ticks += dt;
            }
            return n;
        }

        public double NsPerFrame => _frames == 0 ? double.NaN : _ticks * 1e9 / Stopwatch.Frequency / _frames;
    }
}
