using Softnet.Link;

namespace Softnet.Topology;

/// <summary>A set of namespaces linked by veth pairs (a scenario folder once loaded).</summary>
public sealed class Scenario
{
    public string Directory { get; init; } = "";
    public List<Namespace> Namespaces { get; } = new();
    /// <summary>The kernel's global net.core sysctls the scenario's sysctl.conf files set.</summary>
    public NetCoreSysctls NetCore { get; set; } = new();

    public Namespace? Namespace(string name)
    {
        foreach (var n in Namespaces)
            if (n.Name == name) return n;
        return null;
    }

    /// <summary>Finishes loading: bridge MACs from ports, routing tables, conntrack per iptables use.</summary>
    public void Compile()
    {
        foreach (var ns in Namespaces)
        {
            foreach (var d in ns.Devices)
                if (d.Kind.IsBridge && !d.MacSet && d.Ports.Count > 0)
                {
                    // br_stp_recalculate_bridge_id: a bridge without an assigned address takes its lowest port MAC.
                    var min = d.Ports.Select(p => p.Mac).OrderBy(m => Device.MacKey(m)).First();
                    d.Mac = (byte[])min.Clone();
                }
            ns.Compile();
        }
    }
}
