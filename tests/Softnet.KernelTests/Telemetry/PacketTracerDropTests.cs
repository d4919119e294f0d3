using Softnet.KernelTests.Support;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Telemetry;

/// <summary>
/// One traced packet per drop reason the path gives: a router namespace "r" between "lan" (lan0, 10.0.0.1/24) and
/// "wan" (wan0, 198.51.100.1/24, a route to 203.0.113.0/24 and no default), each frame arriving on r:lan0 from
/// 10.0.0.2. Its journey ends in a drop event with the kernel's SKB_DROP_REASON name, including the reasons the kernel
/// leaves to ip_error and the martian checks (forwarding off, rp_filter, no route, martian source and destination).
/// </summary>
public sealed class PacketTracerDropTests
{
    private const string RMac = "02:00:0a:00:00:01", LanMac = "02:00:0a:00:00:02";

    private static byte[] FromLan(byte[] ip) => Frames.Eth(RMac, LanMac, ip);

    [Theory]
    [InlineData("forwarding_off", DropReason.IpForwardingDisabled, "SKB_DROP_REASON_IP_INADDRERRORS")]
    [InlineData("rp_filter", DropReason.IpRpFilter, "SKB_DROP_REASON_IP_RPFILTER")]
    [InlineData("no_route", DropReason.IpNoRoute, "SKB_DROP_REASON_IP_INNOROUTES")]
    [InlineData("martian_source", DropReason.IpMartianSource, "SKB_DROP_REASON_IP_INVALID_SOURCE")]
    [InlineData("martian_destination", DropReason.IpMartianDestination, "SKB_DROP_REASON_IP_INVALID_DEST")]
    [InlineData("netfilter", DropReason.NetfilterDrop, "SKB_DROP_REASON_NETFILTER_DROP")]
    [InlineData("ttl", DropReason.IpTtlExpired, "SKB_DROP_REASON_IP_INHDR")]
    [InlineData("ip_checksum", DropReason.IpCsumError, "SKB_DROP_REASON_IP_CSUM")]
    [InlineData("udp_checksum", DropReason.UdpCsumError, "SKB_DROP_REASON_UDP_CSUM")]
    [InlineData("tcp_checksum", DropReason.TcpCsumError, "SKB_DROP_REASON_TCP_CSUM")]
    [InlineData("no_socket", DropReason.NoSocket, "SKB_DROP_REASON_NO_SOCKET")]
    [InlineData("other_host", DropReason.OtherHost, "SKB_DROP_REASON_OTHERHOST")]
    [InlineData("unhandled_protocol", DropReason.UnhandledProtocol, "SKB_DROP_REASON_UNHANDLED_PROTO")]
    [InlineData("frame_too_long", DropReason.FrameTooLong, "SKB_DROP_REASON_PKT_TOO_BIG")]
    [InlineData("xdp", DropReason.XdpDrop, "SKB_DROP_REASON_XDP")]
    public void A_traced_packet_ends_with_its_drop_reason(string @case, DropReason reason, string kernelName)
    {
        bool forwarding = @case != "forwarding_off";
        bool rpFilter = @case == "rp_filter";
        byte[] frame = @case switch
        {
            "forwarding_off" or "xdp" => FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53)),
            "rp_filter" => FromLan(Frames.Udp("203.0.113.7", 5000, "198.51.100.2", 53)),
            "no_route" => FromLan(Frames.Udp("10.0.0.2", 5000, "8.8.8.8", 53)),
            "martian_source" => FromLan(Frames.Udp("127.0.0.1", 5000, "203.0.113.9", 53)),
            "martian_destination" => FromLan(Frames.Udp("10.0.0.2", 5000, "127.0.0.1", 53)),
            "netfilter" => FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 666)),
            "ttl" => FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53, ttl: 1)),
            "ip_checksum" => FromLan(Corrupt(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53), 10)),
            "udp_checksum" => FromLan(Corrupt(Frames.Udp("10.0.0.2", 5000, "10.0.0.1", 9), 26)),
            "tcp_checksum" => FromLan(Frames.Tcp("10.0.0.2", 40000, "10.0.0.1", 80, 0x02, 1000, badChecksum: true)),
            "no_socket" => FromLan(Frames.Udp("10.0.0.2", 5000, "10.0.0.1", 9)),
            "other_host" => Frames.Eth("02:00:00:00:00:99", LanMac, Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53)),
            "unhandled_protocol" => UnknownEtherType(),
            "frame_too_long" => FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53, payload: 2000)),
            _ => throw new ArgumentException(@case),
        };
        var tracer = Replay(@case, forwarding, rpFilter, [frame], "", @case == "xdp");
        // The frame's own journey; an ICMP error r answers with starts one of its own (made by r, at ip_local_out).
        var j = Assert.Single(tracer.Journeys, x => x.Origin == "port 0");
        if (@case is "no_route" or "ttl" or "no_socket")
            Assert.Contains(tracer.Journeys, x => x.Origin == "r local" && x.Summary.Contains("icmp type " + (@case == "ttl" ? 11 : 3), StringComparison.Ordinal));
        string text = TraceText.Journey(j);
        var last = j.Events[^1];
        Assert.True(last.Stage == TraceStage.Drop, $"{@case}: the journey does not end in a drop:\n{text}");
        Assert.Equal(reason, last.Reason);
        Assert.Equal(kernelName, last.KernelReason);
        Assert.Contains(kernelName, TraceText.Line(last));
        Assert.Equal(TraceStage.Arrival, j.Events[0].Stage);
    }

    [Fact]
    public void The_filter_selects_only_matching_packets_and_a_rule_names_its_chain_and_number()
    {
        var frames = new[]
        {
            FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53)),
            FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 666)),
            FromLan(Frames.Tcp("10.0.0.2", 40000, "203.0.113.9", 443, 0x02, 1000)),
        };
        var tracer = Replay("filter", true, false, frames, "udp port 666", false);
        var j = Assert.Single(tracer.Journeys);
        Assert.Equal(2, j.FrameNumber);
        Assert.Equal(3, tracer.Examined);
        var rule = Assert.Single(j.Events, e => e.Stage == TraceStage.Netfilter && e.Rule is not null);
        Assert.Equal(("filter", "FORWARD", 1, "DROP"), (rule.Table, rule.Chain, rule.RuleNumber, rule.Verdict));
        Assert.Contains("-A FORWARD -p udp -m udp --dport 666 -j DROP", rule.Text);
        Assert.Equal(1, rule.Rule!.Packets);
        Assert.Contains(j.Events, e => e.Stage == TraceStage.Route && e.Text.StartsWith("forward", StringComparison.Ordinal));
    }

    [Fact]
    public void A_forwarded_packet_is_followed_to_the_next_namespace_and_a_snat_keeps_its_id()
    {
        var tracer = Replay("snat", true, false, [FromLan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53))], "", false, snat: true);
        var j = Assert.Single(tracer.Journeys);
        string text = TraceText.Journey(j);
        Assert.Contains(j.Events, e => e.Stage == TraceStage.Nat && e.Text.Contains("=> 198.51.100.1:", StringComparison.Ordinal));
        Assert.Contains(j.Events, e => e.Stage == TraceStage.Device && e.Namespace == "wan" && e.Text.StartsWith("rx eth0", StringComparison.Ordinal));
        Assert.All(j.Events, e => Assert.Equal(j.Id, e.Packet));
        Assert.True(j.Events[^1].Stage == TraceStage.Drop && j.Events[^1].Namespace == "wan", text); // wan's raw PREROUTING drops all
    }

    private static byte[] Corrupt(byte[] ip, int at)
    {
        ip[at] ^= 0x5a;
        return ip;
    }

    private static byte[] UnknownEtherType()
    {
        var f = FromLan(Frames.Udp("10.0.0.2", 5000, "10.0.0.1", 9));
        f[12] = 0x88;
        f[13] = 0xb5;
        return f;
    }

    internal static PacketTracer Replay(string name, bool forwarding, bool rpFilter, byte[][] frames, string expr, bool xdpDrop, bool snat = false)
    {
        string dir = MakeScenario(name, forwarding, rpFilter, snat, frames);
        try
        {
            string capture = Path.Combine(dir, "in.pcapng");
            var tracer = new PacketTracer(expr);
            var replay = new ReplayOptions { Gro = null, Tracer = tracer, Nic = xdpDrop ? new NicOptions { Xdp = Softnet.Xdp.XdpPrograms.DropAll } : new NicOptions() };
            using var report = ScenarioReplay.Run(dir, capture, "r:lan0", "", new ScenarioOptions { Replay = replay });
            return tracer;
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>The scenario in a fresh temporary folder, with <paramref name="frames"/> (arriving on r:lan0) as
    /// DIR/in.pcapng. The caller deletes the folder.</summary>
    internal static string MakeScenario(string name, bool forwarding, bool rpFilter, bool snat, byte[][] frames)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"softnet-trace-{name}-{Environment.ProcessId}");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        WriteScenario(dir, forwarding, rpFilter, snat);
        var cap = new ScenarioCapture();
        foreach (var f in frames) cap.Add("lan0", f);
        cap.Write(Path.Combine(dir, "in.pcapng"));
        return dir;
    }

    internal static byte[] Lan(byte[] ip) => FromLan(ip);

    private static void WriteScenario(string dir, bool forwarding, bool rpFilter, bool snat)
    {
        File.WriteAllText(Path.Combine(dir, "links.batch"), """
            netns add lan
            netns add r
            netns add wan
            link add name lan0 netns r type veth peer name eth0 netns lan
            link add name wan0 netns r type veth peer name eth0 netns wan
            """);
        void Ns(string ns, string ip, string sysctl, string iptables)
        {
            string d = Path.Combine(dir, "ns", ns);
            Directory.CreateDirectory(d);
            File.WriteAllText(Path.Combine(d, "ip.batch"), ip);
            File.WriteAllText(Path.Combine(d, "sysctl.conf"), sysctl);
            File.WriteAllText(Path.Combine(d, "iptables.save"), iptables);
        }
        const string noV6 = "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n";
        const string dropAll = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n";
        Ns("lan", "link set lo up\nlink set eth0 address 02:00:0a:00:00:02\naddr add 10.0.0.2/24 dev eth0\nlink set eth0 up\n", noV6, dropAll);
        Ns("wan", "link set lo up\nlink set eth0 address 02:00:c6:33:64:02\naddr add 198.51.100.2/24 dev eth0\nlink set eth0 up\n", noV6, dropAll);
        Ns("r", """
            link set lo up
            link set lan0 address 02:00:0a:00:00:01
            addr add 10.0.0.1/24 dev lan0
            link set lan0 up
            link set wan0 address 02:00:c6:33:64:01
            addr add 198.51.100.1/24 dev wan0
            link set wan0 up
            route add 203.0.113.0/24 via 198.51.100.2 dev wan0
            neigh add 198.51.100.2 lladdr 02:00:c6:33:64:02 dev wan0 nud permanent
            neigh add 10.0.0.2 lladdr 02:00:0a:00:00:02 dev lan0 nud permanent
            """,
            noV6 + $"net.ipv4.ip_forward = {(forwarding ? 1 : 0)}\nnet.ipv4.conf.all.rp_filter = {(rpFilter ? 1 : 0)}\nnet.ipv4.conf.default.rp_filter = {(rpFilter ? 1 : 0)}\n"
                + $"net.ipv4.conf.lan0.rp_filter = {(rpFilter ? 1 : 0)}\n",
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p udp -m udp --dport 666 -j DROP\nCOMMIT\n"
                + (snat ? "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan0 -j MASQUERADE\nCOMMIT\n" : ""));
    }
}
