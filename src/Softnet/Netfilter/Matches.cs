using System.Globalization;
using System.Text;

namespace Softnet.Netfilter;

/// <summary>A match extension (-m name). Evaluated per packet without allocation.</summary>
public abstract class Match
{
    /// <summary>Module name as written after -m.</summary>
    public abstract string Name { get; }

    internal abstract bool Matches(ref PacketContext p, NetfilterTables tables, HookPoint hook);

    /// <summary>Consumes one option of this module; false when the option is not this module's.</summary>
    internal abstract bool Parse(string option, bool invert, ArgReader args);

    /// <summary>Checks after the whole rule is read (iptables' final_check and the kernel's checkentry).</summary>
    internal virtual void Final(Rule rule, ArgReader args) { }

    /// <summary>Hooks this match may be used from (bit per HookPoint).</summary>
    internal virtual int ValidHooks => 0x1F;

    /// <summary>True when evaluating the match changes nothing (no counter, no random draw), so the chain
    /// compiler may skip it or evaluate it out of order. Opt-in: an unknown match is assumed impure.</summary>
    internal virtual bool IsPure => false;

    /// <summary>Options as iptables-save prints them, each with a leading space (after " -m name").</summary>
    internal abstract void Save(StringBuilder sb);

    /// <summary>The text iptables -L prints for this match, with a leading space.</summary>
    internal abstract void List(StringBuilder sb);
}

/// <summary>Shared option-value parsing.</summary>
internal static class Opt
{
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
        if (min > max) throw a.Error($"invalid portrange ({s}) specified");
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

/// <summary>-m tcp (xt_tcpudp): ports, flags, --syn, --tcp-option.</summary>
public sealed class TcpMatch : Match
{
    internal override bool IsPure => true;
    public ushort SrcMin, SrcMax = 65535, DstMin, DstMax = 65535;
    public bool InvSrc, InvDst, InvFlags, InvOption;
    public byte FlagMask, FlagCompare, Option;
    private bool _hasSrc, _hasDst, _hasFlags, _hasOption;
    public override string Name => "tcp";

    /// <summary>True when the match is exactly one destination port (--dport P, not inverted): an index key.</summary>
    internal bool ExactDstPort(out ushort port)
    {
        port = DstMin;
        return _hasDst && !InvDst && DstMin == DstMax;
    }

