using System.Globalization;
using System.Text;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>State bits as the conntrack and state matches print them.</summary>
internal static class CtStates
{
    private static readonly (string Name, CtStateMask Bit)[] Order =
    {
        ("INVALID", CtStateMask.Invalid), ("NEW", CtStateMask.New), ("RELATED", CtStateMask.Related),
        ("ESTABLISHED", CtStateMask.Established), ("UNTRACKED", CtStateMask.Untracked),
        ("SNAT", CtStateMask.Snat), ("DNAT", CtStateMask.Dnat),
    };

    public static CtStateMask ParseList(string s, ArgReader a, bool allowNat)
    {
        CtStateMask m = 0;
        foreach (var part in s.Split(','))
        {
            int i = Array.FindIndex(Order, o => o.Name == part);
            if (i < 0 || (!allowNat && i >= 5)) throw a.Error(allowNat ? $"Bad ctstate \"{part}\"" : $"Bad state \"{part}\"");
            m |= Order[i].Bit;
        }
        return m;
    }

    public static string Format(CtStateMask m)
    {
        var parts = new List<string>();
        foreach (var (name, bit) in Order) if ((m & bit) != 0) parts.Add(name);
        return string.Join(',', parts);
    }

    /// <summary>The state bit of a packet (XT_STATE_BIT of its ctinfo, INVALID without conntrack).</summary>
    public static CtStateMask Of(ref PacketContext p)
    {
        switch (p.CtInfo)
        {
            case CtInfo.Untracked: return CtStateMask.Untracked;
            case CtInfo.None: return CtStateMask.Invalid;
            case CtInfo.Established or CtInfo.EstablishedReply: return CtStateMask.Established;
            case CtInfo.Related or CtInfo.RelatedReply: return CtStateMask.Related;
            default: return p.Ct is null ? CtStateMask.Invalid : CtStateMask.New;
        }
    }
}

/// <summary>Kernel half of -m conntrack (xt_conntrack.c revision 3).</summary>
public sealed class ConntrackMatch : XtMatch
{
    internal override bool IsPure => true;
    internal override bool UsesConntrack => true;
    public CtStateMask States;
    public bool HasState, InvState;
    public uint OrigSrc, OrigSrcMask, OrigDst, OrigDstMask, ReplSrc, ReplSrcMask, ReplDst, ReplDstMask;
    public bool HasOrigSrc, InvOrigSrc, HasOrigDst, InvOrigDst, HasReplSrc, InvReplSrc, HasReplDst, InvReplDst;
    /// <summary>The addresses of an ip6tables rule (xt_conntrack_mtinfo3's nf_inet_addr as IPv6).</summary>
    public UInt128 OrigSrc6, OrigSrc6Mask, OrigDst6, OrigDst6Mask, ReplSrc6, ReplSrc6Mask, ReplDst6, ReplDst6Mask;
    internal bool V6;
    public ushort OrigSrcPortMin, OrigSrcPortMax, OrigDstPortMin, OrigDstPortMax;
    public bool HasOrigSrcPort, InvOrigSrcPort, HasOrigDstPort, InvOrigDstPort;
    public byte Proto;
    public bool HasProto, InvProto;
    /// <summary>0 = not given, 1 = ORIGINAL, 2 = REPLY.</summary>
    public byte Direction;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (HasState)
        {
            var bit = CtStates.Of(ref p);
            var ct0 = p.Ct;
            if (ct0 != null && p.CtInfo != CtInfo.Untracked)
            {
                if ((ct0.Status & CtStatus.SrcNat) != 0) bit |= CtStateMask.Snat;
                if ((ct0.Status & CtStatus.DstNat) != 0) bit |= CtStateMask.Dnat;
            }
            if (((States & bit) != 0) == InvState) return false;
        }
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        if (ct == null)
            return !(HasOrigSrc || HasOrigDst || HasReplSrc || HasReplDst || HasOrigSrcPort || HasOrigDstPort || HasProto || Direction != 0);
        if (Direction != 0)
        {
            bool reply = p.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply;
            if (reply != (Direction == 2)) return false;
        }
        ref readonly var o = ref ct.Original;
        ref readonly var r = ref ct.Reply;
        if (V6 && ct.V6 is { } v6)
        {
            if (HasOrigSrc && (((v6.Original.Src & OrigSrc6Mask) == OrigSrc6) == InvOrigSrc)) return false;
            if (HasOrigDst && (((v6.Original.Dst & OrigDst6Mask) == OrigDst6) == InvOrigDst)) return false;
            if (HasReplSrc && (((v6.Reply.Src & ReplSrc6Mask) == ReplSrc6) == InvReplSrc)) return false;
            if (HasReplDst && (((v6.Reply.Dst & ReplDst6Mask) == ReplDst6) == InvReplDst)) return false;
        }
        else if (V6 && (HasOrigSrc || HasOrigDst || HasReplSrc || HasReplDst)) return false;
        if (HasProto && ((o.Protocol == Proto) == InvProto)) return false;
        if (!V6)
        {
            if (HasOrigSrc && (((o.Src & OrigSrcMask) == OrigSrc) == InvOrigSrc)) return false;
            if (HasOrigDst && (((o.Dst & OrigDstMask) == OrigDst) == InvOrigDst)) return false;
            if (HasReplSrc && (((r.Src & ReplSrcMask) == ReplSrc) == InvReplSrc)) return false;
            if (HasReplDst && (((r.Dst & ReplDstMask) == ReplDst) == InvReplDst)) return false;
        }
        if (HasOrigSrcPort && ((o.SrcPort >= OrigSrcPortMin && o.SrcPort <= OrigSrcPortMax) == InvOrigSrcPort)) return false;
        if (HasOrigDstPort && ((o.DstPort >= OrigDstPortMin && o.DstPort <= OrigDstPortMax) == InvOrigDstPort)) return false;
        return true;
    }
}

