using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m connbytes (xt_connbytes.c): the connection's packets, bytes or average packet size so far
/// (conntrack accounting, which includes the current packet), in [from, to], or outside it when from &gt; to.
/// </summary>
public sealed class ConnbytesMatch : XtMatch
{
    public const byte Packets = 0, Bytes = 1, AvgPkt = 2;
    public const byte DirOriginal = 0, DirReply = 1, DirBoth = 2;
    internal override bool IsPure => true;
    internal override bool UsesConntrack => true;
    public ulong From, To;
    public byte What, Direction;

    /// <summary>connbytes_mt_check: forces conntrack accounting on in the namespace.</summary>
    internal override string? CheckEntry(in XtCheck c)
    {
        c.Tables.Conntrack.Accounting = true;
        return null;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        if (ct == null) return false;
        ulong what;
        ulong po = (ulong)ct.PacketsOrig, pr = (ulong)ct.PacketsReply, bo = (ulong)ct.BytesOrig, br = (ulong)ct.BytesReply;
        switch (What)
        {
            case Packets: what = Direction switch { DirOriginal => po, DirReply => pr, _ => po + pr }; break;
            case Bytes: what = Direction switch { DirOriginal => bo, DirReply => br, _ => bo + br }; break;
            default:
                ulong bytes = Direction switch { DirOriginal => bo, DirReply => br, _ => bo + br };
                ulong pkts = Direction switch { DirOriginal => po, DirReply => pr, _ => po + pr };
                what = pkts != 0 ? bytes / pkts : 0;
                break;
        }
        if (To >= From) return what <= To && what >= From;
        return what < To || what > From;
    }
}

/// <summary>Userspace half of -m connbytes (libxt_connbytes.c).</summary>
internal sealed class ConnbytesMatchExtension : X6MatchExtension<ConnbytesMatch>
{
    public override string Name => "connbytes";
    private static readonly XtOpt[] Table =
    {
        Arg("connbytes", 0, invert: true, mandatory: true), Arg("connbytes-dir", 1, mandatory: true), Arg("connbytes-mode", 2, mandatory: true),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(ConnbytesMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case 0:
            {
                var parts = arg!.Split(':');
                if (parts.Length > 2) throw a.Error($"{Name}: Too many components for option \"--connbytes\" (max: 2)");
                ulong from = 0, to = ulong.MaxValue;
                if (parts[0].Length > 0 && !XtOptions.TryStrtoul(parts[0], out from))
                    throw a.Error($"{Name}: bad value for option \"--connbytes\" near \"{arg}\", or out of range (0-{ulong.MaxValue}).");
                if (parts.Length == 2 && parts[1].Length > 0 && !XtOptions.TryStrtoul(parts[1], out to))
                    throw a.Error($"{Name}: bad value for option \"--connbytes\" near \"{parts[1]}\", or out of range (0-{ulong.MaxValue}).");
                if (invert) (from, to) = (to, from);
                m.From = from;
                m.To = to;
                break;
            }
            case 1:
                m.Direction = arg switch
                {
                    "original" => ConnbytesMatch.DirOriginal,
                    "reply" => ConnbytesMatch.DirReply,
                    "both" => ConnbytesMatch.DirBoth,
                    _ => throw a.Error($"Unknown --connbytes-dir `{arg}'"),
                };
                break;
            default:
                m.What = arg switch
                {
                    "packets" => ConnbytesMatch.Packets,
                    "bytes" => ConnbytesMatch.Bytes,
                    "avgpkt" => ConnbytesMatch.AvgPkt,
                    _ => throw a.Error($"Unknown --connbytes-mode `{arg}'"),
                };
                break;
        }
    }

    private static void Render(ConnbytesMatch m, StringBuilder sb, string pre)
    {
        ulong from = m.From, to = m.To;
        if (from > to)
        {
            sb.Append(" !");
            (from, to) = (to, from);
        }
        sb.Append(' ').Append(pre).Append("connbytes ").Append(from);
        if (to != 0 && to < ulong.MaxValue) sb.Append(':').Append(to);
        string mode = m.What switch { ConnbytesMatch.Packets => "packets", ConnbytesMatch.Bytes => "bytes", _ => "avgpkt" };
        string dir = m.Direction switch { ConnbytesMatch.DirOriginal => "original", ConnbytesMatch.DirReply => "reply", _ => "both" };
        if (pre.Length > 0) sb.Append(" --connbytes-mode ").Append(mode).Append(" --connbytes-dir ").Append(dir);
        else sb.Append(" connbytes mode ").Append(mode).Append(" connbytes direction ").Append(dir);
    }

    internal override void Save(ConnbytesMatch m, StringBuilder sb) => Render(m, sb, "--");
    internal override void List(ConnbytesMatch m, StringBuilder sb) => Render(m, sb, "");
}
