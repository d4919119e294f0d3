using System.Globalization;
using System.Text;
using Softnet.Netfilter.Xtables;

namespace Softnet.Netfilter;

/// <summary>Reads the tokens of one rule line and builds errors that name file and line.</summary>
internal sealed class ArgReader
{
    private readonly List<string> _tokens;
    private readonly string _file;
    private readonly int _line;
    public int Position;

    public ArgReader(List<string> tokens, string file, int line)
    {
        _tokens = tokens;
        _file = file;
        _line = line;
    }

    /// <summary>The family the rule is parsed for (ip6tables: IPv6), for options that take addresses.</summary>
    public NfProto Family { get; init; } = NfProto.Ipv4;

    public bool AtEnd => Position >= _tokens.Count;
    public string Peek() => _tokens[Position];
    public string Take() => _tokens[Position++];

    public string Next(string option)
        => Position < _tokens.Count ? _tokens[Position++] : throw Error($"option \"{option}\" requires an argument");

    public IptablesParseException Error(string reason) => new(_file, _line, reason);
}

/// <summary>
/// Parses iptables-save output the way iptables-restore does (iptables/iptables-restore.c + xtables option
/// parsing): "*table", ":CHAIN POLICY [p:b]", "-A/-I/-N/-P", optional "[p:b]" counter prefixes, "COMMIT",
/// '#' comments. Any error rejects the whole input with file:line and the reason.
/// </summary>
public static class IptablesSaveParser
{
    public static NetfilterTables ParseFile(string path, NetfilterTables? into = null) => Parse(File.ReadAllText(path), path, into);

