using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m comment (xt_comment.c): always true.</summary>
public sealed class CommentMatch : XtMatch
{
    internal override bool IsPure => true;
    internal override bool AlwaysMatches => true;
    public string Text = "";
    internal bool Has;
    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => true;
}

/// <summary>Userspace half of -m comment (libxt_comment.c, at most 255 characters).</summary>
internal sealed class CommentMatchExtension : XtMatchExtension<CommentMatch>
{
    public override string Name => "comment";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(CommentMatch m, string option, bool invert, ArgReader a)
    {
        if (option != "--comment") return false;
        if (invert) throw a.Error("comment: option \"--comment\" cannot be inverted.");
        m.Text = a.Next(option);
        if (System.Text.Encoding.UTF8.GetByteCount(m.Text) > 256) throw a.Error("comment: option \"--comment\" is too long (max 256 characters)");
        m.Has = true;
        return true;
    }

    internal override void FinalCheck(CommentMatch m, Rule rule, ArgReader a)
    {
        if (!m.Has) throw a.Error("comment: option \"--comment\" must be specified");
    }

    internal override void Save(CommentMatch m, StringBuilder sb) { sb.Append(" --comment"); IptablesSave.AppendQuoted(sb, m.Text); }
    internal override void List(CommentMatch m, StringBuilder sb) => sb.Append(" /* ").Append(m.Text).Append(" */");
}
