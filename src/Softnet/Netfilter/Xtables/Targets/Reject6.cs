using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of ip6tables REJECT (ip6t_REJECT.c): drop and ask the stack to answer with an ICMPv6
/// destination unreachable (nf_send_unreach6) or a TCP reset (nf_send_reset6).</summary>
public sealed class Reject6Target : XtTarget
{
    public RejectWith With = RejectWith.Icmp6PortUnreachable;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Reject = With;
        return TargetResult.Drop;
    }

    internal override int ValidHooks => XtHooks.LocalIn | XtHooks.Forward | XtHooks.LocalOut;
    internal override TableKind? OnlyTable => TableKind.Filter;

    /// <summary>The ICMPv6 destination unreachable code of an ICMPv6 reject kind.</summary>
    public static byte Code(RejectWith w) => w switch
    {
        RejectWith.Icmp6NoRoute => 0,
        RejectWith.Icmp6AdmProhibited => 1,
        RejectWith.Icmp6AddrUnreachable => 3,
        RejectWith.Icmp6PortUnreachable => 4,
        RejectWith.Icmp6PolicyFail => 5,
        _ => 6,
    };
}

/// <summary>Userspace half of ip6tables REJECT (libip6t_REJECT.c).</summary>
internal sealed class Reject6TargetExtension : XtTargetExtension<Reject6Target>
{
    public override string Name => "REJECT";
    public override NfProto Family => NfProto.Ipv6;

    private static readonly (string Name, string Alias, RejectWith Kind)[] Kinds =
    {
        ("icmp6-no-route", "no-route", RejectWith.Icmp6NoRoute),
        ("icmp6-adm-prohibited", "adm-prohibited", RejectWith.Icmp6AdmProhibited),
        ("icmp6-addr-unreachable", "addr-unreach", RejectWith.Icmp6AddrUnreachable),
        ("icmp6-port-unreachable", "port-unreach", RejectWith.Icmp6PortUnreachable),
        ("icmp6-policy-fail", "policy-fail", RejectWith.Icmp6PolicyFail),
        ("icmp6-reject-route", "reject-route", RejectWith.Icmp6RejectRoute),
        ("tcp-reset", "tcp-reset", RejectWith.TcpReset),
    };

    internal override bool Parse(Reject6Target t, string option, bool invert, ArgReader a)
    {
        if (option != "--reject-with") return false;
        string v = a.Next(option);
        int i = Array.FindIndex(Kinds, k => k.Name == v || k.Alias == v);
        if (i < 0) throw a.Error($"unknown reject type \"{v}\"");
        t.With = Kinds[i].Kind;
        return true;
    }

    internal override void FinalCheck(Reject6Target t, Rule rule, ArgReader a)
    {
        if (t.With == RejectWith.TcpReset && (rule.Protocol != 6 || rule.InvProtocol))
            throw a.Error("TCP_RESET illegal for non-tcp");
    }

    private static string Text(Reject6Target t) => Kinds.First(k => k.Kind == t.With).Name;
    internal override void Save(Reject6Target t, StringBuilder sb) => sb.Append(" --reject-with ").Append(Text(t));
    internal override void List(Reject6Target t, StringBuilder sb) => sb.Append(" reject-with ").Append(Text(t));
}
