using Softnet.Link;
using Softnet.Neigh;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Telemetry;
using Xunit;
using P6 = Softnet.Tests.Netfilter.Ipv6.PacketBuilder6;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Topology;

/// <summary>br_netfilter for IPv6 (net.bridge.bridge-nf-call-ip6tables) on the bridge scenario: sw's br0 with ports
/// p1 (a), p2 (b), p3 (c); the endpoints have IPv6 off, so only what sw sends them is seen.</summary>
public class BridgeNetfilterIpv6Tests
{
    private const string A1 = "02:00:00:00:0a:01", B1 = "02:00:00:00:0b:01", Br0 = "02:00:00:00:10:00";
    private const string A = "2001:db8::1", B = "2001:db8::2", Sw = "2001:db8::fe", Vip = "2001:db8::100";
    private const ushort Ipv6Type = 0x86DD;

    private const string Counting = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        + "-A INPUT -m physdev --physdev-in p1\n"
        + "-A FORWARD -m physdev --physdev-in p1 --physdev-out p2\n"
        + "-A FORWARD -m physdev --physdev-is-bridged\n"
        + "-A FORWARD -i br0 -o br0\n"
        + "COMMIT\n"
        + "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
        + "-A PREROUTING -i br0 -m physdev --physdev-in p1\n"
        + "-A PREROUTING -m pkttype --pkt-type host\n"
        + "-A POSTROUTING -o br0 -m physdev --physdev-out p2\n"
        + "COMMIT\n";

    private static ScenarioRig Rig(string ip6tables, bool brnf, string extraSysctl = "")
    {
        const string off = "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n";
        var files = new Dictionary<string, string>
        {
            ["ns/sw/ip6tables.save"] = ip6tables,
            ["ns/sw/ip.batch"] = File.ReadAllText(Path.Combine(TopologyTestData.PathOf("bridge"), "ns/sw/ip.batch")) + "addr add 2001:db8::fe/64 dev br0 nodad\n",
            ["ns/sw/sysctl.conf"] = $"net.bridge.bridge-nf-call-ip6tables = {(brnf ? 1 : 0)}\nnet.ipv6.conf.default.accept_dad = 0\n{extraSysctl}",
            ["ns/a/sysctl.conf"] = off,
            ["ns/b/sysctl.conf"] = off,
            ["ns/c/sysctl.conf"] = off,
        };
        return new ScenarioRig("bridge", files);
    }

    private static long RuleCount(Namespace ns, TableKind table, string chain, int rule)
        => ns.Netfilter6![table]!.GetChain(chain)!.Rules[rule].Packets;

    private static IEnumerable<byte[]> Udp6(List<byte[]> frames) => frames.Where(f => f.Length >= 54 && f[12] == 0x86 && f[13] == 0xDD && f[14 + 6] == 17);

    [Fact]
    public void Bridged_ipv6_frames_bypass_ip6tables_unless_bridge_nf_call_ip6tables()
    {
        const string drop = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        foreach (bool brnf in new[] { false, true })
        {
            var rig = Rig(drop, brnf);
            var sw = rig.Ns("sw");
            Assert.Equal(brnf, sw.BridgeNfCallIp6tables);
            Assert.DoesNotContain("net.bridge.bridge-nf-call-ip6tables", sw.SysctlsNotModelled.Keys);
            rig.Inject("sw", "p1", Eth(B1, A1, P6.Udp(A, 1, B, 2), Ipv6Type));
            Assert.Equal(brnf ? 0 : 1, Udp6(rig.Tx("sw", "p2")).Count());
            // B1 is not learned: the frame floods to p2 and p3, and br_netfilter hooks each port's copy.
            Assert.Equal(brnf ? 2 : 0, sw.Netfilter6![TableKind.Filter]!.GetChain("FORWARD")!.PolicyPackets);
            foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
        }
    }