/// <summary>Userspace half of -m conntrack (libxt_conntrack.c).</summary>
internal sealed class ConntrackMatchExtension : XtMatchExtension<ConntrackMatch>
{
    public override string Name => "conntrack";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(ConntrackMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--ctstate":
                if (m.HasState) throw a.Error("conntrack: option \"--ctstate\" can only be used once.");
                m.States = CtStates.ParseList(a.Next(option), a, allowNat: true); m.HasState = true; m.InvState = invert; return true;
            case "--ctproto":
                m.Proto = Protocols.Parse(a.Next(option), a); m.HasProto = true; m.InvProto = invert; return true;
            case "--ctorigsrc" when a.Family == NfProto.Ipv6: (m.OrigSrc6, m.OrigSrc6Mask) = Ip6Addr.ParseMasked(a.Next(option), a); m.V6 = m.HasOrigSrc = true; m.InvOrigSrc = invert; return true;
            case "--ctorigdst" when a.Family == NfProto.Ipv6: (m.OrigDst6, m.OrigDst6Mask) = Ip6Addr.ParseMasked(a.Next(option), a); m.V6 = m.HasOrigDst = true; m.InvOrigDst = invert; return true;
            case "--ctreplsrc" when a.Family == NfProto.Ipv6: (m.ReplSrc6, m.ReplSrc6Mask) = Ip6Addr.ParseMasked(a.Next(option), a); m.V6 = m.HasReplSrc = true; m.InvReplSrc = invert; return true;
            case "--ctrepldst" when a.Family == NfProto.Ipv6: (m.ReplDst6, m.ReplDst6Mask) = Ip6Addr.ParseMasked(a.Next(option), a); m.V6 = m.HasReplDst = true; m.InvReplDst = invert; return true;
            case "--ctorigsrc": (m.OrigSrc, m.OrigSrcMask) = Opt.AddressMask(a.Next(option), a); m.HasOrigSrc = true; m.InvOrigSrc = invert; return true;
            case "--ctorigdst": (m.OrigDst, m.OrigDstMask) = Opt.AddressMask(a.Next(option), a); m.HasOrigDst = true; m.InvOrigDst = invert; return true;
            case "--ctreplsrc": (m.ReplSrc, m.ReplSrcMask) = Opt.AddressMask(a.Next(option), a); m.HasReplSrc = true; m.InvReplSrc = invert; return true;
            case "--ctrepldst": (m.ReplDst, m.ReplDstMask) = Opt.AddressMask(a.Next(option), a); m.HasReplDst = true; m.InvReplDst = invert; return true;
            case "--ctorigsrcport": (m.OrigSrcPortMin, m.OrigSrcPortMax) = Opt.PortRange(a.Next(option), a); m.HasOrigSrcPort = true; m.InvOrigSrcPort = invert; return true;
            case "--ctorigdstport": (m.OrigDstPortMin, m.OrigDstPortMax) = Opt.PortRange(a.Next(option), a); m.HasOrigDstPort = true; m.InvOrigDstPort = invert; return true;
            case "--ctdir":
                string d = a.Next(option);
                m.Direction = d.Equals("ORIGINAL", StringComparison.OrdinalIgnoreCase) ? (byte)1
                          : d.Equals("REPLY", StringComparison.OrdinalIgnoreCase) ? (byte)2
                          : throw a.Error($"conntrack: Bad value for \"--ctdir\" option: \"{d}\"");
                if (invert) m.Direction = (byte)(3 - m.Direction);
                return true;
        }
        return false;
    }

    internal override void FinalCheck(ConntrackMatch m, Rule rule, ArgReader a)
    {
        if (!(m.HasState || m.HasProto || m.HasOrigSrc || m.HasOrigDst || m.HasReplSrc || m.HasReplDst || m.HasOrigSrcPort || m.HasOrigDstPort || m.Direction != 0))
            throw a.Error("conntrack: At least one option is required");
    }

    private static string Addr(uint a, uint m) => Ipv4.FormatMasked(a, m, omitHostMask: true);

    /// <summary>conntrack_dump_addr for IPv6: the address, then "/LEN" unless it is a host (/128).</summary>
    private static string Addr6(UInt128 a, UInt128 m)
        => m == UInt128.MaxValue ? Ip6Addr.Format(a) : Ip6Addr.FormatMasked(a, m);
    private static string Ports(ushort min, ushort max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}:{max}";

    internal override void Save(ConntrackMatch m, StringBuilder sb) => Render(m, sb, "--");
    internal override void List(ConntrackMatch m, StringBuilder sb) => Render(m, sb, "");

    private static void Render(ConntrackMatch m, StringBuilder sb, string dash)
    {
        void Opt(bool inv, string name, string value) => sb.Append(inv ? " ! " : " ").Append(dash).Append(name).Append(' ').Append(value);
        if (m.HasState) Opt(m.InvState, "ctstate", CtStates.Format(m.States));
        if (m.HasProto) Opt(m.InvProto, "ctproto", m.Proto.ToString(CultureInfo.InvariantCulture));
        if (m.HasOrigSrc) Opt(m.InvOrigSrc, "ctorigsrc", m.V6 ? Addr6(m.OrigSrc6, m.OrigSrc6Mask) : Addr(m.OrigSrc, m.OrigSrcMask));
        if (m.HasOrigDst) Opt(m.InvOrigDst, "ctorigdst", m.V6 ? Addr6(m.OrigDst6, m.OrigDst6Mask) : Addr(m.OrigDst, m.OrigDstMask));
        if (m.HasReplSrc) Opt(m.InvReplSrc, "ctreplsrc", m.V6 ? Addr6(m.ReplSrc6, m.ReplSrc6Mask) : Addr(m.ReplSrc, m.ReplSrcMask));
        if (m.HasReplDst) Opt(m.InvReplDst, "ctrepldst", m.V6 ? Addr6(m.ReplDst6, m.ReplDst6Mask) : Addr(m.ReplDst, m.ReplDstMask));
        if (m.HasOrigSrcPort) Opt(m.InvOrigSrcPort, "ctorigsrcport", Ports(m.OrigSrcPortMin, m.OrigSrcPortMax));
        if (m.HasOrigDstPort) Opt(m.InvOrigDstPort, "ctorigdstport", Ports(m.OrigDstPortMin, m.OrigDstPortMax));
        if (m.Direction != 0) sb.Append(' ').Append(dash).Append("ctdir ").Append(m.Direction == 1 ? "ORIGINAL" : "REPLY");
    }
}
