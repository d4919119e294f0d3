using System.Text.RegularExpressions;
using System.Xml.Linq;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Telemetry.Report;
using Xunit;

namespace Softnet.Tests.Reports;

/// <summary>The HTML report's sections, its trace hook and the packet-fate flows, without a replay behind them.</summary>
public class HtmlReportTests
{
    private static ReplayReport Report()
    {
        var r = new ReplayReport { Source = "a<b>.pcap", PacketsIn = 100, BytesIn = 6400, Delivered = 90, XdpTx = 3 };
        r.Drops.Add(DropReason.XdpDrop, 5);
        r.Drops.Add(DropReason.PoolExhausted, 2);
        return r;
    }

    [Fact]
    public void Every_section_is_there_even_without_data_and_text_is_escaped()
    {
        string html = HtmlReport.Render(Report(), new HtmlReportOptions { TraceLines = ["#1 arrival eth0 <rx-0>", "#1 nf filter FORWARD rule 3 -j ACCEPT & more"] });
        foreach (var id in HtmlReport.SectionIds) Assert.Contains($"<section id=\"{id}\">", html);
        Assert.Contains("a&lt;b&gt;.pcap", html);
        Assert.DoesNotContain("a<b>.pcap", html);
        Assert.Contains("#1 arrival eth0 &lt;rx-0&gt;", html);
        Assert.Contains("rule 3 -j ACCEPT &amp; more", html);
        foreach (Match m in Regex.Matches(html, "<svg .*?</svg>", RegexOptions.Singleline)) XDocument.Parse(m.Value);
    }

    [Fact]
    public void Without_a_trace_the_section_says_how_to_get_one()
    {
        string html = HtmlReport.Render(Report());
        Assert.Contains("--trace EXPR", html);
    }

    [Fact]
    public void The_fate_flows_out_of_arrival_add_up_to_the_packets_in()
    {
        var r = Report();
        var links = HtmlReport.PacketFates(r);
        Assert.Equal(r.PacketsIn, links.Where(l => l.From == "arrived").Sum(l => l.Value));
        Assert.Contains(links, l => l.To == "drop: " + DropReasons.Name(DropReason.XdpDrop) && l.Value == 5);
        Assert.Contains(links, l => l.To == "XDP_TX" && l.Value == 3);
        var doc = XDocument.Parse(SvgCharts.Sankey(links));
        XNamespace svg = "http://www.w3.org/2000/svg";
        Assert.Equal(links.Count, doc.Descendants(svg + "path").Count());
        Assert.Equal(links.Select(l => l.To).Append("arrived").Distinct().Count(), doc.Descendants(svg + "g").Count(g => (string?)g.Attribute("class") == "node"));
    }
}
