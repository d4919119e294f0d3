using System.Globalization;
using System.Text;
using Softnet.Netfilter.Conntrack;

namespace Softnet.Netfilter;

/// <summary>What an extension target tells the table walk (XT_CONTINUE or an absolute verdict).</summary>
public enum TargetResult : byte
{
    Continue,
    Accept,
    Drop,
}

/// <summary>A target extension (-j NAME ...).</summary>
public abstract class Target
{
    /// <summary>Name after -j in iptables-save.</summary>
    public abstract string Name { get; }
    /// <summary>Name in the target column of iptables -L.</summary>
    internal virtual string ListName => Name;

    internal abstract TargetResult Execute(ref PacketContext p, NetfilterTables tables, HookPoint hook);
    internal abstract bool Parse(string option, bool invert, ArgReader args);
    internal virtual void Final(Rule rule, ArgReader args) { }
    /// <summary>Hooks the kernel allows this target from (xt_target.hooks), bit per HookPoint.</summary>
    internal virtual int ValidHooks => 0x1F;
    /// <summary>The only table this target may be used in (xt_target.table), or null.</summary>
    internal virtual TableKind? OnlyTable => null;
    internal abstract void Save(StringBuilder sb);
    internal abstract void List(StringBuilder sb);

    internal static Target? Create(string name) => name switch
    {
        "REJECT" => new RejectTarget(),
        "LOG" => new LogTarget(),
        "MARK" => new MarkTarget(),
        "CONNMARK" => new ConnmarkTarget(),
        "DNAT" => new NatTarget(NatManip.Dst, "DNAT"),
        "SNAT" => new NatTarget(NatManip.Src, "SNAT"),
        "MASQUERADE" => new MasqueradeTarget(),
        "REDIRECT" => new RedirectTarget(),
        "NOTRACK" => new NotrackTarget(ct: false),
        "CT" => new NotrackTarget(ct: true),
        _ => null,
    };

    internal const int HookPre = 1 << 0, HookIn = 1 << 1, HookFwd = 1 << 2, HookOut = 1 << 3, HookPost = 1 << 4;
}

/// <summary>REJECT (ipt_REJECT): drop and ask the stack to answer with an ICMP error or a TCP reset.</summary>
public sealed class RejectTarget : Target
{
    public RejectWith With = RejectWith.IcmpPortUnreachable;
    public override string Name => "REJECT";

    private static readonly (string Name, string Alias, RejectWith Kind)[] Kinds =
    {
        ("icmp-net-unreachable", "net-unreach", RejectWith.IcmpNetUnreachable),
        ("icmp-host-unreachable", "host-unreach", RejectWith.IcmpHostUnreachable),
        ("icmp-port-unreachable", "port-unreach", RejectWith.IcmpPortUnreachable),
        ("icmp-proto-unreachable", "proto-unreach", RejectWith.IcmpProtoUnreachable),
        ("icmp-net-prohibited", "net-prohib", RejectWith.IcmpNetProhibited),
        ("icmp-host-prohibited", "host-prohib", RejectWith.IcmpHostProhibited),
        ("tcp-reset", "tcp-rst", RejectWith.TcpReset),
        ("icmp-admin-prohibited", "admin-prohib", RejectWith.IcmpAdminProhibited),
    };

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Reject = With;
        return TargetResult.Drop;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (option != "--reject-with") return false;
        string v = a.Next(option);
        int i = Array.FindIndex(Kinds, k => k.Name == v || k.Alias == v);
        if (i < 0) throw a.Error($"unknown reject type \"{v}\"");
        With = Kinds[i].Kind;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (With == RejectWith.TcpReset && (rule.Protocol != 6 || rule.InvProtocol))
            throw a.Error("REJECT --reject-with tcp-reset is only valid with -p tcp");
    }

    internal override int ValidHooks => HookIn | HookFwd | HookOut;
    internal override TableKind? OnlyTable => TableKind.Filter;
    private string Text() => Kinds.First(k => k.Kind == With).Name;
    internal override void Save(StringBuilder sb) => sb.Append(" --reject-with ").Append(Text());
    internal override void List(StringBuilder sb) => sb.Append(" reject-with ").Append(Text());
}

/// <summary>LOG (xt_LOG): non-terminating; hands a kernel-style log line to the table's sink.</summary>
public sealed class LogTarget : Target
{
    public string? Prefix;
    public byte Level = 4;
    /// <summary>XT_LOG_* flags: TCPSEQ 1, TCPOPT 2, IPOPT 4, UID 8, MACDECODE 0x20.</summary>
    public byte Flags;
    public override string Name => "LOG";

