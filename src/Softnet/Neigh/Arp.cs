using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Neigh;

/// <summary>ARP (net/ipv4/arp.c): arp_rcv and arp_process answer requests for local addresses and learn from what
/// they see; arp_solicit asks for an unresolved next hop.</summary>
public sealed class Arp : PacketHandler
{
    public override ushort EtherType => EtherTypes.Arp;
    public override Telemetry.Stage Stage => Telemetry.Stage.Neigh;

    /// <summary>arp_rcv + arp_process: answer requests for local addresses, learn from what the frame says.</summary>
    public override void Receive(NetStack stack, Device dev, Skb skb, int nfSlot)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (skb.PktType == PacketType.OtherHost) { c.Arp++; skb.Free(); return; }
        skb.MayPull(Math.Min(skb.Len, 28));
        // arp_rcv: the header and both addresses present; arp_process: Ethernet (or IEEE 802) hardware, IPv4.
        if (!ArpView.TryParse(skb.LinearData, out var arp, out _) || arp.ProtocolType != EtherTypes.Ipv4
            || arp.HardwareType is not (1 or 6) || arp.HardwareLength != 6 || arp.ProtocolLength != 4)
        {
            NetStack.Drop(ns, skb, DropReason.ArpTruncated);
            return;
        }
        c.Arp++;
        ushort op = arp.Operation;
        Span<byte> sha = stackalloc byte[6];
        arp.SenderHardwareAddress.CopyTo(sha);
        uint sip = BinaryPrimitives.ReadUInt32BigEndian(arp.SenderProtocolAddress);
        uint tip = BinaryPrimitives.ReadUInt32BigEndian(arp.TargetProtocolAddress);
        var pt = skb.PktType;
        skb.Free();
        if (op is not (ArpView.OpRequest or ArpView.OpReply)) return;
        if ((tip >> 28) == 0xE || (tip >> 24) == 127) return;
        bool forUs = ns.Routing.LookupLocal(tip) is { Type: RouteKind.Local };
        if (op == ArpView.OpRequest && forUs)
        {
            // arp_ignore refuses the request: no answer, and the asker is not learnt either.
            if (Ignore(dev, sip, tip)) return;
            // neigh_event_ns: the asker's entry, created if need be, STALE, overriding.
            if (sip != 0) Learn(stack, dev, sip, sha, NudState.Stale, create: true, overrideMac: true);
            var reply = stack.NewFrame(PacketFactory.ArpFrameLength);
            if (reply == null) { c.Drops.Add(DropReason.SkbAllocFailed); return; }
            PacketFactory.WriteArp(reply.LinearData, ArpView.OpReply, sha, dev.Mac, dev.Mac, tip, sha, sip);
            c.Sent++;
            stack.Transmit(dev, reply);
            return;
        }
        if (sip == 0 || (sip >> 28) == 0xE) return;
        // Broadcast replies and requests do not confirm reachability; a different address replaces the entry's only
        // after locktime (1 s) since its last update, or for a gratuitous ARP.
        var state = op == ArpView.OpReply && pt == PacketType.Host ? NudState.Reachable : NudState.Stale;
        var n = ns.Neighbours.Find(dev, sip);
        bool garp = tip == sip;
        bool over = n == null || stack.Now > n.UpdatedNs + NeighbourTable.LocktimeNs || garp;
        Learn(stack, dev, sip, sha, state, create: false, overrideMac: over);
    }

    /// <summary>
    /// arp_ignore (IN_DEV_ARP_IGNORE, the larger of conf.all and the device): 0 answers for any local address, 1 only
    /// for an address of the arrival device, 2 only for one of its addresses on a subnet of that device holding the
    /// sender too, 3 not for host-scope addresses, 8 never; 4-7 answer (inet_confirm_addr).
    /// </summary>
    private static bool Ignore(Device dev, uint sip, uint tip)
    {
        var ns = dev.Namespace;
        switch (ns.ArpIgnore(dev))
        {
            case 1: return !ConfirmOnDevice(ns, dev, 0, tip);
            case 2: return !ConfirmOnDevice(ns, dev, sip, tip);
            case 3:
                // Any device; 127/8 on lo is the host-scope address the kernel keeps to itself.
                foreach (var a in ns.Addresses)
                    if (a.Address == tip && !a.Device.Kind.IsLoopback) return false;
                return true;
            case 8: return true;
            default: return false;
        }
    }

    /// <summary>confirm_addr_indev: <paramref name="local"/> is an address of <paramref name="dev"/> and some address of
    /// the device has a subnet holding both it and <paramref name="dst"/> (0: any).</summary>
    private static bool ConfirmOnDevice(Namespace ns, Device dev, uint dst, uint local)
    {
        bool mine = false, same = false;
        foreach (var a in ns.Addresses)
        {
            if (a.Device != dev) continue;
            if (a.Address == local) mine = true;
            if ((local & a.Mask) == a.Network && (dst == 0 || (dst & a.Mask) == a.Network)) same = true;
        }
        return mine && same;
    }

    /// <summary>neigh_update: a valid entry keeps its state when a STALE update brings the same address, and keeps
    /// its address against a different one without override; an entry leaving INCOMPLETE sends its queue.</summary>
    private static void Learn(NetStack stack, Device dev, uint ip, ReadOnlySpan<byte> mac, NudState state, bool create, bool overrideMac)
    {
        var n = dev.Namespace.Neighbours.Find(dev, ip);
        if (n == null)
        {
            if (!create) return;
            n = dev.Namespace.Neighbours.Create(dev, ip, NudState.Incomplete);
            n.State = NudState.Failed; // a new entry holds no address yet (NUD_NONE)
        }
        if (n.State == NudState.Permanent) return;
        bool wasValid = n.Valid;
        bool sameMac = mac.SequenceEqual(n.Mac);
        if (wasValid)
        {
            if (!sameMac && !overrideMac) return;
            if (sameMac && state == NudState.Stale) state = n.State;
        }
        bool wasIncomplete = n.State is NudState.Incomplete or NudState.Failed;
        if (!sameMac) mac.CopyTo(n.Mac);
        n.State = state;
        n.Probes = 0;
        n.UpdatedNs = stack.Now;
        if (wasIncomplete) NeighOutput.SendQueue(stack, n);
    }

    /// <summary>arp_solicit: a broadcast request from the egress device, its sender address by arp_announce
    /// (IN_DEV_ARP_ANNOUNCE): 0 the packet's own source when it is local, 1 that source only when the target shares a
    /// subnet of the device with it, 2 never; otherwise the device's address on the target's subnet
    /// (inet_select_addr).</summary>
    internal static void Solicit(NetStack stack, Neighbour n, uint packetSource)
    {
        var dev = n.Device;
        var ns = dev.Namespace;
        int announce = ns.ArpAnnounce(dev);
        bool local = announce != 2 && packetSource != 0 && ns.Routing.LookupLocal(packetSource) is { Type: RouteKind.Local };
        if (local && announce == 1 && !ns.AddrOnlink(dev, n.Address, packetSource)) local = false;
        uint saddr = local ? packetSource : ns.SelectAddress(dev, n.Address);
        var req = stack.NewFrame(PacketFactory.ArpFrameLength);
        if (req == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        PacketFactory.WriteArp(req.LinearData, ArpView.OpRequest, NetStack.Broadcast, dev.Mac, dev.Mac, saddr, default, n.Address);
        ns.Counters.Sent++;
        stack.Transmit(dev, req);
    }
}

