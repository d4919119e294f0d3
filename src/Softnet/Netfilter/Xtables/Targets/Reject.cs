using System.Text;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of REJECT (ipt_REJECT.c): drop and ask the stack to answer with an ICMP error or a TCP reset.</summary>
public sealed class RejectTarget : XtTarget
{
    public RejectWith With = RejectWith.IcmpPortUnreachable;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        p.Reject = With;
        return TargetResult.Drop;
    }

    internal override int ValidHooks => XtHooks.LocalIn | XtHooks.Forward | XtHooks.LocalOut;
    internal override TableKind? OnlyTable => TableKind.Filter;
}

/// <summary>Userspace half of REJECT (libipt_REJECT.c).</summary>
internal sealed class RejectTargetExtension : XtTargetExtension<RejectTarget>
{
    public override string Name => "REJECT";

    private static readonly (string Name, string Alias, RejectWith Kind)[] Kinds =
    {
        ("icmp-net-unreachable", "net-unreach", RejectWith.IcmpNetUnreachable),
        ("icmp-host-unreachable", "host-unreach", RejectWith.IcmpHostUnreachable),
        ("icmp-port-unreachable", "port-unreach", RejectWith.IcmpPortUnreachable),
        ("icmp-proto-unreachable", "proto-unreach", RejectWith.IcmpProtoUnreachable),
        ("icmp-net-prohibited", "net-prohib", RejectWith.IcmpNetProhibited),
        ("icmp-host-prohibited", "host-prohib", RejectWith.IcmpHostProhibited),
        ("tcp-reset", "tcp-rst", RejectWith.TcpReset),
        ("icmp-admin-prohibited", "admin-prohib", RejectWith.IcmpAdminProhibited),
    };

    internal override bool Parse(RejectTarget t, string option, bool invert, ArgReader a)
    {
        if (option != "--reject-with") return false;
        string v = a.Next(option);
        int i = Array.FindIndex(Kinds, k => k.Name == v || k.Alias == v);
        if (i < 0) throw a.Error($"unknown reject type \"{v}\"");
        t.With = Kinds[i].Kind;
        return true;
    }

    internal override void FinalCheck(RejectTarget t, Rule rule, ArgReader a)
    {
        if (t.With == RejectWith.TcpReset && (rule.Protocol != 6 || rule.InvProtocol))
            throw a.Error("REJECT --reject-with tcp-reset is only valid with -p tcp");
    }

    private static string Text(RejectTarget t) => Kinds.First(k => k.Kind == t.With).Name;
    internal override void Save(RejectTarget t, StringBuilder sb) => sb.Append(" --reject-with ").Append(Text(t));
    internal override void List(RejectTarget t, StringBuilder sb) => sb.Append(" reject-with ").Append(Text(t));
}
