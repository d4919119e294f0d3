using Softnet.Capture;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Topology;
using Spectre.Console;

namespace Softnet.Cli;

/// <summary>`softnet replay CAPTURE --scenario DIR --inject NS[:DEV] [--dump OUTDIR]`.</summary>
internal static class ScenarioCli
{
    public static int Run(string scenarioDir, string? capture, string? inject, string? dump, string? json, bool quiet, ReplayOptions options, ReportFileOptions? files = null)
    {
        if (capture is null || inject is null)
        {
            Console.Error.WriteLine("softnet replay: --scenario needs a CAPTURE file and --inject NS[:DEV]");
            return 2;
        }
        ScenarioReport report;
        try
        {
            report = ScenarioReplay.Run(scenarioDir, capture, inject, dump ?? "", new ScenarioOptions { Replay = options });
        }
        catch (ScenarioFormatException e)
        {
            Console.Error.WriteLine($"softnet replay: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or CaptureFormatException)
        {
            Console.Error.WriteLine($"softnet replay: {e.Message}");
            return e is ArgumentException ? 2 : 1;
        }
        if (json is not null) report.Replay.WriteJson(json);
        if (!ReportFiles.Write(report.Replay, files, "replay")) return 1;
        if (!quiet) Print(report);
        if (report.Replay.CaptureError is not null)
        {
            Console.Error.WriteLine($"softnet replay: {capture}: {report.Replay.CaptureError}");
            return 1;
        }
        return 0;
    }

    internal static void Print(ScenarioReport report, string verb = "replay")
    {
        var console = AnsiConsole.Console;
        var r = report.Replay;
        console.MarkupLine($"[bold]softnet {verb}[/] {Markup.Escape(r.Source)} [bold]scenario[/] {Markup.Escape(report.Scenario.Directory)}");
        console.MarkupLine($"  packets in {r.PacketsIn:N0}  into the scenario {r.Delivered:N0}  dropped before it {r.Drops.Total:N0}" +
                           $"  ({(r.Conserved ? "conserved" : "[red]NOT conserved[/]")})");
        var t = new Table().Border(TableBorder.Simple).Title("namespaces");
        foreach (var c in new[] { "namespace", "received", "delivered", "forwarded", "bridged", "arp", "neigh wait", "dropped", "sent" })
            t.AddColumn(new TableColumn(c).RightAligned());
        // The sysctls a namespace set that the replay keeps but does not act on, once each.
        foreach (var ns in report.Scenario.Namespaces)
            if (ns.SysctlsNotModelled.Count > 0)
                console.MarkupLine($"  [bold]{Markup.Escape(ns.Name)}[/] sysctls set, not modelled: {Markup.Escape(string.Join("  ", ns.SysctlsNotModelled.Select(kv => $"{kv.Key}={kv.Value.Replace('\t', ' ')}")))}");
        foreach (var ns in report.Scenario.Namespaces)
        {
            var c = ns.Counters;
            t.AddRow(Markup.Escape(ns.Name), c.Received.ToString("N0"), c.DeliveredTotal.ToString("N0"), c.Forwarded.ToString("N0"),
                c.Bridged.ToString("N0"), c.Arp.ToString("N0"), c.NeighQueued.ToString("N0"), c.Drops.Total.ToString("N0"), c.Sent.ToString("N0"));
        }
        console.Write(t);
        // nstat -a, compactly: the counters each namespace moved.
        foreach (var ns in report.Scenario.Namespaces)
        {
            var moved = ns.Mib.NonZero().Select(x => $"{x.Name} {x.Value:N0}").ToList();
            if (moved.Count > 0) console.MarkupLine($"  [bold]{Markup.Escape(ns.Name)}[/] nstat: {Markup.Escape(string.Join("  ", moved))}");
        }
        foreach (var ns in report.Scenario.Namespaces)
        {
            var c = ns.Counters;
            if (c.Drops.Total > 0)
            {
                var d = new Table().Border(TableBorder.Simple).Title($"{Markup.Escape(ns.Name)}: drops").AddColumn("reason").AddColumn(new TableColumn("packets").RightAligned());
                foreach (var (reason, n) in c.Drops.NonZero()) d.AddRow(DropReasons.Name(reason), n.ToString("N0"));
                console.Write(d);
            }
            var devs = new Table().Border(TableBorder.Simple).Title($"{Markup.Escape(ns.Name)}: devices");
            foreach (var col in new[] { "device", "rx packets", "rx bytes", "tx packets", "tx bytes", "tx dropped" }) devs.AddColumn(new TableColumn(col).RightAligned());
            foreach (var dev in ns.Devices)
                if (dev.RxPackets + dev.TxPackets + dev.TxDropped > 0)
                    devs.AddRow(Markup.Escape(dev.Name), dev.RxPackets.ToString("N0"), dev.RxBytes.ToString("N0"), dev.TxPackets.ToString("N0"), dev.TxBytes.ToString("N0"), dev.TxDropped.ToString("N0"));
            console.Write(devs);
            if (ns.HasIptables)
                foreach (var table in ns.Netfilter.Tables)
                {
                    console.MarkupLine($"[bold]{Markup.Escape(ns.Name)}[/]: iptables -t {table.Name} -nvL");
                    Console.Out.WriteLine(Softnet.Netfilter.IptablesSave.List(table));
                }
            if (!ns.Sockets.IsEmpty)
            {
                // What each socket's reader got, as iperf3's server reports it: bytes over the time between its first
                // and last read with data (the replay clock).
                var st = new Table().Border(TableBorder.Simple).Title($"{Markup.Escape(ns.Name)}: sockets");
                foreach (var col in new[] { "socket", "datagrams / connections", "bytes read", "seconds", "receiver Mbit/s", "drops" })
                    st.AddColumn(new TableColumn(col).RightAligned());
                foreach (var sock in ns.Sockets.All)
                {
                    var rs = sock.Stats;
                    st.AddRow(Markup.Escape(sock.Line), rs.Items.ToString("N0"), rs.Bytes.ToString("N0"), rs.Seconds.ToString("F6"),
                        (rs.BitsPerSecond / 1e6).ToString("F1"), sock.Drops.ToString("N0"));
                }
                console.Write(st);
            }
            if (ns.HasIptables && ns.Netfilter.ConntrackEnabled && ns.Netfilter.Conntrack.Count > 0)
            {
                console.MarkupLine($"[bold]{Markup.Escape(ns.Name)}[/]: conntrack -L");
                Console.Out.Write(ScenarioDump.ConntrackText(ns, report.EndNs));
            }
        }
        if (r.Sections.OfType<Softnet.Telemetry.StageTimeSection>().FirstOrDefault() is { } time)
        {
            var ct = new Table().Border(TableBorder.Simple).Title("CPU time per packet (sampled)").AddColumn("stage").AddColumn(new TableColumn("ns").RightAligned());
            foreach (var (stage, ns) in time.PerPacket())
                if (ns > 0 || stage == "total") ct.AddRow(stage, ns.ToString("F1"));
            console.Write(ct);
        }
        if (report.DumpDirectory is not null) console.MarkupLine($"  dump written to {Markup.Escape(report.DumpDirectory)}");
    }
}
