using System.Buffers.Binary;
using CsCheck;
using Softnet.Link;
using Softnet.Neigh;
using Softnet.Capture;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Topology;

public class ScenarioPathTests
{
    private const string Eth0 = "02:00:00:00:00:02", Wire0 = "02:00:00:00:00:01", C1 = "02:00:00:00:01:02", Docker0 = "02:42:ac:11:00:01";

    /// <summary>The namespace sends no TCP (its OUTPUT drops it): a listener's SYN-ACK or a closed port's reset would
    /// cross the test's injected answer, which plays the other end.</summary>
    private static void MuteTcp(ScenarioRig rig, string ns)
    {
        var n = rig.Ns(ns);
        var t = IptablesSaveParser.Parse("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
            "-A OUTPUT -p tcp -j DROP\nCOMMIT\n");
        t.Host = n;
        n.Netfilter = t;
        n.HasIptables = true;
    }

    private static IEnumerable<byte[]> Ipv4Frames(List<byte[]> frames, byte proto)
        => frames.Where(f => f.Length >= 34 && f[12] == 0x08 && f[13] == 0x00 && f[14 + 9] == proto);

    [Fact]
    public void Docker_dnat_published_port_reaches_container_and_reply_is_un_natted()
    {
        var rig = new ScenarioRig("docker");
        MuteTcp(rig, "c1");
        MuteTcp(rig, "outside");
        rig.Inject("host", "eth0", Eth(Eth0, Wire0, Tcp("192.0.2.100", 40000, "192.0.2.1", 8080, 0x02, seq: 1000)));

        // Double traversal: host forwards through docker0 → veth1 → c1's eth0.
        var inC1 = Assert.Single(rig.Rx("c1", "eth0"));
        Assert.Equal(A("172.17.0.2"), Dst(inC1));
        Assert.Equal(80, DstPort(inC1));
        Assert.Equal(A("192.0.2.100"), Src(inC1));
        Assert.Equal(63, inC1[14 + 8]);
        AssertChecksumsValid(IpOf(inC1));
        Assert.Single(rig.Tx("host", "docker0"));
        Assert.Single(rig.Tx("host", "veth1"));
        Assert.Equal(1, rig.Ns("c1").Counters.Delivered[6]);

        // The container answers (a frame c1 sends arrives on veth1): un-DNAT on the way out of eth0.
        rig.Inject("host", "veth1", Eth(Docker0, C1, Tcp("172.17.0.2", 80, "192.0.2.100", 40000, 0x12, seq: 5000, ack: 1001)));
        var outFrame = Assert.Single(Ipv4Frames(rig.Tx("host", "eth0"), 6));
        Assert.Equal(A("192.0.2.1"), Src(outFrame));
        Assert.Equal(8080, SrcPort(outFrame));
        Assert.Equal(A("192.0.2.100"), Dst(outFrame));
        AssertChecksumsValid(IpOf(outFrame));
        Assert.Equal(1, rig.Ns("outside").Counters.Delivered[6]);
        // The bridge learned c1's MAC on veth1 from the reply.
        Assert.Same(rig.Dev("host", "veth1"), rig.Dev("host", "docker0").Fdb[Device.MacKey(Mac(C1))]);

        var ct = rig.Ns("host").Netfilter.Conntrack.List(rig.Now);
        Assert.Contains("SYN_RECV src=192.0.2.100 dst=192.0.2.1 sport=40000 dport=8080 src=172.17.0.2 dst=192.0.2.100 sport=80 dport=40000 mark=0 use=1", ct);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Container_traffic_is_masqueraded()
    {
        var rig = new ScenarioRig("docker");
        rig.Inject("host", "veth1", Eth(Docker0, C1, Udp("172.17.0.2", 5000, "198.51.100.7", 53)));
        // host resolves 192.0.2.100 (the gateway) by ARP; "outside" answers; then the datagram leaves.
        var tx = rig.Tx("host", "eth0");
        Assert.Equal(0x0806, BinaryPrimitives.ReadUInt16BigEndian(tx[0].AsSpan(12)));
        var udp = Assert.Single(Ipv4Frames(tx, 17));
        Assert.Equal(A("192.0.2.1"), Src(udp));
        Assert.Equal(A("198.51.100.7"), Dst(udp));
        Assert.Equal(Mac(Wire0), udp[..6]);
        AssertChecksumsValid(IpOf(udp));
        Assert.Contains("udp      17 30 src=172.17.0.2 dst=198.51.100.7 sport=5000 dport=53 [UNREPLIED] src=198.51.100.7 dst=192.0.2.1 sport=53 dport=5000 mark=0 use=1",
            rig.Ns("host").Netfilter.Conntrack.List(rig.Now));
        Assert.Equal(1, rig.Ns("host").Counters.Forwarded);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reject_tcp_reset_is_built_like_nf_send_reset(bool withAck)
    {
        var rig = new ScenarioRig("docker");
        byte flags = withAck ? (byte)0x18 : (byte)0x02;
        var syn = Tcp("192.0.2.100", 40001, "172.17.0.2", 9999, flags, seq: 777, ack: withAck ? 4242u : 0u, payload: withAck ? 10 : 0);
        rig.Inject("host", "eth0", Eth(Eth0, Wire0, syn));
        Assert.Equal(1, rig.Ns("host").Counters.Drops[DropReason.NetfilterDrop]);
        var rst = IpOf(Assert.Single(Ipv4Frames(rig.Tx("host", "eth0"), 6)));
        AssertChecksumsValid(rst);
        Assert.Equal(40, rst.Length);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(4)));      // IP ID 0
        Assert.Equal(0x4000, BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(6))); // DF
        Assert.Equal(64, rst[8]);
        Assert.Equal(A("172.17.0.2"), BinaryPrimitives.ReadUInt32BigEndian(rst.AsSpan(12)));
        Assert.Equal(A("192.0.2.100"), BinaryPrimitives.ReadUInt32BigEndian(rst.AsSpan(16)));
        Assert.Equal(9999, BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(20)));
        Assert.Equal(40001, BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(22)));
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(rst.AsSpan(24));
        uint ack = BinaryPrimitives.ReadUInt32BigEndian(rst.AsSpan(28));
        if (withAck)
        {
            Assert.Equal(4242u, seq);
            Assert.Equal(0u, ack);
            Assert.Equal(0x04, rst[33]);
        }
        else
        {
            Assert.Equal(0u, seq);
            Assert.Equal(778u, ack);
            Assert.Equal(0x14, rst[33]);
        }
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(34)));    // window
        Assert.Equal(1, rig.Ns("outside").Counters.Delivered[6]);
    }

    [Fact]
    public void Reject_icmp_port_unreachable_from_input_uses_the_local_address()
    {
        var rig = new ScenarioRig("docker");
        var udp = Udp("192.0.2.100", 1234, "192.0.2.1", 9);
        rig.Inject("host", "eth0", Eth(Eth0, Wire0, udp));
        var icmp = IpOf(Assert.Single(Ipv4Frames(rig.Tx("host", "eth0"), 1)));
        AssertChecksumsValid(icmp);
        Assert.Equal((3, 3), (icmp[20], icmp[21]));
        Assert.Equal(A("192.0.2.1"), BinaryPrimitives.ReadUInt32BigEndian(icmp.AsSpan(12)));
        Assert.Equal(udp, icmp.AsSpan(28).ToArray());
    }

    [Fact]
    public void Blackhole_and_forward_policy_drops()
    {
        var rig = new ScenarioRig("docker");
        rig.Inject("host", "eth0", Eth(Eth0, Wire0, Udp("192.0.2.100", 1, "203.0.113.5", 2)));
        rig.Inject("host", "eth0", Eth(Eth0, Wire0, Udp("192.0.2.100", 1, "172.17.0.2", 2)));
        var c = rig.Ns("host").Counters;
        Assert.Equal(1, c.Drops[DropReason.IpBlackhole]);
        Assert.Equal(1, c.Drops[DropReason.NetfilterDrop]);
        Assert.Equal(1, rig.Ns("host").Netfilter[TableKind.Filter]!.GetChain("FORWARD")!.PolicyPackets);
        Assert.True(c.Conserved);
    }

    // ---------------- bridge ----------------

    private const string A1 = "02:00:00:00:0a:01", B1 = "02:00:00:00:0b:01", Br0 = "02:00:00:00:10:00";

    [Fact]
    public void Bridge_floods_unknown_then_forwards_learned()
    {
        var rig = new ScenarioRig("bridge");
        // The datagrams are what this follows (UDP); the endpoints answer them with port unreachable (no sockets).
        rig.Inject("sw", "p1", Eth(B1, A1, Udp("10.0.0.1", 1, "10.0.0.2", 2)));
        Assert.Empty(Ipv4Frames(rig.Tx("sw", "p1"), 17));
        Assert.Single(Ipv4Frames(rig.Tx("sw", "p2"), 17));
        Assert.Single(Ipv4Frames(rig.Tx("sw", "p3"), 17));
        Assert.Equal(1, rig.Ns("b").Counters.Delivered[17]);
        Assert.Equal(1, rig.Ns("c").Counters.Drops[DropReason.OtherHost]);
        Assert.Same(rig.Dev("sw", "p1"), rig.Dev("sw", "br0").Fdb[Device.MacKey(Mac(A1))]);

        rig.Inject("sw", "p2", Eth(A1, B1, Udp("10.0.0.2", 2, "10.0.0.1", 1)));
        Assert.Single(Ipv4Frames(rig.Tx("sw", "p1"), 17));
        Assert.Single(Ipv4Frames(rig.Tx("sw", "p3"), 17)); // unchanged: no flood for a learned address
        Assert.Equal(1, rig.Ns("a").Counters.Delivered[17]);
        // Back out of the port it came from: dropped.
        rig.Inject("sw", "p1", Eth(A1, B1, Udp("10.0.0.2", 2, "10.0.0.1", 1)));
        Assert.Equal(1, rig.Ns("sw").Counters.Drops[DropReason.BridgeSamePort]);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Bridge_passes_frames_for_its_own_mac_up_and_answers_arp()
    {
        var rig = new ScenarioRig("bridge");
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 1, "10.0.0.254", 2)));
        Assert.Equal(1, rig.Ns("sw").Counters.Delivered[17]);
        Assert.Single(Ipv4Frames(rig.Rx("sw", "br0"), 17));
        Assert.Empty(Ipv4Frames(rig.Tx("sw", "p2"), 17));
        // No socket on port 2: br0 answers port unreachable, after asking for 10.0.0.1's address (flooded, so p2 sees
        // the request too; a answers it).
        Assert.Single(Ipv4Frames(rig.Tx("sw", "p1"), 1));
        int p2Before = rig.Tx("sw", "p2").Count, br0Before = rig.Tx("sw", "br0").Count;

        rig.Inject("sw", "p1", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(A1), Mac(A1), A("10.0.0.1"), default, A("10.0.0.254")));
        // Flooded to the other ports and passed up; br0 answers out of p1 (where 10.0.0.1's MAC was learned).
        Assert.Equal(p2Before + 1, rig.Tx("sw", "p2").Count);
        Assert.Equal(br0Before + 1, rig.Tx("sw", "br0").Count);
        var reply = rig.Tx("sw", "br0").Last();
        Assert.Equal(PacketFactory.Arp(2, Mac(A1), Mac(Br0), Mac(Br0), A("10.0.0.254"), Mac(A1), A("10.0.0.1")), reply);
        Assert.Equal(reply, rig.Tx("sw", "p1").Last());
    }

    [Fact]
    public void Bridged_frames_bypass_iptables_unless_bridge_nf_call_iptables()
    {
        foreach (bool brnf in new[] { false, true })
        {
            var rig = new ScenarioRig("bridge");
            var sw = rig.Ns("sw");
            var t = IptablesSaveParser.Parse("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
            t.Host = sw;
            sw.Netfilter = t;
            sw.HasIptables = true;
            if (brnf) sw.Sysctls["net.bridge.bridge-nf-call-iptables"] = "1";
            rig.Inject("sw", "p1", Eth(B1, A1, Udp("10.0.0.1", 1, "10.0.0.2", 2)));
            Assert.Equal(brnf ? 0 : 1, Ipv4Frames(rig.Tx("sw", "p2"), 17).Count());
            // B1 is not learned yet: the frame floods to p2 and p3, and br_netfilter hooks each port's clone.
            Assert.Equal(brnf ? 2 : 0, t[TableKind.Filter]!.GetChain("FORWARD")!.PolicyPackets);
        }
    }

    /// <summary>sw with br_netfilter on, forwarding, and a DNAT of 10.0.0.100:53 to b (10.0.0.2, behind p2).</summary>
    private static (ScenarioRig Rig, NetfilterTables T) BridgedDnatRig()
    {
        var rig = new ScenarioRig("bridge");
        var sw = rig.Ns("sw");
        var t = IptablesSaveParser.Parse("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + "-A PREROUTING -d 10.0.0.100/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.0.2:53\nCOMMIT\n"
            + "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        t.Host = sw;
        sw.Netfilter = t;
        sw.HasIptables = true;
        sw.Sysctls["net.bridge.bridge-nf-call-iptables"] = "1";
        sw.Sysctls["net.ipv4.ip_forward"] = "1";
        sw.Neighbours.Create(rig.Dev("sw", "br0"), A("10.0.0.2"), NudState.Permanent).Mac = Mac(B1);
        // b speaks first: the bridge learns its MAC on p2 (b's own address, so no DNAT and no forwarding). An echo
        // reply, which sw takes without answering, so nothing of sw's resolves or caches b's address yet.
        rig.Inject("sw", "p2", Eth(Br0, B1, Icmp("10.0.0.2", "10.0.0.254", 0, 0, 7, new byte[8])));
        return (rig, t);
    }

    [Fact]
    public void Br_netfilter_dnat_to_a_host_on_the_same_bridge_is_bridged_not_routed()
    {
        var (rig, t) = BridgedDnatRig();
        int brRx = Ipv4Frames(rig.Rx("sw", "br0"), 17).Count();
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 5000, "10.0.0.100", 53)));

        var f = Assert.Single(Ipv4Frames(rig.Tx("sw", "p2"), 17));
        Assert.Equal(Mac(B1), f[..6]);
        Assert.Equal(Mac(A1), f[6..12]);          // the sender's source MAC stays
        Assert.Equal(64, f[14 + 8]);               // bridged: no TTL decrement
        Assert.Equal(A("10.0.0.2"), Dst(f));
        AssertChecksumsValid(IpOf(f));
        Assert.Equal(brRx, Ipv4Frames(rig.Rx("sw", "br0"), 17).Count()); // never passed up to the bridge device
        // FORWARD saw the datagram and b's port unreachable coming back (bridged too); the error is RELATED, so the
        // nat table saw only the datagram.
        Assert.Equal(2, t[TableKind.Filter]!.GetChain("FORWARD")!.PolicyPackets);
        Assert.Equal(1, t[TableKind.Nat]!.GetChain("POSTROUTING")!.PolicyPackets);
        Assert.Equal(0, rig.Ns("sw").Counters.Forwarded);
        // The neighbour's header was not cached yet: neigh->output sent it once through the bridge device, with
        // the bridge as source, which br_nf_dev_xmit puts back to the sender's in the data the capture reads. Later
        // frames take the cached header.
        var viaBr = Assert.Single(Ipv4Frames(rig.Tx("sw", "br0"), 17));
        Assert.Equal(Mac(A1), viaBr[6..12]);
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 5001, "10.0.0.100", 53)));
        Assert.Equal(2, Ipv4Frames(rig.Tx("sw", "p2"), 17).Count());
        Assert.Single(Ipv4Frames(rig.Tx("sw", "br0"), 17));
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Br_netfilter_dnat_needs_ip_forward_to_bridge_the_frame()
    {
        // Checked on Linux 6.18: with ip_forward=0, ip_route_input gives an ip_error route and the DNATed frame is
        // not bridged to the target (br_nf_pre_routing_finish's EHOSTUNREACH fallback is not reached).
        var (rig, _) = BridgedDnatRig();
        rig.Ns("sw").Sysctls["net.ipv4.ip_forward"] = "0";
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 5000, "10.0.0.100", 53)));
        Assert.Empty(Ipv4Frames(rig.Tx("sw", "p2"), 17));
        Assert.Equal(1, rig.Ns("sw").Counters.Drops[DropReason.IpForwardingDisabled]);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Br_netfilter_uses_the_cached_header_of_a_neighbour_already_routed_to()
    {
        var (rig, _) = BridgedDnatRig();
        // a uses sw as its router for b: routed out br0 (TTL 63), which fills the neighbour's header cache.
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 4000, "10.0.0.2", 9)));
        var routed = Assert.Single(Ipv4Frames(rig.Tx("sw", "br0"), 17));
        Assert.Equal(63, routed[14 + 8]);
        rig.Inject("sw", "p1", Eth(Br0, A1, Udp("10.0.0.1", 5000, "10.0.0.100", 53)));
        Assert.Equal(2, Ipv4Frames(rig.Tx("sw", "p2"), 17).Count());
        Assert.Single(Ipv4Frames(rig.Tx("sw", "br0"), 17));
        Assert.Equal(64, Ipv4Frames(rig.Tx("sw", "p2"), 17).ElementAt(1)[14 + 8]);
    }

    [Fact]
    public void Br_netfilter_reverse_nat_happens_before_the_bridge_device_sees_the_frame()
    {
        foreach (bool brnf in new[] { false, true })
        {
            var rig = new ScenarioRig("docker");
            MuteTcp(rig, "c1");
            MuteTcp(rig, "outside");
            var host = rig.Ns("host");
            var t = IptablesSaveParser.Parse("*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
                + "-A PREROUTING -d 192.0.2.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n"
                + "-A POSTROUTING -o docker0 -j MASQUERADE\nCOMMIT\n");
            t.Host = host;
            host.Netfilter = t;
            host.HasIptables = true;
            if (brnf) host.Sysctls["net.bridge.bridge-nf-call-iptables"] = "1";
            rig.Inject("host", "eth0", Eth(Eth0, Wire0, Tcp("192.0.2.100", 40000, "192.0.2.1", 8080, 0x02, seq: 1000)));
            Assert.Equal(A("172.17.0.1"), Src(Assert.Single(rig.Rx("c1", "eth0"))));
            rig.Inject("host", "veth1", Eth(Docker0, C1, Tcp("172.17.0.2", 80, "172.17.0.1", 40000, 0x12, seq: 5000, ack: 1001)));

            // With br_netfilter the reply is un-MASQUERADEd in the bridge's PREROUTING, before docker0's rx tap.
            var up = Assert.Single(Ipv4Frames(rig.Rx("host", "docker0"), 6));
            Assert.Equal(A(brnf ? "192.0.2.100" : "172.17.0.1"), Dst(up));
            var outFrame = Assert.Single(Ipv4Frames(rig.Tx("host", "eth0"), 6));
            Assert.Equal(A("192.0.2.1"), Src(outFrame));
            Assert.Equal(A("192.0.2.100"), Dst(outFrame));
            AssertChecksumsValid(IpOf(outFrame));
            foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
        }
    }

    // ---------------- robustness ----------------

    [Fact]
    public void Random_frames_never_throw_and_every_namespace_conserves()
    {
        var rig = new ScenarioRig("docker");
        var header = Mac(Eth0).Concat(Mac(Wire0)).Concat(new byte[] { 0x08, 0x00 }).ToArray();
        Gen.Select(Gen.Byte.Array[0, 120], Gen.Int[0, 3], Gen.Byte[0, 255]).Sample((bytes, where, ttl) =>
        {
            byte[] frame = where switch
            {
                0 => bytes,
                1 => header.Concat(bytes).ToArray(),
                _ => header.Concat(Tcp("192.0.2.100", 40000, "192.0.2.1", (ushort)(8080 + bytes.Length % 3), (byte)(bytes.Length == 0 ? 2 : bytes[0]))).ToArray(),
            };
            if (where == 3 && frame.Length > 22) frame[22] = ttl;
            rig.Inject(where == 3 ? "c1" : "host", where == 3 ? "eth0" : "eth0", frame, advanceNs: 10_000_000);
            foreach (var ns in rig.Scenario.Namespaces)
                if (!ns.Counters.Conserved) return false;
            return true;
        }, iter: 3000, threads: 1); // one rig, and the stack is single-threaded: CsCheck samples in parallel by default
    }
}
