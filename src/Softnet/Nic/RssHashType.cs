namespace Softnet.Nic;

/// <summary>
/// What an RSS hash covered, as a NIC reports it in the receive descriptor
/// (the NDIS_HASH_* types; Linux reduces them to PKT_HASH_TYPE_L3 / L4 in skb_set_hash).
/// </summary>
public enum RssHashType : byte
{
    /// <summary>No hash: not IP, or the headers could not be parsed.</summary>
    None = 0,
    /// <summary>IPv4 source and destination addresses (8 input bytes).</summary>
    Ipv4,
    /// <summary>IPv4 addresses and TCP ports (12 input bytes).</summary>
    TcpIpv4,
    /// <summary>IPv4 addresses and UDP ports (12 input bytes).</summary>
    UdpIpv4,
    /// <summary>IPv6 source and destination addresses (32 input bytes).</summary>
    Ipv6,
    /// <summary>IPv6 addresses and TCP ports (36 input bytes).</summary>
    TcpIpv6,
    /// <summary>IPv6 addresses and UDP ports (36 input bytes).</summary>
    UdpIpv6,
}

public static class RssHashTypes
{
    /// <summary>True when the hash includes L4 ports (the kernel's PKT_HASH_TYPE_L4).</summary>
    public static bool IsL4(this RssHashType type) =>
        type is RssHashType.TcpIpv4 or RssHashType.UdpIpv4 or RssHashType.TcpIpv6 or RssHashType.UdpIpv6;

    /// <summary>True for the IPv6 family of hash types.</summary>
    public static bool IsIpv6(this RssHashType type) =>
        type is RssHashType.Ipv6 or RssHashType.TcpIpv6 or RssHashType.UdpIpv6;

    /// <summary>Human label: "TCP/IPv4", "IPv6" ...</summary>
    public static string Label(this RssHashType type) => type switch
    {
        RssHashType.Ipv4 => "IPv4",
        RssHashType.TcpIpv4 => "TCP/IPv4",
        RssHashType.UdpIpv4 => "UDP/IPv4",
        RssHashType.Ipv6 => "IPv6",
        RssHashType.TcpIpv6 => "TCP/IPv6",
        RssHashType.UdpIpv6 => "UDP/IPv6",
        _ => "none",
    };
}

/// <summary>
/// Which flow types hash on the L4 ports as well as the addresses, the knob behind
/// <c>ethtool -N dev rx-flow-hash tcp4|udp4|tcp6|udp6 sd|sdfn</c>.
/// "sd" hashes addresses only, "sdfn" adds source and destination port ("f" = bytes 0-1, "n" = bytes 2-3 of L4).
/// The default is the Linux ice/mlx5 default: TCP and UDP both use the 4-tuple.
/// </summary>
public readonly record struct RssHashFields(bool TcpV4Ports, bool UdpV4Ports, bool TcpV6Ports, bool UdpV6Ports)
{
    /// <summary>TCP and UDP on IPv4 and IPv6 hash the 4-tuple.</summary>
    public static RssHashFields Default => new(true, true, true, true);

    /// <summary>Addresses only for every flow type.</summary>
    public static RssHashFields AddressesOnly => new(false, false, false, false);

    /// <summary>
    /// Returns a copy with one flow type changed, taking ethtool's words:
    /// flow type "tcp4", "udp4", "tcp6" or "udp6"; fields "sd" or "sdfn" (any order).
    /// </summary>
    /// <exception cref="FormatException">unknown flow type, or a field set a NIC cannot do.</exception>
    internal RssHashFields With(string flowType, string fields)
    {
        bool ports = ParseFields(fields);
        return flowType.Trim().ToLowerInvariant() switch
        {
            "tcp4" => this with { TcpV4Ports = ports },
            "udp4" => this with { UdpV4Ports = ports },
            "tcp6" => this with { TcpV6Ports = ports },
            "udp6" => this with { UdpV6Ports = ports },
            _ => throw new FormatException($"unknown rx-flow-hash flow type '{flowType}' (expected tcp4, udp4, tcp6 or udp6)"),
        };
    }

    private static bool ParseFields(string fields)
    {
        bool s = false, d = false, f = false, n = false;
        foreach (char c in fields.Trim().ToLowerInvariant())
        {
            switch (c)
            {
                case 's': s = true; break;
                case 'd': d = true; break;
                case 'f': f = true; break;
                case 'n': n = true; break;
                default: throw new FormatException($"unknown rx-flow-hash field '{c}' in '{fields}' (expected s, d, f, n)");
            }
        }
        if (!s || !d || f != n)
            throw new FormatException($"rx-flow-hash fields '{fields}' not supported: use 'sd' (addresses) or 'sdfn' (addresses and ports)");
        return f;
    }

    /// <summary>The ethtool spelling of one flow type's setting.</summary>
    public static string Describe(bool ports) => ports ? "sdfn" : "sd";
}
