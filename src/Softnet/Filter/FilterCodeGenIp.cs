using static Softnet.Filter.FilterBlocks;

namespace Softnet.Filter;

/// <summary>The network and transport layers: hosts and nets, ports and port ranges, protocols.</summary>
internal sealed partial class FilterCodeGen
{
    private static string QualName(Qp p) => p switch
    {
        Qp.Sctp => "sctp", Qp.Tcp => "tcp", Qp.Udp => "udp", Qp.Icmp => "icmp", Qp.Igmp => "igmp", Qp.Igrp => "igrp",
        Qp.Icmpv6 => "icmp6", Qp.Ah => "ah", Qp.Esp => "esp", Qp.Pim => "pim", Qp.Vrrp => "vrrp", Qp.Esis => "esis",
        Qp.Isis => "isis", Qp.Clnp => "clnp", Qp.Stp => "stp", Qp.Netbeui => "netbeui", Qp.IsisL1 => "l1",
        Qp.IsisL2 => "l2", Qp.IsisIih => "iih", Qp.IsisSnp => "snp", Qp.IsisCsnp => "csnp", Qp.IsisPsnp => "psnp",
        Qp.IsisLsp => "lsp", Qp.Radio => "radio", Qp.Carp => "carp", Qp.Ip => "ip", Qp.Rarp => "rarp", Qp.Arp => "arp",
        Qp.Atalk => "atalk", Qp.Decnet => "decnet", Qp.Lat => "lat", Qp.Sca => "sca", Qp.Moprc => "moprc",
        Qp.Mopdl => "mopdl", Qp.Aarp => "aarp", Qp.Iso => "iso", Qp.Ipx => "ipx", Qp.Ipv6 => "ip6", Qp.Link => "link",
        _ => "?",
    };

    private Block GenHostop(uint addr, uint mask, Qd dir, uint proto, uint srcOff, uint dstOff)
    {
        Block b0, b1;
        uint offset;
        switch (dir)
        {
            case Qd.Src: offset = srcOff; break;
            case Qd.Dst: offset = dstOff; break;
            case Qd.And:
                b0 = GenHostop(addr, mask, Qd.Src, proto, srcOff, dstOff);
                b1 = GenHostop(addr, mask, Qd.Dst, proto, srcOff, dstOff);
                And(b0, b1);
                return b1;
            case Qd.Default or Qd.Or:
                b0 = GenHostop(addr, mask, Qd.Src, proto, srcOff, dstOff);
                b1 = GenHostop(addr, mask, Qd.Dst, proto, srcOff, dstOff);
                Or(b0, b1);
                return b1;
            default:
                throw Error(NotForAddresses(dir));
        }
        b0 = GenLinktype(proto);
        b1 = GenMcmp(OffRel.LinkPl, offset, BpfOp.W, addr, mask);
        And(b0, b1);
        return b1;
    }

    private static string NotForAddresses(Qd dir) => dir switch
    {
        Qd.Addr1 => "'addr1' and 'address1' are not valid qualifiers for addresses other than 802.11 MAC addresses",
        Qd.Addr2 => "'addr2' and 'address2' are not valid qualifiers for addresses other than 802.11 MAC addresses",
        Qd.Addr3 => "'addr3' and 'address3' are not valid qualifiers for addresses other than 802.11 MAC addresses",
        Qd.Addr4 => "'addr4' and 'address4' are not valid qualifiers for addresses other than 802.11 MAC addresses",
        Qd.Ra => "'ra' is not a valid qualifier for addresses other than 802.11 MAC addresses",
        _ => "'ta' is not a valid qualifier for addresses other than 802.11 MAC addresses",
    };

