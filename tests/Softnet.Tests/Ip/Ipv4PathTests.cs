using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Neigh;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

public class Ipv4PathTests
{
    private const string R0 = "02:00:00:01:00:02", L0 = "02:00:00:01:00:01", R1 = "02:00:00:02:00:01", RT0 = "02:00:00:02:00:02";

    [Fact]
    public void Routing_longest_prefix_match_local_table_first()
    {
        var r = new ScenarioRig("router").Ns("r").Routing;
        Assert.Equal(RouteKind.Local, r.Lookup(A("10.1.0.1"))!.Type);
        Assert.Equal(RouteKind.Broadcast, r.Lookup(A("10.2.0.255"))!.Type);
        Assert.Equal("r1", r.Lookup(A("10.2.0.77"))!.Device!.Name);
        // 10.3.1.0/24 beats 10.3.0.0/16.
        Assert.Equal(A("10.1.0.2"), r.Lookup(A("10.3.1.5"))!.Gateway);
        Assert.Equal(A("10.2.0.2"), r.Lookup(A("10.3.2.5"))!.Gateway);
        Assert.Equal(RouteKind.Unreachable, r.Lookup(A("10.9.1.1"))!.Type);
        Assert.Null(r.Lookup(A("8.8.8.8")));
        // The network address is not a broadcast route (no longer added by fib_add_ifaddr).
        Assert.Equal(RouteKind.Unicast, r.Lookup(A("10.1.0.0"))!.Type);
    }

