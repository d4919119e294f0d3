using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// Sysctls that change the IPv4 receive path, each setting through the kernel and through Softnet on the same capture,
/// compared whole (what r sends, its nstat counters, its socket's datagrams): accept_local with rp_filter off, strict
/// and loose (the loose one from conf.default, which a device never written follows), icmp_echo_ignore_all and
/// icmp_echo_ignore_broadcasts, icmp_ratelimit and icmp_ratemask on a burst of port unreachables, icmp_msgs_per_sec and
/// icmp_msgs_burst (the namespace bucket, set where its random credits cannot change the count).
/// </summary>
[Trait("Category", "Kernel")]
public sealed class SysctlBehaviourKernelTests
{
    private const string WireMac0 = "02:00:0a:09:00:01", RMac0 = "02:00:0a:09:00:02";

    private static void Write(string root, string file, string text)
    {
        string path = Path.Combine(root, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    private static void BuildScenario(string scn, string sysctls)
    {
        Write(scn, "links.batch", "netns add wire\nnetns add r\n" +
            "link add name eth0 netns r type veth peer name wire0 netns wire\nlink add name eth1 netns r type veth peer name wire1 netns wire\n");
        Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        Write(scn, "ns/wire/ip.batch", "link set lo up\n" +
            $"link set wire0 address {WireMac0}\naddr add 10.9.0.1/24 dev wire0\nlink set wire0 up\n" +
            "link set wire1 address 02:00:0a:0a:00:01\naddr add 10.10.0.1/24 dev wire1\nlink set wire1 up\n");
        Write(scn, "ns/wire/iptables.save", "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n");
        Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n" +
            "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\n" + sysctls);
        Write(scn, "ns/r/ip.batch", "link set lo up\n" +
            $"link set eth0 address {RMac0}\naddr add 10.9.0.2/24 brd 10.9.0.255 dev eth0\nlink set eth0 up\n" +
            "link set eth1 address 02:00:0a:0a:00:02\naddr add 10.10.0.2/24 dev eth1\nlink set eth1 up\n" +
            $"neigh add 10.9.0.10 lladdr {WireMac0} dev eth0 nud permanent\n");
        Write(scn, "ns/r/sockets", "udp 10.9.0.2:7000\n");
        // Conntrack's keys need a table that tracks: r's INPUT asks for the state of everything it accepts.
        if (sysctls.Contains("nf_conntrack", StringComparison.Ordinal))
            Write(scn, "ns/r/iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
                "-A INPUT -m conntrack --ctstate NEW,ESTABLISHED,RELATED -j ACCEPT\nCOMMIT\n");
    }

    private static ScenarioCapture Traffic(bool gre)
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note, string dstMac = RMac0) => c.Add("eth0", Frames.Eth(dstMac, WireMac0, ip), note);
        In(Frames.Echo("10.9.0.10", "10.9.0.2", 8, 7, 1), "echo");
        In(Frames.Echo("10.9.0.10", "10.9.0.255", 8, 7, 2), "broadcast echo", "ff:ff:ff:ff:ff:ff");
        // Sources that are r's own addresses: eth0's (the arrival device), eth1's (another device).
        In(Frames.Udp("10.9.0.2", 5555, "10.9.0.2", 7000), "own source, this device");
        In(Frames.Udp("10.10.0.2", 5556, "10.9.0.2", 7000), "own source, another device");
        // A burst of port unreachables: icmp_ratelimit / icmp_ratemask decide how many go.
        for (int i = 0; i < 8; i++) In(Frames.Udp("10.9.0.10", (ushort)(6000 + i), "10.9.0.2", 9), "closed port");
        if (gre)
        {
            // Forwarded GRE (version 0: no keys, one flow per address pair): A answered twice from behind eth1, U never;
            // then, past a second, one more of each. With nf_conntrack_acct the entries' packets= tell a flow kept
            // (counts on) from one that expired and was made again.
            static byte[] Gre(string src, string dst) => Frames.Ipv4(src, dst, 47, [0x00, 0x00, 0x08, 0x00, .. new byte[20]]);
            In(Gre("10.9.0.10", "10.10.0.1"), "gre A");
            c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01", Gre("10.10.0.1", "10.9.0.10")), "gre A reply");
            c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01", Gre("10.10.0.1", "10.9.0.10")), "gre A reply");
            In(Gre("10.9.0.20", "10.10.0.1"), "gre U");
            c.Pause(2100);
            In(Gre("10.9.0.10", "10.10.0.1"), "gre A again");
            In(Gre("10.9.0.20", "10.10.0.1"), "gre U again");
        }
        return c;
    }

    public static TheoryData<string, string> Settings() => new()
    {
        { "defaults", "" },
        { "accept-local", "net.ipv4.conf.all.accept_local = 1\n" },
        { "accept-local-strict", "net.ipv4.conf.all.accept_local = 1\nnet.ipv4.conf.all.rp_filter = 1\n" },
        { "accept-local-dev-loose-default", "net.ipv4.conf.eth0.accept_local = 1\nnet.ipv4.conf.default.rp_filter = 2\n" },
        { "echo-ignore-all", "net.ipv4.icmp_echo_ignore_all = 1\nnet.ipv4.icmp_echo_ignore_broadcasts = 0\n" },
        { "echo-broadcasts", "net.ipv4.icmp_echo_ignore_broadcasts = 0\n" },
        { "ratelimit-0", "net.ipv4.icmp_ratelimit = 0\n" },
        { "ratemask-0", "net.ipv4.icmp_ratemask = 0\n" },
        // The namespace bucket: a second's refill of one credit, no burst: the first limited error goes (a refill
        // always lets its message go), the others within the second do not, whatever credits it consumed.
        { "msgs-per-sec-1", "net.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
        { "msgs-per-sec-0", "net.ipv4.icmp_msgs_per_sec = 0\n" },
        // A ratemask naming echo replies puts them in front of the bucket too: the echo's reply takes the refill.
        { "msgs-ratemask-echo", "net.ipv4.icmp_ratemask = 6169\nnet.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
        // Conntrack accounting: `conntrack -L` shows packets= bytes= on both directions of every entry.
        { "conntrack-acct", "net.netfilter.nf_conntrack_acct = 1\n" },
        { "conntrack-no-acct", "net.netfilter.nf_conntrack_acct = 0\n" },
        // Conntrack timestamps: `conntrack -L` shows each entry's delta-time= (its value, wall-clock seconds, is masked).
        // GRE's timeouts: an unreplied flow past nf_conntrack_gre_timeout is made again; a replied one lives on the
        // stream timeout, unless that is short too.
        { "conntrack-gre-timeout", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_gre_timeout = 1\n" },
        { "conntrack-gre-stream", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_gre_timeout = 1\nnet.netfilter.nf_conntrack_gre_timeout_stream = 1\n" },
        { "conntrack-gre-default", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\n# gre_timeout defaults\n" },
        { "conntrack-timestamp", "net.netfilter.nf_conntrack_timestamp = 1\nnet.netfilter.nf_conntrack_acct = 1\n" },
    };

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void A_sysctl_changes_the_path_as_in_the_kernel(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "sysctl-" + name);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        BuildScenario(scn, sysctls);
        Traffic(sysctls.Contains("gre_timeout", StringComparison.Ordinal)).Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel);
        ScenarioReplay.Run(scn, capture, "r", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
    }
}