    private static readonly string[] Levels = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        t.LogCount++;
        if (t.LogSink != null)
        {
            var sb = new StringBuilder();
            sb.Append(Prefix).Append("IN=").Append(p.InInterface).Append(" OUT=").Append(p.OutInterface)
              .Append(" SRC=").Append(Ipv4.Format(p.Src)).Append(" DST=").Append(Ipv4.Format(p.Dst))
              .Append(" LEN=").Append(p.Length).Append(" PROTO=");
            if (p.Protocol == 6 || p.Protocol == 17)
                sb.Append(p.Protocol == 6 ? "TCP" : "UDP").Append(" SPT=").Append(p.SrcPort).Append(" DPT=").Append(p.DstPort);
            else if (p.Protocol == 1) sb.Append("ICMP TYPE=").Append(p.IcmpType).Append(" CODE=").Append(p.IcmpCode);
            else sb.Append(p.Protocol);
            if (p.Mark != 0) sb.Append(" MARK=").Append(Opt.Hex(p.Mark));
            t.LogSink(Level, sb.ToString());
        }
        return TargetResult.Continue;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--log-prefix":
                Prefix = a.Next(option);
                if (Prefix.Length > 29) throw a.Error("Maximum prefix length 29 for --log-prefix");
                return true;
            case "--log-level":
                string v = a.Next(option);
                int i = Array.IndexOf(Levels, v);
                if (i >= 0) Level = (byte)i;
                else if (byte.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 7) Level = n;
                else throw a.Error($"log-level `{v}' unknown");
                return true;
            case "--log-tcp-sequence": Flags |= 0x01; return true;
            case "--log-tcp-options": Flags |= 0x02; return true;
            case "--log-ip-options": Flags |= 0x04; return true;
            case "--log-uid": Flags |= 0x08; return true;
            case "--log-macdecode": Flags |= 0x20; return true;
        }
        return false;
    }

    internal override void Save(StringBuilder sb)
    {
        if (Prefix != null) { sb.Append(" --log-prefix"); IptablesSave.AppendQuoted(sb, Prefix); }
        if (Level != 4) sb.Append(" --log-level ").Append(Level);
        if ((Flags & 0x01) != 0) sb.Append(" --log-tcp-sequence");
        if ((Flags & 0x02) != 0) sb.Append(" --log-tcp-options");
        if ((Flags & 0x04) != 0) sb.Append(" --log-ip-options");
        if ((Flags & 0x08) != 0) sb.Append(" --log-uid");
        if ((Flags & 0x20) != 0) sb.Append(" --log-macdecode");
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" LOG flags ").Append(Flags).Append(" level ").Append(Level);
        if (Prefix != null) sb.Append(" prefix \"").Append(Prefix).Append('"');
    }
}

/// <summary>MARK (xt_MARK revision 2): mark = (mark &amp; ~mask) ^ value.</summary>
public sealed class MarkTarget : Target
{
    public uint Value, Mask;
    private bool _has;
    public override string Name => "MARK";

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Mark = (p.Mark & ~Mask) ^ Value;
        return TargetResult.Continue;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (_has && option is "--set-xmark" or "--set-mark" or "--and-mark" or "--or-mark" or "--xor-mark")
            throw a.Error("MARK target: Can't specify --set-mark twice");
        switch (option)
        {
            case "--set-xmark": (Value, Mask) = Opt.ValueMask(a.Next(option), a, "mark"); break;
            case "--set-mark": { var (v, m) = Opt.ValueMask(a.Next(option), a, "mark"); Value = v; Mask = v | m; break; }
            case "--and-mark": Value = 0; Mask = ~Opt.UInt(a.Next(option), a, "mark"); break;
            case "--or-mark": Value = Mask = Opt.UInt(a.Next(option), a, "mark"); break;
            case "--xor-mark": Value = Opt.UInt(a.Next(option), a, "mark"); Mask = 0; break;
            default: return false;
        }
        _has = true;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error("MARK target: Parameter --set/and/or/xor-mark is required");
    }

    internal override void Save(StringBuilder sb) => sb.Append(" --set-xmark ").Append(Opt.Hex(Value)).Append('/').Append(Opt.Hex(Mask));

    internal override void List(StringBuilder sb)
    {
        if (Value == 0) sb.Append(" MARK and ").Append(Opt.Hex(~Mask));
        else if (Value == Mask) sb.Append(" MARK or ").Append(Opt.Hex(Value));
        else if (Mask == 0) sb.Append(" MARK xor ").Append(Opt.Hex(Value));
        else if (Mask == 0xFFFFFFFF) sb.Append(" MARK set ").Append(Opt.Hex(Value));
        else sb.Append(" MARK xset ").Append(Opt.Hex(Value)).Append('/').Append(Opt.Hex(Mask));
    }
}

