using Softnet.Link;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>
/// nf_hook for NFPROTO_IPV6: the namespace's ip6tables tables (ns/NAME/ip6tables.save), IPv6 conntrack and NAT66 at
/// the five IPv6 hooks. The IPv6 path (Ip/Ipv6*.cs) calls <see cref="Hook"/> where ip6_rcv_finish, ip6_input,
/// ip6_forward, ip6_local_out and ip6_output call NF_HOOK.
/// </summary>
public static class Ip6Netfilter
{
    /// <summary>True when the namespace has IPv6 hooks to run (an ip6tables.save, or IPv6 conntrack).</summary>
    public static bool Active(Namespace ns) => ns.Netfilter6 != null;

    /// <summary>nf_defrag_ipv6 runs in the namespace (IPv6 conntrack is on; ipv6_defrag at priority -400 of PREROUTING
    /// and LOCAL_OUT): the IPv6 path gathers fragments (nf_ct_frag6_gather, users IP6_DEFRAG_CONNTRACK_IN / _OUT) before it
    /// calls <see cref="Hook"/> there, as Ipv4Input does for nf_defrag_ipv4, and hands the hooks the whole packet (without
    /// its fragment header; frag_max_size kept for ip6_fragment). A fragment that still reaches conntrack is INVALID.</summary>
    public static bool Defrags(Namespace ns) => ns.Netfilter6 is { ConntrackEnabled: true };

    /// <summary>Runs <paramref name="ns"/>'s IPv6 hooks at <paramref name="hook"/> on <paramref name="skb"/> (data at
    /// the IPv6 header). False: the packet is dropped (<paramref name="reason"/>; a REJECT's reply already sent through
    /// <see cref="Ip.Ipv6Output.LocalOut"/>) and the caller frees the skb and counts the drop. A NAT target may rewrite
    /// addresses, ports and checksums in place. The skb carries the conntrack entry (skb->_nfct: <see cref="Skb.Conntrack"/>
    /// and <see cref="Skb.CtInfo"/>) and the mark from one hook to the next.</summary>
    public static bool Hook(NetStack stack, Namespace ns, HookPoint hook, Skb skb, Device? inDev, Device? outDev, out DropReason reason)
    {
        reason = DropReason.None;
        var t = ns.Netfilter6;
        if (t == null) return true;
        var l3 = NetStack.L3(skb);
        if (!PacketContext.FromIpv6(l3, skb.Len - (skb.NetworkHeader - skb.Data), out var ctx, out reason)) return false;
        ctx.TimestampNs = skb.TimestampNs;
        ctx.Mark = skb.Mark;
        ctx.PktType = skb.PktType;
        ctx.IpSummed = skb.IpSummed;
        ctx.Gso = skb.IsGso;
        ctx.ChecksumVerified = skb.IpSummed is CsumState.Unnecessary or CsumState.Partial || skb.IsGso;
        if (skb.MacHeaderWasSet) ctx.SrcMac = PacketContext.MacOf(skb.HeadBuffer.Slice(skb.MacHeader + 6, 6));
        ctx.InInterface = inDev?.Name;
        ctx.OutInterface = outDev?.Name;
        // skb->nf_bridge: a frame br_netfilter took through the IPv6 hooks keeps its bridge ports for -m physdev, also
        // once passed up to the bridge and routed or delivered.
        if (skb.NfBridgePhysIn is { } physIn)
        {
            ctx.HasBridgeInfo = true;
            ctx.PhysIn = physIn.Name;
            ctx.PhysOut = skb.NfBridgePhysOut?.Name;
        }
        if (outDev != null) ctx.OutMtu = outDev.Mtu;
        ctx.Ct = skb.Conntrack as Connection;
        ctx.CtInfo = (CtInfo)skb.CtInfo;
        int traceId = ctx.TraceId = skb.TraceId;
        string? before = traceId != 0 ? Telemetry.PacketTracer.Current?.HookBegin(ns, l3) : null;
        var v = t.Hook(hook, ref ctx, l3);
        skb.Conntrack = ctx.Ct;
        skb.CtInfo = (byte)ctx.CtInfo;
        skb.Mark = ctx.Mark;
        if (traceId != 0) Telemetry.PacketTracer.Current?.HookDone(traceId, ns, hook, before ?? "", l3, ctx.Ct, ctx.CtInfo, v);
        if (v == Verdict.Accept) return true;
        reason = ctx.DropReason == DropReason.None ? DropReason.NetfilterDrop : ctx.DropReason;
        if (ctx.Reject != RejectWith.None) Nf6Reject.Send(stack, ns, t, hook, skb, inDev, ref ctx);
        return false;
    }
}
