using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Netfilter.Xtables;
using Softnet.Telemetry;

namespace Softnet.Netfilter;

/// <summary>Entry points.</summary>
public static class Netfilter
{
    /// <summary>Loads an iptables-save file; throws <see cref="IptablesParseException"/> naming file:line on any error.</summary>
    public static NetfilterTables LoadIptablesSave(string path) => IptablesSaveParser.ParseFile(path);
}

/// <summary>
/// One namespace's netfilter state: the loaded tables, conntrack and NAT, run in the kernel's hook order
/// (raw -300, conntrack -200, mangle -150, nat DNAT -100, filter 0, security 50, nat SNAT 100, confirm last).
/// Not thread-safe: one instance per worker, like a per-CPU view.
/// </summary>
public sealed partial class NetfilterTables
{
    private readonly IptTable?[] _tables = new IptTable?[5];
    private readonly List<IptTable> _order = new();
    private Chain[] _stackChains = new Chain[16];
    private int[] _stackRules = new int[16];
    private ulong _rng;

    public ConntrackTable Conntrack { get; private set; }
    public NatEngine Nat { get; private set; }
    public INetfilterHost Host { get; set; } = new SimpleHost();
    /// <summary>Run conntrack and NAT in the hooks (the kernel does once a ruleset needs them).</summary>
    public bool ConntrackEnabled { get; set; } = true;
    /// <summary>Receives LOG lines (level, text). Null: LOG only counts.</summary>
    public Action<int, string>? LogSink { get; set; }
    public long LogCount { get; internal set; }
    /// <summary>True when a rule can lengthen a datagram in a hook (TCPMSS inserting the MSS option): callers then pass
    /// the datagram with <see cref="MaxGrowth"/> spare bytes behind it and take <see cref="PacketContext.Length"/> back.</summary>
    public bool MayGrowPackets { get; private set; }
    /// <summary>The most a hook lengthens a datagram (TCPOLEN_MSS).</summary>
    public const int MaxGrowth = 4;
    /// <summary>Packets NFLOG handed to nfnetlink_log (no listener in Softnet: counted only).</summary>
    public long NflogCount { get; internal set; }
    /// <summary>Packets NFQUEUE sent to a queue nobody listens on: freed (no --queue-bypass) or passed on (bypass).</summary>
    public long QueueDropped { get; internal set; }
    public long QueueBypassed { get; internal set; }
    /// <summary>Packets TRACE marked for tracing.</summary>
    public long TraceCount { get; internal set; }
    /// <summary>Rules whose matches were evaluated, plus one per indexed-run lookup: the per-packet cost of the
    /// rule walk independent of timing (what chain compilation keeps flat as rulesets grow).</summary>
    public long RulesVisited;

    /// <summary>Rules are loaded as iptables-legacy loads them (every match an xt_match; -m limit is xt_limit) rather
    /// than as iptables-nft 1.8.9 does (-m limit becomes the native nft limit expression). Set before parsing.</summary>
    public bool IptablesLegacy { get; set; }

    /// <summary>xt_recent's lists of this namespace (-m recent).</summary>
    public RecentTables Recent => _recent ??= new();
    private RecentTables? _recent;
    /// <summary>A -m recent rule made a list.</summary>
    public bool HasRecentLists => _recent is { } r && r.Lists.Any();

    /// <summary>The namespace's ipsets (ip_set's per-netns sets), for -m set and -j SET.</summary>
    public IpsetCollection Ipsets => _ipsets ??= new();
    private IpsetCollection? _ipsets;
    /// <summary>Any set was loaded (ns/NAME/ipset.save).</summary>
    public bool HasIpsets => _ipsets is { Count: > 0 };

    /// <summary>The namespace's nfacct accounting objects (-m nfacct).</summary>
    public NfacctObjects Nfacct => _nfacct ??= new();
    private NfacctObjects? _nfacct;

    /// <summary>xt_hashlimit's tables of this namespace (-m hashlimit).</summary>
    public HashlimitTables Hashlimit => _hashlimit ??= new();
    private HashlimitTables? _hashlimit;

    public NetfilterTables(ConntrackOptions? conntrack = null, ulong seed = 0x2545F4914F6CDD1DUL)
        : this(NfProto.Ipv4, conntrack, seed)
    {
    }