/// <summary>neigh_output / neigh_resolve_output: the Ethernet header from a valid entry, else resolution with the
/// packet queued (arp_queue, bounded by unres_qlen_bytes).</summary>
public static class NeighOutput
{
    /// <summary>Sends <paramref name="skb"/> (data at the IP header) to <paramref name="nexthop"/> on
    /// <paramref name="outDev"/>; returns the transmit result, or <see cref="Ipv4Output.Queued"/>.</summary>
    public static DropReason Output(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, Device? inDev)
    {
        var n = ns.Neighbours.Find(outDev, nexthop);
        if (n != null && n.Valid)
        {
            n.HhCached = true;
            NetStack.PushEthernet(skb, n.Mac, outDev.Mac, EtherTypes.Ipv4);
            return stack.Transmit(outDev, skb);
        }
        // __neigh_event_send: start resolution (or keep waiting) and queue the packet, oldest dropped past unres_qlen_bytes.
        bool forwarded = inDev != null;
        if (n == null || n.State == NudState.Failed)
        {
            n ??= ns.Neighbours.Create(outDev, nexthop, NudState.Incomplete);
            n.State = NudState.Incomplete;
            n.Probes = 1;
            n.NextProbeNs = stack.Now + NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            Arp.Solicit(stack, n, BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(skb)[12..]));
        }
        var c = ns.Counters;
        // arp_queue is bounded by unres_qlen_bytes of skb->truesize: the oldest go first (NEIGH_QUEUEFULL).
        while (n.QueuedBytes + Truesize(skb) > NeighbourTable.UnresQlenBytes && n.Queue.TryDequeue(out var old))
        {
            n.QueuedBytes -= Truesize(old.Skb);
            if (old.Forwarded) { c.NeighQueued--; c.Drops.Add(DropReason.NeighQueueFull); }
            if (old.Skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(old.Skb.TraceId, ns, DropReason.NeighQueueFull);
            old.Skb.Free();
        }
        n.Queue.Enqueue(new PendingPacket(skb, inDev ?? outDev, forwarded));
        n.QueuedBytes += Truesize(skb);
        if (forwarded) c.NeighQueued++;
        return Ipv4Output.Queued;
    }

