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

    private static readonly (string Name, byte Value)[] Names =
    {
        ("Minimize-Cost", 0x02), ("Maximize-Reliability", 0x04), ("Maximize-Throughput", 0x08), ("Minimize-Delay", 0x10), ("Normal-Service", 0x00),
    };

    private protected override void Parse(TosMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        int i = Array.FindIndex(Names, n => n.Name.Equals(arg, StringComparison.OrdinalIgnoreCase));
        if (i >= 0) { m.Value = Names[i].Value; m.Mask = 0x3F; }
        else
        {
            int slash = arg!.IndexOf('/');
            if (!XtOptions.TryStrtoul(slash < 0 ? arg : arg[..slash], out ulong v) || v > 255
                || (slash >= 0 && (!XtOptions.TryStrtoul(arg[(slash + 1)..], out ulong mk) || mk > 255 || (m.Mask = (byte)mk) != mk)))
                throw a.Error($"Symbolic name \"{arg}\" is unknown");
            m.Value = (byte)v;
            if (slash < 0) m.Mask = 0xFF;
        }
        m.Invert = invert;
    }

    private static string Text(TosMatch m) => "0x" + m.Value.ToString("x2", CultureInfo.InvariantCulture) + "/0x" + m.Mask.ToString("x2", CultureInfo.InvariantCulture);
    internal override void Save(TosMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --tos ").Append(Text(m));
    internal override void List(TosMatch m, StringBuilder sb) => sb.Append(" tos match").Append(m.Invert ? "!" : "").Append(Text(m));
}
