using Softnet.Netfilter.Xtables;

namespace Softnet.Netfilter;

/// <summary>
/// A run of consecutive rules of one chain, each keyed on an exact destination address and/or an exact
/// protocol + destination port, with only side-effect-free matches. Evaluated by lookup: the rules whose
/// keys fit the packet are the only ones that can match, so the first of them that fully matches is the
/// rule the linear walk of ipt_do_table would stop at. Keys only pre-filter; every candidate is checked in
/// full, so a key needs to be necessary for a match, not sufficient.
/// </summary>
public sealed class IndexedRun
{
    internal const int KindDst = 0, KindDstProto = 1, KindDstProtoPort = 2, KindProtoPort = 3;

    /// <summary>First rule index of the run in its chain.</summary>
    public int Start { get; }
    /// <summary>One past the last rule index of the run.</summary>
    public int End { get; }
    /// <summary>Distinct keys in the lookup.</summary>
    public int KeyCount => _map.Count;

    private readonly Dictionary<ulong, int[]> _map;
    private readonly int _kinds;
    private readonly Rule[] _rules;

    internal IndexedRun(Rule[] rules, int start, int end, Dictionary<ulong, int[]> map, int kinds)
    {
        _rules = rules;
        Start = start;
        End = end;
        _map = map;
        _kinds = kinds;
    }

    internal static ulong Key(int kind, uint dst, byte proto, ushort port)
        => ((ulong)kind << 56) | ((ulong)dst << 24) | ((ulong)proto << 16) | port;

    /// <summary>
    /// Index of the first rule in [from, End) that matches the packet, or End. Candidates from the (up to four)
    /// key shapes are checked in any order — their matches are pure — and the smallest matching index wins.
    /// </summary>
    internal int Next(ref PacketContext p, int from, NetfilterTables t, HookPoint hook)
    {
        int best = End;
        t.RulesVisited++;
        if ((_kinds & (1 << KindDstProtoPort)) != 0) best = Scan(Key(KindDstProtoPort, p.Dst, p.Protocol, p.DstPort), from, best, ref p, t, hook);
        if ((_kinds & (1 << KindDst)) != 0) best = Scan(Key(KindDst, p.Dst, 0, 0), from, best, ref p, t, hook);
        if ((_kinds & (1 << KindDstProto)) != 0) best = Scan(Key(KindDstProto, p.Dst, p.Protocol, 0), from, best, ref p, t, hook);
        if ((_kinds & (1 << KindProtoPort)) != 0) best = Scan(Key(KindProtoPort, 0, p.Protocol, p.DstPort), from, best, ref p, t, hook);
        return best;
    }

    private int Scan(ulong key, int from, int best, ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (!_map.TryGetValue(key, out var list)) return best;
        foreach (int i in list)
        {
            if (i < from) continue;
            if (i >= best) break;
            t.RulesVisited++;
            var r = _rules[i];
            if (r.IpMatches(ref p) && NetfilterTables.AllMatch(r.MatchArray, ref p, t, hook)) return i;
            if (p.HotDrop) return i;
        }
        return best;
    }
}

/// <summary>
/// Compiles chains so that long runs of kube-proxy style rules (KUBE-SERVICES: "-d VIP/32 -p tcp --dport P
/// -j KUBE-SVC-…", KUBE-NODEPORTS: "-p tcp --dport P -j …") cost one hash lookup instead of a linear scan,
/// with the same first-match result and the same per-rule counters. Rules outside runs stay linear.
/// </summary>
public static class ChainCompiler
{
    /// <summary>Runs shorter than this stay linear: a short scan is cheaper than a lookup.</summary>
    public const int DefaultMinRun = 8;

    /// <summary>Builds the indexed runs of every chain of the table; returns how many. minRun &lt;= 0 clears.</summary>
    public static int Compile(IptTable table, int minRun = DefaultMinRun)
    {
        int runs = 0;
        foreach (var c in table.Chains) runs += Compile(c, minRun);
        return runs;
    }

    /// <summary>Removes every index: the table evaluates strictly linearly again.</summary>
    public static void Clear(IptTable table) => Compile(table, 0);

    private static int Compile(Chain chain, int minRun)
    {
        var rules = chain.RuleArray;
        foreach (var r in rules) r.Run = null;
        chain.RunArray = Array.Empty<IndexedRun>();
        if (minRun <= 0) return 0;
        var runs = new List<IndexedRun>();
        int i = 0;
        while (i < rules.Length)
        {
            if (!TryKey(rules[i], out _)) { i++; continue; }
            int start = i;
            while (i < rules.Length && TryKey(rules[i], out _)) i++;
            if (i - start < Math.Max(1, minRun)) continue;
            var lists = new Dictionary<ulong, List<int>>();
            int kinds = 0;
            for (int k = start; k < i; k++)
            {
                TryKey(rules[k], out ulong key);
                kinds |= 1 << (int)(key >> 56);
                if (!lists.TryGetValue(key, out var l)) lists[key] = l = new List<int>(1);
                l.Add(k);
            }
            var map = new Dictionary<ulong, int[]>(lists.Count);
            foreach (var (key, l) in lists) map[key] = l.ToArray();
            var run = new IndexedRun(rules, start, i, map, kinds);
            for (int k = start; k < i; k++) rules[k].Run = run;
            runs.Add(run);
        }
        chain.RunArray = runs.ToArray();
        return runs.Count;
    }

    /// <summary>
    /// The lookup key of a rule, when it has one: an exact, non-inverted destination address and/or exact
    /// protocol + destination port (-m tcp/udp --dport P), and no match with side effects (-m statistic).
    /// </summary>
    internal static bool TryKey(Rule r, out ulong key)
    {
        key = 0;
        foreach (var m in r.Matches)
            if (!m.IsPure) return false;
        bool hasDst = r.DstMask == 0xFFFFFFFF && !r.InvDst;
        bool hasProto = r.Protocol != 0 && !r.InvProtocol;
        bool hasPort = false;
        ushort port = 0;
        if (hasProto)
        {
            foreach (var m in r.Matches)
            {
                if (m is PortsMatch pm && r.Protocol == pm.L4Protocol && pm.ExactDstPort(out port)) { hasPort = true; break; }
            }
        }
        if (hasDst && hasPort) key = IndexedRun.Key(IndexedRun.KindDstProtoPort, r.Dst, r.Protocol, port);
        else if (hasDst && hasProto) key = IndexedRun.Key(IndexedRun.KindDstProto, r.Dst, r.Protocol, 0);
        else if (hasDst) key = IndexedRun.Key(IndexedRun.KindDst, r.Dst, 0, 0);
        else if (hasPort) key = IndexedRun.Key(IndexedRun.KindProtoPort, 0, r.Protocol, port);
        else return false;
        return true;
    }
}
