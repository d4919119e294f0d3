using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Topology;

/// <summary>The kernel's global net.core sysctls in a scenario (<see cref="NetCoreSysctls"/>): checked as `sysctl -p`
/// on the host checks them, one value for every namespace, and the path acting on them.</summary>
public class NetCoreSysctlTests
{
    private static ScenarioRig Router(string rightSysctl, string? sockets = null)
    {
        var files = new Dictionary<string, string> { ["ns/right/sysctl.conf"] = rightSysctl };
        if (sockets != null) files["ns/right/sockets"] = sockets;
        return new ScenarioRig("router", files);
    }

    private static string LoadError(string rightSysctl, string? leftSysctl = null)
    {
        var files = new Dictionary<string, string> { ["ns/right/sysctl.conf"] = rightSysctl };
        if (leftSysctl != null) files["ns/left/sysctl.conf"] = leftSysctl;
        return Assert.Throws<ScenarioFormatException>(() => new ScenarioRig("router", files)).Message;
    }

    [Fact]
    public void A_global_key_set_in_one_namespace_holds_for_every_namespace()
    {
        var rig = Router("net.core.rmem_default = 4608\nnet.core.rmem_max = 8192\nnet.core.netdev_budget = 64\nnet.core.netdev_max_backlog = 10\n");
        foreach (var ns in rig.Scenario.Namespaces)
        {
            Assert.Equal("4608", ns.Sysctl("net.core.rmem_default"));
            Assert.Equal(4608, ns.RmemDefault);
            Assert.Equal(8192, ns.RmemMax);
            Assert.DoesNotContain("net.core.rmem_default", ns.SysctlsNotModelled.Keys);
            Assert.DoesNotContain("net.core.netdev_budget", ns.SysctlsNotModelled.Keys);
        }
        Assert.Equal(64, rig.Scenario.NetCore.NetdevBudget);
        Assert.Equal(10, rig.Scenario.NetCore.NetdevMaxBacklog);
        Assert.Null(rig.Scenario.NetCore.NetdevBudgetUsecs);
    }

    [Theory]
    // Values the host's handlers refuse (checked on 6.18 with sysctl -w in the root namespace).
    [InlineData("net.core.netdev_budget_usecs = 7999", "net.core.netdev_budget_usecs")]
    [InlineData("net.core.rmem_default = 2303", "net.core.rmem_default")]
    [InlineData("net.core.rmem_max = 1", "net.core.rmem_max")]
    [InlineData("net.core.dev_weight = 0", "net.core.dev_weight")]
    [InlineData("net.core.rps_sock_flow_entries = 536870913", "net.core.rps_sock_flow_entries")]
    [InlineData("net.core.netdev_max_backlog = many", "net.core.netdev_max_backlog")]
    public void Global_keys_are_refused_as_the_host_refuses_them(string line, string key)
        => Assert.EndsWith($"sysctl: setting key \"{key}\": Invalid argument", LoadError(line + "\n"));

    [Fact]
    public void Two_namespaces_cannot_give_a_global_key_two_values()
        => Assert.Contains("one value for the whole kernel", LoadError("net.core.netdev_budget = 64\n", "net.core.netdev_budget = 300\n"));

    [Theory]
    [InlineData("net.core.netdev_budget", "64", true)]
    [InlineData("net.core.netdev_budget_usecs", "8000", true)]
    [InlineData("net.core.netdev_max_backlog", "10", true)]
    [InlineData("net.core.dev_weight", "16", true)]
    [InlineData("net.core.rps_sock_flow_entries", "4096", true)]
    [InlineData("net.core.rmem_default", "4608", true)]
    [InlineData("net.core.rmem_max", "4608", true)]
    [InlineData("net.core.somaxconn", "4096", false)]
    public void Global_net_core_keys_are_modelled(string key, string value, bool modelled)
        => Assert.Equal(modelled, ScenarioLoader.Modelled(key, value));

