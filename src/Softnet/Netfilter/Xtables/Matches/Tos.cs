using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m tos (xt_tos.c revision 1): (tos &amp; mask) == value.</summary>
public sealed class TosMatch : XtMatch
{
    internal override bool IsPure => true;
    public byte Value, Mask = 0xFF;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => ((p.CurrentTos & Mask) == Value) ^ Invert;
}

/// <summary>Userspace half of -m tos (libxt_tos.c; symbolic names from tos_values.c).</summary>
internal sealed class TosMatchExtension : X6MatchExtension<TosMatch>
{
    public override string Name => "tos";
    private static readonly XtOpt[] Table = { Arg("tos", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(TosMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        // XTTYPE_TOSMASK with max 0x3f: a symbol's mask is the TOS field without the ECN bits.
        (m.Value, m.Mask) = XtOptions.TosMask(arg!, 0x3F, a);
        m.Invert = invert;
    }

    private static string Text(TosMatch m) => "0x" + m.Value.ToString("x2", CultureInfo.InvariantCulture) + "/0x" + m.Mask.ToString("x2", CultureInfo.InvariantCulture);
    internal override void Save(TosMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --tos ").Append(Text(m));
    internal override void List(TosMatch m, StringBuilder sb) => sb.Append(" tos match").Append(m.Invert ? "!" : "").Append(Text(m));
}
