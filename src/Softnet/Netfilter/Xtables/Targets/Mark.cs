using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of MARK (xt_mark.c mark_tg, revision 2): mark = (mark &amp; ~mask) ^ value.</summary>
public sealed class MarkTarget : XtTarget
{
    public uint Value, Mask;
    internal bool Has;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Mark = (p.Mark & ~Mask) ^ Value;
        return TargetResult.Continue;
    }
}

/// <summary>Userspace half of MARK (libxt_MARK.c).</summary>
internal sealed class MarkTargetExtension : XtTargetExtension<MarkTarget>
{
    public override string Name => "MARK";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(MarkTarget t, string option, bool invert, ArgReader a)
    {
        if (t.Has && option is "--set-xmark" or "--set-mark" or "--and-mark" or "--or-mark" or "--xor-mark")
            throw a.Error("MARK target: Can't specify --set-mark twice");
        switch (option)
        {
            case "--set-xmark": (t.Value, t.Mask) = Opt.ValueMask(a.Next(option), a, "mark"); break;
            case "--set-mark": { var (v, m) = Opt.ValueMask(a.Next(option), a, "mark"); t.Value = v; t.Mask = v | m; break; }
            case "--and-mark": t.Value = 0; t.Mask = ~Opt.UInt(a.Next(option), a, "mark"); break;
            case "--or-mark": t.Value = t.Mask = Opt.UInt(a.Next(option), a, "mark"); break;
            case "--xor-mark": t.Value = Opt.UInt(a.Next(option), a, "mark"); t.Mask = 0; break;
            default: return false;
        }
        t.Has = true;
        return true;
    }

    internal override void FinalCheck(MarkTarget t, Rule rule, ArgReader a)
    {
        if (!t.Has) throw a.Error("MARK target: Parameter --set/and/or/xor-mark is required");
    }

    internal override void Save(MarkTarget t, StringBuilder sb) => sb.Append(" --set-xmark ").Append(Opt.Hex(t.Value)).Append('/').Append(Opt.Hex(t.Mask));

    internal override void List(MarkTarget t, StringBuilder sb)
    {
        if (t.Value == 0) sb.Append(" MARK and ").Append(Opt.Hex(~t.Mask));
        else if (t.Value == t.Mask) sb.Append(" MARK or ").Append(Opt.Hex(t.Value));
        else if (t.Mask == 0) sb.Append(" MARK xor ").Append(Opt.Hex(t.Value));
        else if (t.Mask == 0xFFFFFFFF) sb.Append(" MARK set ").Append(Opt.Hex(t.Value));
        else sb.Append(" MARK xset ").Append(Opt.Hex(t.Value)).Append('/').Append(Opt.Hex(t.Mask));
    }
}
