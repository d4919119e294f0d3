using Softnet.Link;
using Softnet.Neigh;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Topology;
using Xunit;
using Softnet.Packets;

namespace Softnet.Tests.Topology;

public class ScenarioLoaderTests : IDisposable
{
    private readonly List<string> _dirs = new();

    public void Dispose()
    {
        foreach (var d in _dirs)
            if (Directory.Exists(d)) Directory.Delete(d, true);
    }

    [Fact]
    public void Docker_scenario_loads()
    {
        var sc = ScenarioLoader.Load(TopologyTestData.PathOf("docker"));
        Assert.Equal(["outside", "host", "c1"], sc.Namespaces.Select(n => n.Name));
        var host = sc.Namespace("host")!;
        Assert.Equal(["lo", "eth0", "veth1", "docker0"], host.Devices.Select(d => d.Name));
        var docker0 = host.Device("docker0")!;
        Assert.True(docker0.Kind.IsBridge);
        Assert.False(docker0.McastSnooping);
        Assert.Equal("02:42:ac:11:00:01", Device.FormatMac(docker0.Mac));
        Assert.Same(docker0, host.Device("veth1")!.Master);
        Assert.Same(sc.Namespace("c1")!.Device("eth0"), host.Device("veth1")!.Peer);
        Assert.Same(sc.Namespace("outside")!.Device("wire0"), host.Device("eth0")!.Peer);
        Assert.True(host.Forwarding(host.Device("eth0")!));
        Assert.False(sc.Namespace("c1")!.Forwarding(sc.Namespace("c1")!.Device("eth0")!));
        Assert.True(host.HasIptables);
        Assert.True(host.Netfilter.ConntrackEnabled);
        Assert.False(sc.Namespace("c1")!.HasIptables);
        Assert.Equal(NudState.Permanent, host.Neighbours.Find(docker0, Ipv4.Parse("172.17.0.2"))!.State);
        Assert.Equal(RouteType.Local, host.AddressType(Ipv4.Parse("172.17.0.1"), null));
        Assert.Equal(RouteType.Broadcast, host.AddressType(Ipv4.Parse("172.17.255.255"), null));
        Assert.Equal(Ipv4.Parse("192.0.2.1"), host.SelectAddress("eth0", 0));
    }

    [Fact]
    public void Bridge_without_address_takes_lowest_port_mac_and_veth_macs_derive_from_names()
    {
        var dir = Temp(
            "netns add a\nnetns add b\nlink add x1 netns a type veth peer name y1 netns b\nlink add x2 netns a address 02:00:00:00:00:05 type veth peer name y2 netns b\n",
            ("a", "ip.batch", "link add br0 type bridge\nlink set x1 master br0\nlink set x2 master br0\n"));
        var sc = ScenarioLoader.Load(dir);
        var a = sc.Namespace("a")!;
        var expected = new[] { a.Device("x1")!.Mac, a.Device("x2")!.Mac }.OrderBy(m => Device.MacKey(m)).First();
        Assert.Equal(expected, a.Device("br0")!.Mac);
        Assert.Equal(Device.DeriveMac("a", "x1"), a.Device("x1")!.Mac);
        Assert.Equal(0x02, a.Device("x1")!.Mac[0] & 0x03);
    }

