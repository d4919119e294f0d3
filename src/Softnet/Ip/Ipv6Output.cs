using Softnet.Link;
using Softnet.Neigh;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>IPv6 output (net/ipv6/ip6_output.c): ip6_local_out for datagrams this host makes, ip6_output →
/// POSTROUTING → ip6_finish_output2 → the neighbour (or the multicast MAC) for those and for forwarded ones.</summary>
public static class Ipv6Output
{
    /// <summary>ip6_local_out for a datagram this host makes (<paramref name="skb"/>, data at the IPv6 header, payload
    /// length and checksums filled): route lookup, LOCAL_OUT, POSTROUTING, neighbour. Consumes the skb.</summary>
    public static void LocalOut(NetStack stack, Namespace ns, Skb skb) => LocalOut(stack, ns, skb, null, sendSkb: false);

    /// <summary>ip6_local_out with the flow's output device (<paramref name="oif"/>: a link-local or multicast
    /// destination is on its link). With <paramref name="sendSkb"/> the caller is ip6_send_skb, which counts
    /// OutDiscards when netfilter drops the datagram.</summary>
    internal static void LocalOut(NetStack stack, Namespace ns, Skb skb, Device? oif, bool sendSkb)
    {
        var pkt = NetStack.L3(skb);
        if (skb.TraceId == 0) Telemetry.PacketTracer.Current?.AdoptLocal(skb, ns, pkt);
        var dst = Ipv6.Read(pkt[24..]);
        if (!Resolve(ns, dst, oif, out var outDev, out var nexthop, out bool local)) { skb.Free(); return; }
        skb.ResetNetworkHeader();
        if (Ip6Netfilter.Active(ns))
        {
            // nf_defrag_ipv6 at LOCAL_OUT (user IP6_DEFRAG_CONNTRACK_OUT): fragments this host sends itself (a raw
            // socket's) are gathered before conntrack; the datagrams Softnet builds are whole and pass.
            if (Ip6Netfilter.Defrags(ns) && skb.Conntrack == null)
            {
                if (ns.NfDefrag6.Gather(stack, ns, null, skb, NfDefragIpv6.ConntrackOut, out var datagram) != DefragResult.Complete) return;
                skb = datagram!;
            }
            if (!Ip6Netfilter.Hook(stack, ns, HookPoint.LocalOut, skb, null, outDev, out var why))
            {
                if (sendSkb) ns.Mib[SnmpCounter.Ip6OutDiscards]++;
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(skb.TraceId, ns, why);
                skb.Free();
                return;
            }
            var after = Ipv6.Read(NetStack.L3(skb)[24..]);
            if (after != dst && !Resolve(ns, after, oif, out outDev, out nexthop, out local)) { skb.Free(); return; }
        }
        ns.Counters.Sent++;
        // Addressed to ourselves: it would go over lo to a local socket; consumed.
        if (local) { skb.Free(); return; }
        Output(stack, ns, skb, outDev!, nexthop, null);
    }

    /// <summary>ip6_route_output: the output device and next hop for <paramref name="dst"/>.</summary>
    private static bool Resolve(Namespace ns, UInt128 dst, Device? oif, out Device? outDev, out UInt128 nexthop, out bool local)
    {
        local = false;
        if (oif != null && (Ipv6.IsLinkLocal(dst) || Ipv6.IsMulticast(dst)) && ns.FindAddress6(dst) == null)
        {
            outDev = oif;
            nexthop = dst;
            return true;
        }
        var route = ns.Routing6.Lookup(dst);
        outDev = route?.Device;
        nexthop = route is { Gateway: var g } && g != 0 ? g : dst;
        if (route == null || outDev == null) return false;
        if (route.Type is RouteKind.Local or RouteKind.Anycast) { local = true; return true; }
        return route.Type is RouteKind.Unicast or RouteKind.Multicast;
    }

    /// <summary>ip6_output: disable_ipv6 on the device (OutDiscards), POSTROUTING, then ip6_finish_output. The skb is
    /// gone afterwards: sent, queued for resolution (<see cref="Ipv4Output.Queued"/>) or dropped (reason returned).</summary>
    public static DropReason Output(NetStack stack, Namespace ns, Skb skb, Device outDev, UInt128 nexthop, Device? inDev)
    {
        skb.Dev = outDev;
        if (ns.Ipv6Disabled(outDev))
        {
            ns.Mib[SnmpCounter.Ip6OutDiscards]++;
            skb.Free();
            return DropReason.Ipv6Disabled;
        }
        if (Ip6Netfilter.Active(ns) && !Ip6Netfilter.Hook(stack, ns, HookPoint.PostRouting, skb, inDev, outDev, out var why))
        {
            skb.Free();
            return why;
        }
        // __ip6_finish_output: a datagram over the MTU goes through ip6_fragment (a forwarded one was refused with a
        // packet too big before), and so does one conntrack reassembled that is longer than its largest fragment was
        // (IP6CB frag_max_size): it leaves cut as it came.
        if (!skb.IsGso && (skb.Len > ns.Mtu6(outDev) || (skb.FragMaxSize != 0 && skb.Len > skb.FragMaxSize)))
            return Ipv6Fragment.Fragment(stack, ns, skb, outDev, nexthop, inDev, FinishOutput2);
        return FinishOutput2(stack, ns, skb, outDev, nexthop, inDev);
    }

    /// <summary>ip6_finish_output2: OutMcastPkts/Octets for a multicast destination, OutTransmits/OutOctets, then the
    /// multicast MAC or the neighbour (nd_tbl).</summary>
    private static DropReason FinishOutput2(NetStack stack, Namespace ns, Skb skb, Device outDev, UInt128 nexthop, Device? inDev)
    {
        var mib = ns.Mib;
        var dst = Ipv6.Read(NetStack.L3(skb)[24..]);
        bool mcast = Ipv6.IsMulticast(dst);
        if (mcast)
        {
            mib[SnmpCounter.Ip6OutMcastPkts]++;
            mib.Add(SnmpCounter.Ip6OutMcastOctets, skb.Len);
        }
        mib[SnmpCounter.Ip6OutTransmits]++;
        mib.Add(SnmpCounter.Ip6OutOctets, skb.Len);
        if (outDev.Kind.IsLoopback)
        {
            NetStack.PushEthernet(skb, default, default, EtherTypes.Ipv6);
            return stack.Transmit(outDev, skb);
        }
        if (mcast)
        {
            Span<byte> mac = stackalloc byte[6];
            Ipv6.MulticastMac(dst, mac);
            NetStack.PushEthernet(skb, mac, outDev.Mac, EtherTypes.Ipv6);
            return stack.Transmit(outDev, skb);
        }
        stack.Clock.Begin(Stage.Egress, StageFrames.EgressNeigh6);
        var r = Ndisc.Output(stack, ns, skb, outDev, nexthop, inDev);
        stack.Clock.End();
        return r;
    }
}