/// <summary>CONNMARK (xt_CONNMARK revision 1): set / save / restore between packet and conntrack mark.</summary>
public sealed class ConnmarkTarget : Target
{
    public enum Mode : byte { Set, Save, Restore }
    public Mode Op;
    public uint CtMark, CtMask = 0xFFFFFFFF, NfMask = 0xFFFFFFFF;
    private bool _has;
    public override string Name => "CONNMARK";

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        var ct = p.CtInfo is CtInfo.None or CtInfo.Untracked ? null : p.Ct;
        if (ct == null) return TargetResult.Continue;
        switch (Op)
        {
            case Mode.Set: ct.Mark = (ct.Mark & ~CtMask) ^ CtMark; break;
            case Mode.Save: ct.Mark = (ct.Mark & ~CtMask) ^ (p.Mark & NfMask); break;
            case Mode.Restore: p.Mark = (p.Mark & ~NfMask) ^ (ct.Mark & CtMask); break;
        }
        return TargetResult.Continue;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--set-xmark": Op = Mode.Set; (CtMark, CtMask) = Opt.ValueMask(a.Next(option), a, "mark"); break;
            case "--set-mark": { Op = Mode.Set; var (v, m) = Opt.ValueMask(a.Next(option), a, "mark"); CtMark = v; CtMask = v | m; break; }
            case "--and-mark": Op = Mode.Set; CtMark = 0; CtMask = ~Opt.UInt(a.Next(option), a, "mark"); break;
            case "--or-mark": Op = Mode.Set; CtMark = CtMask = Opt.UInt(a.Next(option), a, "mark"); break;
            case "--xor-mark": Op = Mode.Set; CtMark = Opt.UInt(a.Next(option), a, "mark"); CtMask = 0; break;
            case "--save-mark": Op = Mode.Save; break;
            case "--restore-mark": Op = Mode.Restore; break;
            case "--mask": NfMask = CtMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            case "--nfmask": NfMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            case "--ctmask": CtMask = Opt.UInt(a.Next(option), a, "mask"); return true;
            default: return false;
        }
        _has = true;
        return true;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error("CONNMARK target: No operation specified");
    }

    internal override void Save(StringBuilder sb)
    {
        switch (Op)
        {
            case Mode.Set: sb.Append(" --set-xmark ").Append(Opt.Hex(CtMark)).Append('/').Append(Opt.Hex(CtMask)); break;
            case Mode.Save: sb.Append(" --save-mark --nfmask ").Append(Opt.Hex(NfMask)).Append(" --ctmask ").Append(Opt.Hex(CtMask)); break;
            default: sb.Append(" --restore-mark --nfmask ").Append(Opt.Hex(NfMask)).Append(" --ctmask ").Append(Opt.Hex(CtMask)); break;
        }
    }

    internal override void List(StringBuilder sb)
    {
        switch (Op)
        {
            case Mode.Set:
                if (CtMask == 0xFFFFFFFF) sb.Append(" CONNMARK set ").Append(Opt.Hex(CtMark));
                else sb.Append(" CONNMARK xset ").Append(Opt.Hex(CtMark)).Append('/').Append(Opt.Hex(CtMask));
                break;
            default:
                sb.Append(Op == Mode.Save ? " CONNMARK save" : " CONNMARK restore");
                if (NfMask == 0xFFFFFFFF && CtMask == 0xFFFFFFFF) break;
                if (NfMask == CtMask) sb.Append(" mask ").Append(Opt.Hex(NfMask));
                else sb.Append(" nfmask ").Append(Opt.Hex(NfMask)).Append(" ctmask ~").Append(Opt.Hex(CtMask));
                break;
        }
    }
}

/// <summary>Shared parsing and printing of nf_nat_range2 for SNAT/DNAT/MASQUERADE/REDIRECT.</summary>
internal static class NatText
{
    public static NatRange ParseToAddress(string s, ArgReader a)
    {
        var r = new NatRange();
        int colon = s.IndexOf(':');
        string ips = colon < 0 ? s : s[..colon];
        if (ips.Length > 0)
        {
            int dash = ips.IndexOf('-');
            string lo = dash < 0 ? ips : ips[..dash];
            if (!Ipv4.TryParse(lo, out r.MinIp)) throw a.Error($"Bad IP address \"{lo}\"");
            r.MaxIp = r.MinIp;
            if (dash >= 0 && !Ipv4.TryParse(ips[(dash + 1)..], out r.MaxIp)) throw a.Error($"Bad IP address \"{ips[(dash + 1)..]}\"");
            if (r.MaxIp < r.MinIp) throw a.Error($"Bad IP range \"{ips}\"");
            r.Flags |= NatRangeFlags.MapIps;
        }
        if (colon >= 0)
        {
            (r.MinPort, r.MaxPort) = ParsePorts(s[(colon + 1)..], a);
            r.Flags |= NatRangeFlags.ProtoSpecified;
        }
        return r;
    }

