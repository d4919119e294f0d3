using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Neigh;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>IPv4 output (net/ipv4/ip_output.c): ip_output → POSTROUTING → ip_finish_output2 → the neighbour, and
/// ip_local_out for packets this host makes (ICMP errors, resets).</summary>
public static class Ipv4Output
{
    /// <summary>Marker: the packet waits in a neighbour queue.</summary>
    public const DropReason Queued = (DropReason)ushort.MaxValue;

    /// <summary>ip_output for <paramref name="skb"/> (data at the IP header). The skb is gone afterwards: sent,
    /// queued for resolution (<see cref="Queued"/>) or dropped (the reason is returned, for the caller to count).</summary>
    /// <param name="sendSkb">From ip_send_skb: a POSTROUTING drop comes back to it as an error, counted as OutDiscards.</param>
    public static DropReason Output(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, ref PacketContext ctx, Device? inDev,
        bool sendSkb = false)
    {
        skb.Dev = outDev;
        if (ns.HasIptables)
        {
            ctx.OutInterface = outDev.Name;
            ctx.Nexthop = nexthop;
            if (ns.Netfilter.MayGrowPackets) Ipv4Input.SetRouteMtu(ns, skb, outDev, ref ctx);
            if (!Ipv4Input.Hook(ns, HookPoint.PostRouting, skb, ref ctx))
            {
                if (sendSkb) ns.Mib[SnmpCounter.IpOutDiscards]++;
                skb.Free();
                return ctx.DropReason;
            }
        }
        // __ip_finish_output: a GSO skb leaves whole where the device takes GSO (veth, bridge, lo all do); a datagram
        // longer than the MTU, or one that was reassembled (frag_max_size), goes through ip_fragment.
        if (!skb.IsGso && (skb.Len > outDev.Mtu || skb.FragMaxSize != 0))
            return Ipv4Fragment.Fragment(stack, ns, skb, outDev, nexthop, inDev, FinishOutput);
        return FinishOutput(stack, ns, skb, outDev, nexthop, inDev);
    }

    /// <summary>ip_finish_output2: one finished frame to loopback or to the neighbour.</summary>
    private static DropReason FinishOutput(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, Device? inDev)
    {
        // ip_finish_output2: OutTransmits and OutOctets (IPSTATS_MIB_OUT) per frame that leaves (each fragment), before
        // the neighbour resolves (a queued one counts too); OutBcastPkts for a broadcast route.
        if (skb.Dst is { Type: RouteKind.Broadcast }) ns.Mib[SnmpCounter.IpExtOutBcastPkts]++;
        ns.Mib[SnmpCounter.IpOutTransmits]++;
        ns.Mib.Add(SnmpCounter.IpExtOutOctets, skb.Len);
        if (outDev.Kind.IsLoopback)
        {
            NetStack.PushEthernet(skb, default, default, EtherTypes.Ipv4);
            return stack.Transmit(outDev, skb);
        }
        stack.Clock.Begin(Telemetry.Stage.Egress, Telemetry.StageFrames.EgressNeigh);
        var r = NeighOutput.Output(stack, ns, skb, outDev, nexthop, inDev);
        stack.Clock.End();
        return r;
    }

    /// <summary>ip_local_out: route, OUTPUT (re-route if NAT moved the destination), POSTROUTING, neighbour. With
    /// <paramref name="sendSkb"/> the caller is ip_send_skb (ICMP messages), which counts OutDiscards when netfilter
    /// drops the datagram; nf_send_reset calls ip_local_out itself and counts nothing.</summary>
    public static void LocalOut(NetStack stack, Namespace ns, Skb skb, Connection? ct, CtInfo info, bool sendSkb = false)
    {
        var c = ns.Counters;
        var pkt = NetStack.L3(skb);
        // A packet this namespace makes (a reply, an ICMP error, a RST) starts its own journey when the trace selects it.
        if (skb.TraceId == 0) Telemetry.PacketTracer.Current?.AdoptLocal(skb, ns, pkt);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        var route = ns.Routing.Lookup(dst);
        if (route == null || route.Device == null || route.Type is not (RouteKind.Unicast or RouteKind.Local)) { skb.Free(); return; }
        // __ip_local_out: OutRequests before OUTPUT.
        ns.Mib[SnmpCounter.IpOutRequests]++;
        PacketContext ctx = default;
        if (ns.HasIptables)
        {
            if (!Ipv4Input.FillContext(skb, ref ctx, out _)) { skb.Free(); return; }
            ctx.Ct = ct;
            ctx.CtInfo = info;
            ctx.OutInterface = route.Device.Name;
            if (ns.Netfilter.MayGrowPackets) Ipv4Input.SetRouteMtu(ns, skb, route.Device, ref ctx);
            if (!Ipv4Input.Hook(ns, HookPoint.LocalOut, skb, ref ctx))
            {
                if (sendSkb) ns.Mib[SnmpCounter.IpOutDiscards]++;
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(skb.TraceId, ns, ctx.DropReason == DropReason.None ? DropReason.NetfilterDrop : ctx.DropReason);
                skb.Free();
                return;
            }
            uint after = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
            if (after != dst)
            {
                route = ns.Routing.Lookup(after);
                if (route == null || route.Device == null || route.Type is not (RouteKind.Unicast or RouteKind.Local)) { skb.Free(); return; }
                dst = after;
            }
        }
        skb.Dst = route;
        c.Sent++;
        if (route.Type == RouteKind.Local)
        {
            // Addressed to ourselves: it would go over lo to a local socket; consumed.
            skb.Free();
            return;
        }
        uint nexthop = route.Gateway != 0 ? route.Gateway : dst;
        Output(stack, ns, skb, route.Device, nexthop, ref ctx, null, sendSkb);
    }
}
