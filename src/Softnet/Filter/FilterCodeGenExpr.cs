using System.Globalization;
using System.Net;
using System.Net.Sockets;
using static Softnet.Filter.FilterBlocks;

namespace Softnet.Filter;

/// <summary>Ids with their qualifiers (gen_scode, gen_ncode, gen_mcode, gen_mcode6, gen_ecode), arithmetic and the "other" primitives.</summary>
internal sealed partial class FilterCodeGen
{
    private Block GenId(IdNode id)
    {
        Qual q = id.Q;
        switch (id.Kind)
        {
            case IdKind.Name: return GenScode(id.Text, q);
            case IdKind.Num: return GenNcode(null, id.Value, q);
            case IdKind.Hid:
                if (q.Addr == Qa.Port) throw Error("'port' modifier applied to ip host");
                if (q.Addr == Qa.Portrange) throw Error("'portrange' modifier applied to ip host");
                if (q.Addr == Qa.Proto) throw Error("'proto' modifier applied to ip host");
                if (q.Addr == Qa.Protochain) throw Error("'protochain' modifier applied to ip host");
                return GenNcode(id.Text, 0, q);
            case IdKind.HidLen: return GenMcode(id.Text, null, id.Value, q);
            case IdKind.HidMask: return GenMcode(id.Text, id.Text2, 0, q);
            case IdKind.Hid6 or IdKind.Hid6Len: return GenMcode6(id.Text, id.Value, q);
            case IdKind.Eid: return GenEcode(id.Text, q);
            default: throw NotSupported("ARCnet addresses");
        }
    }

    // __pcap_atoin: dotted decimal with 1 to 4 parts; the length in bits, or -1.
    private static int Atoin(string s, out uint addr)
    {
        addr = 0;
        int len = 0;
        foreach (string part in s.Split('.'))
        {
            uint n = 0;
            foreach (char c in part)
            {
                if (n > 25) return -1;
                n = n * 10 + (uint)(c - '0');
            }
            if (n > 255) return -1;
            addr = addr << 8 | n;
            len += 8;
        }
        return len;
    }

    private Block GenScode(string name, Qual q)
    {
        switch (q.Addr)
        {
            case Qa.Net:
                throw NotSupported($"network name '{name}' (getnetbyname)");
            case Qa.Default or Qa.Host:
                if (q.Proto == Qp.Link) throw NotSupported($"Ethernet host name '{name}' (ethers)");
                if (q.Proto == Qp.Decnet) throw NotSupported($"DECnet host name '{name}'");
                throw NotSupported($"host name '{name}' (name resolution)");
            case Qa.Port:
                {
                    if (q.Proto != Qp.Default && q.Proto != Qp.Udp && q.Proto != Qp.Tcp && q.Proto != Qp.Sctp)
                        throw Error("illegal qualifier of 'port'");
                    if (!FilterNames.TryPort(name, out uint port, out uint realProto)) throw Error($"unknown port '{name}'");
                    realProto = NarrowPortProto(q.Proto, realProto, name, "port");
                    if (port > 65535) throw Error($"illegal port number {port} > 65535");
                    Block b = GenPort(port, realProto, q.Dir);
                    Or(GenPort6(port, realProto, q.Dir), b);
                    return b;
                }
            case Qa.Portrange:
                {
                    if (q.Proto != Qp.Default && q.Proto != Qp.Udp && q.Proto != Qp.Tcp && q.Proto != Qp.Sctp)
                        throw Error("illegal qualifier of 'portrange'");
                    if (!FilterNames.TryPortRange(name, out uint p1, out uint p2, out uint realProto))
                        throw Error($"unknown port in range '{name}'");
                    realProto = NarrowPortProto(q.Proto, realProto, name, "port in range");
                    if (p1 > 65535) throw Error($"illegal port number {p1} > 65535");
                    if (p2 > 65535) throw Error($"illegal port number {p2} > 65535");
                    Block b = GenPortRange(p1, p2, realProto, q.Dir);
                    Or(GenPortRange6(p1, p2, realProto, q.Dir), b);
                    return b;
                }
            case Qa.Gateway:
                throw NotSupported("'gateway'");
            case Qa.Proto:
                return GenProto(LookupProto(name, q.Proto), q.Proto, q.Dir);
            case Qa.Protochain:
                return GenProtochain(LookupProto(name, q.Proto), q.Proto);
            default:
                throw Error(FilterException.SemanticSyntaxError);
        }
    }

