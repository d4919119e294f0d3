using System.Globalization;
using System.Text;
using CsCheck;
using Softnet.Netfilter;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using Softnet.Packets;

namespace Softnet.Tests.Netfilter;

public class ChainCompilerTests
{
    private static readonly string[] Dsts = { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4" };
    private static readonly string[] Srcs = { "192.168.1.1", "192.168.2.1", "172.16.0.1" };
    private static readonly ushort[] Ports = { 53, 80, 443 };

    /// <summary>A random filter table: FORWARD plus user chains C1..C3 (jumps only go to higher-numbered chains,
    /// so there are no loops), rules drawn from indexable shapes and shapes that must stay linear.</summary>
    private static string RandomRuleset(Random r)
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n");
        sb.Append(":FORWARD ").Append(r.Next(2) == 0 ? "ACCEPT" : "DROP").Append(" [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        string[] chains = { "FORWARD", "C1", "C2", "C3" };
        for (int c = 1; c < chains.Length; c++) sb.Append(':').Append(chains[c]).Append(" - [0:0]\n");
        for (int c = 0; c < chains.Length; c++)
        {
            int n = r.Next(0, 14);
            for (int k = 0; k < n; k++)
            {
                sb.Append("-A ").Append(chains[c]).Append(' ').Append(RandomSpec(r));
                int t = r.Next(10);
                if (t == 0) sb.Append(" -j ACCEPT");
                else if (t == 1) sb.Append(" -j DROP");
                else if (t == 2) sb.Append(" -j RETURN");
                else if (t == 3) sb.Append(" -j MARK --set-xmark 0x").Append(r.Next(3).ToString("x", CultureInfo.InvariantCulture)).Append("/0xff");
                else if ((t is 4 or 5 or 6) && c < chains.Length - 1) sb.Append(t == 6 ? " -g " : " -j ").Append(chains[r.Next(c + 1, chains.Length)]);
                sb.Append('\n');
            }
        }
        sb.Append("COMMIT\n");
        return sb.ToString();
    }

    private static string RandomSpec(Random r)
    {
        string d = Dsts[r.Next(Dsts.Length)], port = Ports[r.Next(Ports.Length)].ToString(CultureInfo.InvariantCulture);
        string proto = r.Next(2) == 0 ? "tcp" : "udp";
        string spec = r.Next(12) switch
        {
            // Indexable: exact destination and/or exact protocol + port.
            0 or 1 or 2 => $"-d {d}/32 -p {proto} -m {proto} --dport {port}",
            3 => $"-d {d}/32",
            4 => $"-d {d}/32 -p {proto}",
            5 => $"-p {proto} -m {proto} --dport {port}",
            // Linear: ranges, inversions, prefixes, side effects, nothing.
            6 => $"-p {proto} -m {proto} --dport 50:100",
            7 => $"! -d {d}/32",
            8 => "-d 10.0.0.0/30",
            9 => r.Next(2) == 0 ? "-m statistic --mode nth --every 3 --packet 0" : "-m statistic --mode random --probability 0.5",
            10 => $"-d {d}/32 -p {proto} -m {proto} ! --dport {port}",
            _ => "",
        };
        // Residual conditions an indexed candidate must still pass.
        switch (r.Next(6))
        {
            case 0: spec += $" -s {Srcs[r.Next(Srcs.Length)]}/24"; break;
            case 1: spec += $" -m mark --mark 0x{r.Next(3):x}/0xff"; break;
            case 2: spec += " -m comment --comment \"svc\""; break;
        }
        return spec.Trim();
    }

    private static byte[] RandomPacket(Random r)
    {
        string src = Srcs[r.Next(Srcs.Length)];
        string dst = r.Next(6) == 0 ? "10.9.9.9" : Dsts[r.Next(Dsts.Length)];
        ushort sport = (ushort)r.Next(1024, 1100), dport = r.Next(5) == 0 ? (ushort)r.Next(1, 200) : Ports[r.Next(Ports.Length)];
        return r.Next(2) == 0 ? Tcp(src, sport, dst, dport, 0x02) : Udp(src, sport, dst, dport);
    }

    private static (List<(Verdict, uint)> Verdicts, List<long> Counters) Walk(string text, int minRun, int seed)
    {
        var t = IptablesSaveParser.Parse(text);
        var filter = t[TableKind.Filter]!;
        if (minRun > 0) ChainCompiler.Compile(filter, minRun); else ChainCompiler.Clear(filter);
        var r = new Random(seed);
        var verdicts = new List<(Verdict, uint)>();
        for (int i = 0; i < 60; i++)
        {
            var ctx = Ctx(RandomPacket(r));
            ctx.Mark = (uint)r.Next(3);
            verdicts.Add((t.Evaluate(filter, HookPoint.Forward, ref ctx), ctx.Mark));
        }
        var counters = new List<long>();
        foreach (var c in filter.Chains)
        {
            counters.Add(c.PolicyPackets);
            foreach (var rule in c.Rules) { counters.Add(rule.Packets); counters.Add(rule.Bytes); }
        }
        return (verdicts, counters);
    }

    [Fact]
    public void Compiled_chains_give_the_linear_walks_verdicts_marks_and_counters()
    {
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            string text = RandomRuleset(r);
            var linear = Walk(text, 0, seed);
            foreach (int minRun in new[] { 1, 2, 4 })
            {
                var compiled = Walk(text, minRun, seed);
                Assert.Equal(linear.Verdicts, compiled.Verdicts);
                Assert.Equal(linear.Counters, compiled.Counters);
            }
        }, iter: 400);
    }

    [Fact]
    public void Compiler_indexes_kube_services_but_not_statistic_or_addrtype_rules()
    {
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = 200 });
        var t = IptablesSaveParser.Parse(k.Text);
        var nat = t[TableKind.Nat]!;
        var services = nat.GetChain("KUBE-SERVICES")!;
        // All cluster-IP rules form one run; the trailing addrtype rule stays linear.
        var run = Assert.Single(services.IndexedRuns);
        Assert.Equal(0, run.Start);
        Assert.Equal(services.Rules.Count - 1, run.End);
        Assert.Equal(run.End, run.KeyCount);
        var nodePorts = Assert.Single(nat.GetChain("KUBE-NODEPORTS")!.IndexedRuns);
        Assert.Equal(20, nodePorts.End);
        foreach (var c in nat.Chains.Where(c => c.Name.StartsWith("KUBE-SVC-", StringComparison.Ordinal)))
            Assert.Empty(c.IndexedRuns);
    }

    [Fact]
    public void Kube_proxy_10000_services_visit_few_rules_per_packet_with_the_same_nat_result()
    {
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = 10_000 });
        var compiled = IptablesSaveParser.Parse(k.Text);
        var linear = IptablesSaveParser.Parse(k.Text);
        foreach (var table in linear.Tables) ChainCompiler.Clear(table);
        var r = new Random(7);
        const int Packets = 300;
        long compiledVisits = 0, linearVisits = 0;
        for (int i = 0; i < Packets; i++)
        {
            var s = k.Services[r.Next(k.Services.Count)];
            string client = $"10.244.{128 + r.Next(100)}.{1 + r.Next(250)}";
            byte[] pkt = s.Protocol == 6
                ? Tcp(client, (ushort)(20000 + i), Ipv4.Format(s.ClusterIp), s.Port, 0x02)
                : Udp(client, (ushort)(20000 + i), Ipv4.Format(s.ClusterIp), s.Port);
            var a = (byte[])pkt.Clone();
            var ca = Ctx(a, inIf: "cni0");
            var cb = Ctx(pkt, inIf: "cni0");
            long va = compiled.RulesVisited, vb = linear.RulesVisited;
            var verdictA = compiled.Hook(HookPoint.PreRouting, ref ca, a);
            var verdictB = linear.Hook(HookPoint.PreRouting, ref cb, pkt);
            compiledVisits += compiled.RulesVisited - va;
            linearVisits += linear.RulesVisited - vb;
            Assert.Equal(verdictB, verdictA);
            Assert.Equal(cb.Dst, ca.Dst);
            Assert.Equal(cb.DstPort, ca.DstPort);
            Assert.Equal(pkt, a);
            if (s.Endpoints.Count > 0) Assert.Contains((ca.Dst, ca.DstPort), s.Endpoints);
        }
        // KUBE-SERVICES lookup + KUBE-SVC (<= 4 rules) + KUBE-SEP (2) + KUBE-MARK-MASQ; linear walks ~half of 10,000.
        Assert.True(compiledVisits <= Packets * 12, $"compiled: {compiledVisits / (double)Packets:F1} rules/packet");
        Assert.True(linearVisits >= Packets * 1000, $"linear: {linearVisits / (double)Packets:F1} rules/packet");
    }
}
