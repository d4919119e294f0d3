using Softnet.Xdp;
using Xunit;

namespace Softnet.Tests.Xdp;

public class XdpBuffTests
{
    [Fact]
    public void Adjust_head_grows_into_headroom_and_keeps_metadata()
    {
        var buf = new byte[2048];
        var ctx = new XdpBuff(buf, 256, 100, rxQueue: 3);
        Assert.Equal(256, ctx.Headroom);
        Assert.True(ctx.AdjustMeta(-8));
        ctx.Meta.Fill(0xAB);
        Assert.True(ctx.AdjustHead(-14)); // room for an encapsulating Ethernet header
        Assert.Equal(114, ctx.Length);
        Assert.Equal(8, ctx.Meta.Length);
        Assert.All(ctx.Meta.ToArray(), b => Assert.Equal(0xAB, b));
        Assert.Equal(3, ctx.RxQueue);
    }

    [Fact]
    public void Adjust_head_refuses_to_leave_less_than_an_ethernet_header_or_leave_the_buffer()
    {
        var buf = new byte[512];
        var ctx = new XdpBuff(buf, 256, 20, 0);
        Assert.False(ctx.AdjustHead(7));
        Assert.True(ctx.AdjustHead(6));
        Assert.False(ctx.AdjustHead(-300));
    }

    [Fact]
    public void Adjust_meta_is_4_aligned_and_stays_out_of_the_xdp_frame()
    {
        var ctx = new XdpBuff(new byte[512], 256, 60, 0);
        Assert.False(ctx.AdjustMeta(-3));
        Assert.False(ctx.AdjustMeta(-(256 - XdpAdjust.XdpFrameSize) - 4));
        Assert.True(ctx.AdjustMeta(-36)); // more than 32 bytes since meta_len's limit (255) took over
        Assert.True(ctx.AdjustMeta(36));
        Assert.Equal(0, ctx.Meta.Length);
    }

    [Fact]
    public void Adjust_tail_respects_tailroom()
    {
        var ctx = new XdpBuff(new byte[512], 256, 60, 0, tailroom: 128);
        Assert.True(ctx.AdjustTail(512 - 128 - 316));
        Assert.False(ctx.AdjustTail(1));
        Assert.False(ctx.AdjustTail(-(ctx.Length - 13)));
    }

    [Fact]
    public void Counters_count_every_verdict()
    {
        var c = new XdpCounters();
        foreach (var a in new[] { XdpAction.Pass, XdpAction.Drop, XdpAction.Drop, XdpAction.Tx, XdpAction.Redirect, XdpAction.Aborted, (XdpAction)9 })
            c.Count(a);
        Assert.Equal((1, 2, 1, 1, 1, 1), (c.Pass, c.Drop, c.Tx, c.Redirect, c.Aborted, c.Invalid));
        Assert.Equal(7, c.Total);
    }
}
