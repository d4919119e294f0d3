using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Link;

/// <summary>
/// The Linux bridge (net/bridge): br_handle_frame on every port (source checks, br_netfilter PREROUTING, learning,
/// forward / flood / pass up), br_dev_xmit for frames the bridge device itself sends. Forwarded frames travel as
/// the same skb; flooded copies are clones, or copies when br_netfilter may rewrite them.
/// </summary>
public sealed class BridgeLink : LinkKind
{
    public override string Name => "bridge";
    public override bool IsBridge => true;

    private static bool IsLinkLocalGroup(ReadOnlySpan<byte> d)
        => d[0] == 0x01 && d[1] == 0x80 && d[2] == 0xC2 && d[3] == 0 && d[4] == 0 && (d[5] & 0xF0) == 0;

    /// <summary>br_handle_frame: source and link-local checks, then NF_BR_PRE_ROUTING, where br_netfilter (with
    /// net.bridge.bridge-nf-call-iptables=1, bridge-nf-call-ip6tables=1) runs the IPv4 (IPv6) PREROUTING hooks on every
    /// IPv4 (IPv6) frame a port receives, the ones addressed to the bridge itself included; then br_handle_frame_finish.
    /// ARP frames would cross arptables FORWARD with bridge-nf-call-arptables=1: Softnet has no arptables, so that key
    /// is honoured with the empty table it implies (every frame accepted).</summary>
    public override RxHandlerResult PortReceive(NetStack stack, Device br, Device port, Skb skb)
    {
        var ns = br.Namespace;
        if (!br.Up) { NetStack.Drop(ns, skb, DropReason.DeviceDown); return RxHandlerResult.Consumed; }
        var eth = skb.HeadBuffer.Slice(skb.MacHeader, 14);
        var src = eth.Slice(6, 6);
        if ((src[0] & 1) != 0 || src.IndexOfAnyExcept((byte)0) < 0) { NetStack.Drop(ns, skb, DropReason.BridgeInvalidSource); return RxHandlerResult.Consumed; }
        if (IsLinkLocalGroup(eth[..6]))
        {
            // 01:80:C2:00:00:0X (group_fwd_mask not modeled, so 0): the STP group address is bridged like any frame
            // while STP is off, pause frames are dropped, the rest go up on the port itself (RX_HANDLER_PASS).
            switch (eth[5])
            {
                case 0x00 when !br.Stp: break;
                case 0x01: NetStack.Drop(ns, skb, DropReason.BridgeLinkLocal); return RxHandlerResult.Consumed;
                default: return RxHandlerResult.Pass;
            }
        }
        PacketContext ctx = default;
        bool nf = false;
        if (BridgeNetfilter.Active(ns) && skb.Protocol == EtherTypes.Ipv4)
        {
            if (!BridgeNetfilter.PreRouting(stack, br, port, skb, ref ctx)) return RxHandlerResult.Consumed;
            nf = true;
        }
        else if (BridgeNetfilter.Active6(ns) && skb.Protocol == EtherTypes.Ipv6)
        {
            if (!BridgeNetfilter.PreRouting6(stack, br, port, skb)) return RxHandlerResult.Consumed;
            nf = true;
        }
        Finish(stack, br, port, skb, nf, ref ctx);
        return RxHandlerResult.Consumed;
    }

    /// <summary>br_handle_frame_finish: learn the source, then forward, flood or pass up.</summary>
    private static void Finish(NetStack stack, Device br, Device port, Skb skb, bool nf, ref PacketContext ctx)
    {
        var c = br.Namespace.Counters;
        var eth = skb.HeadBuffer.Slice(skb.MacHeader, 14);
        ulong srcKey = Device.MacKey(eth.Slice(6, 6));
        if (!IsLocalMac(br, srcKey)) br.Fdb[srcKey] = port;
        if ((eth[0] & 1) != 0)
        {
            // The local copy keeps the PREROUTING context; the flooded copies go through FORWARD/POSTROUTING.
            int up = nf ? stack.TakeNf(ctx) : -1;
            Skb? flood = nf ? Copy(stack, skb) : stack.Clone(skb);
            if (flood != null)
            {
                if (nf) FloodNetfilter(stack, br, port, flood, ref ctx);
                else
                {
                    c.Bridged++;
                    Flood(stack, br, port, flood);
                }
            }
            else c.Drops.Add(DropReason.SkbAllocFailed);
            PassUp(stack, br, skb, up);
            return;
        }
        ulong dstKey = Device.MacKey(eth[..6]);
        if (IsLocalMac(br, dstKey))
        {
            c.Bridged++;
            PassUp(stack, br, skb, nf ? stack.TakeNf(ctx) : -1);
            return;
        }
        if (br.Fdb.TryGetValue(dstKey, out var to))
        {
            if (to == port) { NetStack.Drop(br.Namespace, skb, DropReason.BridgeSamePort); return; }
            if (nf && !BridgeNetfilter.Forward(stack, br, skb, ref ctx, to)) return;
            c.Bridged++;
            skb.Push(14);
            stack.Transmit(to, skb);
            return;
        }
        if (nf)
        {
            FloodNetfilter(stack, br, port, skb, ref ctx);
            return;
        }
        c.Bridged++;
        Flood(stack, br, port, skb);
    }

