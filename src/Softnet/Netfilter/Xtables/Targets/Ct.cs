using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of CT and NOTRACK (xt_CT.c, revision 2; raw table only, checked in <see cref="CheckEntry"/>). --notrack marks the packet untracked;
/// otherwise the rule's template (zone, helper, events) is attached for nf_conntrack_in to use when it looks the
/// packet up: the zone separates conntrack entries (per direction with --zone-orig / --zone-reply, or taken
/// from the packet mark with "mark"). A packet that already has conntrack state is left alone.
/// </summary>
public sealed class CtTarget : XtTarget
{
    // XT_CT_* flag bits of xt_ct_target_info_v1.flags.
    public const ushort FlagNotrack = 1 << 0, FlagNotrackAlias = 1 << 1, FlagZoneDirOrig = 1 << 2, FlagZoneDirRepl = 1 << 3, FlagZoneMark = 1 << 4;

    public ushort CtFlags;
    public ushort Zone;
    public string Helper = "";
    public string Timeout = "";
    public uint CtEvents;
    public uint ExpEvents;
    internal uint Flags;

    public bool Notrack => (CtFlags & FlagNotrack) != 0;

    /// <summary>The zone's directions (NF_CT_ZONE_DIR_ORIG 1, _REPL 2): one when only --zone-orig or --zone-reply
    /// was given, both otherwise (nf_ct_flags_to_dir).</summary>
    public byte ZoneDir => (CtFlags & (FlagZoneDirOrig | FlagZoneDirRepl)) switch
    {
        FlagZoneDirOrig => 1,
        FlagZoneDirRepl => 2,
        _ => 3,
    };

    /// <summary>nf_ct_zone_tmpl + nf_ct_zone_id: the zone id the packet has in direction <paramref name="dir"/>
    /// (0 original, 1 reply); the default zone 0 in a direction the template does not cover.</summary>
    public ushort ZoneId(int dir, uint mark)
    {
        if ((ZoneDir & (1 << dir)) == 0) return 0;
        return (CtFlags & FlagZoneMark) != 0 ? (ushort)mark : Zone;
    }

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        // Previously seen (loopback, or an earlier CT rule): ignore.
        if (p.Ct != null || p.CtInfo != CtInfo.None || p.CtTemplate != null) return TargetResult.Continue;
        if (Notrack)
        {
            p.CtInfo = CtInfo.Untracked;
            return TargetResult.Continue;
        }
        p.CtTemplate = this;
        return TargetResult.Continue;
    }

    internal override bool UsesConntrack => true;

    /// <summary>Conntrack helpers the kernel has (name, L4 protocol), as nf_conntrack_helper_try_module_get finds them.</summary>
    private static readonly (string Name, byte Proto)[] Helpers =
    {
        ("ftp", 6), ("tftp", 17), ("irc", 6), ("sip", 17), ("sip", 6), ("pptp", 6), ("snmp", 17), ("amanda", 17),
        ("netbios-ns", 17), ("sane", 6), ("RAS", 17), ("Q.931", 6),
    };

    /// <summary>xt_ct_tg_check: notrack needs nothing; a helper needs an uninverted L4 protocol and a helper for it;
    /// timeout policies (nfnetlink_cttimeout objects) do not exist here.</summary>
    internal override string? CheckEntry(in XtCheck check)
    {
        // xt_target.table = "raw", checked under the kernel's name CT (also for the NOTRACK alias).
        if (check.Table != TableKind.Raw) return check.Invalid($"CT target: only valid in raw table, not {TableNames.Name(check.Table)}");
        if (Notrack) return null;
        if (Helper.Length != 0)
        {
            byte proto = check.Rule.InvProtocol ? (byte)0 : check.Rule.Protocol;
            if (proto == 0) return NoEntry(check, "xt_CT: You must specify a L4 protocol and not use inversions on it");
            if (Array.FindIndex(Helpers, h => h.Name == Helper && h.Proto == proto) < 0) return NoEntry(check, $"xt_CT: No such helper \"{Helper}\"");
        }
        if (Timeout.Length != 0) return check.Invalid($"CT: no timeout policy \"{Timeout}\" (nfnetlink_cttimeout objects are not modeled)");
        return null;
    }

    /// <summary>A checkentry failing with -ENOENT, as iptables-restore (nf_tables) reports it, with the kernel's reason.</summary>
    private static string NoEntry(in XtCheck check, string why) => $"RULE_APPEND failed (No such file or directory): rule in chain {check.Chain} ({why})";
}

/// <summary>Userspace half of CT (libxt_CT.c revision 2, the one iptables 1.8.9 uses).</summary>
internal sealed class CtTargetExtension : XtTargetExtension<CtTarget>
{
    public override string Name => "CT";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    private static readonly XtOpt[] Options =
    {
        new("notrack", 0, XtOptType.None),
        new("helper", 1, XtOptType.String) { Size = 16 },
        new("timeout", 2, XtOptType.String) { Size = 32 },
        new("ctevents", 3, XtOptType.String),
        new("expevents", 4, XtOptType.String),
        new("zone-orig", 6, XtOptType.String),
        new("zone-reply", 7, XtOptType.String),
        new("zone", 5, XtOptType.String),
    };

