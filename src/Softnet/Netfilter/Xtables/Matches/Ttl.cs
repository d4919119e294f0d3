using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m ttl (ipt_ttl.c): ==, !=, &lt; or &gt; a value.</summary>
public sealed class TtlMatch : XtMatch
{
    public const byte Eq = 0, Ne = 1, Lt = 2, Gt = 3;
    internal override bool IsPure => true;
    public byte Mode, Value;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        byte ttl = p.CurrentTtl;
        return Mode switch
        {
            Eq => ttl == Value,
            Ne => ttl != Value,
            Lt => ttl < Value,
            _ => ttl > Value,
        };
    }
}

/// <summary>Userspace half of -m ttl (libipt_ttl.c).</summary>
internal sealed class TtlMatchExtension : X6MatchExtension<TtlMatch>
{
    public override string Name => "ttl";
    private const uint All = 7;
    private static readonly XtOpt[] Table =
    {
        Arg("ttl-lt", 1, excl: All), Arg("ttl-gt", 2, excl: All), Arg("ttl-eq", 0, invert: true, excl: All), Arg("ttl", 0, invert: true, excl: All),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(TtlMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        m.Value = (byte)XtOptions.UInt(Name, o, arg!, 0, 255, a);
        m.Mode = o.Id switch { 0 => invert ? TtlMatch.Ne : TtlMatch.Eq, 1 => TtlMatch.Lt, _ => TtlMatch.Gt };
    }

    private protected override void Check(TtlMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (flags == 0) throw a.Error("TTL match: You must specify one of `--ttl-eq', `--ttl-lt', `--ttl-gt");
    }

    internal override void Save(TtlMatch m, StringBuilder sb) => sb.Append(m.Mode switch
    {
        TtlMatch.Eq => " --ttl-eq ",
        TtlMatch.Ne => " ! --ttl-eq ",
        TtlMatch.Lt => " --ttl-lt ",
        _ => " --ttl-gt ",
    }).Append(m.Value);

    internal override void List(TtlMatch m, StringBuilder sb) => sb.Append(" TTL match TTL ").Append(m.Mode switch
    {
        TtlMatch.Eq => "== ",
        TtlMatch.Ne => "!= ",
        TtlMatch.Lt => "< ",
        _ => "> ",
    }).Append(m.Value);
}
