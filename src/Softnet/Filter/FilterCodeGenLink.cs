using static Softnet.Filter.FilterBlocks;

namespace Softnet.Filter;

/// <summary>The link layer: gen_linktype and its per-DLT helpers, Ethernet addresses, VLAN, MPLS, PPPoE.</summary>
internal sealed partial class FilterCodeGen
{
    private const uint PppIp = 0x21, PppIpv6 = 0x57, PppDecnet = 0x27, PppApple = 0x29, PppNs = 0x25, PppOsi = 0x23,
        PppBrpdu = 0x31, PppIpx = 0x2b, PppMplsUcast = 0x281;

    private Block GenLinktype(uint proto)
    {
        if (_labelStackDepth > 0) return GenMplsLinktype(proto);
        switch (_linktype)
        {
            case Dlt.En10Mb:
                return GenEtherLinktype(proto);
            case Dlt.LinuxSll:
                return GenLinuxSllLinktype(proto);
            case Dlt.Raw:
                return proto switch
                {
                    EthertypeIp => GenMcmp(OffRel.LinkHdr, 0, BpfOp.B, 0x40, 0xf0),
                    EthertypeIpv6 => GenMcmp(OffRel.LinkHdr, 0, BpfOp.B, 0x60, 0xf0),
                    _ => GenFalse(),
                };
            case Dlt.Ipv4:
                return proto == EthertypeIp ? GenTrue() : GenFalse();
            case Dlt.Ipv6:
                return proto == EthertypeIpv6 ? GenTrue() : GenFalse();
            case Dlt.Ppp:
                return GenCmp(OffRel.LinkType, 0, BpfOp.H, EthertypeToPpptype(proto));
            default:
                // DLT_LINUX_SLL2 and the rest: the link-layer type field holds the Ethernet type.
                if (_offLinkType.ConstantPart != NotSet) return GenCmp(OffRel.LinkType, 0, BpfOp.H, proto);
                throw Error($"{Describe(_linktype)} link-layer type filtering not implemented");
        }
    }

    private static uint EthertypeToPpptype(uint proto) => proto switch
    {
        EthertypeIp => PppIp, EthertypeIpv6 => PppIpv6, EthertypeDn => PppDecnet, EthertypeAtalk => PppApple,
        EthertypeNs => PppNs, LlcsapIsons => PppOsi, Llcsap8021D => PppBrpdu, LlcsapIpx => PppIpx, _ => proto,
    };

    // gen_ether_linktype: a value up to ETHERMTU is an 802.2 SAP behind a length field, above it an Ethernet type.
    private Block GenEtherLinktype(uint proto)
    {
        Block b0, b1;
        switch (proto)
        {
            case LlcsapIsons or LlcsapIp or LlcsapNetbeui:
                b0 = GenCmpGt(OffRel.LinkType, 0, BpfOp.H, EtherMtu);
                Not(b0);
                b1 = GenCmp(OffRel.Llc, 0, BpfOp.H, proto << 8 | proto);
                And(b0, b1);
                return b1;
            case LlcsapIpx:
                b0 = GenCmp(OffRel.Llc, 0, BpfOp.B, LlcsapIpx);
                b1 = GenCmp(OffRel.Llc, 0, BpfOp.H, 0xffff);
                Or(b0, b1);
                b0 = GenSnap(0x000000, EthertypeIpx);
                Or(b0, b1);
                b0 = GenCmpGt(OffRel.LinkType, 0, BpfOp.H, EtherMtu);
                Not(b0);
                And(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, EthertypeIpx);
                Or(b0, b1);
                return b1;
            case EthertypeAtalk or EthertypeAarp:
                b0 = GenCmpGt(OffRel.LinkType, 0, BpfOp.H, EtherMtu);
                Not(b0);
                b1 = proto == EthertypeAtalk ? GenSnap(0x080007, EthertypeAtalk) : GenSnap(0x000000, EthertypeAarp);
                And(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, proto);
                Or(b0, b1);
                return b1;
            default:
                if (proto <= EtherMtu)
                {
                    b0 = GenCmpGt(OffRel.LinkType, 0, BpfOp.H, EtherMtu);
                    Not(b0);
                    b1 = GenCmp(OffRel.LinkType, 2, BpfOp.B, proto);
                    And(b0, b1);
                    return b1;
                }
                return GenCmp(OffRel.LinkType, 0, BpfOp.H, proto);
        }
    }

