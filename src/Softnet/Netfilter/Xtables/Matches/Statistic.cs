using System.Globalization;
using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m statistic (xt_statistic.c): random with probability, or every nth packet.</summary>
public sealed class StatisticMatch : XtMatch
{
    public bool Nth;
    public bool Invert;
    /// <summary>Probability scaled as the kernel keeps it: lround(p * 2^31).</summary>
    public uint Probability;
    /// <summary>--every minus one, as the kernel stores it.</summary>
    public uint Every;
    public uint Packet;
    internal uint Count;
    internal bool HasMode, HasProb, HasEvery, HasPacket;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        bool ret = Invert;
        if (!Nth)
        {
            if ((t.NextRandom() & 0x7FFFFFFF) < Probability) ret = !ret;
        }
        else
        {
            Count = Count == Every ? 0 : Count + 1;
            if (Count == 0) ret = !ret;
        }
        return ret;
    }
}

/// <summary>Userspace half of -m statistic (libxt_statistic.c).</summary>
internal sealed class StatisticMatchExtension : X6MatchExtension<StatisticMatch>
{
    public override string Name => "statistic";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private const int OMode = 0, OProbability = 1, OEvery = 2, OPacket = 3;
    private static readonly XtOpt[] Table =
    {
        Arg("mode", OMode, mandatory: true),
        Arg("probability", OProbability, invert: true, excl: 1 << OEvery | 1 << OPacket),
        Arg("every", OEvery, invert: true, excl: 1 << OProbability, also: 1 << OPacket),
        Arg("packet", OPacket, excl: 1 << OProbability, also: 1 << OEvery),
    };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(StatisticMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        switch (o.Id)
        {
            case OMode:
                m.Nth = arg == "nth" ? true : arg == "random" ? false : throw a.Error($"Bad mode \"{arg}\"");
                m.HasMode = true;
                break;
            case OProbability:
                if (!double.TryParse(arg, NumberStyles.Float, CultureInfo.InvariantCulture, out double prob) || prob < 0 || prob > 1)
                    throw a.Error($"{Name}: bad value for option \"--probability\", or out of range (0-1).");
                m.Probability = (uint)Math.Round(prob * 0x80000000, MidpointRounding.AwayFromZero);
                m.HasProb = true;
                if (invert) m.Invert = true;
                break;
            case OEvery:
                m.Every = (uint)XtOptions.UInt(Name, o, arg!, 1, uint.MaxValue, a) - 1;
                m.HasEvery = true;
                if (invert) m.Invert = true;
                break;
            default:
                m.Packet = (uint)XtOptions.UInt(Name, o, arg!, 0, uint.MaxValue, a);
                m.HasPacket = true;
                break;
        }
    }

    private protected override void Check(StatisticMatch m, uint flags, Rule rule, ArgReader a)
    {
        if (m.HasMode && !m.Nth && !m.HasProb) throw a.Error("--probability must be specified when using random mode");
        if (m.HasMode && m.Nth && !m.HasEvery && !m.HasPacket) throw a.Error("--every and --packet must be specified when using nth mode");
        if (m.HasPacket && m.HasEvery && m.Packet > m.Every) throw a.Error("the --packet p must be 0 <= p <= n-1");
        m.Count = m.Every - m.Packet;
    }

    private static string ProbText(StatisticMatch m) => (1.0 * m.Probability / 0x80000000).ToString("F11", CultureInfo.InvariantCulture);

    private static void Render(StatisticMatch m, StringBuilder sb, string prefix)
    {
        string inv = m.Invert ? " !" : "";
        if (!m.Nth) sb.Append(' ').Append(prefix).Append("mode random").Append(inv).Append(' ').Append(prefix).Append("probability ").Append(ProbText(m));
        else
        {
            sb.Append(' ').Append(prefix).Append("mode nth").Append(inv).Append(' ').Append(prefix).Append("every ").Append(m.Every + 1);
            if (m.Packet != 0 || prefix.Length > 0) sb.Append(' ').Append(prefix).Append("packet ").Append(m.Packet);
        }
    }

    internal override void Save(StatisticMatch m, StringBuilder sb) => Render(m, sb, "--");

    internal override void List(StatisticMatch m, StringBuilder sb)
    {
        sb.Append(" statistic");
        Render(m, sb, "");
    }
}
