using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>
/// IPv6 receive (net/ipv6/ip6_input.c, route.c, exthdrs.c): ip6_rcv_core's checks and counters, the hop-by-hop
/// options, PREROUTING, ip6_route_input's local / multicast / forward / reject decision, and ip6_input_finish's walk
/// over the extension headers to the transport protocol. The skb's data is at the IPv6 header from here on.
/// </summary>
public sealed class Ipv6Input : PacketHandler
{
    public override ushort EtherType => EtherTypes.Ipv6;

    /// <summary>ipv6_rcv: ip6_rcv_core, then PREROUTING and ip6_rcv_finish.</summary>
    public override void Receive(NetStack stack, Device dev, Skb skb, int nfSlot)
    {
        var ns = dev.Namespace;
        if (skb.PktType == PacketType.OtherHost) { NetStack.Drop(ns, skb, DropReason.OtherHost); return; }
        var why = RcvCore(stack, dev, skb);
        if (why != DropReason.None) { NetStack.Drop(ns, skb, why); return; }
        // nf_defrag_ipv6 (ipv6_defrag, priority -400): where IPv6 conntrack runs, fragments are gathered in front of it
        // and the rest of PREROUTING sees the whole datagram; an skb that already has a conntrack entry (looped back)
        // is left alone.
        // ip_sabotage_in (first in PREROUTING): a frame the bridge passed up after br_netfilter ran PREROUTING for it
        // (nfSlot) skips the hooks, nf_defrag_ipv6 included.
        if (nfSlot >= 0)
        {
            RcvFinish(stack, dev, skb);
            return;
        }
        if (Ip6Netfilter.Defrags(ns) && skb.Conntrack == null)
        {
            if (ns.NfDefrag6.Gather(stack, ns, dev, skb, NfDefragIpv6.ConntrackIn, out var datagram) != DefragResult.Complete) return;
            skb = datagram!;
        }
        if (Ip6Netfilter.Active(ns) && !Ip6Netfilter.Hook(stack, ns, HookPoint.PreRouting, skb, dev, null, out why))
        {
            NetStack.Drop(ns, skb, why);
            return;
        }
        RcvFinish(stack, dev, skb);
    }

