using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m icmp (ip_tables.c icmp_match): type 255 means any.</summary>
public sealed class IcmpMatch : XtMatch
{
    internal override bool IsPure => true;
    public byte Type = 0xFF, CodeMin, CodeMax = 0xFF;
    public bool Invert;
    internal bool Has;

    /// <summary>xt_check_match's proto check: the rule must be -p icmp (not inverted).</summary>
    internal override string? CheckEntry(in XtCheck c)
        => c.Rule.Protocol != 1 || c.Rule.InvProtocol ? c.Invalid("icmp match: only valid for protocol 1") : null;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        bool m = Type == 0xFF || (p.IcmpType == Type && p.IcmpCode >= CodeMin && p.IcmpCode <= CodeMax);
        return m ^ Invert;
    }
}

/// <summary>Userspace half of -m icmp (libipt_icmp.c).</summary>
internal sealed class IcmpMatchExtension : XtMatchExtension<IcmpMatch>
{
    public override string Name => "icmp";

    private static readonly (string Name, byte Type, byte CodeMin, byte CodeMax)[] Names =
    {
        ("any", 0xFF, 0, 0xFF), ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
        ("destination-unreachable", 3, 0, 0xFF), ("network-unreachable", 3, 0, 0), ("host-unreachable", 3, 1, 1),
        ("protocol-unreachable", 3, 2, 2), ("port-unreachable", 3, 3, 3), ("fragmentation-needed", 3, 4, 4),
        ("source-route-failed", 3, 5, 5), ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
        ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10), ("TOS-network-unreachable", 3, 11, 11),
        ("TOS-host-unreachable", 3, 12, 12), ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
        ("precedence-cutoff", 3, 15, 15), ("source-quench", 4, 0, 0xFF), ("redirect", 5, 0, 0xFF),
        ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1), ("TOS-network-redirect", 5, 2, 2), ("TOS-host-redirect", 5, 3, 3),
        ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF), ("router-advertisement", 9, 0, 0xFF), ("router-solicitation", 10, 0, 0xFF),
        ("time-exceeded", 11, 0, 0xFF), ("ttl-exceeded", 11, 0, 0xFF), ("ttl-zero-during-transit", 11, 0, 0),
        ("ttl-zero-during-reassembly", 11, 1, 1), ("parameter-problem", 12, 0, 0xFF), ("ip-header-bad", 12, 0, 0),
        ("required-option-missing", 12, 1, 1), ("timestamp-request", 13, 0, 0xFF), ("timestamp-reply", 14, 0, 0xFF),
        ("address-mask-request", 17, 0, 0xFF), ("address-mask-reply", 18, 0, 0xFF),
    };

    /// <summary>A --icmp-type / --icmpv6-type value: a name from <paramref name="names"/>, or xtables_parse_icmp-style
    /// numbers as strtoul reads them (0x8 is 8) with the code after '/'.</summary>
    internal static (byte Type, byte CodeMin, byte CodeMax) ParseTypeCode(string v, (string Name, byte Type, byte CodeMin, byte CodeMax)[] names,
        string what, ArgReader a)
    {
        int i = Array.FindIndex(names, n => n.Name.Equals(v, StringComparison.OrdinalIgnoreCase));
        if (i >= 0) return (names[i].Type, names[i].CodeMin, names[i].CodeMax);
        int slash = v.IndexOf('/');
        string ts = slash < 0 ? v : v[..slash];
        if (!XtOptions.TryStrtoul(ts, out ulong type) || type > 255) throw a.Error($"Unknown {what} type `{v}'");
        if (slash < 0) return ((byte)type, 0, 0xFF);
        if (XtOptions.TryStrtoul(v[(slash + 1)..], out ulong code) && code <= 255) return ((byte)type, (byte)code, (byte)code);
        throw a.Error($"Unknown {what} code `{v}'");
    }

    internal override bool Parse(IcmpMatch m, string option, bool invert, ArgReader a)
    {
        if (option != "--icmp-type") return false;
        if (m.Has) throw a.Error("multiple --icmp-type flags not allowed");
        (m.Type, m.CodeMin, m.CodeMax) = ParseTypeCode(a.Next(option), Names, "ICMP", a);
        m.Invert = invert;
        m.Has = true;
        return true;
    }

    internal override void FinalCheck(IcmpMatch m, Rule rule, ArgReader a)
    {
        if (!m.Has) throw a.Error("icmp: option \"--icmp-type\" must be specified");
    }

    internal override void Save(IcmpMatch m, StringBuilder sb)
    {
        if (!m.Has) return;
        sb.Append(m.Invert ? " ! --icmp-type " : " --icmp-type ");
        if (m.Type == 0xFF) sb.Append("any");
        else
        {
            sb.Append(m.Type);
            if (m.CodeMin == m.CodeMax) sb.Append('/').Append(m.CodeMin);
        }
    }

    internal override void List(IcmpMatch m, StringBuilder sb)
    {
        // print_icmptype after " icmp": " !" when inverted, then "type N" (so " icmptype 8", " icmp !type 3").
        sb.Append(" icmp").Append(m.Invert ? " !" : "").Append("type ");
        {
            sb.Append(m.Type);
            if (m.CodeMin == m.CodeMax) sb.Append(" code ").Append(m.CodeMin);
            else if (m.CodeMin != 0 || m.CodeMax != 0xFF) sb.Append(" codes ").Append(m.CodeMin).Append('-').Append(m.CodeMax);
        }
    }
}