    internal static readonly (string Name, byte Bit)[] FlagNames =
    {
        ("FIN", 0x01), ("SYN", 0x02), ("RST", 0x04), ("PSH", 0x08), ("ACK", 0x10), ("URG", 0x20),
    };

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        if (_hasSrc && ((p.SrcPort >= SrcMin && p.SrcPort <= SrcMax) == InvSrc)) return false;
        if (_hasDst && ((p.DstPort >= DstMin && p.DstPort <= DstMax) == InvDst)) return false;
        if (_hasFlags && (((p.TcpFlags & FlagMask) == FlagCompare) == InvFlags)) return false;
        // --tcp-option needs the option bytes; the context does not keep them, so only "absent" is decidable.
        if (_hasOption && InvOption == false) return false;
        return true;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--sport" or "--source-port":
                if (_hasSrc) throw a.Error("multiple --sport flags not allowed");
                (SrcMin, SrcMax) = Opt.PortRange(a.Next(option), a); InvSrc = invert; _hasSrc = true; return true;
            case "--dport" or "--destination-port":
                if (_hasDst) throw a.Error("multiple --dport flags not allowed");
                (DstMin, DstMax) = Opt.PortRange(a.Next(option), a); InvDst = invert; _hasDst = true; return true;
            case "--syn":
                if (_hasFlags) throw a.Error("multiple flags not allowed");
                FlagMask = 0x17; FlagCompare = 0x02; InvFlags = invert; _hasFlags = true; return true;
            case "--tcp-flags":
                if (_hasFlags) throw a.Error("multiple flags not allowed");
                FlagMask = ParseFlags(a.Next(option), a); FlagCompare = ParseFlags(a.Next(option), a);
                InvFlags = invert; _hasFlags = true; return true;
            case "--tcp-option":
                Option = (byte)Opt.UInt(a.Next(option), a, "TCP option"); InvOption = invert; _hasOption = true; return true;
        }
        return false;
    }

    private static byte ParseFlags(string s, ArgReader a)
    {
        byte v = 0;
        foreach (var part in s.Split(','))
        {
            if (part == "ALL") v |= 0x3F;
            else if (part == "NONE") { }
            else
            {
                int i = Array.FindIndex(FlagNames, f => f.Name == part);
                if (i < 0) throw a.Error($"Unknown TCP flag `{part}'");
                v |= FlagNames[i].Bit;
            }
        }
        return v;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (rule.Protocol != 6 || rule.InvProtocol) throw a.Error("tcp match: only valid for protocol 6 (use -p tcp)");
    }

    private static string FlagText(byte v)
    {
        if (v == 0) return "NONE";
        var parts = new List<string>();
        foreach (var (name, bit) in FlagNames) if ((v & bit) != 0) parts.Add(name);
        return string.Join(',', parts);
    }

    internal override void Save(StringBuilder sb)
    {
        if (_hasSrc) sb.Append(InvSrc ? " ! --sport " : " --sport ").Append(Opt.PortText(SrcMin, SrcMax));
        if (_hasDst) sb.Append(InvDst ? " ! --dport " : " --dport ").Append(Opt.PortText(DstMin, DstMax));
        if (_hasOption) sb.Append(InvOption ? " ! --tcp-option " : " --tcp-option ").Append(Option);
        if (_hasFlags) sb.Append(InvFlags ? " ! --tcp-flags " : " --tcp-flags ").Append(FlagText(FlagMask)).Append(' ').Append(FlagText(FlagCompare));
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" tcp");
        if (_hasSrc) ListPorts(sb, "spt", SrcMin, SrcMax, InvSrc);
        if (_hasDst) ListPorts(sb, "dpt", DstMin, DstMax, InvDst);
        if (_hasOption) sb.Append(" option=").Append(InvOption ? "!" : "").Append(Option);
        if (_hasFlags)
            sb.Append(" flags:").Append(InvFlags ? "!" : "").Append("0x").Append(FlagMask.ToString("X2", CultureInfo.InvariantCulture))
              .Append("/0x").Append(FlagCompare.ToString("X2", CultureInfo.InvariantCulture));
    }

    internal static void ListPorts(StringBuilder sb, string label, ushort min, ushort max, bool inv)
    {
        if (min == 0 && max == 65535 && !inv) return;
        if (min == max) sb.Append(' ').Append(label).Append(':').Append(inv ? "!" : "").Append(min);
        else sb.Append(' ').Append(label).Append("s:").Append(inv ? "!" : "").Append(min).Append(':').Append(max);
    }
}

/// <summary>-m udp (xt_tcpudp): ports.</summary>
public sealed class UdpMatch : Match
{
    internal override bool IsPure => true;
    public ushort SrcMin, SrcMax = 65535, DstMin, DstMax = 65535;
    public bool InvSrc, InvDst;
    private bool _hasSrc, _hasDst;
    public override string Name => "udp";

    /// <summary>True when the match is exactly one destination port (--dport P, not inverted): an index key.</summary>
    internal bool ExactDstPort(out ushort port)
    {
        port = DstMin;
        return _hasDst && !InvDst && DstMin == DstMax;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        if (_hasSrc && ((p.SrcPort >= SrcMin && p.SrcPort <= SrcMax) == InvSrc)) return false;
        if (_hasDst && ((p.DstPort >= DstMin && p.DstPort <= DstMax) == InvDst)) return false;
        return true;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--sport" or "--source-port":
                if (_hasSrc) throw a.Error("multiple --sport flags not allowed");
                (SrcMin, SrcMax) = Opt.PortRange(a.Next(option), a); InvSrc = invert; _hasSrc = true; return true;
            case "--dport" or "--destination-port":
                if (_hasDst) throw a.Error("multiple --dport flags not allowed");
                (DstMin, DstMax) = Opt.PortRange(a.Next(option), a); InvDst = invert; _hasDst = true; return true;
        }
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (rule.Protocol != 17 || rule.InvProtocol) throw a.Error("udp match: only valid for protocol 17 (use -p udp)");
    }

    internal override void Save(StringBuilder sb)
    {
        if (_hasSrc) sb.Append(InvSrc ? " ! --sport " : " --sport ").Append(Opt.PortText(SrcMin, SrcMax));
        if (_hasDst) sb.Append(InvDst ? " ! --dport " : " --dport ").Append(Opt.PortText(DstMin, DstMax));
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" udp");
        if (_hasSrc) TcpMatch.ListPorts(sb, "spt", SrcMin, SrcMax, InvSrc);
        if (_hasDst) TcpMatch.ListPorts(sb, "dpt", DstMin, DstMax, InvDst);
    }
}

