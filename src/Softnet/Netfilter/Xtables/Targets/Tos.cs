using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of TOS (xt_DSCP.c tos_tg, revision 1, mangle only): tos = (tos &amp; ~mask) ^ value, written
/// with ipv4_change_dsfield when it changes.</summary>
public sealed class TosTarget : XtTarget
{
    public byte Value, Mask;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ip = p.WritablePacket;
        if (ip.Length < 20) return TargetResult.Continue;
        byte orig = ip[1];
        byte nv = (byte)((orig & ~Mask) ^ Value);
        if (orig != nv) MangleChecksum.ChangeDsfield(ip, 0, nv);
        return TargetResult.Continue;
    }

    internal override TableKind? OnlyTable => TableKind.Mangle;
}

/// <summary>Userspace half of TOS (libxt_TOS.c revision 1): every form is saved as the --set-tos value/mask it
/// amounts to; a symbolic name masks 0x3f (the precedence bits are kept), a number alone masks 0xff.</summary>
internal sealed class TosTargetExtension : XtTargetExtension<TosTarget>
{
    public override string Name => "TOS";
    private const uint Any = 0b1111;

    private static readonly XtOpt[] Options =
    {
        new("set-tos", 0, XtOptType.TosMask) { Excl = Any, Max = 0x3F },
        new("and-tos", 1, XtOptType.UInt8) { Excl = Any },
        new("or-tos", 2, XtOptType.UInt8) { Excl = Any },
        new("xor-tos", 3, XtOptType.UInt8) { Excl = Any },
    };

    internal override bool Parse(TosTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a)!;
        if (o.Id == 0)
        {
            (t.Value, t.Mask) = XtOptions.TosMask(arg, 0x3F, a);
            return true;
        }
        byte v = (byte)XtOptions.Int(Name, o, arg, a);
        switch (o.Id)
        {
            case 1: t.Value = 0; t.Mask = (byte)~v; break;
            case 2: t.Value = v; t.Mask = v; break;
            default: t.Value = v; t.Mask = 0; break;
        }
        return true;
    }

    internal override void FinalCheck(TosTarget t, Rule rule, ArgReader a)
    {
        if ((t.Flags & Any) == 0) throw a.Error("TOS: An action is required");
        XtOptions.FinalCheck(Name, Options, t.Flags, a);
    }

    private static string Hex2(byte v) => "0x" + v.ToString("x2", CultureInfo.InvariantCulture);
    internal override void Save(TosTarget t, StringBuilder sb) => sb.Append(" --set-tos ").Append(Hex2(t.Value)).Append('/').Append(Hex2(t.Mask));

    /// <summary>iptables -L with -n (numeric), the form Softnet renders: "TOS set value/mask".</summary>
    internal override void List(TosTarget t, StringBuilder sb) => sb.Append(" TOS set ").Append(Hex2(t.Value)).Append('/').Append(Hex2(t.Mask));
}