    [Fact]
    public void Arp_request_for_local_address_is_answered_and_sender_learned()
    {
        var rig = new ScenarioRig("router");
        var req = PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1"));
        rig.Inject("r", "r0", req);
        var reply = Assert.Single(rig.Tx("r", "r0"));
        Assert.Equal(42, reply.Length);
        var expected = PacketFactory.Arp(2, Mac(L0), Mac(R0), Mac(R0), A("10.1.0.1"), Mac(L0), A("10.1.0.2"));
        Assert.Equal(expected, reply);
        var n = rig.Ns("r").Neighbours.Find(rig.Dev("r", "r0"), A("10.1.0.2"));
        Assert.Equal(NudState.Stale, n!.State);
        // The reply crossed the veth into "left", which has no entry to update: consumed as ARP.
        Assert.Single(rig.Rx("left", "l0"));
        Assert.Equal(1, rig.Ns("left").Counters.Arp);
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Arp_request_for_other_address_is_not_answered()
    {
        var rig = new ScenarioRig("router");
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.99")));
        Assert.Empty(rig.Tx("r", "r0"));
        Assert.Equal(1, rig.Ns("r").Counters.Arp);
    }

    [Fact]
    public void Forward_decrements_ttl_updates_checksum_and_crosses_the_veth()
    {
        var rig = new ScenarioRig("router");
        var ip = Udp("10.1.0.2", 5000, "10.2.0.2", 53, 30);
        rig.Inject("r", "r0", Eth(R0, L0, ip));
        var f = Assert.Single(rig.Tx("r", "r1"));
        Assert.Equal(Mac(RT0), f[..6]);
        Assert.Equal(Mac(R1), f[6..12]);
        var fwd = IpOf(f);
        Assert.Equal(63, fwd[8]);
        AssertChecksumsValid(fwd);
        // Same bytes as recomputing from scratch, apart from TTL and checksum.
        var copy = (byte[])ip.Clone();
        copy[8] = 63;
        copy[10] = copy[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(10), Checksum.Compute(copy.AsSpan(0, 20)));
        Assert.Equal(copy, fwd);
        // The datagram, and the port unreachable "right" sends back.
        Assert.Equal(2, rig.Ns("r").Counters.Forwarded);
        // Double traversal: "right" received it first and delivered it locally; no socket takes port 53 there, so it
        // answers port unreachable (after resolving the router's address).
        Assert.Equal(copy, IpOf(rig.Rx("right", "rt0")[0]));
        Assert.Equal(1, rig.Ns("right").Counters.Delivered[17]);
        Assert.Equal(1, rig.Ns("right").Mib[Softnet.Telemetry.SnmpCounter.UdpNoPorts]);
        Assert.Equal(1, rig.Ns("right").Counters.IcmpErrorsSent);
        foreach (var ns in rig.Scenario.Namespaces) Assert.True(ns.Counters.Conserved, ns.Name);
    }

    [Fact]
    public void Forward_strips_ethernet_padding()
    {
        var rig = new ScenarioRig("router");
        var ip = Udp("10.1.0.2", 5000, "10.2.0.2", 53, 2);
        var frame = Eth(R0, L0, ip);
        Array.Resize(ref frame, 60);
        rig.Inject("r", "r0", frame);
        Assert.Equal(14 + ip.Length, Assert.Single(rig.Tx("r", "r1")).Length);
    }

    [Fact]
    public void Ttl_expired_sends_time_exceeded_after_arp_resolution()
    {
        var rig = new ScenarioRig("router");
        var ip = Udp("10.1.0.2", 5000, "10.2.0.2", 53, 10);
        ip[8] = 1;
        ip[10] = ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum.Compute(ip.AsSpan(0, 20)));
        rig.Inject("r", "r0", Eth(R0, L0, ip));
        Assert.Equal(1, rig.Ns("r").Counters.Drops[DropReason.IpTtlExpired]);
        // No neighbour for 10.1.0.2 yet: an ARP request goes out first, the ICMP error waits.
        var arp = rig.Tx("r", "r0")[0];
        Assert.Equal(PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(R0), Mac(R0), A("10.1.0.1"), default, A("10.1.0.2")), arp);
        // "left" answers (it owns 10.1.0.2): the reply resolves the entry and releases the error.
        var tx = rig.Tx("r", "r0");
        Assert.Equal(2, tx.Count);
        var err = IpOf(tx[1]);
        Assert.Equal(Mac(L0), tx[1][..6]);
        AssertChecksumsValid(err);
        Assert.Equal(1, err[9]);
        Assert.Equal(11, err[20]);
        Assert.Equal(0, err[21]);
        Assert.Equal(0xC0, err[1]);
        Assert.Equal(0, err[6] & 0x40);
        Assert.Equal(64, err[8]);
        Assert.Equal(A("10.1.0.1"), BinaryPrimitives.ReadUInt32BigEndian(err.AsSpan(12)));
        Assert.Equal(A("10.1.0.2"), BinaryPrimitives.ReadUInt32BigEndian(err.AsSpan(16)));
        Assert.Equal(ip, err.AsSpan(28).ToArray());
        Assert.Equal(1, rig.Ns("r").Counters.IcmpErrorsSent);
    }

    [Fact]
    public void Unresolved_neighbour_retransmits_then_fails_and_drops()
    {
        var rig = new ScenarioRig("router");
        // 10.3.1.0/24 via 10.1.0.2 on r0; "left" is brought down so nobody answers.
        rig.Dev("left", "l0").Up = false;
        rig.Inject("r", "r1", Eth(R1, RT0, Udp("10.2.0.2", 1, "10.3.1.9", 2)));
        var c = rig.Ns("r").Counters;
        Assert.Equal(1, c.NeighQueued);
        Assert.True(c.Conserved);
        for (int s = 1; s <= 4; s++) rig.Stack.AdvanceClock(1_000_000_000_000 + 1_000_000 + s * 1_000_000_000L);
        Assert.Equal(3, rig.Tx("r", "r0").Count(f => f[12] == 0x08 && f[13] == 0x06));
        Assert.Equal(0, c.NeighQueued);
        Assert.Equal(1, c.Drops[DropReason.NeighFailed]);
        Assert.True(c.Conserved);
    }

    [Theory]
    [InlineData("8.8.8.8", DropReason.IpNoRoute, 0)]
    [InlineData("10.9.0.1", DropReason.IpRouteUnreachable, 1)]
    [InlineData("10.10.0.1", DropReason.IpRouteProhibited, 13)]
    public void Routing_errors_drop_and_answer_unreachable(string dst, DropReason reason, byte code)
    {
        var rig = new ScenarioRig("router");
        rig.Inject("r", "r1", Eth(R1, RT0, Udp("10.2.0.2", 1, dst, 2)));
        Assert.Equal(1, rig.Ns("r").Counters.Drops[reason]);
        var err = IpOf(Assert.Single(rig.Tx("r", "r1")));
        Assert.Equal(3, err[20]);
        Assert.Equal(code, err[21]);
        Assert.Equal(A("10.2.0.1"), BinaryPrimitives.ReadUInt32BigEndian(err.AsSpan(12)));
    }

    [Fact]
    public void Ip_error_is_rate_limited_per_source()
    {
        var rig = new ScenarioRig("router");
        for (int i = 0; i < 10; i++) rig.Inject("r", "r1", Eth(R1, RT0, Udp("10.2.0.2", 1, "8.8.8.8", 2)), advanceNs: 1000);
        // ip_error (burst 5 s, cost 1 s) and icmp_send (burst 6 s) share one peer entry: two get through.
        Assert.Equal(2, rig.Tx("r", "r1").Count);
    }

    [Fact]
    public void Drops_carry_reasons()
    {
        var rig = new ScenarioRig("router");
        var c = rig.Ns("r").Counters;
        var bad = Udp("10.1.0.2", 1, "10.2.0.2", 2);
        bad[10] ^= 0xFF;
        rig.Inject("r", "r0", Eth(R0, L0, bad));
        Assert.Equal(1, c.Drops[DropReason.IpCsumError]);
        rig.Inject("r", "r0", Eth("02:99:99:99:99:99", L0, Udp("10.1.0.2", 1, "10.2.0.2", 2)));
        Assert.Equal(1, c.Drops[DropReason.OtherHost]);
        rig.Inject("r", "r0", Eth(R0, L0, Udp("127.0.0.1", 1, "10.2.0.2", 2)));
        Assert.Equal(1, c.Drops[DropReason.IpMartianSource]);
        rig.Inject("r", "r0", Eth(R0, L0, Udp("10.1.0.2", 1, "10.1.0.1", 2)[..10]));
        Assert.Equal(1, c.Drops[DropReason.IpHeaderTruncated]);
        rig.Inject("r", "r0", Eth(R0, L0, new byte[40], type: 0x86DD));
        Assert.Equal(1, c.Drops[DropReason.Ipv6BadVersion]); // 40 zero bytes: version 0
        rig.Inject("r", "r0", Eth("ff:ff:ff:ff:ff:ff", L0, Udp("10.1.0.2", 1, "10.2.0.2", 2)));
        Assert.Equal(1, c.Drops[DropReason.IpForwardNotHost]);
        rig.Ns("r").WriteSysctl("net.ipv4.ip_forward", "0");
        rig.Inject("r", "r0", Eth(R0, L0, Udp("10.1.0.2", 1, "10.2.0.2", 2)));
        Assert.Equal(1, c.Drops[DropReason.IpForwardingDisabled]);
        Assert.True(c.Conserved);
    }

    [Fact]
    public void Local_delivery_is_counted_per_protocol_and_an_echo_request_is_answered()
    {
        var rig = new ScenarioRig("router");
        var request = Icmp("10.1.0.2", "10.1.0.1", 8, 0, 7, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 });
        request[1] = 0x28; // a TOS byte the reply carries back
        request[10] = request[11] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(10), Softnet.Packets.Checksum.Compute(request.AsSpan(0, 20)));
        rig.Inject("r", "r0", Eth(R0, L0, request));
        rig.Inject("r", "r0", Eth(R0, L0, Tcp("10.1.0.2", 1000, "10.2.0.1", 22, 0x02)));
        var c = rig.Ns("r").Counters;
        Assert.Equal(1, c.Delivered[1]);
        Assert.Equal(1, c.Delivered[6]);
        Assert.Equal(1, c.EchoRequests);
        // icmp_reply: type 0 from the address asked, the request's TOS, TTL 64, no DF, the same id, sequence and data.
        // The sender's address is resolved first (ARP), then the reply leaves; then the SYN's reset (no listener).
        var replies = rig.Tx("r", "r0").Where(f => f[12] == 0x08 && f[13] == 0x00).ToList();
        Assert.Equal(2, replies.Count);
        Assert.Equal(IpProtocols.Tcp, replies[1][14 + 9]);
        Assert.Equal(0x14, replies[1][14 + 20 + 13]); // RST|ACK
        Assert.Equal(1, rig.Ns("r").Mib[Softnet.Telemetry.SnmpCounter.TcpOutRsts]);
        var reply = replies[0];
        var ip = reply.AsSpan(14);
        Assert.Equal(0x28, ip[1]);
        Assert.Equal(0, ip[6] & 0x40);
        Assert.Equal(64, ip[8]);
        Assert.Equal(new byte[] { 10, 1, 0, 1, 10, 1, 0, 2 }, ip[12..20].ToArray());
        Assert.Equal(0, ip[20]);
        Assert.Equal(request.AsSpan(24).ToArray(), ip[24..].ToArray());
        Assert.True(Softnet.Packets.Checksum.Verify(ip[20..]));
        Assert.True(Softnet.Packets.Checksum.Verify(ip[..20]));
    }

    [Fact]
    public void Decrease_ttl_matches_full_recompute_for_many_headers()
    {
        var rnd = new Random(7);
        for (int i = 0; i < 2000; i++)
        {
            var h = new byte[20];
            rnd.NextBytes(h);
            h[0] = 0x45;
            h[8] = (byte)rnd.Next(2, 256);
            h[10] = h[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), Checksum.Compute(h));
            PacketFactory.DecreaseTtl(h);
            Assert.True(Checksum.Verify(h));
        }
    }
}

