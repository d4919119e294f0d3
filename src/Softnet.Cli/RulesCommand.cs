using System.CommandLine;
using Softnet.Netfilter;

namespace Softnet.Cli;

/// <summary>`softnet rules kube-proxy`: a kube-proxy (iptables mode) ruleset of N services in iptables-save form, for a
/// scenario's ns/NAME/iptables.save or for iptables-restore. `softnet rules check`: loads a ruleset as a scenario
/// would (iptables-restore --test), and says which runs of rules it evaluates by lookup.</summary>
public static class RulesCommand
{
    public static Command Create()
    {
        var services = new Option<int>("--services") { Description = "Services (ClusterIPs) to generate", DefaultValueFactory = _ => 100 };
        var seed = new Option<int>("--seed") { Description = "Seed for endpoint counts and chain names; same seed, same text", DefaultValueFactory = _ => 1 };
        var nodePortEvery = new Option<int>("--node-port-every") { Description = "Every n-th service also gets a NodePort (0: none)", DefaultValueFactory = _ => 10 };
        var udpEvery = new Option<int>("--udp-every") { Description = "Every n-th service is UDP port 53 (0: none)", DefaultValueFactory = _ => 10 };
        var noEndpointsEvery = new Option<int>("--no-endpoints-every") { Description = "Every n-th service has no endpoints: REJECT (0: none)", DefaultValueFactory = _ => 50 };
        var maxEndpoints = new Option<int>("--max-endpoints") { Description = "Most endpoints per service", DefaultValueFactory = _ => 3 };
        var output = new Option<string?>("--out", "-o") { Description = "Write the ruleset here instead of standard output" };

        var kube = new Command("kube-proxy", "Generate a kube-proxy iptables-mode ruleset (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, NodePorts, masquerade)");
        foreach (Option o in new Option[] { services, seed, nodePortEvery, udpEvery, noEndpointsEvery, maxEndpoints, output })
            kube.Options.Add(o);
        kube.SetAction(parseResult =>
        {
            KubeProxyRuleset rules;
            try
            {
                rules = KubeProxyRules.Generate(new KubeProxyOptions
                {
                    Services = parseResult.GetValue(services),
                    Seed = parseResult.GetValue(seed),
                    NodePortEvery = parseResult.GetValue(nodePortEvery),
                    UdpEvery = parseResult.GetValue(udpEvery),
                    NoEndpointsEvery = parseResult.GetValue(noEndpointsEvery),
                    MaxEndpoints = parseResult.GetValue(maxEndpoints),
                });
            }
            catch (ArgumentException e)
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"softnet rules kube-proxy: {e.Message}");
                return 2;
            }
            if (parseResult.GetValue(output) is { } path)
            {
                File.WriteAllText(path, rules.Text);
                parseResult.InvocationConfiguration.Output.WriteLine($"{path}: {rules.Services.Count} service ports, {rules.RuleCount} rules");
            }
            else parseResult.InvocationConfiguration.Output.Write(rules.Text);
            return 0;
        });
        return new Command("rules", "Generate rulesets real hosts run, and check rulesets") { kube, Check() };
    }

    private static Command Check()
    {
        var file = new Argument<string>("file") { Description = "an iptables-save file (what a scenario's ns/NAME/iptables.save holds)" };
        var ipset = new Option<string?>("--ipset") { Description = "an `ipset save` file with the sets -m set rules name (a scenario's ns/NAME/ipset.save)" };
        var ipv6 = new Option<bool>("-6", "--ipv6") { Description = "an ip6tables-save file (a scenario's ns/NAME/ip6tables.save), loaded as ip6tables-restore --test does" };
        var cmd = new Command("check", "Load a ruleset as a scenario does (iptables-restore --test): errors as FILE:LINE, then per table " +
            "its chains and rules, and the runs of rules evaluated by one lookup instead of one by one") { file, ipset, ipv6 };
        cmd.SetAction(parseResult =>
        {
            var o = parseResult.InvocationConfiguration.Output;
            string path = parseResult.GetValue(file)!;
            NetfilterTables t;
            try
            {
                var into = parseResult.GetValue(ipv6) ? NetfilterTables.CreateIpv6() : new NetfilterTables();
                if (parseResult.GetValue(ipset) is { } sets) into.Ipsets.LoadFile(sets);
                t = IptablesSaveParser.ParseFile(path, into);
            }
            catch (IptablesParseException e)
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"softnet rules check: {e.Message}");
                return 2;
            }
            catch (IOException e)
            {
                parseResult.InvocationConfiguration.Error.WriteLine($"softnet rules check: {e.Message}");
                return 2;
            }
            foreach (var table in t.Tables)
            {
                int rules = table.Chains.Sum(c => c.Rules.Count);
                o.WriteLine($"{table.Name}: {table.Chains.Count} chains, {rules} rules");
                foreach (var c in table.Chains)
                    foreach (var run in c.IndexedRuns)
                        o.WriteLine($"  {c.Name}: rules {run.Start + 1}-{run.End} looked up by {run.KeyCount} keys");
            }
            return 0;
        });
        return cmd;
    }
}