    /// <summary>ip6_rcv_core: InReceives/InOctets, disable_ipv6 (InDiscards), version and address rules (InHdrErrors),
    /// payload length against the frame (InTruncatedPkts), the trim to it, the ECN counters, the hop-by-hop options.</summary>
    private static DropReason RcvCore(NetStack stack, Device dev, Skb skb)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        mib[SnmpCounter.Ip6InReceives]++;
        mib.Add(SnmpCounter.Ip6InOctets, skb.Len);
        if (ns.Ipv6Disabled(dev)) { mib[SnmpCounter.Ip6InDiscards]++; return DropReason.Ipv6Disabled; }
        if (!skb.MayPull(40)) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6HeaderTruncated; }
        var h = skb.LinearData;
        if (h[0] >> 4 != 6) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6BadVersion; }
        int ecn = (BinaryPrimitives.ReadUInt16BigEndian(h) >> 4) & 3;
        mib.Add(SnmpCounter.Ip6InNoECTPkts + ecn switch { 0 => 0, 1 => 1, 2 => 2, _ => 3 }, Math.Max(1, skb.IsGso ? skb.GsoSegs : 1));
        var src = Ipv6.Read(h[8..]);
        var dst = Ipv6.Read(h[24..]);
        bool loopDev = dev.Kind.IsLoopback;
        bool bad = ((src == Ipv6.Loopback || dst == Ipv6.Loopback) && !loopDev)
                   || (Ipv6.IsMulticast(dst) && Ipv6.MulticastScope(dst) == 1 && !loopDev && skb.PktType != PacketType.Loopback)
                   || (Ipv6.IsMulticast(dst) && Ipv6.MulticastScope(dst) == 0)
                   || Ipv6.IsMulticast(src);
        if (bad) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6BadAddress; }
        int plen = BinaryPrimitives.ReadUInt16BigEndian(h[4..]);
        byte nh = h[6];
        if (plen != 0 || nh != IpProtocols.HopByHop)
        {
            if (plen + 40 > skb.Len) { mib[SnmpCounter.Ip6InTruncatedPkts]++; return DropReason.Ipv6BadPayloadLength; }
            if (skb.Len > plen + 40) skb.Trim(plen + 40);
        }
        if ((skb.Cloned || skb.HeadShared) && !skb.UnshareHead()) { mib[SnmpCounter.Ip6InDiscards]++; return DropReason.SkbAllocFailed; }
        skb.ResetNetworkHeader();
        skb.SetTransportHeader(40);
        skb.FragMaxSize = 0;
        skb.IgnoreDf = false;
        if (nh == IpProtocols.HopByHop)
        {
            // ipv6_parse_hopopts: the header must be there whole; a failure of any kind is InHdrErrors.
            var r = ParseTlv(stack, dev, skb, 40, hopByHop: true);
            if (r != DropReason.None) { mib[SnmpCounter.Ip6InHdrErrors]++; return r; }
        }
        return DropReason.None;
    }

    /// <summary>ip6_parse_tlv over the options header at <paramref name="off"/> (hop-by-hop or destination options):
    /// padding at most 7 bytes and zero, at most 8 options, each within the header; router alert of length 2; a jumbo
    /// payload option in a datagram under 64 KB is a parameter problem; an unknown option acts by its two top bits
    /// (skip, drop, parameter problem 2, parameter problem unless to a multicast address). The skb is kept; the
    /// caller drops it on a reason.</summary>
    internal static DropReason ParseTlv(NetStack stack, Device dev, Skb skb, int off, bool hopByHop)
    {
        if (!skb.MayPull(Math.Min(skb.Len, off + 8)) || skb.Len < off + 8) return DropReason.Ipv6ExtHeaderTruncated;
        int hlen = (skb.LinearData[off + 1] + 1) << 3;
        if (skb.Len < off + hlen || !skb.MayPull(off + hlen)) return DropReason.Ipv6ExtHeaderTruncated;
        var nh = NetStack.L3(skb);
        int len = hlen - 2, p = off + 2, pad = 0, count = 0;
        while (len > 0)
        {
            if (nh[p] == 0) // Pad1
            {
                if (++pad > 7) return DropReason.Ipv6BadOption;
                p++;
                len--;
                continue;
            }
            if (len < 2) return DropReason.Ipv6BadOption;
            int optlen = nh[p + 1] + 2;
            if (optlen > len) return DropReason.Ipv6BadOption;
            if (nh[p] == 1) // PadN
            {
                pad += optlen;
                if (pad > 7) return DropReason.Ipv6BadOption;
                for (int i = 2; i < optlen; i++)
                    if (nh[p + i] != 0) return DropReason.Ipv6BadOption;
            }
            else
            {
                if (++count > 8) return DropReason.Ipv6BadOption;
                byte type = nh[p];
                if (hopByHop && type == 5)
                {
                    // ipv6_hop_ra: two bytes of value; no router-alert socket here, so nothing else happens.
                    if (nh[p + 1] != 2) return DropReason.Ipv6BadOption;
                }
                else if (hopByHop && type == 0xC2)
                {
                    // ipv6_hop_jumbo: length 4 at 4n+2; a jumbo length under 64 KB is a parameter problem.
                    if (nh[p + 1] != 4 || (p & 3) != 2) return ParamProblem(stack, dev, skb, 0, p + 1);
                    uint jumbo = BinaryPrimitives.ReadUInt32BigEndian(nh[(p + 2)..]);
                    if (jumbo <= 65535) return ParamProblem(stack, dev, skb, 0, p + 2);
                    if (BinaryPrimitives.ReadUInt16BigEndian(nh[4..]) != 0) return ParamProblem(stack, dev, skb, 0, p);
                    return DropReason.Ipv6BadPayloadLength;
                }
                else
                {
                    // ip6_tlvopt_unknown
                    switch (type >> 6)
                    {
                        case 0: break;
                        case 1: return DropReason.Ipv6BadOption;
                        case 3 when Ipv6.IsMulticast(Ipv6.Read(nh[24..])): return DropReason.Ipv6BadOption;
                        default: return ParamProblem(stack, dev, skb, 2, p);
                    }
                }
                pad = 0;
            }
            p += optlen;
            len -= optlen;
        }
        return DropReason.None;
    }

    /// <summary>icmpv6_param_prob_reason: a parameter problem pointing at <paramref name="pointer"/> (from the IPv6
    /// header), then the drop.</summary>
    internal static DropReason ParamProblem(NetStack stack, Device dev, Skb skb, byte code, int pointer)
    {
        Icmpv6.Send(stack, dev.Namespace, skb, dev, Icmpv6View.ParameterProblem, code, (uint)pointer);
        return DropReason.Ipv6BadOption;
    }

    /// <summary>ip6_rcv_finish → ip6_route_input → dst_input: local (ip6_input), multicast (ip6_mc_input), forward
    /// (ip6_forward), or the reject routes (ip6_pkt_discard / ip6_pkt_prohibit, dst_discard).</summary>
    private static void RcvFinish(NetStack stack, Device dev, Skb skb)
    {
        var ns = dev.Namespace;
        var pkt = NetStack.L3(skb);
        var dst = Ipv6.Read(pkt[24..]);
        var route = ns.Routing6.Lookup(dst);
        // A link-local or multicast destination is looked up on the arrival device only (RT6_LOOKUP_F_IFACE).
        if (route != null && route.Type is RouteKind.Local or RouteKind.Anycast or RouteKind.Multicast && route.Device != dev
            && (Ipv6.IsLinkLocal(dst) || Ipv6.IsMulticast(dst)))
            route = route.Type == RouteKind.Multicast ? (ns.JoinedGroup6(dev, Ipv6.AllNodes) ? route : null) : ns.Routing6.LookupMain(dst);
        // A link-local destination that is not ours is on the arrival device's link.
        if (Ipv6.IsLinkLocal(dst) && route is not { Type: RouteKind.Local or RouteKind.Anycast })
            route = ns.LinkLocalRoute6(dev);
        switch (route?.Type)
        {
            case RouteKind.Local or RouteKind.Anycast:
                LocalDeliver(stack, dev, skb, route.Type == RouteKind.Anycast);
                return;
            case RouteKind.Multicast:
                // ip6_mc_input: counted, delivered only to a group the device joined.
                ns.Mib[SnmpCounter.Ip6InMcastPkts]++;
                ns.Mib.Add(SnmpCounter.Ip6InMcastOctets, skb.Len);
                if (!ns.JoinedGroup6(dev, dst)) { NetStack.Drop(ns, skb, DropReason.MulticastNotJoined); return; }
                LocalDeliver(stack, dev, skb, false);
                return;
            case RouteKind.Unicast:
                Ipv6Forward.Forward(stack, dev, skb, route);
                return;
            case RouteKind.Blackhole:
                NetStack.Drop(ns, skb, DropReason.IpBlackhole);
                return;
            case RouteKind.Prohibit:
                PktDrop(stack, dev, skb, 1, DropReason.IpRouteProhibited);
                return;
            default:
                PktDrop(stack, dev, skb, 0, DropReason.Ipv6NoRoute);
                return;
        }
    }

    /// <summary>ip6_pkt_drop for input: InNoRoutes (InAddrErrors for the unspecified destination), then ICMPv6
    /// destination unreachable with <paramref name="code"/>.</summary>
    private static void PktDrop(NetStack stack, Device dev, Skb skb, byte code, DropReason reason)
    {
        var ns = dev.Namespace;
        var dst = Ipv6.Read(NetStack.L3(skb)[24..]);
        if (dst == 0) { ns.Mib[SnmpCounter.Ip6InAddrErrors]++; NetStack.Drop(ns, skb, DropReason.Ipv6BadAddress); return; }
        ns.Mib[SnmpCounter.Ip6InNoRoutes]++;
        Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.DestinationUnreachable, code, 0);
        NetStack.Drop(ns, skb, reason);
    }

    /// <summary>inet6_protos entries a kernel always has that Softnet does not model further (UDP-Lite): taken and
    /// consumed.</summary>
    private static bool KernelHasHandler(byte proto) => proto is 136;

    /// <summary>ip6_input (LOCAL_IN) → ip6_input_finish → ip6_protocol_deliver_rcu: the extension headers after the
    /// hop-by-hop one are handled in turn (routing, destination options, fragment), then the transport protocol;
    /// an unknown next header is InUnknownProtos with a parameter problem pointing at the field that named it.</summary>
    internal static void LocalDeliver(NetStack stack, Device dev, Skb skb, bool anycast)
    {
        var ns = dev.Namespace;
        if (Ip6Netfilter.Active(ns) && !Ip6Netfilter.Hook(stack, ns, HookPoint.LocalIn, skb, dev, null, out var why))
        {
            NetStack.Drop(ns, skb, why);
            return;
        }
        var c = ns.Counters;
        var mib = ns.Mib;
        var pkt = NetStack.L3(skb);
        int nhoff = 6;
        int off = 40;
        bool fragmented = false;
        byte nh = pkt[6];
        if (nh == IpProtocols.HopByHop)
        {
            // Parsed by ip6_rcv_core already.
            nhoff = 40;
            nh = pkt[40];
            off = 40 + ((pkt[41] + 1) << 3);
        }
        while (true)
        {
            pkt = NetStack.L3(skb);
            switch (nh)
            {
                case IpProtocols.Routing:
                {
                    var r = RoutingHeader(stack, dev, skb, off);
                    if (r != DropReason.None) { NetStack.Drop(ns, skb, r); return; }
                    pkt = NetStack.L3(skb);
                    nhoff = off;
                    nh = pkt[off];
                    off += (pkt[off + 1] + 1) << 3;
                    continue;
                }
                case IpProtocols.DestinationOptions:
                {
                    var r = ParseTlv(stack, dev, skb, off, hopByHop: false);
                    if (r != DropReason.None) { mib[SnmpCounter.Ip6InHdrErrors]++; NetStack.Drop(ns, skb, r); return; }
                    pkt = NetStack.L3(skb);
                    nhoff = off;
                    nh = pkt[off];
                    off += (pkt[off + 1] + 1) << 3;
                    continue;
                }
                case IpProtocols.Fragment:
                {
                    // ipv6_frag_rcv: the datagram comes back whole (its fragment header removed), or is held.
                    var res = ns.Defrag6.Receive(stack, dev, skb, off, ref nhoff, fragmented, out var datagram, out nh, out off);
                    if (res != DefragResult.Complete) return;
                    skb = datagram!;
                    fragmented = true;
                    continue;
                }
                case IpProtocols.NoNextHeader:
                    // nodata_protocol: dst_discard, counted delivered.
                    Deliver(c, mib, nh);
                    skb.Free();
                    return;
            }
            break;
        }
        skb.SetTransportHeader(off);
        switch (nh)
        {
            case IpProtocols.Icmpv6:
                Deliver(c, mib, nh);
                Icmpv6.Receive(stack, dev, skb, off, anycast);
                return;
            case IpProtocols.Udp:
                Deliver(c, mib, nh);
                Transport.Udp6Receive.Receive(stack, dev, skb, off);
                return;
            case IpProtocols.Tcp:
                Deliver(c, mib, nh);
                Transport.Tcp6Receive.Receive(stack, dev, skb, off);
                return;
        }
        if (KernelHasHandler(nh))
        {
            Deliver(c, mib, nh);
            skb.Free();
            return;
        }
        mib[SnmpCounter.Ip6InUnknownProtos]++;
        Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.ParameterProblem, 1, (uint)nhoff);
        NetStack.Drop(ns, skb, DropReason.Ipv6UnknownNextHeader);
    }

    private static void Deliver(NamespaceCounters c, SnmpMib mib, byte proto)
    {
        System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(c.Delivered, proto, out _)++;
        mib[SnmpCounter.Ip6InDelivers]++;
    }

    /// <summary>ipv6_rthdr_rcv: the header whole (else InHdrErrors), a unicast destination addressed to us (else
    /// InAddrErrors); with no segments left it is skipped; otherwise a type this host does not process (0 is
    /// deprecated, 2 is Mobile IPv6, 3 and 4 are off by default) is a parameter problem at its type field.</summary>
    private static DropReason RoutingHeader(NetStack stack, Device dev, Skb skb, int off)
    {
        var mib = dev.Namespace.Mib;
        if (skb.Len < off + 8 || !skb.MayPull(off + 8)) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6ExtHeaderTruncated; }
        int hlen = (skb.LinearData[off + 1] + 1) << 3;
        if (skb.Len < off + hlen || !skb.MayPull(off + hlen)) { mib[SnmpCounter.Ip6InHdrErrors]++; return DropReason.Ipv6ExtHeaderTruncated; }
        var pkt = NetStack.L3(skb);
        if (Ipv6.IsMulticast(Ipv6.Read(pkt[24..])) || skb.PktType != PacketType.Host)
        {
            mib[SnmpCounter.Ip6InAddrErrors]++;
            return DropReason.Ipv6BadRoutingHeader;
        }
        // Segment routing (type 4) and RPL (3) are dropped uncounted while seg6_enabled / rpl_seg_enabled are 0.
        if (pkt[off + 2] is 3 or 4) return DropReason.Ipv6BadRoutingHeader;
        if (pkt[off + 3] == 0) return DropReason.None;
        mib[SnmpCounter.Ip6InHdrErrors]++;
        Icmpv6.Send(stack, dev.Namespace, skb, dev, Icmpv6View.ParameterProblem, 0, (uint)(off + 2));
        return DropReason.Ipv6BadRoutingHeader;
    }
}
