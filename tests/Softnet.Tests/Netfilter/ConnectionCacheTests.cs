using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

/// <summary>The nf_conn slab: entries go back for reuse only at a quiescent point or when their namespace goes.</summary>
public class ConnectionCacheTests
{
    private static PacketContext Pass(ConntrackTable ct, byte[] pkt, long t)
    {
        var ctx = Ctx(pkt, t);
        Assert.Equal(Verdict.Accept, ct.In(ref ctx));
        ct.Confirm(ref ctx);
        return ctx;
    }

    [Fact]
    public void A_deleted_entry_is_recycled_only_at_the_quiescent_point()
    {
        var table = new ConntrackTable();
        var conn = Pass(table, Tcp("10.0.0.1", 40000, "10.0.0.2", 80, 0x02), 0).Ct!;
        int gen = conn.Generation;
        table.Delete(conn);
        Assert.Equal(gen, conn.Generation); // a packet in flight may still hold it
        table.Quiesce();
        Assert.Equal(gen + 1, conn.Generation); // back in the slab: holders keyed by generation see it gone
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void Releasing_a_table_returns_every_entry_once()
    {
        var table = new ConntrackTable();
        var a = Pass(table, Tcp("10.0.0.1", 40001, "10.0.0.2", 80, 0x02), 0).Ct!;
        var b = Pass(table, Udp("10.0.0.1", 5000, "10.0.0.2", 53), 0).Ct!;
        int ga = a.Generation, gb = b.Generation;
        table.Delete(a);
        table.Release();
        table.Quiesce();
        Assert.Equal(ga + 1, a.Generation);
        Assert.Equal(gb + 1, b.Generation);
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void Connlimit_counts_a_recycled_entry_as_gone()
    {
        var tables = IptablesSaveParser.Parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m connlimit --connlimit-above 1 -j DROP\nCOMMIT\n", "t");
        var first = Ctx(Tcp("10.0.0.1", 40000, "10.0.0.2", 80, 0x02), 0);
        Assert.Equal(Verdict.Accept, tables.Hook(HookPoint.PreRouting, ref first));
        Assert.Equal(Verdict.Accept, tables.Hook(HookPoint.LocalIn, ref first));
        var conn = first.Ct!;
        tables.Conntrack.Delete(conn);
        tables.Conntrack.Quiesce();
        // The first connection is gone: a second one from the same source is the only one, not over the limit.
        var second = Ctx(Tcp("10.0.0.1", 40001, "10.0.0.2", 80, 0x02), 1_000_000);
        Assert.Equal(Verdict.Accept, tables.Hook(HookPoint.PreRouting, ref second));
        Assert.Equal(Verdict.Accept, tables.Hook(HookPoint.LocalIn, ref second));
    }
}
