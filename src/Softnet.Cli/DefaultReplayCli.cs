using Softnet.Pipeline;
using Softnet.Topology;
using Softnet.Topology.Default;
using Spectre.Console;

namespace Softnet.Cli;

/// <summary>`softnet replay` with no capture: the embedded two-node Kubernetes scenario, both paths compared.</summary>
internal static class DefaultReplayCli
{
    public static int Run(string? json, string? dump, bool quiet, ReplayOptions options, ReportFileOptions? files = null)
    {
        TwoNodeRun run;
        try
        {
            run = TwoNodeOverlay.Run(options, dump ?? "");
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or ScenarioFormatException)
        {
            Console.Error.WriteLine($"softnet replay: {e.Message}");
            return e is IOException or UnauthorizedAccessException ? 1 : 2;
        }
        using (run)
        {
            if (json is not null) run.Combined.Replay.WriteJson(json);
            if (!ReportFiles.Write(run.Combined.Replay, files, "replay")) return 1;
            if (!quiet) Print(run);
        }
        return 0;
    }

    private static void Print(TwoNodeRun run)
    {
        var console = AnsiConsole.Console;
        var report = run.Combined;
        var r = report.Replay;
        console.MarkupLine($"[bold]softnet replay[/] {Markup.Escape(r.Source)}");
        console.MarkupLine($"  scenario written to {Markup.Escape(report.Scenario.Directory)} (replay a capture through it with --scenario DIR --inject {TwoNodeOverlay.Inject}: pcapng interfaces named {TwoNodeOverlay.WireDevice} or {TwoNodeOverlay.PodDevice})");
        console.MarkupLine($"  {r.PacketsIn:N0} frames ({r.BytesIn:N0} bytes) entered (host client's on node B's eth0, pod A's on node A's veth0), all paths at once; dropped before the stack {r.Drops.Total:N0}" +
                           $"  ({(r.Conserved ? "conserved" : "[red]NOT conserved[/]")})");
        var ns = new Table().Border(TableBorder.Simple).Title("namespaces (all paths)");
        foreach (var c in new[] { "namespace", "received", "delivered", "forwarded", "bridged", "dropped", "sent" })
            ns.AddColumn(new TableColumn(c).RightAligned());
        foreach (var n in report.Scenario.Namespaces)
        {
            var c = n.Counters;
            ns.AddRow(Markup.Escape(n.Name), c.Received.ToString("N0"), c.DeliveredTotal.ToString("N0"), c.Forwarded.ToString("N0"),
                c.Bridged.ToString("N0"), c.Drops.Total.ToString("N0"), c.Sent.ToString("N0"));
        }
        console.Write(ns);
        console.MarkupLine("  (node A's and pod A's drops are the generated clients' ACKs, dropped where the iperf3 clients' sockets would take them)");
        foreach (var n in report.Scenario.Namespaces)
            if (n.Name is not ("nodeA" or "podA") && n.Counters.Drops.Total > 0)
                console.MarkupLine($"  [bold]{Markup.Escape(n.Name)}[/] drops: {Markup.Escape(string.Join("  ", n.Counters.Drops.NonZero().Select(x => $"{Softnet.Packets.DropReasons.Name(x.Reason)} {x.Count:N0}")))}");

        var paths = run.Paths;
        var t = new Table().Border(TableBorder.Simple).Title("each path alone, both nodes' work");
        t.AddColumn("");
        foreach (var p in paths) t.AddColumn(new TableColumn(Markup.Escape(p.Name)).RightAligned());
        void Row(string name, Func<TwoNodePathFigures, string> f) => t.AddRow([Markup.Escape(name), .. paths.Select(p => Markup.Escape(f(p)))]);
        Row("segments sent by iperf3 -c", p => p.Segments.ToString("N0"));
        Row("bytes read by iperf3 -s", p => p.BytesRead.ToString("N0"));
        Row("receiver Mbit/s (offered 2 Gbit/s)", p => (p.ReceiverBitsPerSecond / 1e6).ToString("F1"));
        Row("cpu ns per byte (replay thread)", p => p.CpuNsPerByte.ToString("F3"));
        Row("one core's capacity, Gbit/s", p => (p.CoreCapacityBitsPerSecond / 1e9).ToString("F2"));
        Row("GRO segments per skb", p => p.GroMergeRatio.ToString("F2"));
        Row("ip_rcv per segment, both nodes (ACKs incl.)", p => p.IpRcvPerSegment.ToString("F2"));
        Row("conntrack entries, both nodes", p => p.ConntrackEntries.ToString("N0"));
        Row("drops", p => p.Drops.ToString("N0"));
        foreach (var stage in paths[0].CpuPerSegment.Select(s => s.Stage))
        {
            if (paths.All(p => p.CpuPerSegment.FirstOrDefault(s => s.Stage == stage).NsPerPacket <= 0) && stage != "total") continue;
            Row($"sampled ns/segment: {stage}", p => p.CpuPerSegment.FirstOrDefault(s => s.Stage == stage).NsPerPacket.ToString("F1"));
        }
        console.Write(t);
        console.MarkupLine(Markup.Escape(run.Verdict()));
        if (report.DumpDirectory is not null) console.MarkupLine($"  dump written to {Markup.Escape(report.DumpDirectory)}");
    }
}