    /// <summary>A namespace's tables of one family: iptables (IPv4) or ip6tables (IPv6, with IPv6 conntrack and NAT66).</summary>
    public NetfilterTables(NfProto family, ConntrackOptions? conntrack = null, ulong seed = 0x2545F4914F6CDD1DUL)
    {
        if (family is not (NfProto.Ipv4 or NfProto.Ipv6)) throw new ArgumentOutOfRangeException(nameof(family));
        Family = family;
        Conntrack = new ConntrackTable(conntrack);
        Nat = new NatEngine(Conntrack, NextRandom);
        Seed(seed);
        if (family == NfProto.Ipv6) RegisterIpv6ConntrackAndNat();
        else RegisterConntrackAndNat();
    }

    /// <summary>NFPROTO_IPV4 (iptables) or NFPROTO_IPV6 (ip6tables): the family rules are parsed and run for.</summary>
    public NfProto Family { get; }

    /// <summary>The IPv4 hook functions of this namespace, by hook and priority.</summary>
    public NfHookTable Hooks { get; } = new();

    /// <summary>Charges each hook function's time to its stage for sampled packets (null: not timed).</summary>
    public StageClock? Clock { get; set; }

    /// <summary>nf_conntrack_l3proto_ipv4 and nf_nat_ipv4_ops: conntrack in at PREROUTING/OUTPUT, confirm last at
    /// INPUT/POSTROUTING; DNAT at PREROUTING/OUTPUT, SNAT at INPUT/POSTROUTING.</summary>
    private void RegisterConntrackAndNat()
    {
        static Verdict In(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt)
            => t.ConntrackEnabled ? t.Conntrack.In(ref p, h, pkt) : Verdict.Accept;
        static Verdict Confirm(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt)
            => t.ConntrackEnabled ? t.Conntrack.Confirm(ref p) : Verdict.Accept;
        static Verdict Nat(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt) => t.NatHook(h, ref p, pkt);
        foreach (var h in new[] { HookPoint.PreRouting, HookPoint.LocalOut })
        {
            Hooks.Register(new NfHookOps(NfProto.Ipv4, h, NfPriority.Conntrack, "nf_conntrack_in", Stage.Conntrack, In));
            Hooks.Register(new NfHookOps(NfProto.Ipv4, h, NfPriority.NatDst, "nf_nat_ipv4_in", Stage.Nat, Nat));
        }
        foreach (var h in new[] { HookPoint.LocalIn, HookPoint.PostRouting })
        {
            Hooks.Register(new NfHookOps(NfProto.Ipv4, h, NfPriority.NatSrc, "nf_nat_ipv4_out", Stage.Nat, Nat));
            Hooks.Register(new NfHookOps(NfProto.Ipv4, h, NfPriority.ConntrackConfirm, "nf_confirm", Stage.Conntrack, Confirm));
        }
    }

    /// <summary>ipt_register_table: a table's base chains become hook functions at the table's priority. The nat
    /// table's chains run inside the NAT hook functions, for a connection's first packet.</summary>
    private void RegisterTable(IptTable t)
    {
        Hooks.Unregister(o => o.Name == (Family == NfProto.Ipv6 ? "ip6table_" : "iptable_") + t.Name);
        if (t.Kind == TableKind.Nat) return;
        var (prio, stage) = t.Kind switch
        {
            TableKind.Raw => (NfPriority.Raw, Stage.Raw),
            TableKind.Mangle => (NfPriority.Mangle, Stage.Mangle),
            TableKind.Filter => (NfPriority.Filter, Stage.Filter),
            _ => (NfPriority.Security, Stage.Security),
        };
        var kind = t.Kind;
        Verdict Run(NetfilterTables tables, HookPoint h, ref PacketContext p, Span<byte> pkt)
        {
            var table = tables._tables[(int)kind];
            return table == null ? Verdict.Accept : tables.Evaluate(table, h, ref p);
        }
        foreach (var h in TableNames.BuiltinHooks(kind))
            Hooks.Register(new NfHookOps(Family, h, prio, (Family == NfProto.Ipv6 ? "ip6table_" : "iptable_") + t.Name, stage, Run));
    }

    /// <summary>Replaces the conntrack table (e.g. to set nf_conntrack_max).</summary>
    public void UseConntrack(ConntrackOptions options)
    {
        bool acct = Conntrack.Accounting, tstamp = Conntrack.Timestamps;
        Conntrack.Release();
        Conntrack = new ConntrackTable(options) { Accounting = acct, Timestamps = tstamp };
        Nat = new NatEngine(Conntrack, NextRandom);
        // IPv6 conntrack reads its sysctls from the table above: its entries stay.
    }

