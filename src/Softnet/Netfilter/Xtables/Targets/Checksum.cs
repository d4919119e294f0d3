using System.Buffers.Binary;
using System.Text;
using Softnet.Packets;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Kernel half of CHECKSUM (xt_CHECKSUM.c, mangle only): a CHECKSUM_PARTIAL packet that is not GSO gets its
/// transport checksum computed now (skb_checksum_help) and becomes CHECKSUM_NONE. For IPv4 TCP and UDP the
/// partial checksum starts at the transport header with the field at offset 16 (TCP) or 6 (UDP), holding the
/// pseudo-header sum; the result is stored folded, 0 as 0xffff (CSUM_MANGLED_0).
/// </summary>
public sealed class ChecksumTarget : XtTarget
{
    internal uint Flags;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.IpSummed != CsumState.Partial || p.Gso) return TargetResult.Continue;
        var pkt = p.WritablePacket;
        if (pkt.Length < p.Length || p.Length < 20 || p.IsFragment) return TargetResult.Continue;
        var ip = pkt[..p.Length];
        int ihl = (ip[0] & 0xF) * 4;
        int field = p.Protocol switch { 6 => 16, 17 => 6, _ => -1 };
        if (field < 0 || ip.Length < ihl + field + 2) return TargetResult.Continue;
        var l4 = ip[ihl..];
        ushort sum = (ushort)~Checksum.Add(0, Checksum.Sum(l4));
        BinaryPrimitives.WriteUInt16BigEndian(l4[field..], sum == 0 ? (ushort)0xFFFF : sum);
        p.IpSummed = CsumState.None;
        return TargetResult.Continue;
    }

    internal override TableKind? OnlyTable => TableKind.Mangle;
}

/// <summary>Userspace half of CHECKSUM (libxt_CHECKSUM.c).</summary>
internal sealed class ChecksumTargetExtension : XtTargetExtension<ChecksumTarget>
{
    public override string Name => "CHECKSUM";

    private static readonly XtOpt[] Options =
    {
        new("checksum-fill", 0, XtOptType.None) { Mandatory = true },
    };

    internal override bool Parse(ChecksumTarget t, string option, bool invert, ArgReader a)
    {
        var o = XtOptions.Find(Options, option);
        if (o == null) return false;
        XtOptions.Begin(Name, o, ref t.Flags, invert, a);
        return true;
    }

    internal override void FinalCheck(ChecksumTarget t, Rule rule, ArgReader a) => XtOptions.FinalCheck(Name, Options, t.Flags, a);
    internal override void Save(ChecksumTarget t, StringBuilder sb) => sb.Append(" --checksum-fill");
    internal override void List(ChecksumTarget t, StringBuilder sb) => sb.Append(" CHECKSUM fill");
}