/// <summary>-m icmp --icmp-type type[/code] (ipt_icmp). Type 255 means any.</summary>
public sealed class IcmpMatch : Match
{
    internal override bool IsPure => true;
    public byte Type = 0xFF, CodeMin, CodeMax = 0xFF;
    public bool Invert;
    private bool _has;
    public override string Name => "icmp";

    private static readonly (string Name, byte Type, byte CodeMin, byte CodeMax)[] Names =
    {
        ("any", 0xFF, 0, 0xFF), ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
        ("destination-unreachable", 3, 0, 0xFF), ("network-unreachable", 3, 0, 0), ("host-unreachable", 3, 1, 1),
        ("protocol-unreachable", 3, 2, 2), ("port-unreachable", 3, 3, 3), ("fragmentation-needed", 3, 4, 4),
        ("source-route-failed", 3, 5, 5), ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
        ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10), ("TOS-network-unreachable", 3, 11, 11),
        ("TOS-host-unreachable", 3, 12, 12), ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
        ("precedence-cutoff", 3, 15, 15), ("source-quench", 4, 0, 0xFF), ("redirect", 5, 0, 0xFF),
        ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1), ("TOS-network-redirect", 5, 2, 2), ("TOS-host-redirect", 5, 3, 3),
        ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF), ("router-advertisement", 9, 0, 0xFF), ("router-solicitation", 10, 0, 0xFF),
        ("time-exceeded", 11, 0, 0xFF), ("ttl-exceeded", 11, 0, 0xFF), ("ttl-zero-during-transit", 11, 0, 0),
        ("ttl-zero-during-reassembly", 11, 1, 1), ("parameter-problem", 12, 0, 0xFF), ("ip-header-bad", 12, 0, 0),
        ("required-option-missing", 12, 1, 1), ("timestamp-request", 13, 0, 0xFF), ("timestamp-reply", 14, 0, 0xFF),
        ("address-mask-request", 17, 0, 0xFF), ("address-mask-reply", 18, 0, 0xFF),
    };

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        bool m = Type == 0xFF || (p.IcmpType == Type && p.IcmpCode >= CodeMin && p.IcmpCode <= CodeMax);
        return m ^ Invert;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (option != "--icmp-type") return false;
        if (_has) throw a.Error("multiple --icmp-type flags not allowed");
        string v = a.Next(option);
        int i = Array.FindIndex(Names, n => n.Name.Equals(v, StringComparison.OrdinalIgnoreCase));
        if (i >= 0) (Type, CodeMin, CodeMax) = (Names[i].Type, Names[i].CodeMin, Names[i].CodeMax);
        else
        {
            int slash = v.IndexOf('/');
            string ts = slash < 0 ? v : v[..slash];
            if (!byte.TryParse(ts, NumberStyles.None, CultureInfo.InvariantCulture, out Type)) throw a.Error($"Invalid ICMP type `{v}'");
            if (slash < 0) (CodeMin, CodeMax) = ((byte)0, (byte)0xFF);
            else if (byte.TryParse(v[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var code)) CodeMin = CodeMax = code;
            else throw a.Error($"Invalid ICMP code `{v}'");
        }
        Invert = invert;
        _has = true;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (rule.Protocol != 1 || rule.InvProtocol) throw a.Error("icmp match: only valid for protocol 1 (use -p icmp)");
    }

    internal override void Save(StringBuilder sb)
    {
        if (!_has) return;
        sb.Append(Invert ? " ! --icmp-type " : " --icmp-type ");
        if (Type == 0xFF) sb.Append("any");
        else
        {
            sb.Append(Type);
            if (CodeMin == CodeMax) sb.Append('/').Append(CodeMin);
        }
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(' ').Append(Invert ? "!" : "").Append("icmptype ");
        if (Type == 0xFF) sb.Append("any");
        else
        {
            sb.Append(Type);
            if (CodeMin == CodeMax) sb.Append(" code ").Append(CodeMin);
            else if (CodeMin != 0 || CodeMax != 0xFF) sb.Append(" codes ").Append(CodeMin).Append('-').Append(CodeMax);
        }
    }
}

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
            if (i < 0 || (!allowNat && i >= 5)) throw a.Error($"Bad ctstate \"{part}\"");
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

