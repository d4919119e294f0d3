using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Neigh;

/// <summary>
/// IPv6 neighbour discovery (net/ipv6/ndisc.c): ndisc_rcv answers neighbour solicitations for our addresses and
/// learns from solicitations and advertisements; ndisc_solicit asks for an unresolved next hop (the packets wait in
/// the entry's queue as they do for ARP); ip6_link_failure answers what could not be resolved. Router advertisements
/// are <see cref="NdiscRouter"/>'s; received redirects are consumed.
/// </summary>
public static class Ndisc
{
    internal const byte OptSourceLl = 1, OptTargetLl = 2;

    /// <summary>neigh_output / neigh_resolve_output on nd_tbl: the Ethernet header from a valid entry, else resolution
    /// with the packet queued. Returns the transmit result, or <see cref="Ipv4Output.Queued"/>.</summary>
    public static DropReason Output(NetStack stack, Namespace ns, Skb skb, Device outDev, UInt128 nexthop, Device? inDev)
    {
        var n = ns.Neighbours.Find6(outDev, nexthop);
        if (n != null && n.Valid)
        {
            // neigh_event_send: a STALE entry in use waits delay_first_probe_time for a confirmation.
            if (n.State == NudState.Stale)
            {
                n.State = NudState.Delay;
                n.NextProbeNs = stack.Now + NeighbourTable.DelayProbeNs;
                stack.ArmNeighTimer(n.NextProbeNs);
            }
            n.HhCached = true;
            NetStack.PushEthernet(skb, n.Mac, outDev.Mac, EtherTypes.Ipv6);
            return stack.Transmit(outDev, skb);
        }
        if (n == null || n.State == NudState.Failed)
        {
            n ??= ns.Neighbours.Create6(outDev, nexthop, NudState.Incomplete);
            n.State = NudState.Incomplete;
            n.Probes = 1;
            n.NextProbeNs = stack.Now + NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            Solicit(stack, n, Ipv6.Read(NetStack.L3(skb)[8..]));
        }
        NeighOutput.Enqueue(ns, n, skb, inDev, outDev);
        return Ipv4Output.Queued;
    }

