using System.CommandLine;
using Softnet.Netfilter;

namespace Softnet.Cli;

/// <summary>`softnet rules kube-proxy`: a kube-proxy (iptables mode) ruleset of N services in iptables-save form, for a
/// scenario's ns/NAME/iptables.save or for iptables-restore.</summary>
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
        return new Command("rules", "Generate rulesets real hosts run") { kube };
    }
}
