using Softnet.Netfilter;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

public class EvaluationTests
{
    private const string Chains = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :A - [0:0]
        :B - [0:0]
        -A INPUT -j A
        -A INPUT -p udp -g B
        -A INPUT -s 10.0.0.9/32 -j ACCEPT
        -A A -p tcp -m tcp --dport 22 -j ACCEPT
        -A A -p tcp -j RETURN
        -A A -j LOG --log-prefix "A: "
        -A B -p udp -m udp --dport 53 -j ACCEPT
        COMMIT
        """;

    private static Verdict Run(NetfilterTables t, byte[] pkt, HookPoint hook = HookPoint.LocalIn)
    {
        var ctx = Ctx(pkt);
        return t.Evaluate(t[TableKind.Filter]!, hook, ref ctx);
    }

    [Fact]
    public void Jump_return_goto_and_policy_follow_xt_do_table()
    {
        var t = IptablesSaveParser.Parse(Chains);
        var input = t[TableKind.Filter]!.GetChain("INPUT")!;
        var a = t[TableKind.Filter]!.GetChain("A")!;
        var b = t[TableKind.Filter]!.GetChain("B")!;

        var ssh = Tcp("10.0.0.1", 5000, "10.0.0.2", 22, 0x02);
        Assert.Equal(Verdict.Accept, Run(t, ssh));
        Assert.Equal(1, input.Rules[0].Packets);
        Assert.Equal(ssh.Length, input.Rules[0].Bytes);
        Assert.Equal(1, a.Rules[0].Packets);

        // RETURN from A resumes INPUT after the jump; rule 3 accepts the source.
        Assert.Equal(Verdict.Accept, Run(t, Tcp("10.0.0.9", 5000, "10.0.0.2", 80, 0x02)));
        Assert.Equal(1, a.Rules[1].Packets);
        Assert.Equal(1, input.Rules[2].Packets);

        // The end of A returns implicitly; goto B; B accepts DNS.
        Assert.Equal(Verdict.Accept, Run(t, Udp("10.0.0.1", 5000, "10.0.0.2", 53)));
        Assert.Equal(1, a.Rules[2].Packets);
        Assert.Equal(1, t.LogCount);
        Assert.Equal(1, b.Rules[0].Packets);

        // Falling off B (entered by goto from the base chain) ends in INPUT's policy, counted there.
        var other = Udp("10.0.0.1", 5000, "10.0.0.2", 54);
        Assert.Equal(Verdict.Drop, Run(t, other));
        Assert.Equal(1, input.PolicyPackets);
        Assert.Equal(other.Length, input.PolicyBytes);
        Assert.Equal(0, input.Rules[2].Packets - 1); // rule 3 not reached after the goto
    }

    [Fact]
    public void Return_in_base_chain_applies_policy()
    {
        var t = IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -j RETURN\n-A INPUT -j ACCEPT\nCOMMIT\n");
        Assert.Equal(Verdict.Drop, Run(t, Udp("1.1.1.1", 1, "2.2.2.2", 2)));
        Assert.Equal(1, t[TableKind.Filter]!.GetChain("INPUT")!.PolicyPackets);
    }

    private static bool Hits(string spec, PacketContext ctx, NetfilterTables? host = null)
    {
        var t = IptablesSaveParser.Parse($"*filter\n:FORWARD DROP [0:0]\n-A FORWARD {spec} -j ACCEPT\nCOMMIT\n");
        if (host != null) t.Host = host.Host;
        return t.Evaluate(t[TableKind.Filter]!, HookPoint.Forward, ref ctx) == Verdict.Accept;
    }

    [Theory]
    [InlineData("-s 10.0.0.0/8", true)]
    [InlineData("! -s 10.0.0.0/8", false)]
    [InlineData("-d 192.168.1.0/24", true)]
    [InlineData("-d 192.168.2.0/24", false)]
    [InlineData("-i eth+", true)]
    [InlineData("-i eth1", false)]
    [InlineData("! -i docker0 -o docker0", true)]
    [InlineData("-o docker0 ! -i eth0", false)]
    [InlineData("-p tcp", true)]
    [InlineData("! -p tcp", false)]
    [InlineData("-p 6", true)]
    [InlineData("-p udp", false)]
    [InlineData("-f", false)]
    [InlineData("! -f", true)]
    [InlineData("-p tcp --dport 80", true)]
    [InlineData("-p tcp --dport 1:79", false)]
    [InlineData("-p tcp ! --dport 81:90", true)]
    [InlineData("-p tcp --sport 40000:50000", true)]
    [InlineData("-p tcp --syn", true)]
    [InlineData("-p tcp ! --syn", false)]
    [InlineData("-p tcp --tcp-flags SYN,ACK SYN", true)]
    [InlineData("-p tcp --tcp-flags ALL NONE", false)]
    [InlineData("-p tcp -m multiport --dports 22,80,443", true)]
    [InlineData("-p tcp -m multiport --dports 1000:2000", false)]
    [InlineData("-p tcp -m multiport --ports 41000", true)]
    [InlineData("-p tcp -m multiport ! --sports 41000", false)]
    [InlineData("-m comment --comment \"hello world\"", true)]
    [InlineData("-m mark --mark 0x4000/0x4000", true)]
    [InlineData("-m mark ! --mark 0x4000/0x4000", false)]
    [InlineData("-m mark --mark 0x4001", true)]
    [InlineData("-m conntrack --ctstate NEW", false)]
    [InlineData("-m conntrack --ctstate INVALID", true)]
    [InlineData("-m state --state INVALID", true)]
    [InlineData("-m addrtype --dst-type LOCAL", true)]
    [InlineData("-m addrtype --src-type LOCAL", false)]
    [InlineData("-m addrtype ! --src-type LOCAL", true)]
    public void Matches_on_a_tcp_syn(string spec, bool expected)
    {
        var ctx = Ctx(Tcp("10.1.2.3", 41000, "192.168.1.10", 80, 0x02), inIf: "eth0", outIf: "docker0");
        ctx.Mark = 0x4001;
        var host = new NetfilterTables { Host = new SimpleHost().Add("eth0", "192.168.1.10/24") };
        Assert.Equal(expected, Hits(spec, ctx, host));
    }

    [Theory]
    [InlineData("-p icmp --icmp-type echo-request", true)]
    [InlineData("-p icmp --icmp-type 8", true)]
    [InlineData("-p icmp --icmp-type 3/3", false)]
    [InlineData("-p icmp ! --icmp-type 0", true)]
    [InlineData("-p icmp --icmp-type any", true)]
    public void Icmp_type_match(string spec, bool expected)
        => Assert.Equal(expected, Hits(spec, Ctx(Icmp("10.0.0.1", "10.0.0.2", 8, 0, 7))));

    [Fact]
    public void Fragments_skip_port_matches()
    {
        var ctx = Ctx(Udp("10.0.0.1", 1, "10.0.0.2", 53));
        ctx.IsFragment = true;
        Assert.False(Hits("-p udp --dport 53", ctx));
        Assert.True(Hits("-f", ctx));
    }

    [Fact]
    public void Conntrack_states_from_the_context()
    {
        var ctx = Ctx(Udp("10.0.0.1", 1, "10.0.0.2", 53));
        ctx.CtInfo = CtInfo.EstablishedReply;
        ctx.Ct = new Softnet.Netfilter.Conntrack.Connection();
        Assert.True(Hits("-m conntrack --ctstate RELATED,ESTABLISHED", ctx));
        Assert.True(Hits("-m conntrack --ctdir REPLY", ctx));
        Assert.False(Hits("-m conntrack --ctdir ORIGINAL", ctx));
        ctx.CtInfo = CtInfo.Untracked;
        ctx.Ct = null;
        Assert.True(Hits("-m state --state UNTRACKED", ctx));
    }

    [Fact]
    public void Statistic_nth_matches_every_nth_packet()
    {
        var t = IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -m statistic --mode nth --every 3 --packet 1 -j ACCEPT\nCOMMIT\n");
        var got = Enumerable.Range(0, 7).Select(_ => Run(t, Udp("1.1.1.1", 1, "2.2.2.2", 2)) == Verdict.Accept).ToArray();
        Assert.Equal(new[] { false, true, false, false, true, false, false }, got);
    }

    [Fact]
    public void Statistic_random_is_seedable_and_near_its_probability()
    {
        int Count(ulong seed)
        {
            var t = IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -m statistic --mode random --probability 0.25 -j ACCEPT\nCOMMIT\n");
            t.Seed(seed);
            return Enumerable.Range(0, 4000).Count(_ => Run(t, Udp("1.1.1.1", 1, "2.2.2.2", 2)) == Verdict.Accept);
        }
        int a = Count(42), b = Count(42);
        Assert.Equal(a, b);
        Assert.InRange(a, 850, 1150);
    }

    [Fact]
    public void Mark_targets_then_mark_match()
    {
        var t = IptablesSaveParser.Parse("""
            *mangle
            :PREROUTING ACCEPT [0:0]
            -A PREROUTING -j MARK --set-mark 0x10
            -A PREROUTING -j MARK --or-mark 0x4000
            -A PREROUTING -m mark --mark 0x4010 -j MARK --and-mark 0x4000
            COMMIT
            """);
        var ctx = Ctx(Udp("1.1.1.1", 1, "2.2.2.2", 2));
        ctx.Mark = 0xFF00;
        t.Evaluate(t[TableKind.Mangle]!, HookPoint.PreRouting, ref ctx);
        Assert.Equal(0x4000u, ctx.Mark);
    }

    [Fact]
    public void Reject_drops_and_records_the_answer()
    {
        var t = IptablesSaveParser.Parse("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n");
        var ctx = Ctx(Tcp("1.1.1.1", 1, "2.2.2.2", 2, 0x02));
        Assert.Equal(Verdict.Drop, t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref ctx));
        Assert.Equal(RejectWith.TcpReset, ctx.Reject);
    }

    [Fact]
    public void Docker_isolation_drops_bridge_to_bridge_via_stage_two()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("docker-host.rules"));
        // Container to outside: accepted by "-i docker0 ! -o docker0".
        var ctx = Ctx(Tcp("172.17.0.2", 40000, "8.8.8.8", 443, 0x02), inIf: "docker0", outIf: "eth0");
        Assert.Equal(Verdict.Accept, t.Evaluate(t[TableKind.Filter]!, HookPoint.Forward, ref ctx));
        // Outside to a container port not published: DOCKER chain returns, FORWARD policy DROP.
        ctx = Ctx(Tcp("8.8.8.8", 40000, "172.17.0.2", 22, 0x02), inIf: "eth0", outIf: "docker0");
        Assert.Equal(Verdict.Drop, t.Evaluate(t[TableKind.Filter]!, HookPoint.Forward, ref ctx));
        Assert.Equal(1, t[TableKind.Filter]!.GetChain("FORWARD")!.PolicyPackets);
    }
}
