using System.Buffers.Binary;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Topology;

namespace Softnet.Ip;

/// <summary>
/// The IPv4 receive and forward path of every namespace of a scenario, with the links between them:
/// eth_type_trans → bridge (br_handle_frame) → arp_rcv / ip_rcv → PREROUTING → ip_route_input → INPUT and
/// local delivery, or ip_forward → FORWARD → ip_output → POSTROUTING → neighbour → dev_queue_xmit → veth peer
/// (which receives it in its own namespace: the container "double traversal").
/// <para>Frames crossing a veth wait in one FIFO (the backlog veth_xmit feeds), so the path never recurses.
/// Correctness first: this path allocates per packet (datagram copies, frames for new headers); the NIC
/// path in front of it stays allocation-free.</para>
/// <para>Not modeled: IPv6 (dropped, counted), fragmentation and reassembly, ICMP redirects, IP options,
/// the DELAY/PROBE states of neighbour entries, local sockets (a frame delivered locally is consumed and
/// counted with no reply, echo requests included, where the kernel would answer).</para>
/// </summary>
public sealed class Ipv4Stack
{
    private readonly Scenario _scenario;
    private readonly Queue<(Device Dev, byte[] Frame, long Ts, BridgedIp? Nf)> _backlog = new();

    /// <summary>A frame br_netfilter already took through PREROUTING (skb->_nfct and nf_bridge_info): passed up to the
    /// bridge device, ip_sabotage_in makes the IP layer skip the PREROUTING hooks and keep this context.</summary>
    private sealed class BridgedIp(PacketContext ctx)
    {
        public PacketContext Ctx = ctx;
    }
    private readonly Dictionary<(Namespace, uint), (long Tokens, long LastMs)> _peers = new();
    private long _now;

    public Ipv4Stack(Scenario scenario) => _scenario = scenario;

    /// <summary>IP ID of generated ICMP errors (the kernel's is randomly keyed per destination).</summary>
    public ushort IcmpErrorIpId { get; set; }

    /// <summary>A frame arrives on <paramref name="dev"/> from outside the scenario (the NIC path).</summary>
    public void Inject(Device dev, ReadOnlySpan<byte> frame, long timestampNs)
    {
        AdvanceClock(timestampNs);
        _backlog.Enqueue((dev, frame.ToArray(), timestampNs, null));
        Drain();
    }

    private void Drain()
    {
        while (_backlog.TryDequeue(out var w)) Receive(w.Dev, w.Frame, w.Ts, w.Nf);
    }

    /// <summary>Runs neighbour timers due up to <paramref name="nowNs"/> (ARP retransmits, resolution failure).</summary>
    public void AdvanceClock(long nowNs)
    {
        if (nowNs > _now) _now = nowNs;
        while (true)
        {
            Neighbour? due = null;
            foreach (var ns in _scenario.Namespaces)
                foreach (var n in ns.Neighbours.Entries)
                    if (n.State == NudState.Incomplete && n.NextProbeNs <= nowNs && (due == null || n.NextProbeNs < due.NextProbeNs))
                        due = n;
            if (due == null) break;
            NeighTimer(due);
            Drain();
        }
    }

    /// <summary>End of the replay: counts what still waits for a neighbour.</summary>
    public void Finish()
    {
        Drain();
    }

    // ---------------- receive ----------------

