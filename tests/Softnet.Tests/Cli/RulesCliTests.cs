using System.CommandLine;
using Softnet.Cli;
using Softnet.Netfilter;
using Xunit;

namespace Softnet.Tests.Cli;

[Collection("console")]
public class RulesCliTests
{
    [Fact]
    public void Kube_proxy_ruleset_is_written_and_loads_back()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-rules-");
        try
        {
            string path = Path.Combine(dir.FullName, "iptables.save");
            int rc = new RootCommand { RulesCommand.Create() }.Parse(["rules", "kube-proxy", "--services", "20", "--out", path]).Invoke();
            Assert.Equal(0, rc);
            var tables = IptablesSaveParser.ParseFile(path);
            Assert.NotNull(tables[TableKind.Nat]!.GetChain("KUBE-SERVICES"));
            Assert.Contains(tables[TableKind.Nat]!.Chains, c => c.Name.StartsWith("KUBE-SEP-", StringComparison.Ordinal));
            Assert.Equal(2, new RootCommand { RulesCommand.Create() }.Parse(["rules", "kube-proxy", "--services", "-1"]).Invoke());
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