public class NeighbourAndMartianTests
{
    private const string R0 = "02:00:00:01:00:02", L0 = "02:00:00:01:00:01", Other = "02:00:00:01:00:77";

    private static Neighbour? Entry(ScenarioRig rig) => rig.Ns("r").Neighbours.Find(rig.Dev("r", "r0"), A("10.1.0.2"));

    [Fact]
    public void Arp_reply_confirms_reachability_only_when_unicast_to_us()
    {
        var rig = new ScenarioRig("router");
        // A request for our address makes the asker's entry (STALE).
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1")));
        Assert.Equal(NudState.Stale, Entry(rig)!.State);
        // A broadcast reply does not assert reachability (arp_process: ar_op != REPLY || pkt_type != PACKET_HOST).
        rig.Inject("r", "r0", PacketFactory.Arp(2, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), Mac(R0), A("10.1.0.1")));
        Assert.Equal(NudState.Stale, Entry(rig)!.State);
        // A unicast reply does.
        rig.Inject("r", "r0", PacketFactory.Arp(2, Mac(R0), Mac(L0), Mac(L0), A("10.1.0.2"), Mac(R0), A("10.1.0.1")));
        Assert.Equal(NudState.Reachable, Entry(rig)!.State);
        // A STALE update with the same address keeps the entry's state (neigh_update).
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.99")));
        Assert.Equal(NudState.Reachable, Entry(rig)!.State);
    }

    [Fact]
    public void A_different_address_replaces_an_entry_only_after_locktime()
    {
        var rig = new ScenarioRig("router");
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(L0), Mac(L0), A("10.1.0.2"), default, A("10.1.0.1")));
        rig.Inject("r", "r0", PacketFactory.Arp(2, Mac(R0), Mac(L0), Mac(L0), A("10.1.0.2"), Mac(R0), A("10.1.0.1")), advanceNs: 2_000_000_000);
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(Other), Mac(Other), A("10.1.0.2"), default, A("10.1.0.99")), advanceNs: 100_000_000);
        Assert.Equal(Mac(L0), Entry(rig)!.Mac);
        rig.Inject("r", "r0", PacketFactory.Arp(1, Mac("ff:ff:ff:ff:ff:ff"), Mac(Other), Mac(Other), A("10.1.0.2"), default, A("10.1.0.99")), advanceNs: 2_000_000_000);
        Assert.Equal(Mac(Other), Entry(rig)!.Mac);
        Assert.Equal(NudState.Stale, Entry(rig)!.State);
    }

    [Theory]
    [InlineData("0.1.2.3", "10.2.0.77", DropReason.IpMartianSource)]
    [InlineData("10.1.0.2", "0.1.2.3", DropReason.IpMartianDestination)]
    public void Zeronet_is_martian_as_ipv4_is_zeronet_says(string src, string dst, DropReason reason)
    {
        var rig = new ScenarioRig("router");
        rig.Inject("r", "r0", Eth(R0, L0, Udp(src, 1, dst, 2)));
        Assert.Equal(1, rig.Ns("r").Counters.Drops[reason]);
    }

    [Fact]
    public void No_icmp_error_answers_a_link_level_broadcast()
    {
        var rig = new ScenarioRig("router");
        // To an unreachable network, but sent to the broadcast MAC: ip_error's icmp_send stays silent.
        rig.Inject("r", "r0", Eth("ff:ff:ff:ff:ff:ff", L0, Udp("10.1.0.2", 1, "10.9.1.1", 2)));
        Assert.Empty(rig.Tx("r", "r0"));
        Assert.Equal(0, rig.Ns("r").Counters.IcmpErrorsSent);
    }
}
