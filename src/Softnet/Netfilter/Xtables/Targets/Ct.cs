using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of NOTRACK and CT --notrack (xt_CT.c): mark the packet untracked so conntrack skips it.</summary>
public sealed class NotrackTarget : XtTarget
{
    internal bool Notrack;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Ct = null;
        p.CtInfo = CtInfo.Untracked;
        return TargetResult.Continue;
    }

    internal override TableKind? OnlyTable => TableKind.Raw;
    internal override bool UsesConntrack => true;
}

/// <summary>Userspace half of NOTRACK (libxt_CT.c, the NOTRACK alias of CT --notrack).</summary>
internal sealed class NotrackTargetExtension : XtTargetExtension<NotrackTarget>
{
    public override string Name => "NOTRACK";
    public override string ListName => "CT";
    internal override bool Parse(NotrackTarget t, string option, bool invert, ArgReader a) => false;
    internal override void Save(NotrackTarget t, StringBuilder sb) { }
    internal override void List(NotrackTarget t, StringBuilder sb) => sb.Append(" NOTRACK");
}

/// <summary>Userspace half of CT (libxt_CT.c); only --notrack so far.</summary>
internal sealed class CtTargetExtension : XtTargetExtension<NotrackTarget>
{
    public override string Name => "CT";

    internal override bool Parse(NotrackTarget t, string option, bool invert, ArgReader a)
    {
        if (option == "--notrack") { t.Notrack = true; return true; }
        if (option is "--helper" or "--ctevents" or "--expevents" or "--zone" or "--zone-orig" or "--zone-reply" or "--timeout")
            throw a.Error($"CT {option} is not supported yet");
        return false;
    }

    internal override void FinalCheck(NotrackTarget t, Rule rule, ArgReader a)
    {
        if (!t.Notrack) throw a.Error("CT: only --notrack is supported yet");
    }

    internal override void Save(NotrackTarget t, StringBuilder sb) => sb.Append(" --notrack");
    internal override void List(NotrackTarget t, StringBuilder sb) => sb.Append(" CT notrack");
}
