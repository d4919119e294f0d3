using Softnet.Link;
using static Softnet.Topology.ScenarioLoader;

namespace Softnet.Topology;

/// <summary>`type veth peer name P [netns N] [address MAC] [mtu N]` (ip/link_veth.c): both ends at once.</summary>
internal sealed class VethLinkArgs : IpLinkKind
{
    public override string Kind => "veth";

    public override void Add(IpLinkAdd a)
    {
        var l = a.Args;
        string? peerName = null;
        Namespace? peerNs = a.Current;
        byte[]? peerMac = null;
        int peerMtu = 0;
        if (!l.AtEnd)
        {
            if (l.Take() != "peer") throw l.Error("after 'type veth' only 'peer name P [netns N] [address MAC] [mtu N]' is supported");
            while (!l.AtEnd)
            {
                string o = l.Take();
                switch (o)
                {
                    case "name": peerName = l.Next("name"); break;
                    case "netns": peerNs = NsArg(a.Scenario, l); break;
                    case "address": peerMac = MacArg(l); break;
                    case "mtu": peerMtu = MtuArg(l); break;
                    default:
                        if (peerName == null && !o.StartsWith('-')) { peerName = o; break; }
                        throw l.Error($"unsupported veth peer attribute '{o}'");
                }
            }
        }
        if (peerName == null) throw l.Error("veth needs 'peer name P' (the kernel would pick vethN)");
        if (peerNs == null) throw l.Error($"peer '{peerName}' would be created in the harness's own namespace: give 'netns NS'");
        if (peerNs == a.Target && peerName == a.Name) throw l.Error("veth peer has the same name as the device");
        CheckName(l, peerNs, peerName);
        var x = AddDevice(a.Target, a.Name, LinkKind.Get("veth"), a.Mac, a.Mtu);
        var y = AddDevice(peerNs, peerName, LinkKind.Get("veth"), peerMac, peerMtu);
        x.Peer = y;
        y.Peer = x;
    }
}
