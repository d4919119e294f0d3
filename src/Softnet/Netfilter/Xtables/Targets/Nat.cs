using System.Globalization;
using System.Text;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>Shared parsing and printing of nf_nat_range2 for SNAT/DNAT/MASQUERADE/REDIRECT.</summary>
internal static class NatText
{
    public static NatRange ParseToAddress(string s, ArgReader a)
    {
        var r = new NatRange();
        int colon = s.IndexOf(':');
        string ips = colon < 0 ? s : s[..colon];
        if (ips.Length > 0)
        {
            int dash = ips.IndexOf('-');
            string lo = dash < 0 ? ips : ips[..dash];
            if (!Ipv4.TryParse(lo, out r.MinIp)) throw a.Error($"Bad IP address \"{lo}\"");
            r.MaxIp = r.MinIp;
            if (dash >= 0 && !Ipv4.TryParse(ips[(dash + 1)..], out r.MaxIp)) throw a.Error($"Bad IP address \"{ips[(dash + 1)..]}\"");
            if (r.MaxIp < r.MinIp) throw a.Error($"Bad IP range \"{ips}\"");
            r.Flags |= NatRangeFlags.MapIps;
        }
        if (colon >= 0)
        {
            (r.MinPort, r.MaxPort) = ParsePorts(s[(colon + 1)..], a);
            r.Flags |= NatRangeFlags.ProtoSpecified;
        }
        return r;
    }

    public static (ushort, ushort) ParsePorts(string s, ArgReader a)
    {
        int dash = s.IndexOf('-');
        if (dash < 0) dash = s.IndexOf(':');
        ushort min = ParsePort(dash < 0 ? s : s[..dash], a);
        ushort max = dash < 0 ? min : ParsePort(s[(dash + 1)..], a);
        if (max < min) throw a.Error($"Port range `{s}' invalid");
        return (min, max);
    }

    private static ushort ParsePort(string s, ArgReader a)
        => ushort.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p != 0 ? p : throw a.Error($"Port `{s}' not valid");

    public static void RequirePortProtocol(Rule rule, ArgReader a)
    {
        if (rule.InvProtocol || rule.Protocol is not (6 or 17 or 132 or 33 or 136))
            throw a.Error("Need TCP, UDP, SCTP or DCCP with port specification");
    }

    public static string Ports(ushort min, ushort max) => min == max ? min.ToString(CultureInfo.InvariantCulture) : $"{min}-{max}";

    public static string Range(in NatRange r)
    {
        var sb = new StringBuilder();
        if ((r.Flags & NatRangeFlags.MapIps) != 0)
        {
            sb.Append(Ipv4.Format(r.MinIp));
            if (r.MaxIp != r.MinIp) sb.Append('-').Append(Ipv4.Format(r.MaxIp));
        }
        if ((r.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(':').Append(Ports(r.MinPort, r.MaxPort));
        return sb.ToString();
    }

    public static void Flags(StringBuilder sb, NatRangeFlags f, string dash)
    {
        if ((f & NatRangeFlags.ProtoRandom) != 0) sb.Append(' ').Append(dash).Append("random");
        if ((f & NatRangeFlags.ProtoRandomFully) != 0) sb.Append(' ').Append(dash).Append("random-fully");
        if ((f & NatRangeFlags.Persistent) != 0) sb.Append(' ').Append(dash).Append("persistent");
    }
}

/// <summary>Kernel half of SNAT / DNAT (xt_nat.c): bind the connection to the given address/port range on its first packet.</summary>
public abstract class NatTarget : XtTarget
{
    public abstract NatManip Manip { get; }
    public NatRange Range;
    internal bool Has;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        return t.Nat.SetupInfo(p.Ct, Range, Manip) ? TargetResult.Accept : TargetResult.Drop;
    }

    internal override int ValidHooks => Manip == NatManip.Dst ? XtHooks.PreRouting | XtHooks.LocalOut : XtHooks.PostRouting | XtHooks.LocalIn;
    internal override TableKind? OnlyTable => TableKind.Nat;
    internal override bool UsesConntrack => true;
}

/// <summary>Kernel half of DNAT.</summary>
public sealed class DnatTarget : NatTarget
{
    public override NatManip Manip => NatManip.Dst;
}

/// <summary>Kernel half of SNAT.</summary>
public sealed class SnatTarget : NatTarget
{
    public override NatManip Manip => NatManip.Src;
}

/// <summary>Userspace half of SNAT / DNAT (libxt_NAT.c / libipt_SNAT/DNAT).</summary>
internal abstract class NatTargetExtension<T> : XtTargetExtension<T> where T : NatTarget, new()
{
    private protected abstract NatManip Manip { get; }
    private string To => Manip == NatManip.Dst ? "--to-destination" : "--to-source";

