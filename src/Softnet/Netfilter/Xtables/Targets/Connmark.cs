using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of CONNMARK (xt_connmark.c connmark_tg, revision 1): set / save / restore between packet and conntrack mark.</summary>
public sealed class ConnmarkTarget : XtTarget
{
    public enum Mode : byte { Set, Save, Restore }
    public Mode Op;
    public uint CtMark, CtMask = 0xFFFFFFFF, NfMask = 0xFFFFFFFF;
    internal bool Has;
    internal override bool UsesConntrack => true;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        if (ct == null) return TargetResult.Continue;
        switch (Op)
        {
            case Mode.Set: ct.Mark = (ct.Mark & ~CtMask) ^ CtMark; break;
            case Mode.Save: ct.Mark = (ct.Mark & ~CtMask) ^ (p.Mark & NfMask); break;
            case Mode.Restore: p.Mark = (p.Mark & ~NfMask) ^ (ct.Mark & CtMask); break;
        }
        return TargetResult.Continue;
    }
}

/// <summary>Userspace half of CONNMARK (libxt_CONNMARK.c).</summary>
internal sealed class ConnmarkTargetExtension : XtTargetExtension<ConnmarkTarget>
{
    public override string Name => "CONNMARK";

    internal override bool Parse(ConnmarkTarget t, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--set-xmark": t.Op = ConnmarkTarget.Mode.Set; (t.CtMark, t.CtMask) = Opt.ValueMask(a.Next(option), a, "mark"); break;
            case "--set-mark": { t.Op = ConnmarkTarget.Mode.Set; var (v, m) = Opt.ValueMask(a.Next(option), a, "mark"); t.CtMark = v; t.CtMask = v | m; break; }
            case "--and-mark": t.Op = ConnmarkTarget.Mode.Set; t.CtMark = 0; t.CtMask = ~Opt.UInt(a.Next(option), a, "mark"); break;
            case "--or-mark": t.Op = ConnmarkTarget.Mode.Set; t.CtMark = t.CtMask = Opt.UInt(a.Next(option), a, "mark"); break;
            case "--xor-mark": t.Op = ConnmarkTarget.Mode.Set; t.CtMark = Opt.UInt(a.Next(option), a, "mark"); t.CtMask = 0; break;
            case "--save-mark": t.Op = ConnmarkTarget.Mode.Save; break;
            case "--restore-mark": t.Op = ConnmarkTarget.Mode.Restore; break;
            case "--mask": t.NfMask = t.CtMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            case "--nfmask": t.NfMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            case "--ctmask": t.CtMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            default: return false;
        }
        t.Has = true;
        return true;
    }

    internal override void FinalCheck(ConnmarkTarget t, Rule rule, ArgReader a)
    {
        if (!t.Has) throw a.Error("CONNMARK target: No operation specified");
    }

    internal override void Save(ConnmarkTarget t, StringBuilder sb)
    {
        switch (t.Op)
        {
            case ConnmarkTarget.Mode.Set: sb.Append(" --set-xmark ").Append(Opt.Hex(t.CtMark)).Append('/').Append(Opt.Hex(t.CtMask)); break;
            case ConnmarkTarget.Mode.Save: sb.Append(" --save-mark --nfmask ").Append(Opt.Hex(t.NfMask)).Append(" --ctmask ").Append(Opt.Hex(t.CtMask)); break;
            default: sb.Append(" --restore-mark --nfmask ").Append(Opt.Hex(t.NfMask)).Append(" --ctmask ").Append(Opt.Hex(t.CtMask)); break;
        }
    }

    internal override void List(ConnmarkTarget t, StringBuilder sb)
    {
        switch (t.Op)
        {
            case ConnmarkTarget.Mode.Set:
                if (t.CtMask == 0xFFFFFFFF) sb.Append(" CONNMARK set ").Append(Opt.Hex(t.CtMark));
                else sb.Append(" CONNMARK xset ").Append(Opt.Hex(t.CtMark)).Append('/').Append(Opt.Hex(t.CtMask));
                break;
            default:
                sb.Append(t.Op == ConnmarkTarget.Mode.Save ? " CONNMARK save" : " CONNMARK restore");
                if (t.NfMask == 0xFFFFFFFF && t.CtMask == 0xFFFFFFFF) break;
                if (t.NfMask == t.CtMask) sb.Append(" mask ").Append(Opt.Hex(t.NfMask));
                else sb.Append(" nfmask ").Append(Opt.Hex(t.NfMask)).Append(" ctmask ~").Append(Opt.Hex(t.CtMask));
                break;
        }
    }
}