    [Fact]
    public void A_cpuset_places_readers_without_a_cpu_and_refuses_one_outside_it()
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude), ("h", "cpuset", "# docker run --cpuset-cpus 2-3,5\n2-3,5\n"),
            ("h", "sockets", "udp 10.0.0.1:53\ntcp listen 10.0.0.1:80 cpu 5\n"));
        var h = ScenarioLoader.Load(dir).Namespace("h")!;
        Assert.Equal([2, 3, 5], h.CpuSet!);
        Assert.Equal([2, 5], h.Sockets.All.Select(s => s.Cpu).OrderBy(c => c).ToArray());

        var bad = Temp(Links, ("h", "ip.batch", Prelude), ("h", "cpuset", "2-3\n"), ("h", "sockets", "udp 10.0.0.1:53 cpu 1\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(bad));
        Assert.Contains("outside namespace 'h's cpuset 2,3", e.Message);
        Assert.Equal(1, e.Line);
    }

    [Fact]
    public void A_sysfs_file_sets_rps_on_a_devices_rx_queue()
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude), ("h", "sysfs", "# RPS and RFS on eth0\n/sys/class/net/eth0/queues/rx-0/rps_cpus = 00000002\nclass/net/eth0/queues/rx-0/rps_flow_cnt = 4096\n"));
        var q = ScenarioLoader.Load(dir).Namespace("h")!.Device("eth0")!.RpsRx!;
        Assert.Equal([1], q.RpsCpus!.ToArray());
        Assert.Equal(4096, q.RpsFlowCnt);
    }

    [Theory]
    [InlineData("class/net/nope/queues/rx-0/rps_cpus = 2", "No such file or directory")]
    [InlineData("class/net/eth0/queues/rx-1/rps_cpus = 2", "one RX queue")]
    [InlineData("class/net/eth0/queues/rx-0/rps_cpus = xyz", "Invalid argument")]
    [InlineData("class/net/eth0/queues/rx-0/rps_flow_cnt = -1", "Invalid argument")]
    [InlineData("class/net/eth0/queues/rx-0/xps_cpus = 1", "not a file Softnet writes")]
    [InlineData("class/net/eth0/queues/rx-0/rps_cpus 2", "PATH = VALUE")]
    public void A_bad_sysfs_line_is_rejected_with_its_line(string line, string why)
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude), ("h", "sysfs", "# first\n" + line + "\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Contains(why, e.Message);
        Assert.Equal(2, e.Line);
    }

    [Theory]
    [InlineData("3-1")]
    [InlineData("a")]
    [InlineData("0-2000")]
    [InlineData("")]
    public void A_malformed_cpuset_is_rejected(string list)
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude), ("h", "cpuset", list + "\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Contains("cpuset", e.Message);
    }

    private static int _n;

    private string Temp(string links, params (string Ns, string File, string Text)[] files)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"softnet-scn-{Environment.ProcessId}-{Interlocked.Increment(ref _n)}");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.CreateDirectory(dir);
        _dirs.Add(dir);
        File.WriteAllText(Path.Combine(dir, "links.batch"), links);
        foreach (var (ns, file, text) in files)
        {
            Directory.CreateDirectory(Path.Combine(dir, "ns", ns));
            File.WriteAllText(Path.Combine(dir, "ns", ns, file), text);
        }
        return dir;
    }

    private const string Links = "netns add h\nnetns add o\nlink add eth0 netns h type veth peer name w0 netns o\n";
    private const string Prelude = "link set eth0 up\naddr add 10.0.0.1/24 dev eth0\n";

    [Theory]
    [InlineData("link add gre0 type gre remote 192.0.2.1", "unsupported link type 'gre'")]
    [InlineData("addr add 10.0.0.5/24 dev eth0 scope host", "unsupported 'addr add' option 'scope'")]
    [InlineData("addr add fe80::1/64 dev eth0 brd +", "unsupported IPv6 'addr add' option")]
    [InlineData("route add 2001:db8::/64 via 10.0.0.1 dev eth0", "invalid IPv6 gateway")]
    [InlineData("neigh add 2001:db8::1 dev eth0", "needs 'lladdr MAC'")]
    [InlineData("route add 10.9.0.0/16 via 10.0.0.99 metric 5", "unsupported 'route add' option 'metric'")]
    [InlineData("route add 10.9.0.0/16 via 10.99.0.1", "Nexthop has invalid gateway")]
    [InlineData("route add 10.9.0.1/16 via 10.0.0.2", "Invalid prefix for given prefix length")]
    [InlineData("route add 10.9.0.0/16 via 10.99.0.1 onlink", "Nexthop device required for onlink")]
    [InlineData("route add 10.9.0.0/16 via 224.0.0.1 dev eth0 onlink", "Nexthop has invalid gateway")]
    [InlineData("route add 10.9.0.0/16 via 10.0.0.1 dev eth0 onlink", "Gateway can not be a local address")]
    [InlineData("route add 10.9.0.0/16 dev nosuch", "Cannot find device \"nosuch\"")]
    [InlineData("neigh add 10.0.0.9 lladdr 02:00:00:00:00:09 dev eth0 nud reachable", "only 'nud permanent'")]
    [InlineData("link set eth0 promisc on", "unsupported 'link set' attribute 'promisc'")]
    [InlineData("rule add from all lookup 100", "unsupported command 'rule add'")]
    [InlineData("-n h link set eth0 up", "option '-n' is not supported")]
    [InlineData("link add br1 type bridge stp_state 1", "stp_state other than 0")]
    [InlineData("netns add z", "belongs in links.batch")]
    [InlineData("addr add 10.0.0.1/24 dev eth0", "File exists")]
    public void Unsupported_ip_batch_line_is_rejected_with_file_and_line(string line, string message)
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude + line + "\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Equal(Path.Combine(dir, "ns", "h", "ip.batch"), e.File);
        Assert.Equal(3, e.Line);
        Assert.Contains(message, e.Message);
        Assert.StartsWith($"{e.File}:3: ", e.Message);
    }

    [Theory]
    [InlineData("link add a0 type veth peer name b0 netns o", "harness's own namespace")]
    [InlineData("link add a0 netns h type veth peer name b0", "harness's own namespace")]
    [InlineData("link set eth0 up", "runs inside a namespace")]
    [InlineData("ip link add a0 netns h type bridge", "not 'ip'")]
    [InlineData("netns add h", "exists already")]
    public void Unsupported_links_batch_line_is_rejected_with_file_and_line(string line, string message)
    {
        var dir = Temp(Links + line + "\n");
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Equal(Path.Combine(dir, "links.batch"), e.File);
        Assert.Equal(4, e.Line);
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("net.core.rmem_max = 1", "sysctl: setting key \"net.core.rmem_max\": Invalid argument")]
    [InlineData("net.ipv4.conf.eth9.rp_filter = 1", "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth9/rp_filter: No such file or directory")]
    [InlineData("net.ipv4.nosuch = 1", "sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory")]
    [InlineData("net/ipv4/nosuch = 1", "sysctl: cannot stat /proc/sys/net/ipv4/nosuch: No such file or directory")]
    [InlineData("net.ipv4 = 1", "sysctl: setting key \"net.ipv4\": Invalid argument")]
    [InlineData("net.ipv4.ip_forward = yes", "sysctl: setting key \"net.ipv4.ip_forward\": Invalid argument")]
    [InlineData("net.ipv4.ip_forward = 1x", "sysctl: setting key \"net.ipv4.ip_forward\": Invalid argument")]
    [InlineData("net.ipv4.ip_forward = 2147483648", "sysctl: setting key \"net.ipv4.ip_forward\": Invalid argument")]
    [InlineData("net.ipv4.ip_default_ttl = 256", "sysctl: setting key \"net.ipv4.ip_default_ttl\": Invalid argument")]
    [InlineData("net.ipv4.ip_default_ttl =", "sysctl: setting key \"net.ipv4.ip_default_ttl\": Invalid argument")]
    [InlineData("net.ipv4.ipfrag_time = 8589935", "sysctl: setting key \"net.ipv4.ipfrag_time\": Invalid argument")]
    [InlineData("net.ipv4.icmp_ratelimit = -1", "sysctl: setting key \"net.ipv4.icmp_ratelimit\": Invalid argument")]
    [InlineData("net.ipv4.tcp_sack = -0", "sysctl: setting key \"net.ipv4.tcp_sack\": Invalid argument")]
    [InlineData("net.ipv4.tcp_rmem = 4096 131072 x", "sysctl: setting key \"net.ipv4.tcp_rmem\": Invalid argument")]
    [InlineData("net.ipv4.ip_local_port_range = 1000 2000", "sysctl: setting key \"net.ipv4.ip_local_port_range\": Invalid argument")]
    [InlineData("net.ipv6.icmp.ratemask = 0-256", "sysctl: setting key \"net.ipv6.icmp.ratemask\": Invalid argument")]
    [InlineData("net.ipv4.tcp_congestion_control = foo", "sysctl: setting key \"net.ipv4.tcp_congestion_control\": No such file or directory")]
    [InlineData("net.ipv4.neigh.all.locktime = 1", "sysctl: cannot stat /proc/sys/net/ipv4/neigh/all/locktime: No such file or directory")]
    public void Bad_sysctl_is_rejected_with_file_and_line(string line, string message)
    {
        var dir = Temp(Links, ("h", "ip.batch", Prelude), ("h", "sysctl.conf", "# comment\n" + line + "\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Equal(Path.Combine(dir, "ns", "h", "sysctl.conf"), e.File);
        Assert.Equal(2, e.Line);
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void Bad_iptables_save_is_rejected_with_file_and_line()
    {
        var dir = Temp(Links, ("h", "iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m nosuch -j ACCEPT\nCOMMIT\n"));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.EndsWith("iptables.save", e.File);
        Assert.Equal(3, e.Line);
    }

    [Fact]
    public void Namespace_folder_without_netns_add_is_rejected()
    {
        var dir = Temp(Links, ("ghost", "ip.batch", ""));
        var e = Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(dir));
        Assert.Contains("not created by links.batch", e.Message);
    }

    [Fact]
    public void Filter_only_ruleset_does_not_enable_conntrack()
    {
        var dir = Temp(Links, ("h", "iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -j DROP\nCOMMIT\n"));
        var h = ScenarioLoader.Load(dir).Namespace("h")!;
        Assert.True(h.HasIptables);
        Assert.False(h.Netfilter.ConntrackEnabled);
    }

    [Fact]
    public void Conntrack_sysctls_apply()
    {
        var dir = Temp(Links, ("h", "iptables.save", "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"),
            ("h", "sysctl.conf", "net.netfilter.nf_conntrack_max = 10\nnet.netfilter.nf_conntrack_tcp_timeout_syn_sent = 5\nnet.netfilter.nf_conntrack_udp_timeout = 7\n"));
        var o = ScenarioLoader.Load(dir).Namespace("h")!.Netfilter.Conntrack.Options;
        Assert.Equal(10, o.Max);
        Assert.Equal(5_000_000_000L, o.TcpTimeoutsNs[1]);
        Assert.Equal(TimeSpan.FromSeconds(7), o.UdpTimeout);
    }

    [Fact]
    public void Conntrack_checksum_sysctl_applies()
    {
        const string nat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
        var on = Temp(Links, ("h", "iptables.save", nat));
        Assert.True(ScenarioLoader.Load(on).Namespace("h")!.Netfilter.Conntrack.Options.Checksum);
        var off = Temp(Links, ("h", "iptables.save", nat), ("h", "sysctl.conf", "net.netfilter.nf_conntrack_checksum = 0\n"));
        Assert.False(ScenarioLoader.Load(off).Namespace("h")!.Netfilter.Conntrack.Options.Checksum);
        var bad = Temp(Links, ("h", "sysctl.conf", "net.netfilter.nf_conntrack_checksum = 2\n"));
        Assert.EndsWith("sysctl: setting key \"net.netfilter.nf_conntrack_checksum\": Invalid argument", Assert.Throws<ScenarioFormatException>(() => ScenarioLoader.Load(bad)).Message);
    }

    [Theory]
    [InlineData("net.ipv4.icmp_msgs_per_sec", "1000", true)]
    [InlineData("net.ipv4.icmp_msgs_burst", "50", true)]
    [InlineData("net.ipv4.conf.eth0.send_redirects", "0", true)]
    [InlineData("net.ipv4.conf.all.accept_redirects", "1", true)]
    [InlineData("net.ipv4.conf.default.secure_redirects", "1", true)]
    [InlineData("net.ipv4.conf.all.log_martians", "1", true)]
    [InlineData("net.ipv4.conf.eth0.arp_ignore", "2", true)]
    [InlineData("net.ipv4.conf.eth0.arp_announce", "2", true)]
    [InlineData("net.ipv4.tcp_dsack", "0", true)]
    [InlineData("net.ipv4.tcp_synack_retries", "2", true)]
    [InlineData("net.ipv4.tcp_max_syn_backlog", "16", true)]
    [InlineData("net.ipv4.tcp_fastopen", "1", true)]
    [InlineData("net.ipv4.tcp_fastopen", "1539", true)]
    [InlineData("net.ipv4.tcp_fastopen", "1027", true)]
    [InlineData("net.ipv4.tcp_fastopen_key", "00010203-04050607-08090a0b-0c0d0e0f", true)]
    [InlineData("net.ipv4.tcp_wmem", "4096 4096 4096", true)]
    [InlineData("net.ipv6.icmp.ratemask", "0-1,3-127", true)]
    [InlineData("net.ipv6.conf.eth0.mtu", "1300", true)]
    [InlineData("net.ipv6.conf.eth0.accept_dad", "0", true)]
    [InlineData("net.ipv6.conf.all.accept_dad", "1", true)]
    [InlineData("net.ipv6.conf.default.dad_transmits", "3", true)]
    [InlineData("net.ipv6.conf.eth0.enhanced_dad", "0", true)]
    [InlineData("net.ipv6.conf.eth0.accept_ra", "2", true)]
    [InlineData("net.ipv6.conf.eth0.router_solicitations", "0", true)]
    [InlineData("net.ipv6.conf.default.router_solicitation_interval", "1", true)]
    [InlineData("net.ipv6.conf.default.router_solicitation_delay", "0", true)]
    [InlineData("net.ipv6.conf.default.router_solicitation_max_interval", "60", true)]
    [InlineData("net.ipv6.conf.eth0.mldv1_unsolicited_report_interval", "1000", true)]
    [InlineData("net.ipv6.conf.all.mldv2_unsolicited_report_interval", "100", true)]
    [InlineData("net.ipv6.conf.all.force_mld_version", "1", true)]
    [InlineData("net.ipv6.conf.eth0.optimistic_dad", "1", false)]
    [InlineData("net.ipv6.conf.eth0.accept_ra_mtu", "0", true)]
    [InlineData("net.ipv6.conf.eth0.accept_ra_pinfo", "0", true)]
    [InlineData("net.ipv6.conf.eth0.use_tempaddr", "2", false)]
    [InlineData("net.ipv6.auto_flowlabels", "1", true)]
    [InlineData("net.ipv6.flowlabel_state_ranges", "1", true)]
    [InlineData("net.ipv4.tcp_fin_timeout", "30", false)]
    [InlineData("net.bridge.bridge-nf-call-ip6tables", "1", true)]
    [InlineData("net.netfilter.nf_conntrack_acct", "1", true)]
    [InlineData("net.netfilter.nf_conntrack_tcp_ignore_invalid_rst", "1", true)]
    [InlineData("net.netfilter.nf_conntrack_log_invalid", "6", true)]
    [InlineData("net.netfilter.nf_conntrack_events", "0", true)]
    [InlineData("net.netfilter.nf_conntrack_timestamp", "1", true)]
    [InlineData("net.netfilter.nf_conntrack_gre_timeout", "20", true)]
    [InlineData("net.netfilter.nf_conntrack_sctp_timeout_established", "300", true)]
    [InlineData("net.netfilter.nf_conntrack_sctp_timeout_heartbeat_sent", "5", true)]
    [InlineData("net.bridge.bridge-nf-call-arptables", "1", true)]
    public void Honoured_sysctls_are_not_listed_as_not_modelled(string key, string value, bool modelled)
        => Assert.Equal(modelled, ScenarioLoader.Modelled(key, value));
    [Fact]
    public void Sysctl_conf_takes_what_sysctl_p_takes()
    {
        const string conf = "# comment\n; comment\n  net.ipv4.conf.all.rp_filter   =   2   \nnet/ipv4/ip_default_ttl=0x20\n"
            + "net.ipv4.ip_forward = 1 # not a comment: proc_dointvec reads 1 and stops\nnet.ipv6.icmp.ratemask =\n"
            + "-net.ipv4.nosuch = 1\n-net.ipv4.ip_default_ttl = 999\nno equals sign: sysctl warns and goes on\n"
            + "net.ipv4.icmp_ratelimit = 1\nnet.ipv4.tcp_rmem = 8192\nnet.ipv4.conf.*.log_martians = 1\n-net.ipv4.conf.lo.log_martians\n"
            + "net.ipv4.tcp_fin_timeout = 30\n";
        var ns = ScenarioLoader.Load(Temp(Links, ("h", "ip.batch", Prelude), ("h", "sysctl.conf", conf))).Namespace("h")!;
        Assert.Equal("2", ns.Sysctl("net.ipv4.conf.all.rp_filter"));
        Assert.Equal(32, ns.DefaultTtl);
        Assert.Equal("1", ns.Sysctl("net.ipv4.ip_forward"));
        Assert.Equal("", ns.Sysctl("net.ipv6.icmp.ratemask"));
        Assert.Null(ns.Sysctl("net.ipv4.nosuch"));
        // 1 ms is one jiffy at HZ=250, read back as 4 ms.
        Assert.Equal(4, ns.IcmpRateLimitMs);
        Assert.Equal("8192\t131072\t33554432", ns.Sysctl("net.ipv4.tcp_rmem"));
        // The glob wrote all, default and eth0, not lo (excluded).
        Assert.Equal("1", ns.Sysctl("net.ipv4.conf.eth0.log_martians"));
        Assert.Equal("1", ns.Sysctl("net.ipv4.conf.default.log_martians"));
        Assert.Null(ns.Sysctl("net.ipv4.conf.lo.log_martians"));
        // log_martians only prints: honoured by doing nothing, so not listed.
        Assert.DoesNotContain("net.ipv4.conf.eth0.log_martians", ns.SysctlsNotModelled.Keys);
        // Kept and reported: keys Softnet does not act on.
        Assert.Equal("30", ns.SysctlsNotModelled["net.ipv4.tcp_fin_timeout"]);
        Assert.DoesNotContain("net.ipv6.icmp.ratemask", ns.SysctlsNotModelled.Keys);
        Assert.DoesNotContain("net.ipv4.tcp_rmem", ns.SysctlsNotModelled.Keys);
        Assert.DoesNotContain("net.ipv4.ip_forward", ns.SysctlsNotModelled.Keys);
    }

    [Fact]
    public void Conf_all_and_default_combine_as_the_kernel_does()
    {
        // devinet: default seeds a device's unwritten keys; rp_filter is the larger of all and the device, accept_local
        // either, accept_source_route both; ip_forward writes all, default and every device (which then keep it).
        const string conf = "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.all.rp_filter = 1\n"
            + "net.ipv4.conf.all.accept_local = 1\nnet.ipv4.conf.all.accept_source_route = 1\nnet.ipv4.conf.eth0.accept_source_route = 0\n"
            + "net.ipv4.ip_forward = 1\nnet.ipv4.conf.default.forwarding = 0\n"
            + "net.ipv6.conf.default.hop_limit = 7\n";
        var ns = ScenarioLoader.Load(Temp(Links, ("h", "ip.batch", Prelude + "link add br0 type bridge\n"), ("h", "sysctl.conf", conf))).Namespace("h")!;
        var eth0 = ns.Device("eth0")!;
        Assert.Equal(2, ns.RpFilter(eth0));
        Assert.True(ns.AcceptLocal(eth0));
        Assert.False(ns.AcceptSourceRoute(eth0));
        Assert.True(ns.AcceptSourceRoute(ns.Device("br0")!));
        Assert.True(ns.Forwarding(eth0));
        Assert.Equal("0", ns.Sysctl("net.ipv4.conf.all.accept_redirects"));
        // addrconf: eth0 (links.batch) came before the write of default and keeps 64; br0 (ip.batch) takes 7.
        Assert.Equal(64, ns.HopLimit6(eth0));
        Assert.Equal(7, ns.HopLimit6(ns.Device("br0")!));
    }

    [Fact]
    public void Sysctl_a_of_a_fresh_namespace_loads()
    {
        // What `sysctl -a` prints in a fresh namespace, less the read-only keys (sysctl -p refuses those as well); the
        // global net.core keys as the host takes them.
        var lines = SysctlCatalogue.Keys(["lo"]).Where(k => !k.EndsWith(".stable_secret", StringComparison.Ordinal))
            .Select(k => (k, SysctlCatalogue.GlobalCore.GetValueOrDefault(k) ?? SysctlCatalogue.Find(k, _ => true, out _)!)).Where(x => !x.Item2.ReadOnly)
            .Select(x => x.k + " = " + SampleValue(x.k, x.Item2));
        ScenarioLoader.Load(Temp(Links, ("h", "sysctl.conf", string.Join("\n", lines) + "\n")));
    }

    private static string SampleValue(string key, SysctlCatalogue.Entry e) => e.Handler switch
    {
        "proc_tcp_congestion_control" or "proc_path_manager" or "proc_scheduler" or "nf_log_proc_dostring" => e.Args[0].Split(',')[0],
        "proc_tcp_fastopen_key" => "00000000-00000000-00000000-00000000",
        "ipv4_local_port_range" => "32768 60999",
        "addrconf_sysctl_mtu" => "1280",
        "proc_do_large_bitmap" => "",
        "proc_dointvec_minmax" or "proc_douintvec_minmax" or "proc_dou8vec_minmax" or "proc_doulongvec_minmax" or "proc_dointvec_ms_jiffies_minmax"
            when !e.Args[0].StartsWith('@') => e.Args[0] == "0" ? "1" : e.Args[0],
        "proc_doulongvec_minmax" => "4194304",
        "host" => "x",
        _ => "1",
    };
}
