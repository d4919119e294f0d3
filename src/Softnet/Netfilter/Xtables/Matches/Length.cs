using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m length (xt_length.c length_mt): the IP total length.</summary>
public sealed class LengthMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort Min, Max;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
        => (p.Length >= Min && p.Length <= Max) ^ Invert;
}

/// <summary>Userspace half of -m length (libxt_length.c).</summary>
internal sealed class LengthMatchExtension : X6MatchExtension<LengthMatch>
{
    public override string Name => "length";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("length", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(LengthMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        (m.Min, m.Max) = XtOptions.UInt16RangeOrOne(Name, o, arg!, a);
        m.Invert = invert;
    }

    internal override void Save(LengthMatch m, StringBuilder sb) { sb.Append(m.Invert ? " !" : "").Append(" --length "); XtOptions.AppendRange(sb, m.Min, m.Max); }
    internal override void List(LengthMatch m, StringBuilder sb) { sb.Append(" length ").Append(m.Invert ? "!" : ""); XtOptions.AppendRange(sb, m.Min, m.Max); }
}
