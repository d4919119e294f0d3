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

    [Fact]
    public void Check_loads_a_ruleset_and_names_its_lookups_or_the_bad_line()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-rules-");
        try
        {
            string path = Path.Combine(dir.FullName, "iptables.save");
            Assert.Equal(0, new RootCommand { RulesCommand.Create() }.Parse(["rules", "kube-proxy", "--services", "20", "--out", path]).Invoke());
            var output = new StringWriter();
            var config = new InvocationConfiguration { Output = output, Error = new StringWriter() };
            Assert.Equal(0, new RootCommand { RulesCommand.Create() }.Parse(["rules", "check", path]).Invoke(config));
            string text = output.ToString();
            Assert.Matches(@"(?m)^nat: \d+ chains, \d+ rules$", text);
            // KUBE-SERVICES' ClusterIP rules are one lookup.
            Assert.Matches(@"(?m)^  KUBE-SERVICES: rules 1-\d+ looked up by \d+ keys$", text);

            File.WriteAllText(path, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m nosuchmatch -j ACCEPT\nCOMMIT\n");
            var error = new StringWriter();
            config = new InvocationConfiguration { Output = new StringWriter(), Error = error };
            Assert.Equal(2, new RootCommand { RulesCommand.Create() }.Parse(["rules", "check", path]).Invoke(config));
            Assert.Contains($"{path}:3:", error.ToString());
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [Fact]
    public void Check_with_ipv6_loads_an_ip6tables_save_file()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-rules-");
        try
        {
            string path = Path.Combine(dir.FullName, "ip6tables.save");
            File.WriteAllText(path, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -s 2001:db8::/32 -p icmpv6 --icmpv6-type 128 -j ACCEPT\nCOMMIT\n");
            var output = new StringWriter();
            var config = new InvocationConfiguration { Output = output, Error = new StringWriter() };
            Assert.Equal(0, new RootCommand { RulesCommand.Create() }.Parse(["rules", "check", "-6", path]).Invoke(config));
            Assert.Contains("filter: 3 chains, 1 rules", output.ToString());
            // The same file as iptables: the address is not IPv4.
            var error = new StringWriter();
            config = new InvocationConfiguration { Output = new StringWriter(), Error = error };
            Assert.Equal(2, new RootCommand { RulesCommand.Create() }.Parse(["rules", "check", path]).Invoke(config));
            Assert.Contains($"{path}:3:", error.ToString());
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
