using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m multiport (xt_multiport.c revision 1: up to 15 ports, ranges count double).</summary>
public sealed class MultiportMatch : XtMatch
{
    internal override bool IsPure => true;
    public enum Kind : byte { Source, Destination, Either }
    public Kind Flags;
    public bool Invert;
    internal readonly List<(ushort Min, ushort Max)> PortList = new();
    internal bool Has;
    internal (ushort Min, ushort Max)[] Array = System.Array.Empty<(ushort, ushort)>();
    public IReadOnlyList<(ushort Min, ushort Max)> Ports => PortList;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
    {
        if (p.IsFragment) return false;
        foreach (var (min, max) in Array)
        {
            bool s = p.SrcPort >= min && p.SrcPort <= max;
            bool d = p.DstPort >= min && p.DstPort <= max;
            bool hit = Flags switch { Kind.Source => s, Kind.Destination => d, _ => s || d };
            if (hit) return !Invert;
        }
        return Invert;
    }
}

/// <summary>Userspace half of -m multiport (libxt_multiport.c).</summary>
internal sealed class MultiportMatchExtension : XtMatchExtension<MultiportMatch>
{
    public override string Name => "multiport";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    internal override bool Parse(MultiportMatch m, string option, bool invert, ArgReader a)
    {
        MultiportMatch.Kind k;
        switch (option)
        {
            case "--sports" or "--source-ports": k = MultiportMatch.Kind.Source; break;
            case "--dports" or "--destination-ports": k = MultiportMatch.Kind.Destination; break;
            case "--ports": k = MultiportMatch.Kind.Either; break;
            default: return false;
        }
        if (m.Has)
        {
            // x6 exclusions in libxt_multiport's table order: source-ports, destination-ports, ports.
            int prev = (int)m.Flags, cur = (int)k;
            string[] names = ["source-ports", "destination-ports", "ports"];
            if (prev == cur) throw a.Error($"multiport: option \"--{names[cur]}\" can only be used once.");
            int first = Math.Min(prev, cur), second = Math.Max(prev, cur);
            throw a.Error($"multiport: option \"--{names[first]}\" cannot be used together with \"--{names[second]}\".");
        }
        int slots = 0;
        foreach (var part in a.Next(option).Split(','))
        {
            var r = Opt.PortRange(part, a);
            m.PortList.Add(r);
            slots += r.Min == r.Max ? 1 : 2;
        }
        if (slots > 15) throw a.Error("too many ports specified");
        m.Flags = k;
        m.Invert = invert;
        m.Has = true;
        m.Array = m.PortList.ToArray();
        return true;
    }

    internal override void FinalCheck(MultiportMatch m, Rule rule, ArgReader a)
    {
        if (!m.Has) throw a.Error("multiport expection an option");
        if (rule.InvProtocol || rule.Protocol is not (6 or 17 or 33 or 132 or 136))
            throw a.Error("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or `-p dccp'");
    }

    private static string PortList(MultiportMatch m) => string.Join(',', m.PortList.Select(r => Opt.PortText(r.Min, r.Max)));

    internal override void Save(MultiportMatch m, StringBuilder sb)
    {
        sb.Append(m.Invert ? " !" : "").Append(m.Flags switch
        {
            MultiportMatch.Kind.Source => " --sports ",
            MultiportMatch.Kind.Destination => " --dports ",
            _ => " --ports ",
        }).Append(PortList(m));
    }

    internal override void List(MultiportMatch m, StringBuilder sb)
    {
        sb.Append(" multiport ").Append(m.Flags switch
        {
            MultiportMatch.Kind.Source => "sports ",
            MultiportMatch.Kind.Destination => "dports ",
            _ => "ports ",
        });
        if (m.Invert) sb.Append(" !");
        sb.Append(PortList(m));
    }
}
