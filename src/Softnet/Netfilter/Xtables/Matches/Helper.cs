using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m helper (xt_helper.c): the helper of the master connection of an expected one. Softnet runs no
/// conntrack helpers (no expectations), so no connection has a master: the match is its inversion flag.
/// </summary>
public sealed class HelperMatch : XtMatch
{
    internal override bool IsPure => true;
    internal override bool UsesConntrack => true;
    public string Helper = "";
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => Invert;
}

/// <summary>Userspace half of -m helper (libxt_helper.c).</summary>
internal sealed class HelperMatchExtension : X6MatchExtension<HelperMatch>
{
    public override string Name => "helper";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("helper", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(HelperMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        if (arg!.Length > 29) throw a.Error("helper: option \"--helper\" is too long (max 29 characters)");
        m.Helper = arg;
        m.Invert = invert;
    }

    internal override void Save(HelperMatch m, StringBuilder sb) { sb.Append(m.Invert ? " !" : "").Append(" --helper"); IptablesSave.AppendQuoted(sb, m.Helper); }
    internal override void List(HelperMatch m, StringBuilder sb) => sb.Append(" helper match ").Append(m.Invert ? "! " : "").Append('"').Append(m.Helper).Append('"');
}
