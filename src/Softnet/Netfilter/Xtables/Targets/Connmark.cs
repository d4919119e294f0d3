using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of CONNMARK (xt_connmark.c connmark_tg_shift, revision 2): set the conntrack mark, save the packet
/// mark into it, or restore the packet mark from it, each through its masks and an optional shift of the value
/// moved (left or right by 0..31 bits). Untracked packets and packets without conntrack are left alone.
/// </summary>
public sealed class ConnmarkTarget : XtTarget
{
    public enum Mode : byte { Set, Save, Restore }
    public Mode Op;
    public uint CtMark, CtMask = 0xFFFFFFFF, NfMask = 0xFFFFFFFF;
    /// <summary>Shift direction (false: left, D_SHIFT_LEFT) and bit count.</summary>
    public bool ShiftRight;
    public byte ShiftBits;
    internal uint Flags;

    private uint Shift(uint v) => ShiftBits >= 32 ? 0 : ShiftRight ? v >> ShiftBits : v << ShiftBits;
    internal override bool UsesConntrack => true;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        if (ct == null) return TargetResult.Continue;
        switch (Op)
        {
            case Mode.Set: ct.Mark = Shift((ct.Mark & ~CtMask) ^ CtMark); break;
            case Mode.Save: ct.Mark = (ct.Mark & ~CtMask) ^ Shift(p.Mark & NfMask); break;
            case Mode.Restore: p.Mark = (p.Mark & ~NfMask) ^ Shift(ct.Mark & CtMask); break;
        }
        return TargetResult.Continue;
    }

    /// <summary>The kernel refuses shifts of 32 bits or more (the rule fails with EINVAL, no log line).</summary>
    internal override string? CheckEntry(in XtCheck check)
        => ShiftBits > 31 ? check.Invalid($"CONNMARK: shift by {ShiftBits} bits") : null;
}

/// <summary>Userspace half of CONNMARK (libxt_CONNMARK.c revision 2).</summary>
internal sealed class ConnmarkTargetExtension : XtTargetExtension<ConnmarkTarget>
{
    public override string Name => "CONNMARK";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    private const int SetMark = 0, SaveMark = 1, RestoreMark = 2, AndMark = 3, OrMark = 4, XorMark = 5,
        LeftShift = 6, RightShift = 7, SetXmark = 8, CtMaskId = 9, NfMaskId = 10, MaskId = 11;
    private const uint OpAny = 1u << SetMark | 1u << SaveMark | 1u << RestoreMark | 1u << AndMark | 1u << OrMark | 1u << XorMark | 1u << SetXmark;

    private static readonly XtOpt[] Options =
    {
        new("set-xmark", SetXmark, XtOptType.MarkMask32) { Excl = OpAny },
        new("set-mark", SetMark, XtOptType.MarkMask32) { Excl = OpAny },
        new("and-mark", AndMark, XtOptType.UInt32) { Excl = OpAny },
        new("or-mark", OrMark, XtOptType.UInt32) { Excl = OpAny },
        new("xor-mark", XorMark, XtOptType.UInt32) { Excl = OpAny },
        new("save-mark", SaveMark, XtOptType.None) { Excl = OpAny },
        new("restore-mark", RestoreMark, XtOptType.None) { Excl = OpAny },
        new("left-shift-mark", LeftShift, XtOptType.UInt8) { Max = 32 },
        new("right-shift-mark", RightShift, XtOptType.UInt8) { Max = 32 },
        new("ctmask", CtMaskId, XtOptType.UInt32) { Excl = 1u << MaskId },
        new("nfmask", NfMaskId, XtOptType.UInt32) { Excl = 1u << MaskId },
        new("mask", MaskId, XtOptType.UInt32) { Excl = 1u << CtMaskId | 1u << NfMaskId },
    };

