using System.Diagnostics;
using System.Text.Json;
using Softnet.Napi;
using Softnet.Nic;

namespace Softnet.Bench;

/// <summary>
/// The threaded figure of `bench pipeline`: the deliver path of deliver_64 (driver poll → build_skb → deliver)
/// with the NAPI worker pinned to one CPU and the port (the NIC's DMA) on another, in real time. The worker's cost
/// is its thread's CPU time (schedstat) over the packets it polled, so preemption by other work on a shared machine
/// does not count; end to end, packets polled over wall time and the ring_full drops the port saw.
/// Two runs: the port as fast as it goes (the worker saturated), then paced below what the worker sustains
/// (no ring_full drops expected).
/// </summary>
internal sealed class ThreadedBench
{
    /// <summary>Deterministic mode's CPU time per packet of the same poll, on the worker's CPU (thread CPU time,
    /// like the worker's figure, so preemption on a shared machine counts in neither).</summary>
    public required double DeterministicNs { get; init; }
    /// <summary>The same from wall time (deliver_64's figure).</summary>
    public required double DeterministicWallNs { get; init; }
    public required Run Saturated { get; init; }
    public required Run Paced { get; init; }
    public required int WorkerCpu { get; init; }
    public required int PortCpu { get; init; }

    public double Ratio => Saturated.WorkerNsPerPacket / DeterministicNs;

    /// <param name="WorkerNsPerPacket">the worker's CPU time while it had work (SoftnetCpu.BusyCpuNs) per packet polled</param>
    /// <param name="WorkerAllNsPerPacket">all of the worker thread's CPU time (schedstat), idle spinning included</param>
    internal sealed record Run(double OfferedPps, long Offered, long Polled, long RingFull, double WorkerNsPerPacket,
        double WorkerAllNsPerPacket, double Mpps, long Interrupts, long Rounds, long IdleWakeups);

    /// <summary>Null (and a line saying why) when fewer than two CPUs are allowed: the port and the worker need one each.</summary>
    public static ThreadedBench? Compare(List<byte[]> frames, double deterministicPps, double seconds)
    {
        var allowed = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        if (allowed is null || allowed.Length < 2)
        {
            Console.WriteLine("threaded: skipped, needs two CPUs (one for the port, one for the NAPI worker)");
            return null;
        }
        int worker = allowed[0], port = allowed[1];
        double deterministicCpuNs = DeterministicCpuNs(frames, worker, seconds);
        var saturated = Measure(frames, worker, port, ratePps: 0, seconds, warmupSeconds: 1.5);
        // Below what the worker sustained end to end (on a shared machine it does not have its CPU to itself),
        // leaving it room for the moderation and wake-up latencies.
        double paced = 0.7 * saturated.Mpps * 1e6;
        var pacedRun = Measure(frames, worker, port, paced, Math.Max(0.5, seconds / 2), warmupSeconds: 0.5);
        return new ThreadedBench
        {
            DeterministicNs = deterministicCpuNs,
            DeterministicWallNs = 1e9 / deterministicPps,
            Saturated = saturated,
            Paced = pacedRun,
            WorkerCpu = worker,
            PortCpu = port,
        };
    }

    public void Print()
    {
        Console.WriteLine($"threaded deliver_64: worker on CPU {WorkerCpu}, port on CPU {PortCpu}");
        foreach (var (name, r) in new[] { ("max rate", Saturated), ("paced", Paced) })
            Console.WriteLine($"  {name,-9} offered {r.Offered,11:N0} ({r.OfferedPps / 1e6,6:F2} Mpps)  polled {r.Polled,11:N0}  " +
                $"{r.Mpps,6:F2} Mpps  worker {r.WorkerNsPerPacket,6:F0} ns/packet busy ({r.WorkerAllNsPerPacket:F0} with idle spins)  ring_full {r.RingFull:N0}  " +
                $"irqs {r.Interrupts:N0}  rounds {r.Rounds:N0}  idle wakeups {r.IdleWakeups:N0}");
        Console.WriteLine($"  worker ns/packet {Saturated.WorkerNsPerPacket:F0} vs deterministic {DeterministicNs:F0} (CPU time; {DeterministicWallNs:F0} from wall time): {Ratio:F2}x");
    }

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject("threaded_deliver_64");
        w.WriteNumber("deterministic_ns_per_packet", Math.Round(DeterministicNs, 1));
        w.WriteNumber("deterministic_wall_ns_per_packet", Math.Round(DeterministicWallNs, 1));
        w.WriteNumber("worker_ns_per_packet", Math.Round(Saturated.WorkerNsPerPacket, 1));
        w.WriteNumber("worker_vs_deterministic", Math.Round(Ratio, 2));
        foreach (var (name, r) in new[] { ("max_rate", Saturated), ("paced", Paced) })
        {
            w.WriteStartObject(name);
            w.WriteNumber("offered_pps", Math.Round(r.OfferedPps));
            w.WriteNumber("offered", r.Offered);
            w.WriteNumber("polled", r.Polled);
            w.WriteNumber("mpps", Math.Round(r.Mpps, 3));
            w.WriteNumber("worker_ns_per_packet", Math.Round(r.WorkerNsPerPacket, 1));
            w.WriteNumber("worker_all_ns_per_packet", Math.Round(r.WorkerAllNsPerPacket, 1));
            w.WriteNumber("ring_full", r.RingFull);
            w.WriteNumber("interrupts", r.Interrupts);
            w.WriteNumber("rounds", r.Rounds);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }

