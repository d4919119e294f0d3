using System.Text.RegularExpressions;
using System.Xml.Linq;
using Softnet.Nic;
using Softnet.Telemetry;
using Softnet.Telemetry.Report;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Reports;

/// <summary>StageClock's call paths, the folded stacks and the flamegraph drawn from them.</summary>
public class StageClockPathTests
{
    // A packet through every stage: IPv4 receive with PREROUTING (raw, mangle, conntrack, nat), FORWARD (mangle,
    // filter, security), POSTROUTING (nat, confirm), then the neighbour and dev_queue_xmit; an ARP on the backlog.
    private static readonly Stage[] PreRouting = [Stage.Raw, Stage.Mangle, Stage.Conntrack, Stage.Nat];
    private static readonly Stage[] Forward = [Stage.Mangle, Stage.Filter, Stage.Security];
    private static readonly Stage[] PostRouting = [Stage.Nat, Stage.Conntrack];

    private static void OnePacket(StageClock c)
    {
        c.StartPacket(sampled: true);
        c.Begin(Stage.Link, StageFrames.LinkWire);
        c.Begin(Stage.Ip);
        foreach (var s in PreRouting)
        {
            c.Begin(s, StageFrames.Hook(0, false));
            c.End();
        }
        foreach (var s in Forward)
        {
            c.Begin(s, StageFrames.Hook(2, false));
            c.End();
        }
        foreach (var s in PostRouting)
        {
            c.Begin(s, StageFrames.Hook(4, false));
            c.End();
        }
        c.Begin(Stage.Egress, StageFrames.EgressNeigh);
        c.Begin(Stage.Egress);
        c.End();
        c.End();
        c.End();
        c.End();
        c.Begin(Stage.Link, StageFrames.LinkBacklog);
        c.Begin(Stage.Neigh);
        c.End();
        c.End();
        c.EndPacket();
        // The clock breaks down one packet in StageClock.SampleEvery: let the others pass unsampled.
        for (int i = 1; i < StageClock.SampleEvery; i++)
        {
            c.StartPacket(sampled: true);
            c.EndPacket();
        }
    }

    [Fact]
    public void Nested_stages_are_recorded_as_call_paths_under_their_callers()
    {
        var c = new StageClock();
        OnePacket(c);
        OnePacket(c);
        Assert.Equal(2, c.SampledPackets);
        var paths = Enumerable.Range(1, c.PathCount - 1).Where(p => c.PathCharges[p] > 0).ToList();
        string Chain(int p)
        {
            var parts = new List<string>();
            for (; p != 0; p = c.PathParent(p)) parts.Insert(0, $"{c.PathStage(p)}/{c.PathDetail(p)}");
            return string.Join(" > ", parts);
        }
        var chains = paths.Select(Chain).ToHashSet();
        Assert.Contains("Link/0 > Ip/0 > Conntrack/1", chains);
        Assert.Contains("Link/0 > Ip/0 > Filter/3", chains);
        Assert.Contains("Link/0 > Ip/0 > Conntrack/5", chains);
        Assert.Contains("Link/0 > Ip/0 > Egress/1 > Egress/0", chains);
        Assert.Contains("Link/1 > Neigh/0", chains);
        // The same path twice is one path, charged on each visit (once when entered over, once at its end).
        int filter = paths.Single(p => Chain(p) == "Link/0 > Ip/0 > Filter/3");
        Assert.Equal(2, c.PathCharges[filter]);
        // Per-stage totals are the sums of their paths.
        for (int s = 0; s < (int)Stage.Count; s++)
        {
            Assert.Equal(c.Ticks[s], paths.Where(p => (int)c.PathStage(p) == s).Sum(p => c.PathTicks[p]));
            Assert.Equal(c.Charges[s], paths.Where(p => (int)c.PathStage(p) == s).Sum(p => c.PathCharges[p]));
        }
    }

    [Fact]
    public void A_full_path_table_charges_the_stage_at_the_root_and_keeps_its_totals()
    {
        var c = new StageClock();
        c.StartPacket(sampled: true);
        // Deep, distinct paths until the table is full (each level a new path).
        int opened = 0;
        for (int i = 0; i < StageClock.MaxPaths + 20 && opened < 60; i++, opened++) c.Begin((Stage)(i % (int)Stage.Count), i % StageClock.Details);
        for (int i = 0; i < opened; i++) c.End();
        for (int round = 0; round < 40; round++)
            for (int s = 0; s < (int)Stage.Count; s++)
            {
                c.Begin(Stage.Ip, round % StageClock.Details);
                c.Begin((Stage)s, (round + s) % StageClock.Details);
                c.Begin(Stage.Filter, round % 3);
                c.End();
                c.End();
                c.End();
            }
        c.EndPacket();
        Assert.Equal(StageClock.MaxPaths, c.PathCount);
        for (int s = 0; s < (int)Stage.Count; s++)
            Assert.Equal(c.Ticks[s], Enumerable.Range(1, c.PathCount - 1).Where(p => (int)c.PathStage(p) == s).Sum(p => c.PathTicks[p]));
    }