    private Block GenLinuxSllLinktype(uint proto)
    {
        Block b0, b1;
        switch (proto)
        {
            case LlcsapIsons or LlcsapIp or LlcsapNetbeui:
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, LinuxSllP8022);
                b1 = GenCmp(OffRel.Llc, 0, BpfOp.H, proto << 8 | proto);
                And(b0, b1);
                return b1;
            case LlcsapIpx:
                b0 = GenCmp(OffRel.Llc, 0, BpfOp.B, LlcsapIpx);
                b1 = GenSnap(0x000000, EthertypeIpx);
                Or(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, LinuxSllP8022);
                And(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, LinuxSllP8023);
                Or(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, EthertypeIpx);
                Or(b0, b1);
                return b1;
            case EthertypeAtalk or EthertypeAarp:
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, LinuxSllP8022);
                b1 = proto == EthertypeAtalk ? GenSnap(0x080007, EthertypeAtalk) : GenSnap(0x000000, EthertypeAarp);
                And(b0, b1);
                b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, proto);
                Or(b0, b1);
                return b1;
            default:
                if (proto <= EtherMtu)
                {
                    b0 = GenCmp(OffRel.LinkType, 0, BpfOp.H, LinuxSllP8022);
                    b1 = GenCmp(OffRel.LinkHdr, _offLinkPl.ConstantPart, BpfOp.B, proto);
                    And(b0, b1);
                    return b1;
                }
                return GenCmp(OffRel.LinkType, 0, BpfOp.H, proto);
        }
    }

    private Block GenSnap(uint orgcode, uint ptype)
    {
        ReadOnlySpan<byte> snap =
        [
            (byte)LlcsapSnap, (byte)LlcsapSnap, 0x03, (byte)(orgcode >> 16), (byte)(orgcode >> 8), (byte)orgcode,
            (byte)(ptype >> 8), (byte)ptype,
        ];
        return GenBcmp(OffRel.Llc, 0, 8, snap);
    }

    private Block GenMplsLinktype(uint proto)
    {
        Block b0, b1;
        switch (proto)
        {
            case EthertypeIp:
                b0 = GenMcmp(OffRel.LinkPl, unchecked((uint)-2), BpfOp.B, 0x01, 0x01);
                b1 = GenMcmp(OffRel.LinkPl, 0, BpfOp.B, 0x40, 0xf0);
                And(b0, b1);
                return b1;
            case EthertypeIpv6:
                b0 = GenMcmp(OffRel.LinkPl, unchecked((uint)-2), BpfOp.B, 0x01, 0x01);
                b1 = GenMcmp(OffRel.LinkPl, 0, BpfOp.B, 0x60, 0xf0);
                And(b0, b1);
                return b1;
            default:
                throw Error("unsupported protocol over mpls");
        }
    }

    // gen_ehostop: Ethernet source at 6, destination at 0 of the link header.
    private Block GenEhostop(ReadOnlySpan<byte> eaddr, Qd dir)
    {
        Block b0, b1;
        switch (dir)
        {
            case Qd.Src: return GenBcmp(OffRel.LinkHdr, 6, 6, eaddr);
            case Qd.Dst: return GenBcmp(OffRel.LinkHdr, 0, 6, eaddr);
            case Qd.And:
                b0 = GenEhostop(eaddr, Qd.Src);
                b1 = GenEhostop(eaddr, Qd.Dst);
                And(b0, b1);
                return b1;
            case Qd.Default or Qd.Or:
                b0 = GenEhostop(eaddr, Qd.Src);
                b1 = GenEhostop(eaddr, Qd.Dst);
                Or(b0, b1);
                return b1;
            default:
                throw Error(Wlan80211Only(dir));
        }
    }

    private static string Wlan80211Only(Qd dir) => dir switch
    {
        Qd.Addr1 => "'addr1' and 'address1' are only supported on 802.11 with 802.11 headers",
        Qd.Addr2 => "'addr2' and 'address2' are only supported on 802.11 with 802.11 headers",
        Qd.Addr3 => "'addr3' and 'address3' are only supported on 802.11 with 802.11 headers",
        Qd.Addr4 => "'addr4' and 'address4' are only supported on 802.11 with 802.11 headers",
        Qd.Ra => "'ra' is only supported on 802.11 with 802.11 headers",
        _ => "'ta' is only supported on 802.11 with 802.11 headers",
    };

    private Block GenVlan(uint vlanNum, bool hasTag)
    {
        if (_labelStackDepth > 0) throw Error("no VLAN match after MPLS");
        if (_linktype != Dlt.En10Mb) throw Error($"no VLAN support for {Describe(_linktype)}");
        // Offline there is no SKF_AD_VLAN_TAG_PRESENT: the tag is in the frame, as gen_vlan_no_bpf_extensions reads it.
        Block b0 = GenLinktype(Ethertype8021Q);
        Block b1 = GenLinktype(Ethertype8021Ad);
        Or(b0, b1);
        b0 = b1;
        b1 = GenLinktype(Ethertype8021QinQ);
        Or(b0, b1);
        b0 = b1;
        if (hasTag)
        {
            if (vlanNum > 0x0fff) throw Error($"VLAN tag {vlanNum} greater than maximum {0x0fff}");
            b1 = GenMcmp(OffRel.LinkPl, 0, BpfOp.H, vlanNum, 0x0fff);
            And(b0, b1);
            b0 = b1;
        }
        _offLinkPl.ConstantPart += 4;
        _offLinkType.ConstantPart += 4;
        _vlanStackDepth++;
        return b0;
    }

    private Block GenMpls(uint label, bool hasLabel)
    {
        Block b0;
        if (_labelStackDepth > 0) b0 = GenMcmp(OffRel.PrevMplsHdr, 2, BpfOp.B, 0, 0x01);
        else
        {
            b0 = _linktype switch
            {
                Dlt.En10Mb => GenLinktype(EthertypeMpls),
                Dlt.Ppp => GenLinktype(PppMplsUcast),
                _ => throw Error($"no MPLS support for {Describe(_linktype)}"),
            };
        }
        if (hasLabel)
        {
            if (label > 0xfffff) throw Error($"MPLS label {label} greater than maximum {0xfffff}");
            Block b1 = GenMcmp(OffRel.LinkPl, 0, BpfOp.W, label << 12, 0xfffff000);
            And(b0, b1);
            b0 = b1;
        }
        _offNlNoSnap += 4;
        _offNl += 4;
        _labelStackDepth++;
        return b0;
    }

    private Block GenPppoes(uint sess, bool hasSess)
    {
        Block b0 = GenLinktype(EthertypePppoes);
        if (hasSess)
        {
            if (sess > 0xffff) throw Error($"PPPoE session number {sess} greater than maximum {0xffff}");
            Block b1 = GenMcmp(OffRel.LinkPl, 0, BpfOp.W, sess, 0x0000ffff);
            And(b0, b1);
            b0 = b1;
        }
        // PUSH_LINKHDR(DLT_PPP): what follows is PPP inside the PPPoE session payload.
        _offPrevLinkHdr = _offLinkHdr;
        _linktype = Dlt.Ppp;
        _offLinkHdr = new AbsOffset { IsVariable = _offLinkPl.IsVariable, ConstantPart = _offLinkPl.ConstantPart + _offNl + 6, Reg = _offLinkPl.Reg };
        _offLinkType = _offLinkHdr;
        _offLinkPl.ConstantPart = _offLinkHdr.ConstantPart + 2;
        _offNl = 0;
        _offNlNoSnap = 0;
        return b0;
    }
}