    private uint NarrowPortProto(Qp proto, uint realProto, string name, string what)
    {
        switch (proto)
        {
            case Qp.Udp:
                if (realProto == IpprotoTcp) throw Error($"{what} '{name}' is tcp");
                if (realProto == IpprotoSctp) throw Error($"{what} '{name}' is sctp");
                return IpprotoUdp;
            case Qp.Tcp:
                if (realProto == IpprotoUdp) throw Error($"{what} '{name}' is udp");
                if (realProto == IpprotoSctp) throw Error($"{what} '{name}' is sctp");
                return IpprotoTcp;
            case Qp.Sctp:
                if (realProto == IpprotoUdp) throw Error($"{what} '{name}' is udp");
                if (realProto == IpprotoTcp) throw Error($"{what} '{name}' is tcp");
                return IpprotoSctp;
            default:
                return realProto;
        }
    }

    private uint LookupProto(string name, Qp proto)
    {
        switch (proto)
        {
            case Qp.Default or Qp.Ip or Qp.Ipv6:
                if (!FilterNames.TryIpProto(name, out uint v)) throw Error($"unknown ip proto '{name}'");
                return v;
            case Qp.Link:
                if (FilterNames.TryEtherProto(name, out uint e)) return e;
                throw Error($"unknown ether proto '{name}'");
            case Qp.Iso:
                return name switch
                {
                    "esis" => Iso9542Esis, "isis" => Iso10589Isis, "clnp" => Iso8473Clnp,
                    _ => throw Error($"unknown osi proto '{name}'"),
                };
            default:
                throw Error($"unknown protocol: {name}");
        }
    }

