namespace Softnet.Netfilter.Xtables;

/// <summary>Kernel half of REDIRECT (nf_nat_redirect_ipv4): DNAT to the input device's primary address (127.0.0.1 for
/// locally generated); a device without an address drops the packet.</summary>
public sealed class RedirectTarget : PortRangeNatTarget
{
    internal override int ValidHooks => XtHooks.PreRouting | XtHooks.LocalOut;

    internal override TargetResult Execute(ref PacketContext p, NetfilterTables t, HookPoint hook)
    {
        if (p.Ct == null || p.CtInfo is not (CtInfo.New or CtInfo.Related or CtInfo.RelatedReply)) return TargetResult.Accept;
        uint dst = hook == HookPoint.LocalOut ? 0x7F000001u : t.Host.DeviceAddress(p.InInterface);
        if (dst == 0) { p.DropReason = Packets.DropReason.NetfilterNatFailed; return TargetResult.Drop; }
        var r = Range;
        r.MinIp = r.MaxIp = dst;
        r.Flags |= Conntrack.NatRangeFlags.MapIps;
        return t.Nat.SetupInfo(p.Ct, r, Conntrack.NatManip.Dst) ? TargetResult.Accept : TargetResult.Drop;
    }
}

/// <summary>Userspace half of REDIRECT (libxt_REDIRECT.c).</summary>
internal sealed class RedirectTargetExtension : PortRangeNatTargetExtension<RedirectTarget>
{
    public override string Name => "REDIRECT";
    private protected override string ListLabel => "redir ports";
}
