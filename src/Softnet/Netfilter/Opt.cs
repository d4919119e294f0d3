using System.Globalization;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>Shared option-value parsing.</summary>
internal static class Opt
{
    /// <summary>The "/second", "/minute", "/hour", "/day" suffix of a rate (any prefix of the word, any case), as
    /// libxt_limit and libxt_hashlimit parse it: the seconds per unit, 1 without a suffix; false for an unknown one.</summary>
    public static bool RateUnit(string rate, out uint seconds)
    {
        seconds = 1;
        int slash = rate.IndexOf('/');
        if (slash < 0) return true;
        string u = rate[(slash + 1)..];
        if (u.Length == 0) return false;
        if ("second".StartsWith(u, StringComparison.OrdinalIgnoreCase)) seconds = 1;
        else if ("minute".StartsWith(u, StringComparison.OrdinalIgnoreCase)) seconds = 60;
        else if ("hour".StartsWith(u, StringComparison.OrdinalIgnoreCase)) seconds = 3600;
        else if ("day".StartsWith(u, StringComparison.OrdinalIgnoreCase)) seconds = 86400;
        else return false;
        return true;
    }

    private static readonly Dictionary<string, ushort> Services = new()
    {
        ["ftp-data"] = 20, ["ftp"] = 21, ["ssh"] = 22, ["telnet"] = 23, ["smtp"] = 25, ["domain"] = 53,
        ["http"] = 80, ["pop3"] = 110, ["ntp"] = 123, ["imap"] = 143, ["snmp"] = 161, ["https"] = 443,
        ["bootps"] = 67, ["bootpc"] = 68, ["tftp"] = 69, ["submission"] = 587, ["imaps"] = 993, ["pop3s"] = 995,
    };

    public static ushort Port(string s, ArgReader a)
    {
        if (s.Length > 0 && s.All(char.IsAsciiDigit) && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v <= 65535)
            return (ushort)v;
        if (Services.TryGetValue(s, out var p)) return p;
        throw a.Error($"invalid port/service `{s}' specified");
    }

    /// <summary>"a", "a:b", ":b", "a:" as in xtables_parse_port_range; a&gt;b is an error.</summary>
    public static (ushort Min, ushort Max) PortRange(string s, ArgReader a)
    {
        int colon = s.IndexOf(':');
        if (colon < 0) { var p = Port(s, a); return (p, p); }
        ushort min = colon == 0 ? (ushort)0 : Port(s[..colon], a);
        ushort max = colon == s.Length - 1 ? (ushort)65535 : Port(s[(colon + 1)..], a);
        if (min > max) throw a.Error("invalid portrange (min > max)");
        return (min, max);
    }

    public static uint UInt(string s, ArgReader a, string what)
    {
        bool ok = s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? uint.TryParse(s.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var v)
            : uint.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok) throw a.Error($"bad {what} value \"{s}\"");
        return v;
    }

    /// <summary>"value[/mask]" as for --mark; mask defaults to all ones.</summary>
    public static (uint Value, uint Mask) ValueMask(string s, ArgReader a, string what)
    {
        int slash = s.IndexOf('/');
        if (slash < 0) return (UInt(s, a, what), 0xFFFFFFFF);
        return (UInt(s[..slash], a, what), UInt(s[(slash + 1)..], a, what));
    }

    /// <summary>Address with optional /len or /dotted-mask; the address is masked like xtables_ipparse_any.</summary>
    public static (uint Addr, uint Mask) AddressMask(string s, ArgReader a)
    {
        int slash = s.IndexOf('/');
        string host = slash < 0 ? s : s[..slash];
        if (!Ipv4.TryParse(host, out var addr)) throw a.Error($"host/network `{host}' not found");
        uint mask = 0xFFFFFFFF;
        if (slash >= 0)
        {
            string m = s[(slash + 1)..];
            if (m.Contains('.'))
            {
                if (!Ipv4.TryParse(m, out mask)) throw a.Error($"invalid mask `{m}' specified");
            }
            else if (int.TryParse(m, NumberStyles.None, CultureInfo.InvariantCulture, out int len) && len <= 32) mask = Ipv4.Mask(len);
            else throw a.Error($"invalid mask `{m}' specified");
        }
        return (addr & mask, mask);
    }

    public static string Hex(uint v) => "0x" + v.ToString("x", CultureInfo.InvariantCulture);

    public static string PortText(ushort min, ushort max)
        => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}:{max}";
}

/// <summary>Protocol names iptables knows (xtables_chain_protos, then /etc/protocols).</summary>
public static class Protocols
{
    private static readonly (string Name, byte Number)[] Known =
    {
        ("tcp", 6), ("udp", 17), ("udplite", 136), ("icmp", 1), ("esp", 50), ("ah", 51), ("sctp", 132), ("dccp", 33),
        ("igmp", 2), ("ipencap", 4), ("egp", 8), ("ipv6", 41), ("gre", 47), ("ospf", 89), ("pim", 103), ("vrrp", 112),
        ("ipv6-icmp", 58), ("icmpv6", 58),
    };

    /// <summary>The match -p loads implicitly for its options (xtables_find_match's fixed name "icmp6" for ICMPv6).</summary>
    internal static string ImplicitMatch(byte number, NfProto family)
        => number == 58 && family == NfProto.Ipv6 ? "icmp6" : Name(number);

    internal static byte Parse(string s, ArgReader a)
    {
        if (s == "all") return 0;
        foreach (var (name, number) in Known) if (name.Equals(s, StringComparison.OrdinalIgnoreCase)) return number;
        if (byte.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return n;
        throw a.Error($"unknown protocol \"{s}\" specified");
    }

    public static string Name(byte number)
    {
        foreach (var (name, n) in Known) if (n == number) return name;
        return number.ToString(CultureInfo.InvariantCulture);
    }
}
