using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m set (xt_set.c set_match_v4): membership of the packet in an ipset.</summary>
public sealed class SetMatch : XtMatch
{
    public const byte CounterNone = 0, CounterEq = 1, CounterNe = 2, CounterLt = 3, CounterGt = 4;
    public string SetName = "";
    /// <summary>src/dst per dimension, in order (true = src).</summary>
    public bool[] Dirs = Array.Empty<bool>();
    public bool Invert, ReturnNomatch, SkipCounterUpdate, SkipSubcounterUpdate;
    public byte PacketsOp, BytesOp;
    public ulong Packets, Bytes;
    internal IpSet? Set;
    internal IpsetTestOpt Opt;

    internal override string? CheckEntry(in XtCheck c)
    {
        Set = c.Tables.Ipsets[SetName];
        if (Set == null) return $"Set {SetName} doesn't exist.";
        int flags = 0;
        for (int i = 0; i < Dirs.Length; i++) if (Dirs[i]) flags |= 1 << i;
        Opt = new IpsetTestOpt
        {
            Dim = Dirs.Length, Flags = flags, ReturnNomatch = ReturnNomatch, SkipCounterUpdate = SkipCounterUpdate,
            SkipSubcounterUpdate = SkipSubcounterUpdate, PacketsOp = PacketsOp, BytesOp = BytesOp, Packets = Packets, Bytes = Bytes,
            MatchCounters = PacketsOp != CounterNone || BytesOp != CounterNone,
        };
        return null;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables tables, HookPoint hook)
        => Set!.Test(ref p, Opt) ^ Invert;
}

/// <summary>Userspace half of -m set (libxt_set.c revision 4; getopt-style options, not x6).</summary>
internal sealed class SetMatchExtension : XtMatchExtension<SetMatch>
{
    public override string Name => "set";

    internal override bool Parse(SetMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--match-set" or "--set":
            {
                if (m.Dirs.Length != 0) throw a.Error("--match-set can be specified only once");
                if (invert) m.Invert = true;
                string name = a.Next(option);
                if (a.AtEnd || a.Peek().StartsWith('-') || a.Peek().StartsWith('!')) throw a.Error("--match-set requires two args.");
                if (name.Length > 31) throw a.Error($"setname `{name}' too long, max 31 characters.");
                m.SetName = name;
                m.Dirs = ParseDirs(a.Take(), a);
                m.OptionFlags = 1;
                return true;
            }
            case "--return-nomatch":
                if (invert) throw a.Error("--return-nomatch flag cannot be inverted");
                m.ReturnNomatch = true;
                return true;
            case "--update-counters": if (invert) m.SkipCounterUpdate = true; return true;
            case "--update-subcounters": if (invert) m.SkipSubcounterUpdate = true; return true;
            case "--packets-eq" or "--packets-lt" or "--packets-gt":
                m.PacketsOp = Counter(option, invert, m.PacketsOp, "packets", a);
                m.Packets = CounterValue(a.Next(option), a);
                return true;
            case "--bytes-eq" or "--bytes-lt" or "--bytes-gt":
                m.BytesOp = Counter(option, invert, m.BytesOp, "bytes", a);
                m.Bytes = CounterValue(a.Next(option), a);
                return true;
        }
        return false;
    }

    private static byte Counter(string option, bool invert, byte current, string what, ArgReader a)
    {
        if (current != SetMatch.CounterNone) throw a.Error($"only one of the --{what}-[eq|lt|gt] is allowed");
        if (option.EndsWith("-eq", StringComparison.Ordinal)) return invert ? SetMatch.CounterNe : SetMatch.CounterEq;
        if (invert) throw a.Error($"{option} option cannot be inverted");
        return option.EndsWith("-lt", StringComparison.Ordinal) ? SetMatch.CounterLt : SetMatch.CounterGt;
    }

    private static ulong CounterValue(string s, ArgReader a)
        => XtOptions.TryStrtoul(s, out ulong v) ? v : throw a.Error($"Cannot parse {s} as a counter value");

    private static bool[] ParseDirs(string s, ArgReader a)
    {
        var dirs = new List<bool>();
        var parts = s.Split(',');
        foreach (var part in parts)
        {
            if (dirs.Count == 6) throw a.Error("Can't be more src/dst options than 6.");
            if (part.StartsWith("src", StringComparison.Ordinal)) dirs.Add(true);
            else if (part.StartsWith("dst", StringComparison.Ordinal)) dirs.Add(false);
            else throw a.Error("You must spefify (the comma separated list of) 'src' or 'dst'.");
        }
        return dirs.ToArray();
    }

    internal override void FinalCheck(SetMatch m, Rule rule, ArgReader a)
    {
        if (m.OptionFlags == 0) throw a.Error("You must specify `--match-set' with proper arguments");
    }

    internal override void Save(SetMatch m, StringBuilder sb) => Render(m, sb, "--");
    internal override void List(SetMatch m, StringBuilder sb) => Render(m, sb, "");

    private static void Render(SetMatch m, StringBuilder sb, string sep)
    {
        sb.Append(m.Invert ? " ! " : " ").Append(sep).Append("match-set ").Append(m.SetName);
        for (int i = 0; i < m.Dirs.Length; i++) sb.Append(i == 0 ? ' ' : ',').Append(m.Dirs[i] ? "src" : "dst");
        if (m.ReturnNomatch) sb.Append(' ').Append(sep).Append("return-nomatch");
        if (m.SkipCounterUpdate) sb.Append(" ! ").Append(sep).Append("update-counters");
        if (m.SkipSubcounterUpdate) sb.Append(" ! ").Append(sep).Append("update-subcounters");
        Counter(sb, m.PacketsOp, m.Packets, "packets", sep);
        Counter(sb, m.BytesOp, m.Bytes, "bytes", sep);
    }

    private static void Counter(StringBuilder sb, byte op, ulong value, string name, string sep)
    {
        switch (op)
        {
            case SetMatch.CounterEq: sb.Append(' ').Append(sep).Append(name).Append("-eq ").Append(value); break;
            case SetMatch.CounterNe: sb.Append(" ! ").Append(sep).Append(name).Append("-eq ").Append(value); break;
            case SetMatch.CounterLt: sb.Append(' ').Append(sep).Append(name).Append("-lt ").Append(value); break;
            case SetMatch.CounterGt: sb.Append(' ').Append(sep).Append(name).Append("-gt ").Append(value); break;
        }
    }
}
