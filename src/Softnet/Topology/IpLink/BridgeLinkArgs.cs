using Softnet.Link;
using static Softnet.Topology.ScenarioLoader;

namespace Softnet.Topology;

/// <summary>`type bridge [mcast_snooping 0|1] [stp_state 0]` (ip/iplink_bridge.c).</summary>
internal sealed class BridgeLinkArgs : IpLinkKind
{
    public override string Kind => "bridge";

    public override void Add(IpLinkAdd a)
    {
        var l = a.Args;
        var br = AddDevice(a.Target, a.Name, LinkKind.Get("bridge"), a.Mac, a.Mtu);
        while (!l.AtEnd)
        {
            string o = l.Take();
            string v = l.Next(o);
            switch (o)
            {
                case "mcast_snooping" when v is "0" or "1": br.McastSnooping = v == "1"; break;
                case "stp_state" when v == "0": br.Stp = false; break;
                case "stp_state": throw l.Error("stp_state other than 0 is not modeled (STP port states and BPDUs)");
                default: throw l.Error($"unsupported bridge option '{o} {v}' (supported: mcast_snooping 0|1, stp_state 0)");
            }
        }
    }
}
