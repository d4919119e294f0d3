using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Tests.Topology;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Helpers;

/// <summary>
/// bpf_fib_lookup details found by the kernel comparison (KernelTests Xdp/BpfProgramKernelTests.Fib_forward_*):
/// IPv6 link-local, multicast and loopback addresses are never forwarded (checked first), the ingress device's
/// forwarding setting counts with BPF_FIB_LOOKUP_OUTPUT too, an output lookup takes only routes leaving by
/// params->ifindex, and a direct (main-table) IPv4 lookup still sees local addresses (local and main share one trie
/// while there are no rules).
/// </summary>
public class BpfFibLookupFlagTests
{
    private static (Namespace Host, NamespaceBpfFib Fib) Host()
    {
        var rig = new ScenarioRig("docker");
        var host = rig.Ns("host");
        return (host, new NamespaceBpfFib(host));
    }

    private static byte[] Params4(int ifindex, byte[] dst, int totLen = 100)
    {
        var p = new byte[BpfFibLookup.Size];
        p[0] = BpfFibLookup.AfInet;
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(6), (ushort)totLen);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), (uint)ifindex);
        dst.CopyTo(p, 32);
        return p;
    }

    private static byte[] Params6(int ifindex, string src, string dst)
    {
        var p = new byte[BpfFibLookup.Size];
        p[0] = BpfFibLookup.AfInet6;
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(6), 60);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), (uint)ifindex);
        System.Net.IPAddress.Parse(src).GetAddressBytes().CopyTo(p, 16);
        System.Net.IPAddress.Parse(dst).GetAddressBytes().CopyTo(p, 32);
        return p;
    }

    [Theory]
    [InlineData("2001:db8::1", "fe80::1")]
    [InlineData("2001:db8::1", "febf::1")]
    [InlineData("2001:db8::1", "ff02::1")]
    [InlineData("2001:db8::1", "ff0e::1")]
    [InlineData("2001:db8::1", "::1")]
    [InlineData("fe80::2", "2001:db8::9")]
    [InlineData("ff02::2", "2001:db8::9")]
    public void Ipv6_link_local_multicast_and_loopback_are_never_forwarded_not_even_asked_about_the_device(string src, string dst)
    {
        var (_, fib) = Host();
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup6(fib, Params6(999, src, dst), 0));
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup6(null, Params6(1, src, dst), 0));
    }

    [Theory]
    [InlineData("fec0::1")]
    [InlineData("2001:db8::1")]
    [InlineData("::")]
    public void Other_ipv6_destinations_reach_the_device_check(string dst)
        => Assert.Equal(-19, BpfFibLookup.Lookup6(Host().Fib, Params6(999, "2001:db8::5", dst), 0));

    [Fact]
    public void An_output_lookup_takes_only_routes_leaving_by_the_given_device()
    {
        var (host, fib) = Host();
        int eth0 = host.Device("eth0")!.Ifindex, docker0 = host.Device("docker0")!.Ifindex;
        // 172.17.0.2 is routed out docker0: asked as output of eth0 nothing else covers it.
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup4(fib, Params4(eth0, [172, 17, 0, 2]), BpfFibLookup.FlagOutput));
        var p = Params4(docker0, [172, 17, 0, 2]);
        Assert.Equal(BpfFibLookup.RetSuccess, BpfFibLookup.Lookup4(fib, p, BpfFibLookup.FlagOutput));
        Assert.Equal((uint)docker0, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)));
        // A reject route has no nexthop device: it answers whatever the device.
        Assert.Equal(BpfFibLookup.RetBlackhole, BpfFibLookup.Lookup4(fib, Params4(docker0, [203, 0, 113, 5]), BpfFibLookup.FlagOutput));
    }

    [Fact]
    public void A_direct_lookup_of_a_local_address_finds_the_local_route()
    {
        var (host, fib) = Host();
        int eth0 = host.Device("eth0")!.Ifindex;
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup4(fib, Params4(eth0, [192, 0, 2, 1]), BpfFibLookup.FlagDirect));
    }

    [Fact]
    public void Forwarding_off_refuses_output_lookups_too()
    {
        var rig = new ScenarioRig("docker");
        var host = rig.Ns("host");
        var eth0 = host.Device("eth0")!;
        host.Sysctls["net.ipv4.conf.eth0.forwarding"] = "0";
        var fib = new NamespaceBpfFib(host);
        Assert.True(fib.TryDevice(eth0.Ifindex, out bool fwd, out _));
        Assert.False(fwd);
        Assert.Equal(BpfFibLookup.RetFwdDisabled, BpfFibLookup.Lookup4(fib, Params4(eth0.Ifindex, [172, 17, 0, 2]), BpfFibLookup.FlagOutput));
    }
}
