using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Softnet.Cli;
using Softnet.Telemetry.Report;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Cli;

/// <summary>`--folded`, `--flamegraph` and `--report` on replay (plain, --scenario, the embedded default).</summary>
[Collection("console")]
public class ReportCliTests
{
    private static int Softnet(params string[] args)
        => new RootCommand { GenCommand.Create(), ReplayCommand.Create(), RunCommand.Create() }.Parse(args).Invoke();

    private static string DockerScenario([System.Runtime.CompilerServices.CallerFilePath] string here = "")
        => Path.Combine(Path.GetDirectoryName(here)!, "..", "Topology", "Data", "docker");

    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static List<(string Stack, long Ns)> ReadFolded(string path)
    {
        var line = new Regex(@"^([^ ;]+(?:;[^ ;]+)*) ([0-9]+)$");
        return File.ReadAllLines(path).Select(l =>
        {
            var m = line.Match(l);
            Assert.True(m.Success, $"not a folded line: '{l}'");
            return (m.Groups[1].Value, long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        }).ToList();
    }

    /// <summary>The report's sections are all there and each inline SVG is well-formed XML.</summary>
    private static void AssertReport(string html)
    {
        string text = File.ReadAllText(html);
        Assert.StartsWith("<!DOCTYPE html>", text);
        foreach (var id in HtmlReport.SectionIds) Assert.Contains($"<section id=\"{id}\">", text);
        Assert.DoesNotContain("http://", text.Replace("http://www.w3.org/2000/svg", "")); // nothing fetched at view time
        Assert.DoesNotContain("https://", text);
        var svgs = Regex.Matches(text, "<svg .*?</svg>", RegexOptions.Singleline);
        Assert.True(svgs.Count >= 4, $"{svgs.Count} charts");
        foreach (Match m in svgs) XDocument.Parse(m.Value);
    }

    [Fact]
    public void Replay_writes_folded_stacks_a_flamegraph_and_the_report()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-report-");
        try
        {
            string cap = Path.Combine(dir.FullName, "in.pcap"), folded = Path.Combine(dir.FullName, "a.folded"),
                svg = Path.Combine(dir.FullName, "a.svg"), html = Path.Combine(dir.FullName, "a.html"), json = Path.Combine(dir.FullName, "a.json");
            Assert.Equal(0, Softnet("gen", "--streams", "2", "--bytes", "4M", "--out", cap));
            Assert.Equal(0, Softnet("replay", cap, "--folded", folded, "--flamegraph", svg, "--report", html, "--json", json, "--quiet"));
            var lines = ReadFolded(folded);
            Assert.Contains(lines, l => l.Stack == "net_rx_action;__napi_poll;ice_napi_poll;ice_clean_rx_irq");
            Assert.Contains(lines, l => l.Stack.EndsWith(";napi_gro_receive;dev_gro_receive", StringComparison.Ordinal));
            // The folded total is the cpu_time section's (driver, gro and stack seconds), to rounding.
            var cpu = JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("cpu_time");
            double seconds = new[] { "driver", "gro", "stack" }.Sum(s => cpu.GetProperty(s).GetProperty("seconds").GetDouble());
            Assert.InRange(lines.Sum(l => l.Ns) / 1e9, seconds - 1e-5, seconds + 1e-5);
            var doc = XDocument.Load(svg);
            var titles = doc.Descendants(Svg + "title").Select(t => t.Value).ToList();
            foreach (var frame in new[] { "ice_clean_rx_irq", "dev_gro_receive", "__netif_receive_skb_core" })
                Assert.Contains(titles, t => t.StartsWith(frame + " (", StringComparison.Ordinal));
            AssertReport(html);
            Assert.Contains("segments per skb", File.ReadAllText(html));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Scenario_replay_nests_the_stacks_stages_under_the_drivers_poll()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-report-");
        try
        {
            string cap = Path.Combine(dir.FullName, "in.pcap"), folded = Path.Combine(dir.FullName, "s.folded"),
                svg = Path.Combine(dir.FullName, "s.svg"), html = Path.Combine(dir.FullName, "s.html");
            Assert.Equal(0, Softnet("gen", "--bytes", "8M", "--out", cap));
            Assert.Equal(0, Softnet("replay", cap, "--scenario", DockerScenario(), "--inject", "host:eth0",
                "--folded", folded, "--flamegraph", svg, "--report", html, "--quiet"));
            var lines = ReadFolded(folded);
            const string wire = "net_rx_action;__napi_poll;ice_napi_poll;ice_clean_rx_irq;napi_gro_receive;gro_normal_one;netif_receive_skb_list_internal;__netif_receive_skb_list_core;__netif_receive_skb_core";
            Assert.Contains(lines, l => l.Stack == wire + ";ip_rcv");
            Assert.Contains(lines, l => l.Stack == wire + ";ip_rcv;nf_hook_slow;ipv4_conntrack_in;nf_conntrack_in");
            // Every line of the flamegraph's input is a rectangle in it.
            var titles = XDocument.Load(svg).Descendants(Svg + "title").Select(t => t.Value).ToHashSet();
            foreach (var frame in lines.SelectMany(l => l.Stack.Split(';')).Distinct())
                Assert.Contains(titles, t => t.StartsWith(frame + " (", StringComparison.Ordinal));
            AssertReport(html);
            string text = File.ReadAllText(html);
            Assert.Contains("ns host", text); // the namespace in the Sankey
            Assert.Contains("drop: ", text);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Run_has_the_same_options()
    {
        var cmd = RunCommand.Create();
        foreach (var o in new[] { "--folded", "--flamegraph", "--report" }) Assert.Contains(cmd.Options, x => x.Name == o);
    }

    [SkippableFact]
    [Trait("Category", "Browser")]
    public void The_report_opens_in_headless_chromium_without_script_errors_and_its_charts_draw()
    {
        string? chromium = new[] { "chromium", "chromium-browser", "google-chrome" }.FirstOrDefault(ExternalTool.Exists);
        Skip.If(chromium is null, ExternalTool.Missing("chromium"));
        var dir = Directory.CreateTempSubdirectory("softnet-report-");
        try
        {
            string html = Path.Combine(dir.FullName, "d.html"), png = Path.Combine(dir.FullName, "d.png");
            // The embedded default: two namespaces' worth of rules, conntrack, GRO and a Sankey with verdicts.
            Assert.Equal(0, Softnet("replay", "--report", html, "--quiet"));
            string[] common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--force-device-scale-factor=1",
                "--user-data-dir=" + Path.Combine(dir.FullName, "profile"), "--enable-logging=stderr", "--v=0"];
            string url = new Uri(html).AbsoluteUri;
            var (rc, dom, err) = ExternalTool.Run(chromium!, [.. common, "--window-size=1280,1600", "--dump-dom", url]);
            Assert.True(rc == 0, $"chromium --dump-dom exit {rc}: {err}");
            // The page's script ran to its end and recorded no error on the root element.
            var root = Regex.Match(dom, "<html[^>]*>").Value;
            Assert.Contains("data-report-ready=\"yes\"", root);
            Assert.DoesNotContain("data-script-errors", root);
            Assert.DoesNotContain("Uncaught", err);
            Assert.DoesNotMatch(":CONSOLE[:(]", err); // chromium logs console messages (errors included) this way
            var marks = Regex.Match(root, "data-chart-marks=\"([0-9]+)\"");
            Assert.True(marks.Success && int.Parse(marks.Groups[1].Value, CultureInfo.InvariantCulture) > 50, "the charts drew few marks");
            var boxes = Regex.Match(root, "data-chart-boxes=\"([^\"]*)\"").Groups[1].Value
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(b =>
                {
                    var (id, nums) = (b[..b.IndexOf(':')], b[(b.IndexOf(':') + 1)..].Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToArray());
                    return (Id: id, X: nums[0], Y: nums[1], W: nums[2], H: nums[3]);
                }).ToList();
            foreach (var id in new[] { "fate", "cpu", "flamegraph", "rings", "gro" }) Assert.Contains(boxes, b => b.Id == id);

            // A screenshot tall enough for every chart, then each chart's box must hold coloured marks (the page
            // around them is black text on white).
            int height = Math.Min(12000, boxes.Max(b => b.Y + b.H) + 40);
            (rc, _, err) = ExternalTool.Run(chromium!, [.. common, $"--window-size=1280,{height}", "--screenshot=" + png, url]);
            Assert.True(rc == 0 && File.Exists(png), $"chromium --screenshot exit {rc}: {err}");
            var image = PngImage.Load(png);
            Assert.Equal(1280, image.Width);
            Assert.True(image.DistinctColours() > 50, $"{image.DistinctColours()} colours: a blank page?");
            foreach (var b in boxes.Where(b => b.Id is "fate" or "cpu" or "flamegraph" or "rings" or "gro"))
            {
                long coloured = image.ColouredPixelsIn(b.X, b.Y, b.W, b.H);
                Assert.True(coloured > 200, $"chart '{b.Id}' at {b.X},{b.Y} {b.W}x{b.H}: {coloured} coloured pixels");
            }
        }
        finally { dir.Delete(true); }
    }
}
