using System.Text;
using Softnet.Napi;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of -m cpu (xt_cpu.c cpu_mt): the CPU running the hook, smp_processor_id(), against the rule's.
/// That is the CPU whose softirq is receiving the packet: after RPS/RFS the backlog's CPU, not the interrupt's.</summary>
public sealed class CpuMatch : XtMatch
{
    internal override bool IsPure => true;
    public uint Cpu;
    public bool Invert;

    internal override bool Matches(ref PacketContext p, NetfilterTables t, HookPoint h)
        => ((uint)NapiEngine.ProcessorId == Cpu) ^ Invert;
}

/// <summary>Userspace half of -m cpu (libxt_cpu.c): one mandatory, invertible u32.</summary>
internal sealed class CpuMatchExtension : X6MatchExtension<CpuMatch>
{
    public override string Name => "cpu";
    /// <summary>NFPROTO_UNSPEC: iptables and ip6tables both load it.</summary>
    public override NfProto Family => NfProto.Unspec;
    private static readonly XtOpt[] Table = { new("cpu", 0, XtOptType.UInt32) { Invert = true, Mandatory = true } };
    private protected override XtOpt[] Options => Table;

    private protected override void Parse(CpuMatch m, XtOpt o, string? arg, bool invert, ArgReader a)
    {
        m.Cpu = (uint)XtOptions.Int(Name, o, arg!, a);
        m.Invert = invert;
    }

    internal override void Save(CpuMatch m, StringBuilder sb) => sb.Append(m.Invert ? " !" : "").Append(" --cpu ").Append(U(m.Cpu));
    internal override void List(CpuMatch m, StringBuilder sb) => sb.Append(" cpu ").Append(m.Invert ? "! " : "").Append(U(m.Cpu));
}