    internal override bool Parse(T t, string option, bool invert, ArgReader a)
    {
        if (option == To)
        {
            if (t.Has) throw a.Error($"{Name}: Multiple {To} not supported");
            var flags = t.Range.Flags;
            t.Range = NatText.ParseToAddress(a.Next(option), a);
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
        sb.Append(' ').Append(To).Append(' ').Append(NatText.Range(t.Range));
        NatText.Flags(sb, t.Range.Flags, "--");
    }

    internal override void List(T t, StringBuilder sb)
    {
        sb.Append(" to:").Append(NatText.Range(t.Range));
        NatText.Flags(sb, t.Range.Flags, "");
    }
}

internal sealed class DnatTargetExtension : NatTargetExtension<DnatTarget>
{
    public override string Name => "DNAT";
    private protected override NatManip Manip => NatManip.Dst;
}

internal sealed class SnatTargetExtension : NatTargetExtension<SnatTarget>
{
    public override string Name => "SNAT";
    private protected override NatManip Manip => NatManip.Src;
}

/// <summary>
/// Userspace half MASQUERADE and REDIRECT share: an optional port range (--to-ports, which needs -p tcp/udp/...),
/// --random, and the same save and list rendering (libxt_MASQUERADE.c / libxt_REDIRECT.c).
/// </summary>
internal abstract class PortRangeNatTargetExtension<T> : XtTargetExtension<T> where T : PortRangeNatTarget, new()
{
    /// <summary>Word iptables -nvL prints before the port range ("masq ports:", "redir ports").</summary>
    private protected abstract string ListLabel { get; }

    private protected virtual bool AllowsRandomFully => false;

    internal override bool Parse(T t, string option, bool invert, ArgReader a)
    {
        switch (option)
        {
            case "--to-ports":
                (t.Range.MinPort, t.Range.MaxPort) = NatText.ParsePorts(a.Next(option), a);
                t.Range.Flags |= NatRangeFlags.ProtoSpecified;
                return true;
            case "--random": t.Range.Flags |= NatRangeFlags.ProtoRandom; return true;
            case "--random-fully" when AllowsRandomFully: t.Range.Flags |= NatRangeFlags.ProtoRandomFully; return true;
        }
        return false;
    }

    internal override void FinalCheck(T t, Rule rule, ArgReader a)
    {
        if ((t.Range.Flags & NatRangeFlags.ProtoSpecified) != 0) NatText.RequirePortProtocol(rule, a);
    }

    internal override void Save(T t, StringBuilder sb)
    {
        if ((t.Range.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(" --to-ports ").Append(NatText.Ports(t.Range.MinPort, t.Range.MaxPort));
        NatText.Flags(sb, t.Range.Flags, "--");
    }

    internal override void List(T t, StringBuilder sb)
    {
        if ((t.Range.Flags & NatRangeFlags.ProtoSpecified) != 0) sb.Append(' ').Append(ListLabel).Append(' ').Append(NatText.Ports(t.Range.MinPort, t.Range.MaxPort));
        NatText.Flags(sb, t.Range.Flags, "");
    }
}

/// <summary>Kernel half shared by MASQUERADE and REDIRECT: the port range and flags.</summary>
public abstract class PortRangeNatTarget : XtTarget
{
    public NatRange Range;
    internal override TableKind? OnlyTable => TableKind.Nat;
    internal override bool UsesConntrack => true;
}
