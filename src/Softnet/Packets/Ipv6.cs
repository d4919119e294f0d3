using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Softnet.Packets;

/// <summary>IPv6 address helpers on <see cref="UInt128"/> values (the 16 bytes read big-endian, as <c>SockAddr</c> holds
/// them): masks, the address types of ipv6_addr_type, the multicast groups addrconf joins, parsing and printing.</summary>
public static class Ipv6
{
    public static readonly UInt128 Loopback = 1;
    /// <summary>ff02::1, all nodes on the link.</summary>
    public static readonly UInt128 AllNodes = Make(0xff02_0000_0000_0000UL, 1);
    /// <summary>ff02::2, all routers on the link.</summary>
    public static readonly UInt128 AllRouters = Make(0xff02_0000_0000_0000UL, 2);

    public static UInt128 Make(ulong high, ulong low) => ((UInt128)high << 64) | low;

    public static UInt128 Mask(int prefixLength)
        => prefixLength <= 0 ? UInt128.Zero : prefixLength >= 128 ? UInt128.MaxValue : UInt128.MaxValue << (128 - prefixLength);

    public static UInt128 Read(ReadOnlySpan<byte> b) => BinaryPrimitives.ReadUInt128BigEndian(b);

    public static void Write(Span<byte> b, UInt128 a) => BinaryPrimitives.WriteUInt128BigEndian(b, a);

    public static bool IsMulticast(UInt128 a) => (byte)(a >> 120) == 0xff;

    /// <summary>IPV6_ADDR_MC_SCOPE: the scope nibble of a multicast address.</summary>
    public static int MulticastScope(UInt128 a) => (int)(a >> 112) & 0xF;

    /// <summary>fe80::/10.</summary>
    public static bool IsLinkLocal(UInt128 a) => (ushort)(a >> 112) >> 6 == 0xfe80 >> 6;

    /// <summary>ff02::1:ff00:0/104, the solicited-node groups.</summary>
    public static bool IsSolicitedNode(UInt128 a) => (a >> 24) == (Make(0xff02_0000_0000_0000UL, 0x0000_0001_ff00_0000UL) >> 24);

    /// <summary>addrconf_addr_solict_mult: the solicited-node group of <paramref name="a"/>.</summary>
    public static UInt128 SolicitedNode(UInt128 a) => Make(0xff02_0000_0000_0000UL, 0x0000_0001_ff00_0000UL) | (a & 0xFFFFFF);

    /// <summary>ipv6_eth_mc_map: 33:33 and the group's low 32 bits.</summary>
    public static void MulticastMac(UInt128 group, Span<byte> mac)
    {
        mac[0] = 0x33;
        mac[1] = 0x33;
        BinaryPrimitives.WriteUInt32BigEndian(mac[2..], (uint)group);
    }

    /// <summary>addrconf_ifid_eui48 + fe80::/64: the link-local address EUI-64 derives from a MAC.</summary>
    public static UInt128 LinkLocalFromMac(ReadOnlySpan<byte> mac)
    {
        ulong id = ((ulong)(mac[0] ^ 0x02) << 56) | ((ulong)mac[1] << 48) | ((ulong)mac[2] << 40) | 0xFFUL << 32 | 0xFEUL << 24
                   | ((ulong)mac[3] << 16) | ((ulong)mac[4] << 8) | mac[5];
        return Make(0xfe80_0000_0000_0000UL, id);
    }

    /// <summary>Scope of a unicast address for source selection (ipv6_addr_src_scope): loopback 1 (node), link-local 2,
    /// global 14; a multicast address's own scope nibble.</summary>
    public static int Scope(UInt128 a)
    {
        if (IsMulticast(a)) return MulticastScope(a);
        if (a == Loopback) return 1;
        if (IsLinkLocal(a)) return 2;
        return 14;
    }

    /// <summary>Number of leading bits two addresses share.</summary>
    public static int CommonPrefix(UInt128 a, UInt128 b) => (int)UInt128.LeadingZeroCount(a ^ b);

    public static bool TryParse(string s, out UInt128 address)
    {
        address = 0;
        if (!s.Contains(':') || s.Contains('%') || !IPAddress.TryParse(s, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6) return false;
        Span<byte> b = stackalloc byte[16];
        ip.TryWriteBytes(b, out _);
        address = Read(b);
        return true;
    }

    public static string Format(UInt128 a)
    {
        Span<byte> b = stackalloc byte[16];
        Write(b, a);
        return new IPAddress(b).ToString();
    }
}
