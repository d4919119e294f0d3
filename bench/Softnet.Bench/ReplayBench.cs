using System.Diagnostics;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Pipeline;
using Softnet.Telemetry;

namespace Softnet.Bench;

/// <summary>
/// `bench replay`: what `softnet replay FILE` does (file → reader → port → ring → NAPI → skb → GRO → decode, deterministic,
/// on one core) on generated captures of 64-byte and 1514-byte UDP frames at 10 Gbit/s line rate, each at least four times
/// the last-level cache so that the frames come from memory, not cache; beside it, in the same run, `tcpdump -r FILE -w
/// /dev/null` on the same files and the machine's memcpy bandwidth. Also timed: the same replay with GRO off, with the
/// streaming reader (read(2) into a buffer: the reader before the mapping), the reader alone, and `--mode threaded --rate
/// max` (the port as fast as it reads; what NAPI cannot take is dropped at the ring). The softnet figure is the
/// deterministic one on the capture's clock: in deterministic mode `--rate max` puts every frame at one instant, so the
/// ring takes 1023 and drops the rest, which would time the drop path.
/// </summary>
public static class ReplayBench
{
    /// <summary>Frame sizes measured, as the JSON names them.</summary>
    public static readonly int[] FrameSizes = [64, 1514];

    public static int Run(BenchArgs args)
    {
        var (llc, llcSource) = LastLevelCacheBytes();
        long fileBytes = 4 * llc;
        if (args.Case == "reader") return ReaderOnly(fileBytes, args.Capture);
        Console.WriteLine($"replay: last-level cache {llc >> 20} MiB ({llcSource}); captures of {fileBytes >> 20} MiB each");
        int[] sizes = args.Case is { } c && int.TryParse(c, out int only) ? [only] : FrameSizes;
        var r = Measure(fileBytes, args.Seconds, Path.GetTempPath(), sizes);
        r = r with { Kernel = MeasureKernel(sizes) };
        r.Print();
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            r.WriteJson(f, llc, llcSource);
        }
        return 0;
    }

    /// <summary>One frame size's figures.</summary>
    public sealed record SizeResult(int FrameLength, long FileBytes, long Packets, long FrameBytes, double SoftnetPps,
        double StreamedPps, double ReaderPps, double TcpdumpPps, double AllocPerPacket, double DriverNs, double StackNs, double DeliveredFraction,
        double GroOffPps, double RateMaxPps, double RateMaxDeliveredFraction, double MapPps, double CopyPps, string AutoAccess, double XdpDropPps);

    /// <summary>The kernel peer's figures per frame size (<see cref="ReplayKernelPeer"/>), or why there are none.</summary>
    public sealed record KernelFigures(IReadOnlyDictionary<int, ReplayKernelPeer.Result?> BySize, string? Unavailable);

    public sealed record Result(IReadOnlyList<SizeResult> Sizes, double MemcpyGBytesPerSecond, KernelFigures? Kernel = null)
    {
        public SizeResult Of(int frameLength) => Sizes.First(s => s.FrameLength == frameLength);

        /// <summary>Frame bytes per second through the whole path at 1514 bytes.</summary>
        public double SoftnetGBytesPerSecond
        {
            get
            {
                var s = Sizes.FirstOrDefault(s => s.FrameLength == 1514) ?? Sizes[^1];
                return s.SoftnetPps * s.FrameBytes / s.Packets / 1e9;
            }
        }

        public double AllocPerPacket => Sizes.Max(s => s.AllocPerPacket);

        public void Print()
        {
            Console.WriteLine($"{"frames",-8} {"softnet",12} {"mapped",12} {"pread",12} {"streamed",12} {"gro off",12} {"xdp drop",12} {"rate max thr",12} {"reader only",12} {"tcpdump -r",12} {"alloc",9}");
            foreach (var s in Sizes)
                Console.WriteLine($"{s.FrameLength + " B",-8} {s.SoftnetPps / 1e6,7:F2} Mpps {s.MapPps / 1e6,7:F2} Mpps {s.CopyPps / 1e6,7:F2} Mpps " +
                                  $"{s.StreamedPps / 1e6,7:F2} Mpps {s.GroOffPps / 1e6,7:F2} Mpps {s.XdpDropPps / 1e6,7:F2} Mpps " +
                                  $"{s.RateMaxPps / 1e6,7:F2} Mpps {s.ReaderPps / 1e6,7:F2} Mpps " +
                                  $"{(double.IsNaN(s.TcpdumpPps) ? "n/a" : $"{s.TcpdumpPps / 1e6:F2} Mpps"),12} {s.AllocPerPacket,5:F2} B/p" +
                                  $"  (auto chose {s.AutoAccess}; delivered {s.DeliveredFraction:P1}; threaded rate max delivered {s.RateMaxDeliveredFraction:P1})");
            Console.WriteLine($"softnet at 1514 B: {SoftnetGBytesPerSecond:F2} GB/s of frames; memcpy {MemcpyGBytesPerSecond:F2} GB/s ({SoftnetGBytesPerSecond / MemcpyGBytesPerSecond:P0})");
            if (Kernel is null) return;
            if (Kernel.Unavailable is { } why)
            {
                Console.WriteLine($"kernel peer: not measured ({why})");
                return;
            }
            foreach (var s in Sizes)
            {
                double softnetNs = 1e9 / s.SoftnetPps;
                Console.WriteLine(Kernel.BySize.GetValueOrDefault(s.FrameLength) is { } k
                    ? $"{s.FrameLength + " B",-8} kernel (veth, GRO on, dropped at ip_rcv) {k.NsPerPacket,6:F0} ns/packet of softirq; softnet {softnetNs:F0} ns/packet: the kernel takes {k.NsPerPacket / softnetNs:F1}x"
                    : $"{s.FrameLength + " B",-8} kernel: nothing measured");
            }
        }

        public void WriteJson(Stream stream, long llc, string llcSource)
        {
            using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("command", "softnet replay FILE (deterministic, capture clock at 10 Gbit/s line rate, GRO linux, one core)");
            w.WriteNumber("llc_bytes", llc);
            w.WriteString("llc_source", llcSource);
            Sized(w, "file_bytes", s => s.FileBytes);
            Sized(w, "packets", s => s.Packets);
            Sized(w, "softnet_pps", s => Math.Round(s.SoftnetPps));
            Sized(w, "tcpdump_pps", s => double.IsNaN(s.TcpdumpPps) ? null : Math.Round(s.TcpdumpPps));
            Sized(w, "softnet_mapped_pps", s => Math.Round(s.MapPps));
            Sized(w, "softnet_pread_pps", s => Math.Round(s.CopyPps));
            Sized(w, "softnet_streamed_pps", s => Math.Round(s.StreamedPps));
            w.WriteStartObject("auto_access");
            foreach (var s in Sizes) w.WriteString($"frames_{s.FrameLength}", s.AutoAccess);
            w.WriteEndObject();
            Sized(w, "reader_pps", s => Math.Round(s.ReaderPps));
            Sized(w, "delivered_fraction", s => Math.Round(s.DeliveredFraction, 6));
            Sized(w, "softnet_gro_off_pps", s => Math.Round(s.GroOffPps));
            Sized(w, "handoff_xdp_drop_pps", s => Math.Round(s.XdpDropPps));
            Sized(w, "softnet_threaded_rate_max_pps", s => Math.Round(s.RateMaxPps));
            Sized(w, "threaded_rate_max_delivered_fraction", s => Math.Round(s.RateMaxDeliveredFraction, 6));
            // The NAPI poll's own sampled timing (RxQueue.PollTicks/StackTicks): one poll in 16, clock reads included.
            Sized(w, "sampled_driver_ns_per_packet", s => Math.Round(s.DriverNs, 1));
            Sized(w, "sampled_stack_ns_per_packet", s => Math.Round(s.StackNs, 1));
            w.WriteNumber("softnet_gbytes_per_s", Math.Round(SoftnetGBytesPerSecond, 3));
            w.WriteNumber("memcpy_gbytes_per_s", Math.Round(MemcpyGBytesPerSecond, 3));
            w.WriteNumber("memcpy_fraction_1514", Math.Round(SoftnetGBytesPerSecond / MemcpyGBytesPerSecond, 3));
            w.WriteNumber("alloc_bytes_per_packet", Math.Round(AllocPerPacket, 3));
            Sized(w, "softnet_ns_per_packet", s => Math.Round(1e9 / s.SoftnetPps, 1));
            if (Kernel is not null)
            {
                Sized(w, "kernel_softirq_ns_per_packet", s => Kernel.BySize.GetValueOrDefault(s.FrameLength) is { } k ? Math.Round(k.NsPerPacket, 1) : null);
                Sized(w, "kernel_over_softnet", s => Kernel.BySize.GetValueOrDefault(s.FrameLength) is { } k ? Math.Round(k.NsPerPacket * s.SoftnetPps / 1e9, 2) : null);
                if (Kernel.Unavailable is { } why) w.WriteString("kernel_unavailable", why);
                w.WriteString("kernel_method", ReplayKernelPeer.Method);
            }
            w.WriteEndObject();
        }

        private void Sized(Utf8JsonWriter w, string name, Func<SizeResult, double?> value)
        {
            w.WriteStartObject(name);
            foreach (var s in Sizes)
            {
                if (value(s) is { } v) w.WriteNumber($"frames_{s.FrameLength}", v);
                else w.WriteNull($"frames_{s.FrameLength}");
            }
            w.WriteEndObject();
        }
    }

    /// <summary>The kernel peer for each frame size: the head of a capture generated as <see cref="Generate"/> does (the same
    /// frames the replay read first), sent for 3 seconds from the CPU this process runs on.</summary>
    private static KernelFigures MeasureKernel(int[] sizes)
    {
        if (ReplayKernelPeer.Unavailable() is { } why) return new KernelFigures(new Dictionary<int, ReplayKernelPeer.Result?>(), why);
        int cpu = ScenarioBench.PickCpu();
        double idle = ScenarioBench.IdleSoftirqRate(cpu);
        var bySize = new Dictionary<int, ReplayKernelPeer.Result?>();
        foreach (int frameLength in sizes)
        {
            string path = Path.Combine(Path.GetTempPath(), $"softnet-bench-replay-k-{frameLength}-{Environment.ProcessId}.pcap");
            try
            {
                Generate(path, frameLength, 8 << 20);
                bySize[frameLength] = ReplayKernelPeer.Measure(path, cpu, KernelSeconds, idle);
            }
            catch (Exception e) when (e is InvalidOperationException or JsonException or KeyNotFoundException or IOException)
            {
                Console.Error.WriteLine($"bench replay: kernel peer at {frameLength} B: {e.Message}");
                bySize[frameLength] = null;
            }
            finally
            {
                File.Delete(path);
            }
        }
        return new KernelFigures(bySize, null);
    }

    private const double KernelSeconds = 3;

    /// <summary>Generates a capture of about <paramref name="fileBytes"/> per frame size in <paramref name="dir"/>, measures
    /// it and deletes it.</summary>
    public static Result Measure(long fileBytes, double seconds, string dir, int[]? frameSizes = null)
    {
        var sizes = new List<SizeResult>();
        foreach (int frameLength in frameSizes ?? FrameSizes)
        {
            string path = Path.Combine(dir, $"softnet-bench-replay-{frameLength}-{Environment.ProcessId}.pcap");
            try
            {
                Generate(path, frameLength, fileBytes);
                sizes.Add(MeasureFile(path, frameLength, seconds));
            }
            finally
            {
                File.Delete(path);
            }
        }
        // The copy the memory bus allows one core, over buffers as large as a capture (at most 1 GiB).
        double memcpy = PipelineBench.MemcpyGBytesPerSecond(Math.Min(seconds, 1), (int)Math.Clamp(fileBytes, 64 << 20, 1L << 30));
        return new Result(sizes, memcpy);
    }

    /// <summary>UDP frames of exactly <paramref name="frameLength"/> bytes (8 streams, at line rate), enough of them
    /// to make a pcap file of at least <paramref name="fileBytes"/>.</summary>
    public static void Generate(string path, int frameLength, long fileBytes)
    {
        const int headers = 14 + 20 + 8;
        int payload = frameLength - headers;
        const int streams = 8;
        long frames = (fileBytes + PcapRecord + frameLength - 1) / (PcapRecord + frameLength);
        frames = (frames + streams - 1) / streams * streams; // whole datagrams in every stream: none shorter
        var gen = new TrafficGenerator(new GeneratorOptions
        {
            Streams = streams,
            Protocol = TrafficProtocol.Udp,
            Mss = payload,
            Bytes = frames * payload,
            Rate = Capture.Rate.Max,
            Seed = 1,
        });
        // Written in 4 MiB pieces, so the page cache holds the file in large folios, as a disk's read-ahead leaves a big
        // capture. (Written 64 KiB at a time, the folios are small, and on this kind of virtual machine every 4 KiB page
        // then costs about 1.5 us on its first touch through a mapping: the mapped reader falls to ~2 GB/s.)
        using var w = new PcapWriter(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 4 << 20), LinkType.Ethernet);
        gen.WriteTo(w);
    }

    private const int PcapRecord = 16;

    private static SizeResult MeasureFile(string path, int frameLength, double seconds)
    {
        long fileBytes = new FileInfo(path).Length;
        // Warm-up: the JIT tiers the path up, and the file is in the page cache (as a user's second run has it).
        ReplayOnce(path, Input.Auto);
        var best = ReplayOnce(path, Input.Auto);
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds / 4)
        {
            var again = ReplayOnce(path, Input.Auto);
            if (again.Pps > best.Pps) best = again;
        }
        var streamed = Max(ReplayOnce(path, Input.Streamed), ReplayOnce(path, Input.Streamed));
        var mapped = Max(ReplayOnce(path, Input.Map), ReplayOnce(path, Input.Map));
        var copied = Max(ReplayOnce(path, Input.Copy), ReplayOnce(path, Input.Copy));
        var groOff = Max(ReplayOnce(path, Input.Auto, gro: false), ReplayOnce(path, Input.Auto, gro: false));
        // The hand-off alone: file → reader → port → ring → NAPI poll → XDP_DROP (no skb, no stack).
        var xdpDrop = Max(ReplayOnce(path, Input.Auto, gro: false, xdpDrop: true), ReplayOnce(path, Input.Auto, gro: false, xdpDrop: true));
        // `softnet replay FILE --mode threaded --rate max`: the port on one CPU writes as fast as it reads, NAPI polls on
        // the other (in deterministic mode --rate max puts every frame at one instant: the ring takes 1023 and drops the
        // rest, which times nothing).
        var rateMax = Max(ReplayOnce(path, Input.Auto, threadedRateMax: true), ReplayOnce(path, Input.Auto, threadedRateMax: true));
        double reader = Math.Max(ReadOnly(path), ReadOnly(path));
        double tcpdump = Math.Max(Tcpdump(path, best.Packets), Tcpdump(path, best.Packets));
        return new SizeResult(frameLength, fileBytes, best.Packets, best.Bytes, best.Pps, streamed.Pps, reader, tcpdump,
            best.AllocPerPacket, best.DriverNs, best.StackNs, Fraction(best), groOff.Pps, rateMax.Pps, Fraction(rateMax),
            mapped.Pps, copied.Pps, best.Mapped ? "map" : "pread", xdpDrop.Pps);
    }

    private static double Fraction(RunFigures r) => r.Packets == 0 ? 0 : (double)r.Delivered / r.Packets;

    private static RunFigures Max(RunFigures a, RunFigures b) => a.Pps >= b.Pps ? a : b;

    /// <summary>The reader under test: the default (mapped unless mapping does not pay), forced mapping, forced pread into a
    /// small buffer, or the streaming reader (a FileStream read into a 64 KiB buffer: the only reader before the mapping).</summary>
    private enum Input { Auto, Map, Copy, Streamed }

    private readonly record struct RunFigures(bool Mapped, long Packets, long Delivered, long Bytes, double Pps, double AllocPerPacket, double DriverNs, double StackNs);

    /// <summary>One `softnet replay FILE`, timed from open to close. The allocation per packet is the marginal one:
    /// bytes allocated between the first and the last progress point inside the loop, over the packets in between (the
    /// NIC's rings and pools are set up once per run, the report built once at its end).</summary>
    private static RunFigures ReplayOnce(string path, Input input, bool gro = true, bool threadedRateMax = false, bool xdpDrop = false)
    {
        // Progress points: every 16384 frames in the loop, then once after the report is built (that one is dropped).
        var marks = new List<(long Packets, long Alloc)>(4096); // never grows inside the loop
        var options = new ReplayOptions
        {
            // As `softnet replay FILE` runs GRO: the per-flow merge table is kept only when --json asks for a report.
            Gro = gro ? new Gro.GroOptions { PerFlowStats = false } : null,
            Nic = xdpDrop ? new Nic.NicOptions { Xdp = Xdp.XdpPrograms.DropAll } : new Nic.NicOptions(),
            Mode = threadedRateMax ? ReplayMode.Threaded : ReplayMode.Deterministic,
            Rate = threadedRateMax ? Capture.Rate.Max : null,
            ProgressEvery = 1 << 14,
            Progress = (packets, _) =>
            {
                if (marks.Count < marks.Capacity) marks.Add((packets, GC.GetAllocatedBytesForCurrentThread()));
            },
        };
        var pipeline = new ReplayPipeline(options);
        long t0 = Stopwatch.GetTimestamp();
        ReplayReport report;
        bool mapped;
        using (var reader = input switch
               {
                   Input.Streamed => CaptureReader.Open(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0)),
                   Input.Map => CaptureReader.Open(path, access: CaptureFileAccess.Map),
                   Input.Copy => CaptureReader.Open(path, access: CaptureFileAccess.Copy),
                   _ => CaptureReader.Open(path),
               })
        {
            report = pipeline.Run(reader, path);
            mapped = ((PcapReader)reader).Input.Mapped;
        }
        double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;

        if (report.CaptureError is not null) throw new InvalidOperationException(report.CaptureError);
        double alloc = 0;
        if (marks.Count >= 3 && marks.Count < marks.Capacity)
        {
            var (p0, a0) = marks[0];
            var (p1, a1) = marks[^2];
            if (p1 > p0) alloc = (double)(a1 - a0) / (p1 - p0);
        }
        double driver = 0, stack = 0;
        if (pipeline.Nic is { } nic)
        {
            long ticks = 0, stackTicks = 0, sampled = 0;
            foreach (var q in nic.Queues) { ticks += q.PollTicks; stackTicks += q.StackTicks; sampled += q.SampledPackets; }
            if (sampled > 0)
            {
                double nsPerTick = 1e9 / Stopwatch.Frequency;
                driver = (ticks - stackTicks) * nsPerTick / sampled;
                stack = stackTicks * nsPerTick / sampled;
            }
        }
        return new RunFigures(mapped, report.PacketsIn, report.Delivered, report.BytesIn, report.PacketsIn / s, alloc, driver, stack);
    }

    /// <summary>`bench replay --case reader [--capture FILE]`: the readers alone, side by side, on FILE or a generated
    /// capture of 1514-byte frames; and what Auto chose.</summary>
    private static int ReaderOnly(long fileBytes, string? capture)
    {
        string path = capture ?? Path.Combine(Path.GetTempPath(), $"softnet-bench-reader-{Environment.ProcessId}.pcap");
        try
        {
            if (capture is null) Generate(path, 1514, fileBytes);
            for (int i = 0; i < 4; i++)
            {
                using (var probe = CaptureReader.Open(path))
                    Console.Write($"auto chose {(probe is PcapReader p ? p.Input : ((PcapngReader)probe).Input).Mapped switch { true => "map  ", false => "pread" }}  ");
                Console.WriteLine($"auto {ReadOnly(path, Input.Auto) / 1e6:F2} Mpps  mapped {ReadOnly(path, Input.Map) / 1e6:F2} Mpps  " +
                                  $"pread {ReadOnly(path, Input.Copy) / 1e6:F2} Mpps  streamed {ReadOnly(path, Input.Streamed) / 1e6:F2} Mpps");
            }
        }
        finally
        {
            if (capture is null) File.Delete(path);
        }
        return 0;
    }

    /// <summary>The reader alone: every frame read and its first and last byte touched, as the port's copy would.</summary>
    private static double ReadOnly(string path, Input input = Input.Auto)
    {
        long t0 = Stopwatch.GetTimestamp();
        long n = 0, acc = 0;
        using (var reader = input switch
               {
                   Input.Streamed => CaptureReader.Open(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0)),
                   Input.Map => CaptureReader.Open(path, access: CaptureFileAccess.Map),
                   Input.Copy => CaptureReader.Open(path, access: CaptureFileAccess.Copy),
                   _ => CaptureReader.Open(path),
               })
        {
            while (reader.TryRead(out _, out var frame))
            {
                n++;
                acc += frame[0] + frame[^1];
            }
        }
        double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        GC.KeepAlive(acc);
        return n / s;
    }

    /// <summary>`tcpdump -r FILE -w /dev/null` timed on the wall clock (its start-up included); NaN without tcpdump.</summary>
    internal static double Tcpdump(string path, long packets)
    {
        var psi = new ProcessStartInfo("tcpdump") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-r", path, "-w", "/dev/null" }) psi.ArgumentList.Add(a);
        try
        {
            long t0 = Stopwatch.GetTimestamp();
            using var p = Process.Start(psi)!;
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            return p.ExitCode == 0 ? packets / s : double.NaN;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return double.NaN; // not installed
        }
    }

    /// <summary>The last-level cache of CPU 0 from sysfs (the highest cache level listed). Virtual machines often list
    /// none; then 32 MiB, a current server's L3 slice per core complex, is assumed and said so.</summary>
    internal static (long Bytes, string Source) LastLevelCacheBytes()
    {
        const string dir = "/sys/devices/system/cpu/cpu0/cache";
        long best = 0;
        int bestLevel = -1;
        if (Directory.Exists(dir))
        {
            foreach (var index in Directory.GetDirectories(dir, "index*"))
            {
                try
                {
                    int level = int.Parse(File.ReadAllText(Path.Combine(index, "level")).Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    long size = Units.ParseBytes(File.ReadAllText(Path.Combine(index, "size")).Trim());
                    if (level > bestLevel) (bestLevel, best) = (level, size);
                }
                catch (Exception e) when (e is IOException or FormatException or ArgumentException) { }
            }
        }
        return best > 0 ? (best, $"{dir}/index L{bestLevel}") : (32L << 20, $"assumed: {dir} lists no caches");
    }
}
