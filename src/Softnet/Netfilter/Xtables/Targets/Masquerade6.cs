using Softnet.Netfilter.Conntrack;

namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of ip6tables MASQUERADE (nf_nat_masquerade_ipv6): SNAT to the source address
/// ipv6_dev_get_saddr picks on the output device for the packet's destination.</summary>
public sealed class Masquerade6Target : PortRangeNatTarget
{
    internal override int ValidHooks => XtHooks.PostRouting;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        if (!t.Host6.TrySelectSource(p.OutInterface, p.Dst6, out var src))
        {
            p.DropReason = Packets.DropReason.NetfilterNatFailed;
            return TargetResult.Drop;
        }
        var r = new Nat6Range
        {
            Flags = Range.Flags | NatRangeFlags.MapIps,
            MinIp = src,
            MaxIp = src,
            MinPort = Range.MinPort,
            MaxPort = Range.MaxPort,
        };
        p.Ct.MasqueradeDevice = p.OutInterface;
        return t.Nat6.SetupInfo(p.Ct, r, NatManip.Src) ? TargetResult.Accept : TargetResult.Drop;
    }
}

/// <summary>Userspace half of ip6tables MASQUERADE (libxt_MASQUERADE.c, IPv6).</summary>
internal sealed class Masquerade6TargetExtension : PortRangeNatTargetExtension<Masquerade6Target>
{
    public override string Name => "MASQUERADE";
    public override NfProto Family => NfProto.Ipv6;
    private protected override string ListLabel => "masq ports:";
    private protected override bool AllowsRandomFully => true;
}
