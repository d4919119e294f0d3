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
internal sealed class StatisticMatchExtension : XtMatchExtension<StatisticMatch>
{
    public override string Name => "statistic";

    internal override bool Parse(StatisticMatch m, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--mode":
                string mode = a.Next(option);
                m.Nth = mode == "nth" ? true : mode == "random" ? false : throw a.Error($"Bad mode \"{mode}\"");
                m.HasMode = true;
                if (invert) m.Invert = true;
                return true;
            case "--probability":
                string s = a.Next(option);
                if (!double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double prob) || prob < 0 || prob > 1)
                    throw a.Error($"--probability must be between 0 and 1");
                m.Probability = (uint)Math.Round(prob * 0x80000000, MidpointRounding.AwayFromZero);
                m.HasProb = true;
                if (invert) m.Invert = true;
                return true;
            case "--every":
                uint e = Opt.UInt(a.Next(option), a, "--every");
                if (e == 0) throw a.Error("--every cannot be 0");
                m.Every = e - 1;
                m.HasEvery = true;
                if (invert) m.Invert = true;
                return true;
            case "--packet":
                m.Packet = Opt.UInt(a.Next(option), a, "--packet");
                m.HasPacket = true;
                return true;
        }
        return false;
    }

    internal override void FinalCheck(StatisticMatch m, Rule rule, ArgReader a)
    {
        if (!m.HasMode) throw a.Error("no mode specified");
        if (m.HasProb && m.Nth) throw a.Error("--probability can only be used in random mode");
        if ((m.HasEvery || m.HasPacket) && !m.Nth) throw a.Error("--every and --packet can only be used in nth mode");
        if (m.Nth && !m.HasEvery) throw a.Error("--every must be specified in nth mode");
        if (m.HasPacket && m.Packet > m.Every) throw a.Error("the --packet p must be 0 <= p <= n-1");
        m.Count = m.Every - m.Packet;
    }

    private static string ProbText(StatisticMatch m) => (1.0 * m.Probability / 0x80000000).ToString("F11", CultureInfo.InvariantCulture);

    internal override void Save(StatisticMatch m, StringBuilder sb)
    {
        if (m.Invert) sb.Append(" !");
        if (!m.Nth) sb.Append(" --mode random --probability ").Append(ProbText(m));
        else sb.Append(" --mode nth --every ").Append(m.Every + 1).Append(" --packet ").Append(m.Packet);
    }

    internal override void List(StatisticMatch m, StringBuilder sb)
    {
        sb.Append(" statistic");
        if (m.Invert) sb.Append(" !");
        if (!m.Nth) sb.Append(" mode random probability ").Append(ProbText(m));
        else
        {
            sb.Append(" mode nth every ").Append(m.Every + 1);
            if (m.Packet != 0) sb.Append(" packet ").Append(m.Packet);
        }
    }
}