    /// <summary>Queues <paramref name="skb"/> on an unresolved entry, oldest dropped past unres_qlen_bytes.</summary>
    internal static void Enqueue(Namespace ns, Neighbour n, Skb skb, Device? inDev, Device outDev)
    {
        bool forwarded = inDev != null;
        var c = ns.Counters;
        while (n.QueuedBytes + Truesize(skb) > NeighbourTable.UnresQlenBytes && n.Queue.TryDequeue(out var old))
        {
            n.QueuedBytes -= Truesize(old.Skb);
            if (old.Forwarded) { c.NeighQueued--; c.Drops.Add(DropReason.NeighQueueFull); }
            if (old.Skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(old.Skb.TraceId, ns, DropReason.NeighQueueFull);
            old.Skb.Free();
        }
        n.Queue.Enqueue(new PendingPacket(skb, inDev ?? outDev, forwarded));
        n.QueuedBytes += Truesize(skb);
        if (forwarded) c.NeighQueued++;
    }

    /// <summary>skb->truesize: the buffer the skb holds (at least its length), what unres_qlen_bytes counts.</summary>
    internal static int Truesize(Skb skb) => Math.Max(skb.TrueSize, skb.Len);

    /// <summary>neigh_update's flush of arp_queue once the entry resolved.</summary>
    internal static void SendQueue(NetStack stack, Neighbour n)
    {
        var dev = n.Device;
        var c = dev.Namespace.Counters;
        if (n.Queue.Count > 0) n.HhCached = true;
        while (n.Queue.TryDequeue(out var pkt))
        {
            n.QueuedBytes -= NeighOutput.Truesize(pkt.Skb);
            if (pkt.Forwarded) c.NeighQueued--;
            NetStack.PushEthernet(pkt.Skb, n.Mac, dev.Mac, n.IsV6 ? EtherTypes.Ipv6 : EtherTypes.Ipv4);
            var reason = stack.Transmit(dev, pkt.Skb); // a traced packet's drop is recorded by Transmit
            if (pkt.Forwarded)
            {
                if (reason == DropReason.None) c.Forwarded++;
                else c.Drops.Add(reason);
            }
        }
    }
}

/// <summary>neigh_timer_handler for INCOMPLETE entries, run on the replay clock.</summary>
public static class NeighTimers
{
    /// <summary>Runs every timer due up to <paramref name="nowNs"/>, earliest first, each at its own time.</summary>
    public static void Run(NetStack stack, long nowNs)
    {
        if (nowNs < stack.NeighTimerDue) return;
        while (true)
        {
            Neighbour? due = null;
            long next = long.MaxValue;
            var all = stack.Namespaces;
            for (int i = 0; i < all.Count; i++)
            {
                foreach (var n in all[i].Neighbours.Entries)
                {
                    if (n.State != NudState.Incomplete) continue;
                    if (n.NextProbeNs <= nowNs && (due == null || n.NextProbeNs < due.NextProbeNs)) due = n;
                    if (n.NextProbeNs < next) next = n.NextProbeNs;
                }
                foreach (var n in all[i].Neighbours.Entries6)
                {
                    if (n.State is not (NudState.Incomplete or NudState.Delay or NudState.Probe)) continue;
                    if (n.NextProbeNs <= nowNs && (due == null || n.NextProbeNs < due.NextProbeNs)) due = n;
                    if (n.NextProbeNs < next) next = n.NextProbeNs;
                }
            }
            stack.NeighTimerDue = next;
            if (due == null) break;
            stack.SetClock(due.NextProbeNs);
            Timer(stack, due);
            stack.Drain();
        }
    }

    /// <summary>Retransmit, or fail and flush the queue (arp_error_report → ipv4_link_failure: host unreachable back
    /// to the sender).</summary>
    private static void Timer(NetStack stack, Neighbour n)
    {
        if (n.IsV6) { Ndisc.Timer(stack, n); return; }
        if (n.Probes < NeighbourTable.McastProbes)
        {
            n.Probes++;
            n.NextProbeNs += NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            uint src = n.Queue.TryPeek(out var first) ? BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(first.Skb)[12..]) : 0;
            Arp.Solicit(stack, n, src);
            return;
        }
        n.State = NudState.Failed;
        var ns = n.Device.Namespace;
        var c = ns.Counters;
        while (n.Queue.TryDequeue(out var pkt))
        {
            n.QueuedBytes -= NeighOutput.Truesize(pkt.Skb);
            Icmp.Send(stack, ns, pkt.Skb, pkt.InputDevice, 3, 1, 0, localDestination: false);
            if (pkt.Forwarded)
            {
                c.NeighQueued--;
                c.Drops.Add(DropReason.NeighFailed);
            }
            if (pkt.Skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(pkt.Skb.TraceId, ns, DropReason.NeighFailed);
            pkt.Skb.Free();
        }
    }
}
