using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// accept_ra on a received router advertisement (ndisc_router_discovery): a host takes the default route through the
/// router's link-local address, its current hop limit and its MTU option; accept_ra 0, or a forwarding device with
/// accept_ra 1, ignores all three (the router's link-layer address is learnt either way). Seen from outside: echo
/// requests from an off-link source are answered through the router (hop limit 33) or not at all (no route), and a
/// large one's reply is cut to the advertised MTU; the advertised prefix gives r an address (SLAAC, EUI-64) that
/// answers.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class RouterAdvertisementKernelTests
{
    private const string WireMac = "02:00:0a:4f:00:02", RMac = "02:00:0a:4f:00:01", R = "2001:db8:4f::1", Far = "2001:db8:99::5";
    /// <summary>The address r makes from the advertised prefix and its EUI-64 interface identifier.</summary>
    private const string Slaac = "2001:db8:50::aff:fe4f:1";

    private static void BuildScenario(string scn, string sysctls)
    {
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\nlink add name eth0 netns r type veth peer name wire0 netns wire\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/wire/ip.batch", $"link set lo up\nlink set wire0 address {WireMac}\nlink set wire0 up\n");
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\nnet.ipv6.auto_flowlabels = 0\n" + sysctls);
        ScenarioPair.Write(scn, "ns/r/ip.batch", $"link set lo up\nlink set eth0 address {RMac}\naddr add {R}/64 dev eth0 nodad\nlink set eth0 up\n");
    }

    /// <summary>A router advertisement from fe80::1 to ff02::1: current hop limit 33, router lifetime 1800 s, the
    /// source link-layer option, an MTU option of 1400 and the prefix 2001:db8:50::/64, on-link and autonomous.</summary>
    private static byte[] Ra()
    {
        var m = new byte[16 + 8 + 8 + 32];
        m[32] = 3;
        m[33] = 4;
        m[34] = 64;
        m[35] = 0xC0;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(36), 3600);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(40), 1800);
        Frames6.Addr("2001:db8:50::").CopyTo(m, 48);
        m[0] = 134;
        m[4] = 33;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(6), 1800);
        m[16] = 1;
        m[17] = 1;
        Convert.FromHexString(WireMac.Replace(":", "", StringComparison.Ordinal)).CopyTo(m, 18);
        m[24] = 5;
        m[25] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(28), 1400);
        var l4 = Frames6.WithChecksum("fe80::1", "ff02::1", 58, m, 2);
        return Frames6.Ipv6("fe80::1", "ff02::1", 58, l4, hop: 255);
    }

    private static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        c.Add("eth0", Frames6.Eth(RMac, WireMac, Support.Frames6.Echo(Far, R, 128, 7, 1)), "echo before any advertisement: no route");
        c.Add("eth0", Frames6.Eth("33:33:00:00:00:01", WireMac, Ra()), "router advertisement");
        // The reports for a new address's solicited-node group go within the pause (mldv2 interval 100 ms).
        c.Pause(600);
        c.Add("eth0", Frames6.Eth(RMac, WireMac, Support.Frames6.Echo(Far, R, 128, 7, 2)), "echo from off-link");
        c.Add("eth0", Frames6.Eth(RMac, WireMac, Support.Frames6.Echo(Far, R, 128, 7, 3, payload: 1400)), "echo needing fragments at 1400");
        c.Add("eth0", Frames6.Eth(RMac, WireMac, Support.Frames6.Echo(Far, Slaac, 128, 7, 4)), "echo to the SLAAC address");
        return c;
    }

    public static TheoryData<string, string> Settings() => new()
    {
        { "host", "" },
        { "accept-ra-0", "net.ipv6.conf.eth0.accept_ra = 0\n" },
        // No link-local address: the SLAAC address's solicited-node group is a new one, reported twice.
        { "host-no-link-local", "net.ipv6.conf.eth0.addr_gen_mode = 1\nnet.ipv6.conf.eth0.mldv2_unsolicited_report_interval = 100\n" },
        { "forwarding-accept-ra-1", "net.ipv6.conf.eth0.forwarding = 1\n" },
        { "forwarding-accept-ra-2", "net.ipv6.conf.eth0.forwarding = 1\nnet.ipv6.conf.eth0.accept_ra = 2\n" },
    };

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void Accept_ra_decides_what_an_advertisement_changes(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var (kernel, softnet) = ScenarioPair.Run("ra-" + name, scn => BuildScenario(scn, sysctls), Traffic(), "r");
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap" } });
    }
}