    private Block GenNcode(string? s, uint v, Qual q)
    {
        Qp proto = q.Proto;
        int vlen;
        if (s == null) vlen = 32;
        else if (proto == Qp.Decnet)
        {
            // __pcap_atodn: "area.node", area in the top 6 of 16 bits.
            var m = System.Text.RegularExpressions.Regex.Match(s, @"^(\d+)\.(\d+)");
            if (!m.Success) throw Error($"malformed decnet address '{s}'");
            uint area = uint.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), node = uint.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
            v = (area << 10) & 0xfc00 | node & 0x3ff;
            vlen = 32;
        }
        else
        {
            vlen = Atoin(s, out v);
            if (vlen < 0) throw Error($"invalid IPv4 address '{s}'");
        }
        switch (q.Addr)
        {
            case Qa.Default or Qa.Host or Qa.Net:
                {
                    if (proto == Qp.Decnet) return GenHost(v, 0, proto, q.Dir, q.Addr);
                    if (proto == Qp.Link) throw Error("illegal link layer address");
                    uint mask = 0xffffffff;
                    if (s == null && q.Addr == Qa.Net)
                    {
                        while (v != 0 && (v & 0xff000000) == 0)
                        {
                            v <<= 8;
                            mask <<= 8;
                        }
                    }
                    else
                    {
                        // C shifts by 32 - vlen; a shift by 32 leaves the value as it was on the machines libpcap runs on.
                        v = vlen == 0 ? v : v << (32 - vlen);
                        mask = vlen == 0 ? mask : mask << (32 - vlen);
                    }
                    return GenHost(v, mask, proto, q.Dir, q.Addr);
                }
            case Qa.Port:
                {
                    uint ipProto = PortProto(proto, "port");
                    if (v > 65535) throw Error($"illegal port number {v} > 65535");
                    Block b = GenPort(v, ipProto, q.Dir);
                    Or(GenPort6(v, ipProto, q.Dir), b);
                    return b;
                }
            case Qa.Portrange:
                {
                    uint ipProto = PortProto(proto, "portrange");
                    if (v > 65535) throw Error($"illegal port number {v} > 65535");
                    Block b = GenPortRange(v, v, ipProto, q.Dir);
                    Or(GenPortRange6(v, v, ipProto, q.Dir), b);
                    return b;
                }
            case Qa.Gateway:
                throw Error("'gateway' requires a name");
            case Qa.Proto:
                return GenProto(v, proto, q.Dir);
            case Qa.Protochain:
                return GenProtochain(v, proto);
            default:
                throw Error(FilterException.SemanticSyntaxError);
        }
    }

    private uint PortProto(Qp proto, string what) => proto switch
    {
        Qp.Udp => IpprotoUdp,
        Qp.Tcp => IpprotoTcp,
        Qp.Sctp => IpprotoSctp,
        Qp.Default => ProtoUndef,
        _ => throw Error($"illegal qualifier of '{what}'"),
    };

    private Block GenMcode(string s1, string? s2, uint masklen, Qual q)
    {
        int nlen = Atoin(s1, out uint n);
        if (nlen < 0) throw Error($"invalid IPv4 address '{s1}'");
        n = nlen == 32 ? n : n << (32 - nlen);
        uint m;
        if (s2 != null)
        {
            int mlen = Atoin(s2, out m);
            if (mlen < 0) throw Error($"invalid IPv4 address '{s2}'");
            m = mlen == 32 ? m : m << (32 - mlen);
            if ((n & ~m) != 0) throw Error($"non-network bits set in \"{s1} mask {s2}\"");
        }
        else
        {
            if (masklen > 32) throw Error("mask length must be <= 32");
            m = masklen == 0 ? 0 : 0xffffffff << (int)(32 - masklen);
            if ((n & ~m) != 0) throw Error($"non-network bits set in \"{s1}/{(int)masklen}\"");
        }
        if (q.Addr == Qa.Net) return GenHost(n, m, q.Proto, q.Dir, q.Addr);
        throw Error("Mask syntax for networks only");
    }

    private Block GenMcode6(string s1, uint masklen, Qual q)
    {
        if (!IPAddress.TryParse(s1, out var ip) || ip.AddressFamily != AddressFamily.InterNetworkV6)
            throw Error($"invalid ip6 address {s1}");
        if (masklen > 128) throw Error("mask length must be <= 128");
        Span<byte> a = stackalloc byte[16];
        ip.TryWriteBytes(a, out _);
        Span<byte> m = stackalloc byte[16];
        for (int i = 0; i < (int)masklen / 8; i++) m[i] = 0xff;
        if (masklen % 8 != 0) m[(int)masklen / 8] = (byte)(0xff << (int)(8 - masklen % 8));
        Span<uint> aw = stackalloc uint[4], mw = stackalloc uint[4];
        for (int i = 0; i < 4; i++)
        {
            aw[i] = (uint)(a[4 * i] << 24 | a[4 * i + 1] << 16 | a[4 * i + 2] << 8 | a[4 * i + 3]);
            mw[i] = (uint)(m[4 * i] << 24 | m[4 * i + 1] << 16 | m[4 * i + 2] << 8 | m[4 * i + 3]);
            if ((aw[i] & ~mw[i]) != 0) throw Error($"non-network bits set in \"{s1}/{(int)masklen}\"");
        }
        switch (q.Addr)
        {
            case Qa.Default or Qa.Host:
                if (masklen != 128) throw Error("Mask syntax for networks only");
                return GenHost6(aw, mw, q.Proto, q.Dir, q.Addr);
            case Qa.Net:
                return GenHost6(aw, mw, q.Proto, q.Dir, q.Addr);
            default:
                throw Error("invalid qualifier against IPv6 address");
        }
    }

    private Block GenEcode(string s, Qual q)
    {
        if ((q.Addr == Qa.Host || q.Addr == Qa.Default) && q.Proto == Qp.Link)
        {
            Span<byte> e = stackalloc byte[6];
            if (!FilterNames.TryEtherAton(s, e)) throw Error($"invalid Ethernet address '{s}'");
            if (_linktype != Dlt.En10Mb)
                throw Error("ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel");
            return GenEhostop(e, q.Dir);
        }
        throw Error("ethernet address used in non-ether expression");
    }

    // ----- arithmetic -----

    private Arth GenArth(ANode n)
    {
        switch (n)
        {
            case ANum num:
                {
                    _pos = num.Pos;
                    var a = new Arth();
                    int reg = AllocReg();
                    Stmt s = NewStmt(BpfOp.Ld | BpfOp.Imm, num.Value);
                    s.Next = NewStmt(BpfOp.St, (uint)reg);
                    a.S = s;
                    a.Regno = reg;
                    return a;
                }
            case ALen len:
                {
                    _pos = len.Pos;
                    int reg = AllocReg();
                    Stmt s = NewStmt(BpfOp.Ld | BpfOp.Len);
                    s.Next = NewStmt(BpfOp.St, (uint)reg);
                    return new Arth { S = s, Regno = reg };
                }
            case ALoad load:
                {
                    Arth inst = GenArth(load.Index);
                    _pos = load.Pos;
                    return GenLoad(load.Proto, inst, load.Size);
                }
            case ABin bin:
                {
                    Arth a0 = GenArth(bin.L);
                    Arth a1 = GenArth(bin.R);
                    _pos = bin.Pos;
                    return GenArithOp(bin.AluOp, a0, a1);
                }
            case ANeg neg:
                {
                    Arth a = GenArth(neg.X);
                    _pos = neg.Pos;
                    Append(a.S, NewStmt(BpfOp.Ld | BpfOp.Mem, (uint)a.Regno));
                    Append(a.S, NewStmt(BpfOp.Alu | BpfOp.Neg));
                    Append(a.S, NewStmt(BpfOp.St, (uint)a.Regno));
                    return a;
                }
        }
        throw new InvalidOperationException("unknown arithmetic node");
    }

    private static Stmt XferToX(Arth a) => NewStmt(BpfOp.Ldx | BpfOp.Mem, (uint)a.Regno);

    private static Stmt XferToA(Arth a) => NewStmt(BpfOp.Ld | BpfOp.Mem, (uint)a.Regno);

    private Arth GenArithOp(ushort code, Arth a0, Arth a1)
    {
        bool imm = a1.S.Code == (BpfOp.Ld | BpfOp.Imm);
        if (code == BpfOp.Div && imm && a1.S.K == 0) throw Error("division by zero");
        if (code == BpfOp.Mod && imm && a1.S.K == 0) throw Error("modulus by zero");
        if ((code == BpfOp.Lsh || code == BpfOp.Rsh) && imm && a1.S.K > 31) throw Error("shift by more than 31 bits");
        Stmt s0 = XferToX(a1);
        Stmt s1 = XferToA(a0);
        Stmt s2 = NewStmt((ushort)(BpfOp.Alu | BpfOp.X | code));
        Append(s1, s2);
        Append(s0, s1);
        Append(a1.S, s0);
        Append(a0.S, a1.S);
        FreeReg(a0.Regno);
        FreeReg(a1.Regno);
        Stmt st = NewStmt(BpfOp.St);
        a0.Regno = AllocReg();
        st.K = (uint)a0.Regno;
        Append(a0.S, st);
        return a0;
    }

    // gen_load_internal: proto[index : size], guarded by the protocol test for the header it indexes.
    private Arth GenLoad(Qp proto, Arth inst, uint size)
    {
        int regno = AllocReg();
        FreeReg(inst.Regno);
        ushort sizeCode = size switch
        {
            1 => BpfOp.B,
            2 => BpfOp.H,
            4 => BpfOp.W,
            _ => throw Error("data size must be 1, 2, or 4"),
        };
        Stmt s;
        Stmt tmp;
        Block b;
        switch (proto)
        {
            case Qp.Radio:
                throw Error("radio information not present in capture");
            case Qp.Link:
                s = GenAbsOffsetVarpart(ref _offLinkHdr) is { } v1 ? AddXfer(v1, inst) : XferToX(inst);
                Append(s, NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | sizeCode), _offLinkHdr.ConstantPart));
                Append(inst.S, s);
                break;
            case Qp.Ip or Qp.Arp or Qp.Rarp or Qp.Atalk or Qp.Decnet or Qp.Sca or Qp.Lat or Qp.Moprc or Qp.Mopdl or Qp.Ipv6:
                s = GenAbsOffsetVarpart(ref _offLinkPl) is { } v2 ? AddXfer(v2, inst) : XferToX(inst);
                Append(s, NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | sizeCode), _offLinkPl.ConstantPart + _offNl));
                Append(inst.S, s);
                b = GenProtoAbbrev(proto);
                if (inst.B != null) And(inst.B, b);
                inst.B = b;
                break;
            case Qp.Sctp or Qp.Tcp or Qp.Udp or Qp.Icmp or Qp.Igmp or Qp.Igrp or Qp.Pim or Qp.Vrrp or Qp.Carp:
                s = GenLoadxIpHdrLen();
                Append(s, XferToA(inst));
                Append(s, NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.X));
                Append(s, NewStmt(BpfOp.Misc | BpfOp.Tax));
                tmp = NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | sizeCode), _offLinkPl.ConstantPart + _offNl);
                Append(s, tmp);
                Append(inst.S, s);
                {
                    Block pa = GenProtoAbbrev(proto);
                    b = GenIpfrag();
                    And(pa, b);
                }
                if (inst.B != null) And(inst.B, b);
                And(GenProtoAbbrev(Qp.Ip), b);
                inst.B = b;
                break;
            case Qp.Icmpv6:
                b = GenProtoAbbrev(Qp.Ipv6);
                if (inst.B != null) And(inst.B, b);
                inst.B = b;
                b = GenCmp(OffRel.LinkPl, 6, BpfOp.B, 58);
                if (inst.B != null) And(inst.B, b);
                inst.B = b;
                s = GenAbsOffsetVarpart(ref _offLinkPl) is { } v3 ? AddXfer(v3, inst) : XferToX(inst);
                Append(s, NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | sizeCode), _offLinkPl.ConstantPart + _offNl + 40));
                Append(inst.S, s);
                break;
            default:
                throw Error($"'{QualName(proto)}' does not support the index operation");
        }
        inst.Regno = regno;
        Append(inst.S, NewStmt(BpfOp.St, (uint)regno));
        return inst;
    }

    private static Stmt AddXfer(Stmt s, Arth inst)
    {
        Append(s, XferToA(inst));
        Append(s, NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.X));
        Append(s, NewStmt(BpfOp.Misc | BpfOp.Tax));
        return s;
    }

    private Block GenRelation(ushort code, Arth a0, Arth a1, bool reversed)
    {
        Stmt s0 = XferToX(a1);
        Stmt s1 = XferToA(a0);
        Block b;
        if (code == BpfOp.Jeq)
        {
            Stmt s2 = NewStmt(BpfOp.Alu | BpfOp.Sub | BpfOp.X);
            b = new Block((ushort)(BpfOp.Jmp | code));
            Append(s1, s2);
        }
        else b = new Block((ushort)(BpfOp.Jmp | code | BpfOp.X));
        if (reversed) Not(b);
        Append(s0, s1);
        Append(a1.S, s0);
        Append(a0.S, a1.S);
        b.Stmts = a0.S;
        FreeReg(a0.Regno);
        FreeReg(a1.Regno);
        Block? tmp;
        if (a0.B != null)
        {
            if (a1.B != null)
            {
                And(a0.B, a1.B);
                tmp = a1.B;
            }
            else tmp = a0.B;
        }
        else tmp = a1.B;
        if (tmp != null) And(tmp, b);
        return b;
    }

    // ----- other primitives -----

    private Block GenOther(OtherNode o)
    {
        switch (o.Kind)
        {
            case OtherKind.Less:
                {
                    Block b = GenLen(BpfOp.Jgt, o.N);
                    Not(b);
                    return b;
                }
            case OtherKind.Greater: return GenLen(BpfOp.Jge, o.N);
            case OtherKind.ByteOp: return GenByteop(o.Op, o.N, o.N2);
            case OtherKind.Broadcast: return GenBroadcast(o.Proto);
            case OtherKind.Multicast: return GenMulticast(o.Proto);
            case OtherKind.Vlan: return GenVlan(o.N, o.HasN);
            case OtherKind.Mpls: return GenMpls(o.N, o.HasN);
            case OtherKind.Pppoed: return GenLinktype(EthertypePppoed);
            case OtherKind.Pppoes: return GenPppoes(o.N, o.HasN);
            case OtherKind.Geneve: throw NotSupported("'geneve'");
            case OtherKind.Llc: return GenLlc(o.Op, o.N2);
            case OtherKind.Inbound or OtherKind.Outbound:
                {
                    // The cooked header's packet type says PACKET_OUTGOING (4); other link types have no direction.
                    Block b = _linktype switch
                    {
                        Dlt.LinuxSll => GenCmp(OffRel.LinkHdr, 0, BpfOp.H, 4),
                        Dlt.LinuxSll2 => GenCmp(OffRel.LinkHdr, 10, BpfOp.B, 4),
                        _ => throw Error($"inbound/outbound not supported on {Describe(_linktype)} when reading savefiles"),
                    };
                    if (o.Kind == OtherKind.Inbound) Not(b);
                    return b;
                }
            default: throw NotSupported("'ifindex'");
        }
    }

    // gen_llc_internal and the llc i/s/u and subtype tests: an 802.2 header behind an Ethernet length field that
    // is not Novell's raw 802.3 (0xffff).
    private Block GenLlc(char kind, uint subtype)
    {
        if (_linktype != Dlt.En10Mb) throw Error($"'llc' not supported for {Describe(_linktype)}");
        Block b0 = GenCmpGt(OffRel.LinkType, 0, BpfOp.H, EtherMtu);
        Not(b0);
        Block b1 = GenCmp(OffRel.Llc, 0, BpfOp.H, 0xffff);
        Not(b1);
        And(b0, b1);
        if (kind == 'a') return b1;
        b0 = b1;
        switch (kind)
        {
            case 'i':
                b1 = new Block(BpfOp.Jmp | BpfOp.Jset) { K = 0x01, Stmts = GenLoadA(OffRel.Llc, 2, BpfOp.B) };
                Not(b1);
                break;
            case 's': b1 = GenMcmp(OffRel.Llc, 2, BpfOp.B, 0x01, 0x03); break;
            case 'u': b1 = GenMcmp(OffRel.Llc, 2, BpfOp.B, 0x03, 0x03); break;
            case 'S': b1 = GenMcmp(OffRel.Llc, 2, BpfOp.B, subtype, 0x0f); break;
            default: b1 = GenMcmp(OffRel.Llc, 2, BpfOp.B, subtype, 0xef); break;
        }
        And(b0, b1);
        return b1;
    }

    private static Block GenLen(ushort jmp, uint n) =>
        new((ushort)(BpfOp.Jmp | jmp)) { Stmts = NewStmt(BpfOp.Ld | BpfOp.Len), K = n };

    private Block GenByteop(char op, uint idx, uint val)
    {
        switch (op)
        {
            case '=': return GenCmp(OffRel.LinkHdr, idx, BpfOp.B, val);
            case '<': return GenCmpLt(OffRel.LinkHdr, idx, BpfOp.B, val);
            case '>': return GenCmpGt(OffRel.LinkHdr, idx, BpfOp.B, val);
        }
        // libpcap emits only the ALU operation for '&' and '|' (no load of the byte); so do we.
        var s = NewStmt((ushort)(BpfOp.Alu | (op == '|' ? BpfOp.Or : BpfOp.And) | BpfOp.K), val);
        var b = new Block(BpfOp.Jmp | BpfOp.Jeq) { Stmts = s };
        Not(b);
        return b;
    }

    private Block GenBroadcast(Qp proto)
    {
        switch (proto)
        {
            case Qp.Default or Qp.Link:
                if (_linktype != Dlt.En10Mb) throw Error("not a broadcast link");
                return GenEhostop([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], Qd.Dst);
            case Qp.Ip:
                {
                    if (_netmask is not { } nm || nm == 0xffffffff) throw Error("netmask not known, so 'ip broadcast' not supported");
                    Block b0 = GenLinktype(EthertypeIp);
                    uint hostmask = ~nm;
                    Block b1 = GenMcmp(OffRel.LinkPl, 16, BpfOp.W, 0, hostmask);
                    Block b2 = GenMcmp(OffRel.LinkPl, 16, BpfOp.W, ~0u & hostmask, hostmask);
                    Or(b1, b2);
                    And(b0, b2);
                    return b2;
                }
        }
        throw Error("only link-layer/IP broadcast filters supported");
    }

    private Block GenMulticast(Qp proto)
    {
        Block b0, b1;
        switch (proto)
        {
            case Qp.Default or Qp.Link:
                if (_linktype == Dlt.En10Mb)
                    return new Block(BpfOp.Jmp | BpfOp.Jset) { K = 1, Stmts = GenLoadA(OffRel.LinkHdr, 0, BpfOp.B) };
                break;
            case Qp.Ip:
                b0 = GenLinktype(EthertypeIp);
                b1 = GenCmpGe(OffRel.LinkPl, 16, BpfOp.B, 224);
                And(b0, b1);
                return b1;
            case Qp.Ipv6:
                b0 = GenLinktype(EthertypeIpv6);
                b1 = GenCmp(OffRel.LinkPl, 24, BpfOp.B, 255);
                And(b0, b1);
                return b1;
        }
        throw Error("link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel");
    }
}