    [Fact]
    public void Bridged_ipv6_crosses_prerouting_forward_and_postrouting_with_its_ports()
    {
        var rig = Rig(Counting, brnf: true);
        var sw = rig.Ns("sw");
        // b speaks first (to a): the bridge learns B1 on p2; then a's frame to b is forwarded to p2 alone.
        rig.Inject("sw", "p2", Eth(A1, B1, P6.Udp(B, 2, A, 1), Ipv6Type));
        rig.Inject("sw", "p1", Eth(B1, A1, P6.Udp(A, 1, B, 2, payload: 20), Ipv6Type));
        var f = Assert.Single(Udp6(rig.Tx("sw", "p2")));
        Assert.Equal(64, f[14 + 7]); // bridged: the hop limit is kept
        // b's frame flooded (A1 unknown) to p1 and p3; a's frame went to p2 only.
        Assert.Equal(1, RuleCount(sw, TableKind.Mangle, "PREROUTING", 0));
        Assert.Equal(2, RuleCount(sw, TableKind.Mangle, "PREROUTING", 1)); // PACKET_OTHERHOST is PACKET_HOST to the hooks
        Assert.Equal(1, RuleCount(sw, TableKind.Filter, "FORWARD", 0));
        Assert.Equal(3, RuleCount(sw, TableKind.Filter, "FORWARD", 1));
        Assert.Equal(3, RuleCount(sw, TableKind.Filter, "FORWARD", 2));
        Assert.Equal(1, RuleCount(sw, TableKind.Mangle, "POSTROUTING", 0));
        Assert.Equal(0, RuleCount(sw, TableKind.Filter, "INPUT", 0));
        // br_validate_ipv6 counts nothing for a good frame (no Ip6InReceives: that is ip6_rcv_core's).
        Assert.Equal(0, sw.Mib[SnmpCounter.Ip6InReceives]);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void A_frame_passed_up_skips_the_ip_prerouting_hooks_and_keeps_its_port_for_input()
    {
        var rig = Rig(Counting, brnf: true);
        var sw = rig.Ns("sw");
        rig.Inject("sw", "p1", Eth(Br0, A1, P6.Icmp6(A, Sw, 128, 0, 7, 1), Ipv6Type));
        // ip_sabotage_in: PREROUTING ran once, in the bridge; INPUT sees the port the frame came in on.
        Assert.Equal(1, RuleCount(sw, TableKind.Mangle, "PREROUTING", 0));
        Assert.Equal(1, RuleCount(sw, TableKind.Filter, "INPUT", 0));
        Assert.Equal(1, sw.Mib[SnmpCounter.Ip6InReceives]);
        Assert.Equal(1, sw.Mib[SnmpCounter.Ip6InDelivers]);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Br_validate_ipv6_drops_a_truncated_frame_in_the_bridge()
    {
        foreach (bool brnf in new[] { false, true })
        {
            var rig = Rig(Counting, brnf);
            var sw = rig.Ns("sw");
            var ip = P6.Udp(A, 1, B, 2, payload: 20);
            ip[5] += 8; // payload length 8 bytes past the frame
            rig.Inject("sw", "p1", Eth(B1, A1, ip, Ipv6Type));
            Assert.Equal(brnf ? 0 : 1, Udp6(rig.Tx("sw", "p2")).Count());
            Assert.Equal(brnf ? 1 : 0, sw.Mib[SnmpCounter.Ip6InTruncatedPkts]);
            Assert.Equal(brnf ? 1 : 0, sw.Counters.Drops[DropReason.Ipv6BadPayloadLength]);
        }
    }

    [Fact]
    public void Ip6tables_dnat_to_a_host_on_the_same_bridge_is_bridged_not_routed()
    {
        const string nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + "-A PREROUTING -d 2001:db8::100/128 -p udp -m udp --dport 53 -j DNAT --to-destination [2001:db8::2]:53\nCOMMIT\n";
        var rig = Rig(nat, brnf: true);
        var sw = rig.Ns("sw");
        sw.Neighbours.Create6(rig.Dev("sw", "br0"), P6.A(B), NudState.Permanent).Mac = Mac(B1);
        rig.Inject("sw", "p2", Eth(A1, B1, P6.Udp(B, 9, A, 9), Ipv6Type)); // the bridge learns B1 on p2
        rig.Inject("sw", "p1", Eth(Br0, A1, P6.Udp(A, 5000, Vip, 53), Ipv6Type));
        var f = Udp6(rig.Tx("sw", "p2")).Single(x => x[14 + 40 + 3] == 53);
        Assert.Equal(Mac(B1), f[..6]);
        Assert.Equal(Mac(A1), f[6..12]);
        Assert.Equal(64, f[14 + 7]);
        Assert.Equal(B, P6.Dst(f[14..]));
        P6.AssertChecksumValid(f[14..]);
        Assert.Equal(0, sw.Mib[SnmpCounter.Ip6OutForwDatagrams]);
        // The neighbour's header was not cached: neigh->output sent it once through br0 (the capture reads the
        // sender's source MAC, which br_nf_dev_xmit put back).
        Assert.Equal(Mac(A1), Udp6(rig.Tx("sw", "br0")).Single()[6..12]);
    }
}