    private Block GenHostop6(ReadOnlySpan<uint> a, ReadOnlySpan<uint> m, Qd dir, uint proto, uint srcOff, uint dstOff)
    {
        Block b0, b1;
        uint offset;
        switch (dir)
        {
            case Qd.Src: offset = srcOff; break;
            case Qd.Dst: offset = dstOff; break;
            case Qd.And:
                b0 = GenHostop6(a, m, Qd.Src, proto, srcOff, dstOff);
                b1 = GenHostop6(a, m, Qd.Dst, proto, srcOff, dstOff);
                And(b0, b1);
                return b1;
            case Qd.Default or Qd.Or:
                b0 = GenHostop6(a, m, Qd.Src, proto, srcOff, dstOff);
                b1 = GenHostop6(a, m, Qd.Dst, proto, srcOff, dstOff);
                Or(b0, b1);
                return b1;
            default:
                throw Error(NotForAddresses(dir));
        }
        b1 = GenMcmp(OffRel.LinkPl, offset + 12, BpfOp.W, a[3], m[3]);
        b0 = GenMcmp(OffRel.LinkPl, offset + 8, BpfOp.W, a[2], m[2]);
        And(b0, b1);
        b0 = GenMcmp(OffRel.LinkPl, offset + 4, BpfOp.W, a[1], m[1]);
        And(b0, b1);
        b0 = GenMcmp(OffRel.LinkPl, offset + 0, BpfOp.W, a[0], m[0]);
        And(b0, b1);
        b0 = GenLinktype(proto);
        And(b0, b1);
        return b1;
    }

    private Block GenHost(uint addr, uint mask, Qp proto, Qd dir, Qa type)
    {
        string typestr = type == Qa.Net ? "net" : "host";
        switch (proto)
        {
            case Qp.Default:
                {
                    Block b0 = GenHost(addr, mask, Qp.Ip, dir, type);
                    if (_labelStackDepth == 0)
                    {
                        Block b1 = GenHost(addr, mask, Qp.Arp, dir, type);
                        Or(b0, b1);
                        b0 = GenHost(addr, mask, Qp.Rarp, dir, type);
                        Or(b1, b0);
                    }
                    return b0;
                }
            case Qp.Link: throw Error($"link-layer modifier applied to {typestr}");
            case Qp.Ip: return GenHostop(addr, mask, dir, EthertypeIp, 12, 16);
            case Qp.Rarp: return GenHostop(addr, mask, dir, EthertypeRevarp, 14, 24);
            case Qp.Arp: return GenHostop(addr, mask, dir, EthertypeArp, 14, 24);
            case Qp.Atalk: throw Error("AppleTalk host filtering not implemented");
            case Qp.Decnet: return GenDnhostop(addr, dir);
            case Qp.Lat: throw Error("LAT host filtering not implemented");
            case Qp.Sca: throw Error("SCA host filtering not implemented");
            case Qp.Moprc: throw Error("MOPRC host filtering not implemented");
            case Qp.Mopdl: throw Error("MOPDL host filtering not implemented");
            case Qp.Ipv6: throw Error("'ip6' modifier applied to ip host");
            case Qp.Aarp: throw Error("AARP host filtering not implemented");
            case Qp.Iso: throw Error("ISO host filtering not implemented");
            case Qp.Ipx: throw Error("IPX host filtering not implemented");
            case Qp.Undef: throw Error(FilterException.SemanticSyntaxError);
            default: throw Error($"'{QualName(proto)}' modifier applied to {typestr}");
        }
    }

