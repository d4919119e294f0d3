using Softnet.Ip;
using Softnet.Link;
using Xunit;

namespace Softnet.Tests.Ip;

/// <summary>ip6_make_flowlabel's rules on what Softnet builds (FlowLabelKernelTests compares them with the kernel).</summary>
public sealed class Ipv6FlowLabelTests
{
    private static readonly UInt128 A = Softnet.Packets.Ipv6.Make(0x2001_0db8_0000_0000UL, 1), B = Softnet.Packets.Ipv6.Make(0x2001_0db8_0000_0000UL, 2);

    private static Namespace Ns(string? auto = null, string? ranges = null)
    {
        var ns = new Namespace("h");
        if (auto != null) ns.WriteSysctl("net.ipv6.auto_flowlabels", auto);
        if (ranges != null) ns.WriteSysctl("net.ipv6.flowlabel_state_ranges", ranges);
        return ns;
    }

    [Fact]
    public void Default_labels_are_nonzero_stable_per_flow_and_differ_between_flows()
    {
        var ns = Ns();
        uint l = Ipv6FlowLabel.Make(ns, A, B, 6, 80u << 16 | 40000);
        Assert.NotEqual(0u, l);
        Assert.True(l <= 0xFFFFF);
        Assert.Equal(l, Ipv6FlowLabel.Make(ns, A, B, 6, 80u << 16 | 40000));
        Assert.NotEqual(l, Ipv6FlowLabel.Make(ns, A, B, 6, 80u << 16 | 40001));
    }

    [Theory]
    [InlineData("0", 0)]
    [InlineData("2", 0)]
    [InlineData("1", 1)]
    [InlineData("3", 1)]
    public void Auto_flowlabels_off_and_opt_in_leave_zero(string auto, int nonzero)
        => Assert.Equal(nonzero != 0, Ipv6FlowLabel.Make(Ns(auto), A, B, 58, Ipv6FlowLabel.IcmpPorts(129, 0)) != 0);

    [Fact]
    public void State_ranges_set_the_stateless_bit_and_a_sysctl_change_is_seen()
    {
        var ns = Ns(ranges: "1");
        Assert.NotEqual(0u, Ipv6FlowLabel.Make(ns, A, B, 17, 1) & 0x80000);
        ns.WriteSysctl("net.ipv6.auto_flowlabels", "0");
        Assert.Equal(0u, Ipv6FlowLabel.Make(ns, A, B, 17, 1));
    }
}
