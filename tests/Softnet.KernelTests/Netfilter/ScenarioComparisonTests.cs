// Compiled once Softnet.Topology.ScenarioReplay exists (the `softnet replay --scenario` work): remove this guard then.
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Netfilter;

/// <summary>
/// Each scenario through the real kernel and through Softnet (`softnet replay CAPTURE --scenario DIR --inject NS
/// --dump OUTDIR`, in process), then every namespace's iptables-save -c counters, conntrack table and per-device
/// captures compared (<see cref="ScenarioCompare"/>). Results stay in bin/.../scenario-runs/&lt;name&gt;/{kernel,softnet}.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(KernelScenarioCollection.Name)]
public sealed class ScenarioComparisonTests(KernelScenarioFixture fx)
{
    /// <summary>The kernel injects each frame by transmitting it from DEV's veth peer, so the peer's tx capture holds
    /// the injected frames themselves; Softnet's frames enter as received on DEV. Those captures are not compared
    /// (the endpoint namespaces send nothing else: they drop everything in raw PREROUTING).</summary>
    private static readonly Dictionary<string, string[]> InjectingPeers = new()
    {
        ["docker-host"] = ["outside/wire0.tx.pcap", "c1/eth0.tx.pcap"],
        ["kube-node"] = ["outside/wire0.tx.pcap", "pod1/eth0.tx.pcap", "pod2/eth0.tx.pcap", "pod3/eth0.tx.pcap"],
        ["router-fw"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["edge-fw"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["mangle-router"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["frag-router"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["frag-ct-router"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["flannel-vxlan"] = ["pod1/eth0.tx.pcap", "node2/eth1.tx.pcap"],
        ["default-two-node"] = ["podA/eth0.tx.pcap"],
        ["v6-fw"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["v6-frag-ct-router"] = ["lan/eth0.tx.pcap", "wan/eth0.tx.pcap"],
        ["v6-bridge"] = ["a/eth0.tx.pcap", "b/eth0.tx.pcap"],
    };

    private void Compare(string name)
    {
        string kernel = fx.Kernel(name);
        string softnet = Path.Combine(KernelScenarioFixture.OutRoot, name, "softnet");
        if (Directory.Exists(softnet)) Directory.Delete(softnet, true);
        using (var report = ScenarioReplay.Run(KernelScenarioFixture.ScenarioDir(name), KernelScenarioFixture.Capture(name), ScenarioTraffic.InjectNamespace(name), softnet))
        {
            // Every frame a namespace received ended in exactly one outcome (fragments held or merged included; a
            // delivered datagram its transport dropped counts once, TransportDrops).
            foreach (var ns in report.Scenario.Namespaces)
            {
                var c = ns.Counters;
                Assert.True(c.Conserved, $"{name}/{ns.Name}: counters not conserved: received {c.Received}, delivered {c.DeliveredTotal}, "
                    + $"forwarded {c.Forwarded}, bridged {c.Bridged}, arp {c.Arp}, neigh queued {c.NeighQueued}, fragments held {c.FragHeld}, "
                    + $"merged {c.FragMerged}, drops {c.Drops.Total} ({string.Join(", ", c.Drops.NonZero().Select(d => $"{DropReasons.Name(d.Reason)} {d.Count}"))})");
            }
        }
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = InjectingPeers[name].ToHashSet() });
    }

    [SkippableFact]
    public void Docker_host_matches_the_kernel() => Compare("docker-host");

    [SkippableFact]
    public void Kube_node_matches_the_kernel() => Compare("kube-node");

    [SkippableFact]
    public void Router_fw_matches_the_kernel() => Compare("router-fw");

    /// <summary>flannel's VXLAN overlay between two nodes: encapsulation (FDB lookup, outer headers, ECN, the device's
    /// MTU), decapsulation through the UDP port 8472 and the inner frame's second traversal to the pod, and the
    /// datagrams vxlan_rcv drops (unknown VNI, bad flags, a loop, ECN, truncated, a bad outer checksum).</summary>
    [SkippableFact]
    public void Flannel_vxlan_matches_the_kernel() => Compare("flannel-vxlan");

    /// <summary>`softnet replay`'s embedded default (two nodes, cni0 bridges, flannel VXLAN, kube-proxy's 100 services and
    /// flanneld's rules, conntrack on both nodes, br_netfilter): pod A's traffic to node B's host, MASQUERADEd, and to
    /// pod B over VXLAN, with the answers coming back the same ways.</summary>
    [SkippableFact]
    public void Default_two_node_scenario_matches_the_kernel() => Compare("default-two-node");

    [SkippableFact]
    public void Edge_fw_with_match_extensions_matches_the_kernel() => Compare("edge-fw");

    /// <summary>TCPMSS (clamp and set), TTL, DSCP, TOS, NFQUEUE with and without bypass, NFLOG, TRACE, CONNMARK and
    /// CT zones / notrack on a forwarding router.</summary>
    [SkippableFact]
    public void Mangle_router_matches_the_kernel() => Compare("mangle-router");

    /// <summary>IPv4 fragments through a router without conntrack (forwarded as they are, cut again for a smaller MTU,
    /// DF fragmentation needed) and to its own address (reassembled by ip_local_deliver: in order, out of order,
    /// duplicates, an overlap, and two queues that time out, one answering ICMP 11/1).</summary>
    [SkippableFact]
    public void Frag_router_matches_the_kernel() => Compare("frag-router");

    /// <summary>Forwarded IPv4 fragments through conntrack: gathered by nf_defrag_ipv4, cut again at the smaller of the
    /// largest original fragment and the egress MTU (copying path when that is smaller than what came, frag_list path
    /// otherwise), DF datagrams refused with fragmentation needed when an original DF fragment exceeds the MTU, and no
    /// ICMP when a forwarded datagram's queue times out.</summary>
    [SkippableFact]
    public void Frag_ct_router_matches_the_kernel() => Compare("frag-ct-router");

    /// <summary>The IPv6 router with ip6tables through the whole path: IPv6 input and forwarding, conntrack, NAT66 and
    /// REJECT, every frame out of every device, ip6tables-save -c, conntrack -L -f ipv6 and nstat.</summary>
    [SkippableFact]
    public void V6_fw_matches_the_kernel() => Compare("v6-fw");

    /// <summary>Forwarded and local IPv6 fragments through IPv6 conntrack: gathered by nf_defrag_ipv6 before the rules
    /// (out of order, duplicate, RFC 5722 overlap, a queue timing out with ICMPv6 3/1 and one without its first
    /// fragment), SNAT66 / DNAT66 and ctstate on the datagram, cut again by ip6_fragment no larger than the largest
    /// fragment (frag_max_size), packet too big when that exceeds the egress MTU, an atomic fragment, and datagrams
    /// to a UDP socket on the router.</summary>
    [SkippableFact]
    public void V6_frag_ct_router_matches_the_kernel() => Compare("v6-frag-ct-router");

    /// <summary>br_netfilter's IPv6 hooks (net.bridge.bridge-nf-call-ip6tables = 1): bridged IPv6 frames through ip6tables
    /// PREROUTING, FORWARD and POSTROUTING with -m physdev, a DNAT that stays bridged, frames passed up to the bridge
    /// (ip_sabotage_in), br_validate_ipv6's drops; every frame, ip6tables-save -c, conntrack -L -f ipv6 and nstat.</summary>
    [SkippableFact]
    public void V6_bridge_with_br_netfilter_matches_the_kernel() => Compare("v6-bridge");
}
