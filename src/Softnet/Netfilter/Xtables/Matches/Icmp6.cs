using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m icmp6 (ip6_tables.c icmp6_match): type 255 means any; codes in [min, max].</summary>
public sealed class Icmp6Match : XtMatch
{
    internal override bool IsPure => true;
    public byte Type = 0xFF, CodeMin, CodeMax = 0xFF;
    public bool Invert;
    internal bool Has;

    /// <summary>xt_check_match's proto check: the rule must be -p ipv6-icmp (not inverted).</summary>
    internal override string? CheckEntry(in XtCheck c)
        => c.Rule.Protocol != 58 || c.Rule.InvProtocol ? c.Invalid("icmp6 match: only valid for protocol 58") : null;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        bool m = Type == 0xFF || (p.IcmpType == Type && p.IcmpCode >= CodeMin && p.IcmpCode <= CodeMax);
        return m ^ Invert;
    }
}

/// <summary>Userspace half of -m icmp6 (libip6t_icmp6.c): --icmpv6-type by name or TYPE[/CODE]; saved as numbers.</summary>
internal sealed class Icmp6MatchExtension : XtMatchExtension<Icmp6Match>
{
    public override string Name => "icmp6";
    public override NfProto Family => NfProto.Ipv6;
    public override IReadOnlyList<string> Aliases => ["icmpv6", "ipv6-icmp"];

    private static readonly (string Name, byte Type, byte CodeMin, byte CodeMax)[] Names =
    {
        ("destination-unreachable", 1, 0, 0xFF), ("no-route", 1, 0, 0), ("communication-prohibited", 1, 1, 1),
        ("beyond-scope", 1, 2, 2), ("address-unreachable", 1, 3, 3), ("port-unreachable", 1, 4, 4),
        ("failed-policy", 1, 5, 5), ("reject-route", 1, 6, 6),
        ("packet-too-big", 2, 0, 0xFF),
        ("time-exceeded", 3, 0, 0xFF), ("ttl-exceeded", 3, 0, 0xFF), ("ttl-zero-during-transit", 3, 0, 0),
        ("ttl-zero-during-reassembly", 3, 1, 1),
        ("parameter-problem", 4, 0, 0xFF), ("bad-header", 4, 0, 0), ("unknown-header-type", 4, 1, 1), ("unknown-option", 4, 2, 2),
        ("echo-request", 128, 0, 0xFF), ("ping", 128, 0, 0xFF), ("echo-reply", 129, 0, 0xFF), ("pong", 129, 0, 0xFF),
        ("mld-listener-query", 130, 0, 0xFF), ("mld-listener-report", 131, 0, 0xFF), ("mld-listener-done", 132, 0, 0xFF),
        ("mld-listener-reduction", 132, 0, 0xFF),
        ("router-solicitation", 133, 0, 0xFF), ("router-advertisement", 134, 0, 0xFF),
        ("neighbour-solicitation", 135, 0, 0xFF), ("neighbor-solicitation", 135, 0, 0xFF),
        ("neighbour-advertisement", 136, 0, 0xFF), ("neighbor-advertisement", 136, 0, 0xFF),
        ("redirect", 137, 0, 0xFF),
    };

    internal override bool Parse(Icmp6Match m, string option, bool invert, ArgReader a)
    {
        if (option != "--icmpv6-type") return false;
        if (m.Has) throw a.Error("multiple --icmpv6-type flags not allowed");
        (m.Type, m.CodeMin, m.CodeMax) = IcmpMatchExtension.ParseTypeCode(a.Next(option), Names, "ICMPv6", a);
        m.Invert = invert;
        m.Has = true;
        return true;
    }

    internal override void FinalCheck(Icmp6Match m, Rule rule, ArgReader a)
    {
        if (!m.Has) throw a.Error("icmp6: option \"--icmpv6-type\" must be specified");
    }

    internal override void Save(Icmp6Match m, StringBuilder sb)
    {
        if (!m.Has) return;
        sb.Append(m.Invert ? " ! --icmpv6-type " : " --icmpv6-type ");
        sb.Append(m.Type);
        if (m.CodeMin == m.CodeMax) sb.Append('/').Append(m.CodeMin);
    }

    internal override void List(Icmp6Match m, StringBuilder sb)
    {
        // print_icmpv6type: " ipv6-icmp", " !" when inverted, then "type N" (" ipv6-icmptype 128", " ipv6-icmp !type 1").
        sb.Append(" ipv6-icmp").Append(m.Invert ? " !" : "").Append("type ").Append(m.Type);
        if (m.CodeMin == m.CodeMax) sb.Append(" code ").Append(m.CodeMin);
        else if (m.CodeMin != 0 || m.CodeMax != 0xFF) sb.Append(" codes ").Append(m.CodeMin).Append('-').Append(m.CodeMax);
    }
}