    [Fact]
    public void An_option_given_on_the_command_line_wins_over_the_scenario()
    {
        var rig = Router("net.core.netdev_budget = 64\nnet.core.netdev_budget_usecs = 16000\nnet.core.netdev_max_backlog = 10\n"
            + "net.core.dev_weight = 16\nnet.core.rps_sock_flow_entries = 4096\n");
        var fromScenario = rig.Scenario.NetCore.ApplyTo(new ReplayOptions { Rps = new Softnet.Steering.RpsOptions() });
        Assert.Equal(64, fromScenario.NetdevBudget);
        Assert.Equal(16000, fromScenario.NetdevBudgetUsecs);
        Assert.Equal(10, fromScenario.NetdevMaxBacklog);
        Assert.Equal(10, fromScenario.Rps!.NetdevMaxBacklog);
        Assert.Equal(16, fromScenario.Rps.BacklogWeight);
        Assert.Equal(4096, fromScenario.Rps.SockFlowEntries);
        var given = rig.Scenario.NetCore.ApplyTo(new ReplayOptions { NetdevBudget = 100, GivenOnCommandLine = new HashSet<string> { "net.core.netdev_budget" } });
        Assert.Equal(100, given.NetdevBudget);
        Assert.Equal(16000, given.NetdevBudgetUsecs);
    }

    private const string R1 = "02:00:00:02:00:01", RT0 = "02:00:00:02:00:02";

    /// <summary>A datagram from the router to right's port 53.</summary>
    private static byte[] Datagram(int payload = 8) => Eth(RT0, R1, Udp("10.2.0.1", 5000, "10.2.0.2", 53, payload));

    [Fact]
    public void Rmem_default_is_the_receive_buffer_of_a_socket_without_so_rcvbuf()
    {
        int Drops(string sysctl)
        {
            var rig = Router(sysctl, "udp 10.2.0.2:53\n");
            rig.Stack.DeferReaders = true;
            var sk = (UdpSock)rig.Ns("right").Sockets.All[0];
            for (int i = 0; i < 20; i++) rig.Inject("right", "rt0", Datagram(200));
            var mib = rig.Ns("right").Mib;
            Assert.Equal(mib[SnmpCounter.UdpRcvbufErrors], rig.Ns("right").Counters.Drops[DropReason.SocketRcvBuff]);
            Assert.True(sk.RmemAlloc <= sk.RcvBuf + 2048);
            return (int)mib[SnmpCounter.UdpRcvbufErrors];
        }
        // 212992 bytes (the kernel's default) take all 20; 4608 take the first few only.
        Assert.Equal(0, Drops(""));
        Assert.InRange(Drops("net.core.rmem_default = 4608\n"), 12, 19);
    }

    [Fact]
    public void Rmem_max_caps_so_rcvbuf()
    {
        var rig = Router("net.core.rmem_max = 5000\n", "udp 10.2.0.2:53 rcvbuf 100000\nudp 10.2.0.2:54 rcvbuf 1000\n");
        var socks = rig.Ns("right").Sockets.All;
        Assert.Equal(10000, socks[0].RcvBuf);
        Assert.Equal(Sock.SockMinRcvbuf, socks[1].RcvBuf);
        // Without the key: the kernel's default, 212992.
        Assert.Equal(212992, new ScenarioRig("router").Ns("right").RmemMax);
    }

    [Fact]
    public void Netdev_max_backlog_drops_what_netif_rx_queues_past_it()
    {
        // sw floods a frame for an unknown MAC to p2 and p3; each veth hands its copy to netif_rx in b and c. With
        // netdev_max_backlog 0 the input queue takes one (qlen 0 is not above 0) and refuses the next.
        foreach (int max in new[] { 1000, 0 })
        {
            var rig = new ScenarioRig("bridge", new Dictionary<string, string> { ["ns/sw/sysctl.conf"] = $"net.core.netdev_max_backlog = {max}\n" });
            rig.Stack.NetdevMaxBacklog = rig.Scenario.NetCore.ApplyTo(new ReplayOptions()).NetdevMaxBacklog;
            rig.Inject("sw", "p1", Eth("02:00:00:00:0f:0f", "02:00:00:00:0a:01", Udp("10.0.0.1", 1, "10.0.0.9", 2)));
            long dropped = rig.Scenario.Namespaces.Sum(n => n.Counters.Drops[DropReason.CpuBacklog]);
            Assert.Equal(max == 0 ? 1 : 0, dropped);
            Assert.Equal(dropped, rig.Stack.BacklogDropped);
            foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
        }
    }

