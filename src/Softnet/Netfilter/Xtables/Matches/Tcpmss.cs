using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m tcpmss (xt_tcpmss.c): the MSS option of a TCP header (SYN packets carry it).</summary>
public sealed class TcpmssMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort Min, Max;
    public bool Invert;

    internal override string? CheckEntry(in XtCheck c)
        => c.Rule.Protocol != 6 || c.Rule.InvProtocol ? c.Invalid("tcpmss: only valid for -p tcp") : null;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        var pkt = p.Packet;
        if (pkt.IsEmpty) return false;
        int off = p.IpHeaderLength;
        // A header that cannot be read, or a malformed data offset: hotdrop, as tcpmss_mt does.
        if (pkt.Length < off + 20) { p.HotDrop = true; return false; }
        int doff = (pkt[off + 12] >> 4) * 4;
        if (doff < 20) { p.HotDrop = true; return false; }
        int optlen = doff - 20;
        if (optlen == 0) return Invert;
        if (pkt.Length < off + doff) { p.HotDrop = true; return false; }
        var op = pkt.Slice(off + 20, optlen);
        for (int i = 0; i < optlen;)
        {
            if (op[i] == 2 && optlen - i >= 4 && op[i + 1] == 4)
            {
                int mss = op[i + 2] << 8 | op[i + 3];
                return (mss >= Min && mss <= Max) ^ Invert;
            }
            if (op[i] < 2) i++;
            else i += i + 1 < optlen && op[i + 1] != 0 ? op[i + 1] : 1;
        }
        return Invert;
    }
}

/// <summary>Userspace half of -m tcpmss (libxt_tcpmss.c).</summary>
internal sealed class TcpmssMatchExtension : X6MatchExtension<TcpmssMatch>
{
    public override string Name => "tcpmss";
    private static readonly XtOpt[] Table = { Arg("mss", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(TcpmssMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        (m.Min, m.Max) = XtOptions.UInt16RangeOrOne(Name, o, arg!, a);
        m.Invert = invert;
    }

    internal override void Save(TcpmssMatch m, StringBuilder sb) { sb.Append(m.Invert ? " !" : "").Append(" --mss "); XtOptions.AppendRange(sb, m.Min, m.Max); }
    internal override void List(TcpmssMatch m, StringBuilder sb) { sb.Append(" tcpmss match ").Append(m.Invert ? "!" : ""); XtOptions.AppendRange(sb, m.Min, m.Max); }
}
