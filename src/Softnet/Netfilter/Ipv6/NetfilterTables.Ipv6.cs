using Softnet.Netfilter.Conntrack;
using Softnet.Telemetry;

namespace Softnet.Netfilter;

/// <summary>The IPv6 side of a namespace's tables (ip6tables, nf_conntrack_l3proto_ipv6, nf_nat_ipv6_ops).</summary>
public sealed partial class NetfilterTables
{
    private Ip6Conntrack? _ct6;
    private Ip6Nat? _nat6;

    /// <summary>IPv6 connection tracking (ip6tables tables only).</summary>
    public Ip6Conntrack Conntrack6 => _ct6 ?? throw new InvalidOperationException("IPv6 conntrack exists in ip6tables tables only");

    /// <summary>NAT66 (ip6tables tables only).</summary>
    public Ip6Nat Nat6 => _nat6 ?? throw new InvalidOperationException("NAT66 exists in ip6tables tables only");

    private IIp6NetfilterHost? _host6;
    private static readonly SimpleHost6 NoAddresses = new();

    /// <summary>The host's IPv6 addresses, for MASQUERADE's source choice (ipv6_dev_get_saddr) and the REJECT answers'
    /// source: the one set here, else <see cref="Host"/> when it knows IPv6 addresses (a namespace implementing
    /// <see cref="IIp6NetfilterHost"/>), else none.</summary>
    public IIp6NetfilterHost Host6
    {
        get => _host6 ?? Host as IIp6NetfilterHost ?? NoAddresses;
        set => _host6 = value;
    }

    /// <summary>A new ip6tables instance.</summary>
    public static NetfilterTables CreateIpv6(ConntrackOptions? conntrack = null) => new(NfProto.Ipv6, conntrack);

    /// <summary>nf_conntrack_l3proto_ipv6 and nf_nat_ipv6_ops: conntrack in at PREROUTING/OUTPUT, confirm last at
    /// INPUT/POSTROUTING; DNAT at PREROUTING/OUTPUT, SNAT at INPUT/POSTROUTING.</summary>
    private void RegisterIpv6ConntrackAndNat()
    {
        _ct6 = new Ip6Conntrack(this);
        _nat6 = new Ip6Nat(_ct6, NextRandom);
        static Verdict In(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt)
            => t.ConntrackEnabled ? t._ct6!.In(ref p, h, pkt) : Verdict.Accept;
        static Verdict Confirm(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt)
            => t.ConntrackEnabled ? t._ct6!.Confirm(ref p) : Verdict.Accept;
        static Verdict Nat(NetfilterTables t, HookPoint h, ref PacketContext p, Span<byte> pkt) => t.Nat6Hook(h, ref p, pkt);
        foreach (var h in new[] { HookPoint.PreRouting, HookPoint.LocalOut })
        {
            Hooks.Register(new NfHookOps(NfProto.Ipv6, h, NfPriority.Conntrack, "ipv6_conntrack_in", Stage.Conntrack, In));
            Hooks.Register(new NfHookOps(NfProto.Ipv6, h, NfPriority.NatDst, "nf_nat_ipv6_in", Stage.Nat, Nat));
        }
        foreach (var h in new[] { HookPoint.LocalIn, HookPoint.PostRouting })
        {
            Hooks.Register(new NfHookOps(NfProto.Ipv6, h, NfPriority.NatSrc, "nf_nat_ipv6_out", Stage.Nat, Nat));
            Hooks.Register(new NfHookOps(NfProto.Ipv6, h, NfPriority.ConntrackConfirm, "nf_confirm", Stage.Conntrack, Confirm));
        }
    }

    /// <summary>nf_nat_ipv6_fn / nf_nat_inet_fn: rules only for a connection's first packet, then the binding; ICMPv6
    /// errors RELATED to a NATed connection are translated (nf_nat_icmpv6_reply_translation).</summary>
    private Verdict Nat6Hook(HookPoint hook, ref PacketContext p, Span<byte> packet)
    {
        var nat = _tables[(int)TableKind.Nat];
        if (!ConntrackEnabled || nat == null) return Verdict.Accept;
        var ct = p.Ct;
        if (ct == null || ct.V6 == null || p.CtInfo is CtInfo.None or CtInfo.Untracked) return Verdict.Accept;
        var manip = hook is HookPoint.PreRouting or HookPoint.LocalOut ? NatManip.Dst : NatManip.Src;
        if (p.CtInfo is CtInfo.Related or CtInfo.RelatedReply && p.Protocol == Packets.IpProtocols.Icmpv6
            && PacketContext.IsIcmpv6Error(p.IcmpType))
            return _nat6!.IcmpReplyTranslation(ct, p.CtInfo, manip, ref p, packet) ? Verdict.Accept : Verdict.Drop;
        if (p.CtInfo is CtInfo.New or CtInfo.Related or CtInfo.RelatedReply && !NatEngine.Initialized(ct, manip))
        {
            if (nat.HookChain(hook) != null && Evaluate(nat, hook, ref p) == Verdict.Drop) return Verdict.Drop;
            if (!NatEngine.Initialized(ct, manip) && !_nat6!.AllocNullBinding(ct, manip)) return Verdict.Drop;
        }
        _nat6!.Packet(ct, p.CtInfo, manip, ref p, packet);
        return Verdict.Accept;
    }
}