    // gen_dnhostop: a DECnet routing header (long or short form, padded or not) with the node address, which
    // libpcap compares in host (little-endian) order as it was written.
    private Block GenDnhostop(uint addr, Qd dir)
    {
        Block b0, b1, b2, tmp;
        uint offLh, offSh;
        switch (dir)
        {
            case Qd.Dst: offSh = 1; offLh = 7; break;
            case Qd.Src: offSh = 3; offLh = 15; break;
            case Qd.And:
                b0 = GenDnhostop(addr, Qd.Src);
                b1 = GenDnhostop(addr, Qd.Dst);
                And(b0, b1);
                return b1;
            case Qd.Default or Qd.Or:
                b0 = GenDnhostop(addr, Qd.Src);
                b1 = GenDnhostop(addr, Qd.Dst);
                Or(b0, b1);
                return b1;
            default:
                throw Error(NotForAddresses(dir));
        }
        static uint Swap(uint x) => (x & 0xff) << 8 | (x >> 8) & 0xff;
        uint a = Swap(addr & 0xffff);
        b0 = GenLinktype(EthertypeDn);
        tmp = GenMcmp(OffRel.LinkPl, 2, BpfOp.H, Swap(0x0681), Swap(0x07ff));
        b1 = GenCmp(OffRel.LinkPl, 2 + 1 + offLh, BpfOp.H, a);
        And(tmp, b1);
        tmp = GenMcmp(OffRel.LinkPl, 2, BpfOp.B, 0x06, 0x7);
        b2 = GenCmp(OffRel.LinkPl, 2 + offLh, BpfOp.H, a);
        And(tmp, b2);
        Or(b2, b1);
        tmp = GenMcmp(OffRel.LinkPl, 2, BpfOp.H, Swap(0x0281), Swap(0x07ff));
        b2 = GenCmp(OffRel.LinkPl, 2 + 1 + offSh, BpfOp.H, a);
        And(tmp, b2);
        Or(b2, b1);
        tmp = GenMcmp(OffRel.LinkPl, 2, BpfOp.B, 0x02, 0x7);
        b2 = GenCmp(OffRel.LinkPl, 2 + offSh, BpfOp.H, a);
        And(tmp, b2);
        Or(b2, b1);
        And(b0, b1);
        return b1;
    }

    private Block GenHost6(ReadOnlySpan<uint> a, ReadOnlySpan<uint> m, Qp proto, Qd dir, Qa type)
    {
        string typestr = type == Qa.Net ? "net" : "host";
        return proto switch
        {
            Qp.Default or Qp.Ipv6 => GenHostop6(a, m, dir, EthertypeIpv6, 8, 24),
            Qp.Link => throw Error($"link-layer modifier applied to ip6 {typestr}"),
            Qp.Atalk => throw Error($"AppleTalk modifier applied to ip6 {typestr}"),
            Qp.Undef => throw Error(FilterException.SemanticSyntaxError),
            _ => throw Error($"'{QualName(proto)}' modifier applied to ip6 {typestr}"),
        };
    }

    // ----- ports -----

    private Block GenIpfrag()
    {
        Stmt s = GenLoadA(OffRel.LinkPl, 6, BpfOp.H);
        var b = new Block(BpfOp.Jmp | BpfOp.Jset) { K = 0x1fff, Stmts = s };
        Not(b);
        return b;
    }

    private Block GenPortAtom(uint off, uint v) => GenCmp(OffRel.TranIpv4, off, BpfOp.H, v);

    private Block GenPortAtom6(uint off, uint v) => GenCmp(OffRel.TranIpv6, off, BpfOp.H, v);

    private Block DirPair(Qd dir, Func<uint, Block> atom, string what)
    {
        Block tmp, b1;
        switch (dir)
        {
            case Qd.Src: return atom(0);
            case Qd.Dst: return atom(2);
            case Qd.And:
                tmp = atom(0);
                b1 = atom(2);
                And(tmp, b1);
                return b1;
            case Qd.Default or Qd.Or:
                tmp = atom(0);
                b1 = atom(2);
                Or(tmp, b1);
                return b1;
            default:
                throw Error(dir switch
                {
                    Qd.Addr1 => $"'addr1' and 'address1' are not valid qualifiers for {what}",
                    Qd.Addr2 => $"'addr2' and 'address2' are not valid qualifiers for {what}",
                    Qd.Addr3 => $"'addr3' and 'address3' are not valid qualifiers for {what}",
                    Qd.Addr4 => $"'addr4' and 'address4' are not valid qualifiers for {what}",
                    Qd.Ra => $"'ra' is not a valid qualifier for {what}",
                    _ => $"'ta' is not a valid qualifier for {what}",
                });
        }
    }

