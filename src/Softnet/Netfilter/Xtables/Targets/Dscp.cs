using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of DSCP (xt_DSCP.c dscp_tg, mangle only): rewrite the six DSCP bits of the TOS byte,
/// keeping the two ECN bits, through ipv4_change_dsfield's header checksum update.</summary>
public sealed class DscpTarget : XtTarget
{
    /// <summary>The DSCP value (0..63).</summary>
    public byte Dscp;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ip = p.WritablePacket;
        if (ip.Length < 20) return TargetResult.Continue;
        if ((ip[1] >> 2) != Dscp) MangleChecksum.ChangeDsfield(ip, 0x03, (byte)(Dscp << 2));
        return TargetResult.Continue;
    }

    internal override TableKind? OnlyTable => TableKind.Mangle;
}

/// <summary>Userspace half of DSCP (libxt_DSCP.c with dscp_helper.c's class names).</summary>
internal sealed class DscpTargetExtension : XtTargetExtension<DscpTarget>
{
    public override string Name => "DSCP";

    private static readonly XtOpt[] Options =
    {
        new("set-dscp", 0, XtOptType.UInt8) { Excl = 0b10, Max = 0x3F },
        new("set-dscp-class", 1, XtOptType.String) { Excl = 0b01 },
    };

    private static readonly (string Name, byte Dscp)[] Classes =
    {
        ("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20), ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38),
        ("BE", 0x00), ("AF11", 0x0a), ("AF12", 0x0c), ("AF13", 0x0e), ("AF21", 0x12), ("AF22", 0x14), ("AF23", 0x16),
        ("AF31", 0x1a), ("AF32", 0x1c), ("AF33", 0x1e), ("AF41", 0x22), ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2e),
    };

    /// <summary>class_to_dscp: the first class whose name is a case-insensitive prefix of the argument.</summary>
    internal static byte ClassToDscp(string name, ArgReader a)
    {
        foreach (var (cls, dscp) in Classes)
            if (name.StartsWith(cls, StringComparison.OrdinalIgnoreCase)) return dscp;
        throw a.Error($"Invalid DSCP value `{name}'");
    }

    internal override bool Parse(DscpTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a)!;
        t.Dscp = o.Id == 0 ? (byte)XtOptions.Int(Name, o, arg, a) : ClassToDscp(arg, a);
        return true;
    }

    internal override void FinalCheck(DscpTarget t, Rule rule, ArgReader a)
    {
        if (t.Flags == 0) throw a.Error("DSCP target: Parameter --set-dscp is required");
        XtOptions.FinalCheck(Name, Options, t.Flags, a);
    }

    private static string Hex2(byte v) => "0x" + v.ToString("x2", CultureInfo.InvariantCulture);
    internal override void Save(DscpTarget t, StringBuilder sb) => sb.Append(" --set-dscp ").Append(Hex2(t.Dscp));
    internal override void List(DscpTarget t, StringBuilder sb) => sb.Append(" DSCP set ").Append(Hex2(t.Dscp));
}
