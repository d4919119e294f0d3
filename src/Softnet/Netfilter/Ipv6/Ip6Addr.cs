using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Softnet.Netfilter;

/// <summary>
/// IPv6 addresses as netfilter holds them: a <see cref="UInt128"/> whose value is the address read big-endian, so
/// prefix masks are shifts and comparisons are two 64-bit compares. Parsing and printing (inet_pton / inet_ntop) are for
/// load and dump time only.
/// </summary>
public static class Ip6Addr
{
    /// <summary>The address at <paramref name="bytes"/> (16 bytes, network order).</summary>
    public static UInt128 Read(ReadOnlySpan<byte> bytes) => BinaryPrimitives.ReadUInt128BigEndian(bytes);

    /// <summary>Writes <paramref name="a"/> in network order.</summary>
    public static void Write(Span<byte> bytes, UInt128 a) => BinaryPrimitives.WriteUInt128BigEndian(bytes, a);

    /// <summary>The mask of a /<paramref name="len"/> prefix (0..128).</summary>
    public static UInt128 Mask(int len) => len <= 0 ? UInt128.Zero : len >= 128 ? UInt128.MaxValue : ~(UInt128.MaxValue >> len);

    /// <summary>The prefix length of a contiguous mask, or -1 when the mask has holes (ip6tables then prints the mask).</summary>
    public static int PrefixLength(UInt128 mask)
    {
        int len = (int)UInt128.LeadingZeroCount(~mask);
        return Mask(len) == mask ? len : -1;
    }

    /// <summary>inet_pton(AF_INET6): false for anything that is not an IPv6 address (IPv4 text included).</summary>
    public static bool TryParse(string s, out UInt128 a)
    {
        a = UInt128.Zero;
        if (!s.Contains(':') || s.Contains('%') || s.Contains('[')) return false;
        if (!IPAddress.TryParse(s, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6) return false;
        Span<byte> b = stackalloc byte[16];
        if (!ip.TryWriteBytes(b, out _)) return false;
        a = Read(b);
        return true;
    }

    /// <summary>inet_ntop(AF_INET6): RFC 5952 text, lower case, longest zero run as "::".</summary>
    public static string Format(UInt128 a)
    {
        Span<byte> b = stackalloc byte[16];
        Write(b, a);
        return new IPAddress(b).ToString();
    }

    /// <summary>"ADDR/LEN" as ip6tables-save prints a rule's address (a mask with holes: "ADDR/MASK").</summary>
    public static string FormatMasked(UInt128 a, UInt128 mask)
    {
        int len = PrefixLength(mask);
        return Format(a) + "/" + (len >= 0 ? len.ToString(CultureInfo.InvariantCulture) : Format(mask));
    }

    /// <summary>Parses "ADDR[/LEN|/MASK]" as ip6tables does for -s / -d; the address is masked.</summary>
    internal static (UInt128 Addr, UInt128 Mask) ParseMasked(string s, ArgReader a)
    {
        int slash = s.IndexOf('/');
        string host = slash < 0 ? s : s[..slash];
        if (!TryParse(host, out var addr)) throw a.Error($"host/network `{host}' not found");
        UInt128 mask = UInt128.MaxValue;
        if (slash >= 0)
        {
            string m = s[(slash + 1)..];
            if (m.Contains(':'))
            {
                if (!TryParse(m, out mask)) throw a.Error($"invalid mask `{m}' specified");
            }
            else if (int.TryParse(m, NumberStyles.None, CultureInfo.InvariantCulture, out int len) && len <= 128) mask = Mask(len);
            else throw a.Error($"invalid mask `{m}' specified");
        }
        return (addr & mask, mask);
    }
}
