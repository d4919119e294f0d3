using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m pkttype (xt_pkttype.c): the skb's pkt_type (loopback counts as multicast or broadcast).</summary>
public sealed class PkttypeMatch : XtMatch
{
    internal override bool IsPure => true;
    public PacketType Type;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        PacketType type = p.PktType;
        if (type == PacketType.Loopback)
            type = (p.Dst & 0xF0000000) == 0xE0000000 ? PacketType.Multicast : PacketType.Broadcast;
        return (type == Type) ^ Invert;
    }
}

/// <summary>Userspace half of -m pkttype (libxt_pkttype.c).</summary>
internal sealed class PkttypeMatchExtension : X6MatchExtension<PkttypeMatch>
{
    public override string Name => "pkttype";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { Arg("pkt-type", 0, invert: true, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private static readonly (string Name, PacketType Type)[] Types =
    {
        ("unicast", PacketType.Host), ("broadcast", PacketType.Broadcast), ("multicast", PacketType.Multicast),
        ("host", PacketType.Host), ("otherhost", PacketType.OtherHost),
    };

    private protected override void Parse(PkttypeMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        int i = Array.FindIndex(Types, t => t.Name.Equals(arg, StringComparison.OrdinalIgnoreCase));
        if (i < 0) throw a.Error($"Bad packet type '{arg}'");
        m.Type = Types[i].Type;
        m.Invert = invert;
    }

    private static string Text(PacketType t)
    {
        foreach (var (n, ty) in Types) if (ty == t) return n;
        return ((int)t).ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    internal override void Save(PkttypeMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --pkt-type ").Append(Text(m.Type));
    internal override void List(PkttypeMatch m, StringBuilder sb) => sb.Append(" PKTTYPE ").Append(m.Invert ? "!= " : "= ").Append(Text(m.Type));
}