    /// <summary>br_flood with br_netfilter: each port's copy crosses FORWARD and POSTROUTING on its own, with that
    /// port as physout (br_nf_forward_ip, br_nf_post_routing on every deliver_clone); each gets a private copy since
    /// NAT may rewrite it. The frame counts once: bridged if any port took it, else dropped with the last reason.</summary>
    private static void FloodNetfilter(NetStack stack, Device br, Device? except, Skb skb, ref PacketContext ctx)
    {
        var ns = br.Namespace;
        Device? last = null;
        foreach (var p in br.Ports)
            if (p != except && p.Up) last = p;
        if (last == null) { skb.Free(); ns.Counters.Bridged++; return; }
        bool any = false;
        var why = DropReason.None;
        int traceId = skb.TraceId;
        foreach (var p in br.Ports)
        {
            if (p == except || !p.Up) continue;
            var copy = p == last ? skb : Copy(stack, skb);
            if (copy == null) { why = DropReason.SkbAllocFailed; continue; }
            var portCtx = ctx;
            if (!BridgeNetfilter.Forward(stack, br, copy, ref portCtx, p, countDrop: false)) { why = portCtx.DropReason; continue; }
            any = true;
            copy.Push(14);
            stack.Transmit(p, copy);
        }
        if (any) ns.Counters.Bridged++;
        else
        {
            ns.Counters.Drops.Add(why == DropReason.None ? DropReason.NetfilterDrop : why);
            if (traceId != 0) Telemetry.PacketTracer.Current?.Drop(traceId, ns, why == DropReason.None ? DropReason.NetfilterDrop : why);
        }
    }

    /// <summary>A private copy of a frame (data at the network header, MAC header before it), same offsets.</summary>
    private static Skb? Copy(NetStack stack, Skb skb)
    {
        skb.Push(14);
        var copy = stack.SkbFrom(stack.Linearize(skb));
        skb.Pull(14);
        if (copy == null) return null;
        copy.Id = skb.Id;
        copy.TraceId = skb.TraceId;
        copy.Dev = skb.Dev;
        copy.PktType = skb.PktType;
        copy.Protocol = skb.Protocol;
        // skb_copy keeps the header's netfilter state (_nfct, mark, nf_bridge): the IPv6 hooks read it from the skb.
        copy.Conntrack = skb.Conntrack;
        copy.CtInfo = skb.CtInfo;
        copy.Mark = skb.Mark;
        copy.NfBridgePhysIn = skb.NfBridgePhysIn;
        copy.ResetMacHeader();
        copy.Pull(14);
        copy.ResetNetworkHeader();
        return copy;
    }

    internal static bool IsLocalMac(Device br, ulong key)
    {
        if (Device.MacKey(br.Mac) == key) return true;
        foreach (var p in br.Ports)
            if (Device.MacKey(p.Mac) == key) return true;
        return false;
    }

    /// <summary>br_flood: a clone to every up port but the one it came in on (data at the network header).</summary>
    private static void Flood(NetStack stack, Device br, Device? except, Skb skb)
    {
        skb.Push(14);
        FloodFrame(stack, br, except, skb);
    }

    /// <summary>br_flood with data at the MAC header: the last port takes the skb itself.</summary>
    private static void FloodFrame(NetStack stack, Device br, Device? except, Skb skb)
    {
        Device? last = null;
        foreach (var p in br.Ports)
        {
            if (p == except || !p.Up) continue;
            if (last != null)
            {
                var clone = stack.Clone(skb);
                if (clone != null) stack.Transmit(last, clone);
            }
            last = p;
        }
        if (last != null) stack.Transmit(last, skb);
        else skb.Free();
    }

    /// <summary>br_pass_frame_up: the frame is received again, on the bridge device.</summary>
    private static void PassUp(NetStack stack, Device br, Skb skb, int nfSlot)
    {
        skb.Push(14);
        stack.NetifRx(br, skb, nfSlot);
    }

    /// <summary>br_dev_xmit: FDB lookup on the destination, flood when unknown or group.</summary>
    public override DropReason Xmit(NetStack stack, Device dev, Skb skb)
    {
        var dst = skb.LinearData[..6];
        if ((dst[0] & 1) == 0 && dev.Fdb.TryGetValue(Device.MacKey(dst), out var port))
        {
            stack.Transmit(port, skb);
            return DropReason.None;
        }
        FloodFrame(stack, dev, null, skb);
        return DropReason.None;
    }
}
