using Softnet.KernelTests.Netfilter;
using Softnet.KernelTests.Support;
using Softnet.Netfilter;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Telemetry;

/// <summary>
/// The kernel-comparison scenarios replayed with a trace of every packet (`softnet replay --scenario DIR --trace ""`):
/// the rules' story told by the trace equals the one iptables-save -c tells. For every rule of every namespace, the
/// traced packets that passed it are as many as its packet counter moved, and every chain policy likewise; a packet
/// counted by a rule appears at that rule in its trace, and no trace claims a rule the counters did not count.
/// These run Softnet only (no root): the kernel side is what ScenarioComparisonTests holds the counters to.
/// </summary>
public sealed class PacketTracerScenarioTests
{
    public static TheoryData<string> Scenarios() => new(KernelScenarioFixture.Names);

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Every_rule_counter_is_the_number_of_traced_packets_that_hit_it(string name)
    {
        string dir = KernelScenarioFixture.ScenarioDir(name);
        string capture = Path.Combine(Path.GetTempPath(), $"softnet-trace-{name}-{Environment.ProcessId}.pcapng");
        ScenarioTraffic.For(name).Write(capture);
        // The counters the iptables.save files start with (iptables-restore -c): the replay adds to them.
        var start = Counters(ScenarioLoader.Load(dir));
        var tracer = new PacketTracer(null);
        try
        {
            using var report = ScenarioReplay.Run(dir, capture, ScenarioTraffic.InjectNamespace(name), "",
                new ScenarioOptions { Replay = new ReplayOptions { Gro = null, Tracer = tracer } });
            // Kept beside the test assembly for reading (scenario-runs/NAME.trace.txt).
            Directory.CreateDirectory(KernelScenarioFixture.OutRoot);
            File.WriteAllText(Path.Combine(KernelScenarioFixture.OutRoot, name + ".trace.txt"), tracer.Format());
            Assert.Equal(report.Replay.PacketsIn, tracer.Journeys.Count(j => j.Origin.StartsWith("port", StringComparison.Ordinal)));

            var hits = new Dictionary<Rule, List<int>>(ReferenceEqualityComparer.Instance);
            var policies = new Dictionary<(string, string, string), long>();
            foreach (var e in tracer.Events)
            {
                if (e.Stage != TraceStage.Netfilter) continue;
                if (e.Rule is { } r) (hits.TryGetValue(r, out var l) ? l : hits[r] = new List<int>()).Add(e.Packet);
                else policies[(e.Namespace!, e.Table!, e.Chain!)] = policies.GetValueOrDefault((e.Namespace!, e.Table!, e.Chain!)) + 1;
            }
            int rulesHit = 0;
            foreach (var ns in report.Scenario.Namespaces)
            {
                foreach (var tables in new[] { ns.Netfilter, ns.Netfilter6 })
                {
                    if (tables is null) continue;
                    foreach (var table in tables.Tables)
                        foreach (var chain in table.Chains)
                        {
                            for (int i = 0; i < chain.Rules.Count; i++)
                            {
                                var rule = chain.Rules[i];
                                long counted = rule.Packets - start.GetValueOrDefault((ns.Name, table.Family, table.Name, chain.Name, i));
                                var traced = hits.GetValueOrDefault(rule) ?? [];
                                if (counted > 0) rulesHit++;
                                Assert.True(counted == traced.Count,
                                    $"{name}/{ns.Name} {table.Name} {chain.Name} rule {i + 1} (-A {chain.Name}{rule.Render()}): counter moved by {counted}, "
                                    + $"{traced.Count} traced packets passed it ({string.Join(", ", traced.Take(10).Select(p => "#" + p))})");
                            }
                            if (!chain.BuiltIn) continue;
                            long policy = chain.PolicyPackets - start.GetValueOrDefault((ns.Name, table.Family, table.Name, chain.Name, -1));
                            Assert.True(policy == policies.GetValueOrDefault((ns.Name, table.Name, chain.Name)),
                                $"{name}/{ns.Name} {table.Name} {chain.Name} policy: counter moved by {policy}, traced {policies.GetValueOrDefault((ns.Name, table.Name, chain.Name))}");
                        }
                }
            }
            Assert.True(rulesHit > 0, $"{name}: no rule counted a packet; the scenario's traffic should cross its rules");
            // Every traced packet from the port ends somewhere: delivered, sent on, merged or dropped with a reason.
            foreach (var j in tracer.Journeys)
                Assert.True(j.Events.Count > 0, $"{name}: packet #{j.Id} ({j.Summary}) has no events");
        }
        finally
        {
            File.Delete(capture);
        }
    }

    private static Dictionary<(string, NfProto, string, string, int), long> Counters(Scenario scenario)
    {
        var d = new Dictionary<(string, NfProto, string, string, int), long>();
        foreach (var ns in scenario.Namespaces)
            foreach (var tables in new[] { ns.Netfilter, ns.Netfilter6 })
            {
                if (tables is null) continue;
                foreach (var table in tables.Tables)
                    foreach (var chain in table.Chains)
                    {
                        for (int i = 0; i < chain.Rules.Count; i++) d[(ns.Name, table.Family, table.Name, chain.Name, i)] = chain.Rules[i].Packets;
                        d[(ns.Name, table.Family, table.Name, chain.Name, -1)] = chain.PolicyPackets;
                    }
            }
        return d;
    }
}
