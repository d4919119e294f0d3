using System.Text;
using Softnet.Netfilter.Xtables;

namespace Softnet.Netfilter;

/// <summary>What a rule does once it matches.</summary>
public enum RuleAction : byte
{
    /// <summary>No -j: the rule only counts.</summary>
    None,
    Accept,
    Drop,
    Return,
    Jump,
    Goto,
    /// <summary>An extension target (LOG, MARK, DNAT, ...).</summary>
    Target,
}

/// <summary>One rule: the ipt_ip part (addresses, interfaces, protocol, fragment), matches and a target. An ip6tables
/// rule (<see cref="Family"/> IPv6) keeps its addresses in <see cref="Src6"/> / <see cref="Dst6"/> (struct ip6t_ip6).</summary>
public sealed class Rule
{
    public uint Src, SrcMask, Dst, DstMask;
    /// <summary>The rule's family: IPv4 (ipt_entry) or IPv6 (ip6t_entry).</summary>
    public NfProto Family = NfProto.Ipv4;
    /// <summary>ip6t_ip6 addresses and masks (IPv6 rules only).</summary>
    public UInt128 Src6, Src6Mask, Dst6, Dst6Mask;
    public bool InvSrc, InvDst;
    public string InInterface = "", OutInterface = "";
    public bool InvIn, InvOut;
    public byte Protocol;
    public bool InvProtocol;
    public bool Fragment, InvFragment;
    public List<XtMatch> Matches { get; } = new();
    public RuleAction Action;
    public string? ChainTarget;
    public XtTarget? Target;
    public long Packets, Bytes;
    /// <summary>Line in the source file (0 when built in code).</summary>
    public int Line;

    internal Chain? JumpChain;
    internal XtMatch[] MatchArray = Array.Empty<XtMatch>();
    /// <summary>The indexed run this rule belongs to, if the chain compiler put it in one.</summary>
    internal IndexedRun? Run;

    /// <summary>ip_packet_match: the fixed header fields of the rule.</summary>
    internal bool IpMatches(ref PacketContext p)
    {
        if ((((p.Src & SrcMask) != Src)) ^ InvSrc) return false;
        if ((((p.Dst & DstMask) != Dst)) ^ InvDst) return false;
        if (InInterface.Length != 0 && !IfaceMatch(InInterface, p.InInterface) ^ InvIn) return false;
        if (OutInterface.Length != 0 && !IfaceMatch(OutInterface, p.OutInterface) ^ InvOut) return false;
        if (Protocol != 0 && ((p.Protocol != Protocol) ^ InvProtocol)) return false;
        if (Fragment && (!p.IsFragment ^ InvFragment)) return false;
        return true;
    }

    /// <summary>ip6_packet_match: addresses, interfaces and the upper-layer protocol (ipv6_find_hdr's, which
    /// <see cref="PacketContext.FromIpv6"/> put in <see cref="PacketContext.Protocol"/>); "-p all" matches anything.</summary>
    internal bool Ip6Matches(ref PacketContext p)
    {
        if (((p.Src6 & Src6Mask) != Src6) ^ InvSrc) return false;
        if (((p.Dst6 & Dst6Mask) != Dst6) ^ InvDst) return false;
        if (InInterface.Length != 0 && !IfaceMatch(InInterface, p.InInterface) ^ InvIn) return false;
        if (OutInterface.Length != 0 && !IfaceMatch(OutInterface, p.OutInterface) ^ InvOut) return false;
        if (Protocol != 0)
        {
            if (p.Protocol == Protocol) return !InvProtocol;
            if (!InvProtocol) return false;
        }
        return true;
    }

    /// <summary>Interface names compare exactly, or by prefix when the rule name ends in '+'.</summary>
    private static bool IfaceMatch(string rule, string? dev)
    {
        dev ??= "";
        if (rule[^1] == '+') return dev.AsSpan().StartsWith(rule.AsSpan(0, rule.Length - 1), StringComparison.Ordinal);
        return string.Equals(rule, dev, StringComparison.Ordinal);
    }

    /// <summary>The rule as iptables-save prints it after "-A CHAIN".</summary>
    public string Render()
    {
        var sb = new StringBuilder();
        IptablesSave.AppendRuleSpec(sb, this);
        return sb.ToString();
    }
}

/// <summary>A chain: built-in (with a policy and policy counters) or user-defined.</summary>
public sealed class Chain
{
    public string Name { get; }
    public bool BuiltIn { get; }
    /// <summary>Policy of a built-in chain (Accept or Drop).</summary>
    public Verdict Policy { get; set; } = Verdict.Accept;
    public long PolicyPackets, PolicyBytes;
    public List<Rule> Rules { get; } = new();
    /// <summary>Hooks this chain is reachable from (bit per HookPoint), computed at load.</summary>
    public int HookMask { get; internal set; }

    internal Rule[] RuleArray = Array.Empty<Rule>();
    internal IndexedRun[] RunArray = Array.Empty<IndexedRun>();

    /// <summary>Runs of rules the chain compiler evaluates by lookup instead of one by one.</summary>
    public IReadOnlyList<IndexedRun> IndexedRuns => RunArray;

