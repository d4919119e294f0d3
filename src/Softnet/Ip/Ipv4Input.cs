using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>
/// IPv4 receive (net/ipv4/ip_input.c, route.c): ip_rcv_core's header checks, PREROUTING, ip_route_input_slow's
/// local / broadcast / forward decision with its martian checks, and ip_local_deliver. The skb's data is at the
/// IP header from here on.
/// </summary>
public sealed class Ipv4Input : PacketHandler
{
    public override ushort EtherType => EtherTypes.Ipv4;

    /// <summary>ip_rcv: header checks, trim to tot_len; then PREROUTING and the routing decision.</summary>
    public override void Receive(NetStack stack, Device dev, Skb skb, int nfSlot)
    {
        var ns = dev.Namespace;
        if (skb.PktType == PacketType.OtherHost) { NetStack.Drop(ns, skb, DropReason.OtherHost); return; }
        // ip_rcv_core: IPSTATS_MIB_IN (InReceives, InOctets) before any check, skb->len as it came (padding included).
        ns.Mib[SnmpCounter.IpInReceives]++;
        ns.Mib.Add(SnmpCounter.IpExtInOctets, skb.Len);
        var why = ValidateHeader(skb, ns.Mib);
        if (why != DropReason.None) { NetStack.Drop(ns, skb, why); return; }
        // ip_rcv_core clears IPCB, and skb_scrub_packet ignore_df when the skb crossed from another namespace: a
        // datagram reassembled there arrives here as an ordinary packet.
        skb.FragMaxSize = 0;
        skb.FragPmtu = false;
        skb.IgnoreDf = false;

        // nf_defrag_ipv4 (ipv4_conntrack_defrag, priority -400): where conntrack runs, fragments are gathered in front
        // of it and the rest of PREROUTING sees the whole datagram; an skb that already has a conntrack entry (looped
        // back) is left alone. The bridge's PREROUTING (nfSlot) does not gather them here.
        if (nfSlot < 0 && ns.HasIptables && ns.Netfilter.ConntrackEnabled && skb.Conntrack == null && Ipv4Defrag.IsFragment(skb))
        {
            if (ns.Defrag.Defrag(stack, ns, dev, skb, DefragUser.ConntrackIn, out var datagram) != DefragResult.Complete) return;
            skb = datagram!;
            // nf_ct_ipv4_gather_frags: DF no longer stops the datagram from being cut again on output.
            skb.IgnoreDf = true;
        }
        PacketContext ctx = default;
        if (nfSlot >= 0)
        {
            // ip_sabotage_in: br_netfilter already ran PREROUTING for this frame.
            ctx = stack.NfSlot(nfSlot);
            ctx.InInterface = dev.Name;
        }
        else if (ns.HasIptables)
        {
            if (!FillContext(skb, ref ctx, out why)) { NetStack.Drop(ns, skb, why); return; }
            ctx.InInterface = dev.Name;
            if (!Hook(ns, HookPoint.PreRouting, skb, ref ctx)) { NetStack.Drop(ns, skb, ctx.DropReason); return; }
        }
        RouteInput(stack, dev, skb, ref ctx);
    }

