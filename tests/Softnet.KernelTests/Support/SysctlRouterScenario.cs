namespace Softnet.KernelTests.Support;

/// <summary>
/// The scenario the sysctl comparisons run r in: r's eth0 (10.9.0.2/24, <see cref="RMac0"/>) and eth1 (10.10.0.2/24)
/// are veths to wire's wire0 (10.9.0.1, <see cref="WireMac0"/>) and wire1 (10.10.0.1), IPv6 off in both namespaces, a
/// UDP socket on 10.9.0.2:7000 in r. wire takes nothing in: what r sends ends there (ARP aside, which wire answers only
/// for its own addresses).
/// </summary>
public static class SysctlRouterScenario
{
    public const string WireMac0 = "02:00:0a:09:00:01", RMac0 = "02:00:0a:09:00:02";

    /// <summary>Writes the scenario under <paramref name="scn"/>: <paramref name="rSysctl"/> follows the IPv6 lines of
    /// r's sysctl.conf and <paramref name="rIp"/> the device lines of r's ip.batch (routes, neighbours).</summary>
    public static void Write(string scn, string rSysctl, string rIp)
    {
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\n" +
            "link add name eth0 netns r type veth peer name wire0 netns wire\nlink add name eth1 netns r type veth peer name wire1 netns wire\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/wire/ip.batch", "link set lo up\n" +
            $"link set wire0 address {WireMac0}\naddr add 10.9.0.1/24 dev wire0\nlink set wire0 up\n" +
            "link set wire1 address 02:00:0a:0a:00:01\naddr add 10.10.0.1/24 dev wire1\nlink set wire1 up\n");
        ScenarioPair.Write(scn, "ns/wire/iptables.save", "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n");
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n" + rSysctl);
        ScenarioPair.Write(scn, "ns/r/sockets", "udp 10.9.0.2:7000\n");
        ScenarioPair.Write(scn, "ns/r/ip.batch", "link set lo up\n" +
            $"link set eth0 address {RMac0}\naddr add 10.9.0.2/24 brd 10.9.0.255 dev eth0\nlink set eth0 up\n" +
            "link set eth1 address 02:00:0a:0a:00:02\naddr add 10.10.0.2/24 dev eth1\nlink set eth1 up\n" + rIp);
    }
}
