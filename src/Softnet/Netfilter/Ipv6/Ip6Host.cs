namespace Softnet.Netfilter;

/// <summary>What IPv6 netfilter needs to know of the host: its IPv6 addresses, for MASQUERADE (nf_nat_masquerade_ipv6
/// asks ipv6_dev_get_saddr for the source the output device would use towards the destination) and the REJECT answers.</summary>
public interface IIp6NetfilterHost
{
    /// <summary>ipv6_dev_get_saddr: the source address for <paramref name="dst"/> leaving by <paramref name="device"/>;
    /// false when the host has none to offer.</summary>
    bool TrySelectSource(string? device, UInt128 dst, out UInt128 src);

    /// <summary>ipv6_chk_addr: <paramref name="address"/> is one of the host's own.</summary>
    bool IsLocal(UInt128 address);
}

/// <summary>
/// A host described by its IPv6 addresses (`ip -6 addr add A/len dev D`), choosing a source as ipv6_dev_get_saddr does
/// with RFC 6724's rules that apply to static addresses: the destination itself (rule 1), an appropriate scope (rule 2),
/// the outgoing interface (rule 5), then the longest matching prefix (rule 8); ties keep the first address added.
/// </summary>
public sealed class SimpleHost6 : IIp6NetfilterHost
{
    private readonly List<(string Device, UInt128 Address, int PrefixLength)> _addresses = new();

    /// <summary>The addresses, in the order added.</summary>
    public IReadOnlyList<(string Device, UInt128 Address, int PrefixLength)> Addresses => _addresses;

    /// <summary>Adds an address given as "ADDR/LEN" (or "ADDR": /128).</summary>
    public SimpleHost6 Add(string device, string cidr)
    {
        int slash = cidr.IndexOf('/');
        if (!Ip6Addr.TryParse(slash < 0 ? cidr : cidr[..slash], out var a)) throw new FormatException($"bad IPv6 address '{cidr}'");
        int len = slash < 0 ? 128 : int.Parse(cidr[(slash + 1)..], System.Globalization.CultureInfo.InvariantCulture);
        _addresses.Add((device, a, len));
        return this;
    }

    /// <summary>__ipv6_addr_type's scope: 1 node-local (loopback), 2 link-local, 5 site-local, 14 global; multicast
    /// addresses carry theirs in the low nibble of the second byte.</summary>
    public static int Scope(UInt128 a)
    {
        byte b0 = (byte)(a >> 120), b1 = (byte)(a >> 112);
        if (b0 == 0xFF) return b1 & 0xF;
        if (a == UInt128.One) return 1;
        if (b0 == 0xFE && (b1 & 0xC0) == 0x80) return 2;
        if (b0 == 0xFE && (b1 & 0xC0) == 0xC0) return 5;
        return 14;
    }

    public bool IsLocal(UInt128 address)
    {
        foreach (var a in _addresses) if (a.Address == address) return true;
        return address == UInt128.One;
    }

    public bool TrySelectSource(string? device, UInt128 dst, out UInt128 src)
    {
        src = UInt128.Zero;
        int best = -1;
        int dscope = Scope(dst);
        int bestScope = 0, bestIf = 0, bestPrefix = 0;
        for (int i = 0; i < _addresses.Count; i++)
        {
            var c = _addresses[i];
            if (c.Address == dst) { src = dst; return true; }
            int scope = Scope(c.Address);
            // A link-local source serves only its own link.
            if (scope <= 2 && device != null && c.Device != device) continue;
            int onIf = device != null && c.Device == device ? 1 : 0;
            int prefix = (int)UInt128.LeadingZeroCount(c.Address ^ dst);
            if (best >= 0)
            {
                // Rule 2: prefer the smallest scope that still reaches the destination; else the larger scope.
                if (scope != bestScope)
                {
                    bool better = bestScope < scope ? bestScope < dscope : scope >= dscope;
                    if (!better) continue;
                }
                else if (onIf != bestIf) { if (onIf < bestIf) continue; }
                else if (prefix <= bestPrefix) continue;
            }
            best = i;
            bestScope = scope;
            bestIf = onIf;
            bestPrefix = prefix;
        }
        if (best < 0) return false;
        src = _addresses[best].Address;
        return true;
    }
}