    private void Receive(Device dev, byte[] frame, long ts, BridgedIp? nf)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        c.Received++;
        if (!dev.Up) { c.Drops.Add(DropReason.DeviceDown); return; }
        dev.RxTap?.Write(ts, frame);
        dev.RxPackets++;
        dev.RxBytes += frame.Length;
        if (frame.Length < 14) { c.Drops.Add(DropReason.EthTruncated); return; }
        if (dev.Master is { } br) { BridgeInput(br, dev, frame, ts); return; }
        NetifReceive(dev, frame, ts, PacketTypeOf(dev, frame), nf);
    }

    /// <summary>eth_type_trans's pkt_type.</summary>
    private static PacketType PacketTypeOf(Device dev, ReadOnlySpan<byte> frame)
    {
        if ((frame[0] & 1) != 0)
            return frame[..6].SequenceEqual(Broadcast) ? PacketType.Broadcast : PacketType.Multicast;
        return frame[..6].SequenceEqual(dev.Mac) ? PacketType.Host : PacketType.OtherHost;
    }

    private static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

    /// <summary>__netif_receive_skb_core's protocol demux for a device that is not a bridge port.</summary>
    private void NetifReceive(Device dev, byte[] frame, long ts, PacketType pt, BridgedIp? nf)
    {
        var c = dev.Namespace.Counters;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12));
        switch (type)
        {
            case PacketFactory.EthArp: ArpReceive(dev, frame, ts, pt); break;
            case PacketFactory.EthIpv4: IpReceive(dev, frame, ts, pt, nf); break;
            case PacketFactory.EthIpv6: c.Drops.Add(DropReason.Ipv6NotModeled); break;
            default: c.Drops.Add(DropReason.UnhandledProtocol); break;
        }
    }

    // ---------------- bridge ----------------

    private static bool IsLinkLocalGroup(ReadOnlySpan<byte> d)
        => d[0] == 0x01 && d[1] == 0x80 && d[2] == 0xC2 && d[3] == 0 && d[4] == 0 && (d[5] & 0xF0) == 0;

    /// <summary>
    /// br_handle_frame: source and link-local checks, then NF_BR_PRE_ROUTING, where br_netfilter (with
    /// net.bridge.bridge-nf-call-iptables=1) runs the IPv4 PREROUTING hooks on every IPv4 frame a port receives,
    /// the ones addressed to the bridge itself included; then br_handle_frame_finish.
    /// </summary>
    private void BridgeInput(Device br, Device port, byte[] frame, long ts)
    {
        var ns = br.Namespace;
        var c = ns.Counters;
        if (!br.Up) { c.Drops.Add(DropReason.DeviceDown); return; }
        var src = frame.AsSpan(6, 6);
        if ((src[0] & 1) != 0 || src.IndexOfAnyExcept((byte)0) < 0) { c.Drops.Add(DropReason.BridgeInvalidSource); return; }
        if (IsLinkLocalGroup(frame.AsSpan(0, 6))) { c.Drops.Add(DropReason.BridgeLinkLocal); return; }
        BridgedIp? nf = null;
        if (BrNfActive(ns) && BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(12)) == PacketFactory.EthIpv4)
        {
            nf = BrNfPreRouting(br, ref frame, ts);
            if (nf == null) return;
        }
        BridgeFinish(br, port, frame, ts, nf);
    }

    /// <summary>br_netfilter only with net.bridge.bridge-nf-call-iptables=1 (and iptables loaded); otherwise
    /// bridged frames bypass iptables.</summary>
    private static bool BrNfActive(Namespace ns) => ns.HasIptables && ns.BridgeNfCallIptables;

    /// <summary>br_handle_frame_finish: learn the source, then forward, flood or pass up.</summary>
    private void BridgeFinish(Device br, Device port, byte[] frame, long ts, BridgedIp? nf)
    {
        var c = br.Namespace.Counters;
        ulong srcKey = Device.MacKey(frame.AsSpan(6, 6));
        if (!IsLocalMac(br, srcKey)) br.Fdb[srcKey] = port;
        var dst = frame.AsSpan(0, 6);
        if ((dst[0] & 1) != 0)
        {
            // The local copy keeps the PREROUTING context; the flooded copies go through FORWARD/POSTROUTING
            // (once here: the kernel hooks each port's clone).
            var up = nf == null ? null : new BridgedIp(nf.Ctx);
            var copy = (byte[])frame.Clone();
            if (nf == null || BrNfForward(br, ref copy, nf))
            {
                c.Bridged++;
                Flood(br, port, copy, ts);
            }
            PassUp(br, frame, ts, up);
            return;
        }
        ulong dstKey = Device.MacKey(dst);
        if (IsLocalMac(br, dstKey))
        {
            c.Bridged++;
            PassUp(br, frame, ts, nf);
            return;
        }
        if (br.Fdb.TryGetValue(dstKey, out var to))
        {
            if (to == port) { c.Drops.Add(DropReason.BridgeSamePort); return; }
            if (nf != null && !BrNfForward(br, ref frame, nf)) return;
            c.Bridged++;
            Transmit(to, frame, ts);
            return;
        }
        if (nf != null && !BrNfForward(br, ref frame, nf)) return;
        c.Bridged++;
        Flood(br, port, frame, ts);
    }

    /// <summary>
    /// br_nf_pre_routing: br_validate_ipv4 (the header checks of ip_rcv_core, trim to tot_len), then PREROUTING
    /// with the bridge as in-interface; br_nf_pre_routing_finish: when DNAT moved the destination, route it. Out
    /// the same bridge (a pod to a service backed by another pod on the bridge) the frame stays bridged, not
    /// routed: no TTL decrement, the destination MAC taken from the neighbour entry, the source MAC kept. Any
    /// other route makes the frame one for the bridge itself (destination MAC the bridge's). Returns null when
    /// the frame is dropped; <paramref name="frame"/> becomes the trimmed, possibly rewritten frame.
    /// </summary>
    private BridgedIp? BrNfPreRouting(Device br, ref byte[] frame, long ts)
    {
        var ns = br.Namespace;
        var c = ns.Counters;
        var ip = frame.AsSpan(14);
        if (ip.Length < 20) { c.Drops.Add(DropReason.IpHeaderTruncated); return null; }
        if ((ip[0] >> 4) != 4) { c.Drops.Add(DropReason.IpBadVersion); return null; }
        int ihl = (ip[0] & 0xF) * 4;
        if (ihl < 20) { c.Drops.Add(DropReason.IpBadIhl); return null; }
        if (ip.Length < ihl) { c.Drops.Add(DropReason.IpHeaderTruncated); return null; }
        if (!Checksum.Verify(ip[..ihl])) { c.Drops.Add(DropReason.IpCsumError); return null; }
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total > ip.Length || total < ihl) { c.Drops.Add(DropReason.IpBadTotalLength); return null; }
        if (frame.Length != 14 + total) frame = frame.AsSpan(0, 14 + total).ToArray();
        var pkt = frame.AsSpan(14);
        if (!PacketContext.FromIpv4(pkt, out var ctx, out var reason)) { c.Drops.Add(reason); return null; }
        ctx.TimestampNs = ts;
        ctx.InInterface = br.Name;
        uint daddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        if (ns.Netfilter.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) { c.Drops.Add(ctx.DropReason); return null; }
        uint after = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        if (after == daddr) return new BridgedIp(ctx);

        uint saddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        var route = ns.Routing.Lookup(after);
        if (route is { Type: RouteKind.Unicast or RouteKind.Local } && !ValidateSource(br, saddr, out var why))
        {
            // ip_route_input failed: br_nf_pre_routing_finish frees the frame.
            c.Drops.Add(why);
            return null;
        }
        if (route is { Type: RouteKind.Unicast } && route.Device == br && ns.Forwarding(br))
        {
            // bridged_dnat → br_nf_pre_routing_finish_bridge: the neighbour's cached header (neigh_hh_bridge)
            // gives the destination MAC. Without one, neigh->output builds the whole header (source: the bridge)
            // and transmits on the bridge device, whose br_nf_dev_xmit puts the saved source MAC back and
            // bridges the frame: the bridge's tx tap sees it once.
            uint nexthop = route.Gateway != 0 ? route.Gateway : after;
            var n = ns.Neighbours.Find(br, nexthop);
            if (n == null || !n.Valid) { c.Drops.Add(DropReason.BridgeDnatNeighUnresolved); return null; }
            if (!(n.HhCached && n.Connected))
            {
                var header = PacketFactory.Ethernet(n.Mac, br.Mac, PacketFactory.EthIpv4, pkt);
                br.TxTap?.Write(ts, header);
                br.TxPackets++;
                br.TxBytes += header.Length;
                n.HhCached = true;
            }
            n.Mac.CopyTo(frame, 0);
            return new BridgedIp(ctx);
        }
        br.Mac.CopyTo(frame, 0);
        return new BridgedIp(ctx);
    }

    /// <summary>br_nf_forward_ip then br_nf_post_routing: FORWARD with the bridge as in- and out-interface,
    /// POSTROUTING with it as out-interface; NAT rewrites the frame in place.</summary>
    private bool BrNfForward(Device br, ref byte[] frame, BridgedIp nf)
    {
        var ns = br.Namespace;
        ref var ctx = ref nf.Ctx;
        ctx.InInterface = br.Name;
        ctx.OutInterface = br.Name;
        SetRouteMtu(ns, frame.AsSpan(14), br, ref ctx);
        if (GrowableHook(ns, HookPoint.Forward, ref ctx, ref frame, 14) == Verdict.Drop)
        {
            ns.Counters.Drops.Add(ctx.DropReason);
            return false;
        }
        ctx.InInterface = null;
        if (GrowableHook(ns, HookPoint.PostRouting, ref ctx, ref frame, 14) == Verdict.Drop)
        {
            ns.Counters.Drops.Add(ctx.DropReason);
            return false;
        }
        return true;
    }

    private static bool IsLocalMac(Device br, ulong key)
    {
        if (Device.MacKey(br.Mac) == key) return true;
        foreach (var p in br.Ports)
            if (Device.MacKey(p.Mac) == key) return true;
        return false;
    }

    private void Flood(Device br, Device? except, byte[] frame, long ts)
    {
        foreach (var p in br.Ports)
            if (p != except && p.Up) Transmit(p, (byte[])frame.Clone(), ts);
    }

    /// <summary>br_pass_frame_up: the frame is received again, on the bridge device.</summary>
    private void PassUp(Device br, byte[] frame, long ts, BridgedIp? nf)
        => _backlog.Enqueue((br, (byte[])frame.Clone(), ts, nf));

    // ---------------- transmit ----------------

    /// <summary>dev_queue_xmit: the tx tap sees the frame, then the device's xmit. Returns a drop reason or None.</summary>
    private DropReason Transmit(Device dev, byte[] frame, long ts)
    {
        if (!dev.Up) { dev.TxDropped++; return DropReason.DeviceDown; }
        dev.TxTap?.Write(ts, frame);
        dev.TxPackets++;
        dev.TxBytes += frame.Length;
        switch (dev.Kind)
        {
            case DeviceKind.Veth:
            {
                // veth_xmit → __dev_forward_skb: the peer must be up and the frame fit its MTU.
                var peer = dev.Peer!;
                if (!peer.Up || frame.Length > peer.Mtu + 14 + 4) { dev.TxDropped++; return DropReason.VethPeerDown; }
                _backlog.Enqueue((peer, frame, ts, null));
                return DropReason.None;
            }
            case DeviceKind.Bridge:
            {
                // br_dev_xmit: FDB lookup on the destination, flood when unknown or group.
                var dst = frame.AsSpan(0, 6);
                if ((dst[0] & 1) == 0 && dev.Fdb.TryGetValue(Device.MacKey(dst), out var port))
                {
                    Transmit(port, frame, ts);
                    return DropReason.None;
                }
                Flood(dev, null, frame, ts);
                return DropReason.None;
            }
            default:
                _backlog.Enqueue((dev, frame, ts, null));
                return DropReason.None;
        }
    }

    // ---------------- ARP ----------------

    /// <summary>arp_rcv + arp_process: answer requests for local addresses, learn from them, update entries.</summary>
    private void ArpReceive(Device dev, byte[] frame, long ts, PacketType pt)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (pt == PacketType.OtherHost) { c.Arp++; return; }
        var a = frame.AsSpan(14);
        if (a.Length < 28 || BinaryPrimitives.ReadUInt16BigEndian(a) != 1 || BinaryPrimitives.ReadUInt16BigEndian(a[2..]) != 0x0800 || a[4] != 6 || a[5] != 4)
        {
            c.Drops.Add(DropReason.ArpTruncated);
            return;
        }
        c.Arp++;
        ushort op = BinaryPrimitives.ReadUInt16BigEndian(a[6..]);
        if (op is not (1 or 2)) return;
        var sha = a.Slice(8, 6).ToArray();
        uint sip = BinaryPrimitives.ReadUInt32BigEndian(a[14..]);
        uint tip = BinaryPrimitives.ReadUInt32BigEndian(a[24..]);
        if ((tip >> 28) == 0xE || (tip >> 24) == 127) return;
        bool forUs = ns.Routing.LookupLocal(tip) is { Type: RouteKind.Local };
        if (op == 1 && forUs)
        {
            if (sip != 0) Learn(dev, sip, sha, NudState.Stale, create: true, ts);
            var reply = PacketFactory.Arp(2, sha, dev.Mac, dev.Mac, tip, sha, sip);
            c.Sent++;
            Transmit(dev, reply, ts);
            return;
        }
        if (sip == 0 || (sip >> 28) == 0xE) return;
        // An existing entry learns the sender's address; a reply (or a frame to us) confirms it.
        var state = op == 2 || pt == PacketType.Host ? NudState.Reachable : NudState.Stale;
        Learn(dev, sip, sha, state, create: false, ts);
    }

    private void Learn(Device dev, uint ip, byte[] mac, NudState state, bool create, long ts)
    {
        var n = dev.Namespace.Neighbours.Find(dev, ip);
        if (n == null)
        {
            if (!create) return;
            n = dev.Namespace.Neighbours.Create(dev, ip, state);
        }
        if (n.State == NudState.Permanent) return;
        bool wasIncomplete = n.State is NudState.Incomplete or NudState.Failed;
        n.Mac = mac;
        n.State = state;
        n.Probes = 0;
        if (wasIncomplete)
        {
            var c = dev.Namespace.Counters;
            if (n.Queue.Count > 0) n.HhCached = true;
            while (n.Queue.TryDequeue(out var pkt))
            {
                n.QueuedBytes -= pkt.Datagram.Length;
                if (pkt.Forwarded) c.NeighQueued--;
                var reason = Transmit(dev, PacketFactory.Ethernet(n.Mac, dev.Mac, PacketFactory.EthIpv4, pkt.Datagram), ts);
                if (pkt.Forwarded)
                {
                    if (reason == DropReason.None) c.Forwarded++;
                    else c.Drops.Add(reason);
                }
            }
        }
    }

    /// <summary>arp_solicit: a broadcast request from the egress device, sourced from the packet's own
    /// address when it is local, else from the device's address on the target's subnet.</summary>
    private void SendArpRequest(Neighbour n, uint packetSource, long ts)
    {
        var dev = n.Device;
        var ns = dev.Namespace;
        uint saddr = packetSource != 0 && ns.Routing.LookupLocal(packetSource) is { Type: RouteKind.Local }
            ? packetSource : ns.SelectAddress(dev, n.Address);
        var req = PacketFactory.Arp(1, Broadcast, dev.Mac, dev.Mac, saddr, default, n.Address);
        ns.Counters.Sent++;
        Transmit(dev, req, ts);
    }

    /// <summary>neigh_timer_handler for an INCOMPLETE entry: retransmit, or fail and flush the queue.</summary>
    private void NeighTimer(Neighbour n)
    {
        long ts = n.NextProbeNs;
        if (n.Probes < NeighbourTable.McastProbes)
        {
            n.Probes++;
            n.NextProbeNs = ts + NeighbourTable.RetransNs;
            uint src = n.Queue.TryPeek(out var first) ? BinaryPrimitives.ReadUInt32BigEndian(first.Datagram.AsSpan(12)) : 0;
            SendArpRequest(n, src, ts);
            return;
        }
        n.State = NudState.Failed;
        var c = n.Device.Namespace.Counters;
        while (n.Queue.TryDequeue(out var pkt))
        {
            n.QueuedBytes -= pkt.Datagram.Length;
            // arp_error_report → ipv4_link_failure: host unreachable back to the sender.
            IcmpSend(n.Device.Namespace, pkt.Datagram, pkt.InputDevice, 3, 1, 0, ts, localDestination: false);
            if (pkt.Forwarded)
            {
                c.NeighQueued--;
                c.Drops.Add(DropReason.NeighFailed);
            }
        }
    }

    // ---------------- IPv4 ----------------

    /// <summary>ip_rcv_core: header checks, trim to tot_len; then PREROUTING and the routing decision.</summary>
    private void IpReceive(Device dev, byte[] frame, long ts, PacketType pt, BridgedIp? nf)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (pt == PacketType.OtherHost) { c.Drops.Add(DropReason.OtherHost); return; }
        var ip = frame.AsSpan(14);
        if (ip.Length < 20) { c.Drops.Add(DropReason.IpHeaderTruncated); return; }
        if ((ip[0] >> 4) != 4) { c.Drops.Add(DropReason.IpBadVersion); return; }
        int ihl = (ip[0] & 0xF) * 4;
        if (ihl < 20) { c.Drops.Add(DropReason.IpBadIhl); return; }
        if (ip.Length < ihl) { c.Drops.Add(DropReason.IpHeaderTruncated); return; }
        if (!Checksum.Verify(ip[..ihl])) { c.Drops.Add(DropReason.IpCsumError); return; }
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (total > ip.Length || total < ihl) { c.Drops.Add(DropReason.IpBadTotalLength); return; }
        // pskb_trim_rcsum: Ethernet padding goes; a forwarded packet leaves without it.
        var pkt = ip[..total].ToArray();

        PacketContext ctx = default;
        if (nf != null)
        {
            // ip_sabotage_in: br_netfilter already ran PREROUTING for this frame.
            ctx = nf.Ctx;
            ctx.InInterface = dev.Name;
        }
        else if (ns.HasIptables)
        {
            if (!PacketContext.FromIpv4(pkt, out ctx, out var reason)) { c.Drops.Add(reason); return; }
            ctx.TimestampNs = ts;
            ctx.InInterface = dev.Name;
            ctx.PktType = pt;
            ctx.SrcMac = PacketContext.MacOf(frame.AsSpan(6, 6));
            if (ns.Netfilter.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) { c.Drops.Add(ctx.DropReason); return; }
        }
        RouteInput(dev, pkt, ts, pt, ref ctx);
    }

    private static bool IsMulticast(uint a) => (a >> 28) == 0xE;
    private static bool IsLoopback(uint a) => (a >> 24) == 127;

    /// <summary>ip_route_input_slow: martians, local/broadcast, forward or ip_error.</summary>
    private void RouteInput(Device dev, byte[] pkt, long ts, PacketType pt, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        uint src = BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(12));
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(16));
        if (IsMulticast(dst))
        {
            // ip_check_mc_rcu: a device is a member of 224.0.0.1; IGMP is always taken.
            if (IsMulticast(src) || src == 0xFFFFFFFF) { c.Drops.Add(DropReason.IpMartianSource); return; }
            if (dst == 0xE0000001 || pkt[9] == 2) { LocalDeliver(dev, pkt, ts, ref ctx); return; }
            c.Drops.Add(DropReason.MulticastNotJoined);
            return;
        }
        if (IsMulticast(src) || src == 0xFFFFFFFF) { c.Drops.Add(DropReason.IpMartianSource); return; }
        if (dst == 0xFFFFFFFF) { LocalDeliver(dev, pkt, ts, ref ctx); return; }
        if (src == 0) { c.Drops.Add(DropReason.IpMartianSource); return; }
        if (dst == 0 || IsLoopback(dst)) { c.Drops.Add(DropReason.IpMartianDestination); return; }
        if (IsLoopback(src)) { c.Drops.Add(DropReason.IpMartianSource); return; }

        var route = ns.Routing.Lookup(dst);
        if (route is { Type: RouteKind.Broadcast })
        {
            if (!ValidateSource(dev, src, out var r)) { c.Drops.Add(r); return; }
            LocalDeliver(dev, pkt, ts, ref ctx);
            return;
        }
        if (route is { Type: RouteKind.Local })
        {
            if (!ValidateSource(dev, src, out var r)) { c.Drops.Add(r); return; }
            LocalDeliver(dev, pkt, ts, ref ctx);
            return;
        }
        if (!ns.Forwarding(dev))
        {
            c.Drops.Add(DropReason.IpForwardingDisabled);
            return;
        }
        switch (route?.Type)
        {
            case null:
                IpError(dev, pkt, ts, pt, 0, DropReason.IpNoRoute);
                return;
            case RouteKind.Blackhole:
                c.Drops.Add(DropReason.IpBlackhole);
                return;
            case RouteKind.Unreachable:
                IpError(dev, pkt, ts, pt, 1, DropReason.IpRouteUnreachable);
                return;
            case RouteKind.Prohibit:
                IpError(dev, pkt, ts, pt, 13, DropReason.IpRouteProhibited);
                return;
        }
        if (!ValidateSource(dev, src, out var why)) { c.Drops.Add(why); return; }
        Forward(dev, pkt, ts, pt, route!, ref ctx);
    }

    /// <summary>fib_validate_source: our own address as source is a martian; rp_filter 1 wants the reverse
    /// route through the input device, 2 any reverse route.</summary>
    private static bool ValidateSource(Device dev, uint src, out DropReason reason)
    {
        var ns = dev.Namespace;
        reason = DropReason.None;
        if (ns.Routing.LookupLocal(src) is { Type: RouteKind.Local }) { reason = DropReason.IpMartianSource; return false; }
        int rpf = ns.RpFilter(dev);
        if (rpf == 0) return true;
        var back = ns.Routing.LookupMain(src);
        bool ok = back is { Type: RouteKind.Unicast } && (rpf == 2 || back.Device == dev);
        if (!ok) reason = DropReason.IpRpFilter;
        return ok;
    }

    /// <summary>ip_error: with forwarding on, an ICMP unreachable (rate limited per source, burst 5, 1/s) and the drop.</summary>
    private void IpError(Device dev, byte[] pkt, long ts, PacketType pt, byte code, DropReason reason)
    {
        var ns = dev.Namespace;
        ns.Counters.Drops.Add(reason);
        if (pt != PacketType.Host) return;
        uint src = BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(12));
        if (!PeerAllow(ns, src, ts, 1000, 5000)) return;
        IcmpSend(ns, pkt, dev, 3, code, 0, ts, localDestination: false);
    }

    /// <summary>ip_local_deliver: INPUT, then the protocol consumes the packet (no sockets yet: counted).</summary>
    private void LocalDeliver(Device dev, byte[] pkt, long ts, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (ns.HasIptables)
        {
            ctx.OutInterface = null;
            if (ns.Netfilter.Hook(HookPoint.LocalIn, ref ctx, pkt) == Verdict.Drop)
            {
                c.Drops.Add(ctx.DropReason);
                if (ctx.Reject != RejectWith.None) SendReject(dev, pkt, ts, ref ctx, localDestination: true);
                return;
            }
        }
        byte proto = pkt[9];
        c.Delivered[proto] = c.Delivered.GetValueOrDefault(proto) + 1;
        int ihl = (pkt[0] & 0xF) * 4;
        // The kernel would answer an echo request (icmp_echo); without a local stack it is consumed.
        if (proto == 1 && pkt.Length >= ihl + 8 && pkt[ihl] == 8) c.EchoRequests++;
    }

    /// <summary>ip_forward: pkt_type, TTL, MTU, TTL decrement, FORWARD, then ip_output.</summary>
    private void Forward(Device dev, byte[] pkt, long ts, PacketType pt, Route route, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        if (pt != PacketType.Host) { c.Drops.Add(DropReason.IpForwardNotHost); return; }
        if (pkt[8] <= 1)
        {
            IcmpSend(ns, pkt, dev, 11, 0, 0, ts, localDestination: false);
            c.Drops.Add(DropReason.IpTtlExpired);
            return;
        }
        var outDev = route.Device!;
        bool df = (pkt[6] & 0x40) != 0;
        if (pkt.Length > outDev.Mtu && df)
        {
            IcmpSend(ns, pkt, dev, 3, 4, (uint)outDev.Mtu, ts, localDestination: false);
            c.Drops.Add(DropReason.IpFragNeeded);
            return;
        }
        PacketFactory.DecreaseTtl(pkt);
        if (ns.HasIptables)
        {
            ctx.OutInterface = outDev.Name;
            SetRouteMtu(ns, pkt, outDev, ref ctx);
            if (GrowableHook(ns, HookPoint.Forward, ref ctx, ref pkt) == Verdict.Drop)
            {
                c.Drops.Add(ctx.DropReason);
                if (ctx.Reject != RejectWith.None) SendReject(dev, pkt, ts, ref ctx, localDestination: false);
                return;
            }
        }
        uint nexthop = route.Gateway != 0 ? route.Gateway : BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(16));
        var reason = Output(ns, pkt, outDev, nexthop, ts, ref ctx, dev);
        if (reason == DropReason.None) c.Forwarded++;
        else if (reason != Queued) c.Drops.Add(reason);
    }

    /// <summary>The route MTUs netfilter sees (TCPMSS --clamp-mss-to-pmtu): dst_mtu of the output route, and the MTU of
    /// the route back to the source address (tcpmss_reverse_mtu; 0 when there is none).</summary>
    private static void SetRouteMtu(Namespace ns, ReadOnlySpan<byte> pkt, Device outDev, ref PacketContext ctx)
    {
        ctx.OutMtu = outDev.Mtu;
        var back = ns.Routing.Lookup(BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]));
        ctx.ReverseMtu = back?.Device?.Mtu ?? 0;
    }

    /// <summary>
    /// A hook whose targets may lengthen the datagram (TCPMSS adding its option, for which the kernel expands the
    /// skb): when the namespace's tables can do that, the hook runs on a copy with room behind the datagram, and
    /// <paramref name="pkt"/> becomes the (possibly longer) result.
    /// </summary>
    private static Verdict GrowableHook(Namespace ns, HookPoint hook, ref PacketContext ctx, ref byte[] pkt)
    {
        if (!ns.Netfilter.MayGrowPackets) return ns.Netfilter.Hook(hook, ref ctx, pkt);
        return GrowableHook(ns, hook, ref ctx, ref pkt, 0);
    }

    /// <summary><see cref="GrowableHook(Namespace, HookPoint, ref PacketContext, ref byte[])"/> on a buffer whose
    /// datagram starts at <paramref name="ipOffset"/> (14 for an Ethernet frame).</summary>
    private static Verdict GrowableHook(Namespace ns, HookPoint hook, ref PacketContext ctx, ref byte[] buf, int ipOffset)
    {
        if (!ns.Netfilter.MayGrowPackets) return ns.Netfilter.Hook(hook, ref ctx, buf.AsSpan(ipOffset));
        var room = new byte[buf.Length + Netfilter.NetfilterTables.MaxGrowth];
        buf.CopyTo(room, 0);
        int before = ctx.Length;
        var v = ns.Netfilter.Hook(hook, ref ctx, room.AsSpan(ipOffset));
        if (ctx.Length == before) room.AsSpan(0, buf.Length).CopyTo(buf);
        else buf = room.AsSpan(0, buf.Length + ctx.Length - before).ToArray();
        return v;
    }

    /// <summary>Marker: the packet waits in a neighbour queue.</summary>
    private const DropReason Queued = (DropReason)ushort.MaxValue;

    /// <summary>ip_output → POSTROUTING → ip_finish_output2 → neighbour → dev_queue_xmit.</summary>
    private DropReason Output(Namespace ns, byte[] pkt, Device outDev, uint nexthop, long ts, ref PacketContext ctx, Device? inDev)
    {
        if (ns.HasIptables)
        {
            ctx.OutInterface = outDev.Name;
            SetRouteMtu(ns, pkt, outDev, ref ctx);
            if (GrowableHook(ns, HookPoint.PostRouting, ref ctx, ref pkt) == Verdict.Drop) return ctx.DropReason;
        }
        if (pkt.Length > outDev.Mtu) return DropReason.IpFragmentationNotModeled;
        if (outDev.Kind == DeviceKind.Loopback)
            return Transmit(outDev, PacketFactory.Ethernet(new byte[6], new byte[6], PacketFactory.EthIpv4, pkt), ts);
        var n = ns.Neighbours.Find(outDev, nexthop);
        if (n != null && n.Valid)
        {
            n.HhCached = true;
            return Transmit(outDev, PacketFactory.Ethernet(n.Mac, outDev.Mac, PacketFactory.EthIpv4, pkt), ts);
        }
        // __neigh_event_send: start resolution (or keep waiting) and queue the packet, oldest dropped past unres_qlen_bytes.
        bool forwarded = inDev != null;
        if (n == null || n.State == NudState.Failed)
        {
            n ??= ns.Neighbours.Create(outDev, nexthop, NudState.Incomplete);
            n.State = NudState.Incomplete;
            n.Probes = 1;
            n.NextProbeNs = ts + NeighbourTable.RetransNs;
            SendArpRequest(n, BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(12)), ts);
        }
        var c = ns.Counters;
        while (n.QueuedBytes + pkt.Length > NeighbourTable.UnresQlenBytes && n.Queue.TryDequeue(out var old))
        {
            n.QueuedBytes -= old.Datagram.Length;
            if (old.Forwarded) { c.NeighQueued--; c.Drops.Add(DropReason.NeighFailed); }
        }
        n.Queue.Enqueue(new PendingPacket(pkt, ts, inDev ?? outDev, forwarded));
        n.QueuedBytes += pkt.Length;
        if (forwarded) c.NeighQueued++;
        return Queued;
    }

    // ---------------- locally generated packets ----------------

    /// <summary>
    /// __icmp_send: no error about an ICMP error, a non-first fragment, or a non-unicast packet; rate
    /// limited per destination (icmp_ratelimit, burst 6) for the types in icmp_ratemask; source address the
    /// original destination when it was ours, else chosen by the route back.
    /// </summary>
    private void IcmpSend(Namespace ns, byte[] original, Device inDev, byte type, byte code, uint info, long ts, bool localDestination)
    {
        var c = ns.Counters;
        if (original.Length < 20) return;
        if ((BinaryPrimitives.ReadUInt16BigEndian(original.AsSpan(6)) & 0x1FFF) != 0) return;
        int ihl = (original[0] & 0xF) * 4;
        if (original[9] == 1)
        {
            if (original.Length < ihl + 1) return;
            byte t = original[ihl];
            if (t > 18 || PacketContext.IsIcmpError(t)) return;
        }
        uint osrc = BinaryPrimitives.ReadUInt32BigEndian(original.AsSpan(12));
        uint odst = BinaryPrimitives.ReadUInt32BigEndian(original.AsSpan(16));
        if (osrc == 0 || IsMulticast(osrc) || osrc == 0xFFFFFFFF) return;
        var back = ns.Routing.Lookup(osrc);
        if (back == null || back.Type != RouteKind.Unicast || back.Device == null) return;
        bool limited = ((ns.IcmpRateMask >> type) & 1) != 0 && !(type == 3 && code == 4);
        if (limited && !PeerAllow(ns, osrc, ts, ns.IcmpRateLimitMs, 6L * ns.IcmpRateLimitMs))
        {
            c.IcmpRateLimited++;
            return;
        }
        uint saddr = localDestination ? odst
            : ns.IcmpErrorsUseInboundIfaddr ? ns.SelectAddress(inDev, osrc)
            : 0;
        if (saddr == 0) saddr = back.Source != 0 ? back.Source : ns.SelectAddress(back.Device, back.Gateway != 0 ? back.Gateway : osrc);
        var err = PacketFactory.IcmpError(original, type, code, info, saddr, osrc, (byte)ns.DefaultTtl, back.Device.Mtu, IcmpErrorIpId);
        c.IcmpErrorsSent++;
        LocalOut(ns, err, ts, null, CtInfo.None);
    }

    /// <summary>REJECT: nf_send_reset or nf_send_unreach for the packet the rule dropped.</summary>
    private void SendReject(Device inDev, byte[] pkt, long ts, ref PacketContext ctx, bool localDestination)
    {
        var ns = inDev.Namespace;
        if ((BinaryPrimitives.ReadUInt16BigEndian(pkt.AsSpan(6)) & 0x1FFF) != 0) return;
        if (!PacketFactory.TransportChecksumOk(pkt)) return;
        if (ctx.Reject == RejectWith.TcpReset)
        {
            if (pkt[9] != 6) return;
            var rst = PacketFactory.TcpReset(pkt, (byte)ns.DefaultTtl);
            if (rst == null) return;
            ns.Counters.TcpResetsSent++;
            // nf_ct_attach: the reset travels as part of the original's connection, reply direction.
            var info = ctx.Ct == null ? CtInfo.None
                : ctx.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? CtInfo.Related : CtInfo.RelatedReply;
            LocalOut(ns, rst, ts, ctx.Ct, info);
            return;
        }
        byte code = ctx.Reject switch
        {
            RejectWith.IcmpNetUnreachable => 0,
            RejectWith.IcmpHostUnreachable => 1,
            RejectWith.IcmpProtoUnreachable => 2,
            RejectWith.IcmpPortUnreachable => 3,
            RejectWith.IcmpNetProhibited => 9,
            RejectWith.IcmpHostProhibited => 10,
            _ => 13,
        };
        IcmpSend(ns, pkt, inDev, 3, code, 0, ts, localDestination);
    }

    /// <summary>ip_local_out: route, OUTPUT (re-route if NAT moved the destination), POSTROUTING, neighbour.</summary>
    private void LocalOut(Namespace ns, byte[] pkt, long ts, Netfilter.Conntrack.Connection? ct, CtInfo info)
    {
        var c = ns.Counters;
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(16));
        var route = ns.Routing.Lookup(dst);
        if (route == null || route.Device == null || route.Type is not (RouteKind.Unicast or RouteKind.Local)) return;
        PacketContext ctx = default;
        if (ns.HasIptables)
        {
            if (!PacketContext.FromIpv4(pkt, out ctx, out _)) return;
            ctx.TimestampNs = ts;
            ctx.Ct = ct;
            ctx.CtInfo = info;
            ctx.OutInterface = route.Device.Name;
            SetRouteMtu(ns, pkt, route.Device, ref ctx);
            if (GrowableHook(ns, HookPoint.LocalOut, ref ctx, ref pkt) == Verdict.Drop) return;
            uint after = BinaryPrimitives.ReadUInt32BigEndian(pkt.AsSpan(16));
            if (after != dst)
            {
                route = ns.Routing.Lookup(after);
                if (route == null || route.Device == null || route.Type is not (RouteKind.Unicast or RouteKind.Local)) return;
                dst = after;
            }
        }
        c.Sent++;
        if (route.Type == RouteKind.Local)
        {
            // Addressed to ourselves: it would go over lo to a local socket; consumed.
            return;
        }
        uint nexthop = route.Gateway != 0 ? route.Gateway : dst;
        Output(ns, pkt, route.Device, nexthop, ts, ref ctx, null);
    }

    /// <summary>inet_peer_xrlim_allow on the namespace's peer entry for <paramref name="address"/>
    /// (ip_error and icmp_send share it): tokens in ms, a new peer starts with a minute's worth, capped at the burst.</summary>
    private bool PeerAllow(Namespace ns, uint address, long ts, long costMs, long burstMs)
    {
        long now = ts / 1_000_000;
        var (tokens, last) = _peers.TryGetValue((ns, address), out var p) ? p : (0L, now - 60_000);
        tokens += now - last;
        if (tokens > burstMs) tokens = burstMs;
        bool ok = tokens >= costMs;
        if (ok) tokens -= costMs;
        _peers[(ns, address)] = (tokens, now);
        return ok;
    }
}
