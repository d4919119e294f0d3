using System.Globalization;
using Softnet.Link;
using Softnet.Pipeline;

namespace Softnet.Topology;

/// <summary>
/// The kernel's global net.core sysctls a scenario sets (<see cref="SysctlCatalogue.GlobalCore"/>): netdev_budget,
/// netdev_budget_usecs, netdev_max_backlog, dev_weight, rps_sock_flow_entries, rmem_default, rmem_max. The kernel keeps
/// one value of each (init_net's net_core_table), which a namespace other than the first cannot write, so the
/// namespace of a scenario that sets one stands for the host whose /etc/sysctl.conf it copies: the value holds for
/// every namespace (each reads it back from its own sysctls) and for the replay's NAPI, backlogs and RFS. Two
/// namespaces setting different values is an error, since the host has one. A replay option given explicitly on the
/// command line (--budget, --budget-usecs, --netdev-max-backlog, --rps-sock-flow-entries) wins over the scenario.
/// </summary>
public sealed class NetCoreSysctls
{
    private readonly Dictionary<string, int> _values;

    public NetCoreSysctls() : this([]) { }

    private NetCoreSysctls(Dictionary<string, int> values) => _values = values;

    /// <summary>The value the scenario set for <paramref name="key"/> (net.core.NAME), or null.</summary>
    public int? this[string key] => _values.TryGetValue(key, out int v) ? v : null;

    public int? NetdevBudget => this["net.core.netdev_budget"];
    public int? NetdevBudgetUsecs => this["net.core.netdev_budget_usecs"];
    public int? NetdevMaxBacklog => this["net.core.netdev_max_backlog"];
    public int? DevWeight => this["net.core.dev_weight"];
    public int? RpsSockFlowEntries => this["net.core.rps_sock_flow_entries"];

    /// <summary>Collects the global keys the namespaces' sysctl.conf files wrote (checked already, with init_net's
    /// handler), refuses two different values, and writes the one value into every namespace.</summary>
    internal static NetCoreSysctls Gather(Scenario sc, string nsDir)
    {
        var set = new Dictionary<string, (string Value, string Ns)>(StringComparer.Ordinal);
        foreach (var ns in sc.Namespaces)
            foreach (var key in SysctlCatalogue.GlobalCore.Keys)
            {
                if (ns.Sysctl(key) is not { } v) continue;
                if (set.TryGetValue(key, out var first) && first.Value != v)
                    throw new ScenarioFormatException(Path.Combine(nsDir, ns.Name, "sysctl.conf"), 0,
                        $"{key} is one value for the whole kernel (init_net's net.core): ns/{first.Ns}/sysctl.conf sets {first.Value}, this file {v}");
                set[key] = (v, ns.Name);
            }
        foreach (var ns in sc.Namespaces)
            foreach (var (key, (v, _)) in set)
                if (ns.Sysctl(key) != v) ns.WriteSysctl(key, v);
        return new NetCoreSysctls(set.ToDictionary(k => k.Key, k => int.Parse(k.Value.Value.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture)));
    }

    /// <summary><paramref name="o"/> with the scenario's values where the command line gave none
    /// (<see cref="ReplayOptions.GivenOnCommandLine"/>): NAPI's budget and time limit, netif_rx's backlog limit, and with
    /// RPS on its backlogs' limit
    /// and quota (dev_rx_weight: dev_weight × dev_weight_rx_bias, which is 1) and the RFS table.</summary>
    public ReplayOptions ApplyTo(ReplayOptions o)
    {
        bool Take(string key, out int v)
        {
            v = this[key] ?? 0;
            return this[key] is not null && !o.GivenOnCommandLine.Contains(key);
        }
        if (Take("net.core.netdev_budget", out int budget)) o = o with { NetdevBudget = Math.Max(budget, 1) };
        if (Take("net.core.netdev_budget_usecs", out int usecs)) o = o with { NetdevBudgetUsecs = usecs };
        if (Take("net.core.netdev_max_backlog", out int backlog)) o = o with { NetdevMaxBacklog = backlog };
        if (o.Rps is { } rps)
        {
            if (Take("net.core.netdev_max_backlog", out int max)) rps = rps with { NetdevMaxBacklog = max };
            if (Take("net.core.dev_weight", out int weight)) rps = rps with { BacklogWeight = weight };
            if (Take("net.core.rps_sock_flow_entries", out int entries)) rps = rps with { SockFlowEntries = entries };
            o = o with { Rps = rps };
        }
        return o;
    }
}
