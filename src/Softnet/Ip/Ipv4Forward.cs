using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>ip_forward (net/ipv4/ip_forward.c): pkt_type, TTL, MTU against DF, TTL decrement, FORWARD, then
/// ip_output. Not counted here yet: IpFragFails for the DF-too-big drop (output fragmentation's counters belong with the
/// fragmentation work).</summary>
public static class Ipv4Forward
{
    /// <summary>ip_forward; <paramref name="doRedirect"/> is the input route's IPSKB_DOREDIRECT (a datagram following a
    /// source route never draws a redirect).</summary>
    public static void Forward(NetStack stack, Device dev, Skb skb, Route route, ref PacketContext ctx, bool doRedirect = false)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (skb.PktType != PacketType.Host) { NetStack.Drop(ns, skb, DropReason.IpForwardNotHost); return; }
        var pkt = NetStack.L3(skb);
        if (pkt[8] <= 1)
        {
            // too_many_hops: counted as a header error.
            ns.Mib[SnmpCounter.IpInHdrErrors]++;
            Icmp.Send(stack, ns, skb, dev, 11, 0, 0, localDestination: false);
            NetStack.Drop(ns, skb, DropReason.IpTtlExpired);
            return;
        }
        // Strict routing permits no gateway: ICMP source route failed (before the datagram counts as forwarded).
        if (skb.IpOpt.IsStrictRoute && route.Gateway != 0)
        {
            Icmp.Send(stack, ns, skb, dev, 3, 5, 0, localDestination: false);
            NetStack.Drop(ns, skb, DropReason.IpStrictRouteFailed);
            return;
        }
        // ip_forward counts the datagram once its TTL passed, before the MTU check and FORWARD: one too big for DF
        // (FragFails) and one the FORWARD chain drops are forwarded datagrams too (both seen on 6.18).
        ns.Mib[SnmpCounter.IpForwDatagrams]++;
        var outDev = route.Device!;
        bool df = (pkt[6] & 0x40) != 0;
        // ip_exceeds_mtu: a GSO skb is judged by its segments (skb_gso_validate_network_len).
        int len = !skb.IsGso ? skb.Len
            : skb.Encapsulation ? (skb.InnerTransportHeader - skb.NetworkHeader) + skb.GsoSize + InnerTcpHeaderLength(skb)
            : (skb.TransportHeader - skb.NetworkHeader) + skb.GsoSize + TcpHeaderLength(skb);
        // ip_exceeds_mtu: DF over the MTU stops it, unless conntrack reassembled it (ignore_df) from fragments that
        // each fit (IPCB frag_max_size): ip_fragment cuts it again then.
        if (len > outDev.Mtu && df && (skb.FragMaxSize > outDev.Mtu || !skb.IgnoreDf))
        {
            // ip_forward counts it as a fragmentation failure before answering.
            ns.Mib[Telemetry.SnmpCounter.IpFragFails]++;
            Icmp.Send(stack, ns, skb, dev, 3, 4, (uint)outDev.Mtu, localDestination: false);
            NetStack.Drop(ns, skb, DropReason.IpFragNeeded);
            return;
        }
        PacketFactory.DecreaseTtl(pkt);
        // ip_forward: a host redirect naming the route's next hop, before FORWARD sees the datagram.
        if (doRedirect && skb.IpOpt.Srr == 0)
            Icmp.SendRedirect(stack, dev, skb, route.Gateway != 0 ? route.Gateway : BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]));
        if (ns.HasIptables)
        {
            ctx.OutInterface = outDev.Name;
            if (ns.Netfilter.MayGrowPackets) Ipv4Input.SetRouteMtu(ns, skb, outDev, ref ctx);
            if (!Ipv4Input.Hook(ns, HookPoint.Forward, skb, ref ctx))
            {
                if (ctx.Reject != RejectWith.None) Icmp.SendReject(stack, dev, skb, ref ctx, localDestination: false);
                NetStack.Drop(ns, skb, ctx.DropReason);
                return;
            }
        }
        // ip_forward_finish: ip_forward_options fills record route (and a source route's slot) with our outgoing
        // address and moves the destination to a source route's next hop.
        if (skb.IpOpt.OptLen != 0)
            Ipv4Options.Forward(pkt[..((pkt[0] & 0xF) * 4)], ref skb.IpOpt, Ipv4Input.RouteSource(ns, route));
        uint nexthop = route.Gateway != 0 ? route.Gateway : BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        int traceId = skb.TraceId;
        var reason = Ipv4Output.Output(stack, ns, skb, outDev, nexthop, ref ctx, dev);
        if (reason == DropReason.None) c.Forwarded++;
        else if (reason != Ipv4Output.Queued)
        {
            c.Drops.Add(reason);
            if (traceId != 0) Telemetry.PacketTracer.Current?.Drop(traceId, ns, reason);
        }
    }

    /// <summary>The transport header of a GSO skb's segments (TCP with options, or UDP).</summary>
    /// <summary>skb_gso_network_seglen for a tunnel aggregate: its segments carry the inner TCP header.</summary>
    private static int InnerTcpHeaderLength(Skb skb)
        => skb.InnerTransportHeader + 13 <= skb.Tail ? (skb.HeadBuffer[skb.InnerTransportHeader + 12] >> 4) * 4 : 0;

    private static int TcpHeaderLength(Skb skb)
    {
        var l3 = NetStack.L3(skb);
        var l4 = l3[(skb.TransportHeader - skb.NetworkHeader)..];
        if (l3[9] == IpProtocols.Tcp) return TcpView.TryParse(l4, out var tcp, out _) ? tcp.HeaderLength : 0;
        return l3[9] == IpProtocols.Udp ? UdpView.HeaderLength : 0;
    }
}
