using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

/// <summary>IPv4 options on the router scenario's path: ip_rcv_options, ip_forward_options, icmp_reply and __icmp_send
/// echoing them, accept_source_route.</summary>
public class Ipv4OptionsPathTests
{
    private const string R0 = "02:00:00:01:00:02", L0 = "02:00:00:01:00:01";

    /// <summary><paramref name="ip"/> with <paramref name="options"/> after its 20-byte header (END-padded).</summary>
    internal static byte[] WithOptions(byte[] ip, params byte[] options)
    {
        int optlen = (options.Length + 3) & ~3;
        var p = new byte[ip.Length + optlen];
        ip.AsSpan(0, 20).CopyTo(p);
        options.CopyTo(p, 20);
        ip.AsSpan(20).CopyTo(p.AsSpan(20 + optlen));
        p[0] = (byte)(0x40 | ((20 + optlen) >> 2));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, 20 + optlen)));
        return p;
    }

    private static byte[] EchoRequest(string src, string dst) => Icmp(src, dst, 8, 0, 7, new byte[] { 0, 1, 9, 9, 9, 9 });

    private static List<byte[]> Ipv4Out(ScenarioRig rig, string ns, string dev)
        => rig.Tx(ns, dev).Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800).Select(f => f[14..]).ToList();

    private static uint At(byte[] b, int i) => BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(i));

    private static ScenarioRig Router(bool acceptSourceRoute = false) => acceptSourceRoute
        ? new ScenarioRig("router", new Dictionary<string, string>
        {
            ["ns/r/sysctl.conf"] = "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.all.accept_source_route = 1\n",
        })
        : new ScenarioRig("router");

    [Fact]
    public void Echo_with_record_route_is_answered_with_the_router_twice()
    {
        var rig = Router();
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(EchoRequest("10.1.0.2", "10.1.0.1"), [7, 11, 4, .. new byte[8]])));
        var reply = Assert.Single(Ipv4Out(rig, "r", "r0"));
        Assert.Equal(0x48, reply[0]);
        Assert.Equal(new byte[] { 7, 11, 12 }, reply[20..23]);
        Assert.Equal(A("10.1.0.1"), At(reply, 23));
        Assert.Equal(A("10.1.0.1"), At(reply, 27));
        Assert.Equal(0, reply[32]); // echo reply
        Assert.True(Checksum.Verify(reply.AsSpan(0, 32)));
        Assert.True(rig.Ns("r").Counters.Conserved);
    }

    [Fact]
    public void Echo_with_timestamp_is_stamped_on_the_replay_clock()
    {
        var rig = Router();
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(EchoRequest("10.1.0.2", "10.1.0.1"), [68, 12, 5, 0, .. new byte[8]])));
        var reply = Assert.Single(Ipv4Out(rig, "r", "r0"));
        uint t = Ipv4Options.Timestamp32(rig.Now);
        Assert.Equal(13, reply[22]);
        Assert.Equal(t, At(reply, 24));
        Assert.Equal(t, At(reply, 28));
    }

    [Fact]
    public void Forwarded_record_route_takes_the_outgoing_address_and_a_fresh_checksum()
    {
        var rig = Router();
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.2.0.2", 53), [7, 7, 4, 0, 0, 0, 0])));
        var f = Ipv4Out(rig, "r", "r1")[0];
        Assert.Equal(63, f[8]);
        Assert.Equal(8, f[22]);
        Assert.Equal(A("10.2.0.1"), At(f, 23));
        Assert.True(Checksum.Verify(f.AsSpan(0, 28)));
    }

    [Fact]
    public void Malformed_option_is_a_header_error_answered_with_a_parameter_problem()
    {
        var rig = Router();
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.2.0.2", 53), [1, 7, 2, 0])));
        var ns = rig.Ns("r");
        Assert.Equal(1, ns.Mib[SnmpCounter.IpInHdrErrors]);
        Assert.Equal(1, ns.Counters.Drops[DropReason.IpOptionsMalformed]);
        Assert.Empty(Ipv4Out(rig, "r", "r1"));
        var err = Assert.Single(Ipv4Out(rig, "r", "r0"));
        Assert.Equal(new byte[] { 12, 0 }, err[20..22]);
        Assert.Equal(22, err[24]); // the pointer: the record route's length byte
        Assert.Equal(1, ns.Mib[SnmpCounter.IcmpOutParmProbs]);
        Assert.True(ns.Counters.Conserved);
    }

    [Fact]
    public void Source_route_is_dropped_under_the_default_accept_source_route()
    {
        var rig = Router();
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.1.0.1", 53), [131, 7, 4, 10, 2, 0, 2])));
        Assert.Equal(1, rig.Ns("r").Counters.Drops[DropReason.IpSourceRouteRejected]);
        Assert.Empty(Ipv4Out(rig, "r", "r1"));
        Assert.Empty(Ipv4Out(rig, "r", "r0"));
    }

    [Fact]
    public void Loose_source_route_through_the_router_goes_on_to_its_next_hop()
    {
        var rig = Router(acceptSourceRoute: true);
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.1.0.1", 53), [131, 7, 4, 10, 2, 0, 2])));
        var f = Assert.Single(Ipv4Out(rig, "r", "r1"));
        Assert.Equal(A("10.2.0.2"), At(f, 16));
        Assert.Equal(new byte[] { 131, 7, 8 }, f[20..23]);
        Assert.Equal(A("10.2.0.1"), At(f, 23));
        Assert.True(Checksum.Verify(f.AsSpan(0, 28)));
    }

    [Fact]
    public void Strict_source_route_to_a_hop_behind_a_gateway_fails()
    {
        var rig = Router(acceptSourceRoute: true);
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.1.0.1", 53), [137, 7, 4, 10, 3, 0, 5])));
        Assert.Empty(Ipv4Out(rig, "r", "r1"));
        var err = Assert.Single(Ipv4Out(rig, "r", "r0"));
        Assert.Equal(new byte[] { 3, 5 }, err[20..22]);
        Assert.Equal(1, rig.Ns("r").Counters.Drops[DropReason.IpStrictRouteFailed]);
        Assert.Equal(0, rig.Ns("r").Mib[SnmpCounter.IpForwDatagrams]);
    }

    [Fact]
    public void Strict_source_route_not_addressed_to_us_points_at_16()
    {
        var rig = Router(acceptSourceRoute: true);
        rig.Inject("r", "r0", Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.2.0.2", 53), [137, 7, 4, 10, 3, 0, 5])));
        var err = Assert.Single(Ipv4Out(rig, "r", "r0"));
        Assert.Equal(new byte[] { 12, 0 }, err[20..22]);
        Assert.Equal(16, err[24]);
    }

    [Fact]
    public void Time_exceeded_echoes_the_record_route()
    {
        var rig = Router();
        var ip = WithOptions(Udp("10.1.0.2", 5000, "10.2.0.2", 53), [7, 11, 4, .. new byte[8]]);
        ip[8] = 1;
        ip[10] = ip[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum.Compute(ip.AsSpan(0, 32)));
        rig.Inject("r", "r0", Eth(R0, L0, ip));
        var err = Assert.Single(Ipv4Out(rig, "r", "r0"));
        Assert.Equal(0x48, err[0]);
        Assert.Equal(new byte[] { 7, 11, 12 }, err[20..23]);
        Assert.Equal(A("10.1.0.1"), At(err, 23));
        Assert.Equal(A("10.1.0.1"), At(err, 27));
        Assert.Equal(new byte[] { 11, 0 }, err[32..34]);
    }

    [Fact]
    public void Options_allocate_nothing_per_packet()
    {
        var rig = Router(acceptSourceRoute: true);
        foreach (var ns in rig.Scenario.Namespaces)
            foreach (var d in ns.Devices) d.RxTap = d.TxTap = null;
        byte[][] frames =
        [
            Eth(R0, L0, WithOptions(EchoRequest("10.1.0.2", "10.1.0.1"), [7, 11, 4, .. new byte[8], 68, 12, 5, 1, .. new byte[8]])),
            Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5000, "10.2.0.2", 53), [7, 11, 4, .. new byte[8], 68, 8, 5, 0, 0, 0, 0, 0])),
            Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5001, "10.1.0.1", 53), [131, 7, 4, 10, 2, 0, 2, 148, 4, 0, 0])),
            Eth(R0, L0, WithOptions(Udp("10.1.0.2", 5002, "10.2.0.2", 53), [1, 7, 2, 0])),
        ];
        void Run(int n)
        {
            for (int i = 0; i < n; i++) rig.Inject("r", "r0", frames[i % frames.Length]);
        }
        Run(400);
        int rounds = Support.AllocationAssert.NothingPerOperation(() => Run(4000), 4000, "datagrams with options");
        var r = rig.Ns("r");
        Assert.True(r.Counters.Conserved);
        Assert.Equal(100 + 1000 * rounds, r.Mib[SnmpCounter.IcmpOutEchoReps]);
        Assert.Equal(100 + 1000 * rounds, r.Counters.Drops[DropReason.IpOptionsMalformed]);
        Assert.True(r.Counters.Forwarded >= 200 + 2000 * rounds);
    }

    [Fact]
    public void Later_fragments_keep_only_copied_options()
    {
        // Record route (not copied), router alert and a loose source route (copied).
        var h = Ipv4OptionsCompileTests.Header(7, 7, 4, 0, 0, 0, 0, 148, 4, 0, 0, 131, 7, 4, 10, 0, 0, 1);
        Ipv4Options.Fragment(h, h.Length - 20);
        Assert.Equal(new byte[] { 1, 1, 1, 1, 1, 1, 1, 148, 4, 0, 0, 131, 7, 4, 10, 0, 0, 1, 0, 0 }, h[20..]);
    }
}
