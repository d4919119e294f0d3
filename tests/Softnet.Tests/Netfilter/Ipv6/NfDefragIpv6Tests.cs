using System.Buffers.Binary;
using System.Net;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>nf_defrag_ipv6 (Netfilter/Ipv6/NfDefragIpv6.cs) on the v6-router test scenario with an ip6tables ruleset
/// added to r: a ---eth0--- r ---eth1 (MTU 1280)--- b. Which namespaces gather, the rules seeing the datagram once,
/// ip6_fragment's frag_max_size, the queue rules (duplicate, overlap, timeout), the memory bound, no allocation.
/// Scenarios/v6-frag-ct-router in Softnet.KernelTests holds the same paths to the kernel.</summary>
public class NfDefragIpv6Tests
{
    private const string AMac = "02:00:0a:00:00:02", R0 = "02:00:0a:00:00:01";
    private const string H0 = "2001:db8:a::10", RA = "2001:db8:a::1", Far = "2001:db8:77::5";

    private const string ConntrackRules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -p udp -m udp --dport 53 -m conntrack --ctstate NEW -j ACCEPT
        COMMIT

        """;

    private const string FilterOnly = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -p udp -m udp --dport 53 -j ACCEPT
        COMMIT

        """;

    private static ScenarioRig Rig(string? rules = ConntrackRules, string sysctl = "")
    {
        var files = new Dictionary<string, string>();
        if (rules != null) files["ns/r/ip6tables.save"] = rules;
        files["ns/r/sysctl.conf"] = """
            net.ipv6.conf.all.forwarding = 1
            net.ipv6.conf.all.accept_dad = 0
            net.ipv6.conf.default.accept_dad = 0
            net.ipv6.auto_flowlabels = 0
            net.ipv6.icmp.ratelimit = 0

            """ + sysctl;
        return new ScenarioRig("v6-router", files);
    }

    private static byte[] Addr(string s) => IPAddress.Parse(s).GetAddressBytes();

