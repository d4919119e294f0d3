using Softnet.Netfilter;
using Xunit;
using static Softnet.Tests.Netfilter.Ipv6.PacketBuilder6;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>A steady stream of new IPv6 connections: expired entries are collected as the gc worker would, and their
/// objects reused, so the table stays bounded and nothing is allocated per packet once warm.</summary>
public class Ip6ConntrackSteadyStateTests
{
    [Fact]
    public void New_flows_at_a_steady_rate_allocate_nothing_once_warm()
    {
        var t = Ip6ConntrackNatTests.Load();
        var pkts = new byte[4096][];
        for (int i = 0; i < pkts.Length; i++) pkts[i] = Udp($"2001:db8:1::{i % 200 + 1:x}", (ushort)(10000 + i), "2001:db8:ff::100", 123);
        var copy = new byte[pkts[0].Length];
        long now = 0;
        int next = 0;
        void Flow()
        {
            // A new flow every 20 ms, each UDP query unanswered (30 s): about 1500 live at a time (and up to half as many
            // expired ones the incremental gc has yet to reach, as the kernel's gc worker lags too).
            now += 20_000_000;
            var src = pkts[next++ % pkts.Length];
            src.CopyTo(copy, 0);
            PacketContext.FromIpv6(copy, copy.Length, out var ctx, out _);
            ctx.TimestampNs = now;
            ctx.InInterface = "lan0";
            t.Hook(HookPoint.PreRouting, ref ctx, copy);
            ctx.OutInterface = "wan0";
            t.Hook(HookPoint.Forward, ref ctx, copy);
            t.Hook(HookPoint.PostRouting, ref ctx, copy);
            t.Conntrack6.Quiesce();
        }
        for (int i = 0; i < 20_000; i++) Flow();
        int live = t.Conntrack6.Count;
        Assert.InRange(live, 1400, 2200);
        // Rounds, not one exact zero: tiered compilation may allocate once on this thread mid-loop.
        Support.AllocationAssert.NothingPerOperation(() => { for (int i = 0; i < 5_000; i++) Flow(); }, 5_000, "packets");
        Assert.InRange(t.Conntrack6.Count, 1400, 2200);
        Assert.InRange(t.Conntrack6.Entries(now).Count(), 1400, 1600);
    }
}
