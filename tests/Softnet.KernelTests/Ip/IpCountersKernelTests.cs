using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// The IPv4 and ICMP error paths that the scenarios do not reach, through the kernel and through Softnet, compared
/// whole (captures and the Ip/IpExt/Icmp nstat counters): header errors (checksum, IHL, truncation), ip_error with
/// forwarding on (no route, unreachable, prohibit, blackhole) and off (a device with forwarding 0), the shared
/// inet_peer tokens of ip_error and icmp_send running out (OutRateLimitHost), an unknown protocol (InUnknownProtos and
/// a protocol unreachable), a subnet broadcast (InBcastPkts), TTL expiry whose ICMP error OUTPUT drops (OutDiscards),
/// fragmentation needed, and ICMP received: an echo, an error about UDP (no socket: InErrors), a short error.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class IpCountersKernelTests
{
    private const string WireMac0 = "02:00:0a:09:00:01", RMac0 = "02:00:0a:09:00:02", RMac1 = "02:00:0a:0a:00:02";


    private static void BuildScenario(string scn)
    {
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\n" +
            "link add name eth0 netns r type veth peer name wire0 netns wire\nlink add name eth1 netns r type veth peer name wire1 netns wire\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/wire/ip.batch", "link set lo up\n" +
            $"link set wire0 address {WireMac0}\naddr add 10.9.0.1/24 dev wire0\nlink set wire0 up\n" +
            "link set wire1 address 02:00:0a:0a:00:01\nlink set wire1 mtu 1000\naddr add 10.10.0.1/24 dev wire1\nlink set wire1 up\n" +
            $"neigh add 10.9.0.2 lladdr {RMac0} dev wire0 nud permanent\nneigh add 10.10.0.2 lladdr {RMac1} dev wire1 nud permanent\n");
        ScenarioPair.Write(scn, "ns/wire/iptables.save", "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n");
        // eth1 takes no forwarding on input; redirects off (errors go back out the arrival device).
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n" +
            "net.ipv4.ip_forward = 1\nnet.ipv4.conf.eth1.forwarding = 0\n" +
            "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\nnet.ipv4.conf.eth0.send_redirects = 0\n");
        var neigh = string.Concat(new[] { 1, 10, 11, 12 }.Select(h => $"neigh add 10.9.0.{h} lladdr {WireMac0} dev eth0 nud permanent\n"));
        ScenarioPair.Write(scn, "ns/r/ip.batch", "link set lo up\n" +
            $"link set eth0 address {RMac0}\naddr add 10.9.0.2/24 brd 10.9.0.255 dev eth0\nlink set eth0 up\n" +
            $"link set eth1 address {RMac1}\nlink set eth1 mtu 1000\naddr add 10.10.0.2/24 dev eth1\nlink set eth1 up\n" +
            neigh + "neigh add 10.10.0.1 lladdr 02:00:0a:0a:00:01 dev eth1 nud permanent\n" +
            "route add 10.77.0.0/16 via 10.10.0.1 dev eth1\nroute add blackhole 10.66.1.0/24\nroute add unreachable 10.66.2.0/24\nroute add prohibit 10.66.3.0/24\n");
        // The time exceeded this router builds dies in OUTPUT: ip_send_skb counts OutDiscards.
        ScenarioPair.Write(scn, "ns/r/iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
            "-A OUTPUT -p icmp -m icmp --icmp-type 11 -j DROP\nCOMMIT\n");
    }

    /// <summary>A copy of an IPv4 datagram with one header byte changed and the header checksum redone (or not).</summary>
    private static byte[] Mangle(byte[] ip, int at, byte value, bool fixChecksum = true)
    {
        var p = (byte[])ip.Clone();
        p[at] = value;
        if (fixChecksum)
        {
            p[10] = p[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, 20)));
        }
        return p;
    }

    private static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        void In(string dev, byte[] ip, string note, string dstMac = RMac0) => c.Add(dev, Frames.Eth(dstMac, WireMac0, ip), note);
        // Forwarded, and a header error of each kind.
        In("eth0", Frames.Udp("10.9.0.10", 4000, "10.77.0.5", 53), "forwarded");
        var good = Frames.Udp("10.9.0.10", 4001, "10.77.0.5", 53);
        In("eth0", Mangle(good, 10, (byte)(good[10] ^ 0x5a), fixChecksum: false), "bad header checksum");
        In("eth0", Mangle(good, 0, 0x44), "IHL 4");
        var longer = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(2), (ushort)(good.Length + 40));
        In("eth0", Mangle(longer, 8, longer[8]), "tot_len past the frame");
        // Unknown protocol to the router: InUnknownProtos and a protocol unreachable.
        In("eth0", Frames.Ipv4("10.9.0.11", "10.9.0.2", 253, new byte[16]), "protocol 253");
        // ip_error: three without a route from one source (the peer's tokens run out), then unreachable, prohibit, blackhole.
        for (int i = 0; i < 3; i++) In("eth0", Frames.Udp("10.9.0.1", (ushort)(5000 + i), "8.8.8.8", 53), "no route");
        In("eth0", Frames.Udp("10.9.0.12", 5000, "10.66.2.5", 53), "unreachable route");
        In("eth0", Frames.Udp("10.9.0.12", 5001, "10.66.3.5", 53), "prohibit route");
        In("eth0", Frames.Udp("10.9.0.12", 5002, "10.66.1.5", 53), "blackhole route");
        // Forwarding off on eth1: InAddrErrors, nothing sent.
        c.Add("eth1", Frames.Eth(RMac1, "02:00:0a:0a:00:01", Frames.Udp("10.10.0.1", 6000, "10.77.0.9", 53)), "eth1 forwarding off");
        // A subnet broadcast (InBcastPkts; UDP with no socket, but no error to a broadcast).
        In("eth0", Frames.Udp("10.9.0.10", 7000, "10.9.0.255", 9), "subnet broadcast", "ff:ff:ff:ff:ff:ff");
        // TTL 1 forwarded: InHdrErrors, the time exceeded dropped in OUTPUT.
        In("eth0", Frames.Udp("10.9.0.10", 4002, "10.77.0.5", 53, ttl: 1), "ttl 1");
        // DF and bigger than eth1's MTU: fragmentation needed (not rate limited).
        In("eth0", Frames.Udp("10.9.0.10", 4003, "10.77.0.5", 53, payload: 1200), "DF, too big");
        // ICMP in: an echo, a port unreachable about UDP (no socket), one too short to quote a header, an unknown type.
        In("eth0", Frames.Echo("10.9.0.10", "10.9.0.2", 8, 7, 1), "echo");
        In("eth0", Frames.IcmpError("10.9.0.10", "10.9.0.2", 3, 3, Frames.Udp("10.9.0.2", 53, "10.9.0.10", 4000)), "port unreachable about UDP");
        In("eth0", Frames.IcmpError("10.9.0.10", "10.9.0.2", 3, 1, new byte[8]), "unreachable quoting 8 bytes");
        In("eth0", Frames.IcmpError("10.9.0.10", "10.9.0.2", 40, 0, new byte[8]), "type 40");
        return c;
    }

    [SkippableFact]
    public void Ip_and_icmp_error_paths_count_as_the_kernel_counts()
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "ip-counters");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        BuildScenario(scn);
        Traffic().Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel);
        ScenarioReplay.Run(scn, capture, "r", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
        // The paths were taken: the kernel's own counts.
        var n = Softnet.Telemetry.SnmpMib.ParseNstat(File.ReadAllText(Path.Combine(kernel, "r", "nstat.txt")));
        foreach (var name in new[] { "IpInHdrErrors", "IpExtInCsumErrors", "IpExtInTruncatedPkts", "IpInUnknownProtos", "IpExtInNoRoutes",
                     "IpInAddrErrors", "IpExtInBcastPkts", "IpOutDiscards", "IcmpOutRateLimitHost", "IcmpInErrors", "IcmpOutEchoReps" })
            Assert.True(n.GetValueOrDefault(name) > 0, $"the kernel's {name} is 0: the traffic misses its path");
    }
}
