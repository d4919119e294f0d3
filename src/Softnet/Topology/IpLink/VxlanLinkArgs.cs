using System.Globalization;
using Softnet.Link;
using Softnet.Packets;
using static Softnet.Topology.ScenarioLoader;

namespace Softnet.Topology;

/// <summary>
/// `type vxlan id VNI [dev DEV] [dstport PORT] [local A] [remote A] [ttl N|inherit] [tos N] [learning|nolearning]
/// [udpcsum|noudpcsum] [srcport MIN MAX]` (ip/iplink_vxlan.c), IPv4 unicast underlay. The device's MTU defaults to the
/// lower device's less the encapsulation (vxlan_config_apply); `remote` creates the all-zeros FDB entry.
/// </summary>
internal sealed class VxlanLinkArgs : IpLinkKind
{
    public override string Kind => "vxlan";

    public override void Add(IpLinkAdd a)
    {
        var l = a.Args;
        var cfg = new VxlanConfig();
        bool haveId = false, havePort = false;
        uint remote = 0;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "id" or "vni":
                {
                    string v = l.Next(o);
                    if (!uint.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out uint vni) || vni >= 1u << 24)
                        throw l.Error($"invalid id \"{v}\"");
                    cfg.Vni = vni;
                    haveId = true;
                    break;
                }
                case "dev":
                {
                    string n = l.Next("dev");
                    cfg.Lower = a.Target.Device(n) ?? throw l.Error($"Cannot find device \"{n}\"");
                    break;
                }
                case "dstport":
                {
                    string v = l.Next(o);
                    if (!ushort.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out ushort port)) throw l.Error($"invalid dstport \"{v}\"");
                    if (port != 0) cfg.DstPort = port; // 0: the kernel's default
                    havePort = true;
                    break;
                }
                case "local" or "remote" or "group":
                {
                    string v = l.Next(o);
                    if (!Ipv4.TryParse(v, out uint addr)) throw l.Error($"invalid address \"{v}\" (an IPv4 underlay is modelled)");
                    if (o == "local") cfg.Local = addr;
                    else if (o == "group" && addr >> 28 != 0xE) throw l.Error("vxlan: group address must be a multicast address");
                    else if (o == "group") throw l.Error("vxlan: multicast groups are not modelled (give remote or FDB entries)");
                    else if (addr >> 28 == 0xE) throw l.Error("vxlan: remote address must be a unicast address");
                    else remote = addr;
                    break;
                }
                case "ttl" or "hoplimit":
                {
                    string v = l.Next(o);
                    if (v == "inherit") { cfg.Ttl = 0; break; }
                    if (!byte.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out byte ttl)) throw l.Error($"invalid TTL \"{v}\"");
                    cfg.Ttl = ttl;
                    break;
                }
                case "tos" or "dsfield":
                {
                    string v = l.Next(o);
                    if (v == "inherit") throw l.Error("vxlan: tos inherit is not modelled");
                    // rtnl_dsfield_a2n reads the number in base 16, with or without 0x.
                    if (!byte.TryParse(v.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? v[2..] : v, NumberStyles.HexNumber,
                            CultureInfo.InvariantCulture, out byte tos)) throw l.Error($"invalid TOS \"{v}\"");
                    cfg.Tos = tos;
                    break;
                }
                case "learning": cfg.Learning = true; break;
                case "nolearning": cfg.Learning = false; break;
                case "udpcsum": cfg.UdpCsum = true; break;
                case "noudpcsum": cfg.UdpCsum = false; break;
                case "srcport":
                {
                    string lo = l.Next(o), hi = l.Next(o);
                    if (!ushort.TryParse(lo, NumberStyles.None, CultureInfo.InvariantCulture, out ushort min)
                        || !ushort.TryParse(hi, NumberStyles.None, CultureInfo.InvariantCulture, out ushort max) || max < min)
                        throw l.Error($"invalid srcport range \"{lo} {hi}\"");
                    cfg.PortMin = min;
                    cfg.PortMax = max;
                    break;
                }
                default:
                    throw l.Error($"unsupported vxlan option '{o}' (supported: id, dev, dstport, local, remote, ttl, tos, learning, nolearning, udpcsum, noudpcsum, srcport)");
            }
        }
        if (!haveId) throw l.Error("vxlan: missing virtual network identifier");
        // Without dstport iproute2 warns and the kernel takes its default, 8472 (already set).
        _ = havePort;
        foreach (var d in a.Target.Devices)
            if (d.Vxlan is { } other && other.DstPort == cfg.DstPort && other.Vni == cfg.Vni)
                throw l.Error("RTNETLINK answers: File exists (a vxlan device with this VNI and port exists)");
        // vxlan_config_apply: with a lower device the MTU is its MTU less the headroom.
        int mtu = a.Mtu != 0 ? a.Mtu : cfg.Lower is { } lower ? lower.Mtu - VxlanConfig.Headroom : 1500;
        if (cfg.Lower is { } low && mtu > low.Mtu - VxlanConfig.Headroom) mtu = low.Mtu - VxlanConfig.Headroom; // clamped
        var dev = AddDevice(a.Target, a.Name, LinkKind.Get("vxlan"), a.Mac, mtu);
        dev.Vxlan = cfg;
        if (remote != 0) cfg.FdbAdd(new byte[6], remote, "add", out _);
        if (!a.Target.UdpTunnelPorts.Contains(cfg.DstPort)) a.Target.UdpTunnelPorts.Add(cfg.DstPort);
    }
}
