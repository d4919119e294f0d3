using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// br_netfilter (net/bridge/br_netfilter_hooks.c): with net.bridge.bridge-nf-call-iptables=1, bridged IPv4 frames
/// cross the IPv4 PREROUTING, FORWARD and POSTROUTING hooks with the bridge as the interface.
/// </summary>
public static partial class BridgeNetfilter
{
    /// <summary>Only with net.bridge.bridge-nf-call-iptables=1 (and iptables loaded); otherwise bridged frames
    /// bypass iptables.</summary>
    public static bool Active(Namespace ns) => ns.HasIptables && ns.BridgeNfCallIptables;

    /// <summary>
    /// br_nf_pre_routing: br_validate_ipv4 (ip_rcv_core's checks, trim to tot_len), then PREROUTING with the bridge
    /// as in-interface; br_nf_pre_routing_finish: when DNAT moved the destination, route it. Out the same bridge (a
    /// pod to a service backed by another pod on the bridge) the frame stays bridged, not routed: no TTL decrement,
    /// the destination MAC taken from the neighbour entry, the source MAC kept. Any other route makes the frame one
    /// for the bridge itself (destination MAC the bridge's). False when the frame was dropped (and freed).
    /// </summary>
    internal static bool PreRouting(NetStack stack, Device br, Device port, Skb skb, ref PacketContext ctx)
    {
        var ns = br.Namespace;
        // br_validate_ipv4: the header errors count as in ip_rcv_core; InReceives does not (checked on 6.18: a bridged
        // frame leaves IpInReceives alone).
        var why = Ipv4Input.ValidateHeader(skb, ns.Mib);
        if (why != DropReason.None) { NetStack.Drop(ns, skb, why); return false; }
        if (!Ipv4Input.FillContext(skb, ref ctx, out why)) { NetStack.Drop(ns, skb, why); return false; }
        ctx.InInterface = br.Name;
        // setup_pre_routing: a frame for another host is PACKET_HOST to the IP hooks (nf_bridge->pkt_otherhost keeps
        // the truth for the bridge); nf_bridge_info: the port the frame came in on, for -m physdev.
        if (ctx.PktType == PacketType.OtherHost) ctx.PktType = PacketType.Host;
        ctx.PhysIn = port.Name;
        ctx.HasBridgeInfo = true;
        var pkt = NetStack.L3(skb);
        uint daddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        if (!Ipv4Input.Hook(ns, HookPoint.PreRouting, skb, ref ctx)) { NetStack.Drop(ns, skb, ctx.DropReason); return false; }
        uint after = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        var eth = skb.HeadBuffer.Slice(skb.MacHeader, 14);
        if (after == daddr) return true;

        uint saddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        var route = ns.Routing.Lookup(after);
        if (route is { Type: RouteKind.Unicast or RouteKind.Local } && !Ipv4Input.ValidateSource(br, saddr, out why))
        {
            // ip_route_input failed: br_nf_pre_routing_finish frees the frame.
            NetStack.Drop(ns, skb, why);
            return false;
        }
        if (route is { Type: RouteKind.Unicast } && route.Device == br && ns.Forwarding(br))
        {
            uint nexthop = route.Gateway != 0 ? route.Gateway : after;
            // The real route is the skb's dst from here on: POSTROUTING's MASQUERADE asks it for the next hop.
            ctx.Nexthop = nexthop;
            return BridgedDnat(stack, br, skb, ns.Neighbours.Find(br, nexthop));
        }
        br.Mac.CopyTo(eth);
        return true;
    }

    /// <summary>br_nf_pre_routing_finish_bridge: DNAT moved the destination to a host out the same bridge, so the frame
    /// stays bridged, not routed: no TTL or hop limit decrement, the destination MAC taken from the neighbour's cached
    /// header (neigh_hh_bridge), the source MAC kept. Without one, neigh->output builds the whole header (source: the
    /// bridge) and transmits on the bridge device, whose br_nf_dev_xmit puts the saved source MAC back and bridges the
    /// frame: the bridge's tx tap sees it once, and with the sender's source MAC, as a packet socket reads it (checked
    /// on 6.18 with IPv6: its clone shares the data br_nf_pre_routing_finish_bridge_slow rewrites in place before the
    /// socket is read). False when dropped (and freed).</summary>
    private static bool BridgedDnat(NetStack stack, Device br, Skb skb, Neigh.Neighbour? n)
    {
        if (n == null || !n.Valid) { NetStack.Drop(br.Namespace, skb, DropReason.BridgeDnatNeighUnresolved); return false; }
        var eth = skb.HeadBuffer.Slice(skb.MacHeader, 14);
        n.Mac.CopyTo(eth);
        if (!(n.HhCached && n.Connected))
        {
            if (br.TxTap != null)
            {
                skb.Push(14);
                br.TxTap.Write(stack.Now, stack.Linearize(skb));
                skb.Pull(14);
            }
            br.TxPackets++;
            br.TxBytes += 14 + skb.Len;
            n.HhCached = true;
        }
        return true;
    }

    /// <summary>br_nf_forward_ip then br_nf_post_routing: FORWARD with the bridge as in- and out-interface,
    /// POSTROUTING with it as out-interface; NAT rewrites the frame in place. False when dropped (and freed).</summary>
    internal static bool Forward(NetStack stack, Device br, Skb skb, ref PacketContext ctx, Device? outPort = null, bool countDrop = true)
    {
        if (skb.Protocol == EtherTypes.Ipv6) return Forward6(stack, br, skb, outPort, countDrop, ref ctx);
        ctx.PhysOut = outPort?.Name;
        var ns = br.Namespace;
        ctx.InInterface = br.Name;
        ctx.OutInterface = br.Name;
        if (!Ipv4Input.Hook(ns, HookPoint.Forward, skb, ref ctx) || !PostRouting(ns, skb, ref ctx))
        {
            if (countDrop) NetStack.Drop(ns, skb, ctx.DropReason);
            else skb.Free();
            return false;
        }
        return true;
    }

    private static bool PostRouting(Namespace ns, Skb skb, ref PacketContext ctx)
    {
        ctx.InInterface = null;
        // br_netfilter's fake route has no gateway: the next hop is the destination itself, unless bridged DNAT set
        // the real route's in PREROUTING.
        if (ctx.Nexthop == 0) ctx.Nexthop = ctx.Dst;
        return Ipv4Input.Hook(ns, HookPoint.PostRouting, skb, ref ctx);
    }
}
