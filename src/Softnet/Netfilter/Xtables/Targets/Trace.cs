using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of TRACE: sets the packet's trace flag (skb->nf_trace) for the tracer and continues. iptables-nft
/// stores it as "meta nftrace set 1", so unlike xt_TRACE it is accepted in every table, not only raw.
/// </summary>
public sealed class TraceTarget : XtTarget
{
    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Trace = true;
        t.TraceCount++;
        return TargetResult.Continue;
    }
}

/// <summary>Userspace half of TRACE (libxt_TRACE.c): no options.</summary>
internal sealed class TraceTargetExtension : XtTargetExtension<TraceTarget>
{
    public override string Name => "TRACE";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    internal override bool Parse(TraceTarget t, string option, bool invert, ArgReader a) => false;
    internal override void Save(TraceTarget t, StringBuilder sb) { }
    internal override void List(TraceTarget t, StringBuilder sb) { }
}
