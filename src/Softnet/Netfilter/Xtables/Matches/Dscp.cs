using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m dscp (xt_dscp.c): the upper six bits of the TOS byte.</summary>
public sealed class DscpMatch : XtMatch
{
    internal override bool IsPure => true;
    public byte Dscp;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => ((p.CurrentTos >> 2) == Dscp) ^ Invert;
}

/// <summary>Userspace half of -m dscp (libxt_dscp.c, classes from dscp_helper.c).</summary>
internal sealed class DscpMatchExtension : X6MatchExtension<DscpMatch>
{
    public override string Name => "dscp";
    private static readonly XtOpt[] Table = { Arg("dscp", 0, invert: true, excl: 2), Arg("dscp-class", 1, invert: true, excl: 1) };
    private protected override XtOpt[] Options => Table;

    private static readonly (string Name, byte Value)[] Classes =
    {
        ("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20), ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38), ("BE", 0x00),
        ("AF11", 0x0a), ("AF12", 0x0c), ("AF13", 0x0e), ("AF21", 0x12), ("AF22", 0x14), ("AF23", 0x16), ("AF31", 0x1a), ("AF32", 0x1c),
        ("AF33", 0x1e), ("AF41", 0x22), ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2e),
    };

    private protected override void Parse(DscpMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        if (o.Id == 0) m.Dscp = (byte)XtOptions.UInt(Name, o, arg!, 0, 63, a);
        else
        {
            int i = Array.FindIndex(Classes, c => c.Name.Equals(arg, StringComparison.OrdinalIgnoreCase));
            if (i < 0) throw a.Error($"Invalid DSCP value `{arg}'");
            m.Dscp = Classes[i].Value;
        }
        m.Invert = invert;
    }

    private protected override void Check(DscpMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (flags == 0) throw a.Error("DSCP match: Parameter --dscp is required");
    }

    private static string Hex(byte v) => "0x" + v.ToString("x2", CultureInfo.InvariantCulture);
    internal override void Save(DscpMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --dscp ").Append(Hex(m.Dscp));
    internal override void List(DscpMatch m, StringBuilder sb) => sb.Append(" DSCP match ").Append(m.Invert ? "!" : "").Append(Hex(m.Dscp));
}
