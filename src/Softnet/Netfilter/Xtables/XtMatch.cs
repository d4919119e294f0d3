using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Hook bits as xt_match.hooks / xt_target.hooks hold them (bit per <see cref="HookPoint"/>).
/// </summary>
public static class XtHooks
{
    public const int PreRouting = 1 << 0, LocalIn = 1 << 1, Forward = 1 << 2, LocalOut = 1 << 3, PostRouting = 1 << 4;
    public const int All = 0x1F;
}

/// <summary>What checkentry sees when a table is committed (struct xt_mtchk_param / xt_tgchk_param).</summary>
public readonly struct XtCheck
{
    public NetfilterTables Tables { get; init; }
    public TableKind Table { get; init; }
    /// <summary>Hooks the rule's chain is reachable from.</summary>
    public int HookMask { get; init; }
    public Rule Rule { get; init; }
    public string Chain { get; init; }

    /// <summary>What iptables-restore (nf_tables) reports when the kernel's checkentry returns -EINVAL,
    /// with the kernel's reason appended.</summary>
    public string Invalid(string why) => $"RULE_APPEND failed (Invalid argument): rule in chain {Chain} ({why})";
}

/// <summary>
/// Kernel half of a match extension (struct xt_match + the per-rule info blob): the rule's match data,
/// the function run on each packet, and checkentry. Created by its <see cref="XtMatchExtension"/>, which
/// it points back to for printing. <see cref="Matches"/> must not allocate.
/// </summary>
public abstract class XtMatch
{
    /// <summary>The userspace half that created this instance (parse, save, list).</summary>
    public XtMatchExtension Extension { get; internal set; } = null!;

    /// <summary>Module name as written after -m.</summary>
    public string Name => Extension.Name;

    /// <summary>Userspace bookkeeping while the rule is parsed: the x6 options seen (libxtables' mflags).</summary>
    internal uint OptionFlags;

    /// <summary>Set by a final check when iptables-nft's translation leaves nothing of the match (e.g. `! --sport
    /// 0:65535`): the parser drops it from the rule, as iptables-save then shows it.</summary>
    internal bool Elided;

    /// <summary>The match needs conntrack in its namespace (the kernel's nf_ct_netns_get in checkentry).</summary>
    internal virtual bool UsesConntrack => false;

    internal abstract bool Matches(ref PacketContext p, NetfilterTables tables, HookPoint hook);

    /// <summary>Hooks this match may be used from (xt_match.hooks; bit per HookPoint).</summary>
    internal virtual int ValidHooks => XtHooks.All;

    /// <summary>The only table this match may be used in (xt_match.table), or null.</summary>
    internal virtual TableKind? OnlyTable => null;

    /// <summary>True when evaluating the match changes nothing (no counter, no random draw, no state), so the
    /// chain compiler may skip it or evaluate it out of order. Opt-in: an unknown match is assumed impure.</summary>
    internal virtual bool IsPure => false;

    /// <summary>True when the match accepts every packet and changes nothing (xt_comment): the compiled rule leaves it
    /// out of the walk. It stays in the rule for printing.</summary>
    internal virtual bool AlwaysMatches => false;

    /// <summary>The kernel's checkentry at table commit: null when fine, else the reason the kernel refuses the
    /// rule (iptables-restore then fails). May bind per-namespace state (recent tables, ipsets).</summary>
    internal virtual string? CheckEntry(in XtCheck check) => null;
}

/// <summary>
/// Userspace half of a match extension (libxt_NAME.c): option parsing, final check, iptables-save and
/// iptables -L printing. One instance per extension, found by <see cref="XtRegistry"/> by name; a new
/// extension is a new non-abstract subclass, nothing else to register.
/// </summary>
public abstract class XtMatchExtension
{
    /// <summary>Name after -m, and as iptables-save prints it.</summary>
    public abstract string Name { get; }

    /// <summary>Other names -m accepts for this extension.</summary>
    public virtual IReadOnlyList<string> Aliases => Array.Empty<string>();

    /// <summary>The family the extension registers for (xt_match.family): IPv4 unless it overrides it, NFPROTO_UNSPEC
    /// for an extension that works on both families (its kernel half reads only family-neutral fields).</summary>
    public virtual NfProto Family => NfProto.Ipv4;

    /// <summary>A fresh per-rule kernel half with its defaults (init).</summary>
    internal abstract XtMatch Create();

    /// <summary>Consumes one option; false when the option is not this extension's.</summary>
    internal abstract bool Parse(XtMatch info, string option, bool invert, ArgReader args);

    /// <summary>Checks after the whole rule is read (x6_fcheck / final_check).</summary>
    internal virtual void FinalCheck(XtMatch info, Rule rule, ArgReader args) { }

    /// <summary>Options as iptables-save prints them, each with a leading space (after " -m name").</summary>
    internal abstract void Save(XtMatch info, StringBuilder sb);

    /// <summary>The text iptables -L prints for this match, with a leading space.</summary>
    internal abstract void List(XtMatch info, StringBuilder sb);
}

/// <summary>An extension whose kernel half is <typeparamref name="T"/>: the untyped entry points cast once.</summary>
public abstract class XtMatchExtension<T> : XtMatchExtension where T : XtMatch, new()
{
    internal sealed override XtMatch Create()
    {
        var m = new T { Extension = this };
        Init(m);
        return m;
    }

    internal virtual void Init(T info) { }
    internal sealed override bool Parse(XtMatch info, string option, bool invert, ArgReader args) => Parse((T)info, option, invert, args);
    internal sealed override void FinalCheck(XtMatch info, Rule rule, ArgReader args) => FinalCheck((T)info, rule, args);
    internal sealed override void Save(XtMatch info, StringBuilder sb) => Save((T)info, sb);
    internal sealed override void List(XtMatch info, StringBuilder sb) => List((T)info, sb);

    internal abstract bool Parse(T info, string option, bool invert, ArgReader args);
    internal virtual void FinalCheck(T info, Rule rule, ArgReader args) { }
    internal abstract void Save(T info, StringBuilder sb);
    internal abstract void List(T info, StringBuilder sb);
}
