using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Netfilter;

/// <summary>The harness against the kernel alone: the scenarios load, the rules fire, conntrack and the captures
/// show what the rulesets say, and a second run gives the same dump (nothing flaps).</summary>
[Trait("Category", "Kernel")]
[Collection(KernelScenarioCollection.Name)]
public sealed class KernelScenarioSanityTests(KernelScenarioFixture fx)
{
    [SkippableFact]
    public void Dump_layout()
    {
        string dir = fx.Kernel("docker-host");
        foreach (var f in new[] { "host/iptables-save.txt", "host/conntrack.txt", "host/eth0.rx.pcap", "host/eth0.tx.pcap",
                     "host/docker0.rx.pcap", "host/vethc1.tx.pcap", "c1/eth0.rx.pcap", "outside/wire0.tx.pcap", "c1/iptables-save.txt" })
            Assert.True(File.Exists(Path.Combine(dir, f)), $"{f} missing in {dir}");
        Assert.False(File.Exists(Path.Combine(dir, "host/lo.rx.pcap")), "loopback is not captured");
    }

    private static (string Text, Dictionary<string, ScenarioCompare.SavedTable> Tables) Save(string dir, string ns)
    {
        string t = File.ReadAllText(Path.Combine(dir, ns, "iptables-save.txt"));
        return (t, ScenarioCompare.ParseSave(t));
    }

    private static string Rule(Dictionary<string, ScenarioCompare.SavedTable> tables, string table, string chain, string contains)
        => tables[table].Rules[chain].Select(r => r.Rule).Single(r => r.Contains(contains));

    private static string Chain(Dictionary<string, ScenarioCompare.SavedTable> tables, string table, string chain)
        => tables[table].Chains[chain].Header;

    [SkippableFact]
    public void Docker_host_published_port_dnat_counts_new_connections()
    {
        string dir = fx.Kernel("docker-host");
        var (text, t) = Save(dir, "host");
        // SYN 40000, SYN 40001 and the picked-up ACK 40002 are NEW; the bad-checksum SYN is INVALID (no nat table).
        Assert.True(Rule(t, "nat", "DOCKER", "--dport 8080").StartsWith("[3:120] "), text);
        Assert.True(Rule(t, "filter", "DOCKER", "--dport 80").StartsWith("[3:120] "), text);
        Assert.True(Rule(t, "raw", "PREROUTING", "-d 172.17.0.2/32").StartsWith("[1:40] "), text);
        // c1's UDP, echo, UDP and SYN out are NEW and masqueraded.
        Assert.True(Rule(t, "nat", "POSTROUTING", "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE").StartsWith("[4:"), text);
    }

    [SkippableFact]
    public void Docker_host_conntrack_shows_the_dnat_entry()
    {
        string dir = fx.Kernel("docker-host");
        var ct = ScenarioCompare.ConntrackEntries(File.ReadAllText(Path.Combine(dir, "host", "conntrack.txt")));
        string all = string.Join('\n', ct);
        Assert.Contains("tcp 6 T TIME_WAIT src=192.0.2.100 dst=192.0.2.10 sport=40000 dport=8080 src=172.17.0.2 dst=192.0.2.100 sport=80 dport=40000 [ASSURED] mark=0", ct);
        // A RST answering the SYN kills the unassured connection at once (no CLOSE entry left).
        Assert.DoesNotContain(ct, l => l.Contains("sport=40001"));
        Assert.Contains(ct, l => l.StartsWith("tcp 6 T SYN_RECV src=172.17.0.2 dst=192.0.2.100 sport=33000 dport=443 src=192.0.2.100 dst=192.0.2.10 sport=443 dport=33000", StringComparison.Ordinal));
        Assert.Contains(ct, l => l.StartsWith("tcp 6 T ESTABLISHED src=192.0.2.100 dst=192.0.2.10 sport=40002 dport=8080 [UNREPLIED] src=172.17.0.2", StringComparison.Ordinal));
        Assert.Contains(ct, l => l.StartsWith("udp 17 T src=172.17.0.2 dst=8.8.8.8 sport=5353 dport=53 src=8.8.8.8 dst=192.0.2.10 sport=53 dport=5353", StringComparison.Ordinal));
        Assert.DoesNotContain(ct, l => l.Contains("sport=40003") || l.Contains("sport=40004"));
        Assert.Empty(ScenarioCompare.ConntrackEntries(File.ReadAllText(Path.Combine(dir, "c1", "conntrack.txt"))));
        // The host answered its pings (the reply is the entry's reply direction); the broadcast ping was not answered.
        Assert.Contains("icmp 1 T src=192.0.2.100 dst=192.0.2.10 type=8 code=0 id=501 src=192.0.2.10 dst=192.0.2.100 type=0 code=0 id=501 mark=0", ct);
        Assert.Contains(ct, l => l.StartsWith("icmp 1 T src=192.0.2.100 dst=192.0.2.255 type=8 code=0 id=502 [UNREPLIED]", StringComparison.Ordinal));
        // The fragmented pings (id 601) were gathered before conntrack: one entry, as for whole ones.
        Assert.Contains("icmp 1 T src=192.0.2.100 dst=192.0.2.10 type=8 code=0 id=601 src=192.0.2.10 dst=192.0.2.100 type=0 code=0 id=601 mark=0", ct);
        Assert.True(ct.Count == 9, all);
        var tx = ScenarioCompare.ReadFrames(Path.Combine(dir, "host", "eth0.tx.pcap"));
        var replies = tx.Where(f => f.Length > 40 && f[23] == 1 && f[34] == 0 && (f[38] << 8 | f[39]) == 501).ToList();
        Assert.Equal(2, replies.Count);
        // Four of the six fragmented requests were answered, each reply cut at eth0's MTU (1500 + the rest); the one whose
        // rest never came was answered with ICMP 11/1 once ipfrag_time (1 s) passed.
        Assert.Equal(4, tx.Count(f => f.Length == 1514 && f[23] == 1 && f[34] == 0 && (f[38] << 8 | f[39]) == 601));
        Assert.Single(tx, f => f.Length > 35 && f[23] == 1 && f[34] == 11 && f[35] == 1);
        Assert.Equal(new byte[] { 0x00, 0x2a }, replies.Select(f => f[15]).ToArray());
        Assert.All(replies, f => Assert.Equal(0, f[20] & 0x40));
    }