    internal static readonly string[] CtEventNames =
        { "new", "related", "destroy", "reply", "assured", "protoinfo", "helper", "mark", "natseqinfo", "secmark" };
    internal static readonly string[] ExpEventNames = { "new" };

    internal override bool Parse(CtTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string? arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a);
        switch (o.Id)
        {
            case 0: t.CtFlags |= CtTarget.FlagNotrack; break;
            case 1: t.Helper = XtOptions.Str(o, arg!, a); break;
            case 2: t.Timeout = XtOptions.Str(o, arg!, a); break;
            case 3: t.CtEvents = Events(CtEventNames, arg!, a); break;
            case 4: t.ExpEvents = Events(ExpEventNames, arg!, a); break;
            default: ParseZone(t, o.Id, arg!, a); break;
        }
        return true;
    }

    /// <summary>ct_parse_zone_id: direction flags accumulate; "mark" (any case) or a number 0..65535.</summary>
    private static void ParseZone(CtTarget t, int id, string arg, ArgReader a)
    {
        if (id == 6) t.CtFlags |= CtTarget.FlagZoneDirOrig;
        if (id == 7) t.CtFlags |= CtTarget.FlagZoneDirRepl;
        t.Zone = 0;
        if (string.Equals(arg, "mark", StringComparison.OrdinalIgnoreCase))
        {
            t.CtFlags |= CtTarget.FlagZoneMark;
            return;
        }
        if (!XtOptions.StrToUL(arg, 0, out ulong v, out int end, 0, ushort.MaxValue) || end != arg.Length)
            throw a.Error($"Cannot parse {arg} as a zone ID");
        t.Zone = (ushort)v;
    }

    /// <summary>ct_parse_events: comma-separated names, each exactly one of the table's.</summary>
    private static uint Events(string[] names, string arg, ArgReader a)
    {
        uint mask = 0;
        foreach (var e in arg.Split(','))
        {
            int i = Array.IndexOf(names, e);
            if (i < 0) throw a.Error($"Unknown event type \"{e}\"");
            mask |= 1u << i;
        }
        return mask;
    }

    private static void PrintEvents(StringBuilder sb, string word, string[] names, uint mask)
    {
        sb.Append(' ').Append(word).Append(' ');
        string sep = "";
        for (int i = 0; i < names.Length; i++)
        {
            if ((mask & (1u << i)) == 0) continue;
            sb.Append(sep).Append(names[i]);
            sep = ",";
        }
    }

    private static void PrintZone(StringBuilder sb, string word, CtTarget t)
    {
        sb.Append(' ').Append(word);
        int dirs = t.CtFlags & (CtTarget.FlagZoneDirOrig | CtTarget.FlagZoneDirRepl);
        if (dirs == CtTarget.FlagZoneDirOrig) sb.Append("-orig");
        if (dirs == CtTarget.FlagZoneDirRepl) sb.Append("-reply");
        if ((t.CtFlags & CtTarget.FlagZoneMark) != 0) sb.Append(" mark");
        else sb.Append(' ').Append(t.Zone);
    }

    /// <summary>ct_save_v1 / ct_print_v1 share the order: notrack, helper, timeout, events, zone.</summary>
    internal static void Print(CtTarget t, StringBuilder sb, bool save)
    {
        string d = save ? "--" : "";
        if (!save) sb.Append(" CT");
        if (t.Notrack) sb.Append(' ').Append(d).Append("notrack");
        if (t.Helper.Length != 0) sb.Append(' ').Append(d).Append("helper ").Append(t.Helper);
        if (t.Timeout.Length != 0) sb.Append(' ').Append(d).Append("timeout ").Append(t.Timeout);
        if (t.CtEvents != 0) PrintEvents(sb, d + "ctevents", CtEventNames, t.CtEvents);
        if (t.ExpEvents != 0) PrintEvents(sb, d + "expevents", ExpEventNames, t.ExpEvents);
        if ((t.CtFlags & CtTarget.FlagZoneMark) != 0 || t.Zone != 0) PrintZone(sb, d + "zone", t);
    }

    internal override void Save(CtTarget t, StringBuilder sb) => Print(t, sb, true);
    internal override void List(CtTarget t, StringBuilder sb) => Print(t, sb, false);
}

/// <summary>Userspace half of NOTRACK: the alias of CT --notrack (revision 2 with XT_CT_NOTRACK_ALIAS), saved as
/// "-j NOTRACK" and listed as target CT with "NOTRACK".</summary>
internal sealed class NotrackTargetExtension : XtTargetExtension<CtTarget>
{
    public override string Name => "NOTRACK";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    public override string ListName => "CT";
    internal override void Init(CtTarget t) => t.CtFlags = CtTarget.FlagNotrack | CtTarget.FlagNotrackAlias;
    internal override bool Parse(CtTarget t, string option, bool invert, ArgReader a) => false;
    internal override void Save(CtTarget t, StringBuilder sb) { }
    internal override void List(CtTarget t, StringBuilder sb) => sb.Append(" NOTRACK");
}
