using System.Globalization;
using System.Net;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>The five IPv4 netfilter hooks (NF_INET_*), in the kernel's numbering.</summary>
public enum HookPoint : byte
{
    PreRouting = 0,
    LocalIn = 1,
    Forward = 2,
    LocalOut = 3,
    PostRouting = 4,
}

/// <summary>Hook verdicts (NF_DROP / NF_ACCEPT).</summary>
public enum Verdict : byte
{
    Drop = 0,
    Accept = 1,
}

/// <summary>Tables in the order iptables knows them.</summary>
public enum TableKind : byte
{
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
}

/// <summary>ip_conntrack_info: how a packet relates to its connection. Zero means no conntrack attached,
/// so a default-initialised context reads as INVALID like an skb without _nfct.</summary>
public enum CtInfo : byte
{
    /// <summary>No conntrack attached (invalid packet, or conntrack not run yet).</summary>
    None = 0,
    Established,
    Related,
    New,
    EstablishedReply,
    RelatedReply,
    /// <summary>Explicitly untracked by NOTRACK / CT --notrack in the raw table.</summary>
    Untracked,
}

/// <summary>Bits of the conntrack / state match (--ctstate), independent of the kernel's bit layout.</summary>
[Flags]
public enum CtStateMask : byte
{
    None = 0,
    Invalid = 1,
    New = 2,
    Related = 4,
    Established = 8,
    Untracked = 16,
    Snat = 32,
    Dnat = 64,
}

/// <summary>ICMP kinds a REJECT can answer with (ipt_reject_with).</summary>
public enum RejectWith : byte
{
    None = 0,
    IcmpNetUnreachable,
    IcmpHostUnreachable,
    IcmpPortUnreachable,
    IcmpProtoUnreachable,
    IcmpNetProhibited,
    IcmpHostProhibited,
    IcmpAdminProhibited,
    TcpReset,
    // ip6t_REJECT's ICMPv6 destination unreachable codes (ICMPV6_NOROUTE 0 .. ICMPV6_REJECT_ROUTE 6).
    Icmp6NoRoute,
    Icmp6AdmProhibited,
    Icmp6AddrUnreachable,
    Icmp6PortUnreachable,
    Icmp6PolicyFail,
    Icmp6RejectRoute,
}

/// <summary>Route types as in RTN_* (for -m addrtype).</summary>
public enum RouteType : byte
{
    Unspec = 0,
    Unicast = 1,
    Local = 2,
    Broadcast = 3,
    Anycast = 4,
    Multicast = 5,
    Blackhole = 6,
    Unreachable = 7,
    Prohibit = 8,
    Throw = 9,
    Nat = 10,
    XResolve = 11,
}

/// <summary>What the netfilter stage needs to know about the host: interface addresses and address types.
/// The kernel answers these from the FIB (inet_addr_type_dev_table) and the device's in_ifaddr list.</summary>
public interface INetfilterHost
{
    /// <summary>Address type of <paramref name="address"/>, optionally limited to the table of <paramref name="device"/>.</summary>
    RouteType AddressType(uint address, string? device);
    /// <summary>inet_select_addr: the address of <paramref name="device"/> on the subnet of <paramref name="nexthop"/>
    /// (0: none asked), else its first address, else another device's (not loopback's); 0 when there is none.</summary>
    uint SelectAddress(string? device, uint nexthop);
    /// <summary>The first address on <paramref name="device"/>'s in_ifaddr list (its primary), 0 when it has none: what
    /// REDIRECT rewrites to, with no fallback to other devices.</summary>
    uint DeviceAddress(string? device);
}

/// <summary>A host described by a list of interface addresses: enough for addrtype, MASQUERADE and REDIRECT.</summary>
public sealed class SimpleHost : INetfilterHost
{
    private readonly List<(string Device, uint Address, int PrefixLength)> _addresses = new();

    /// <summary>Adds an address (like `ip addr add A/len dev D`).</summary>
    public SimpleHost Add(string device, string cidr)
    {
        var (addr, len) = Ipv4.ParseCidr(cidr);
        _addresses.Add((device, addr, len));
        return this;
    }

    public RouteType AddressType(uint address, string? device)
    {
        if ((address >> 24) == 127) return RouteType.Local;
        if (address == 0xFFFFFFFF) return RouteType.Broadcast;
        if ((address >> 28) == 0xE) return RouteType.Multicast;
        foreach (var a in _addresses)
        {
            if (device != null && a.Device != device) continue;
            if (a.Address == address) return RouteType.Local;
            if (a.PrefixLength < 31)
            {
                uint mask = Ipv4.Mask(a.PrefixLength);
                if ((address & ~mask) == ~mask && (address & mask) == (a.Address & mask)) return RouteType.Broadcast;
            }
        }
        return RouteType.Unicast;
    }

    public uint SelectAddress(string? device, uint nexthop)
    {
        uint first = 0;
        foreach (var a in _addresses)
        {
            if (a.Device != device) continue;
            uint mask = Ipv4.Mask(a.PrefixLength);
            if (nexthop != 0 && (nexthop & mask) == (a.Address & mask)) return a.Address;
            if (first == 0) first = a.Address;
        }
        if (first != 0) return first;
        foreach (var a in _addresses)
            if ((a.Address >> 24) != 127) return a.Address;
        return 0;
    }

    public uint DeviceAddress(string? device)
    {
        foreach (var a in _addresses)
            if (a.Device == device) return a.Address;
        return 0;
    }
}

/// <summary>An iptables-restore style error: file, line and what is wrong.</summary>
public sealed class IptablesParseException : Exception
{
    public string File { get; }
    public int Line { get; }
    public string Reason { get; }

    public IptablesParseException(string file, int line, string reason)
        : base($"{file}:{line}: {reason}")
    {
        File = file;
        Line = line;
        Reason = reason;
    }
}
