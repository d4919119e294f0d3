using System.Diagnostics;
using System.Text.Json;
using Softnet.Capture.Generator;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Xdp;

namespace Softnet.Bench;

/// <summary>
/// `bench pipeline`: packets/s per core of the NAPI side (driver poll → XDP_DROP, and driver poll → build_skb →
/// deliver) on generated 64-byte and 1500-byte frames, with the machine's memcpy bandwidth as the ceiling.
/// The port (the NIC's DMA) fills a ring untimed; the timed part is the NAPI poll that empties it, on one core.
/// </summary>
public static class PipelineBench
{
    internal sealed class FreeStack : IRxHandler
    {
        public long Delivered;
        public void Receive(Skb skb, RxQueue queue) { Delivered++; skb.Free(); }
        public void PollEnd(RxQueue queue, int workDone, int budget) { }
    }

    public static int Run(BenchArgs args)
    {
        if (args.Case == "threaded") return RunThreaded(args);
        if (args.Case == "handoff") return HandoffBench.Run(args);
        var small = SmallFrames();
        var large = Frames(new GeneratorOptions { Streams = 1, Bytes = 1448 * 20000, Seed = 1 });
        Console.WriteLine($"pipeline: {small.Count:N0} frames of {small[0].Length} B, {large.Count:N0} frames of up to {large.Max(f => f.Length)} B");

        var results = new Dictionary<string, (double Pps, double Alloc)>();
        foreach (var (name, frames) in new[] { ("64", small), ("1500", large) })
        {
            results[$"xdp_drop_{name}"] = Measure(frames, XdpPrograms.DropAll, SkbBuildMode.Build, args.Seconds);
            // The same verdict from an eBPF program (r0 = XDP_DROP; exit) in the interpreter, attached to the queue.
            results[$"xdp_bpf_drop_{name}"] = Measure(frames, null, SkbBuildMode.Build, args.Seconds, new XdpBpfAttachment(DropProgram()) { Engine = Softnet.Xdp.Bpf.BpfEngine.Interpreter });
            results[$"xdp_jit_drop_{name}"] = XdpJitDrop(frames, args.Seconds);
            results[$"deliver_{name}"] = Measure(frames, null, SkbBuildMode.Build, args.Seconds);
            results[$"deliver_construct_{name}"] = Measure(frames, null, SkbBuildMode.Construct, args.Seconds);
        }
        double memcpy = MemcpyGBytesPerSecond(args.Seconds);
        var threaded = ThreadedBench.Compare(small, results["deliver_64"].Pps, args.Seconds);

        foreach (var (k, v) in results)
            Console.WriteLine($"{k,-24} {v.Pps / 1e6,8:F2} Mpps/core  {v.Alloc,6:F2} B/packet allocated");
        Console.WriteLine($"{"memcpy",-24} {memcpy,8:F2} GB/s (ceiling: {memcpy * 1e9 / 64 / 1e6:F0} Mpps of 64 B copies, {memcpy * 1e9 / 1514 / 1e6:F2} Mpps of 1514 B)");
        threaded?.Print();
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteStartObject("xdp_drop_pps_per_core");
            w.WriteNumber("frames_64", Math.Round(results["xdp_drop_64"].Pps));
            w.WriteNumber("frames_1500", Math.Round(results["xdp_drop_1500"].Pps));
            w.WriteEndObject();
            w.WriteStartObject("deliver_pps_per_core");
            w.WriteNumber("frames_64", Math.Round(results["deliver_64"].Pps));
            w.WriteNumber("frames_1500", Math.Round(results["deliver_1500"].Pps));
            w.WriteNumber("construct_frames_64", Math.Round(results["deliver_construct_64"].Pps));
            w.WriteNumber("construct_frames_1500", Math.Round(results["deliver_construct_1500"].Pps));
            w.WriteEndObject();
            w.WriteNumber("memcpy_gbytes_per_s", Math.Round(memcpy, 2));
            threaded?.WriteJson(w);
            w.WriteNumber("alloc_bytes_per_packet", Math.Round(results.Values.Max(v => v.Alloc), 3));
            w.WriteEndObject();
        }
        return 0;
    }

    /// <summary>`bench pipeline --case threaded`: only the threaded figure beside the deterministic deliver_64 one.</summary>
    private static int RunThreaded(BenchArgs args)
    {
        var small = SmallFrames();
        double det = Measure(small, null, SkbBuildMode.Build, args.Seconds).Pps;
        Console.WriteLine($"{"deliver_64",-24} {det / 1e6,8:F2} Mpps/core ({1e9 / det:F0} ns/packet, deterministic)");
        var threaded = ThreadedBench.Compare(small, det, args.Seconds);
        if (threaded is null) return 0;
        threaded.Print();
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteStartObject("deliver_pps_per_core");
            w.WriteNumber("frames_64", Math.Round(det));
            w.WriteEndObject();
            threaded.WriteJson(w);
            w.WriteEndObject();
        }
        return 0;
    }

    /// <summary>The generated UDP frames of the 64-byte runs (18 bytes of payload: 60 bytes, 64 with the FCS).</summary>
    internal static List<byte[]> SmallFrames() => Frames(new GeneratorOptions { Protocol = TrafficProtocol.Udp, Mss = 18, Bytes = 18 * 20000, Seed = 1 });

    /// <summary>r0 = XDP_DROP; exit.</summary>
    private static Softnet.Xdp.Bpf.BpfProgram DropProgram()
        => Softnet.Xdp.Bpf.BpfProgram.Load(Softnet.Xdp.Bpf.BpfAssembler.Assemble("mov %r0, 1\nexit"), Softnet.Xdp.Bpf.BpfVerifierOptions.Xdp());

    /// <summary>xdp_jit_drop: packets/s of the NAPI poll with the JIT'd XDP_DROP program attached to the queue
    /// (XdpBpfAttachment), the figure `bench xdp` reports as replay_xdp_drop_pps_per_core.</summary>
    internal static (double Pps, double Alloc) XdpJitDrop(List<byte[]> frames, double seconds)
        => Measure(frames, null, SkbBuildMode.Build, seconds, new XdpBpfAttachment(DropProgram()) { Engine = Softnet.Xdp.Bpf.BpfEngine.Jit });

    private static List<byte[]> Frames(GeneratorOptions g)
    {
        using var r = new GeneratorCaptureReader(g);
        var list = new List<byte[]>();
        while (r.TryRead(out _, out var frame)) list.Add(frame.ToArray());
        return list;
    }

    private static (double Pps, double Alloc) Measure(List<byte[]> frames, XdpProgram? xdp, SkbBuildMode mode, double seconds, XdpAttachment? attach = null)
    {
        var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Deterministic, Cpus = [0] });
        var stack = new FreeStack();
        var nic = new VirtualNic(new NicOptions { RingSize = 4096, Xdp = xdp, XdpAttachment = attach, SkbMode = mode }, engine, stack);
        int fill = nic.Options.RingSize - 1;

        long Round(ref int next, Stopwatch sw)
        {
            for (int i = 0; i < fill; i++)
            {
                nic.Offer(frames[next], 0);
                if (++next == frames.Count) next = 0;
            }
            sw.Start();
            engine.RunUntilIdle();
            sw.Stop();
            return fill;
        }

        int cursor = 0;
        var warm = new Stopwatch();
        for (int i = 0; i < 200; i++) Round(ref cursor, warm);
        var timed = new Stopwatch();
        var wall = Stopwatch.StartNew();
        long packets = 0;
        long alloc0 = GC.GetAllocatedBytesForCurrentThread();
        while (wall.Elapsed.TotalSeconds < seconds) packets += Round(ref cursor, timed);
        long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
        nic.Drain();
        return (packets / timed.Elapsed.TotalSeconds, (double)alloc / packets);
    }

    /// <summary>memcpy bandwidth: GB/s of one core copying <paramref name="size"/> bytes (larger than the caches, so it
    /// streams from and to memory) over and over.</summary>
    internal static double MemcpyGBytesPerSecond(double seconds, int size = 64 << 20)
    {
        var src = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        var dst = GC.AllocateUninitializedArray<byte>(size, pinned: true);
        new Random(1).NextBytes(src);
        src.AsSpan().CopyTo(dst);
        long bytes = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < Math.Max(0.5, seconds / 2))
        {
            src.AsSpan().CopyTo(dst);
            bytes += src.Length;
        }
        return bytes / sw.Elapsed.TotalSeconds / 1e9;
    }
}
