using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m iprange (xt_iprange.c iprange_mt4, revision 1).</summary>
public sealed class IprangeMatch : XtMatch
{
    internal override bool IsPure => true;
    public uint SrcMin, SrcMax, DstMin, DstMax;
    public bool HasSrc, HasDst, InvSrc, InvDst;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (HasSrc && ((p.Src < SrcMin || p.Src > SrcMax) ^ InvSrc)) return false;
        if (HasDst && ((p.Dst < DstMin || p.Dst > DstMax) ^ InvDst)) return false;
        return true;
    }
}

/// <summary>Userspace half of -m iprange (libxt_iprange.c).</summary>
internal sealed class IprangeMatchExtension : X6MatchExtension<IprangeMatch>
{
    public override string Name => "iprange";
    private const int OSrc = 0, ODst = 1;
    private static readonly XtOpt[] Table = { Arg("src-range", OSrc, invert: true), Arg("dst-range", ODst, invert: true) };
    private protected override XtOpt[] Options => Table;

    /// <summary>Warnings iptables prints to stderr (a reversed range is accepted).</summary>
    internal static event Action<string>? Warning;

    private protected override void Parse(IprangeMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        int dash = arg!.IndexOf('-');
        string lo = dash < 0 ? arg : arg[..dash];
        string hi = dash < 0 ? arg : arg[(dash + 1)..];
        if (!XtOptions.TryInetAton(lo, out uint min)) throw a.Error($"iprange: Bad value for \"--{o.Name}\" option: \"{lo}\"");
        if (!XtOptions.TryInetAton(hi, out uint max)) throw a.Error($"iprange: Bad value for \"--{o.Name}\" option: \"{hi}\"");
        if (min > max) Warning?.Invoke($"xt_iprange: range {arg} is reversed and will never match");
        if (o.Id == OSrc) { m.SrcMin = min; m.SrcMax = max; m.HasSrc = true; m.InvSrc = invert; }
        else { m.DstMin = min; m.DstMax = max; m.HasDst = true; m.InvDst = invert; }
    }

    private protected override void Check(IprangeMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (flags == 0) throw a.Error("iprange match: You must specify `--src-range' or `--dst-range'");
    }

    internal override void Save(IprangeMatch m, StringBuilder sb)
    {
        if (m.HasSrc) sb.Append(m.InvSrc ? " !" : "").Append(" --src-range ").Append(Ipv4.Format(m.SrcMin)).Append('-').Append(Ipv4.Format(m.SrcMax));
        if (m.HasDst) sb.Append(m.InvDst ? " !" : "").Append(" --dst-range ").Append(Ipv4.Format(m.DstMin)).Append('-').Append(Ipv4.Format(m.DstMax));
    }

    internal override void List(IprangeMatch m, StringBuilder sb)
    {
        if (m.HasSrc) sb.Append(" source IP range").Append(m.InvSrc ? " !" : "").Append(' ').Append(Ipv4.Format(m.SrcMin)).Append('-').Append(Ipv4.Format(m.SrcMax));
        if (m.HasDst) sb.Append(" destination IP range").Append(m.InvDst ? " !" : "").Append(' ').Append(Ipv4.Format(m.DstMin)).Append('-').Append(Ipv4.Format(m.DstMax));
    }
}