    /// <summary>ip_rcv_core: version, IHL, header checksum, total length against the frame; the frame is trimmed
    /// to tot_len (pskb_trim_rcsum: Ethernet padding goes) and given a private head if it shares one (a flooded
    /// clone: skb_cow before anything rewrites it). Returns the drop reason, or None. A failure is counted in
    /// <paramref name="mib"/> as ip_rcv_core and br_validate_ipv4 count it (InHdrErrors, with InCsumErrors for a bad
    /// checksum; InTruncatedPkts when the frame is shorter than tot_len; InDiscards when the skb cannot be made
    /// private); InReceives is the caller's, since br_validate_ipv4 does not count it.</summary>
    public static DropReason ValidateHeader(Skb skb, SnmpMib mib)
    {
        // IPCB is cleared (ip_rcv_core, br_validate_ipv4): no options compiled for another header survive.
        skb.IpOpt = default;
        if (!skb.MayPull(20)) { mib[SnmpCounter.IpInHdrErrors]++; return DropReason.IpHeaderTruncated; }
        skb.MayPull(Math.Min(skb.Len, (skb.LinearData[0] & 0xF) * 4));
        if (!Ipv4View.TryParseReceived(skb.LinearData, skb.Len, out var ip, out var reason))
        {
            if (reason == DropReason.IpCsumError) mib[SnmpCounter.IpExtInCsumErrors]++;
            if (reason == DropReason.IpBadTotalLength && BinaryPrimitives.ReadUInt16BigEndian(skb.LinearData[2..]) > skb.Len)
                mib[SnmpCounter.IpExtInTruncatedPkts]++;
            else mib[SnmpCounter.IpInHdrErrors]++;
            return reason;
        }
        int total = ip.TotalLength, hl = ip.HeaderLength;
        byte proto = ip.Protocol;
        bool first = ip.FragmentOffset == 0;
        if (skb.Len > total) skb.Trim(total);
        if ((skb.Cloned || skb.HeadShared) && !skb.UnshareHead()) { mib[SnmpCounter.IpInDiscards]++; return DropReason.SkbAllocFailed; }
        skb.ResetNetworkHeader();
        skb.SetTransportHeader(hl);
        // The transport header linear, as far as netfilter and NAT read it.
        int l4 = proto switch { IpProtocols.Tcp => 20, IpProtocols.Udp => 8, IpProtocols.Icmp => 8, _ => 0 };
        if (l4 > 0 && first && skb.Len >= hl + l4 && skb.MayPull(hl + l4))
        {
            if (proto == IpProtocols.Tcp)
                skb.MayPull(Math.Min(skb.Len, hl + Math.Max(20, (skb.LinearData[hl + 12] >> 4) * 4)));
            else if (proto == IpProtocols.Icmp)
                skb.MayPull(Math.Min(skb.Len, hl + 8 + 60 + 8)); // an error's quoted header
        }
        return DropReason.None;
    }

    /// <summary>What netfilter reads of the packet, from the header views at the skb's offsets. The IPv4 header is the
    /// one <see cref="ValidateHeader"/> checked (or one this stack built): it is read, not parsed again.</summary>
    public static bool FillContext(Skb skb, ref PacketContext ctx, out DropReason reason)
    {
        if (!PacketContext.FromIpv4(Ipv4View.Checked(NetStack.L3(skb)), out ctx, out reason)) return false;
        ctx.TimestampNs = skb.TimestampNs;
        ctx.Mark = skb.Mark;
        ctx.PktType = skb.PktType;
        ctx.IpSummed = skb.IpSummed;
        ctx.Gso = skb.IsGso;
        if (skb.MacHeaderWasSet) ctx.SrcMac = PacketContext.MacOf(skb.HeadBuffer.Slice(skb.MacHeader + 6, 6));
        // skb_csum_unnecessary: GRO (or the device) verified it, or the sender's checksum is still to be filled.
        ctx.ChecksumVerified = ChecksumUnnecessary(skb);
        return true;
    }

    /// <summary>skb_csum_unnecessary: the transport checksum needs no software check (CHECKSUM_UNNECESSARY, or
    /// CHECKSUM_PARTIAL: still to be filled in; a GSO skb's segments were checked when GRO merged them).</summary>
    public static bool ChecksumUnnecessary(Skb skb)
        => skb.IpSummed is CsumState.Unnecessary or CsumState.Partial || skb.IsGso;

    /// <summary>NF_HOOK for one IPv4 hook on <paramref name="skb"/>: the namespace's hook functions in priority order
    /// over the datagram; the skb then carries the result (_nfct, mark). False on NF_DROP.</summary>
    public static bool Hook(Link.Namespace ns, HookPoint hook, Skb skb, ref PacketContext ctx)
    {
        Verdict v;
        int traceId = ctx.TraceId = skb.TraceId;
        string? traceBefore = traceId != 0 ? PacketTracer.Current?.HookBegin(ns, NetStack.L3(skb)) : null;
        if (ns.Netfilter.MayGrowPackets && !skb.IsNonlinear)
        {
            // A target may lengthen the datagram (TCPMSS inserting its option; the kernel expands the skb): the hook
            // sees the tailroom behind it, and the skb takes the new length.
            int room = Math.Min(NetfilterTables.MaxGrowth, skb.Tailroom);
            int before = ctx.Length;
            v = ns.Netfilter.Hook(hook, ref ctx, skb.HeadBuffer.Slice(skb.NetworkHeader, skb.Tail - skb.NetworkHeader + room));
            if (ctx.Length > before) skb.Put(ctx.Length - before);
        }
        else v = ns.Netfilter.Hook(hook, ref ctx, NetStack.L3(skb));
        skb.Conntrack = ctx.Ct;
        skb.CtInfo = (byte)ctx.CtInfo;
        skb.Mark = ctx.Mark;
        if (traceId != 0) PacketTracer.Current?.HookDone(traceId, ns, hook, traceBefore ?? "", NetStack.L3(skb), ctx.Ct, ctx.CtInfo, v);
        return v == Verdict.Accept;
    }

