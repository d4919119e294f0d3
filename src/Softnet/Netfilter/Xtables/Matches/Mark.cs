using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m mark (xt_mark.c mark_mt).</summary>
public sealed class MarkMatch : XtMatch
{
    internal override bool IsPure => true;
    public uint Value, Mask = 0xFFFFFFFF;
    public bool Invert;
    internal bool Has;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => ((p.Mark & Mask) == Value) ^ Invert;
}

/// <summary>Userspace half of -m mark (libxt_mark.c revision 1).</summary>
internal sealed class MarkMatchExtension : XtMatchExtension<MarkMatch>
{
    public override string Name => "mark";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt MarkOption = new("mark", 0, XtOptType.MarkMask32);

    internal override bool Parse(MarkMatch m, string option, bool invert, ArgReader a)
    {
        if (option != "--mark") return false;
        // XTTYPE_MARKMASK32: value[/mask].
        (m.Value, m.Mask) = XtOptions.MarkMask(Name, MarkOption, a.Next(option), a);
        m.Invert = invert;
        m.Has = true;
        return true;
    }

    internal override void FinalCheck(MarkMatch m, Rule rule, ArgReader a)
    {
        if (!m.Has) throw a.Error("mark: option \"--mark\" must be specified");
    }

    private static string Text(MarkMatch m) => m.Mask == 0xFFFFFFFF ? Opt.Hex(m.Value) : Opt.Hex(m.Value) + "/" + Opt.Hex(m.Mask);
    internal override void Save(MarkMatch m, StringBuilder sb) => sb.Append(m.Invert ? " ! --mark " : " --mark ").Append(Text(m));
    internal override void List(MarkMatch m, StringBuilder sb) => sb.Append(" mark match ").Append(m.Invert ? "! " : "").Append(Text(m));
}
