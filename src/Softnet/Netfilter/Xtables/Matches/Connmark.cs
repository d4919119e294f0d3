using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m connmark (xt_connmark.c connmark_mt): the conntrack entry's mark.</summary>
public sealed class ConnmarkMatch : XtMatch
{
    internal override bool IsPure => true;
    internal override bool UsesConntrack => true;
    public uint Mark, Mask = 0xFFFFFFFF;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        // The untracked template is a conntrack entry too (mark 0); no entry at all never matches.
        uint mark;
        if (p.CtInfo == CtInfo.Untracked) mark = 0;
        else if (p.Ct is { } ct && p.CtInfo != CtInfo.None) mark = ct.Mark;
        else return false;
        return ((mark & Mask) == Mark) ^ Invert;
    }
}

/// <summary>Userspace half of -m connmark (libxt_connmark.c revision 1).</summary>
internal sealed class ConnmarkMatchExtension : X6MatchExtension<ConnmarkMatch>
{
    public override string Name => "connmark";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("mark", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(ConnmarkMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        (m.Mark, m.Mask) = XtOptions.MarkMask(Name, o, arg!, a);
        m.Invert = invert;
    }

    private static string Text(ConnmarkMatch m) => m.Mask == 0xFFFFFFFF ? Opt.Hex(m.Mark) : Opt.Hex(m.Mark) + "/" + Opt.Hex(m.Mask);
    internal override void Save(ConnmarkMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --mark ").Append(Text(m));
    internal override void List(ConnmarkMatch m, StringBuilder sb) => sb.Append(" connmark match ").Append(m.Invert ? "!" : "").Append(' ').Append(Text(m));
}