    /// <summary>Seeds the generator behind -m statistic and NAT port choice, for reproducible runs.</summary>
    public void Seed(ulong seed) => _rng = seed == 0 ? 1 : seed;

    /// <summary>xorshift64*: cheap, allocation-free, reproducible.</summary>
    public uint NextRandom()
    {
        _rng ^= _rng >> 12;
        _rng ^= _rng << 25;
        _rng ^= _rng >> 27;
        return (uint)((_rng * 0x2545F4914F6CDD1DUL) >> 32);
    }

    public IReadOnlyList<IptTable> Tables => _order;
    public IptTable? this[TableKind kind] => _tables[(int)kind];

    internal void SetTable(IptTable t)
    {
        var old = _tables[(int)t.Kind];
        if (old != null) _order.Remove(old);
        _tables[(int)t.Kind] = t;
        _order.Add(t);
        RegisterTable(t);
        MayGrowPackets = _order.Any(x => x.Chains.Any(c => c.Rules.Any(r => r.Target is Xtables.TcpmssTarget)));
        int chains = _order.Sum(x => x.Chains.Count) + 1;
        if (_stackChains.Length < chains)
        {
            _stackChains = new Chain[chains];
            _stackRules = new int[chains];
        }
    }

    /// <summary>
    /// Runs every registered hook function of <paramref name="hook"/> in priority order on one packet.
    /// <paramref name="packet"/> is the IPv4 datagram to rewrite for NAT (may be empty: then only the
    /// context changes). On Drop, <see cref="PacketContext.DropReason"/> and <see cref="PacketContext.Reject"/> say why.
    /// </summary>
    public unsafe Verdict Hook(HookPoint hook, ref PacketContext p, Span<byte> packet = default)
    {
        fixed (byte* data = packet)
        {
            p.AttachPacket(data, packet.Length);
            try { return RunHook(hook, ref p, packet); }
            finally { p.AttachPacket(null, 0); }
        }
    }

    private Verdict RunHook(HookPoint hook, ref PacketContext p, Span<byte> packet)
    {
        Nat.SetClock(p.TimestampNs);
        _nat6?.SetClock(p.TimestampNs);
        var ops = Hooks.Entries(hook);
        var clock = Clock;
        for (int i = 0; i < ops.Length; i++)
        {
            var op = ops[i];
            clock?.Begin(op.Stage, StageFrames.Hook((int)hook, Family == NfProto.Ipv6));
            var v = op.Fn(this, hook, ref p, packet);
            clock?.End();
            if (v == Verdict.Drop) return Dropped(ref p);
        }
        return Verdict.Accept;
    }

    /// <summary>A dropped packet takes its unconfirmed conntrack entry with it.</summary>
    private Verdict Dropped(ref PacketContext p)
    {
        if (p.Ct != null && !p.Ct.Confirmed && p.CtInfo != CtInfo.Untracked)
        {
            if (p.Ct.V6 is { } v6) v6.Table.ReleaseUnconfirmed(p.Ct);
            else Conntrack.ReleaseUnconfirmed(p.Ct);
        }
        if (p.DropReason == DropReason.None) p.DropReason = DropReason.NetfilterDrop;
        return Verdict.Drop;
    }

    /// <summary>nf_nat_ipv4_fn / nf_nat_inet_fn: rules only for a connection's first packet, then the binding.</summary>
    private Verdict NatHook(HookPoint hook, ref PacketContext p, Span<byte> packet)
    {
        // The NAT hook functions exist in a namespace once its nat table does (iptable_nat_table_init registers them):
        // without one, no binding is made, not even the null binding that would move a clashing source port.
        var nat = _tables[(int)TableKind.Nat];
        if (!ConntrackEnabled || nat == null) return Verdict.Accept;
        var ct = p.Ct;
        if (ct == null || p.CtInfo is CtInfo.None or CtInfo.Untracked) return Verdict.Accept;
        var manip = hook is HookPoint.PreRouting or HookPoint.LocalOut ? NatManip.Dst : NatManip.Src;
        if (p.CtInfo is CtInfo.Related or CtInfo.RelatedReply && p.Protocol == 1)
            return Nat.IcmpReplyTranslation(ct, p.CtInfo, manip, ref p, packet) ? Verdict.Accept : Verdict.Drop;
        if (p.CtInfo is CtInfo.New or CtInfo.Related or CtInfo.RelatedReply && !NatEngine.Initialized(ct, manip))
        {
            if (nat.HookChain(hook) != null && Evaluate(nat, hook, ref p) == Verdict.Drop) return Verdict.Drop;
            if (!NatEngine.Initialized(ct, manip) && !Nat.AllocNullBinding(ct, manip)) return Verdict.Drop;
        }
        Nat.Packet(ct, p.CtInfo, manip, ref p, packet);
        return Verdict.Accept;
    }

