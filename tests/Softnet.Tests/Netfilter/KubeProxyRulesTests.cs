using Softnet.Netfilter;
using Softnet.Tests.Support;
using Xunit;
using Softnet.Packets;

namespace Softnet.Tests.Netfilter;

public class KubeProxyRulesTests
{
    [Fact]
    public void Generated_ruleset_has_kube_proxy_chain_layout()
    {
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = 100, Seed = 3 });
        Assert.Equal(100, k.Services.Count);
        Assert.Equal(100, k.Services.Select(s => s.ClusterIp).Distinct().Count());
        var (net, len) = Ipv4.ParseCidr(KubeProxyRuleset.ServiceCidr);
        Assert.All(k.Services, s => Assert.Equal(net, s.ClusterIp & Ipv4.Mask(len)));
        Assert.All(k.Services.Where(s => s.Endpoints.Count > 0), s => Assert.InRange(s.Endpoints.Count, 1, 3));
        Assert.Contains(k.Services, s => s.Endpoints.Count == 3);
        Assert.Contains(k.Services, s => s.Endpoints.Count == 0);
        Assert.Contains(k.Services, s => s.NodePort != 0);

        var t = IptablesSaveParser.Parse(k.Text, "kube-100");
        var nat = t[TableKind.Nat]!;
        int withEndpoints = k.Services.Count(s => s.Endpoints.Count > 0);
        Assert.Equal(withEndpoints + 1, nat.GetChain("KUBE-SERVICES")!.Rules.Count);
        Assert.Equal(k.Services.Sum(s => s.Endpoints.Count), nat.Chains.Count(c => c.Name.StartsWith("KUBE-SEP-", StringComparison.Ordinal)));
        var three = k.Services.First(s => s.Endpoints.Count == 3);
        var svc = nat.GetChain(three.SvcChain)!;
        Assert.Equal(4, svc.Rules.Count);
        Assert.Contains("--probability 0.33333333349", svc.Rules[1].Render());
        Assert.Contains("--probability 0.50000000000", svc.Rules[2].Render());
        Assert.DoesNotContain("statistic", svc.Rules[3].Render());
        Assert.Equal(k.Services.Count(s => s.Endpoints.Count == 0), t[TableKind.Filter]!.GetChain("KUBE-SERVICES")!.Rules.Count);
        Assert.Equal(k.RuleCount, t.Tables.Sum(x => x.Chains.Sum(c => c.Rules.Count)));
    }

    [SkippableFact]
    public void Kernel_iptables_restore_loads_the_generated_ruleset()
    {
        Skip.IfNot(Environment.UserName == "root" && ExternalTool.Exists("ip") && ExternalTool.Exists("iptables-restore") && ExternalTool.Exists("iptables-save"),
            "needs root, ip(8) and iptables-restore/iptables-save for a throwaway network namespace");
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = 1000 });
        var path = Path.GetTempFileName();
        File.WriteAllText(path, k.Text);
        string ns = "softnet-kpr-" + Environment.ProcessId;
        try
        {
            Assert.Equal(0, ExternalTool.Run("ip", "netns", "add", ns).Exit);
            var restore = ExternalTool.Run("ip", "netns", "exec", ns, "iptables-restore", path);
            Assert.True(restore.Exit == 0, "iptables-restore rejected the generated ruleset: " + restore.Stderr);
            var save = ExternalTool.Run("ip", "netns", "exec", ns, "iptables-save");
            Assert.Equal(0, save.Exit);
            // The kernel prints back exactly our rules (iptables-save syntax), table by table, order-free.
            var kernel = NetfilterTestData.Tables(save.Stdout);
            foreach (var (name, lines) in NetfilterTestData.Tables(k.Text))
                Assert.Equal(lines.Order(StringComparer.Ordinal), kernel[name].Order(StringComparer.Ordinal));
        }
        finally
        {
            ExternalTool.Run("ip", "netns", "del", ns);
            File.Delete(path);
        }
    }
}
