using System.CommandLine;
using Softnet.Telemetry;
using Softnet.Telemetry.Report;

namespace Softnet.Cli;

/// <summary>The files `--folded`, `--flamegraph` and `--report` ask for (null: not asked).</summary>
internal sealed record ReportFileOptions(string? Folded, string? Flamegraph, string? Html)
{
    public bool Any => Folded is not null || Flamegraph is not null || Html is not null;

    /// <summary>The `--trace` journeys for the report's trace section, asked for once the run is over (null: none).</summary>
    public Func<IReadOnlyList<string>?>? TraceLines { get; init; }
}

/// <summary>
/// `--folded FILE`, `--flamegraph FILE.svg` and `--report FILE.html` of replay and run: the options, and writing the
/// files from a finished run's report (before the scenario is disposed: the report reads its conntrack table).
/// </summary>
internal static class ReportFiles
{
    public sealed class Options
    {
        public Option<string?> Folded { get; } = new("--folded") { HelpName = "FILE", Description = "write CPU time per call path as collapsed stacks (`frame;frame;... N`, N in nanoseconds over the run, frames named for kernel functions) to FILE" };
        public Option<string?> Flamegraph { get; } = new("--flamegraph") { HelpName = "FILE.svg", Description = "draw those stacks as a flamegraph SVG to FILE.svg" };
        public Option<string?> Report { get; } = new("--report") { HelpName = "FILE.html", Description = "write a self-contained HTML report (summary, packet-fate Sankey, CPU per stage, flamegraph, ring occupancy, GRO histogram, busiest rules, conntrack, trace) to FILE.html" };

        public void AddTo(Command cmd)
        {
            cmd.Options.Add(Folded);
            cmd.Options.Add(Flamegraph);
            cmd.Options.Add(Report);
        }

        public ReportFileOptions From(ParseResult pr) => new(pr.GetValue(Folded), pr.GetValue(Flamegraph), pr.GetValue(Report));
    }

    /// <summary>Writes the files asked for; on an I/O error prints it and returns false.</summary>
    /// <param name="traceLines">The `--trace` journeys for the report's trace section (null: none asked).</param>
    public static bool Write(ReplayReport report, ReportFileOptions? files, string verb, IReadOnlyList<string>? traceLines = null)
    {
        if (files is null || !files.Any) return true;
        try
        {
            var time = report.Sections.OfType<StageTimeSection>().FirstOrDefault();
            var stacks = time is null ? new CpuStacks([], 0) : CpuStacks.From(time);
            if (files.Folded is not null) File.WriteAllText(files.Folded, stacks.Folded());
            if (files.Flamegraph is not null) File.WriteAllText(files.Flamegraph, FlamegraphSvg.Render(stacks, $"softnet {verb} {report.Source}: CPU time by call path"));
            if (files.Html is not null) HtmlReport.Write(files.Html, report, new HtmlReportOptions { TraceLines = traceLines ?? files.TraceLines?.Invoke() });
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"softnet {verb}: {e.Message}");
            return false;
        }
    }
}