    /// <summary>In a replay the refused frame also counts in softnet_stat's dropped column of the CPU whose backlog
    /// refused it, as enqueue_to_backlog counts sd->dropped.</summary>
    [Fact]
    public void A_netif_rx_backlog_drop_counts_in_softnet_stat_dropped()
    {
        foreach (int max in new[] { 1000, 0 })
        {
            string dir = Directory.CreateTempSubdirectory("softnet-netcore-").FullName;
            string scenario = Path.Combine(dir, "scenario");
            ScenarioFiles.Copy(TopologyTestData.PathOf("bridge"), scenario);
            File.WriteAllText(Path.Combine(scenario, "ns", "sw", "sysctl.conf"), $"net.core.netdev_max_backlog = {max}\n");
            string capture = Path.Combine(dir, "in.pcapng");
            using (var w = new Softnet.Capture.PcapngWriter(File.Create(capture), [new Softnet.Capture.CaptureInterface(Softnet.Capture.LinkType.Ethernet, 262144, "p1", 1_000_000_000)]))
                w.Write(1_700_000_000_000_000_000, Eth("02:00:00:00:0f:0f", "02:00:00:00:0a:01", Udp("10.0.0.1", 1, "10.0.0.9", 2)));
            Softnet.Napi.NapiEngine? engine = null;
            var options = new ScenarioOptions { Replay = new ReplayOptions { Gro = null, EngineCreated = e => engine = e } };
            using (var report = ScenarioReplay.Run(scenario, capture, "sw", "", options))
            {
                long dropped = report.Scenario.Namespaces.Sum(n => n.Counters.Drops[DropReason.CpuBacklog]);
                Assert.Equal(max == 0 ? 1 : 0, dropped);
                Assert.Equal(dropped, engine!.Cpus.Sum(c => c.Dropped));
            }
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Netdev_budget_from_the_scenario_cuts_net_rx_action_rounds_short()
    {
        // 200 datagrams arriving at once: a budget of 300 takes them in rounds that end with the ring empty; a budget
        // of 16 stops each round after its first poll (weight 64), a time_squeeze each (softnet_stat column 3).
        long Squeezes(string sysctl)
        {
            string dir = Directory.CreateTempSubdirectory("softnet-netcore-").FullName;
            string scenario = Path.Combine(dir, "scenario");
            ScenarioFiles.Copy(TopologyTestData.PathOf("router"), scenario);
            File.WriteAllText(Path.Combine(scenario, "ns", "right", "sysctl.conf"), sysctl);
            string capture = Path.Combine(dir, "in.pcapng");
            using (var w = new Softnet.Capture.PcapngWriter(File.Create(capture), [new Softnet.Capture.CaptureInterface(Softnet.Capture.LinkType.Ethernet, 262144, "rt0", 1_000_000_000)]))
                for (int i = 0; i < 200; i++) w.Write(1_700_000_000_000_000_000, Datagram());
            using var report = ScenarioReplay.Run(scenario, capture, "right", "");
            var section = report.Replay.Sections.Single(x => x.Key == "softnet");
            using var ms = new MemoryStream();
            using (var jw = new System.Text.Json.Utf8JsonWriter(ms)) section.WriteJson(jw);
            using var doc = System.Text.Json.JsonDocument.Parse(ms.ToArray());
            Directory.Delete(dir, true);
            return doc.RootElement.EnumerateArray().Sum(c => c.GetProperty("time_squeeze").GetInt64());
        }
        Assert.Equal(0, Squeezes(""));
        Assert.True(Squeezes("net.core.netdev_budget = 16\n") > 0);
    }
}