    [SkippableFact]
    public void Docker_host_container_sees_the_syn_rewritten_to_port_80()
    {
        string dir = fx.Kernel("docker-host");
        var tx = ScenarioCompare.ReadFrames(Path.Combine(dir, "host", "vethc1.tx.pcap"));
        Assert.NotEmpty(tx);
        Assert.StartsWith("TCP 192.0.2.100:40000 > 172.17.0.2:80 [S] seq 1000 ack 0 ttl 63", ScenarioCompare.Describe(tx[0]));
        Assert.Equal(Frames.Mac("02:42:ac:11:00:02"), tx[0][..6]);
        Assert.Equal(Frames.Mac("02:42:ac:11:00:01"), tx[0][6..12]);
        var rx = ScenarioCompare.ReadFrames(Path.Combine(dir, "c1", "eth0.rx.pcap"));
        Assert.Equal(tx.Count, rx.Count);
        // What c1 sends is what the host's veth end receives, and the container itself stays silent.
        Assert.Equal(ScenarioCompare.ReadFrames(Path.Combine(dir, "c1", "eth0.tx.pcap")).Count,
            ScenarioTraffic.DockerHost().FrameList.Count(f => f.If == 1));
        // The masqueraded SYN leaves eth0 from the host's address.
        var out0 = ScenarioCompare.ReadFrames(Path.Combine(dir, "host", "eth0.tx.pcap")).Select(ScenarioCompare.Describe).ToList();
        Assert.Contains(out0, d => d.StartsWith("TCP 192.0.2.10:33000 > 192.0.2.100:443 [S]", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void Router_fw_reject_answers_on_the_lan_wire()
    {
        string dir = fx.Kernel("router-fw");
        var lanTx = ScenarioCompare.ReadFrames(Path.Combine(dir, "fw", "lan0.tx.pcap"));
        var d = lanTx.Select(ScenarioCompare.Describe).ToList();
        string all = string.Join('\n', d);
        Assert.Contains(d, x => x.StartsWith("TCP 203.0.113.5:23 > 10.0.0.2:50001 [RA] seq 0 ack 201", StringComparison.Ordinal));
        Assert.Contains(d, x => x.StartsWith("ICMP 10.0.0.1 > 10.0.0.2 type 3 code 3", StringComparison.Ordinal));
        Assert.Contains(d, x => x.StartsWith("TCP 10.0.0.1:22 > 10.0.0.2:50008 [RA]", StringComparison.Ordinal));
        // The RST is built with ID 0 (stable); the ICMP error's ID comes from a randomly keyed hash.
        var rst = lanTx[d.FindIndex(x => x.Contains(":23 > "))];
        Assert.Equal(0, rst[18] << 8 | rst[19]);
        var (text, t) = Save(dir, "fw");
        Assert.True(Rule(t, "filter", "LAN-OUT", "--dport 23").StartsWith("[1:40] "), text);
        // One whole TFTP datagram and one reassembled from two fragments (counted once, with its whole length).
        Assert.True(Rule(t, "filter", "LAN-OUT", "--dport 69").StartsWith("[2:1888] "), text);
        Assert.True(Rule(t, "filter", "FORWARD", "INVALID -j DROP").StartsWith("[2:80] "), text);
        Assert.True(Rule(t, "filter", "INPUT", "--dport 22").StartsWith("[1:40] "), text);
        Assert.StartsWith(":INPUT DROP [1:40]", Chain(t, "filter", "INPUT"));
        var wanTx = ScenarioCompare.ReadFrames(Path.Combine(dir, "fw", "wan0.tx.pcap")).Select(ScenarioCompare.Describe).ToList();
        Assert.Contains(wanTx, x => x.StartsWith("TCP 198.51.100.1:50000 > 203.0.113.5:80 [S]", StringComparison.Ordinal));
        Assert.DoesNotContain(wanTx, x => x.Contains(":23 ") || x.Contains(":69 ") || x.Contains(":50005 "));
        // The SYN behind the TIME_WAIT connection's sequence never leaves; the one past it evicts that entry and
        // takes port 61000 (Linux 6.5+, nf_nat_used_tuple_harder).
        Assert.Single(wanTx, x => x.StartsWith("TCP 198.51.100.1:61000 > 203.0.113.5:443 [S] seq 2000", StringComparison.Ordinal));
        Assert.DoesNotContain(wanTx, x => x.StartsWith("TCP 198.51.100.1:61000 > 203.0.113.5:443 [S] seq 10 ", StringComparison.Ordinal));
        var ct = ScenarioCompare.ConntrackEntries(File.ReadAllText(Path.Combine(dir, "fw", "conntrack.txt")));
        Assert.DoesNotContain(ct, l => l.Contains("src=10.0.0.2 dst=203.0.113.5 sport=52000"));
        Assert.Contains(ct, l => l.Contains("src=10.0.0.3 dst=203.0.113.5 sport=52000 dport=443") && l.Contains("dport=61000"));
    }

    [SkippableFact]
    public void Kube_node_endpoints_take_new_connections_in_turn()
    {
        string dir = fx.Kernel("kube-node");
        var ct = ScenarioCompare.ConntrackEntries(File.ReadAllText(Path.Combine(dir, "node", "conntrack.txt")));
        string all = string.Join('\n', ct);
        string Endpoint(string sport) => ct.Single(l => l.Contains($"sport={sport} dport=30080")).Split(' ').First(x => x.StartsWith("src=10.244.", StringComparison.Ordinal));
        Assert.Equal("src=10.244.0.11", Endpoint("41000"));
        // 41001 went to pod2, whose RST removed the entry: its SYN is on pod2's veth.
        Assert.DoesNotContain(ct, l => l.Contains("sport=41001"));
        Assert.StartsWith("TCP 10.244.0.1:41001 > 10.244.0.12:8080 [S]",
            ScenarioCompare.ReadFrames(Path.Combine(dir, "node", "vethp2.tx.pcap")).Select(ScenarioCompare.Describe).Single(x => x.Contains(":41001 ")));
        Assert.Equal("src=10.244.0.13", Endpoint("41002"));
        Assert.Equal("src=10.244.0.11", Endpoint("41003"));
        // Masqueraded to cni0's address, port kept.
        Assert.Contains("dst=10.244.0.1 sport=8080 dport=41000", all);
        Assert.Contains(ct, l => l.StartsWith("udp 17 T src=10.244.0.13 dst=10.96.0.10 sport=33333 dport=53 src=10.244.0.11 dst=10.244.0.13 sport=53 dport=33333", StringComparison.Ordinal));
        Assert.Contains(ct, l => l.StartsWith("udp 17 T src=10.244.0.13 dst=10.96.0.10 sport=33334 dport=53 [UNREPLIED] src=10.244.0.12", StringComparison.Ordinal));
        var (text, t) = Save(dir, "node");
        Assert.True(Rule(t, "nat", "KUBE-MARK-MASQ", "MARK").StartsWith("[4:160] "), text);
        Assert.True(Rule(t, "filter", "KUBE-SERVICES", "REJECT").StartsWith("[1:40] "), text);
        Assert.True(Rule(t, "filter", "KUBE-FORWARD", "INVALID").StartsWith("[1:40] "), text);
        // No ICMP redirect for pod3 -> ClusterIP -> pod1 on the same bridge (send_redirects=0).
        var cniTx = ScenarioCompare.ReadFrames(Path.Combine(dir, "node", "cni0.tx.pcap")).Select(ScenarioCompare.Describe).ToList();
        Assert.DoesNotContain(cniTx, x => x.Contains(" type 5 "));
    }

    [SkippableTheory]
    [InlineData("docker-host")]
    [InlineData("kube-node")]
    [InlineData("router-fw")]
    [InlineData("edge-fw")]
    public void A_second_kernel_run_gives_the_same_dump(string name)
    {
        string first = fx.Kernel(name);
        var (second, err) = fx.RunKernel(name, "kernel-again");
        Assert.True(err == null, err);
        ScenarioCompare.AssertSame(first, second!);
    }
}
