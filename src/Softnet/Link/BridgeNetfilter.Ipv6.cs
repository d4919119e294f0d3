using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Link;

/// <summary>
/// br_netfilter for IPv6 (net/bridge/br_netfilter_ipv6.c, br_nf_forward, br_nf_post_routing): with
/// net.bridge.bridge-nf-call-ip6tables=1, bridged IPv6 frames cross the IPv6 PREROUTING, FORWARD and POSTROUTING hooks
/// with the bridge as the interface and the ports in skb->nf_bridge (<see cref="Skb.NfBridgePhysIn"/>) for -m physdev.
/// The IPv6 hooks keep their state on the skb (conntrack, mark), so no context travels beside it.
/// </summary>
public static partial class BridgeNetfilter
{
    /// <summary>br_nf_pre_routing takes IPv6 frames with bridge-nf-call-ip6tables=1; the frame is validated even where
    /// no IPv6 hook is registered (no ip6tables.save, no IPv6 conntrack).</summary>
    public static bool Active6(Namespace ns) => ns.BridgeNfCallIp6tables;

    /// <summary>
    /// br_nf_pre_routing_ipv6: br_validate_ipv6, then PREROUTING with the bridge as in-interface;
    /// br_nf_pre_routing_finish_ipv6: when DNAT moved the destination, ip6_route_input decides as for IPv4 (a route out
    /// the same bridge keeps the frame bridged, any other makes it one for the bridge itself), except that IPv6 does
    /// not ask whether the bridge forwards. False when the frame was dropped (and freed).
    /// </summary>
    internal static bool PreRouting6(NetStack stack, Device br, Device port, Skb skb)
    {
        var ns = br.Namespace;
        var why = ValidateIpv6(skb, ns.Mib);
        if (why != DropReason.None) { NetStack.Drop(ns, skb, why); return false; }
        skb.NfBridgePhysIn = port;
        skb.NfBridgePhysOut = null;
        var daddr = Ipv6.Read(NetStack.L3(skb)[24..]);
        if (!Hook6(stack, ns, HookPoint.PreRouting, skb, br, null, out why)) { NetStack.Drop(ns, skb, why); return false; }
        var after = Ipv6.Read(NetStack.L3(skb)[24..]);
        if (after == daddr) return true;

        // ip6_route_input: a reject route (or none) leaves a dst with an error, and the frame is freed uncounted.
        var route = ns.Routing6.Lookup(after);
        switch (route?.Type)
        {
            case RouteKind.Unicast when route.Device == br:
                return BridgedDnat(stack, br, skb, ns.Neighbours.Find6(br, route.Gateway != 0 ? route.Gateway : after));
            case RouteKind.Unicast or RouteKind.Local or RouteKind.Anycast or RouteKind.Multicast:
                br.Mac.CopyTo(skb.HeadBuffer.Slice(skb.MacHeader, 6));
                skb.PktType = PacketType.Host;
                return true;
            default:
                NetStack.Drop(ns, skb, route?.Type switch
                {
                    RouteKind.Blackhole => DropReason.IpBlackhole,
                    RouteKind.Prohibit => DropReason.IpRouteProhibited,
                    _ => DropReason.Ipv6NoRoute,
                });
                return false;
        }
    }

    /// <summary>br_nf_forward (NFPROTO_IPV6) then br_nf_post_routing: FORWARD with the bridge as in- and out-interface,
    /// POSTROUTING with it as out-interface, the port the frame leaves by as physoutdev. False when dropped (and freed;
    /// counted unless <paramref name="countDrop"/> is false: a flood counts its frame once).</summary>
    private static bool Forward6(NetStack stack, Device br, Skb skb, Device? outPort, bool countDrop, ref PacketContext ctx)
    {
        var ns = br.Namespace;
        skb.NfBridgePhysOut = outPort;
        if (!Hook6(stack, ns, HookPoint.Forward, skb, br, br, out var why) || !Hook6(stack, ns, HookPoint.PostRouting, skb, null, br, out why))
        {
            ctx.DropReason = why;
            if (countDrop) NetStack.Drop(ns, skb, why);
            else skb.Free();
            return false;
        }
        return true;
    }

    /// <summary>NF_HOOK(NFPROTO_IPV6) from the bridge: a frame for another host is PACKET_HOST to the IPv6 hooks
    /// (setup_pre_routing, br_nf_forward and br_nf_post_routing set it; nf_bridge->pkt_otherhost puts it back).</summary>
    private static bool Hook6(NetStack stack, Namespace ns, HookPoint hook, Skb skb, Device? inDev, Device? outDev, out DropReason why)
    {
        why = DropReason.None;
        if (!Ip6Netfilter.Active(ns)) return true;
        var type = skb.PktType;
        if (type == PacketType.OtherHost) skb.PktType = PacketType.Host;
        bool ok = Ip6Netfilter.Hook(stack, ns, hook, skb, inDev, outDev, out why);
        skb.PktType = type;
        return ok;
    }

    /// <summary>br_validate_ipv6: the header there (else InHdrErrors), version 6 (InHdrErrors), a hop-by-hop header's
    /// lengths (nf_ip6_check_hbh_len: dropped uncounted), the payload within the frame (InTruncatedPkts), then the
    /// frame trimmed to it. No address checks and no InReceives: those are ip6_rcv_core's.</summary>
    internal static DropReason ValidateIpv6(Skb skb, SnmpMib mib)
    {
        if (!skb.MayPull(40)) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6HeaderTruncated; }
        var h = NetStack.L3(skb);
        if (h[0] >> 4 != 6) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6BadVersion; }
        uint plen = BinaryPrimitives.ReadUInt16BigEndian(h[4..]);
        if (h[6] == IpProtocols.HopByHop && !HopByHopLengthsValid(skb, ref plen)) return DropReason.Ipv6BadOption;
        if (plen + 40 > skb.Len) { mib[SnmpCounter.Ip6InTruncatedPkts]++; return DropReason.Ipv6BadPayloadLength; }
        if (skb.Len > plen + 40) skb.Trim((int)plen + 40);
        return DropReason.None;
    }

    /// <summary>nf_ip6_check_hbh_len: the hop-by-hop header within the frame, its options within it (Pad1 alone, the
    /// rest type-length-value), a jumbo payload option well placed and only with payload length 0 (it then gives the
    /// length).</summary>
    private static bool HopByHopLengthsValid(Skb skb, ref uint plen)
    {
        if (!skb.MayPull(48)) return false;
        int len = (NetStack.L3(skb)[41] + 1) << 3;
        if (!skb.MayPull(40 + len)) return false;
        var nh = NetStack.L3(skb);
        int off = 42;
        len -= 2;
        while (len > 0)
        {
            if (nh[off] == 0) { off++; len--; continue; }
            if (len < 2) return false;
            int optlen = nh[off + 1] + 2;
            if (optlen > len) return false;
            if (nh[off] == 0xC2)
            {
                if (nh[off + 1] != 4 || (off & 3) != 2) return false;
                uint jumbo = BinaryPrimitives.ReadUInt32BigEndian(nh[(off + 2)..]);
                if (jumbo <= 65535 || BinaryPrimitives.ReadUInt16BigEndian(nh[4..]) != 0 || jumbo > skb.Len - 40) return false;
                plen = jumbo;
            }
            off += optlen;
            len -= optlen;
        }
        return len == 0;
    }
}
