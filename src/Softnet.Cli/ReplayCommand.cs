using System.CommandLine;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Spectre.Console;

namespace Softnet.Cli;

/// <summary>`softnet replay [CAPTURE]`: runs a capture (or the embedded default scenario) through the path.</summary>
public static class ReplayCommand
{
    public static Command Create()
    {
        var capture = new Argument<string?>("capture")
        {
            Description = "pcap or pcapng file; without it, an embedded default scenario generated on the fly",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var json = new Option<string?>("--json") { Description = "write a machine-readable report to FILE" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "print no summary" };
        var noProgress = new Option<bool>("--no-progress") { Description = "no progress bar even on a terminal" };

        var cmd = new Command("replay", "Replay a capture through the receive path and report what each stage did")
        {
            capture, json, quiet, noProgress,
        };
        cmd.SetAction(pr => Run(pr.GetValue(capture), pr.GetValue(json), pr.GetValue(quiet), pr.GetValue(noProgress)));
        return cmd;
    }

    internal static int Run(string? capturePath, string? jsonPath, bool quiet, bool noProgress)
    {
        ICaptureReader reader;
        string source;
        long totalBytes = 0;
        try
        {
            (reader, source, totalBytes) = OpenSource(capturePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CaptureFormatException)
        {
            Console.Error.WriteLine($"softnet replay: {e.Message}");
            return 1;
        }

        ReplayReport report;
        using (reader)
        {
            bool showProgress = !quiet && !noProgress && !Console.IsOutputRedirected && totalBytes > 0;
            if (showProgress)
            {
                report = null!;
                AnsiConsole.Progress()
                    .AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask($"replay {Path.GetFileName(source)}", maxValue: totalBytes);
                        var pipeline = new ReplayPipeline(new ReplayOptions { Progress = (_, pos) => task.Value = pos });
                        report = pipeline.Run(reader, source);
                        task.Value = totalBytes;
                    });
            }
            else
            {
                report = new ReplayPipeline(new ReplayOptions()).Run(reader, source);
            }
        }

        if (jsonPath is not null) report.WriteJson(jsonPath);
        if (!quiet) PrintSummary(report);
        if (report.CaptureError is not null)
        {
            Console.Error.WriteLine($"softnet replay: {source}: {report.CaptureError}; the {report.PacketsIn} packets before it were replayed");
            return 1;
        }
        return 0;
    }

    internal static (ICaptureReader Reader, string Source, long TotalBytes) OpenSource(string? path)
    {
        if (path is null)
            return (DefaultScenario.Open(), "embedded default scenario", 0);
        var reader = CaptureReader.Open(path);
        return (reader, path, new FileInfo(path).Length);
    }

    private static void PrintSummary(ReplayReport r)
    {
        var console = AnsiConsole.Console;
        console.MarkupLine($"[bold]softnet replay[/] {Markup.Escape(r.Source)}");
        console.MarkupLine($"  packets in {r.PacketsIn:N0}  bytes in {r.BytesIn:N0}  delivered {r.Delivered:N0}  dropped {r.Drops.Total:N0}  " +
                           $"({(r.Conserved ? "conserved" : "[red]NOT conserved[/]")})  in {r.Elapsed.TotalMilliseconds:N0} ms");
        var proto = new Table().Border(TableBorder.Simple).AddColumn("protocol").AddColumn(new TableColumn("packets").RightAligned());
        foreach (var (name, count) in r.Protocols.Items())
            if (count != 0 || name is "ethernet" or "ipv4" or "ipv6" or "tcp" or "udp" or "icmp" or "other")
                proto.AddRow(name, count.ToString("N0"));
        console.Write(proto);
        if (r.Drops.Total > 0)
        {
            var drops = new Table().Border(TableBorder.Simple).AddColumn("drop reason").AddColumn(new TableColumn("packets").RightAligned());
            foreach (var (reason, count) in r.Drops.NonZero())
                drops.AddRow(DropReasons.Name(reason), count.ToString("N0"));
            console.Write(drops);
        }
    }
}
