using System.CommandLine;
using Softnet.Pipeline;

namespace Softnet.Cli;

/// <summary>`softnet experiment ring-vs-poll`: the sweep behind the study notes' first question.</summary>
public static class ExperimentCommand
{
    public static Command Create()
    {
        var outDir = new Option<string>("--out") { Description = "directory for ring-vs-poll.csv and the PNG plots", DefaultValueFactory = _ => "ring-vs-poll" };
        var frames = new Option<int>("--frames") { Description = "64-byte frames offered per point", DefaultValueFactory = _ => 200_000 };
        var mode = new Option<string>("--mode") { Description = "threaded (real time on this machine) or deterministic (virtual time, --poll-cost-ns)", DefaultValueFactory = _ => "threaded" };
        mode.AcceptOnlyFromAmong("threaded", "deterministic");
        var rates = new Option<string?>("--rates") { Description = "offered rates in Mpps, comma separated; 0 = max (default 0.25,0.5,1,2,3,4,6,8,12,0)" };
        var rings = new Option<string?>("--rings") { Description = "ring sizes (default 256,1024,4096)" };
        var budgets = new Option<string?>("--budgets") { Description = "netdev_budget values (default 64,300)" };
        var cpu = new Option<int>("--cpu") { Description = "CPU for the NAPI worker", DefaultValueFactory = _ => 0 };
        var pollCost = new Option<long>("--poll-cost-ns") { Description = "deterministic mode: virtual ns per packet", DefaultValueFactory = _ => 100 };
        var irqUsecs = new Option<int>("--irq-usecs") { Description = "interrupt moderation rx-usecs", DefaultValueFactory = _ => 50 };

        var ringVsPoll = new Command("ring-vs-poll", "Sweep offered rate against ring size and budget; write CSV and PNG plots of drops and ring occupancy")
        {
            outDir, frames, mode, rates, rings, budgets, cpu, pollCost, irqUsecs,
        };
        ringVsPoll.SetAction(pr =>
        {
            RingVsPollExperiment experiment;
            try
            {
                experiment = new RingVsPollExperiment
                {
                    Frames = pr.GetValue(frames) > 0 ? pr.GetValue(frames) : throw new ArgumentException("--frames must be positive"),
                    Mode = pr.GetValue(mode) == "deterministic" ? ReplayMode.Deterministic : ReplayMode.Threaded,
                    Cpus = [pr.GetValue(cpu)],
                    PollCostNs = pr.GetValue(pollCost),
                    Moderation = new Nic.InterruptModeration(pr.GetValue(irqUsecs), 0),
                };
                if (pr.GetValue(rates) is { } r) experiment = experiment with { RatesMpps = ParseList(r, double.Parse) };
                if (pr.GetValue(rings) is { } g) experiment = experiment with { RingSizes = ParseList(g, int.Parse) };
                if (pr.GetValue(budgets) is { } b) experiment = experiment with { Budgets = ParseList(b, int.Parse) };
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"softnet experiment: {e.Message}");
                return 2;
            }
            string dir = pr.GetValue(outDir)!;
            Directory.CreateDirectory(dir);
            Console.WriteLine($"{"offered",8} {"achieved",9} {"ring",5} {"budget",6} {"drops %",8} {"occ mean",9} {"occ max",8} {"squeeze",8}");
            var points = experiment.Run(p => Console.WriteLine(
                $"{(p.OfferedMpps == 0 ? "max" : p.OfferedMpps.ToString("0.##")),8} {p.AchievedOfferedMpps,9:F2} {p.RingSize,5} {p.Budget,6} {p.DropPercent,8:F2} {p.OccupancyMean,9:F1} {p.OccupancyMax,8} {p.TimeSqueeze,8}"));
            string csv = Path.Combine(dir, "ring-vs-poll.csv");
            File.WriteAllText(csv, RingVsPollExperiment.ToCsv(points));
            Plot(points, dir);
            Console.WriteLine($"wrote {csv}, {Path.Combine(dir, "drops.png")}, {Path.Combine(dir, "occupancy.png")}");
            return 0;
        });
        return new Command("experiment", "Experiments from the study notes, measured on this machine") { ringVsPoll, PodVsNative() };
    }

    /// <summary>`softnet experiment pod-vs-native`: seed 003's question, the kernel measured beside Softnet's prediction.</summary>
    private static Command PodVsNative()
    {
        var outDir = new Option<string>("--out") { Description = "directory for pod-vs-native.csv, pod-vs-native.png and the scenario variants", DefaultValueFactory = _ => "pod-vs-native" };
        var json = new Option<string?>("--json") { Description = "write the settings (name, kernel_ratio, softnet_ratio) as JSON" };
        var quick = new Option<bool>("--quick") { Description = "a short run (two settings, one 1-second iperf3 run per path) that fits in CI" };
        var seconds = new Option<double>("--seconds") { Description = "seconds per iperf3 run", DefaultValueFactory = _ => 3 };
        var settings = new Option<string?>("--settings") { Description = $"settings to run, comma separated (the baseline always runs): {string.Join(", ", PodVsNativeExperiment.Settings.Select(s => s.Name))}" };
        var cmd = new Command("pod-vs-native", "iperf3 pod->native against native->native in kernel namespaces, beside Softnet's prediction, per remedy; CSV + PNG")
        {
            outDir, json, quick, seconds, settings,
        };
        cmd.SetAction(pr =>
        {
            bool q = pr.GetValue(quick);
            double secs = pr.GetValue(seconds);
            if (secs <= 0) { Console.Error.WriteLine("softnet experiment: --seconds must be positive"); return 2; }
            string[]? only = pr.GetValue(settings)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (only?.FirstOrDefault(n => PodVsNativeExperiment.Settings.All(s => s.Name != n)) is { } unknown)
            {
                Console.Error.WriteLine($"softnet experiment: no setting '{unknown}' (known: {string.Join(", ", PodVsNativeExperiment.Settings.Select(s => s.Name))})");
                return 2;
            }
            var experiment = new PodVsNativeExperiment { Quick = q, Seconds = q ? Math.Min(secs, 1) : secs, Only = only };
            string dir = pr.GetValue(outDir)!;
            Directory.CreateDirectory(dir);
            List<PodVsNativeRow> rows;
            try
            {
                rows = experiment.Run(dir, Console.WriteLine);
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine($"softnet experiment pod-vs-native: {e.Message}");
                return 1;
            }
            Console.WriteLine();
            Console.WriteLine($"{"setting",-22} {"kernel native",14} {"kernel pod",11} {"kernel ratio",13} {"(min..max)",13} {"by CPU",7} {"softnet ratio",14} {"error",7}");
            foreach (var r in rows)
                Console.WriteLine($"{r.Setting.Name,-22} {(r.KernelNativeBps is { } kn ? $"{kn / 1e9:F2} Gbit/s" : "-"),14} {(r.KernelPodBps is { } kp ? $"{kp / 1e9:F2} Gbit/s" : "-"),11} " +
                                  $"{(r.KernelRatio is { } k ? k.ToString("F3") : "-"),13} {(r.Kernel is { Native.Count: > 0 } ks ? $"{ks.Ratios.Min():F3}..{ks.Ratios.Max():F3}" : "-"),13} " +
                                  $"{(r.Kernel is { Native.Count: > 0 } kc ? kc.CpuRatio.ToString("F3") : "-"),7} {r.SoftnetRatio,14:F3} {(r.ErrorPercent is { } e ? $"{e:+0.0;-0.0}%" : "-"),7}");
            string csv = Path.Combine(dir, "pod-vs-native.csv");
            File.WriteAllText(csv, PodVsNativeExperiment.ToCsv(rows));
            PodVsNativeExperiment.Plot(rows, dir);
            if (pr.GetValue(json) is { } j) PodVsNativeExperiment.WriteJson(j, rows, PodVsNativeExperiment.KernelUnavailable());
            Console.WriteLine($"wrote {csv}, {Path.Combine(dir, "pod-vs-native.png")}");
            return 0;
        });
        return cmd;
    }

    private static IReadOnlyList<T> ParseList<T>(string text, Func<string, IFormatProvider, T> parse)
        => [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => parse(s, System.Globalization.CultureInfo.InvariantCulture))];

    private static void Plot(List<RingVsPollPoint> points, string dir)
    {
        foreach (var (file, title, ylabel, select) in new (string, string, string, Func<RingVsPollPoint, double>)[]
                 {
                     ("drops.png", "Ring overflow: rx_missed vs offered rate (64-byte frames)", "frames dropped (%)", p => p.DropPercent),
                     ("occupancy.png", "Mean RX ring occupancy vs offered rate", "descriptors waiting (mean)", p => p.OccupancyMean),
                 })
        {
            var plt = new ScottPlot.Plot();
            foreach (var group in points.GroupBy(p => (p.RingSize, p.Budget)))
            {
                var ordered = group.OrderBy(p => p.AchievedOfferedMpps).ToArray();
                var line = plt.Add.Scatter(ordered.Select(p => p.AchievedOfferedMpps).ToArray(), ordered.Select(select).ToArray());
                line.LegendText = $"ring {group.Key.RingSize}, budget {group.Key.Budget}";
            }
            plt.Title(title);
            plt.XLabel("offered rate achieved (Mpps)");
            plt.YLabel(ylabel);
            plt.ShowLegend();
            plt.SavePng(Path.Combine(dir, file), 1000, 600);
        }
    }
}