    /// <summary>neigh_timer_handler for an INCOMPLETE nd_tbl entry: another multicast solicitation, or failure:
    /// ip6_link_failure sends address unreachable about every queued packet.</summary>
    internal static void Timer(NetStack stack, Neighbour n)
    {
        if (n.State is NudState.Delay or NudState.Probe)
        {
            // No confirmation came: unicast solicitations to the known address, then FAILED.
            if (n.State == NudState.Delay) { n.State = NudState.Probe; n.Probes = 0; }
            if (n.Probes >= NeighbourTable.UcastProbes) { n.State = NudState.Failed; return; }
            n.Probes++;
            n.NextProbeNs = stack.Now + NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            var ll = LinkLocal(n.Device.Namespace, n.Device);
            if (ll != 0) SendNs(stack, n.Device, n.Address6, n.Address6, ll);
            return;
        }
        if (n.Probes < NeighbourTable.McastProbes)
        {
            n.Probes++;
            n.NextProbeNs += NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            UInt128 src = n.Queue.TryPeek(out var first) ? Ipv6.Read(NetStack.L3(first.Skb)[8..]) : 0;
            Solicit(stack, n, src);
            return;
        }
        n.State = NudState.Failed;
        var ns = n.Device.Namespace;
        var c = ns.Counters;
        while (n.Queue.TryDequeue(out var pkt))
        {
            n.QueuedBytes -= NeighOutput.Truesize(pkt.Skb);
            Icmpv6.Send(stack, ns, pkt.Skb, pkt.InputDevice, Icmpv6View.DestinationUnreachable, 3, 0);
            if (pkt.Forwarded)
            {
                c.NeighQueued--;
                c.Drops.Add(DropReason.NeighFailed);
            }
            if (pkt.Skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(pkt.Skb.TraceId, ns, DropReason.NeighFailed);
            pkt.Skb.Free();
        }
    }

    /// <summary>ndisc_solicit → ndisc_send_ns: to the target's solicited-node group, from the queued packet's source
    /// when it is an address of the device, else from the device's link-local address.</summary>
    private static void Solicit(NetStack stack, Neighbour n, UInt128 packetSource)
    {
        var dev = n.Device;
        var ns = dev.Namespace;
        UInt128 saddr = packetSource != 0 && ns.FindAddress6(packetSource, dev) != null ? packetSource : LinkLocal(ns, dev);
        if (saddr == 0) return;
        SendNs(stack, dev, n.Address6, Ipv6.SolicitedNode(n.Address6), saddr);
    }

    private static UInt128 LinkLocal(Namespace ns, Device dev)
    {
        foreach (var a in ns.Addresses6)
            if (a.Device == dev && Ipv6.IsLinkLocal(a.Address)) return a.Address;
        return 0;
    }

    /// <summary>ndisc_send_ns: target, and the source link-layer option unless the source is unspecified.</summary>
    private static void SendNs(NetStack stack, Device dev, UInt128 target, UInt128 daddr, UInt128 saddr)
    {
        bool opt = saddr != 0;
        var skb = stack.NewFrame(40 + 24 + (opt ? 8 : 0));
        if (skb == null) { dev.Namespace.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var m = Write(skb, saddr, daddr, Icmpv6View.NeighborSolicitation, 0, target);
        if (opt) WriteLlOption(m[24..], OptSourceLl, dev.Mac);
        Icmpv6.Finish(skb);
        SendSkb(stack, dev, skb, Icmpv6View.NeighborSolicitation, daddr);
    }

    /// <summary>ndisc_send_na: flags router, solicited, override; the target link-layer option when asked.</summary>
    private static void SendNa(NetStack stack, Device dev, UInt128 daddr, UInt128 target, bool router, bool solicited, bool over, bool incOpt)
    {
        var ns = dev.Namespace;
        UInt128 saddr = ns.FindAddress6(target, dev) != null ? target : ns.SelectAddress6(dev, daddr);
        if (saddr == 0) return;
        var skb = stack.NewFrame(40 + 24 + (incOpt ? 8 : 0));
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        uint flags = (router ? 0x8000_0000u : 0) | (solicited ? 0x4000_0000u : 0) | (over ? 0x2000_0000u : 0);
        var m = Write(skb, saddr, daddr, Icmpv6View.NeighborAdvertisement, flags, target);
        if (incOpt) WriteLlOption(m[24..], OptTargetLl, dev.Mac);
        Icmpv6.Finish(skb);
        SendSkb(stack, dev, skb, Icmpv6View.NeighborAdvertisement, daddr);
    }

    /// <summary>ip6_nd_hdr and the nd_msg: hop limit 255, traffic class and flow label 0.</summary>
    internal static Span<byte> Write(Skb skb, UInt128 saddr, UInt128 daddr, byte type, uint word, UInt128 target)
    {
        var p = skb.LinearData;
        Span<byte> s = stackalloc byte[16], d = stackalloc byte[16];
        Ipv6.Write(s, saddr);
        Ipv6.Write(d, daddr);
        Ipv6View.Write(p, p.Length - 40, IpProtocols.Icmpv6, 255, s, d);
        var m = p[40..];
        m[0] = type;
        m[1] = 0;
        m[2] = m[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(m[4..], word);
        Ipv6.Write(m[8..], target);
        skb.ResetNetworkHeader();
        return m;
    }

    internal static void WriteLlOption(Span<byte> o, byte type, ReadOnlySpan<byte> mac)
    {
        o[0] = type;
        o[1] = 1;
        mac[..6].CopyTo(o[2..]);
    }

    /// <summary>ndisc_send_skb: OutRequests, LOCAL_OUT, out <paramref name="dev"/> to <paramref name="daddr"/> directly
    /// (icmp6_dst_alloc), then Icmp6OutMsgs and the type's counter.</summary>
    internal static void SendSkb(NetStack stack, Device dev, Skb skb, byte type, UInt128 daddr)
    {
        var ns = dev.Namespace;
        ns.Mib[SnmpCounter.Ip6OutRequests]++;
        ns.Counters.Sent++;
        if (skb.TraceId == 0) Telemetry.PacketTracer.Current?.AdoptLocal(skb, ns, NetStack.L3(skb));
        if (Ip6Netfilter.Active(ns) && !Ip6Netfilter.Hook(stack, ns, HookPoint.LocalOut, skb, null, dev, out _)) { skb.Free(); return; }
        var r = Ipv6Output.Output(stack, ns, skb, dev, daddr, null);
        if (r is DropReason.None or Ipv4Output.Queued) Icmpv6.OutCount(ns.Mib, type);
    }

    /// <summary>ndisc_send_redirect for <paramref name="skb"/>, about to be forwarded back out <paramref name="dev"/>:
    /// from the device's link-local address to the packet's source, when <paramref name="target"/> is the destination
    /// itself or a link-local router, the source is on-link, and the source's peer allows one a second; with the
    /// target's link-layer address when the neighbour is valid, and as much of the packet as fits in 1280 bytes.</summary>
    internal static void SendRedirect(NetStack stack, Device dev, Skb skb, UInt128 target)
    {
        var ns = dev.Namespace;
        var saddr = LinkLocal(ns, dev);
        if (saddr == 0) return;
        var pkt = stack.Linearize(skb);
        var src = Ipv6.Read(pkt[8..]);
        var dst = Ipv6.Read(pkt[24..]);
        if (dst != target && !Ipv6.IsLinkLocal(target)) return;
        if (!Ipv6.IsLinkLocal(src))
        {
            var back = ns.Routing6.Lookup(src);
            if (back == null || back.Type != RouteKind.Unicast || back.Gateway != 0) return;
        }
        if (!Icmpv6.PeerAllow(stack, ns, src, Icmpv6.Hz)) return;
        // dst_neigh_lookup: the target's entry, made (NUD_NONE) when there is none.
        var n = ns.Neighbours.Find6(dev, target);
        if (n == null)
        {
            n = ns.Neighbours.Create6(dev, target, NudState.Failed);
            n.Probes = -1;
        }
        int optlen = n.Valid ? 8 : 0;
        int rd = Math.Min(Icmpv6.MinMtu - 40 - 40 - optlen, pkt.Length + 8) & ~7;
        var f = stack.NewFrame(40 + 40 + optlen + rd);
        if (f == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var m = Write(f, saddr, src, 137, 0, target);
        Ipv6.Write(m[24..], dst);
        if (n.Valid) WriteLlOption(m[40..], OptTargetLl, n.Mac);
        var o = m[(40 + optlen)..];
        o[..8].Clear();
        o[0] = 4;
        o[1] = (byte)(rd >> 3);
        pkt[..(rd - 8)].CopyTo(o[8..]);
        Icmpv6.Finish(f);
        SendSkb(stack, dev, f, 137, src);
    }

    /// <summary>ndisc_rcv: hop limit 255 and code 0, then the solicitation or advertisement (router messages and
    /// redirects are consumed). The skb is consumed.</summary>
    public static void Receive(NetStack stack, Device dev, Skb skb, int off)
    {
        var ns = dev.Namespace;
        var pkt = stack.Linearize(skb);
        var msg = pkt[off..];
        if (pkt[7] != 255 || msg[1] != 0) { Transport.InetProtocol.DropDelivered(ns, skb, DropReason.NdiscInvalid); return; }
        var why = msg[0] switch
        {
            Icmpv6View.NeighborSolicitation => ReceiveNs(stack, dev, skb, pkt, msg),
            Icmpv6View.NeighborAdvertisement => ReceiveNa(stack, dev, skb, pkt, msg),
            Icmpv6View.RouterSolicitation => ReceiveRs(stack, dev, pkt, msg),
            NdiscRouter.RouterAdvertisement => NdiscRouter.Receive(stack, dev, pkt, msg),
            _ => DropReason.None,
        };
        if (why != DropReason.None) Transport.InetProtocol.DropDelivered(ns, skb, why);
        else skb.Free();
    }

    /// <summary>ndisc_parse_options: every option of non-zero length within the message; the first link-layer option of
    /// <paramref name="want"/> must be 8 bytes (Ethernet). False when the options are invalid.</summary>
    internal static bool ParseOptions(ReadOnlySpan<byte> opts, byte want, out ReadOnlySpan<byte> lladdr)
    {
        lladdr = default;
        bool found = false;
        while (opts.Length > 0)
        {
            if (opts.Length < 2) return false;
            int l = opts[1] << 3;
            if (l == 0 || l > opts.Length) return false;
            if (opts[0] == want && !found)
            {
                found = true;
                if (l != 8) return false;
                lladdr = opts.Slice(2, 6);
            }
            opts = opts[l..];
        }
        return true;
    }

    /// <summary>ndisc_recv_ns.</summary>
    private static DropReason ReceiveNs(NetStack stack, Device dev, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> msg)
    {
        var ns = dev.Namespace;
        if (msg.Length < 24) return DropReason.NdiscInvalid;
        var saddr = Ipv6.Read(pkt[8..]);
        var daddr = Ipv6.Read(pkt[24..]);
        var target = Ipv6.Read(msg[8..]);
        bool dad = saddr == 0;
        if (Ipv6.IsMulticast(target)) return DropReason.NdiscInvalid;
        if (dad && !Ipv6.IsSolicitedNode(daddr)) return DropReason.NdiscInvalid;
        if (!ParseOptions(msg[24..], OptSourceLl, out var lladdr)) return DropReason.NdiscInvalid;
        if (!lladdr.IsEmpty && dad) return DropReason.NdiscInvalid;
        bool inc = Ipv6.IsMulticast(daddr);
        bool ours = ns.FindAddress6(target, dev) != null;
        if (!ours)
        {
            if (!(ns.Routing6.LookupLocal(target) is { Type: RouteKind.Anycast } ac && ac.Device == dev)) return DropReason.NdiscInvalid;
            // An anycast target asked by multicast is answered after a random delay of up to proxy_delay (pneigh_enqueue,
            // RFC 4861 7.2.7): not modelled, the solicitation is consumed.
            if (skb.PktType != PacketType.Host && inc) return DropReason.None;
        }
        bool router = ns.DeviceForwarding6(dev);
        Span<byte> mac = stackalloc byte[6];
        if (!lladdr.IsEmpty) lladdr.CopyTo(mac);
        if (dad)
        {
            SendNa(stack, dev, Ipv6.AllNodes, target, router, solicited: false, over: ours, incOpt: true);
            return DropReason.None;
        }
        // The asker's entry: created for a unicast solicitation or one that brings an address, made STALE.
        var n = ns.Neighbours.Find6(dev, saddr);
        if (n == null && (!inc || !lladdr.IsEmpty))
        {
            n = ns.Neighbours.Create6(dev, saddr, NudState.Incomplete);
            n.State = NudState.Failed;
            n.Probes = -1; // NUD_NONE: not yet resolving
        }
        if (n == null) return DropReason.None;
        Update(stack, n, lladdr.IsEmpty ? default : mac, NudState.Stale, over: true, weak: true);
        SendNa(stack, dev, saddr, target, router, solicited: true, over: ours && inc, incOpt: inc);
        return DropReason.None;
    }

    /// <summary>ndisc_recv_rs: a forwarding device learns the asker (STALE, created if need be) from a solicitation that
    /// has a source and a link-layer option; no advertisement is sent (router advertisements are radvd's, not the
    /// kernel's).</summary>
    private static DropReason ReceiveRs(NetStack stack, Device dev, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> msg)
    {
        var ns = dev.Namespace;
        if (msg.Length < 8) return DropReason.NdiscInvalid;
        if (!ns.DeviceForwarding6(dev)) return DropReason.None;
        var saddr = Ipv6.Read(pkt[8..]);
        if (saddr == 0) return DropReason.None;
        if (!ParseOptions(msg[8..], OptSourceLl, out var lladdr)) return DropReason.NdiscInvalid;
        if (lladdr.IsEmpty) return DropReason.None;
        LearnStale(stack, dev, saddr, lladdr);
        return DropReason.None;
    }

    /// <summary>__neigh_lookup(creat) then ndisc_update to STALE, overriding: what a router solicitation or
    /// advertisement teaches about its sender.</summary>
    internal static void LearnStale(NetStack stack, Device dev, UInt128 addr, ReadOnlySpan<byte> lladdr)
    {
        Span<byte> mac = stackalloc byte[6];
        lladdr.CopyTo(mac);
        var n = dev.Namespace.Neighbours.Find6(dev, addr);
        if (n == null)
        {
            n = dev.Namespace.Neighbours.Create6(dev, addr, NudState.Failed);
            n.Probes = -1; // NUD_NONE: not yet resolving
        }
        Update(stack, n, mac, NudState.Stale, over: true, weak: true);
    }

    /// <summary>ndisc_recv_na: only an existing, not FAILED entry learns (accept_untracked_na 0).</summary>
    private static DropReason ReceiveNa(NetStack stack, Device dev, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> msg)
    {
        var ns = dev.Namespace;
        if (msg.Length < 24) return DropReason.NdiscInvalid;
        var daddr = Ipv6.Read(pkt[24..]);
        var target = Ipv6.Read(msg[8..]);
        byte flags = msg[4];
        bool solicited = (flags & 0x40) != 0, over = (flags & 0x20) != 0;
        if (Ipv6.IsMulticast(target)) return DropReason.NdiscInvalid;
        if (Ipv6.IsMulticast(daddr) && solicited) return DropReason.NdiscInvalid;
        if (!ParseOptions(msg[24..], OptTargetLl, out var lladdr)) return DropReason.NdiscInvalid;
        if (ns.FindAddress6(target, dev) != null) return DropReason.None;
        var n = ns.Neighbours.Find6(dev, target);
        if (n == null || n.State == NudState.Failed && n.Probes >= 0) return DropReason.None;
        Span<byte> mac = stackalloc byte[6];
        if (!lladdr.IsEmpty) lladdr.CopyTo(mac);
        Update(stack, n, lladdr.IsEmpty ? default : mac, solicited ? NudState.Reachable : NudState.Stale, over, weak: true);
        return DropReason.None;
    }

    /// <summary>neigh_update as ndisc_update calls it: permanent entries stay; without an address an entry must already
    /// hold one; a valid entry keeps a different address unless overridden (weakly: a connected one goes STALE), and
    /// keeps its state when a STALE update brings its own address; an entry that becomes valid sends its queue.</summary>
    private static void Update(NetStack stack, Neighbour n, ReadOnlySpan<byte> mac, NudState state, bool over, bool weak)
    {
        if (n.State == NudState.Permanent) return;
        bool wasValid = n.Valid;
        if (mac.IsEmpty)
        {
            if (!wasValid) return;
            mac = n.Mac;
        }
        bool same = mac.SequenceEqual(n.Mac);
        if (wasValid)
        {
            if (!same && !over)
            {
                if (weak && n.Connected) { mac = n.Mac; same = true; state = NudState.Stale; }
                else return;
            }
            else if (same && state == NudState.Stale) state = n.State;
        }
        if (!same) mac.CopyTo(n.Mac);
        n.State = state;
        n.Probes = 0;
        n.UpdatedNs = stack.Now;
        if (!wasValid) NeighOutput.SendQueue(stack, n);
    }
}
