namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of MASQUERADE (nf_nat_masquerade_ipv4): SNAT to the output device's address that
/// inet_select_addr picks for the route's next hop (the one on its subnet, else the device's first).</summary>
public sealed class MasqueradeTarget : PortRangeNatTarget
{
    internal override int ValidHooks => XtHooks.PostRouting;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        uint src = t.Host.SelectAddress(p.OutInterface, p.Nexthop);
        if (src == 0) { p.DropReason = Packets.DropReason.NetfilterNatFailed; return TargetResult.Drop; }
        var r = Range;
        r.MinIp = r.MaxIp = src;
        r.Flags |= Conntrack.NatRangeFlags.MapIps;
        p.Ct.MasqueradeDevice = p.OutInterface;
        return t.Nat.SetupInfo(p.Ct, r, Conntrack.NatManip.Src) ? TargetResult.Accept : TargetResult.Drop;
    }
}

/// <summary>Userspace half of MASQUERADE (libxt_MASQUERADE.c).</summary>
internal sealed class MasqueradeTargetExtension : PortRangeNatTargetExtension<MasqueradeTarget>
{
    public override string Name => "MASQUERADE";
    private protected override string ListLabel => "masq ports:";
    private protected override bool AllowsRandomFully => true;
}
