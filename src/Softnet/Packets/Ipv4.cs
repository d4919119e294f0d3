using System.Globalization;
using System.Net;

namespace Softnet.Packets;

/// <summary>IPv4 address helpers on host-order uints: the address vocabulary every layer shares (routing, neighbours,
/// netfilter, conntrack, scenario files).</summary>
public static class Ipv4
{
    public static uint Mask(int prefixLength) => prefixLength <= 0 ? 0u : prefixLength >= 32 ? 0xFFFFFFFFu : ~(0xFFFFFFFFu >> prefixLength);

    public static string Format(uint a)
        => string.Create(CultureInfo.InvariantCulture, $"{a >> 24}.{(a >> 16) & 0xFF}.{(a >> 8) & 0xFF}.{a & 0xFF}");

    /// <summary>Parses a dotted quad strictly (four decimal parts 0..255).</summary>
    public static bool TryParse(string s, out uint address)
    {
        address = 0;
        var parts = s.Split('.');
        if (parts.Length != 4) return false;
        foreach (var p in parts)
        {
            if (p.Length == 0 || p.Length > 3 || !p.All(char.IsAsciiDigit)) return false;
            int v = int.Parse(p, CultureInfo.InvariantCulture);
            if (v > 255) return false;
            address = (address << 8) | (uint)v;
        }
        return true;
    }

    public static uint Parse(string s) => TryParse(s, out var a) ? a : throw new FormatException($"bad IPv4 address '{s}'");

    public static (uint Address, int PrefixLength) ParseCidr(string s)
    {
        int slash = s.IndexOf('/');
        if (slash < 0) return (Parse(s), 32);
        return (Parse(s[..slash]), int.Parse(s[(slash + 1)..], CultureInfo.InvariantCulture));
    }

    /// <summary>Prefix length of a contiguous mask, or -1 when the mask has holes.</summary>
    public static int PrefixLength(uint mask)
    {
        int len = System.Numerics.BitOperations.PopCount(mask);
        return Mask(len) == mask ? len : -1;
    }

    /// <summary>Address with mask as iptables prints it: "a.b.c.d/len", or "/a.b.c.d" for a non-contiguous mask.</summary>
    public static string FormatMasked(uint address, uint mask, bool omitHostMask)
    {
        int len = PrefixLength(mask);
        if (len == 32 && omitHostMask) return Format(address);
        return len >= 0 ? $"{Format(address)}/{len}" : $"{Format(address)}/{Format(mask)}";
    }

    public static IPAddress ToIPAddress(uint a) => new(new[] { (byte)(a >> 24), (byte)(a >> 16), (byte)(a >> 8), (byte)a });
}