    /// <summary>The route MTUs netfilter sees (TCPMSS --clamp-mss-to-pmtu): dst_mtu of the output route, and the MTU
    /// of the route back to the source address (tcpmss_reverse_mtu; 0 when there is none). Only TCPMSS reads them,
    /// so callers fill them only where the namespace's rules have it (<see cref="NetfilterTables.MayGrowPackets"/>).</summary>
    public static void SetRouteMtu(Link.Namespace ns, Skb skb, Device outDev, ref PacketContext ctx)
    {
        ctx.OutMtu = outDev.Mtu;
        var back = ns.Routing.Lookup(BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(skb)[12..]));
        ctx.ReverseMtu = back?.Device?.Mtu ?? 0;
    }

    private static bool IsMulticast(uint a) => (a >> 28) == 0xE;
    private static bool IsLoopback(uint a) => (a >> 24) == 127;
    /// <summary>ipv4_is_zeronet: 0.0.0.0/8.</summary>
    private static bool IsZeroNet(uint a) => (a >> 24) == 0;

    /// <summary>ip_route_input_slow: martians, local/broadcast, forward or ip_error.</summary>
    private static void RouteInput(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var pkt = NetStack.L3(skb);
        uint src = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        if (IsMulticast(dst))
        {
            // ip_check_mc_rcu: a device is a member of 224.0.0.1; IGMP is always taken.
            if (IsMulticast(src) || src == 0xFFFFFFFF) { NetStack.Drop(ns, skb, DropReason.IpMartianSource); return; }
            if (dst == 0xE0000001 || pkt[9] == IpProtocols.Igmp)
            {
                if (!Options(stack, dev, skb, RouteType.Multicast, out _)) return;
                LocalDeliver(stack, dev, skb, ref ctx);
                return;
            }
            NetStack.Drop(ns, skb, DropReason.MulticastNotJoined);
            return;
        }
        if (IsMulticast(src) || src == 0xFFFFFFFF) { NetStack.Drop(ns, skb, DropReason.IpMartianSource); return; }
        // Limited broadcast, or 0.0.0.0 → 0.0.0.0: brd_input, which validates any non-zero source.
        if (dst == 0xFFFFFFFF || (src == 0 && dst == 0))
        {
            if (!IsZeroNet(src) && !ValidateSource(dev, src, out var r)) { NetStack.Drop(ns, skb, r); return; }
            if (!Options(stack, dev, skb, RouteType.Broadcast, out _)) return;
            // ip_rcv_finish_core: an RTN_BROADCAST route counts IPSTATS_MIB_INBCAST.
            ns.Mib[SnmpCounter.IpExtInBcastPkts]++;
            LocalDeliver(stack, dev, skb, ref ctx);
            return;
        }
        if (IsZeroNet(src)) { NetStack.Drop(ns, skb, DropReason.IpMartianSource); return; }
        if (IsZeroNet(dst) || IsLoopback(dst)) { NetStack.Drop(ns, skb, DropReason.IpMartianDestination); return; }
        if (IsLoopback(src)) { NetStack.Drop(ns, skb, DropReason.IpMartianSource); return; }

        var route = ns.Routing.Lookup(dst);
        skb.Dst = route;
        if (skb.TraceId != 0) PacketTracer.Current?.RouteInput(skb.TraceId, ns, route, ns.Forwarding(dev));
        if (route is { Type: RouteKind.Broadcast or RouteKind.Local })
        {
            if (!ValidateSource(dev, src, out var r)) { NetStack.Drop(ns, skb, r); return; }
            if (!Options(stack, dev, skb, route.Type == RouteKind.Broadcast ? RouteType.Broadcast : RouteType.Local, out var hop)) return;
            // ip_options_rcv_srr: a source route through this host goes on to its next hop (dst_input of the new route).
            if (hop != null) { Ipv4Forward.Forward(stack, dev, skb, hop, ref ctx); return; }
            if (route.Type == RouteKind.Broadcast) ns.Mib[SnmpCounter.IpExtInBcastPkts]++;
            LocalDeliver(stack, dev, skb, ref ctx);
            return;
        }
        // ip_route_input_slow gives every failure below an RTN_UNREACHABLE route whose input is ip_error: the options
        // are compiled first (ip_rcv_finish_core), and a source route dies there without an ICMP error.
        if (!ns.Forwarding(dev) || route?.Type is null or RouteKind.Blackhole or RouteKind.Unreachable or RouteKind.Prohibit)
        {
            if (!Options(stack, dev, skb, RouteType.Unreachable, out _)) return;
        }
        if (!ns.Forwarding(dev))
        {
            // ip_route_input_slow turns any route (or none) into -EHOSTUNREACH without forwarding; ip_error counts
            // that as InAddrErrors and sends nothing.
            ns.Mib[SnmpCounter.IpInAddrErrors]++;
            NetStack.Drop(ns, skb, DropReason.IpForwardingDisabled);
            return;
        }
        switch (route?.Type)
        {
            case null:
                Icmp.IpError(stack, dev, skb, 0, DropReason.IpNoRoute);
                return;
            case RouteKind.Blackhole:
                NetStack.Drop(ns, skb, DropReason.IpBlackhole);
                return;
            case RouteKind.Unreachable:
                Icmp.IpError(stack, dev, skb, 1, DropReason.IpRouteUnreachable);
                return;
            case RouteKind.Prohibit:
                Icmp.IpError(stack, dev, skb, 13, DropReason.IpRouteProhibited);
                return;
        }
        if (!ValidateSource(dev, src, out var why)) { NetStack.Drop(ns, skb, why); return; }
        if (!Options(stack, dev, skb, RouteType.Unicast, out _)) return;
        Ipv4Forward.Forward(stack, dev, skb, route!, ref ctx, DoRedirect(dev, route!, src, dst));
    }

    /// <summary>ip_rcv_finish_core's `iph->ihl > 5` test in front of <see cref="RcvOptions"/>: a header without options
    /// costs one byte read.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool Options(NetStack stack, Device dev, Skb skb, RouteType rt, out Route? nextHop)
    {
        nextHop = null;
        return (skb.HeadBuffer[skb.NetworkHeader] & 0xF) <= 5 || RcvOptions(stack, dev, skb, rt, out nextHop);
    }

    /// <summary>
    /// ip_rcv_options, once the input route is known (<paramref name="rt"/>, its RTN_* type): ip_options_compile
    /// over the header (a malformed option: InHdrErrors, an ICMP parameter problem pointing at it, the drop);
    /// a source route is dropped unless accept_source_route allows it on <paramref name="dev"/>, then walked by
    /// ip_options_rcv_srr (<paramref name="nextHop"/>: the route to go on by). False when the skb was consumed.
    /// </summary>
    private static bool RcvOptions(NetStack stack, Device dev, Skb skb, RouteType rt, out Route? nextHop)
    {
        nextHop = null;
        var iph = NetStack.L3(skb);
        int hl = (iph[0] & 0xF) * 4;
        var ns = dev.Namespace;
        uint src = BinaryPrimitives.ReadUInt32BigEndian(iph[12..]);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(iph[16..]);
        uint specDst = SpecDst(ns, dev, rt, src, dst);
        if (!Ipv4Options.Compile(iph[..hl], ref skb.IpOpt, specDst, Ipv4Options.Timestamp32(stack.Now), ns, out int problem))
        {
            ns.Mib[SnmpCounter.IpInHdrErrors]++;
            Icmp.Send(stack, ns, skb, dev, 12, 0, (uint)problem << 24, localDestination: rt == RouteType.Local);
            NetStack.Drop(ns, skb, DropReason.IpOptionsMalformed);
            return false;
        }
        if (skb.IpOpt.Srr == 0) return true;
        if (!ns.AcceptSourceRoute(dev)) { NetStack.Drop(ns, skb, DropReason.IpSourceRouteRejected); return false; }
        return RcvSrr(stack, dev, skb, rt, out nextHop);
    }

    /// <summary>ip_options_rcv_srr: a source route is followed only in a datagram addressed to this host (a loose one
    /// passing by is forwarded as it is; a strict one gets a parameter problem pointing at 16). Each listed hop that is
    /// ours becomes the destination in turn; the first that is not gives the route onward (srr_is_hit).</summary>
    private static bool RcvSrr(NetStack stack, Device dev, Skb skb, RouteType rt, out Route? nextHop)
    {
        nextHop = null;
        var ns = dev.Namespace;
        ref var opt = ref skb.IpOpt;
        if (skb.PktType != PacketType.Host) { NetStack.Drop(ns, skb, DropReason.IpSourceRouteFailed); return false; }
        if (rt == RouteType.Unicast)
        {
            if (!opt.IsStrictRoute) return true;
            Icmp.Send(stack, ns, skb, dev, 12, 0, 16u << 24, localDestination: false);
            NetStack.Drop(ns, skb, DropReason.IpSourceRouteFailed);
            return false;
        }
        if (rt != RouteType.Local) { NetStack.Drop(ns, skb, DropReason.IpSourceRouteFailed); return false; }
        var iph = NetStack.L3(skb);
        uint src = BinaryPrimitives.ReadUInt32BigEndian(iph[12..]);
        var o = iph[opt.Srr..];
        int srrptr, srrspace = o[1];
        uint hop = 0;
        Route? hopRoute = null;
        for (srrptr = o[2]; srrptr <= srrspace; srrptr += 4)
        {
            if (srrptr + 3 > srrspace)
            {
                Icmp.Send(stack, ns, skb, dev, 12, 0, (uint)(opt.Srr + 2) << 24, localDestination: true);
                NetStack.Drop(ns, skb, DropReason.IpSourceRouteFailed);
                return false;
            }
            hop = BinaryPrimitives.ReadUInt32BigEndian(o[(srrptr - 1)..]);
            hopRoute = HopRoute(dev, src, hop, out bool local);
            if (hopRoute == null) { NetStack.Drop(ns, skb, DropReason.IpSourceRouteFailed); return false; }
            skb.Dst = hopRoute;
            if (!local) break;
            // A hop that is ours: it becomes the destination, and the walk goes on.
            BinaryPrimitives.WriteUInt32BigEndian(iph[16..], hop);
            opt.IsChanged = true;
        }
        if (srrptr <= srrspace)
        {
            opt.SrrIsHit = true;
            opt.Nexthop = hop;
            opt.IsChanged = true;
            nextHop = hopRoute;
        }
        return true;
    }

    /// <summary>ip_route_input for a source route's hop: its local route, or a unicast route this device may forward
    /// by (source validated); null for anything else (broadcast, martian, no route, forwarding off).</summary>
    private static Route? HopRoute(Device dev, uint src, uint hop, out bool local)
    {
        local = false;
        var ns = dev.Namespace;
        if (IsMulticast(hop) || hop == 0xFFFFFFFF || IsZeroNet(hop) || IsLoopback(hop)) return null;
        var r = ns.Routing.Lookup(hop);
        if (r is { Type: RouteKind.Local })
        {
            local = true;
            return ValidateSource(dev, src, out _) ? r : null;
        }
        if (r is not { Type: RouteKind.Unicast, Device: not null } || !ns.Forwarding(dev)) return null;
        return ValidateSource(dev, src, out _) ? r : null;
    }

    /// <summary>fib_compute_spec_dst: the destination itself on a local route; otherwise our preferred source on the
    /// route back to the sender (or the input device's address facing it).</summary>
    private static uint SpecDst(Link.Namespace ns, Device dev, RouteType rt, uint src, uint dst)
    {
        if (rt == RouteType.Local) return dst;
        if (!IsZeroNet(src) && ns.Routing.Lookup(src) is { Type: RouteKind.Unicast or RouteKind.Local } back)
            return back.Source != 0 ? back.Source : ns.SelectAddress(back.Device, back.Gateway);
        return ns.SelectAddress(dev, src);
    }

    /// <summary>ip_rt_get_source for a forwarded datagram: the preferred source of its output route.</summary>
    public static uint RouteSource(Link.Namespace ns, Route route)
        => route.Source != 0 ? route.Source : ns.SelectAddress(route.Device, route.Gateway);

    /// <summary>inet_protos entries a kernel always has (igmp_rcv, tcp_v4_rcv, udp_rcv) that Softnet has no handler
    /// for yet.</summary>
    private static bool KernelHasHandler(byte proto) => proto is IpProtocols.Igmp or IpProtocols.Tcp or IpProtocols.Udp;

    /// <summary>fib_validate_source: our own address as source is a martian unless accept_local (IN_DEV_ACCEPT_LOCAL:
    /// conf.all or the device) says otherwise; rp_filter 1 wants the reverse route through the input device, 2 any
    /// reverse route.</summary>
    public static bool ValidateSource(Device dev, uint src, out DropReason reason)
    {
        var ns = dev.Namespace;
        reason = DropReason.None;
        int rpf = ns.RpFilter(dev);
        if (ns.Routing.LookupLocal(src) is { Type: RouteKind.Local } local)
        {
            if (!ns.AcceptLocal(dev)) { reason = DropReason.IpMartianSource; return false; }
            // __fib_validate_source: the reverse lookup finds the local route; it passes when its device is the input
            // device, and loose mode passes it anyway; strict mode refuses one on another device.
            if (rpf == 0 || rpf == 2 || local.Device == dev) return true;
            reason = DropReason.IpRpFilter;
            return false;
        }
        if (rpf == 0) return true;
        var back = ns.Routing.LookupMain(src);
        bool ok = back is { Type: RouteKind.Unicast } && (rpf == 2 || back.Device == dev);
        if (!ok) reason = DropReason.IpRpFilter;
        return ok;
    }

    /// <summary>
    /// __mkroute_input's IPSKB_DOREDIRECT: the datagram leaves by the device it came in on, send_redirects holds there,
    /// fib_validate_source found the sender directly reachable through that device (its route back has no gateway:
    /// nexthop scope host), and the sender and the next hop share a subnet of the device unless shared_media says every
    /// host on the link reaches every other. Where the best route back leaves by another device, __fib_validate_source
    /// looks again bound to the input device (strict rp_filter has refused the datagram by then).
    /// </summary>
    private static bool DoRedirect(Device dev, Route route, uint src, uint dst)
    {
        if (route.Device != dev) return false;
        var ns = dev.Namespace;
        if (!ns.SendRedirects(dev)) return false;
        var back = ns.Routing.Lookup(src);
        if (back is not { Type: RouteKind.Unicast or RouteKind.Local }) return false;
        if (back.Device != dev)
        {
            back = ns.Routing.Lookup(src, dev.Ifindex);
            if (back is not { Type: RouteKind.Unicast }) return false;
        }
        if (back.Gateway != 0) return false;
        return ns.SharedMedia(dev) || ns.AddrOnlink(dev, src, route.Gateway != 0 ? route.Gateway : dst);
    }

    /// <summary>ip_local_deliver: INPUT, then the transport protocol's receive function.</summary>
    private static void LocalDeliver(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        // A fragment that reached local delivery (no conntrack in front gathered it) is reassembled first, and INPUT
        // sees the datagram.
        if (Ipv4Defrag.IsFragment(skb))
        {
            if (ns.Defrag.Defrag(stack, ns, dev, skb, DefragUser.LocalDeliver, out var datagram) != DefragResult.Complete) return;
            skb = datagram!;
            if (ns.HasIptables)
            {
                var keep = ctx;
                if (!FillContext(skb, ref ctx, out var why)) { NetStack.Drop(ns, skb, why); return; }
                ctx.InInterface = keep.InInterface;
                ctx.Ct = keep.Ct;
                ctx.CtInfo = keep.CtInfo;
                ctx.Mark = keep.Mark;
                ctx.PhysIn = keep.PhysIn;
                ctx.HasBridgeInfo = keep.HasBridgeInfo;
            }
        }
        if (ns.HasIptables)
        {
            ctx.OutInterface = null;
            if (!Hook(ns, HookPoint.LocalIn, skb, ref ctx))
            {
                if (ctx.Reject != RejectWith.None) Icmp.SendReject(stack, dev, skb, ref ctx, localDestination: true);
                NetStack.Drop(ns, skb, ctx.DropReason);
                return;
            }
        }
        var pkt = NetStack.L3(skb);
        byte proto = pkt[9];
        // ip_protocol_deliver_rcu: a registered handler's return is never negative here, so InDelivers counts every
        // datagram it takes, whatever the handler then does with it.
        if (Transport.InetProtocol.Find(proto) is { } handler)
        {
            System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(c.Delivered, proto, out _)++;
            ns.Mib[SnmpCounter.IpInDelivers]++;
            if (skb.TraceId != 0) PacketTracer.Current?.LocalDeliver(skb.TraceId, ns, proto);
            handler.Receive(stack, dev, skb, ref ctx);
            return;
        }
        if (KernelHasHandler(proto))
        {
            // The kernel's IGMP, TCP and UDP handlers are not modelled here yet: taken and consumed.
            System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(c.Delivered, proto, out _)++;
            ns.Mib[SnmpCounter.IpInDelivers]++;
            skb.Free();
            return;
        }
        // No handler and no raw socket: InUnknownProtos and an ICMP protocol unreachable from the address it was sent to.
        ns.Mib[SnmpCounter.IpInUnknownProtos]++;
        Icmp.Send(stack, ns, skb, dev, 3, 2, 0, localDestination: true);
        NetStack.Drop(ns, skb, DropReason.UnhandledProtocol);
    }
}