/// <summary>-m state --state (xt_state).</summary>
public sealed class StateMatch : Match
{
    internal override bool IsPure => true;
    public CtStateMask States;
    public bool Invert;
    public override string Name => "state";

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
        => ((States & CtStates.Of(ref p)) != 0) ^ Invert;

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (option != "--state") return false;
        States = CtStates.ParseList(a.Next(option), a, allowNat: false);
        Invert = invert;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (States == 0) throw a.Error("state match: You must specify \"--state\"");
    }

    internal override void Save(StringBuilder sb) => sb.Append(Invert ? " ! --state " : " --state ").Append(CtStates.Format(States));
    internal override void List(StringBuilder sb) => sb.Append(Invert ? " ! state " : " state ").Append(CtStates.Format(States));
}

/// <summary>-m conntrack (xt_conntrack revision 3): --ctstate, --ctorigsrc/dst, --ctorigdstport, --ctdir ...</summary>
public sealed class ConntrackMatch : Match
{
    internal override bool IsPure => true;
    public CtStateMask States;
    public bool HasState, InvState;
    public uint OrigSrc, OrigSrcMask, OrigDst, OrigDstMask, ReplSrc, ReplSrcMask, ReplDst, ReplDstMask;
    public bool HasOrigSrc, InvOrigSrc, HasOrigDst, InvOrigDst, HasReplSrc, InvReplSrc, HasReplDst, InvReplDst;
    public ushort OrigSrcPortMin, OrigSrcPortMax, OrigDstPortMin, OrigDstPortMax;
    public bool HasOrigSrcPort, InvOrigSrcPort, HasOrigDstPort, InvOrigDstPort;
    public byte Proto;
    public bool HasProto, InvProto;
    /// <summary>0 = not given, 1 = ORIGINAL, 2 = REPLY.</summary>
    public byte Direction;
    public override string Name => "conntrack";

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (HasState)
        {
            var bit = CtStates.Of(ref p);
            var ct0 = p.Ct;
            if (ct0 != null && p.CtInfo != CtInfo.Untracked)
            {
                if ((ct0.Status & Conntrack.CtStatus.SrcNat) != 0) bit |= CtStateMask.Snat;
                if ((ct0.Status & Conntrack.CtStatus.DstNat) != 0) bit |= CtStateMask.Dnat;
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
        if (HasProto && ((o.Protocol == Proto) == InvProto)) return false;
        if (HasOrigSrc && (((o.Src & OrigSrcMask) == OrigSrc) == InvOrigSrc)) return false;
        if (HasOrigDst && (((o.Dst & OrigDstMask) == OrigDst) == InvOrigDst)) return false;
        if (HasReplSrc && (((r.Src & ReplSrcMask) == ReplSrc) == InvReplSrc)) return false;
        if (HasReplDst && (((r.Dst & ReplDstMask) == ReplDst) == InvReplDst)) return false;
        if (HasOrigSrcPort && ((o.SrcPort >= OrigSrcPortMin && o.SrcPort <= OrigSrcPortMax) == InvOrigSrcPort)) return false;
        if (HasOrigDstPort && ((o.DstPort >= OrigDstPortMin && o.DstPort <= OrigDstPortMax) == InvOrigDstPort)) return false;
        return true;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--ctstate": States = CtStates.ParseList(a.Next(option), a, allowNat: true); HasState = true; InvState = invert; return true;
            case "--ctproto":
                Proto = Protocols.Parse(a.Next(option), a); HasProto = true; InvProto = invert; return true;
            case "--ctorigsrc": (OrigSrc, OrigSrcMask) = Opt.AddressMask(a.Next(option), a); HasOrigSrc = true; InvOrigSrc = invert; return true;
            case "--ctorigdst": (OrigDst, OrigDstMask) = Opt.AddressMask(a.Next(option), a); HasOrigDst = true; InvOrigDst = invert; return true;
            case "--ctreplsrc": (ReplSrc, ReplSrcMask) = Opt.AddressMask(a.Next(option), a); HasReplSrc = true; InvReplSrc = invert; return true;
            case "--ctrepldst": (ReplDst, ReplDstMask) = Opt.AddressMask(a.Next(option), a); HasReplDst = true; InvReplDst = invert; return true;
            case "--ctorigsrcport": (OrigSrcPortMin, OrigSrcPortMax) = Opt.PortRange(a.Next(option), a); HasOrigSrcPort = true; InvOrigSrcPort = invert; return true;
            case "--ctorigdstport": (OrigDstPortMin, OrigDstPortMax) = Opt.PortRange(a.Next(option), a); HasOrigDstPort = true; InvOrigDstPort = invert; return true;
            case "--ctdir":
                string d = a.Next(option);
                Direction = d.Equals("ORIGINAL", StringComparison.OrdinalIgnoreCase) ? (byte)1
                          : d.Equals("REPLY", StringComparison.OrdinalIgnoreCase) ? (byte)2
                          : throw a.Error($"Unknown --ctdir \"{d}\"");
                if (invert) Direction = (byte)(3 - Direction);
                return true;
        }
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!(HasState || HasProto || HasOrigSrc || HasOrigDst || HasReplSrc || HasReplDst || HasOrigSrcPort || HasOrigDstPort || Direction != 0))
            throw a.Error("conntrack: At least one option is required");
    }

    private static string Addr(uint a, uint m) => Ipv4.FormatMasked(a, m, omitHostMask: true);
    private static string Ports(ushort min, ushort max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}:{max}";

    internal override void Save(StringBuilder sb) => Render(sb, "--");
    internal override void List(StringBuilder sb) => Render(sb, "");

    private void Render(StringBuilder sb, string dash)
    {
        void Opt(bool inv, string name, string value) => sb.Append(inv ? " ! " : " ").Append(dash).Append(name).Append(' ').Append(value);
        if (HasState) Opt(InvState, "ctstate", CtStates.Format(States));
        if (HasProto) Opt(InvProto, "ctproto", Proto.ToString(CultureInfo.InvariantCulture));
        if (HasOrigSrc) Opt(InvOrigSrc, "ctorigsrc", Addr(OrigSrc, OrigSrcMask));
        if (HasOrigDst) Opt(InvOrigDst, "ctorigdst", Addr(OrigDst, OrigDstMask));
        if (HasReplSrc) Opt(InvReplSrc, "ctreplsrc", Addr(ReplSrc, ReplSrcMask));
        if (HasReplDst) Opt(InvReplDst, "ctrepldst", Addr(ReplDst, ReplDstMask));
        if (HasOrigSrcPort) Opt(InvOrigSrcPort, "ctorigsrcport", Ports(OrigSrcPortMin, OrigSrcPortMax));
        if (HasOrigDstPort) Opt(InvOrigDstPort, "ctorigdstport", Ports(OrigDstPortMin, OrigDstPortMax));
        if (Direction != 0) sb.Append(' ').Append(dash).Append("ctdir ").Append(Direction == 1 ? "ORIGINAL" : "REPLY");
    }
}