    private Block GenPortop(uint port, uint proto, Qd dir)
    {
        Block tmp = GenCmp(OffRel.LinkPl, 9, BpfOp.B, proto);
        Block b0 = GenIpfrag();
        And(tmp, b0);
        Block b1 = DirPair(dir, off => GenPortAtom(off, port), "ports");
        And(b0, b1);
        return b1;
    }

    private Block GenPortop6(uint port, uint proto, Qd dir)
    {
        Block b0 = GenCmp(OffRel.LinkPl, 6, BpfOp.B, proto);
        Block b1 = DirPair(dir, off => GenPortAtom6(off, port), "ports");
        And(b0, b1);
        return b1;
    }

    private Block ForIpProtos(uint ipProto, Func<uint, Block> op)
    {
        if (ipProto != ProtoUndef) return op(ipProto);
        Block tmp = op(IpprotoTcp);
        Block b1 = op(IpprotoUdp);
        Or(tmp, b1);
        tmp = op(IpprotoSctp);
        Or(tmp, b1);
        return b1;
    }

    private Block GenPort(uint port, uint ipProto, Qd dir)
    {
        Block b0 = GenLinktype(EthertypeIp);
        Block b1 = ForIpProtos(ipProto, p => GenPortop(port, p, dir));
        And(b0, b1);
        return b1;
    }

    private Block GenPort6(uint port, uint ipProto, Qd dir)
    {
        Block b0 = GenLinktype(EthertypeIpv6);
        Block b1 = ForIpProtos(ipProto, p => GenPortop6(port, p, dir));
        And(b0, b1);
        return b1;
    }

    private Block GenPortRangeAtom(OffRel rel, uint off, uint v1, uint v2)
    {
        if (v1 > v2) (v1, v2) = (v2, v1);
        Block b1 = GenCmpGe(rel, off, BpfOp.H, v1);
        Block b2 = GenCmpLe(rel, off, BpfOp.H, v2);
        And(b1, b2);
        return b2;
    }

    private Block GenPortRangeop(uint p1, uint p2, uint proto, Qd dir)
    {
        Block tmp = GenCmp(OffRel.LinkPl, 9, BpfOp.B, proto);
        Block b0 = GenIpfrag();
        And(tmp, b0);
        Block b1 = DirPair(dir, off => GenPortRangeAtom(OffRel.TranIpv4, off, p1, p2), "port ranges");
        And(b0, b1);
        return b1;
    }

    private Block GenPortRangeop6(uint p1, uint p2, uint proto, Qd dir)
    {
        Block b0 = GenCmp(OffRel.LinkPl, 6, BpfOp.B, proto);
        Block b1 = DirPair(dir, off => GenPortRangeAtom(OffRel.TranIpv6, off, p1, p2), "port ranges");
        And(b0, b1);
        return b1;
    }

    private Block GenPortRange(uint p1, uint p2, uint ipProto, Qd dir)
    {
        Block b0 = GenLinktype(EthertypeIp);
        Block b1 = ForIpProtos(ipProto, p => GenPortRangeop(p1, p2, p, dir));
        And(b0, b1);
        return b1;
    }

    private Block GenPortRange6(uint p1, uint p2, uint ipProto, Qd dir)
    {
        Block b0 = GenLinktype(EthertypeIpv6);
        Block b1 = ForIpProtos(ipProto, p => GenPortRangeop6(p1, p2, p, dir));
        And(b0, b1);
        return b1;
    }

    // ----- protocols -----

