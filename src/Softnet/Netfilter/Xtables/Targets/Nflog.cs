using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of NFLOG (xt_NFLOG.c; under iptables-nft the nf_tables log expression): hands the packet to the
/// nfnetlink_log group and continues. Softnet has no netlink listeners, so the packet is only counted
/// (<see cref="NetfilterTables.NflogCount"/>).
/// </summary>
public sealed class NflogTarget : XtTarget
{
    public ushort Group;
    public string Prefix = "";
    /// <summary>--nflog-size: bytes to copy (used when <see cref="HasSize"/>).</summary>
    public uint Size;
    public bool HasSize;
    public ushort Threshold;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        t.NflogCount++;
        return TargetResult.Continue;
    }
}

/// <summary>
/// Userspace half of NFLOG (libxt_NFLOG.c as iptables-nft 1.8.9 stores it: the rule becomes an nf_tables log
/// expression, so the prefix keeps up to 127 characters, --nflog-range is dropped with a warning, and a
/// threshold of 0 is the unset default).
/// </summary>
internal sealed class NflogTargetExtension : XtTargetExtension<NflogTarget>
{
    public override string Name => "NFLOG";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    private static readonly XtOpt[] Options =
    {
        new("nflog-group", 0, XtOptType.UInt16),
        new("nflog-prefix", 1, XtOptType.String) { Min = 1, Size = 128 },
        new("nflog-range", 2, XtOptType.UInt32) { Excl = 1u << 3 },
        new("nflog-size", 3, XtOptType.UInt32) { Excl = 1u << 2 },
        new("nflog-threshold", 4, XtOptType.UInt16),
    };

    /// <summary>What libxt_NFLOG's final check prints on stderr for --nflog-range (the rule is still accepted).</summary>
    public const string RangeWarning = "warn: --nflog-range has never worked and is no longer supported, please use --nflog-size instead";

    internal override bool Parse(NflogTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a)!;
        switch (o.Id)
        {
            case 0: t.Group = (ushort)XtOptions.Int(Name, o, arg, a); break;
            case 1:
                t.Prefix = XtOptions.Str(o, arg, a);
                if (t.Prefix.Contains('\n')) throw a.Error("Newlines not allowed in --log-prefix");
                break;
            case 2: XtOptions.Int(Name, o, arg, a); break;
            case 3: t.Size = (uint)XtOptions.Int(Name, o, arg, a); t.HasSize = true; break;
            default: t.Threshold = (ushort)XtOptions.Int(Name, o, arg, a); break;
        }
        return true;
    }

    internal override void FinalCheck(NflogTarget t, Rule rule, ArgReader a) => XtOptions.FinalCheck(Name, Options, t.Flags, a);

    private static void Print(NflogTarget t, StringBuilder sb, string dash)
    {
        if (t.Prefix.Length != 0)
        {
            sb.Append(' ').Append(dash).Append("nflog-prefix");
            IptablesSave.AppendQuoted(sb, t.Prefix);
        }
        if (t.Group != 0) sb.Append(' ').Append(dash).Append("nflog-group ").Append(t.Group);
        if (t.HasSize) sb.Append(' ').Append(dash).Append("nflog-size ").Append(t.Size);
        if (t.Threshold != 0) sb.Append(' ').Append(dash).Append("nflog-threshold ").Append(t.Threshold);
    }

    internal override void Save(NflogTarget t, StringBuilder sb) => Print(t, sb, "--");
    internal override void List(NflogTarget t, StringBuilder sb) => Print(t, sb, "");
}
