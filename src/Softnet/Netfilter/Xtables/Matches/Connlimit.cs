using System.Text;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of -m connlimit (xt_connlimit.c over nf_conncount.c): per masked source (or destination) address,
/// the connections this rule has seen that are still alive and not closed (TCP TIME_WAIT / CLOSE are dropped), plus
/// the packet's own; compared with the limit (&gt; limit, or &lt;= limit for --connlimit-upto).
/// State grows with new addresses and connections only, not per packet.
/// </summary>
public sealed class ConnlimitMatch : XtMatch
{
    internal override bool UsesConntrack => true;
    public uint Limit;
    public bool Upto, Daddr;
    public uint Mask = 0xFFFFFFFF;
    public int MaskLen = 32;
    // Each entry with the generation it had when seen: an object the slab handed out again is a connection gone.
    private readonly Dictionary<uint, List<(Connection Ct, int Generation)>> _lists = new();

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        uint key = (Daddr ? p.Dst : p.Src) & Mask;
        if (!_lists.TryGetValue(key, out var list)) _lists.Add(key, list = new List<(Connection, int)>(4));
        long now = p.TimestampNs;
        bool present = false;
        for (int i = list.Count - 1; i >= 0; i--)
        {
            var (c, gen) = list[i];
            if (c == ct && gen == c.Generation) { present = true; continue; }
            // Gone from the table (expired, never confirmed: its packet was dropped, or back in the slab) or closed.
            bool dead = gen != c.Generation || !c.Confirmed || (c.Status & CtStatus.Dying) != 0 || c.ExpiresNs <= now
                || (c.Original.Protocol == 6 && c.TcpState is TcpCtState.TimeWait or TcpCtState.Close);
            if (dead) list.RemoveAt(i);
        }
        if (!present && ct != null) list.Add((ct, ct.Generation));
        int connections = list.Count + (ct == null ? 1 : 0);
        return (connections > Limit) ^ Upto;
    }
}

/// <summary>Userspace half of -m connlimit (libxt_connlimit.c revision 1).</summary>
internal sealed class ConnlimitMatchExtension : X6MatchExtension<ConnlimitMatch>
{
    public override string Name => "connlimit";
    private const int OUpto = 0, OAbove = 1, OMask = 2, OSaddr = 3, ODaddr = 4;
    private static readonly XtOpt[] Table =
    {
        Arg("connlimit-upto", OUpto, invert: true, excl: 1 << OAbove),
        Arg("connlimit-above", OAbove, invert: true, excl: 1 << OUpto),
        Arg("connlimit-mask", OMask),
        Flag("connlimit-saddr", OSaddr, excl: 1 << ODaddr),
        Flag("connlimit-daddr", ODaddr, excl: 1 << OSaddr),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(ConnlimitMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case OUpto: m.Limit = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); m.Upto = !invert; break;
            case OAbove: m.Limit = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a); m.Upto = invert; break;
            case OMask:
                // XTTYPE_PLENMASK: a prefix length (anything past 32 is the full mask) or a dotted mask.
                if (arg!.Contains('.') ? XtOptions.TryInetAton(arg, out uint dotted) : false)
                {
                    m.Mask = dotted;
                    m.MaskLen = System.Numerics.BitOperations.PopCount(dotted);
                }
                else if (!arg.Contains('.') && XtOptions.TryStrtoul(arg, out ulong len) && len <= uint.MaxValue)
                {
                    m.MaskLen = (int)Math.Min(32, len);
                    m.Mask = Ipv4.Mask(m.MaskLen);
                }
                else throw a.Error($"{Name}: bad value for option \"--connlimit-mask\", neither a valid network mask nor valid CIDR (0-32).");
                break;
            case OSaddr: m.Daddr = false; break;
            case ODaddr: m.Daddr = true; break;
        }
    }

    private protected override void Check(ConnlimitMatch m, uint flags, Rule rule, ArgReader a)
    {
        if ((flags & (1 << OUpto | 1 << OAbove)) == 0) throw a.Error("You must specify \"--connlimit-above\" or \"--connlimit-upto\".");
    }

    internal override void Save(ConnlimitMatch m, StringBuilder sb)
    {
        sb.Append(m.Upto ? " --connlimit-upto " : " --connlimit-above ").Append(m.Limit)
          .Append(" --connlimit-mask ").Append(m.MaskLen).Append(m.Daddr ? " --connlimit-daddr" : " --connlimit-saddr");
    }

    internal override void List(ConnlimitMatch m, StringBuilder sb)
        => sb.Append(" #conn ").Append(m.Daddr ? "dst" : "src").Append('/').Append(m.MaskLen).Append(m.Upto ? " <= " : " > ").Append(m.Limit);
}