    [Fact]
    public void Recording_paths_allocates_nothing()
    {
        var c = new StageClock();
        OnePacket(c); // the paths are numbered on first use; they live in fixed arrays from the start anyway
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 1000; i++) OnePacket(c);
        }, 1000, "sampled packets");
    }

    [Fact]
    public void Folded_stacks_name_every_stage_and_sum_to_their_total()
    {
        var c = new StageClock();
        for (int i = 0; i < 50; i++) OnePacket(c);
        var stacks = CpuStacks.FromStages(c, 1000);
        string folded = stacks.Folded();
        var lines = folded.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.NotEmpty(lines);
        var line = new Regex(@"^[A-Za-z0-9_.]+(;[A-Za-z0-9_.]+)* [0-9]+$");
        long sum = 0;
        foreach (var l in lines)
        {
            Assert.Matches(line, l);
            sum += long.Parse(l[(l.LastIndexOf(' ') + 1)..]);
        }
        Assert.Equal(stacks.TotalNs, sum);
        // True nesting, in kernel names: netfilter inside ip_rcv inside the driver's poll, ARP on the backlog.
        const string wire = "net_rx_action;__napi_poll;ice_napi_poll;ice_clean_rx_irq;napi_gro_receive;gro_normal_one;netif_receive_skb_list_internal;__netif_receive_skb_list_core;__netif_receive_skb_core;ip_rcv";
        Assert.Contains(wire + ";nf_hook_slow;ipv4_conntrack_in;nf_conntrack_in ", folded);
        Assert.Contains(wire + ";ip_forward;nf_hook_slow;iptable_filter_hook;ipt_do_table ", folded);
        Assert.Contains(wire + ";ip_output;nf_hook_slow;nf_nat_ipv4_out;nf_nat_inet_fn ", folded);
        Assert.Contains(wire + ";ip_finish_output2;neigh_output;__dev_queue_xmit;dev_hard_start_xmit ", folded);
        Assert.Contains("net_rx_action;__napi_poll;process_backlog;__netif_receive_skb;__netif_receive_skb_core;arp_rcv ", folded);
        for (int s = 0; s < (int)Stage.Count; s++)
            Assert.True(StageFrames.Signatures((Stage)s).Any(f => folded.Contains(";" + f + ";") || folded.Contains(";" + f + " ")), $"stage {(Stage)s} is missing");
    }

    [Fact]
    public void The_flamegraph_parses_as_svg_and_has_a_titled_rectangle_for_every_stage()
    {
        var c = new StageClock();
        for (int i = 0; i < 50; i++) OnePacket(c);
        var stacks = CpuStacks.FromStages(c, 1000);
        var doc = XDocument.Parse(FlamegraphSvg.Render(stacks));
        XNamespace svg = "http://www.w3.org/2000/svg";
        Assert.Equal(svg + "svg", doc.Root!.Name);
        var frames = doc.Descendants(svg + "g").Where(g => (string?)g.Attribute("class") == "frame").ToList();
        var titles = frames.Select(g => g.Element(svg + "title")!.Value).ToList();
        Assert.All(frames, g => Assert.NotNull(g.Element(svg + "rect")));
        for (int s = 0; s < (int)Stage.Count; s++)
            Assert.True(StageFrames.Signatures((Stage)s).Any(f => titles.Any(t => t.StartsWith(f + " (", StringComparison.Ordinal))), $"stage {(Stage)s} has no frame");
        // Widths in proportion: the root spans the whole width less the margins, its share 100%.
        var root = frames.Single(g => g.Element(svg + "title")!.Value.StartsWith("all (", StringComparison.Ordinal));
        Assert.EndsWith("100.00%)", root.Element(svg + "title")!.Value);
        double rootWidth = double.Parse(root.Element(svg + "rect")!.Attribute("width")!.Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(rootWidth, FlamegraphSvg.Width - 21, FlamegraphSvg.Width - 19);
    }

    [Fact]
    public void Occupancy_series_stays_bounded_and_keeps_the_peaks()
    {
        var s = new OccupancySeries();
        for (int i = 1; i <= 100_000; i++) s.Record(i * 1000L, i == 77_777 ? 900 : i % 7);
        var p = s.Points();
        Assert.InRange(p.Length, OccupancySeries.Capacity / 2, OccupancySeries.Capacity);
        Assert.Contains(p, x => x.Occupancy == 900);
        Assert.True(p.Zip(p.Skip(1)).All(x => x.First.TimeNs <= x.Second.TimeNs));
        Assert.True(s.Stride > 1);
    }
}