    /// <summary>Parses into <paramref name="into"/> (whose ipsets the rules may reference) or a new instance.</summary>
    public static NetfilterTables Parse(string text, string fileName = "<input>", NetfilterTables? into = null)
    {
        var result = into ?? new NetfilterTables();
        var family = result.Family;
        IptTable? table = null;
        var seenTables = new HashSet<TableKind>();
        int tableLine = 0;
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            int lineNo = i + 1;
            string line = lines[i].TrimEnd('\r').Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            IptablesParseException Err(string m) => new(fileName, lineNo, m);

            if (line[0] == '*')
            {
                if (table != null) throw Err($"table '{table.Name}' was not committed before '{line}' (COMMIT expected)");
                string name = line[1..].Trim();
                if (!TableNames.TryParse(name, out var kind)) throw Err($"unknown table '{name}'");
                if (!seenTables.Add(kind)) throw Err($"table '{name}' appears twice");
                table = new IptTable(kind, family);
                tableLine = lineNo;
                continue;
            }
            if (line == "COMMIT")
            {
                if (table == null) throw Err("COMMIT without a table (missing '*table' line)");
                Finish(table, fileName, result);
                result.SetTable(table);
                table = null;
                continue;
            }
            if (table == null) throw Err($"no table specified (expected '*table' before '{Truncate(line)}')");

            if (line[0] == ':')
            {
                var parts = line[1..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length < 2) throw Err("chain line needs a name and a policy");
                string chainName = parts[0];
                if (chainName.Length > 28) throw Err($"chain name '{chainName}' is too long (max 28 characters)");
                var (pk, by) = parts.Length >= 3 ? ParseCounters(parts[2], Err) : (0L, 0L);
                var existing = table.GetChain(chainName);
                if (parts[1] == "-")
                {
                    if (existing != null && existing.BuiltIn) throw Err($"built-in chain '{chainName}' needs a policy");
                    if (existing != null) throw Err($"chain '{chainName}' already exists");
                    if (XtRegistry.FindTarget(chainName, family) != null || chainName is "ACCEPT" or "DROP" or "RETURN" or "QUEUE")
                        throw Err($"chain name '{chainName}' clashes with a target name");
                    table.Chains.Add(new Chain(chainName, false));
                }
                else
                {
                    if (existing == null || !existing.BuiltIn) throw Err($"can't set policy '{parts[1]}' on '{chainName}': not a built-in chain of table '{table.Name}'");
                    existing.Policy = parts[1] switch
                    {
                        "ACCEPT" => Verdict.Accept,
                        "DROP" => Verdict.Drop,
                        _ => throw Err($"can't set policy '{parts[1]}' on '{chainName}': bad policy name"),
                    };
                    existing.PolicyPackets = pk;
                    existing.PolicyBytes = by;
                }
                continue;
            }

            var tokens = Tokenize(line, fileName, lineNo);
            long cPk = 0, cBy = 0;
            if (tokens[0].StartsWith('['))
            {
                (cPk, cBy) = ParseCounters(tokens[0], Err);
                tokens.RemoveAt(0);
                if (tokens.Count == 0) throw Err("counters without a rule");
            }
            var args = new ArgReader(tokens, fileName, lineNo) { Family = family };
            string cmd = args.Take();
            switch (cmd)
            {
                case "-A" or "--append" or "-I" or "--insert":
                {
                    string chainName = args.Next(cmd);
                    var chain = table.GetChain(chainName) ?? throw Err($"chain '{chainName}' does not exist in table '{table.Name}'");
                    int insertAt = 0;
                    if (cmd is "-I" or "--insert" && !args.AtEnd && int.TryParse(args.Peek(), NumberStyles.None, CultureInfo.InvariantCulture, out int pos))
                    {
                        args.Take();
                        if (pos < 1 || pos > chain.Rules.Count + 1) throw Err($"index of insertion too big");
                        insertAt = pos - 1;
                    }
                    // -4 / -6 (xshared's do_parse in restore mode): a rule marked for the other family is skipped whole,
                    // unparsed; the own family's flag is ignored.
                    string other = family == NfProto.Ipv6 ? "-4" : "-6", otherLong = family == NfProto.Ipv6 ? "--ipv4" : "--ipv6";
                    if (tokens.Skip(args.Position).Any(t => t == other || t == otherLong)) break;
                    var rule = ParseRule(args, table, chain);
                    rule.Line = lineNo;
                    if (cPk != 0 || cBy != 0) { rule.Packets = cPk; rule.Bytes = cBy; }
                    if (cmd is "-A" or "--append") chain.Rules.Add(rule);
                    else chain.Rules.Insert(insertAt, rule);
                    break;
                }
                case "-N" or "--new-chain":
                {
                    string chainName = args.Next(cmd);
                    if (table.GetChain(chainName) != null) throw Err($"chain '{chainName}' already exists");
                    table.Chains.Add(new Chain(chainName, false));
                    break;
                }
                case "-P" or "--policy":
                {
                    string chainName = args.Next(cmd);
                    string pol = args.Next(cmd);
                    var chain = table.GetChain(chainName);
                    if (chain == null || !chain.BuiltIn) throw Err($"can't set policy on '{chainName}': not a built-in chain");
                    chain.Policy = pol == "ACCEPT" ? Verdict.Accept : pol == "DROP" ? Verdict.Drop : throw Err($"bad policy name '{pol}'");
                    break;
                }
                default:
                    throw Err($"unknown command '{cmd}'");
            }
        }
        if (table != null) throw new IptablesParseException(fileName, lines.Length, $"COMMIT expected for table '{table.Name}' opened at line {tableLine}");
        return result;
    }

    private static string Truncate(string s) => s.Length > 40 ? s[..40] + "..." : s;

    private static (long, long) ParseCounters(string s, Func<string, IptablesParseException> err)
    {
        if (s.Length < 5 || s[0] != '[' || s[^1] != ']') throw err($"bad counters '{s}'");
        var inner = s[1..^1].Split(':');
        if (inner.Length != 2 || !long.TryParse(inner[0], NumberStyles.None, CultureInfo.InvariantCulture, out long p)
            || !long.TryParse(inner[1], NumberStyles.None, CultureInfo.InvariantCulture, out long b))
            throw err($"bad counters '{s}'");
        return (p, b);
    }

    /// <summary>Splits like iptables-restore's add_param_to_argv: whitespace separates, double quotes group,
    /// a backslash escapes the next character inside quotes.</summary>
    internal static List<string> Tokenize(string line, string file, int lineNo)
    {
        var tokens = new List<string>();
        var cur = new StringBuilder();
        bool inQuote = false, have = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (inQuote)
            {
                if (c == '\\' && i + 1 < line.Length) { cur.Append(line[++i]); continue; }
                if (c == '"') { inQuote = false; continue; }
                cur.Append(c);
                continue;
            }
            if (c == '"') { inQuote = true; have = true; continue; }
            if (c is ' ' or '\t')
            {
                if (have) { tokens.Add(cur.ToString()); cur.Clear(); have = false; }
                continue;
            }
            cur.Append(c);
            have = true;
        }
        if (inQuote) throw new IptablesParseException(file, lineNo, "unterminated quote");
        if (have) tokens.Add(cur.ToString());
        return tokens;
    }

    private static Rule ParseRule(ArgReader a, IptTable table, Chain chain)
    {
        var family = table.Family;
        bool v6 = family == NfProto.Ipv6;
        var rule = new Rule { SrcMask = 0, DstMask = 0, Family = family };
        bool hasSrc = false, hasDst = false, hasIn = false, hasOut = false, hasProto = false;
        bool invert = false;
        bool inTarget = false;
        XtMatch? implicitProto = null;
        while (!a.AtEnd)
        {
            string tok = a.Take();
            if (tok == "!")
            {
                if (invert) throw a.Error("multiple consecutive ! not allowed");
                invert = true;
                continue;
            }
            bool inv = invert;
            invert = false;
            switch (tok)
            {
                case "-s" or "--source" or "--src":
                    if (hasSrc) throw a.Error("multiple -s flags not allowed");
                    if (v6) (rule.Src6, rule.Src6Mask) = Ip6Addr.ParseMasked(a.Next(tok), a);
                    else (rule.Src, rule.SrcMask) = Opt.AddressMask(a.Next(tok), a);
                    rule.InvSrc = inv; hasSrc = true; continue;
                case "-d" or "--destination" or "--dst":
                    if (hasDst) throw a.Error("multiple -d flags not allowed");
                    if (v6) (rule.Dst6, rule.Dst6Mask) = Ip6Addr.ParseMasked(a.Next(tok), a);
                    else (rule.Dst, rule.DstMask) = Opt.AddressMask(a.Next(tok), a);
                    rule.InvDst = inv; hasDst = true; continue;
                case "-i" or "--in-interface":
                    if (hasIn) throw a.Error("multiple -i flags not allowed");
                    rule.InInterface = Iface(a.Next(tok), a); rule.InvIn = inv; hasIn = true; continue;
                case "-o" or "--out-interface":
                    if (hasOut) throw a.Error("multiple -o flags not allowed");
                    rule.OutInterface = Iface(a.Next(tok), a); rule.InvOut = inv; hasOut = true; continue;
                case "-p" or "--protocol":
                    if (hasProto) throw a.Error("multiple -p flags not allowed");
                    rule.Protocol = Protocols.Parse(a.Next(tok), a);
                    if (rule.Protocol == 0 && inv) throw a.Error("rule would never match protocol");
                    rule.InvProtocol = inv; hasProto = true; continue;
                case "-f" or "--fragment" when !v6:
                    if (rule.Fragment) throw a.Error("multiple -f flags not allowed");
                    rule.Fragment = true; rule.InvFragment = inv; continue;
                case "-m" or "--match":
                {
                    if (inv) throw a.Error("unexpected ! before -m");
                    string name = a.Next(tok);
                    var ext = XtRegistry.FindMatch(name, family) ?? throw a.Error($"Couldn't load match `{name}':No such file or directory");
                    rule.Matches.Add(ext.Create());
                    inTarget = false;
                    continue;
                }
                case "-j" or "--jump" or "-g" or "--goto":
                {
                    if (inv) throw a.Error("cannot invert -j");
                    if (rule.Action != RuleAction.None) throw a.Error("multiple -j flags not allowed");
                    string name = a.Next(tok);
                    bool isGoto = tok is "-g" or "--goto";
                    switch (name)
                    {
                        case "ACCEPT" when !isGoto: rule.Action = RuleAction.Accept; break;
                        case "DROP" when !isGoto: rule.Action = RuleAction.Drop; break;
                        case "RETURN" when !isGoto: rule.Action = RuleAction.Return; break;
                        default:
                            var userChain = table.GetChain(name);
                            if (userChain != null && !userChain.BuiltIn)
                            {
                                rule.Action = isGoto ? RuleAction.Goto : RuleAction.Jump;
                                rule.ChainTarget = name;
                            }
                            else if (!isGoto && XtRegistry.FindTarget(name, family) is { } targetExt)
                            {
                                rule.Action = RuleAction.Target;
                                rule.Target = targetExt.Create();
                                inTarget = true;
                            }
                            else if (userChain != null) throw a.Error($"cannot jump to built-in chain '{name}'");
                            else if (isGoto) throw a.Error($"goto '{name}': chain does not exist");
                            else throw a.Error($"Chain '{name}' does not exist");
                            break;
                    }
                    continue;
                }
                case "-4" or "--ipv4" when !v6:
                case "-6" or "--ipv6" when v6:
                    if (inv) throw a.Error("unexpected ! flag before --ipv4/--ipv6");
                    continue;
                case "-c" or "--set-counters":
                    rule.Packets = (long)Opt.UInt(a.Next(tok), a, "packet counter");
                    rule.Bytes = (long)Opt.UInt(a.Next(tok), a, "byte counter");
                    continue;
            }
            if (!tok.StartsWith('-') || tok.Length < 2) throw a.Error($"Bad argument `{tok}'");
            if (inTarget && rule.Target!.Extension.Parse(rule.Target, tok, inv, a)) continue;
            bool taken = false;
            for (int m = rule.Matches.Count - 1; m >= 0 && !taken; m--)
                taken = rule.Matches[m].Extension.Parse(rule.Matches[m], tok, inv, a);
            if (taken) continue;
            // iptables loads the protocol's match implicitly for its options (the "-p tcp --dport" form).
            if (implicitProto == null && !rule.InvProtocol && rule.Protocol != 0
                && XtRegistry.FindMatch(Protocols.ImplicitMatch(rule.Protocol, family), family) is { } protoExt)
            {
                var cand = protoExt.Create();
                if (protoExt.Parse(cand, tok, inv, a))
                {
                    implicitProto = cand;
                    rule.Matches.Add(cand);
                    continue;
                }
            }
            throw a.Error($"unknown option \"{tok}\"");
        }
        if (invert) throw a.Error("trailing '!'");
        foreach (var m in rule.Matches) m.Extension.FinalCheck(m, rule, a);
        rule.Matches.RemoveAll(m => m.Elided);
        rule.Target?.Extension.FinalCheck(rule.Target, rule, a);
        if (chain.BuiltIn)
        {
            if (rule.InInterface.Length != 0 && chain.Name is "OUTPUT" or "POSTROUTING") throw a.Error($"Can't use -i with {chain.Name}");
            if (rule.OutInterface.Length != 0 && chain.Name is "PREROUTING" or "INPUT") throw a.Error($"Can't use -o with {chain.Name}");
        }
        return rule;
    }

    private static string Iface(string s, ArgReader a)
    {
        if (s.Length == 0 || s.Length > 15) throw a.Error($"interface name `{s}' must be shorter than 16 characters");
        if (s.Contains('/') || s.Contains(' ')) throw a.Error($"Invalid interface name `{s}'");
        return s;
    }

    /// <summary>Kernel-side checks done when the table is committed: loops (mark_source_chains), hook and table
    /// restrictions of targets and matches (xt_check_target / xt_check_match).</summary>
    private static void Finish(IptTable table, string file, NetfilterTables tables)
    {
        // Reachability from each hook, with loop detection by DFS colouring.
        var state = new Dictionary<Chain, int>();
        void Visit(Chain c, int hookBit, List<Chain> path, int viaLine)
        {
            c.HookMask |= hookBit;
            if (state.TryGetValue(c, out int s) && s == 1)
                throw new IptablesParseException(file, viaLine, $"loop detected: chain '{c.Name}' is reached from itself ({string.Join(" -> ", path.Select(p => p.Name))} -> {c.Name})");
            // Done in this pass: everything below already carries the hook bit and was checked for loops.
            if (s == 2) return;
            state[c] = 1;
            path.Add(c);
            foreach (var r in c.Rules)
                if (r.Action is RuleAction.Jump or RuleAction.Goto)
                    Visit(table.GetChain(r.ChainTarget!)!, hookBit, path, r.Line);
            path.RemoveAt(path.Count - 1);
            state[c] = 2;
        }
        foreach (var hook in TableNames.BuiltinHooks(table.Kind))
        {
            state.Clear();
            Visit(table.HookChain(hook)!, 1 << (int)hook, new List<Chain>(), 0);
        }
        // Loops among chains no hook reaches are still rejected by the kernel.
        foreach (var c in table.Chains)
            if (c.HookMask == 0) { state.Clear(); Visit(c, 0, new List<Chain>(), 0); }

        foreach (var c in table.Chains)
        {
            foreach (var r in c.Rules)
            {
                if (r.Target is { } t)
                {
                    // xt_check_target refuses these with -EINVAL, which iptables-restore (nf_tables) reports as below.
                    var check = new XtCheck { Tables = tables, Table = table.Kind, HookMask = c.HookMask, Rule = r, Chain = c.Name };
                    if (t.OnlyTable is { } only && only != table.Kind)
                        throw new IptablesParseException(file, r.Line, check.Invalid($"{t.Name} target: only valid in {TableNames.Name(only)} table, not {table.Name}"));
                    int bad = c.HookMask & ~t.ValidHooks;
                    if (bad != 0)
                        throw new IptablesParseException(file, r.Line, check.Invalid($"{t.Name} target: used from hooks {HookList(c.HookMask)}, but only usable from {HookList(t.ValidHooks)}"));
                    // nft_compat hands checkentry the hook of a base chain only (0 in a user chain: nft_target_init / nft_match_init).
                    var baseOnly = check with { HookMask = c.BuiltIn ? c.HookMask : 0 };
                    if (t.CheckEntry(baseOnly) is { } why)
                        throw new IptablesParseException(file, r.Line, why);
                }
                foreach (var m in r.Matches)
                {
                    var check = new XtCheck { Tables = tables, Table = table.Kind, HookMask = c.HookMask, Rule = r, Chain = c.Name };
                    if (m.OnlyTable is { } only && only != table.Kind)
                        throw new IptablesParseException(file, r.Line, check.Invalid($"{m.Name} match: only valid in {TableNames.Name(only)} table, not {table.Name}"));
                    int bad = c.HookMask & ~m.ValidHooks;
                    if (bad != 0)
                        throw new IptablesParseException(file, r.Line, check.Invalid($"{m.Name} match: used from hooks {HookList(c.HookMask)}, but only usable from {HookList(m.ValidHooks)}"));
                    var baseOnly = check with { HookMask = c.BuiltIn ? c.HookMask : 0 };
                    if (m.CheckEntry(baseOnly) is { } why)
                        throw new IptablesParseException(file, r.Line, why);
                }
            }
        }
        table.Compile();
    }

    private static string HookList(int mask)
    {
        var names = new List<string>();
        for (int i = 0; i < 5; i++) if ((mask & (1 << i)) != 0) names.Add(TableNames.HookChainName((HookPoint)i));
        return string.Join('/', names);
    }
}