    public Chain(string name, bool builtIn)
    {
        Name = name;
        BuiltIn = builtIn;
    }

    /// <summary>Number of rules jumping or going to this chain (the "references" of iptables -L).</summary>
    public int References { get; internal set; }
}

/// <summary>One table (raw, mangle, nat, filter, security) with its chains.</summary>
public sealed class IptTable
{
    public TableKind Kind { get; }
    /// <summary>IPv4 (iptables) or IPv6 (ip6tables).</summary>
    public NfProto Family { get; }
    public string Name => TableNames.Name(Kind);
    /// <summary>Built-in chains in hook order, then user chains in the order they were declared.</summary>
    public List<Chain> Chains { get; } = new();
    internal readonly Chain?[] HookChains = new Chain?[5];

    public IptTable(TableKind kind, NfProto family = NfProto.Ipv4)
    {
        Kind = kind;
        Family = family;
        foreach (var hook in TableNames.BuiltinHooks(kind))
        {
            var c = new Chain(TableNames.HookChainName(hook), true);
            c.HookMask = 1 << (int)hook;
            Chains.Add(c);
            HookChains[(int)hook] = c;
        }
    }

    private Dictionary<string, int>? _byName;
    private int _byNameCount = -1;

    /// <summary>Chain by name; a name index keeps loading of rulesets with tens of thousands of chains linear.</summary>
    public Chain? GetChain(string name)
    {
        if (_byName == null || _byNameCount != Chains.Count) Reindex();
        if (!_byName!.TryGetValue(name, out int i)) return null;
        if (i < Chains.Count && Chains[i].Name == name) return Chains[i];
        Reindex();
        return _byName.TryGetValue(name, out i) ? Chains[i] : null;
    }

    private void Reindex()
    {
        // Chains are only appended while loading: index the new ones; anything else rebuilds.
        int from = _byName != null && Chains.Count > _byNameCount ? _byNameCount : 0;
        if (from == 0) _byName = new Dictionary<string, int>(Chains.Count, StringComparer.Ordinal);
        for (int i = from; i < Chains.Count; i++) _byName!.TryAdd(Chains[i].Name, i);
        _byNameCount = Chains.Count;
    }

    public Chain? HookChain(HookPoint hook) => HookChains[(int)hook];

    /// <summary>Resets every rule and policy counter to zero (iptables -Z).</summary>
    public void ZeroCounters()
    {
        foreach (var c in Chains)
        {
            c.PolicyPackets = c.PolicyBytes = 0;
            foreach (var r in c.Rules) r.Packets = r.Bytes = 0;
        }
    }

    /// <summary>Freezes the lists into arrays, resolves jumps and reference counts. Called after loading.</summary>
    internal void Compile()
    {
        foreach (var c in Chains) c.References = 0;
        foreach (var c in Chains)
        {
            foreach (var r in c.Rules)
            {
                r.MatchArray = r.Matches.Where(m => !m.AlwaysMatches).ToArray();
                if (r.Action is RuleAction.Jump or RuleAction.Goto)
                {
                    r.JumpChain = GetChain(r.ChainTarget!) ?? throw new InvalidOperationException($"chain {r.ChainTarget} not found");
                    r.JumpChain.References++;
                }
            }
            c.RuleArray = c.Rules.ToArray();
        }
        // The lookups key on IPv4 addresses; ip6tables tables walk linearly, as ip6t_do_table does.
        if (Family == NfProto.Ipv4) ChainCompiler.Compile(this);
    }
}

/// <summary>Table and chain names and which hooks each table registers (iptable_*.c valid_hooks).</summary>
public static class TableNames
{
    public static string Name(TableKind k) => k switch
    {
        TableKind.Raw => "raw",
        TableKind.Mangle => "mangle",
        TableKind.Nat => "nat",
        TableKind.Filter => "filter",
        _ => "security",
    };

    public static bool TryParse(string name, out TableKind kind)
    {
        switch (name)
        {
            case "raw": kind = TableKind.Raw; return true;
            case "mangle": kind = TableKind.Mangle; return true;
            case "nat": kind = TableKind.Nat; return true;
            case "filter": kind = TableKind.Filter; return true;
            case "security": kind = TableKind.Security; return true;
            default: kind = default; return false;
        }
    }

    public static HookPoint[] BuiltinHooks(TableKind k) => k switch
    {
        TableKind.Raw => new[] { HookPoint.PreRouting, HookPoint.LocalOut },
        TableKind.Mangle => new[] { HookPoint.PreRouting, HookPoint.LocalIn, HookPoint.Forward, HookPoint.LocalOut, HookPoint.PostRouting },
        TableKind.Nat => new[] { HookPoint.PreRouting, HookPoint.LocalIn, HookPoint.LocalOut, HookPoint.PostRouting },
        _ => new[] { HookPoint.LocalIn, HookPoint.Forward, HookPoint.LocalOut },
    };

    public static string HookChainName(HookPoint h) => h switch
    {
        HookPoint.PreRouting => "PREROUTING",
        HookPoint.LocalIn => "INPUT",
        HookPoint.Forward => "FORWARD",
        HookPoint.LocalOut => "OUTPUT",
        _ => "POSTROUTING",
    };
}
