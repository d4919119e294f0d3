using System.Globalization;

namespace Softnet.Filter;

/// <summary>
/// The name lookups libpcap does through the C library (nametoaddr.c): service names for ports (TCP first, then
/// UDP; the same number in both means "either"), IP protocol names, libpcap's own Ethernet-type and LLC names,
/// and Ethernet address syntax. Services and protocols come from /etc/services and /etc/protocols when present, a
/// built-in list of the common ones otherwise. Host and network names are not resolved (the compiler refuses them).
/// </summary>
internal static class FilterNames
{
    private static readonly Lazy<(Dictionary<string, uint> Tcp, Dictionary<string, uint> Udp)> Services = new(LoadServices);
    private static readonly Lazy<Dictionary<string, uint>> Protocols = new(LoadProtocols);

    public static bool TryPort(string name, out uint port, out uint proto)
    {
        var (tcp, udp) = Services.Value;
        bool t = tcp.TryGetValue(name, out uint tp), u = udp.TryGetValue(name, out uint up);
        if (t)
        {
            port = tp;
            proto = u && up == tp ? 0xffffffff : 6;
            return true;
        }
        if (u)
        {
            port = up;
            proto = 17;
            return true;
        }
        // getaddrinfo(NULL, "80") resolves a numeric service too.
        if (name.All(char.IsAsciiDigit) && uint.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out port))
        {
            proto = 0xffffffff;
            return true;
        }
        port = proto = 0;
        return false;
    }

    public static bool TryPortRange(string name, out uint p1, out uint p2, out uint proto)
    {
        // sscanf("%d-%d") first, then two names around the first '-'.
        int dash = name.IndexOf('-', StringComparison.Ordinal);
        p1 = p2 = proto = 0;
        if (dash > 0 && int.TryParse(LeadingInt(name[..dash]), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int a)
            && LeadingInt(name[..dash]).Length == dash
            && LeadingInt(name[(dash + 1)..]) is { Length: > 0 } bs && int.TryParse(bs, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int b))
        {
            p1 = (uint)a;
            p2 = (uint)b;
            proto = 0xffffffff;
            return true;
        }
        if (dash < 0) return false;
        if (!TryPort(name[..dash], out p1, out proto)) return false;
        uint save = proto;
        if (!TryPort(name[(dash + 1)..], out p2, out proto)) return false;
        if (proto != save) proto = 0xffffffff;
        return true;
    }

    private static string LeadingInt(string s)
    {
        int i = 0;
        if (i < s.Length && (s[i] == '-' || s[i] == '+')) i++;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        return i == 0 || (i == 1 && !char.IsAsciiDigit(s[0])) ? "" : s[..i];
    }

    public static bool TryIpProto(string name, out uint proto) => Protocols.Value.TryGetValue(name, out proto);

    public static bool TryEtherProto(string name, out uint proto)
    {
        proto = name switch
        {
            "aarp" => 0x80f3, "arp" => 0x0806, "atalk" => 0x809b, "decnet" => 0x6003, "ip" => 0x0800, "ip6" => 0x86dd,
            "lat" => 0x6004, "loopback" => 0x9000, "mopdl" => 0x6001, "moprc" => 0x6002, "rarp" => 0x8035,
            "sca" => 0x6007, "iso" => 0xfe, "stp" => 0x42, "ipx" => 0xe0, "netbeui" => 0xf0, _ => 0xffffffff,
        };
        return proto != 0xffffffff;
    }

    /// <summary>pcap_ether_aton: six hex bytes separated by ':', '-' or '.', or in groups of four hex digits.</summary>
    public static bool TryEtherAton(string s, Span<byte> e)
    {
        string hex = new(s.Where(char.IsAsciiHexDigit).ToArray());
        if (s.Length == 12 || (s.Length == 14 && s.Count(c => c == '.') == 2))
        {
            if (hex.Length != 12) return false;
            for (int i = 0; i < 6; i++) e[i] = byte.Parse(hex.AsSpan(2 * i, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return true;
        }
        string[] parts = s.Split(':', '-', '.');
        if (parts.Length != 6) return false;
        for (int i = 0; i < 6; i++)
        {
            if (parts[i].Length is < 1 or > 2 || !parts[i].All(char.IsAsciiHexDigit)) return false;
            e[i] = byte.Parse(parts[i], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        }
        return true;
    }

    private static (Dictionary<string, uint>, Dictionary<string, uint>) LoadServices()
    {
        var tcp = new Dictionary<string, uint>(StringComparer.Ordinal);
        var udp = new Dictionary<string, uint>(StringComparer.Ordinal);
        string[] lines = File.Exists("/etc/services") ? File.ReadAllLines("/etc/services") : BuiltinServices;
        foreach (string raw in lines)
        {
            string line = raw.Split('#')[0];
            string[] f = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2) continue;
            string[] pp = f[1].Split('/');
            if (pp.Length != 2 || !uint.TryParse(pp[0], NumberStyles.None, CultureInfo.InvariantCulture, out uint port)) continue;
            var dict = pp[1] == "tcp" ? tcp : pp[1] == "udp" ? udp : null;
            if (dict == null) continue;
            foreach (string n in f.Take(1).Concat(f.Skip(2))) dict.TryAdd(n, port);
        }
        return (tcp, udp);
    }

    private static Dictionary<string, uint> LoadProtocols()
    {
        var d = new Dictionary<string, uint>(StringComparer.Ordinal);
        string[] lines = File.Exists("/etc/protocols") ? File.ReadAllLines("/etc/protocols") : BuiltinProtocols;
        foreach (string raw in lines)
        {
            string[] f = raw.Split('#')[0].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 2 || !uint.TryParse(f[1], NumberStyles.None, CultureInfo.InvariantCulture, out uint p)) continue;
            d.TryAdd(f[0], p);
            foreach (string alias in f.Skip(2)) d.TryAdd(alias, p);
        }
        return d;
    }

    private static readonly string[] BuiltinServices =
    [
        "ftp-data 20/tcp", "ftp 21/tcp", "ssh 22/tcp", "telnet 23/tcp", "smtp 25/tcp", "domain 53/tcp", "domain 53/udp",
        "bootps 67/udp", "bootpc 68/udp", "tftp 69/udp", "http 80/tcp www", "pop3 110/tcp", "ntp 123/udp",
        "imap2 143/tcp imap", "snmp 161/tcp", "snmp 161/udp", "bgp 179/tcp", "https 443/tcp", "https 443/udp",
        "isakmp 500/udp", "syslog 514/udp", "ipsec-nat-t 4500/udp",
    ];

    private static readonly string[] BuiltinProtocols =
    [
        "ip 0 IP", "icmp 1 ICMP", "igmp 2 IGMP", "tcp 6 TCP", "udp 17 UDP", "ipv6 41 IPv6", "ipv6-frag 44 IPv6-Frag",
        "gre 47 GRE", "esp 50 IPSEC-ESP", "ah 51 IPSEC-AH", "ipv6-icmp 58 IPv6-ICMP", "ipv6-nonxt 59 IPv6-NoNxt",
        "ipv6-opts 60 IPv6-Opts", "ospf 89 OSPFIGP", "pim 103 PIM", "vrrp 112 VRRP", "sctp 132 SCTP",
    ];
}