    internal override bool Parse(ConnmarkTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string? arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a);
        switch (o.Id)
        {
            case SetXmark: t.Op = ConnmarkTarget.Mode.Set; (t.CtMark, t.CtMask) = XtOptions.MarkMask(Name, o, arg!, a); break;
            case SetMark:
            {
                var (v, m) = XtOptions.MarkMask(Name, o, arg!, a);
                t.Op = ConnmarkTarget.Mode.Set;
                t.CtMark = v;
                t.CtMask = v | m;
                break;
            }
            case AndMark: t.Op = ConnmarkTarget.Mode.Set; t.CtMark = 0; t.CtMask = ~(uint)XtOptions.Int(Name, o, arg!, a); break;
            case OrMark: t.Op = ConnmarkTarget.Mode.Set; t.CtMark = t.CtMask = (uint)XtOptions.Int(Name, o, arg!, a); break;
            case XorMark: t.Op = ConnmarkTarget.Mode.Set; t.CtMark = (uint)XtOptions.Int(Name, o, arg!, a); t.CtMask = 0; break;
            case SaveMark: t.Op = ConnmarkTarget.Mode.Save; break;
            case RestoreMark: t.Op = ConnmarkTarget.Mode.Restore; break;
            case LeftShift: t.ShiftRight = false; t.ShiftBits = (byte)XtOptions.Int(Name, o, arg!, a); break;
            case RightShift: t.ShiftRight = true; t.ShiftBits = (byte)XtOptions.Int(Name, o, arg!, a); break;
            case CtMaskId: t.CtMask = (uint)XtOptions.Int(Name, o, arg!, a); break;
            case NfMaskId: t.NfMask = (uint)XtOptions.Int(Name, o, arg!, a); break;
            default: t.NfMask = t.CtMask = (uint)XtOptions.Int(Name, o, arg!, a); break;
        }
        return true;
    }

    internal override void FinalCheck(ConnmarkTarget t, Rule rule, ArgReader a)
    {
        if ((t.Flags & OpAny) == 0) throw a.Error("CONNMARK target: No operation specified");
        XtOptions.FinalCheck(Name, Options, t.Flags, a);
    }

    private static string ShiftWord(ConnmarkTarget t) => t.ShiftRight ? "right-shift-mark" : "left-shift-mark";

    internal override void Save(ConnmarkTarget t, StringBuilder sb)
    {
        switch (t.Op)
        {
            case ConnmarkTarget.Mode.Set: sb.Append(" --set-xmark ").Append(Opt.Hex(t.CtMark)).Append('/').Append(Opt.Hex(t.CtMask)); break;
            case ConnmarkTarget.Mode.Save: sb.Append(" --save-mark --nfmask ").Append(Opt.Hex(t.NfMask)).Append(" --ctmask ").Append(Opt.Hex(t.CtMask)); break;
            default: sb.Append(" --restore-mark --nfmask ").Append(Opt.Hex(t.NfMask)).Append(" --ctmask ").Append(Opt.Hex(t.CtMask)); break;
        }
        if (t.ShiftBits != 0) sb.Append(" --").Append(ShiftWord(t)).Append(' ').Append(t.ShiftBits);
    }

    internal override void List(ConnmarkTarget t, StringBuilder sb)
    {
        switch (t.Op)
        {
            case ConnmarkTarget.Mode.Set:
                if (t.CtMark == 0) sb.Append(" CONNMARK and ").Append(Opt.Hex(~t.CtMask));
                else if (t.CtMark == t.CtMask) sb.Append(" CONNMARK or ").Append(Opt.Hex(t.CtMark));
                else if (t.CtMask == 0) sb.Append(" CONNMARK xor ").Append(Opt.Hex(t.CtMark));
                else if (t.CtMask == 0xFFFFFFFF) sb.Append(" CONNMARK set ").Append(Opt.Hex(t.CtMark));
                else sb.Append(" CONNMARK xset ").Append(Opt.Hex(t.CtMark)).Append('/').Append(Opt.Hex(t.CtMask));
                break;
            case ConnmarkTarget.Mode.Save:
                if (t.NfMask == 0xFFFFFFFF && t.CtMask == 0xFFFFFFFF) sb.Append(" CONNMARK save");
                else if (t.NfMask == t.CtMask) sb.Append(" CONNMARK save mask ").Append(Opt.Hex(t.NfMask));
                else sb.Append(" CONNMARK save nfmask ").Append(Opt.Hex(t.NfMask)).Append(" ctmask ~").Append(Opt.Hex(t.CtMask));
                break;
            default:
                if (t.CtMask == 0xFFFFFFFF && t.NfMask == 0xFFFFFFFF) sb.Append(" CONNMARK restore");
                else if (t.CtMask == t.NfMask) sb.Append(" CONNMARK restore mask ").Append(Opt.Hex(t.CtMask));
                else sb.Append(" CONNMARK restore ctmask ").Append(Opt.Hex(t.CtMask)).Append(" nfmask ~").Append(Opt.Hex(t.NfMask));
                break;
        }
        if (t.ShiftBits != 0) sb.Append(' ').Append(ShiftWord(t)).Append(' ').Append(t.ShiftBits);
    }
}
