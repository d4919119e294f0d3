using System.Text;
using Softnet.Netfilter.Conntrack;

namespace Softnet.Netfilter.Xtables;

/// <summary>Parsing and printing of an IPv6 nf_nat_range2 (libxt_NAT.c's IPv6 forms: ADDR, ADDR-ADDR, [ADDR]:PORT,
/// [ADDR-ADDR]:PORT-PORT).</summary>
internal static class Nat6Text
{
    public static Nat6Range ParseToAddress(string s, ArgReader a)
    {
        var r = new Nat6Range();
        string ips = s, ports = "";
        if (s.StartsWith('['))
        {
            int close = s.IndexOf(']');
            if (close < 0) throw a.Error($"Invalid address format \"{s}\"");
            ips = s[1..close];
            string rest = s[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':' || rest.Length == 1) throw a.Error($"Invalid port:port syntax - use dash");
                ports = rest[1..];
            }
        }
        if (ips.Length > 0)
        {
            int dash = ips.IndexOf('-');
            string lo = dash < 0 ? ips : ips[..dash];
            if (!Ip6Addr.TryParse(lo, out r.MinIp)) throw a.Error($"Bad IP address \"{lo}\"");
            r.MaxIp = r.MinIp;
            if (dash >= 0 && !Ip6Addr.TryParse(ips[(dash + 1)..], out r.MaxIp)) throw a.Error($"Bad IP address \"{ips[(dash + 1)..]}\"");
            if (r.MaxIp < r.MinIp) throw a.Error($"Bad IP range \"{ips}\"");
            r.Flags |= NatRangeFlags.MapIps;
        }
        if (ports.Length > 0)
        {
            (r.MinPort, r.MaxPort) = NatText.ParsePorts(ports, a);
            r.Flags |= NatRangeFlags.ProtoSpecified;
        }
        return r;
    }

    public static string Range(in Nat6Range r)
    {
        var sb = new StringBuilder();
        bool ports = (r.Flags & NatRangeFlags.ProtoSpecified) != 0;
        if (ports) sb.Append('[');
        if ((r.Flags & NatRangeFlags.MapIps) != 0)
        {
            sb.Append(Ip6Addr.Format(r.MinIp));
            if (r.MaxIp != r.MinIp) sb.Append('-').Append(Ip6Addr.Format(r.MaxIp));
        }
        if (ports) sb.Append("]:").Append(NatText.Ports(r.MinPort, r.MaxPort));
        return sb.ToString();
    }
}

/// <summary>Kernel half of ip6tables SNAT / DNAT (xt_nat.c for NFPROTO_IPV6): bind the connection on its first packet.</summary>
public abstract class Nat6Target : XtTarget
{
    public abstract NatManip Manip { get; }
    public Nat6Range Range;
    internal bool Has;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        return t.Nat6.SetupInfo(p.Ct, Range, Manip) ? TargetResult.Accept : TargetResult.Drop;
    }

    internal override int ValidHooks => Manip == NatManip.Dst ? XtHooks.PreRouting | XtHooks.LocalOut : XtHooks.PostRouting | XtHooks.LocalIn;
    internal override TableKind? OnlyTable => TableKind.Nat;
    internal override bool UsesConntrack => true;
}

/// <summary>Kernel half of ip6tables DNAT.</summary>
public sealed class Dnat6Target : Nat6Target
{
    public override NatManip Manip => NatManip.Dst;
}

/// <summary>Kernel half of ip6tables SNAT.</summary>
public sealed class Snat6Target : Nat6Target
{
    public override NatManip Manip => NatManip.Src;
}

/// <summary>Userspace half of ip6tables SNAT / DNAT (libxt_NAT.c, IPv6).</summary>
internal abstract class Nat6TargetExtension<T> : XtTargetExtension<T> where T : Nat6Target, new()
{
    public override NfProto Family => NfProto.Ipv6;
    private protected abstract NatManip Manip { get; }
    private string To => Manip == NatManip.Dst ? "--to-destination" : "--to-source";

    internal override bool Parse(T t, string option, bool invert, ArgReader a)
    {
        if (option == To)
        {
            if (t.Has) throw a.Error($"{Name}: Multiple {To} not supported");
            var flags = t.Range.Flags;
            t.Range = Nat6Text.ParseToAddress(a.Next(option), a);
            t.Range.Flags |= flags;
            t.Has = true;
            return true;
        }
        switch (option)
        {
            case "--random": t.Range.Flags |= NatRangeFlags.ProtoRandom; return true;
            case "--random-fully" when Manip == NatManip.Src: t.Range.Flags |= NatRangeFlags.ProtoRandomFully; return true;
            case "--persistent": t.Range.Flags |= NatRangeFlags.Persistent; return true;
        }
        return false;
    }

    internal override void FinalCheck(T t, Rule rule, ArgReader a)
    {
        if (!t.Has) throw a.Error($"You must specify {To}");
        if ((t.Range.Flags & NatRangeFlags.ProtoSpecified) != 0) NatText.RequirePortProtocol(rule, a);
    }

    internal override void Save(T t, StringBuilder sb)
    {
        sb.Append(' ').Append(To).Append(' ').Append(Nat6Text.Range(t.Range));
        NatText.Flags(sb, t.Range.Flags, "--");
    }

    internal override void List(T t, StringBuilder sb)
    {
        sb.Append(" to:").Append(Nat6Text.Range(t.Range));
        NatText.Flags(sb, t.Range.Flags, "");
    }
}

internal sealed class Dnat6TargetExtension : Nat6TargetExtension<Dnat6Target>
{
    public override string Name => "DNAT";
    private protected override NatManip Manip => NatManip.Dst;
}

internal sealed class Snat6TargetExtension : Nat6TargetExtension<Snat6Target>
{
    public override string Name => "SNAT";
    private protected override NatManip Manip => NatManip.Src;
}
