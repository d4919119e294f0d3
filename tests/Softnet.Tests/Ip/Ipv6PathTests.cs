using System.Buffers.Binary;
using System.Net;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Tests.Topology;
using Softnet.Topology;
using CsCheck;
using Xunit;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

/// <summary>The IPv6 path on the v6-router test scenario (a copy of the kernel-comparison one): what the loader builds,
/// ip6_rcv_core, ip6_forward, ICMPv6, neighbour discovery, extension headers and reassembly, frame by frame; the kernel
/// comparison (Softnet.KernelTests Ipv6RouterKernelTests) checks the same paths against Linux.</summary>
public class Ipv6PathTests
{
    private const string AMac = "02:00:0a:00:00:02", R0 = "02:00:0a:00:00:01", R1 = "02:00:0b:00:00:01";
    private const string RA = "2001:db8:a::1", Far = "2001:db8:77::5", H0 = "2001:db8:a::10";

    private static byte[] Addr(string s) => IPAddress.Parse(s).GetAddressBytes();

    private static byte[] Ip6(string src, string dst, byte nh, byte[] payload, byte hop = 64)
    {
        var b = new byte[40 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, 6u << 28);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)payload.Length);
        b[6] = nh;
        b[7] = hop;
        Addr(src).CopyTo(b, 8);
        Addr(dst).CopyTo(b, 24);
        payload.CopyTo(b, 40);
        return b;
    }

    private static byte[] Icmp(string src, string dst, byte type, uint word, byte[] body)
    {
        var m = new byte[8 + body.Length];
        m[0] = type;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), word);
        body.CopyTo(m, 8);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(2), Checksum.Compute(m, Checksum.PseudoHeaderV6(Addr(src), Addr(dst), 58, m.Length)));
        return m;
    }

    private static byte[] Echo(string src, string dst, ushort seq, byte hop = 64) => Ip6(src, dst, 58, Icmp(src, dst, 128, 0x10000u | seq, new byte[24]), hop);

    private static byte[] Udp(string src, string dst, ushort dport, byte hop = 64, int payload = 16)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, 4000);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(6), Checksum.Compute(u, Checksum.PseudoHeaderV6(Addr(src), Addr(dst), 17, u.Length)));
        return Ip6(src, dst, 17, u, hop);
    }

    private static byte[] E(byte[] ip, string dst = R0) => Eth(dst, AMac, ip, 0x86DD);

    private static UInt128 A6(string s) => Ipv6.TryParse(s, out var a) ? a : throw new FormatException(s);

    [Fact]
    public void Loader_installs_the_kernels_routes_and_the_eui64_link_local()
    {
        var rig = new ScenarioRig("v6-router");
        var r = rig.Ns("r");
        Assert.Contains(r.Addresses6, a => a.Address == A6("fe80::aff:fe00:1") && a.Device.Name == "eth0" && a.PrefixLength == 64);
        Assert.Contains(r.Addresses6, a => a.Address == Ipv6.Loopback && a.Device.Name == "lo");
        Assert.Equal(RouteKind.Local, r.Routing6.Lookup(A6(RA))!.Type);
        // Forwarding: the subnet-router anycast address of each prefix.
        Assert.Equal(RouteKind.Anycast, r.Routing6.Lookup(A6("2001:db8:a::"))!.Type);
        Assert.Equal(RouteKind.Multicast, r.Routing6.Lookup(A6("ff02::1"))!.Type);
        var via = r.Routing6.Lookup(A6(Far))!;
        Assert.Equal(A6("2001:db8:b::2"), via.Gateway);
        Assert.Equal("eth1", via.Device!.Name);
        Assert.Equal(RouteKind.Unreachable, r.Routing6.Lookup(A6("2001:db8:66:2::9"))!.Type);
        Assert.Null(r.Routing6.Lookup(A6("2001:db8:99::1")));
        Assert.True(r.JoinedGroup6(r.Device("eth0")!, Ipv6.SolicitedNode(A6(RA))));
        Assert.True(r.JoinedGroup6(r.Device("eth0")!, Ipv6.AllRouters));
        Assert.Equal(Neigh.NudState.Permanent, r.Neighbours.Find6(r.Device("eth1")!, A6("2001:db8:b::2"))!.State);
        // The hosts have IPv6 off: no addresses at all.
        Assert.Empty(rig.Ns("a").Addresses6);
    }

    [Theory]
    [InlineData("sysctl.conf", "net.ipv6.conf.eth0.addr_gen_mode = 4\n", "sysctl: setting key \"net.ipv6.conf.eth0.addr_gen_mode\": Invalid argument")]
    [InlineData("sysctl.conf", "net.ipv6.auto_flowlabels = 4\n", "sysctl: setting key \"net.ipv6.auto_flowlabels\": Invalid argument")]
    [InlineData("sysctl.conf", "net.ipv6.conf.eth0.mtu = 1279\n", "sysctl: setting key \"net.ipv6.conf.eth0.mtu\": Invalid argument")]
    [InlineData("ip.batch", "route add 2001:db8:88::/48 via 2001:db8:c::1\n", "Nexthop has invalid gateway")]
    [InlineData("ip.batch", "addr add 2001:db8:a::1/64 dev eth0\n", "File exists")]
    [InlineData("ip.batch", "addr add ff02::9/64 dev eth0\n", "cannot be an interface address")]
    [InlineData("ip.batch", "-6 route add 2001:db8:88::1/48 dev eth0\n", "Invalid prefix for given prefix length")]
    public void Bad_ipv6_lines_are_rejected_with_file_and_line(string file, string line, string message)
    {
        string path = Path.Combine(TopologyTestData.PathOf("v6-router"), "ns", "r", file);
        var e = Assert.Throws<ScenarioFormatException>(() => new ScenarioRig("v6-router", new Dictionary<string, string>
        {
            [Path.Combine("ns", "r", file)] = File.ReadAllText(path) + line,
        }));
        Assert.Contains(message, e.Message);
        Assert.EndsWith(file, e.File);
        Assert.Equal(File.ReadAllText(path).Split('\n').Length, e.Line);
    }

    [Fact]
    public void Echo_request_is_answered_from_the_address_it_was_sent_to()
    {
        var rig = new ScenarioRig("v6-router");
        rig.Inject("r", "eth0", E(Echo(H0, RA, 7)));
        var reply = Assert.Single(rig.Tx("r", "eth0"));
        var ip = reply.AsSpan(14);
        Assert.Equal(0x86DD, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(12)));
        Assert.Equal(Mac(AMac), reply[..6]);
        Assert.Equal(Addr(RA), ip.Slice(8, 16).ToArray());
        Assert.Equal(Addr(H0), ip.Slice(24, 16).ToArray());
        Assert.Equal(64, ip[7]);
        Assert.Equal(129, ip[40]);
        Assert.True(Checksum.Verify(ip[40..], Checksum.PseudoHeaderV6(ip[8..24], ip[24..40], 58, ip.Length - 40)));
        var mib = rig.Ns("r").Mib;
        Assert.Equal(1, mib[Telemetry.SnmpCounter.Icmp6InEchos]);
        Assert.Equal(1, mib[Telemetry.SnmpCounter.Icmp6OutEchoReplies]);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Forwarding_decrements_the_hop_limit_and_hop_limit_1_is_time_exceeded()
    {
        var rig = new ScenarioRig("v6-router");
        rig.Inject("r", "eth0", E(Udp(H0, Far, 53)));
        var fwd = Assert.Single(rig.Tx("r", "eth1"));
        Assert.Equal(63, fwd[14 + 7]);
        Assert.Equal(Mac("02:00:0b:00:00:02"), fwd[..6]);
        rig.Inject("r", "eth0", E(Udp(H0, Far, 53, hop: 1)));
        var te = Assert.Single(rig.Tx("r", "eth0"));
        Assert.Equal(3, te[14 + 40]);
        Assert.Equal(0, te[14 + 41]);
        var mib = rig.Ns("r").Mib;
        Assert.Equal(2, mib[Telemetry.SnmpCounter.Ip6InReceives]);
        Assert.Equal(1, mib[Telemetry.SnmpCounter.Ip6OutForwDatagrams]);
        Assert.Equal(1, mib[Telemetry.SnmpCounter.Ip6InHdrErrors]);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Too_big_no_route_and_unknown_next_header_answer_with_icmpv6()
    {
        var rig = new ScenarioRig("v6-router");
        rig.Inject("r", "eth0", E(Udp(H0, Far, 53, payload: 1300)));
        rig.Inject("r", "eth0", E(Udp("2001:db8:a::11", "2001:db8:99::1", 53)));
        rig.Inject("r", "eth0", E(Ip6("2001:db8:a::12", RA, 253, new byte[8])));
        var tx = rig.Tx("r", "eth0");
        Assert.Equal(3, tx.Count);
        Assert.Equal((2, 0u), (tx[0][54], BinaryPrimitives.ReadUInt32BigEndian(tx[0].AsSpan(54 + 4)) - 1280));
        Assert.Equal((1, 0), (tx[1][54], tx[1][55]));
        Assert.Equal((4, 1, 6u), (tx[2][54], tx[2][55], BinaryPrimitives.ReadUInt32BigEndian(tx[2].AsSpan(54 + 4))));
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Neighbour_solicitation_is_answered_and_an_unresolved_next_hop_is_solicited()
    {
        var rig = new ScenarioRig("v6-router");
        var body = new byte[24];
        Addr(RA).CopyTo(body, 0);
        body[16] = 1;
        body[17] = 1;
        Mac("02:00:0a:00:00:20").CopyTo(body, 18);
        rig.Inject("r", "eth0", E(Ip6("2001:db8:a::20", "ff02::1:ff00:1", 58, Icmp("2001:db8:a::20", "ff02::1:ff00:1", 135, 0, body), hop: 255), "33:33:ff:00:00:01"));
        var na = Assert.Single(rig.Tx("r", "eth0"));
        Assert.Equal(136, na[54]);
        Assert.Equal(0xE0, na[54 + 4]); // router, solicited, override
        Assert.Equal(Mac("02:00:0a:00:00:20"), na[..6]);
        rig.Inject("r", "eth0", E(Udp(H0, "2001:db8:b::9", 53)));
        var ns = Assert.Single(rig.Tx("r", "eth1"));
        Assert.Equal(Mac("33:33:ff:00:00:09"), ns[..6]);
        Assert.Equal(135, ns[54]);
        Assert.Equal(Addr("fe80::bff:fe00:1"), ns.AsSpan(14 + 8, 16).ToArray());
        Assert.Equal(1, rig.Ns("r").Counters.NeighQueued);
    }

    private static byte[] Fragment(string src, string dst, byte[] l4, int offset, int len, bool more, uint id)
    {
        var h = new byte[8 + len];
        h[0] = 58;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), id);
        l4.AsSpan(offset, len).CopyTo(h.AsSpan(8));
        return Ip6(src, dst, 44, h);
    }

    [Fact]
    public void Fragments_reassemble_in_any_order_and_an_overlap_drops_the_datagram()
    {
        var rig = new ScenarioRig("v6-router");
        var echo = Icmp(H0, RA, 128, 0x10001, new byte[40]);
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 32, 16, false, 1)));
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 0, 16, true, 1)));
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 16, 16, true, 1)));
        var reply = Assert.Single(rig.Tx("r", "eth0"));
        Assert.Equal(14 + 40 + 48, reply.Length);
        Assert.Equal(129, reply[54]);
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 0, 16, true, 2)));
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 8, 16, true, 2)));
        rig.Inject("r", "eth0", E(Fragment(H0, RA, echo, 24, 24, false, 2)));
        Assert.Single(rig.Tx("r", "eth0"));
        var c = rig.Ns("r").Counters;
        Assert.Equal(2, c.Drops[DropReason.FragOverlap]); // the held first fragment and the overlapping one
        Assert.Equal(1, c.FragHeld);
        Assert.True(c.Conserved);
        // The lone last fragment's queue expires: no ICMP without the first fragment.
        rig.Inject("r", "eth0", E(Echo(H0, RA, 9)), advanceNs: 61_000_000_000);
        Assert.Equal(0, c.FragHeld);
        Assert.Equal(1, rig.Ns("r").Mib[Telemetry.SnmpCounter.Ip6ReasmTimeout]);
        Assert.True(c.Conserved);
    }

    [Fact]
    public void The_ipv6_path_allocates_nothing_per_packet()
    {
        var rig = new ScenarioRig("v6-router");
        foreach (var ns in rig.Scenario.Namespaces)
            foreach (var d in ns.Devices) d.RxTap = d.TxTap = null;
        var echo = Icmp(H0, RA, 128, 0x10001, new byte[40]);
        var frames = new List<byte[]>
        {
            E(Udp(H0, Far, 53)),
            E(Echo(H0, RA, 1)),
            E(Ip6(H0, RA, 0, [58, 0, 1, 4, 0, 0, 0, 0, .. Icmp(H0, RA, 128, 0x10002, new byte[8])])),
            E(Fragment(H0, RA, echo, 16, 32, false, 7)),
            E(Fragment(H0, RA, echo, 0, 16, true, 7)),
            E(Udp(H0, RA, 5999)),
        };
        long Run(int n)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < n; i++)
                foreach (var f in frames) rig.Inject("r", "eth0", f, advanceNs: 30_000_000);
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Run(200);
        long bytes = Run(2000);
        Assert.True(bytes / (2000.0 * frames.Count) < 1.0, $"{bytes} bytes for {2000 * frames.Count} packets");
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    /// <summary>Malformed IPv6 of every kind (valid datagrams of each path with bytes changed and tails cut) never throws
    /// from the datapath, and every frame still ends in exactly one outcome.</summary>
    [Fact]
    public void Mangled_ipv6_never_throws_and_stays_conserved()
    {
        var rig = new ScenarioRig("v6-router");
        foreach (var ns in rig.Scenario.Namespaces)
            foreach (var d in ns.Devices) d.RxTap = d.TxTap = null;
        var echo = Icmp(H0, RA, 128, 0x10001, new byte[40]);
        var ns0 = new byte[24];
        Addr(RA).CopyTo(ns0, 0);
        var templates = new[]
        {
            Udp(H0, Far, 53), Udp(H0, RA, 5000), Udp(H0, RA, 5999), Echo(H0, RA, 1), Echo(H0, Far, 1, hop: 1),
            Ip6(H0, RA, 0, [58, 0, 1, 4, 0, 0, 0, 0, .. Icmp(H0, RA, 128, 0x10002, new byte[8])]),
            Ip6(H0, RA, 60, [17, 0, 0xbe, 4, 0, 0, 0, 0, .. Udp(H0, RA, 5000)[40..]]),
            Ip6(H0, RA, 43, [17, 2, 0, 1, 0, 0, 0, 0, .. Addr(Far), .. Udp(H0, RA, 5000)[40..]]),
            Fragment(H0, RA, echo, 0, 16, true, 9), Fragment(H0, RA, echo, 16, 32, false, 9),
            Ip6("2001:db8:a::20", "ff02::1:ff00:1", 58, Icmp("2001:db8:a::20", "ff02::1:ff00:1", 135, 0, ns0), hop: 255),
            Ip6(H0, RA, 6, new byte[20]),
        };
        Gen.Select(Gen.Int[0, templates.Length - 1], Gen.Int[0, int.MaxValue], Gen.Int[0, 6]).Sample((t, seed, edits) =>
        {
            var rng = new Random(seed);
            var ip = (byte[])templates[t].Clone();
            for (int e = 0; e < edits; e++) ip[rng.Next(ip.Length)] = (byte)rng.Next(256);
            if (rng.Next(4) == 0) ip = ip[..rng.Next(ip.Length)];
            rig.Inject("r", "eth0", E(ip, rng.Next(3) == 0 ? "33:33:ff:00:00:01" : R0), advanceNs: rng.Next(4) == 0 ? 2_000_000_000 : 1_000_000);
        }, iter: 20000, threads: 1);
        rig.Inject("r", "eth0", E(Echo(H0, RA, 2)), advanceNs: 120_000_000_000);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }
}
