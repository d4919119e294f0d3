using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m state (xt_state.c).</summary>
public sealed class StateMatch : XtMatch
{
    internal override bool IsPure => true;
    internal override bool UsesConntrack => true;
    public CtStateMask States;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
        => ((States & CtStates.Of(ref p)) != 0) ^ Invert;
}

/// <summary>Userspace half of -m state (libxt_state.c).</summary>
internal sealed class StateMatchExtension : XtMatchExtension<StateMatch>
{
    public override string Name => "state";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(StateMatch m, string option, bool invert, ArgReader a)
    {
        if (option != "--state") return false;
        m.States = CtStates.ParseList(a.Next(option), a, allowNat: false);
        m.Invert = invert;
        return true;
    }

    internal override void FinalCheck(StateMatch m, Rule rule, ArgReader a)
    {
        if (m.States == 0) throw a.Error("state: option \"--state\" must be specified");
    }

    internal override void Save(StateMatch m, StringBuilder sb) => sb.Append(m.Invert ? " ! --state " : " --state ").Append(CtStates.Format(m.States));
    internal override void List(StateMatch m, StringBuilder sb) => sb.Append(m.Invert ? " ! state " : " state ").Append(CtStates.Format(m.States));
}