/// <summary>-m addrtype (xt_addrtype revision 1).</summary>
public sealed class AddrTypeMatch : Match
{
    internal override bool IsPure => true;
    public ushort SrcTypes, DstTypes;
    public bool InvSrc, InvDst, LimitIfaceIn, LimitIfaceOut;
    public override string Name => "addrtype";

    private static readonly string[] TypeNames =
    {
        "UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE",
    };

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        string? dev = LimitIfaceIn ? p.InInterface : LimitIfaceOut ? p.OutInterface : null;
        if (SrcTypes != 0 && (((SrcTypes >> (int)t.Host.AddressType(p.Src, dev)) & 1) == 0) != InvSrc) return false;
        if (DstTypes != 0 && (((DstTypes >> (int)t.Host.AddressType(p.Dst, dev)) & 1) == 0) != InvDst) return false;
        return true;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--src-type": SrcTypes = ParseTypes(a.Next(option), a); InvSrc = invert; return true;
            case "--dst-type": DstTypes = ParseTypes(a.Next(option), a); InvDst = invert; return true;
            case "--limit-iface-in": LimitIfaceIn = true; return true;
            case "--limit-iface-out": LimitIfaceOut = true; return true;
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

    internal override void Final(Rule rule, ArgReader a)
    {
        if (SrcTypes == 0 && DstTypes == 0) throw a.Error("addrtype: you must specify --src-type or --dst-type");
        if (LimitIfaceIn && LimitIfaceOut) throw a.Error("addrtype: you can't specify both --limit-iface-in and --limit-iface-out");
    }

    internal override int ValidHooks => LimitIfaceIn ? 0b00111 : LimitIfaceOut ? 0b11100 : 0x1F;

