using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// net.ipv6.auto_flowlabels (and flowlabel_state_ranges) on what a host builds itself: echo replies, ICMPv6 errors
/// (port unreachable), TCP resets to a closed port. The kernel hashes each flow with a per-boot key, so the captures
/// are compared with labels canonicalised (<see cref="ScenarioCompareOptions.CanonicalFlowLabels"/>): zero or not,
/// the stateless bit, and which replies share a label (the same flow twice: the same label; another flow: another).
/// </summary>
[Trait("Category", "Kernel")]
public sealed class FlowLabelKernelTests
{
    private const string WireMac = "02:00:0a:4e:00:02", RMac = "02:00:0a:4e:00:01", R = "2001:db8:4e::1";

    private static void BuildScenario(string scn, string sysctls)
    {
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\nlink add name eth0 netns r type veth peer name wire0 netns wire\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/wire/ip.batch", $"link set lo up\nlink set wire0 address {WireMac}\nlink set wire0 up\n");
        // A quiet host (no DAD, no link-local, no solicitations) with a global address and its peers' neighbours.
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.accept_dad = 0\nnet.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.eth0.accept_dad = 0\n" +
            "net.ipv6.conf.eth0.addr_gen_mode = 1\nnet.ipv6.conf.all.router_solicitations = 0\nnet.ipv6.conf.default.router_solicitations = 0\n" +
            "net.ipv6.conf.eth0.router_solicitations = 0\n" + sysctls);
        ScenarioPair.Write(scn, "ns/r/ip.batch", $"link set lo up\nlink set eth0 address {RMac}\naddr add {R}/64 dev eth0 nodad\nlink set eth0 up\n" +
            $"neigh add 2001:db8:4e::2 lladdr {WireMac} dev eth0 nud permanent\nneigh add 2001:db8:4e::3 lladdr {WireMac} dev eth0 nud permanent\n");
    }

    private static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Support.Frames6.Eth(RMac, WireMac, ip), note);
        In(Support.Frames6.Echo("2001:db8:4e::2", R, 128, 7, 1), "echo");
        In(Support.Frames6.Echo("2001:db8:4e::2", R, 128, 7, 2), "echo, same flow");
        In(Support.Frames6.Echo("2001:db8:4e::3", R, 128, 9, 1), "echo, another source");
        In(Support.Frames6.Udp("2001:db8:4e::2", 5000, R, 9), "closed UDP port");
        In(Support.Frames6.Tcp("2001:db8:4e::2", 40000, R, 81, 0x02, 1000), "SYN to a closed port");
        In(Support.Frames6.Tcp("2001:db8:4e::2", 40000, R, 81, 0x02, 1000), "the same SYN again");
        In(Support.Frames6.Tcp("2001:db8:4e::3", 40001, R, 81, 0x02, 5000), "SYN from another flow");
        return c;
    }

    public static TheoryData<string, string> Settings() => new()
    {
        { "off", "net.ipv6.auto_flowlabels = 0\n" },
        { "default", "" },
        { "opt-in", "net.ipv6.auto_flowlabels = 2\n" },
        { "forced-state-ranges", "net.ipv6.auto_flowlabels = 3\nnet.ipv6.flowlabel_state_ranges = 1\n" },
    };

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void Automatic_flow_labels_as_in_the_kernel(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var (kernel, softnet) = ScenarioPair.Run("flowlabel-" + name, scn => BuildScenario(scn, sysctls), Traffic(), "r");
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions
        {
            IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap" },
            CanonicalFlowLabels = true,
        });
        // flowlabel_state_ranges: every automatic label in the stateless range (bit 19 set); the comparison above
        // replaced the labels by their ranks.
        if (sysctls.Contains("flowlabel_state_ranges = 1", StringComparison.Ordinal))
            foreach (var dir in new[] { kernel, softnet })
            {
                var labels = ScenarioCompare.ReadFrames(Path.Combine(dir, "r", "eth0.tx.pcap"))
                    .Select(f => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(14)) & 0xFFFFF).ToList();
                Assert.NotEmpty(labels);
                Assert.All(labels, l => Assert.True((l & 0x80000) != 0, $"{dir}: label {l:x5}"));
            }
    }
}