    /// <summary>
    /// ipt_do_table: walk the hook's base chain; jumps push a return point, goto does not, RETURN pops
    /// (or falls to the policy when the stack is empty); counters count packets and IP bytes.
    /// </summary>
    public Verdict Evaluate(IptTable table, HookPoint hook, ref PacketContext p)
    {
        var baseChain = table.HookChain(hook);
        if (baseChain == null) return Verdict.Accept;
        var chain = baseChain;
        var rules = chain.RuleArray;
        int i = 0, sp = 0;
        bool v6 = table.Family == NfProto.Ipv6;
        while (true)
        {
            if (i >= rules.Length)
            {
                if (chain.BuiltIn || sp == 0) return Policy(table, hook, baseChain, ref p);
                sp--;
                chain = _stackChains[sp];
                rules = chain.RuleArray;
                i = _stackRules[sp];
                continue;
            }
            var r = rules[i];
            if (r.Run is { } run)
            {
                // A compiled run: one lookup finds the first rule at or after i that matches.
                int j = run.Next(ref p, i, this, hook);
                if (p.HotDrop) { p.DropReason = DropReason.NetfilterDrop; return Verdict.Drop; }
                if (j >= run.End) { i = run.End; continue; }
                i = j;
                r = rules[i];
            }
            else
            {
                RulesVisited++;
                if (!(v6 ? r.Ip6Matches(ref p) : r.IpMatches(ref p)) || !AllMatch(r.MatchArray, ref p, this, hook))
                {
                    // A match that set par->hotdrop ends the walk with NF_DROP (ipt_do_table).
                    if (p.HotDrop) { p.DropReason = DropReason.NetfilterDrop; return Verdict.Drop; }
                    i++;
                    continue;
                }
            }
            r.Packets++;
            r.Bytes += p.Length;
            if (p.TraceId != 0) Telemetry.PacketTracer.Current?.NfRule(p.TraceId, table, hook, chain, i, r);
            switch (r.Action)
            {
                case RuleAction.None: i++; continue;
                case RuleAction.Accept: return Verdict.Accept;
                case RuleAction.Drop: p.DropReason = DropReason.NetfilterDrop; return Verdict.Drop;
                case RuleAction.Return:
                    if (sp == 0) return Policy(table, hook, baseChain, ref p);
                    sp--;
                    chain = _stackChains[sp];
                    rules = chain.RuleArray;
                    i = _stackRules[sp];
                    continue;
                case RuleAction.Jump:
                    _stackChains[sp] = chain;
                    _stackRules[sp] = i + 1;
                    sp++;
                    chain = r.JumpChain!;
                    rules = chain.RuleArray;
                    i = 0;
                    continue;
                case RuleAction.Goto:
                    chain = r.JumpChain!;
                    rules = chain.RuleArray;
                    i = 0;
                    continue;
                default:
                    switch (r.Target!.Execute(ref p, this, hook))
                    {
                        case TargetResult.Continue: i++; continue;
                        case TargetResult.Accept: return Verdict.Accept;
                        default:
                            if (p.DropReason == DropReason.None) p.DropReason = DropReason.NetfilterDrop;
                            return Verdict.Drop;
                    }
            }
        }
    }

    internal static bool AllMatch(XtMatch[] matches, ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        foreach (var m in matches)
            if (!m.Matches(ref p, t, hook)) return false;
        return true;
    }

    private static Verdict Policy(IptTable table, HookPoint hook, Chain c, ref PacketContext p)
    {
        c.PolicyPackets++;
        c.PolicyBytes += p.Length;
        if (p.TraceId != 0) Telemetry.PacketTracer.Current?.NfPolicy(p.TraceId, table, hook, c);
        if (c.Policy == Verdict.Drop) p.DropReason = DropReason.NetfilterDrop;
        return c.Policy;
    }
}
