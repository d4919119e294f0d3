using System.Diagnostics;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Pipeline;
using Softnet.Telemetry;

namespace Softnet.Bench;

/// <summary>
/// `bench trace`: what `softnet replay FILE --trace EXPR` costs. The same generated captures as `bench replay` (UDP at
/// line rate, 64 and 1514 bytes, four times the last-level cache), replayed without a trace and with one whose filter
/// selects about 1% of the frames (<see cref="Filter"/>: the low byte of the IP ID below 3, 3 in 256), alternately, best
/// of several rounds each. The figure is the traced speed over the untraced one (the issue asks for at least 80%): every
/// frame pays the filter at the port and a compare per stage; the selected ones pay their journey.
/// </summary>
public static class TraceBench
{
    /// <summary>The filter: about 1.2% of frames whose IP IDs count up.</summary>
    public const string Filter = "udp and ip[5] < 3";

    /// <summary>A filter that selects nothing: the cost every frame pays for the filter alone.</summary>
    public const string NoneFilter = "udp and ip[5] > 255";

    public sealed record SizeResult(int FrameLength, long Packets, double UntracedPps, double TracedPps, double FilterOnlyPps, double SelectedFraction, int Journeys, long Events)
    {
        public double Ratio => TracedPps / UntracedPps;
    }

    public static int Run(BenchArgs args)
    {
        // 256 MiB per capture (more than any last-level cache here, so the frames come from memory), short enough for
        // several alternating rounds: on a shared machine the best of many short runs is the steadier figure.
        long fileBytes = 256L << 20;
        int[] sizes = args.Case is { } c && int.TryParse(c, out int only) ? [only] : ReplayBench.FrameSizes;
        int rounds = args.Rounds > 0 ? args.Rounds : 9;
        Console.WriteLine($"trace: softnet replay FILE vs softnet replay FILE --trace '{Filter}'; captures of {fileBytes >> 20} MiB, best of {rounds} rounds each");
        var results = new List<SizeResult>();
        foreach (int size in sizes)
        {
            string path = Path.Combine(Path.GetTempPath(), $"softnet-bench-trace-{size}-{Environment.ProcessId}.pcap");
            try
            {
                ReplayBench.Generate(path, size, fileBytes);
                results.Add(Measure(path, size, rounds));
            }
            finally
            {
                File.Delete(path);
            }
        }
        Console.WriteLine($"{"frames",-8} {"untraced",12} {"traced 1%",12} {"ratio",8} {"filter only",12} {"ratio",8} {"selected",9} {"journeys",9} {"events",9}");
        foreach (var r in results)
            Console.WriteLine($"{r.FrameLength + " B",-8} {r.UntracedPps / 1e6,7:F2} Mpps {r.TracedPps / 1e6,7:F2} Mpps {r.Ratio,8:P1} {r.FilterOnlyPps / 1e6,7:F2} Mpps {r.FilterOnlyPps / r.UntracedPps,8:P1} {r.SelectedFraction,9:P2} {r.Journeys,9:N0} {r.Events,9:N0}");
        if (args.Json is not null)
        {
            using var f = File.Create(args.Json);
            using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
            w.WriteStartObject();
            w.WriteString("command", $"softnet replay FILE [--trace '{Filter}'] (deterministic, capture clock at 10 Gbit/s line rate, GRO linux, one core)");
            foreach (var r in results)
            {
                w.WriteStartObject($"frames_{r.FrameLength}");
                w.WriteNumber("packets", r.Packets);
                w.WriteNumber("untraced_pps", Math.Round(r.UntracedPps));
                w.WriteNumber("traced_pps", Math.Round(r.TracedPps));
                w.WriteNumber("filter_only_pps", Math.Round(r.FilterOnlyPps));
                w.WriteNumber("ratio", Math.Round(r.Ratio, 4));
                w.WriteNumber("selected_fraction", Math.Round(r.SelectedFraction, 5));
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return 0;
    }

    private static SizeResult Measure(string path, int size, int rounds)
    {
        // Warm-up: the JIT tiers both paths up; the file is in the page cache.
        Once(path, null);
        Once(path, new PacketTracer(Filter, int.MaxValue));
        double untraced = 0, traced = 0, filterOnly = 0;
        long packets = 0;
        PacketTracer? last = null;
        for (int i = 0; i < rounds; i++)
        {
            var (p, pps) = Once(path, null);
            packets = p;
            untraced = Math.Max(untraced, pps);
            var tracer = new PacketTracer(Filter, int.MaxValue);
            traced = Math.Max(traced, Once(path, tracer).Pps);
            last = tracer;
            filterOnly = Math.Max(filterOnly, Once(path, new PacketTracer(NoneFilter)).Pps);
        }
        return new SizeResult(size, packets, untraced, traced, filterOnly, (double)last!.Journeys.Count / Math.Max(1, packets), last.Journeys.Count, last.Events.Count);
    }

    private static (long Packets, double Pps) Once(string path, PacketTracer? tracer)
    {
        var pipeline = new ReplayPipeline(new ReplayOptions { Tracer = tracer });
        long t0 = Stopwatch.GetTimestamp();
        ReplayReport report;
        using (var reader = CaptureReader.Open(path)) report = pipeline.Run(reader, path);
        double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        if (report.CaptureError is not null) throw new InvalidOperationException(report.CaptureError);
        return (report.PacketsIn, report.PacketsIn / s);
    }
}
