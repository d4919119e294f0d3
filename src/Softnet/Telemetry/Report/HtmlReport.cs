using System.Globalization;
using System.Text;
using Softnet.Gro;
using Softnet.Packets;
using Softnet.Topology;

namespace Softnet.Telemetry.Report;

/// <summary>What the HTML report shows besides the replay's own report.</summary>
public sealed record HtmlReportOptions
{
    /// <summary>The page title (default: the source).</summary>
    public string? Title { get; init; }

    /// <summary>The journeys of the traced packets (`--trace`), one line each; null: no trace was asked for.</summary>
    public IReadOnlyList<string>? TraceLines { get; init; }

    /// <summary>Conntrack entries shown per namespace.</summary>
    public int ConntrackEntries { get; init; } = 50;

    /// <summary>Netfilter rules shown, busiest first.</summary>
    public int Rules { get; init; } = 25;

    /// <summary>Trace lines shown (the rest are counted).</summary>
    public int TraceLimit { get; init; } = 5000;
}

/// <summary>
/// `--report FILE.html`: one self-contained page (inline CSS and SVG, a few lines of script, nothing fetched) with
/// the run's summary, the packet-fate Sankey, CPU per stage and the flamegraph, ring occupancy over time per queue,
/// GRO's segments-per-skb histogram, the busiest netfilter rules, the conntrack table and the traced packets.
/// </summary>
public static class HtmlReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The section ids, in page order (each is an &lt;section id=...&gt;).</summary>
    public static readonly string[] SectionIds = ["summary", "fate", "cpu", "flamegraph", "rings", "gro", "rules", "conntrack", "trace"];

    public static void Write(string path, ReplayReport report, HtmlReportOptions? options = null)
        => File.WriteAllText(path, Render(report, options), new UTF8Encoding(false));

    public static string Render(ReplayReport r, HtmlReportOptions? options = null)
    {
        options ??= new HtmlReportOptions();
        var scenario = r.Sections.OfType<ScenarioReportSection>().FirstOrDefault();
        var time = r.Sections.OfType<StageTimeSection>().FirstOrDefault();
        var nic = r.Sections.OfType<NicReportSection>().FirstOrDefault()?.Nic ?? time?.Nic;
        var gro = r.Sections.OfType<GroStats>().FirstOrDefault();
        string title = options.Title ?? $"softnet: {r.Source}";

        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>").Append(Html.Escape(title)).Append("</title>\n");
        sb.Append(Style);
        sb.Append("</head>\n<body>\n<h1>").Append(Html.Escape(title)).Append("</h1>\n<nav>");
        foreach (var id in SectionIds) sb.Append("<a href=\"#").Append(id).Append("\">").Append(id).Append("</a> ");
        sb.Append("</nav>\n");

        // ---------------- summary ----------------
        Section(sb, "summary", "Summary");
        sb.Append("<table class=\"kv\">\n");
        Row(sb, "source", r.Source);
        if (scenario is not null) Row(sb, "scenario", scenario.Scenario.Directory);
        Row(sb, "packets in", N(r.PacketsIn));
        Row(sb, "bytes in", N(r.BytesIn));
        if (r.AggregateSegments != 0) Row(sb, "aggregate segments", N(r.AggregateSegments));
        Row(sb, scenario is null ? "delivered" : "into the scenario", N(r.Delivered));
        Row(sb, "dropped", N(r.Drops.Total));
        if (r.XdpTx + r.XdpRedirect != 0) Row(sb, "xdp tx / redirect", $"{N(r.XdpTx)} / {N(r.XdpRedirect)}");
        Row(sb, "conserved", r.Conserved ? "yes" : "NO");
        Row(sb, "elapsed", $"{r.Elapsed.TotalMilliseconds.ToString("N0", Inv)} ms");
        Row(sb, "capture span", $"{((r.LastTimestampNs - r.FirstTimestampNs) / 1e9).ToString("F6", Inv)} s");
        if (r.CaptureError is not null) Row(sb, "capture error", r.CaptureError);
        sb.Append("</table>\n");
        if (r.Protocols.Items().Any(p => p.Count != 0))
        {
            sb.Append("<table class=\"grid\"><tr><th>protocol</th><th>packets</th></tr>\n");
            foreach (var (name, count) in r.Protocols.Items())
                if (count != 0) sb.Append("<tr><td>").Append(name).Append("</td><td class=\"n\">").Append(N(count)).Append("</td></tr>\n");
            sb.Append("</table>\n");
        }
        if (scenario is not null)
        {
            sb.Append("<table class=\"grid\"><tr><th>namespace</th><th>received</th><th>delivered</th><th>forwarded</th><th>bridged</th><th>dropped</th><th>sent</th></tr>\n");
            foreach (var ns in scenario.Scenario.Namespaces)
            {
                var c = ns.Counters;
                sb.Append("<tr><td>").Append(Html.Escape(ns.Name)).Append("</td>");
                foreach (long v in new[] { c.Received, c.DeliveredTotal, c.Forwarded, c.Bridged, c.Drops.Total, c.Sent })
                    sb.Append("<td class=\"n\">").Append(N(v)).Append("</td>");
                sb.Append("</tr>\n");
            }
            sb.Append("</table>\n");
        }
        sb.Append("</section>\n");

        // ---------------- packet fate ----------------
        Section(sb, "fate", "Packet fate");
        sb.Append("<p>Arrival, then what the NIC did with each frame, then (in a scenario) each namespace's verdicts and drop reasons. A namespace counts the packets it received; one forwarded into the next namespace is counted there again.</p>\n");
        sb.Append(SvgCharts.Sankey(PacketFates(r), n => n.StartsWith("drop: ", StringComparison.Ordinal) ? "#d62728" : n.StartsWith("ns ", StringComparison.Ordinal) ? "#4e79a7" : n == "arrived" ? "#7f7f7f" : "#59a14f"));
        sb.Append("</section>\n");

        // ---------------- CPU ----------------
        Section(sb, "cpu", "CPU time per packet, by stage");
        if (time is not null)
        {
            var per = time.PerPacket();
            var total = per.FirstOrDefault(p => p.Stage == "total").NsPerPacket;
            sb.Append("<p>Sampled with the timestamp counter (one NAPI poll in ").Append(Nic.RxQueue.TimingSampleEvery)
              .Append("), nanoseconds per packet; total ").Append(total.ToString("F1", Inv)).Append(" ns.</p>\n");
            sb.Append(SvgCharts.Bars(per.Where(p => p.Stage != "total").Select(p => (p.Stage, p.NsPerPacket)).ToList(), "ns"));
        }
        else sb.Append("<p>No CPU time was sampled.</p>\n");
        sb.Append("</section>\n");

        Section(sb, "flamegraph", "Flamegraph");
        if (time is not null)
        {
            var stacks = CpuStacks.From(time);
            sb.Append("<p>Exclusive CPU time by call path, frames named for the kernel functions each stage mirrors (the same as <code>--folded</code>, in ")
              .Append(CpuStacks.Unit).Append(" over the run: ").Append(N(stacks.TotalNs)).Append("). Hover a frame for its time.</p>\n");
            sb.Append(FlamegraphSvg.Render(stacks));
        }
        else sb.Append("<p>No CPU time was sampled.</p>\n");
        sb.Append("</section>\n");

        // ---------------- rings ----------------
        Section(sb, "rings", "RX ring occupancy over time");
        if (nic is not null)
        {
            var series = new List<(string, IReadOnlyList<(double, double)>)>();
            long t0 = long.MaxValue;
            foreach (var q in nic.Queues)
                foreach (var (t, _) in q.Occupancy.Points())
                    if (t > 0) t0 = Math.Min(t0, t);
            if (t0 == long.MaxValue) t0 = 0;
            foreach (var q in nic.Queues)
                series.Add(($"rx-{q.Id} (max {N(q.MaxOccupancy)})", q.Occupancy.Points().Select(p => ((p.TimeNs - t0) / 1e6, (double)p.Occupancy)).ToList()));
            sb.Append("<p>Descriptors waiting when each NAPI poll started (ring of ").Append(nic.Options.RingSize)
              .Append("), against the arrival time of the oldest; a point stands for up to ")
              .Append(nic.Queues.Count > 0 ? nic.Queues.Max(q => q.Occupancy.Stride) : 1).Append(" polls (their largest).</p>\n");
            sb.Append(SvgCharts.Lines(series, "ms", "descriptors"));
        }
        else sb.Append("<p>No NIC in this run.</p>\n");
        sb.Append("</section>\n");

        // ---------------- GRO ----------------
        Section(sb, "gro", "GRO: segments per skb");
        if (gro is not null)
        {
            sb.Append("<p>").Append(N(gro.Received)).Append(" segments in, ").Append(N(gro.DeliveredSkbs)).Append(" skbs out, merge ratio ")
              .Append(gro.MergeRatio.ToString("F2", Inv)).Append(".</p>\n");
            int last = 1;
            for (int i = 1; i < GroStats.HistogramSlots; i++) if (gro.Histogram(i) != 0) last = i;
            var bins = new List<(string, long)>();
            for (int i = 1; i <= last; i++) bins.Add((i == GroStats.HistogramSlots - 1 ? "64+" : i.ToString(Inv), gro.Histogram(i)));
            sb.Append(SvgCharts.Histogram(bins, "skbs"));
        }
        else sb.Append("<p>GRO was off.</p>\n");
        sb.Append("</section>\n");

        // ---------------- rules ----------------
        Section(sb, "rules", "Busiest netfilter rules");
        var rules = scenario is null ? [] : BusiestRules(scenario.Scenario, options.Rules);
        if (rules.Count > 0)
        {
            sb.Append("<table class=\"grid\"><tr><th>namespace</th><th>table</th><th>chain</th><th>#</th><th>packets</th><th>bytes</th><th>rule</th></tr>\n");
            foreach (var x in rules)
                sb.Append("<tr><td>").Append(Html.Escape(x.Namespace)).Append("</td><td>").Append(Html.Escape(x.Table)).Append("</td><td>").Append(Html.Escape(x.Chain))
                  .Append("</td><td class=\"n\">").Append(x.Number).Append("</td><td class=\"n\">").Append(N(x.Packets)).Append("</td><td class=\"n\">").Append(N(x.Bytes))
                  .Append("</td><td><code>").Append(Html.Escape(x.Text)).Append("</code></td></tr>\n");
            sb.Append("</table>\n");
        }
        else sb.Append("<p>No rule counted a packet.</p>\n");
        sb.Append("</section>\n");

        // ---------------- conntrack ----------------
        Section(sb, "conntrack", "Conntrack table");
        bool anyCt = false;
        if (scenario is not null)
            foreach (var ns in scenario.Scenario.Namespaces)
            {
                string text = ScenarioDump.ConntrackText(ns, scenario.EndNs);
                var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                if (lines.Length == 0) continue;
                anyCt = true;
                sb.Append("<h3>").Append(Html.Escape(ns.Name)).Append(": ").Append(N(lines.Length)).Append(" entries")
                  .Append(lines.Length > options.ConntrackEntries ? $" (first {options.ConntrackEntries})" : "").Append("</h3>\n<pre>");
                foreach (var l in lines.Take(options.ConntrackEntries)) sb.Append(Html.Escape(l)).Append('\n');
                sb.Append("</pre>\n");
            }
        if (!anyCt) sb.Append("<p>No conntrack entries.</p>\n");
        sb.Append("</section>\n");

        // ---------------- trace ----------------
        Section(sb, "trace", "Traced packets");
        if (options.TraceLines is { } trace)
        {
            sb.Append("<p>").Append(N(trace.Count)).Append(" lines").Append(trace.Count > options.TraceLimit ? $" (first {options.TraceLimit})" : "").Append(".</p>\n<pre class=\"trace\">");
            foreach (var l in trace.Take(options.TraceLimit)) sb.Append(Html.Escape(l)).Append('\n');
            sb.Append("</pre>\n");
        }
        else sb.Append("<p>No packets traced (give <code>--trace EXPR</code>).</p>\n");
        sb.Append("</section>\n");

        sb.Append(Script);
        sb.Append("</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>The Sankey's flows: arrival to the NIC's outcomes (drop reasons, XDP TX/REDIRECT, up the stack); in a
    /// scenario, the stack to each namespace that received packets and each namespace to its outcomes.</summary>
    public static List<SankeyLink> PacketFates(ReplayReport r)
    {
        var links = new List<SankeyLink>();
        var scenario = r.Sections.OfType<ScenarioReportSection>().FirstOrDefault();
        string up = scenario is null ? "delivered" : "into the scenario";
        links.Add(new("arrived", up, r.Delivered));
        foreach (var (reason, n) in r.Drops.NonZero()) links.Add(new("arrived", "drop: " + DropReasons.Name(reason), n));
        links.Add(new("arrived", "XDP_TX", r.XdpTx));
        links.Add(new("arrived", "XDP_REDIRECT", r.XdpRedirect));
        if (scenario is null) return links.Where(l => l.Value > 0).ToList();
        foreach (var ns in scenario.Scenario.Namespaces)
        {
            var c = ns.Counters;
            if (c.Received == 0) continue;
            string node = "ns " + ns.Name;
            links.Add(new(up, node, c.Received));
            links.Add(new(node, "delivered locally", c.DeliveredTotal - c.TransportDrops));
            links.Add(new(node, "forwarded", c.Forwarded));
            links.Add(new(node, "bridged", c.Bridged));
            links.Add(new(node, "arp", c.Arp));
            links.Add(new(node, "awaiting neighbour", c.NeighQueued));
            links.Add(new(node, "fragments held", c.FragHeld + c.FragMerged));
            foreach (var (reason, n) in c.Drops.NonZero()) links.Add(new(node, "drop: " + DropReasons.Name(reason), n));
        }
        return links.Where(l => l.Value > 0).ToList();
    }

    /// <summary>One rule's counters for the busiest-rules table.</summary>
    public sealed record RuleCount(string Namespace, string Table, string Chain, int Number, long Packets, long Bytes, string Text);

    /// <summary>The rules that counted the most packets, over every namespace and both families.</summary>
    public static List<RuleCount> BusiestRules(Scenario scenario, int limit)
    {
        var all = new List<RuleCount>();
        foreach (var ns in scenario.Namespaces)
        {
            if (!ns.HasIptables) continue;
            foreach (var tables in new[] { ns.Netfilter, ns.Netfilter6 })
            {
                if (tables is null) continue;
                string fam = tables.Family == Netfilter.NfProto.Ipv6 ? "ip6 " : "";
                foreach (var t in tables.Tables)
                    foreach (var chain in t.Chains)
                        for (int i = 0; i < chain.Rules.Count; i++)
                        {
                            var rule = chain.Rules[i];
                            if (rule.Packets == 0) continue;
                            all.Add(new RuleCount(ns.Name, fam + t.Name, chain.Name, i + 1, rule.Packets, rule.Bytes, $"-A {chain.Name} {rule.Render()}"));
                        }
            }
        }
        return all.OrderByDescending(x => x.Packets).ThenBy(x => x.Namespace, StringComparer.Ordinal).Take(limit).ToList();
    }

    private static string N(long v) => v.ToString("N0", Inv);

    private static void Section(StringBuilder sb, string id, string heading)
        => sb.Append("<section id=\"").Append(id).Append("\">\n<h2>").Append(Html.Escape(heading)).Append("</h2>\n");

    private static void Row(StringBuilder sb, string key, string value)
        => sb.Append("<tr><th>").Append(Html.Escape(key)).Append("</th><td>").Append(Html.Escape(value)).Append("</td></tr>\n");

    private const string Style = """
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
nav a { margin-right: 0.8em; }
table { border-collapse: collapse; margin: 0.5em 0; }
table.grid td, table.grid th, table.kv td, table.kv th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
svg { display: block; margin: 0.5em 0; max-width: 100%; height: auto; }
svg .frame:hover rect, svg .node:hover rect, svg .bar:hover rect { stroke: #000; stroke-width: 1; }
svg .link:hover { fill-opacity: 0.8; }
</style>

""";

    // The only script: it counts what the charts drew into the page (a check a headless browser can read back with
    // --dump-dom) and records script errors the same way. The charts themselves need none.
    private const string Script = """
<script>
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); document.documentElement.setAttribute('data-script-errors', errors.join(' | ')); });
  var marks = document.querySelectorAll('svg rect, svg path').length;
  document.documentElement.setAttribute('data-chart-marks', String(marks));
  // Where each chart sits on the page (section:left,top,width,height), to find it in a screenshot.
  var boxes = [];
  document.querySelectorAll('section').forEach(function (s) {
    s.querySelectorAll('svg').forEach(function (g) {
      var b = g.getBoundingClientRect();
      boxes.push(s.id + ':' + [b.left, b.top + window.scrollY, b.width, b.height].map(Math.round).join(','));
    });
  });
  document.documentElement.setAttribute('data-chart-boxes', boxes.join(' '));
  document.documentElement.setAttribute('data-report-ready', 'yes');
})();
</script>

""";
}