    private static string Types(ushort m)
    {
        var parts = new List<string>();
        for (int i = 0; i < TypeNames.Length; i++) if ((m & (1 << i)) != 0) parts.Add(TypeNames[i]);
        return string.Join(',', parts);
    }

    internal override void Save(StringBuilder sb)
    {
        if (SrcTypes != 0) sb.Append(InvSrc ? " ! --src-type " : " --src-type ").Append(Types(SrcTypes));
        if (DstTypes != 0) sb.Append(InvDst ? " ! --dst-type " : " --dst-type ").Append(Types(DstTypes));
        if (LimitIfaceIn) sb.Append(" --limit-iface-in");
        if (LimitIfaceOut) sb.Append(" --limit-iface-out");
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" ADDRTYPE match");
        if (SrcTypes != 0) sb.Append(" src-type ").Append(InvSrc ? "!" : "").Append(Types(SrcTypes));
        if (DstTypes != 0) sb.Append(" dst-type ").Append(InvDst ? "!" : "").Append(Types(DstTypes));
        if (LimitIfaceIn) sb.Append(" limit-in");
        if (LimitIfaceOut) sb.Append(" limit-out");
    }
}

/// <summary>-m multiport (xt_multiport revision 1: up to 15 ports, ranges count double).</summary>
public sealed class MultiportMatch : Match
{
    internal override bool IsPure => true;
    public enum Kind : byte { Source, Destination, Either }
    public Kind Flags;
    public bool Invert;
    private readonly List<(ushort Min, ushort Max)> _ports = new();
    private bool _has;
    private (ushort Min, ushort Max)[] _array = Array.Empty<(ushort, ushort)>();
    public IReadOnlyList<(ushort Min, ushort Max)> Ports => _ports;
    public override string Name => "multiport";

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        foreach (var (min, max) in _array)
        {
            bool s = p.SrcPort >= min && p.SrcPort <= max;
            bool d = p.DstPort >= min && p.DstPort <= max;
            bool hit = Flags switch { Kind.Source => s, Kind.Destination => d, _ => s || d };
            if (hit) return !Invert;
        }
        return Invert;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        Kind k;
        switch (option)
        {
            case "--sports" or "--source-ports": k = Kind.Source; break;
            case "--dports" or "--destination-ports": k = Kind.Destination; break;
            case "--ports": k = Kind.Either; break;
            default: return false;
        }
        if (_has) throw a.Error("multiport can only have one option");
        int slots = 0;
        foreach (var part in a.Next(option).Split(','))
        {
            var r = Opt.PortRange(part, a);
            _ports.Add(r);
            slots += r.Min == r.Max ? 1 : 2;
        }
        if (slots > 15) throw a.Error("too many ports specified");
        Flags = k;
        Invert = invert;
        _has = true;
        _array = _ports.ToArray();
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error("multiport expects an option");
        if (rule.InvProtocol || rule.Protocol is not (6 or 17 or 33 or 132 or 136))
            throw a.Error("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
    }

    private string PortList() => string.Join(',', _ports.Select(r => Opt.PortText(r.Min, r.Max)));

    internal override void Save(StringBuilder sb)
    {
        sb.Append(Invert ? " !" : "").Append(Flags switch { Kind.Source => " --sports ", Kind.Destination => " --dports ", _ => " --ports " })
          .Append(PortList());
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" multiport ").Append(Flags switch { Kind.Source => "sports ", Kind.Destination => "dports ", _ => "ports " });
        if (Invert) sb.Append(" !");
        sb.Append(PortList());
    }
}

/// <summary>-m comment --comment (xt_comment, at most 255 characters).</summary>
public sealed class CommentMatch : Match
{
    internal override bool IsPure => true;
    public string Text = "";
    private bool _has;
    public override string Name => "comment";
    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => true;

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (option != "--comment") return false;
        if (invert) throw a.Error("comment: cannot invert");
        Text = a.Next(option);
        if (Text.Length > 255) throw a.Error("COMMENT must be shorter than 256 characters");
        _has = true;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error("comment: option \"--comment\" must be specified");
    }

    internal override void Save(StringBuilder sb) { sb.Append(" --comment"); IptablesSave.AppendQuoted(sb, Text); }
    internal override void List(StringBuilder sb) => sb.Append(" /* ").Append(Text).Append(" */");
}