    private static Run Measure(List<byte[]> frames, int workerCpu, int portCpu, double ratePps, double seconds, double warmupSeconds)
    {
        using var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Threaded, Cpus = [workerCpu] });
        var stack = new PipelineBench.FreeStack();
        var nic = new VirtualNic(new NicOptions(), engine, stack) { OccupancySampleMask = 15 };
        var q0 = nic.Queues[0];
        var cpu = engine.Cpus[0];
        var saved = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        engine.Start();
        CpuAffinity.TryPinCurrentThread(portCpu, out _);
        try
        {
            int cursor = 0;
            Port(nic, engine, frames, ref cursor, ratePps, warmupSeconds);
            Drain(q0, cpu);
            long tid = FindThread($"softnet/{workerCpu}");
            long cpu0 = ThreadCpuNs(tid), busy0 = cpu.BusyCpuNs, polled0 = cpu.Processed, missed0 = q0.Ring.RxMissed, offered0 = q0.Offered;
            long irq0 = q0.Vector.InterruptsFired, rounds0 = cpu.Rounds, idle0 = cpu.IdleWakeups;
            var wall = Stopwatch.StartNew();
            Port(nic, engine, frames, ref cursor, ratePps, seconds);
            Drain(q0, cpu);
            wall.Stop();
            long cpuNs = ThreadCpuNs(tid) - cpu0, busyNs = cpu.BusyCpuNs - busy0, polled = cpu.Processed - polled0;
            long offered = q0.Offered - offered0;
            return new Run(offered / wall.Elapsed.TotalSeconds, offered, polled, q0.Ring.RxMissed - missed0,
                polled > 0 ? (double)busyNs / polled : 0, polled > 0 ? (double)cpuNs / polled : 0, polled / wall.Elapsed.TotalSeconds / 1e6,
                q0.Vector.InterruptsFired - irq0, cpu.Rounds - rounds0, cpu.IdleWakeups - idle0);
        }
        finally
        {
            engine.Stop();
            if (saved is not null) CpuAffinity.TrySetCurrentThreadAffinity(saved);
            nic.Drain();
        }
    }

    /// <summary>deliver_64 in deterministic mode on <paramref name="cpu"/>: the thread's CPU time over the polls
    /// (RunUntilIdle on a ring the port filled, untimed, as PipelineBench.Measure does).</summary>
    private static double DeterministicCpuNs(List<byte[]> frames, int cpu, double seconds)
    {
        var saved = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        CpuAffinity.TryPinCurrentThread(cpu, out _);
        try
        {
            var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Deterministic, Cpus = [cpu] });
            var nic = new VirtualNic(new NicOptions(), engine, new PipelineBench.FreeStack());
            int fill = nic.Options.RingSize - 1, cursor = 0;
            long cpuNs = 0, packets = 0;
            var wall = Stopwatch.StartNew();
            bool warm = false;
            while (wall.Elapsed.TotalSeconds < seconds + 1)
            {
                if (!warm && wall.Elapsed.TotalSeconds >= 1) warm = true;
                for (int i = 0; i < fill; i++)
                {
                    nic.Offer(frames[cursor], 0);
                    if (++cursor == frames.Count) cursor = 0;
                }
                long t0 = ThreadCpuNow();
                engine.RunUntilIdle();
                long t1 = ThreadCpuNow();
                if (!warm) continue;
                cpuNs += t1 - t0;
                packets += fill;
            }
            nic.Drain();
            return (double)cpuNs / packets;
        }
        finally
        {
            if (saved is not null) CpuAffinity.TrySetCurrentThreadAffinity(saved);
        }
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct Timespec { public long Sec, Nsec; }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int clock_gettime(int clock, out Timespec ts);

    /// <summary>CLOCK_THREAD_CPUTIME_ID of the calling thread, in ns.</summary>
    private static long ThreadCpuNow()
    {
        clock_gettime(3, out var ts);
        return ts.Sec * 1_000_000_000 + ts.Nsec;
    }

    /// <summary>The port: frames into the NIC as fast as it takes them (ratePps 0) or spaced at ratePps, for
    /// <paramref name="seconds"/> of wall time.</summary>
    private static void Port(VirtualNic nic, NapiEngine engine, List<byte[]> frames, ref int cursor, double ratePps, double seconds)
    {
        long start = Stopwatch.GetTimestamp();
        long end = start + (long)(seconds * Stopwatch.Frequency);
        double ticksPerFrame = ratePps > 0 ? Stopwatch.Frequency / ratePps : 0;
        long sent = 0;
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            if (now >= end) return;
            // Every frame due by now (all of a batch at max rate), then the clock again.
            long due = ratePps > 0 ? (long)((now - start) / ticksPerFrame) + 1 - sent : 64;
            if (due <= 0)
            {
                Thread.SpinWait(10);
                continue;
            }
            // A burst of up to 64 frames, its interrupt raised once at the end.
            due = Math.Min(due, 64);
            long ts = engine.NowNs;
            for (long i = 0; i < due; i++)
            {
                nic.OfferInBurst(frames[cursor], ts);
                if (++cursor == frames.Count) cursor = 0;
            }
            nic.EndBurst(ts);
            sent += due;
        }
    }

    private static void Drain(RxQueue q, SoftnetCpu cpu)
    {
        var sw = Stopwatch.StartNew();
        while ((q.Ring.Pending > 0 || cpu.HasWork) && sw.ElapsedMilliseconds < 5000) Thread.Sleep(1);
        Thread.Sleep(5); // the last round's completion and re-arm
    }

    private static long FindThread(string name)
    {
        foreach (var dir in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() == name) return long.Parse(Path.GetFileName(dir));
            }
            catch (IOException) { }
        }
        throw new InvalidOperationException($"no thread named {name}");
    }

    /// <summary>Time the thread ran on a CPU, in ns (the first field of /proc/PID/task/TID/schedstat).</summary>
    private static long ThreadCpuNs(long tid)
        => long.Parse(File.ReadAllText($"/proc/self/task/{tid}/schedstat").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
}