    private static byte[] Ip6(string src, string dst, byte nh, byte[] payload)
    {
        var b = new byte[40 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, 6u << 28);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)payload.Length);
        b[6] = nh;
        b[7] = 64;
        Addr(src).CopyTo(b, 8);
        Addr(dst).CopyTo(b, 24);
        payload.CopyTo(b, 40);
        return b;
    }

    private static byte[] UdpL4(string src, string dst, ushort dport, int payload)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, 4000);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 0; i < payload; i++) u[8 + i] = (byte)(i * 13 + 1);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(6), Checksum.Compute(u, Checksum.PseudoHeaderV6(Addr(src), Addr(dst), 17, u.Length)));
        return u;
    }

    private static byte[] Frag(string src, string dst, byte[] l4, int offset, int len, bool more, uint id)
    {
        var h = new byte[8 + len];
        h[0] = 17;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), id);
        l4.AsSpan(offset, len).CopyTo(h.AsSpan(8));
        return Ip6(src, dst, 44, h);
    }

    private static byte[] E(byte[] ip) => Eth(R0, AMac, ip, 0x86DD);

    private static long Mib(ScenarioRig rig, SnmpCounter c) => rig.Ns("r").Mib[c];

    /// <summary>(offset, data length, more) of the IPv6 fragments in <paramref name="frames"/>.</summary>
    private static List<(int Offset, int Len, bool More)> Geometry(IEnumerable<byte[]> frames)
        => frames.Select(f =>
        {
            Assert.Equal(44, f[14 + 6]);
            ushort fo = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 42));
            return (fo & 0xFFF8, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 4)) - 8, (fo & 1) != 0);
        }).ToList();

    private static Rule ForwardRule(ScenarioRig rig) => rig.Ns("r").Netfilter6![TableKind.Filter]!.GetChain("FORWARD")!.Rules[0];

    [Fact]
    public void Without_ipv6_conntrack_fragments_are_forwarded_as_they_are()
    {
        foreach (var rules in new[] { null, FilterOnly })
        {
            var rig = Rig(rules);
            Assert.False(Ip6Netfilter.Defrags(rig.Ns("r")));
            var l4 = UdpL4(H0, Far, 53, 1000);
            rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 504, 504, false, 1)));
            rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 504, true, 1)));
            Assert.Equal([(504, 504, false), (0, 504, true)], Geometry(rig.Tx("r", "eth1")));
            // Each fragment meets the rules: only the first carries the UDP header --dport reads.
            if (rules != null) Assert.Equal(1, ForwardRule(rig).Packets);
            Assert.Equal(0, rig.Ns("r").NfDefrag6.QueueCount);
        }
    }

    [Fact]
    public void With_conntrack_the_rules_see_the_datagram_once_and_it_leaves_cut_as_it_came()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        Assert.True(Ip6Netfilter.Defrags(r));
        var l4 = UdpL4(H0, Far, 53, 1800);
        // 800-byte pieces, last first: held, then one datagram through FORWARD.
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 1600, l4.Length - 1600, false, 7)));
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 800, 800, true, 7)));
        Assert.Empty(rig.Tx("r", "eth1"));
        Assert.Equal(2, r.NfDefrag6.QueueCount == 1 ? r.Counters.FragHeld : -1);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 800, true, 7)));
        var rule = ForwardRule(rig);
        Assert.Equal(1, rule.Packets);
        // Counted as the datagram the rules saw: no fragment header.
        Assert.Equal(40 + l4.Length, rule.Bytes);
        Assert.Equal(1, r.Netfilter6!.Conntrack6.Count);
        // ip6_fragment at frag_max_size (848): the pieces as they came, in offset order, hop limit 63.
        var tx = rig.Tx("r", "eth1");
        Assert.Equal([(0, 800, true), (800, 800, true), (1600, 208, false)], Geometry(tx));
        Assert.All(tx, f => Assert.Equal(63, f[14 + 7]));
        var data = tx.SelectMany(f => f.AsSpan(14 + 48).ToArray()).ToArray();
        Assert.Equal(l4, data);
        // The stack's own reassembly saw nothing; nf_ct_frag6 counts nothing.
        Assert.Equal(0, Mib(rig, SnmpCounter.Ip6ReasmReqds));
        Assert.Equal(0, Mib(rig, SnmpCounter.Ip6ReasmOKs));
        Assert.Equal(1, Mib(rig, SnmpCounter.Ip6FragOKs));
        Assert.Equal(3, Mib(rig, SnmpCounter.Ip6FragCreates));
        Assert.Equal(0, r.NfDefrag6.QueueCount);
        Assert.Equal(0, r.NfDefrag6.Memory);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Gathered_larger_than_the_egress_mtu_is_packet_too_big()
    {
        var rig = Rig();
        var l4 = UdpL4(H0, Far, 53, 2792);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 1400, 1400, false, 8)));
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 1400, true, 8)));
        Assert.Empty(rig.Tx("r", "eth1"));
        var ptb = Assert.Single(rig.Tx("r", "eth0"));
        Assert.Equal(58, ptb[14 + 6]);
        Assert.Equal(2, ptb[14 + 40]);
        Assert.Equal(1280u, BinaryPrimitives.ReadUInt32BigEndian(ptb.AsSpan(14 + 44)));
        // The quote is the gathered datagram: UDP right behind the IPv6 header.
        Assert.Equal(17, ptb[14 + 48 + 6]);
        Assert.Equal(1, Mib(rig, SnmpCounter.Ip6InTooBigErrors));
        Assert.Equal(1, Mib(rig, SnmpCounter.Ip6FragFails));
        Assert.Equal(0, ForwardRule(rig).Packets);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void A_smaller_datagram_than_the_mtu_is_still_cut_to_its_largest_fragment()
    {
        var rig = Rig();
        var l4 = UdpL4(H0, Far, 53, 392);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 200, 200, false, 9)));
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 200, true, 9)));
        Assert.Equal([(0, 200, true), (200, 200, false)], Geometry(rig.Tx("r", "eth1")));
    }

    [Fact]
    public void An_atomic_fragment_leaves_without_its_fragment_header()
    {
        var rig = Rig();
        var l4 = UdpL4(H0, Far, 53, 100);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, l4.Length, false, 10)));
        var f = Assert.Single(rig.Tx("r", "eth1"));
        Assert.Equal(17, f[14 + 6]);
        Assert.Equal(l4, f.AsSpan(14 + 40).ToArray());
    }

    [Fact]
    public void A_duplicate_is_swallowed_and_an_overlap_drops_the_queue()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        var l4 = UdpL4(H0, Far, 53, 1592);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 800, 800, false, 11)));
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 800, 800, false, 11)));
        Assert.Equal(1, r.Counters.Drops[DropReason.FragDuplicate]);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 808, true, 11)));
        Assert.Equal(2, r.Counters.Drops[DropReason.FragOverlap]);
        Assert.Empty(rig.Tx("r", "eth1"));
        Assert.Equal(0, r.NfDefrag6.QueueCount);
        Assert.Equal(0, r.NfDefrag6.Memory);
        // RFC 5722 overlaps move no counter here (nf_ct_frag6 counts nothing while gathering).
        Assert.Equal(0, Mib(rig, SnmpCounter.Ip6ReasmFails));
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void A_queue_expires_after_nf_conntrack_frag6_timeout_with_time_exceeded_when_its_first_fragment_is_in()
    {
        var rig = Rig(sysctl: "net.netfilter.nf_conntrack_frag6_timeout = 2\n");
        var r = rig.Ns("r");
        var l4 = UdpL4(H0, Far, 53, 1592);
        rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 800, true, 12)));
        rig.Inject("r", "eth0", E(Frag(H0, Far, UdpL4(H0, Far, 53, 1592), 800, 800, false, 13)));
        // Not yet at 1 s.
        rig.Advance(1_000_000_000);
        Assert.Empty(rig.Tx("r", "eth0"));
        rig.Advance(1_500_000_000);
        var te = Assert.Single(rig.Tx("r", "eth0"));
        Assert.Equal(3, te[14 + 40]);
        Assert.Equal(1, te[14 + 41]);
        // The quote is the held first fragment, fragment header included.
        Assert.Equal(44, te[14 + 48 + 6]);
        Assert.Equal(2, Mib(rig, SnmpCounter.Ip6ReasmTimeout));
        Assert.Equal(2, Mib(rig, SnmpCounter.Ip6ReasmFails));
        Assert.Equal(0, r.NfDefrag6.QueueCount);
        Assert.Equal(0, r.Counters.FragHeld);
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Memory_is_bounded_by_nf_conntrack_frag6_high_thresh()
    {
        // high_thresh may not go below low_thresh (proc_doulongvec_minmax bounds each by the other): low first.
        var rig = Rig(sysctl: "net.netfilter.nf_conntrack_frag6_low_thresh = 3000\nnet.netfilter.nf_conntrack_frag6_high_thresh = 4000\n");
        var r = rig.Ns("r");
        var l4 = UdpL4(H0, Far, 53, 1592);
        for (uint id = 100; id < 140; id++) rig.Inject("r", "eth0", E(Frag(H0, Far, l4, 0, 800, true, id)));
        Assert.True(r.Counters.Drops[DropReason.FragMemoryLimit] > 0);
        // A fragment is refused once the memory is over the threshold, so it ends at most one fragment and queue above.
        Assert.True(r.NfDefrag6.Memory <= 4000 + 4096 + 200, $"memory {r.NfDefrag6.Memory}");
        Assert.Equal(r.NfDefrag6.QueueCount, r.Counters.FragHeld);
        Assert.True(r.Counters.Conserved);
        // The IPv6 stack's own queues are another fqdir: untouched.
        Assert.Equal(0, r.Defrag6.Memory);
    }

    [Fact]
    public void Fragments_to_a_local_socket_are_gathered_before_local_delivery()
    {
        var rig = Rig();
        var r = rig.Ns("r");
        var l4 = UdpL4(H0, RA, 5000, 1592);
        rig.Inject("r", "eth0", E(Frag(H0, RA, l4, 800, 800, false, 14)));
        rig.Inject("r", "eth0", E(Frag(H0, RA, l4, 0, 800, true, 14)));
        Assert.Equal(1, Mib(rig, SnmpCounter.Ip6InDelivers));
        Assert.Equal(1, Mib(rig, SnmpCounter.Udp6InDatagrams));
        Assert.Equal(0, Mib(rig, SnmpCounter.Ip6ReasmReqds));
        Assert.True(r.Counters.Conserved);
    }

    [Fact]
    public void Gathering_allocates_nothing_per_packet()
    {
        var rig = Rig(rules: """
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A FORWARD -m conntrack --ctstate INVALID -j DROP
            COMMIT

            """);
        foreach (var ns in rig.Scenario.Namespaces)
            foreach (var d in ns.Devices) d.RxTap = d.TxTap = null;
        var l4 = UdpL4(H0, Far, 53, 992);
        var frames = new[] { E(Frag(H0, Far, l4, 504, 496, false, 21)), E(Frag(H0, Far, l4, 0, 504, true, 21)) };
        void Run(int n)
        {
            for (int i = 0; i < n; i++)
                foreach (var f in frames) rig.Inject("r", "eth0", f, advanceNs: 30_000_000);
        }
        Run(300);
        Support.AllocationAssert.NothingPerOperation(() => Run(2000), 2000 * frames.Length, "fragments");
        Assert.True(rig.Ns("r").Counters.Conserved);
    }
}