    private Block GenProto(uint v, Qp proto, Qd dir)
    {
        if (dir != Qd.Default) throw Error("direction applied to 'proto'");
        Block b0, b1, b2;
        switch (proto)
        {
            case Qp.Default:
                b0 = GenProto(v, Qp.Ip, dir);
                b1 = GenProto(v, Qp.Ipv6, dir);
                Or(b0, b1);
                return b1;
            case Qp.Link:
                return GenLinktype(v);
            case Qp.Ip:
                b0 = GenLinktype(EthertypeIp);
                b1 = GenCmp(OffRel.LinkPl, 9, BpfOp.B, v);
                And(b0, b1);
                return b1;
            case Qp.Ipv6:
                // The protocol as the next header, or behind one fragment header (as libpcap checks it).
                b0 = GenLinktype(EthertypeIpv6);
                b2 = GenCmp(OffRel.LinkPl, 6, BpfOp.B, IpprotoFragment);
                b1 = GenCmp(OffRel.LinkPl, 40, BpfOp.B, v);
                And(b2, b1);
                b2 = GenCmp(OffRel.LinkPl, 6, BpfOp.B, v);
                Or(b2, b1);
                And(b0, b1);
                return b1;
            case Qp.Iso:
                if (_linktype == Dlt.Ppp) throw NotSupported("'iso proto' over PPP");
                b0 = GenLinktype(LlcsapIsons);
                b1 = GenCmp(OffRel.LinkPlNoSnap, 0, BpfOp.B, v);
                And(b0, b1);
                return b1;
            case Qp.Isis:
                b0 = GenProto(Iso10589Isis, Qp.Iso, Qd.Default);
                b1 = GenCmp(OffRel.LinkPlNoSnap, 4, BpfOp.B, v);
                And(b0, b1);
                return b1;
            case Qp.Arp: throw Error("arp does not encapsulate another protocol");
            case Qp.Rarp: throw Error("rarp does not encapsulate another protocol");
            case Qp.Sctp or Qp.Tcp or Qp.Udp or Qp.Icmp or Qp.Igmp or Qp.Igrp:
                throw Error($"'{QualName(proto)} proto' is bogus");
            case Qp.Atalk: throw Error("AppleTalk encapsulation is not specifiable");
            case Qp.Decnet: throw Error("DECNET encapsulation is not specifiable");
            case Qp.Lat: throw Error("LAT does not encapsulate another protocol");
            case Qp.Sca: throw Error("SCA does not encapsulate another protocol");
            case Qp.Moprc: throw Error("MOPRC does not encapsulate another protocol");
            case Qp.Mopdl: throw Error("MOPDL does not encapsulate another protocol");
            case Qp.Icmpv6: throw Error("'icmp6 proto' is bogus");
            case Qp.Ah: throw Error("'ah proto' is bogus");
            case Qp.Esp: throw Error("'esp proto' is bogus");
            case Qp.Pim: throw Error("'pim proto' is bogus");
            case Qp.Vrrp: throw Error("'vrrp proto' is bogus");
            case Qp.Aarp: throw Error("'aarp proto' is bogus");
            case Qp.Esis: throw Error("'esis proto' is bogus");
            case Qp.Clnp: throw Error("'clnp proto' is bogus");
            case Qp.Stp: throw Error("'stp proto' is bogus");
            case Qp.Ipx: throw Error("'ipx proto' is bogus");
            case Qp.Netbeui: throw Error("'netbeui proto' is bogus");
            case Qp.Radio: throw Error("'radio proto' is bogus");
            case Qp.Carp: throw Error("'carp proto' is bogus");
            case Qp.Undef: throw Error(FilterException.SemanticSyntaxError);
            default: throw Error($"'{QualName(proto)} proto' is bogus");
        }
    }

