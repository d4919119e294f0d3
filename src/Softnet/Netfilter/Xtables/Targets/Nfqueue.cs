using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of NFQUEUE (xt_NFQUEUE.c revision 3): the verdict NF_QUEUE to one queue (or one of a balanced
/// range). Softnet has no nfnetlink_queue listener, so every queue is absent: nf_queue fails with -ESRCH, which
/// with --queue-bypass lets the packet continue with the next hook function (the rest of this table is skipped,
/// as for ACCEPT), and otherwise frees it (kfree_skb: SKB_DROP_REASON_NOT_SPECIFIED).
/// </summary>
public sealed class NfqueueTarget : XtTarget
{
    public ushort QueueNum;
    /// <summary>Number of queues balanced over (1: just <see cref="QueueNum"/>); 0 is refused by checkentry.</summary>
    public ushort QueuesTotal = 1;
    public bool Bypass;
    public bool CpuFanout;
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (Bypass)
        {
            t.QueueBypassed++;
            return TargetResult.Accept;
        }
        t.QueueDropped++;
        p.DropReason = DropReason.NotSpecified;
        return TargetResult.Drop;
    }

    internal override string? CheckEntry(in XtCheck check)
        => QueuesTotal == 0 ? check.Invalid("xt_NFQUEUE: number of total queues is 0") : null;
}

/// <summary>Userspace half of NFQUEUE (libxt_NFQUEUE.c revision 3).</summary>
internal sealed class NfqueueTargetExtension : XtTargetExtension<NfqueueTarget>
{
    public override string Name => "NFQUEUE";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;

    private static readonly XtOpt[] Options =
    {
        new("queue-num", 0, XtOptType.UInt16) { Excl = 1u << 1 },
        new("queue-balance", 1, XtOptType.UInt16Range) { Excl = 1u << 0, Max = ushort.MaxValue - 1 },
        new("queue-bypass", 2, XtOptType.None),
        new("queue-cpu-fanout", 3, XtOptType.None) { Also = 1u << 1 },
    };

    internal override bool Parse(NfqueueTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        string? arg = XtOptions.Begin(Name, o, ref t.Flags, invert, a);
        switch (o.Id)
        {
            case 0: t.QueueNum = (ushort)XtOptions.Int(Name, o, arg!, a); break;
            case 1:
                var (first, last, n) = XtOptions.UInt16Range(Name, o, arg!, a);
                if (n != 2) throw a.Error($"Bad range \"{arg}\"");
                if (first >= last) throw a.Error($"{first} should be less than {last}");
                t.QueueNum = first;
                t.QueuesTotal = (ushort)(last - first + 1);
                break;
            case 2: t.Bypass = true; break;
            default: t.CpuFanout = true; break;
        }
        return true;
    }

    internal override void FinalCheck(NfqueueTarget t, Rule rule, ArgReader a) => XtOptions.FinalCheck(Name, Options, t.Flags, a);

    private static void Print(NfqueueTarget t, StringBuilder sb, bool save)
    {
        if (t.QueuesTotal > 1)
            sb.Append(save ? " --queue-balance " : " NFQUEUE balance ").Append(t.QueueNum).Append(':').Append(t.QueueNum + t.QueuesTotal - 1);
        else sb.Append(save ? " --queue-num " : " NFQUEUE num ").Append(t.QueueNum);
        if (t.Bypass) sb.Append(save ? " --queue-bypass" : " bypass");
        if (t.CpuFanout) sb.Append(save ? " --queue-cpu-fanout" : " cpu-fanout");
    }

    internal override void Save(NfqueueTarget t, StringBuilder sb) => Print(t, sb, true);
    internal override void List(NfqueueTarget t, StringBuilder sb) => Print(t, sb, false);
}
