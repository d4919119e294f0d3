using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>What an extension target tells the table walk (XT_CONTINUE or an absolute verdict).</summary>
public enum TargetResult : byte
{
    Continue,
    Accept,
    Drop,
}

/// <summary>
/// Kernel half of a target extension (struct xt_target + the per-rule info blob): the rule's target data,
/// the function run on a matching packet, and checkentry. Points back to its <see cref="XtTargetExtension"/>.
/// </summary>
public abstract class XtTarget
{
    /// <summary>The userspace half that created this instance.</summary>
    public XtTargetExtension Extension { get; internal set; } = null!;

    /// <summary>Name after -j in iptables-save.</summary>
    public string Name => Extension.Name;

    /// <summary>Userspace bookkeeping while the rule is parsed: the x6 options seen (libxtables' tflags).</summary>
    internal uint OptionFlags;

    internal abstract TargetResult Execute(ref PacketContext p, NetfilterTables tables, HookPoint hook);

    /// <summary>Hooks the kernel allows this target from (xt_target.hooks), bit per HookPoint.</summary>
    internal virtual int ValidHooks => XtHooks.All;

    /// <summary>The only table this target may be used in (xt_target.table), or null.</summary>
    internal virtual TableKind? OnlyTable => null;

    /// <summary>The kernel's checkentry at table commit: null when fine, else the reason it refuses the rule.</summary>
    internal virtual string? CheckEntry(in XtCheck check) => null;

    /// <summary>The target needs conntrack in its namespace (nf_ct_netns_get in its checkentry).</summary>
    internal virtual bool UsesConntrack => false;
}

/// <summary>
/// Userspace half of a target extension (libxt_NAME.c): option parsing, final check and printing.
/// Found by <see cref="XtRegistry"/> by name.
/// </summary>
public abstract class XtTargetExtension
{
    /// <summary>Name after -j, and as iptables-save prints it.</summary>
    public abstract string Name { get; }

    /// <summary>Other names -j accepts for this extension.</summary>
    public virtual IReadOnlyList<string> Aliases => Array.Empty<string>();

    /// <summary>The family the extension registers for (xt_target.family): IPv4 unless it overrides it, NFPROTO_UNSPEC
    /// for a target that works on both families.</summary>
    public virtual NfProto Family => NfProto.Ipv4;

    /// <summary>Name in the target column of iptables -L.</summary>
    public virtual string ListName => Name;

    internal abstract XtTarget Create();
    internal abstract bool Parse(XtTarget info, string option, bool invert, ArgReader args);
    internal virtual void FinalCheck(XtTarget info, Rule rule, ArgReader args) { }
    internal abstract void Save(XtTarget info, StringBuilder sb);
    internal abstract void List(XtTarget info, StringBuilder sb);
}

/// <summary>A target extension whose kernel half is <typeparamref name="T"/>.</summary>
public abstract class XtTargetExtension<T> : XtTargetExtension where T : XtTarget, new()
{
    internal sealed override XtTarget Create()
    {
        var t = new T { Extension = this };
        Init(t);
        return t;
    }

    internal virtual void Init(T info) { }
    internal sealed override bool Parse(XtTarget info, string option, bool invert, ArgReader args) => Parse((T)info, option, invert, args);
    internal sealed override void FinalCheck(XtTarget info, Rule rule, ArgReader args) => FinalCheck((T)info, rule, args);
    internal sealed override void Save(XtTarget info, StringBuilder sb) => Save((T)info, sb);
    internal sealed override void List(XtTarget info, StringBuilder sb) => List((T)info, sb);

    internal abstract bool Parse(T info, string option, bool invert, ArgReader args);
    internal virtual void FinalCheck(T info, Rule rule, ArgReader args) { }
    internal abstract void Save(T info, StringBuilder sb);
    internal abstract void List(T info, StringBuilder sb);
}