/// <summary>-m mark --mark value[/mask] (xt_mark).</summary>
public sealed class MarkMatch : Match
{
    internal override bool IsPure => true;
    public uint Value, Mask = 0xFFFFFFFF;
    public bool Invert;
    private bool _has;
    public override string Name => "mark";

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h) => ((p.Mark & Mask) == Value) ^ Invert;

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (option != "--mark") return false;
        (Value, Mask) = Opt.ValueMask(a.Next(option), a, "mark");
        Invert = invert;
        _has = true;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error("mark match: option \"--mark\" must be specified");
    }

    private string Text() => Mask == 0xFFFFFFFF ? Opt.Hex(Value) : Opt.Hex(Value) + "/" + Opt.Hex(Mask);
    internal override void Save(StringBuilder sb) => sb.Append(Invert ? " ! --mark " : " --mark ").Append(Text());
    internal override void List(StringBuilder sb) => sb.Append(" mark match ").Append(Invert ? "! " : "").Append(Text());
}

/// <summary>-m statistic (xt_statistic): random with probability, or every nth packet.</summary>
public sealed class StatisticMatch : Match
{
    public bool Nth;
    public bool Invert;
    /// <summary>Probability scaled as the kernel keeps it: lround(p * 2^31).</summary>
    public uint Probability;
    /// <summary>--every minus one, as the kernel stores it.</summary>
    public uint Every;
    public uint Packet;
    private uint _count;
    private bool _hasMode, _hasProb, _hasEvery, _hasPacket;
    public override string Name => "statistic";

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        bool ret = Invert;
        if (!Nth)
        {
            if ((t.NextRandom() & 0x7FFFFFFF) < Probability) ret = !ret;
        }
        else
        {
            _count = _count == Every ? 0 : _count + 1;
            if (_count == 0) ret = !ret;
        }
        return ret;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--mode":
                string m = a.Next(option);
                Nth = m == "nth" ? true : m == "random" ? false : throw a.Error($"Bad mode \"{m}\"");
                _hasMode = true;
                if (invert) Invert = true;
                return true;
            case "--probability":
                string s = a.Next(option);
                if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double prob) || prob < 0 || prob > 1)
                    throw a.Error($"--probability must be between 0 and 1");
                Probability = (uint)Math.Round(prob * 0x80000000, MidpointRounding.AwayFromZero);
                _hasProb = true;
                if (invert) Invert = true;
                return true;
            case "--every":
                uint e = Opt.UInt(a.Next(option), a, "--every");
                if (e == 0) throw a.Error("--every cannot be 0");
                Every = e - 1;
                _hasEvery = true;
                if (invert) Invert = true;
                return true;
            case "--packet":
                Packet = Opt.UInt(a.Next(option), a, "--packet");
                _hasPacket = true;
                return true;
        }
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_hasMode) throw a.Error("no mode specified");
        if (_hasProb && Nth) throw a.Error("--probability can only be used in random mode");
        if ((_hasEvery || _hasPacket) && !Nth) throw a.Error("--every and --packet can only be used in nth mode");
        if (Nth && !_hasEvery) throw a.Error("--every must be specified in nth mode");
        if (_hasPacket && Packet > Every) throw a.Error("the --packet p must be 0 <= p <= n-1");
        _count = Every - Packet;
    }

    private string ProbText() => (1.0 * Probability / 0x80000000).ToString("F11", CultureInfo.InvariantCulture);

    internal override void Save(StringBuilder sb)
    {
        if (Invert) sb.Append(" !");
        if (!Nth) sb.Append(" --mode random --probability ").Append(ProbText());
        else sb.Append(" --mode nth --every ").Append(Every + 1).Append(" --packet ").Append(Packet);
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" statistic");
        if (Invert) sb.Append(" !");
        if (!Nth) sb.Append(" mode random probability ").Append(ProbText());
        else
        {
            sb.Append(" mode nth every ").Append(Every + 1);
            if (Packet != 0) sb.Append(" packet ").Append(Packet);
        }
    }
}

/// <summary>Protocol names iptables knows (xtables_chain_protos, then /etc/protocols).</summary>
public static class Protocols
{
    private static readonly (string Name, byte Number)[] Known =
    {
        ("tcp", 6), ("udp", 17), ("udplite", 136), ("icmp", 1), ("esp", 50), ("ah", 51), ("sctp", 132), ("dccp", 33),
        ("igmp", 2), ("ipencap", 4), ("egp", 8), ("ipv6", 41), ("gre", 47), ("ospf", 89), ("pim", 103), ("vrrp", 112),
    };

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
