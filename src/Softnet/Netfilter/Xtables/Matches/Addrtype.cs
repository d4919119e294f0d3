using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m addrtype (xt_addrtype.c revision 1).</summary>
public sealed class AddrTypeMatch : XtMatch
{
    internal override bool IsPure => true;
    public ushort SrcTypes, DstTypes;
    public bool InvSrc, InvDst, LimitIfaceIn, LimitIfaceOut;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsIpv6) return Matches6(ref p, t);
        string? dev = LimitIfaceIn ? p.InInterface : LimitIfaceOut ? p.OutInterface : null;
        if (SrcTypes != 0 && (((SrcTypes >> (int)t.Host.AddressType(p.Src, dev)) & 1) == 0) != InvSrc) return false;
        if (DstTypes != 0 && (((DstTypes >> (int)t.Host.AddressType(p.Dst, dev)) & 1) == 0) != InvDst) return false;
        return true;
    }

    internal override int ValidHooks => LimitIfaceIn ? 0b00111 : LimitIfaceOut ? 0b11100 : XtHooks.All;

    // XT_ADDRTYPE_* bits (the type names' order).
    private const ushort Unspec = 1 << 0, Unicast = 1 << 1, Local = 1 << 2, Broadcast = 1 << 3, Anycast = 1 << 4, Multicast = 1 << 5,
        Blackhole = 1 << 6, Unreachable = 1 << 7, Prohibit = 1 << 8;

    /// <summary>addrtype_mt_checkentry for NFPROTO_IPV6: no BLACKHOLE, PROHIBIT and above, or BROADCAST.</summary>
    internal override string? CheckEntry(in XtCheck c)
    {
        if (c.Tables.Family != NfProto.Ipv6) return null;
        int all = SrcTypes | DstTypes;
        if ((all & Blackhole) != 0) return c.Invalid("ipv6 BLACKHOLE matching not supported");
        if (all >= Prohibit) return c.Invalid("ipv6 PROHIBIT (THROW, NAT ..) matching not supported");
        if ((all & Broadcast) != 0) return c.Invalid("ipv6 does not support BROADCAST matching");
        return null;
    }

    /// <summary>addrtype_mt_v1 for IPv6 (match_type6): MULTICAST, UNICAST and UNSPEC each require that kind of address
    /// (ipv6_addr_type); LOCAL, ANYCAST and UNREACHABLE then ask the host (nf_ipv6_chk_addr: one of its addresses; the
    /// route's anycast and reject flags are not modelled).</summary>
    private bool Matches6(ref PacketContext p, NetfilterTables t)
    {
        if (SrcTypes != 0 && Type6(p.Src6, SrcTypes, t) == InvSrc) return false;
        if (DstTypes != 0 && Type6(p.Dst6, DstTypes, t) == InvDst) return false;
        return true;
    }

    private static bool Type6(UInt128 a, ushort mask, NetfilterTables t)
    {
        bool multicast = (byte)(a >> 120) == 0xFF;
        bool any = a == UInt128.Zero;
        // ::ffff:0:0/96 (v4-mapped) and :: are not IPV6_ADDR_UNICAST.
        bool mapped = a >> 32 == 0xFFFF;
        bool unicast = !multicast && !any && !mapped;
        if ((mask & Multicast) != 0 && !multicast) return false;
        if ((mask & Unicast) != 0 && !unicast) return false;
        if ((mask & Unspec) != 0 && !any) return false;
        if ((mask & (Local | Anycast | Unreachable)) != 0)
            return (mask & (t.Host6.IsLocal(a) ? Local : 0)) != 0;
        return true;
    }
}

/// <summary>Userspace half of -m addrtype (libxt_addrtype.c).</summary>
internal sealed class AddrTypeMatchExtension : XtMatchExtension<AddrTypeMatch>
{
    public override string Name => "addrtype";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it (the kernel half asks which family the packet is).</summary>
    public override NfProto Family => NfProto.Unspec;

    private static readonly string[] TypeNames =
    {
        "UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE",
    };

    internal override bool Parse(AddrTypeMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--src-type": m.SrcTypes = ParseTypes(a.Next(option), a); m.InvSrc = invert; return true;
            case "--dst-type": m.DstTypes = ParseTypes(a.Next(option), a); m.InvDst = invert; return true;
            case "--limit-iface-in": m.LimitIfaceIn = true; return true;
            case "--limit-iface-out": m.LimitIfaceOut = true; return true;
        }
        return false;
    }

    private static ushort ParseTypes(string s, ArgReader a)
    {
        ushort m = 0;
        foreach (var part in s.Split(','))
        {
            int i = Array.IndexOf(TypeNames, part.ToUpperInvariant());
            if (i < 0) throw a.Error($"addrtype: bad type \"{part}\"");
            m |= (ushort)(1 << i);
        }
        return m;
    }

    internal override void FinalCheck(AddrTypeMatch m, Rule rule, ArgReader a)
    {
        if (m.SrcTypes == 0 && m.DstTypes == 0) throw a.Error("addrtype: you must specify --src-type or --dst-type");
        if (m.LimitIfaceIn && m.LimitIfaceOut) throw a.Error("addrtype: option \"--limit-iface-in\" cannot be used together with \"--limit-iface-out\".");
    }

    private static string Types(ushort m)
    {
        var parts = new List<string>();
        for (int i = 0; i < TypeNames.Length; i++) if ((m & (1 << i)) != 0) parts.Add(TypeNames[i]);
        return string.Join(',', parts);
    }

    internal override void Save(AddrTypeMatch m, StringBuilder sb)
    {
        if (m.SrcTypes != 0) sb.Append(m.InvSrc ? " ! --src-type " : " --src-type ").Append(Types(m.SrcTypes));
        if (m.DstTypes != 0) sb.Append(m.InvDst ? " ! --dst-type " : " --dst-type ").Append(Types(m.DstTypes));
        if (m.LimitIfaceIn) sb.Append(" --limit-iface-in");
        if (m.LimitIfaceOut) sb.Append(" --limit-iface-out");
    }

    internal override void List(AddrTypeMatch m, StringBuilder sb)
    {
        sb.Append(" ADDRTYPE match");
        if (m.SrcTypes != 0) sb.Append(" src-type ").Append(m.InvSrc ? "!" : "").Append(Types(m.SrcTypes));
        if (m.DstTypes != 0) sb.Append(" dst-type ").Append(m.InvDst ? "!" : "").Append(Types(m.DstTypes));
        if (m.LimitIfaceIn) sb.Append(" limit-in");
        if (m.LimitIfaceOut) sb.Append(" limit-out");
    }
}
