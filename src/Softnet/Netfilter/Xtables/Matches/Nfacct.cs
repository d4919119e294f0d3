using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// The extended accounting objects of a namespace (nfnetlink_acct: `nfacct add NAME`), which -m nfacct counts into.
/// A rule naming an object that does not exist is refused, as the kernel refuses it (-ENOENT).
/// </summary>
public sealed class NfacctObjects
{
    public sealed class Counter
    {
        public string Name { get; }
        public long Packets, Bytes;
        internal Counter(string name) => Name = name;
    }

    private readonly Dictionary<string, Counter> _objects = new(StringComparer.Ordinal);

    public Counter? this[string name] => _objects.GetValueOrDefault(name);
    public IEnumerable<Counter> Objects => _objects.Values;

    /// <summary>`nfacct add NAME`.</summary>
    public Counter Add(string name)
    {
        if (!_objects.TryGetValue(name, out var c)) _objects.Add(name, c = new Counter(name));
        return c;
    }

    /// <summary>Names one per line (`nfacct list` lines "{ pkts = .., bytes = .. } = NAME;" are accepted too).</summary>
    public void Load(string text)
    {
        foreach (var raw in text.Split('\n'))
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            int eq = line.LastIndexOf("} = ", StringComparison.Ordinal);
            if (eq >= 0) line = line[(eq + 4)..].TrimEnd(';').Trim();
            Add(line);
        }
    }
}

/// <summary>Kernel half of -m nfacct (xt_nfacct.c): counts the packet into the object; matches (objects have no quota here).</summary>
public sealed class NfacctMatch : XtMatch
{
    public string ObjectName = "";
    internal NfacctObjects.Counter? Counter;

    internal override string? CheckEntry(in XtCheck c)
    {
        Counter = c.Tables.Nfacct[ObjectName];
        return Counter == null
            ? $"RULE_APPEND failed (No such file or directory): rule in chain {c.Chain} (nfacct: accounting object `{ObjectName}' does not exists)"
            : null;
    }

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        Counter!.Packets++;
        Counter.Bytes += p.Length;
        return true;
    }
}

/// <summary>Userspace half of -m nfacct (libxt_nfacct.c).</summary>
internal sealed class NfacctMatchExtension : X6MatchExtension<NfacctMatch>
{
    public override string Name => "nfacct";
    private static readonly XtOpt[] Table = { Arg("nfacct-name", 0, mandatory: true) };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(NfacctMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        if (arg!.Length > 31) throw a.Error($"{Name}: option \"--nfacct-name\" is too long (max 31 characters)");
        m.ObjectName = arg;
    }

    internal override void Save(NfacctMatch m, StringBuilder sb) { sb.Append(" --nfacct-name"); IptablesSave.AppendQuoted(sb, m.ObjectName); }
    internal override void List(NfacctMatch m, StringBuilder sb) { sb.Append(" nfacct-name "); IptablesSave.AppendQuoted(sb, m.ObjectName); }
}