    public static (ushort, ushort) ParsePorts(string s, ArgReader a)
    {
        int dash = s.IndexOf('-');
        if (dash < 0) dash = s.IndexOf(':');
        ushort min = ParsePort(dash < 0 ? s : s[..dash], a);
        ushort max = dash < 0 ? min : ParsePort(s[(dash + 1)..], a);
        if (max < min) throw a.Error($"Port range `{s}' invalid");
        return (min, max);
    }

    private static ushort ParsePort(string s, ArgReader a)
        => ushort.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p != 0 ? p : throw a.Error($"Port `{s}' not valid");

    public static void RequirePortProtocol(Rule rule, ArgReader a)
    {
        if (rule.InvProtocol || rule.Protocol is not (6 or 17 or 132 or 33 or 136))
            throw a.Error("Need TCP, UDP, SCTP or DCCP with port specification");
    }

    public static string Ports(ushort min, ushort max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}-{max}";

    public static string Range(in NatRange r)
    {
        var sb = new StringBuilder();
        if ((r.Flags & NatRangeFlags.MapIps) != 0)
        {
            sb.Append(Ipv4.Format(r.MinIp));
            if (r.MaxIp != r.MinIp) sb.Append('-').Append(Ipv4.Format(r.MaxIp));
        }
        if ((r.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(':').Append(Ports(r.MinPort, r.MaxPort));
        return sb.ToString();
    }

    public static void Flags(StringBuilder sb, NatRangeFlags f, string dash)
    {
        if ((f & NatRangeFlags.ProtoRandom) != 0) sb.Append(' ').Append(dash).Append("random");
        if ((f & NatRangeFlags.ProtoRandomFully) != 0) sb.Append(' ').Append(dash).Append("random-fully");
        if ((f & NatRangeFlags.Persistent) != 0) sb.Append(' ').Append(dash).Append("persistent");
    }
}

/// <summary>SNAT / DNAT (xt_nat): bind the connection to the given address/port range on its first packet.</summary>
public sealed class NatTarget : Target
{
    public NatManip Manip { get; }
    public NatRange Range;
    private readonly string _name;
    private bool _has;
    public override string Name => _name;

    internal NatTarget(NatManip manip, string name)
    {
        Manip = manip;
        _name = name;
    }

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        return t.Nat.SetupInfo(p.Ct, Range, Manip) ? TargetResult.Accept : TargetResult.Drop;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        string to = Manip == NatManip.Dst ? "--to-destination" : "--to-source";
        if (option == to)
        {
            if (_has) throw a.Error($"{_name}: Multiple {to} not supported");
            var flags = Range.Flags;
            Range = NatText.ParseToAddress(a.Next(option), a);
            Range.Flags |= flags;
            _has = true;
            return true;
        }
        switch (option)
        {
            case "--random": Range.Flags |= NatRangeFlags.ProtoRandom; return true;
            case "--random-fully" when Manip == NatManip.Src: Range.Flags |= NatRangeFlags.ProtoRandomFully; return true;
            case "--persistent": Range.Flags |= NatRangeFlags.Persistent; return true;
        }
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (!_has) throw a.Error($"You must specify {(Manip == NatManip.Dst ? "--to-destination" : "--to-source")}");
        if ((Range.Flags & NatRangeFlags.ProtoSpecified) != 0) NatText.RequirePortProtocol(rule, a);
    }

    internal override int ValidHooks => Manip == NatManip.Dst ? HookPre | HookOut : HookPost | HookIn;
    internal override TableKind? OnlyTable => TableKind.Nat;

    internal override void Save(StringBuilder sb)
    {
        sb.Append(Manip == NatManip.Dst ? " --to-destination " : " --to-source ").Append(NatText.Range(Range));
        NatText.Flags(sb, Range.Flags, "--");
    }

    internal override void List(StringBuilder sb)
    {
        sb.Append(" to:").Append(NatText.Range(Range));
        NatText.Flags(sb, Range.Flags, "");
    }
}

/// <summary>
/// What MASQUERADE and REDIRECT share: an optional port range (--to-ports, which needs -p tcp/udp/...),
/// --random, and the same save and list rendering (xt_MASQUERADE / xt_REDIRECT).
/// </summary>
public abstract class PortRangeNatTarget : Target
{
    public NatRange Range;

