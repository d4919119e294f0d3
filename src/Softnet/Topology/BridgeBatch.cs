using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Topology;

/// <summary>
/// ns/NAME/bridge.batch: `bridge -batch` lines run inside the namespace. What is modelled: a VXLAN device's FDB,
/// `fdb add|append|replace MAC dev DEV dst A [self] [permanent|static]` (bridge/fdb.c → vxlan_fdb_add), as flannel
/// writes it (`fdb append 00:00:00:00:00:00 dev flannel.1 dst 10.0.0.2`, or one entry per remote node's MAC).
/// </summary>
internal static class BridgeBatch
{
    public static void Run(Namespace ns, string path)
    {
        var lines = File.ReadAllText(path).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var tokens = ScenarioLoader.Tokens(lines[i]);
            if (tokens.Count == 0) continue;
            var l = new ScenarioLoader.Line(path, i + 1, tokens);
            string obj = l.Take();
            if (obj != "fdb") throw l.Error($"unsupported bridge object '{obj}' (supported: fdb)");
            string cmd = l.Next("fdb");
            if (cmd is not ("add" or "append" or "replace")) throw l.Error($"unsupported 'fdb {cmd}' (supported: add, append, replace)");
            string macText = l.Next(cmd);
            if (!Device.TryParseMac(macText, out var mac)) throw l.Error($"invalid mac address \"{macText}\"");
            Device? dev = null;
            uint dst = 0;
            while (!l.AtEnd)
            {
                string o = l.Take();
                switch (o)
                {
                    case "dev":
                    {
                        string n = l.Next("dev");
                        dev = ns.Device(n) ?? throw l.Error($"Cannot find device \"{n}\"");
                        break;
                    }
                    case "dst":
                    {
                        string v = l.Next("dst");
                        if (!Ipv4.TryParse(v, out dst)) throw l.Error($"invalid dst address \"{v}\" (an IPv4 underlay is modelled)");
                        break;
                    }
                    case "self" or "permanent" or "static": break;
                    default: throw l.Error($"unsupported fdb option '{o}' (supported: dev, dst, self, permanent, static)");
                }
            }
            if (dev is null) throw l.Error("fdb needs 'dev DEV'");
            if (dev.Vxlan is not { } cfg) throw l.Error($"{dev.Name} is not a vxlan device (bridge ports' FDB entries are learned, not configured, here)");
            if (dst == 0) throw l.Error("RTNETLINK answers: Invalid argument (a vxlan FDB entry needs 'dst')");
            if (!cfg.FdbAdd(mac, dst, cmd, out string? error)) throw l.Error(error!);
        }
    }
}
