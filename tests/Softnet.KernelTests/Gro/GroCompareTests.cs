using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Gro;

/// <summary>The comparison helper and frame builders on their own (no kernel needed).</summary>
public sealed class GroCompareTests
{
    [Fact]
    public void Same_frames_in_another_flow_order_compare_equal()
    {
        var a = new TcpFrame { SrcPort = 1 }.Build();
        var b = new TcpFrame { SrcPort = 2 }.Build();
        Assert.Null(GroCompare.Diff([a, b], [b, a]));
    }

    [Fact]
    public void Difference_names_flow_frame_and_field()
    {
        var a = new TcpFrame().Build();
        var b = new TcpFrame { Window = 1 }.Build();
        var msg = GroCompare.Diff([a], [b]);
        Assert.NotNull(msg);
        Assert.Contains("tcp.window", msg);
        Assert.Contains("frame #0", msg);
    }

    [Fact]
    public void Missing_frame_is_reported()
    {
        var a = new TcpFrame().Build();
        Assert.Contains("missing", GroCompare.Diff([a, a], [a]));
    }

    [Fact]
    public void Builder_writes_valid_checksums_and_decodes_back()
    {
        foreach (bool v6 in new[] { false, true })
        {
            var f = new FrameInfo(new TcpFrame { V6 = v6, Vlans = [5], TcpOptions = TcpOpt.Ts(1), Seq = 7 }.Build());
            Assert.True(f.IsTcp);
            Assert.Equal(7u, f.Seq);
            Assert.Equal(100, f.TcpPayloadLength);
            Assert.Equal([(ushort)5], f.Vlans);
            var ip = f.Bytes.AsSpan(f.IpOffset);
            var l4 = f.Bytes.AsSpan(f.L4Offset);
            uint pseudo = v6 ? Softnet.Packets.Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), 6, l4.Length)
                             : Softnet.Packets.Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), 6, l4.Length);
            Assert.True(Softnet.Packets.Checksum.Verify(l4, pseudo));
            if (!v6) Assert.True(Softnet.Packets.Checksum.Verify(ip[..20]));
        }
    }

    [Fact]
    public void Case_names_are_unique_and_bursts_fit_the_veth_ring()
    {
        var all = GroCases.All().ToList();
        Assert.Equal(all.Count, all.Select(c => c.Name).Distinct().Count());
        Assert.All(all, c => Assert.All(c.Bursts, b => Assert.InRange(b.Count, 1, 249)));
        Assert.All(all, c => Assert.All(c.Bursts, b => Assert.All(b, f => Assert.InRange(f.Length, 54, 1522))));
    }

    [Fact]
    public void Jumbo_cases_are_unique_and_fit_the_veth_mtu()
    {
        var jumbo = GroCases.Jumbo().ToList();
        Assert.Equal(jumbo.Count, jumbo.Select(c => c.Name).Concat(GroCases.All().Select(c => c.Name)).Distinct().Count() - GroCases.All().Count());
        Assert.All(jumbo, c => Assert.All(c.Bursts, b => Assert.InRange(b.Count, 1, 249)));
        Assert.All(jumbo, c => Assert.All(c.Bursts, b => Assert.All(b, f => Assert.InRange(f.Length, 54, GroCases.JumboMtu + 14))));
        Assert.Contains(jumbo, c => c.Bursts.Any(b => b.Any(f => f.Length == GroCases.JumboMtu + 14)));
    }
}
