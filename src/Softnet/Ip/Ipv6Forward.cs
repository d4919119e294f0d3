using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>ip6_forward (net/ipv6/ip6_output.c): forwarding on (all.forwarding), pkt_type, hop limit, the source
/// address rules, the egress MTU, the hop limit decrement, FORWARD, then ip6_forward_finish and ip6_output.</summary>
public static class Ipv6Forward
{
    public static void Forward(NetStack stack, Device dev, Skb skb, Route6 route)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        if (!ns.Forwarding6)
        {
            mib[SnmpCounter.Ip6InAddrErrors]++;
            NetStack.Drop(ns, skb, DropReason.IpForwardingDisabled);
            return;
        }
        if (skb.PktType != PacketType.Host) { NetStack.Drop(ns, skb, DropReason.IpForwardNotHost); return; }
        var pkt = NetStack.L3(skb);
        if (pkt[7] <= 1)
        {
            Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.TimeExceeded, 0, 0);
            mib[SnmpCounter.Ip6InHdrErrors]++;
            NetStack.Drop(ns, skb, DropReason.Ipv6HopLimitExceeded);
            return;
        }
        var outDev = route.Device!;
        var src = Ipv6.Read(pkt[8..]);
        // A datagram going back out its arrival device draws a redirect (limited per destination, then per source,
        // one a second); any other needs a source that names one node: not unspecified, multicast or loopback, and not
        // link-local (beyond scope).
        if (outDev == dev)
        {
            var target = route.Gateway != 0 ? route.Gateway : Ipv6.Read(pkt[24..]);
            if (Icmpv6.PeerAllow(stack, ns, Ipv6.Read(pkt[24..]), Icmpv6.Hz)) Neigh.Ndisc.SendRedirect(stack, dev, skb, target);
        }
        else
        {
            if (src == 0 || Ipv6.IsMulticast(src) || src == Ipv6.Loopback)
            {
                mib[SnmpCounter.Ip6InAddrErrors]++;
                NetStack.Drop(ns, skb, DropReason.Ipv6ForwardBadSource);
                return;
            }
            if (Ipv6.IsLinkLocal(src))
            {
                Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.DestinationUnreachable, 2, 0);
                mib[SnmpCounter.Ip6InAddrErrors]++;
                NetStack.Drop(ns, skb, DropReason.Ipv6ForwardBadSource);
                return;
            }
        }
        // Counted once the source passed, before the MTU check and FORWARD (as ip_forward does on 6.18).
        mib[SnmpCounter.Ip6OutForwDatagrams]++;
        // ip6_dst_mtu_maybe_forward: the output device's IPv6 MTU (conf.DEV.mtu).
        int mtu = Math.Max(Icmpv6.MinMtu, ns.Mtu6(outDev));
        if (TooBig(skb, mtu))
        {
            Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.PacketTooBig, 0, (uint)mtu);
            mib[SnmpCounter.Ip6InTooBigErrors]++;
            mib[SnmpCounter.Ip6FragFails]++;
            NetStack.Drop(ns, skb, DropReason.Ipv6PacketTooBig);
            return;
        }
        pkt[7]--;
        if (Ip6Netfilter.Active(ns) && !Ip6Netfilter.Hook(stack, ns, HookPoint.Forward, skb, dev, outDev, out var why))
        {
            NetStack.Drop(ns, skb, why);
            return;
        }
        var nexthop = route.Gateway != 0 ? route.Gateway : Ipv6.Read(pkt[24..]);
        int traceId = skb.TraceId;
        var reason = Ipv6Output.Output(stack, ns, skb, outDev, nexthop, dev);
        if (reason == DropReason.None) ns.Counters.Forwarded++;
        else if (reason != Ipv4Output.Queued)
        {
            ns.Counters.Drops.Add(reason);
            if (traceId != 0) Telemetry.PacketTracer.Current?.Drop(traceId, ns, reason);
        }
    }

    /// <summary>ip6_pkt_too_big: longer than the MTU, unless conntrack's reassembly allows it (frag_max_size,
    /// ignore_df) or a GSO skb's segments fit.</summary>
    private static bool TooBig(Skb skb, int mtu)
    {
        if (skb.Len <= mtu) return false;
        if (skb.FragMaxSize != 0 && skb.FragMaxSize > mtu) return true;
        if (skb.IgnoreDf) return false;
        if (skb.IsGso)
        {
            var l3 = NetStack.L3(skb);
            int l4 = skb.TransportHeader - skb.NetworkHeader;
            int th = l3[6] == IpProtocols.Tcp && l3.Length >= l4 + 20 ? (l3[l4 + 12] >> 4) * 4 : 8;
            return l4 + th + skb.GsoSize > mtu;
        }
        return true;
    }
}