    private Block GenProtoAbbrev(Qp proto)
    {
        Block b0, b1;
        switch (proto)
        {
            case Qp.Sctp: return GenProto(IpprotoSctp, Qp.Default, Qd.Default);
            case Qp.Tcp: return GenProto(IpprotoTcp, Qp.Default, Qd.Default);
            case Qp.Udp: return GenProto(IpprotoUdp, Qp.Default, Qd.Default);
            case Qp.Icmp: return GenProto(IpprotoIcmp, Qp.Ip, Qd.Default);
            case Qp.Igmp: return GenProto(IpprotoIgmp, Qp.Ip, Qd.Default);
            case Qp.Igrp: return GenProto(IpprotoIgrp, Qp.Ip, Qd.Default);
            case Qp.Pim: return GenProto(IpprotoPim, Qp.Default, Qd.Default);
            case Qp.Vrrp: return GenProto(IpprotoVrrp, Qp.Ip, Qd.Default);
            case Qp.Carp: return GenProto(IpprotoCarp, Qp.Ip, Qd.Default);
            case Qp.Ip: return GenLinktype(EthertypeIp);
            case Qp.Arp: return GenLinktype(EthertypeArp);
            case Qp.Rarp: return GenLinktype(EthertypeRevarp);
            case Qp.Link: throw Error("link layer applied in wrong context");
            case Qp.Atalk: return GenLinktype(EthertypeAtalk);
            case Qp.Aarp: return GenLinktype(EthertypeAarp);
            case Qp.Decnet: return GenLinktype(EthertypeDn);
            case Qp.Sca: return GenLinktype(EthertypeSca);
            case Qp.Lat: return GenLinktype(EthertypeLat);
            case Qp.Mopdl: return GenLinktype(EthertypeMopdl);
            case Qp.Moprc: return GenLinktype(EthertypeMoprc);
            case Qp.Ipv6: return GenLinktype(EthertypeIpv6);
            case Qp.Icmpv6: return GenProto(IpprotoIcmpv6, Qp.Ipv6, Qd.Default);
            case Qp.Ah: return GenProto(IpprotoAh, Qp.Default, Qd.Default);
            case Qp.Esp: return GenProto(IpprotoEsp, Qp.Default, Qd.Default);
            case Qp.Iso: return GenLinktype(LlcsapIsons);
            case Qp.Esis: return GenProto(Iso9542Esis, Qp.Iso, Qd.Default);
            case Qp.Isis: return GenProto(Iso10589Isis, Qp.Iso, Qd.Default);
            case Qp.IsisL1: return OrChain([IsisL1LanIih, IsisPtpIih, IsisL1Lsp, IsisL1Csnp, IsisL1Psnp]);
            case Qp.IsisL2: return OrChain([IsisL2LanIih, IsisPtpIih, IsisL2Lsp, IsisL2Csnp, IsisL2Psnp]);
            case Qp.IsisIih: return OrChain([IsisL1LanIih, IsisL2LanIih, IsisPtpIih]);
            case Qp.IsisLsp: return OrChain([IsisL1Lsp, IsisL2Lsp]);
            case Qp.IsisSnp: return OrChain([IsisL1Csnp, IsisL2Csnp, IsisL1Psnp, IsisL2Psnp]);
            case Qp.IsisCsnp: return OrChain([IsisL1Csnp, IsisL2Csnp]);
            case Qp.IsisPsnp: return OrChain([IsisL1Psnp, IsisL2Psnp]);
            case Qp.Clnp: return GenProto(Iso8473Clnp, Qp.Iso, Qd.Default);
            case Qp.Stp: return GenLinktype(Llcsap8021D);
            case Qp.Ipx: return GenLinktype(LlcsapIpx);
            case Qp.Netbeui: return GenLinktype(LlcsapNetbeui);
            case Qp.Radio: throw Error("'radio' is not a valid protocol type");
        }
        throw Error(FilterException.SemanticSyntaxError);

        // The IS-IS PDU type sets: the first two or-ed, then each further one or-ed onto them.
        Block OrChain(uint[] types)
        {
            b0 = GenProto(types[0], Qp.Isis, Qd.Default);
            b1 = GenProto(types[1], Qp.Isis, Qd.Default);
            Or(b0, b1);
            for (int i = 2; i < types.Length; i++)
            {
                b0 = GenProto(types[i], Qp.Isis, Qd.Default);
                Or(b0, b1);
            }
            return b1;
        }
    }
}