    /// <summary>Word iptables -nvL prints before the port range ("masq ports:", "redir ports").</summary>
    private protected abstract string ListLabel { get; }

    private protected virtual bool AllowsRandomFully => false;

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--to-ports":
                (Range.MinPort, Range.MaxPort) = NatText.ParsePorts(a.Next(option), a);
                Range.Flags |= NatRangeFlags.ProtoSpecified;
                return true;
            case "--random": Range.Flags |= NatRangeFlags.ProtoRandom; return true;
            case "--random-fully" when AllowsRandomFully: Range.Flags |= NatRangeFlags.ProtoRandomFully; return true;
        }
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if ((Range.Flags & NatRangeFlags.ProtoSpecified) != 0) NatText.RequirePortProtocol(rule, a);
    }

    internal override TableKind? OnlyTable => TableKind.Nat;

    internal override void Save(StringBuilder sb)
    {
        if ((Range.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(" --to-ports ").Append(NatText.Ports(Range.MinPort, Range.MaxPort));
        NatText.Flags(sb, Range.Flags, "--");
    }

    internal override void List(StringBuilder sb)
    {
        if ((Range.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(' ').Append(ListLabel).Append(' ').Append(NatText.Ports(Range.MinPort, Range.MaxPort));
        NatText.Flags(sb, Range.Flags, "");
    }
}

/// <summary>MASQUERADE (nf_nat_masquerade_ipv4): SNAT to the primary address of the output device.</summary>
public sealed class MasqueradeTarget : PortRangeNatTarget
{
    public override string Name => "MASQUERADE";
    private protected override string ListLabel => "masq ports:";
    private protected override bool AllowsRandomFully => true;
    internal override int ValidHooks => HookPost;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        uint src = t.Host.PrimaryAddress(p.OutInterface);
        if (src == 0) { p.DropReason = Packets.DropReason.NetfilterNatFailed; return TargetResult.Drop; }
        var r = Range;
        r.MinIp = r.MaxIp = src;
        r.Flags |= NatRangeFlags.MapIps;
        p.Ct.MasqueradeDevice = p.OutInterface;
        return t.Nat.SetupInfo(p.Ct, r, NatManip.Src) ? TargetResult.Accept : TargetResult.Drop;
    }
}

/// <summary>REDIRECT (nf_nat_redirect_ipv4): DNAT to the input device's address (127.0.0.1 for locally generated).</summary>
public sealed class RedirectTarget : PortRangeNatTarget
{
    public override string Name => "REDIRECT";
    private protected override string ListLabel => "redir ports";
    internal override int ValidHooks => HookPre | HookOut;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        uint dst = hook == HookPoint.LocalOut ? 0x7F000001u : t.Host.PrimaryAddress(p.InInterface);
        if (dst == 0) { p.DropReason = Packets.DropReason.NetfilterNatFailed; return TargetResult.Drop; }
        var r = Range;
        r.MinIp = r.MaxIp = dst;
        r.Flags |= NatRangeFlags.MapIps;
        return t.Nat.SetupInfo(p.Ct, r, NatManip.Dst) ? TargetResult.Accept : TargetResult.Drop;
    }
}

/// <summary>NOTRACK and CT --notrack (xt_CT): mark the packet untracked so conntrack skips it.</summary>
public sealed class NotrackTarget : Target
{
    private readonly bool _ct;
    private bool _notrack;
    public override string Name => _ct ? "CT" : "NOTRACK";
    internal override string ListName => "CT";

    internal NotrackTarget(bool ct) => _ct = ct;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Ct = null;
        p.CtInfo = CtInfo.Untracked;
        return TargetResult.Continue;
    }

    internal override bool Parse(string option, bool invert, ArgReader a)
    {
        if (!_ct) return false;
        if (option == "--notrack") { _notrack = true; return true; }
        if (option is "--helper" or "--ctevents" or "--expevents" or "--zone" or "--zone-orig" or "--zone-reply" or "--timeout")
            throw a.Error($"CT {option} is not supported yet");
        return false;
    }

    internal override void Final(Rule rule, ArgReader a)
    {
        if (_ct && !_notrack) throw a.Error("CT: only --notrack is supported yet");
    }

    internal override TableKind? OnlyTable => TableKind.Raw;
    internal override void Save(StringBuilder sb) { if (_ct) sb.Append(" --notrack"); }
    internal override void List(StringBuilder sb) => sb.Append(_ct ? " CT notrack" : " NOTRACK");
}
