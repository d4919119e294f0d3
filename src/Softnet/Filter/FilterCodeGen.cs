using static Softnet.Filter.FilterBlocks;

namespace Softnet.Filter;

/// <summary>Data link types libpcap compiles for (DLT_* values, not the LINKTYPE_* of capture files).</summary>
public enum Dlt
{
    En10Mb = 1,
    Raw = 12,
    Ppp = 9,
    LinuxSll = 113,
    Ipv4 = 228,
    Ipv6 = 229,
    LinuxSll2 = 276,
}

/// <summary>
/// libpcap's code generator (gencode.c) for the link types Softnet reads: Ethernet, Linux cooked v1/v2, raw IP
/// (either version, or IPv4/IPv6 only), each function named after and shaped like the one it mirrors, so the block
/// graph and hence the unoptimised program equal what pcap_compile(optimize=0) builds. Offsets move as libpcap's
/// do: "vlan" shifts everything after it by 4 bytes, "mpls" adds 4 to the network layer offset, "pppoes" moves
/// the link header into the PPPoE payload.
/// </summary>
internal sealed partial class FilterCodeGen
{
    private const uint NotSet = 0xffffffff;

    // Link-layer and IP protocol numbers the generator tests for.
    private const uint EthertypeIp = 0x0800, EthertypeArp = 0x0806, EthertypeRevarp = 0x8035, EthertypeIpv6 = 0x86dd,
        Ethertype8021Q = 0x8100, Ethertype8021Ad = 0x88a8, Ethertype8021QinQ = 0x9100, EthertypeDn = 0x6003,
        EthertypeSca = 0x6007, EthertypeLat = 0x6004, EthertypeMopdl = 0x6001, EthertypeMoprc = 0x6002,
        EthertypeAtalk = 0x809b, EthertypeAarp = 0x80f3, EthertypeIpx = 0x8137, EthertypePppoed = 0x8863,
        EthertypePppoes = 0x8864, EthertypeMpls = 0x8847, EthertypeNs = 0x0600, EtherMtu = 1500;
    private const uint LlcsapIp = 0x06, LlcsapIsons = 0xfe, LlcsapNetbeui = 0xf0, LlcsapIpx = 0xe0, Llcsap8021D = 0x42,
        LlcsapSnap = 0xaa, LinuxSllP8022 = 0x0004, LinuxSllP8023 = 0x0001;
    private const uint IpprotoTcp = 6, IpprotoUdp = 17, IpprotoSctp = 132, IpprotoIcmp = 1, IpprotoIgmp = 2,
        IpprotoIgrp = 9, IpprotoPim = 103, IpprotoVrrp = 112, IpprotoCarp = 112, IpprotoIcmpv6 = 58, IpprotoAh = 51,
        IpprotoEsp = 50, IpprotoFragment = 44, ProtoUndef = 0xffffffff;
    private const uint Iso8473Clnp = 0x81, Iso9542Esis = 0x82, Iso10589Isis = 0x83, IsisL1LanIih = 15,
        IsisL2LanIih = 16, IsisPtpIih = 17, IsisL1Lsp = 18, IsisL2Lsp = 20, IsisL1Csnp = 24, IsisL2Csnp = 25,
        IsisL1Psnp = 26, IsisL2Psnp = 27;

    private enum OffRel { Packet, LinkHdr, PrevLinkHdr, Llc, PrevMplsHdr, LinkPl, LinkPlNoSnap, LinkType, TranIpv4, TranIpv6 }

    /// <summary>bpf_abs_offset: a constant part plus, when variable, a scratch register holding the rest.</summary>
    private struct AbsOffset
    {
        public uint ConstantPart;
        public bool IsVariable;
        public int Reg;
    }

    private Dlt _linktype;
    private readonly Dlt _outermost;
    private AbsOffset _offLinkHdr, _offPrevLinkHdr, _offLinkType, _offLinkPl;
    private uint _offNl, _offNlNoSnap;
    private int _labelStackDepth, _vlanStackDepth;
    private readonly bool[] _regUsed = new bool[BpfOp.MemWords];
    private int _curReg;
    private readonly uint _snaplen;
    private readonly uint? _netmask;
    private int _pos; // where in the expression the node being generated starts, for error messages

    public FilterCodeGen(Dlt linktype, uint snaplen, uint? netmask)
    {
        _linktype = _outermost = linktype;
        _snaplen = snaplen;
        _netmask = netmask;
        _offLinkHdr = new AbsOffset { Reg = -1 };
        _offLinkType = new AbsOffset { Reg = -1 };
        _offLinkPl = new AbsOffset { Reg = -1 };
        switch (linktype)
        {
            case Dlt.En10Mb:
                _offLinkType.ConstantPart = 12; _offLinkPl.ConstantPart = 14; _offNl = 0; _offNlNoSnap = 3;
                break;
            case Dlt.Raw or Dlt.Ipv4 or Dlt.Ipv6:
                _offLinkType.ConstantPart = NotSet; _offLinkPl.ConstantPart = 0; _offNl = 0; _offNlNoSnap = 0;
                break;
            case Dlt.LinuxSll:
                _offLinkType.ConstantPart = 14; _offLinkPl.ConstantPart = 16; _offNl = 0; _offNlNoSnap = 0;
                break;
            case Dlt.LinuxSll2:
                _offLinkType.ConstantPart = 0; _offLinkPl.ConstantPart = 20; _offNl = 0; _offNlNoSnap = 0;
                break;
            default:
                throw new FilterNotSupportedException($"link type {(int)linktype} is not supported by this filter compiler", -1);
        }
        _offPrevLinkHdr = _offLinkHdr;
    }

    private Exception Error(string msg) => new FilterException(msg, _pos);

    private Exception NotSupported(string what) => new FilterNotSupportedException($"{what} is not supported by this filter compiler", _pos);

    internal static string Describe(Dlt dlt) => dlt switch
    {
        Dlt.En10Mb => "Ethernet", Dlt.Raw => "Raw IP", Dlt.LinuxSll => "Linux cooked v1", Dlt.LinuxSll2 => "Linux cooked v2",
        Dlt.Ipv4 => "Raw IPv4", Dlt.Ipv6 => "Raw IPv6", Dlt.Ppp => "PPP", _ => $"DLT {(int)dlt}",
    };

    /// <summary>pcap_compile: the program for an expression (null = the empty expression, which keeps everything).</summary>
    public BpfInsn[] Compile(FNode? expr)
    {
        Block root;
        if (expr == null) root = RetBlock(_snaplen);
        else
        {
            Block p = Gen(expr);
            FinishParse(p);
            root = p.Head;
        }
        return ToProgram(root);
    }

    private static Block RetBlock(uint v) => new(BpfOp.Ret | BpfOp.K) { K = v };

    // finish_parse. No insert_compute_vloffsets: only radio headers and VLAN via Linux extensions need
    // variable offsets, and neither is generated here.
    private void FinishParse(Block p)
    {
        Backpatch(p, RetBlock(_snaplen));
        p.Sense = !p.Sense;
        Backpatch(p, RetBlock(0));
    }

    private Block Gen(FNode n)
    {
        switch (n)
        {
            case AndNode a:
                {
                    Block b0 = Gen(a.L), b1 = Gen(a.R);
                    And(b0, b1);
                    return b1;
                }
            case OrNode o:
                {
                    Block b0 = Gen(o.L), b1 = Gen(o.R);
                    Or(b0, b1);
                    return b1;
                }
            case NotNode x:
                {
                    Block b = Gen(x.X);
                    Not(b);
                    return b;
                }
            case IdNode id:
                _pos = id.Pos;
                return GenId(id);
            case ProtoNode pn:
                _pos = pn.Pos;
                return GenProtoAbbrev(pn.Proto);
            case RelNode r:
                {
                    Arth a0 = GenArth(r.A0), a1 = GenArth(r.A1);
                    _pos = r.Pos;
                    return GenRelation(r.Jmp, a0, a1, r.Reversed);
                }
            case OtherNode o:
                _pos = o.Pos;
                return GenOther(o);
        }
        throw new InvalidOperationException("unknown filter node");
    }

    // ----- statements, blocks, registers -----

    private static Stmt NewStmt(ushort code, uint k = 0) => new(code, k);

    private int AllocReg()
    {
        for (int n = BpfOp.MemWords; --n >= 0;)
        {
            if (_regUsed[_curReg]) _curReg = (_curReg + 1) % BpfOp.MemWords;
            else
            {
                _regUsed[_curReg] = true;
                return _curReg;
            }
        }
        throw Error("too many registers needed to evaluate expression");
    }

    private void FreeReg(int n) => _regUsed[n] = false;

    private static Block GenUncond(bool rsense)
    {
        var b = new Block(BpfOp.Jmp | BpfOp.Jeq) { Stmts = NewStmt(BpfOp.Ld | BpfOp.Imm, rsense ? 0u : 1u) };
        return b;
    }

    private static Block GenTrue() => GenUncond(true);

    private static Block GenFalse() => GenUncond(false);

    // ----- loads and comparisons -----

    private Stmt? GenAbsOffsetVarpart(ref AbsOffset off)
    {
        if (!off.IsVariable) return null;
        if (off.Reg == -1) off.Reg = AllocReg();
        return NewStmt(BpfOp.Ldx | BpfOp.Mem, (uint)off.Reg);
    }

    private Stmt GenLoadAbsOffsetRel(ref AbsOffset abs, uint offset, ushort size)
    {
        Stmt? s = GenAbsOffsetVarpart(ref abs);
        if (s != null)
        {
            Append(s, NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | size), abs.ConstantPart + offset));
            return s;
        }
        return NewStmt((ushort)(BpfOp.Ld | BpfOp.Abs | size), abs.ConstantPart + offset);
    }

    private Stmt GenLoadA(OffRel rel, uint offset, ushort size)
    {
        switch (rel)
        {
            case OffRel.Packet: return NewStmt((ushort)(BpfOp.Ld | BpfOp.Abs | size), offset);
            case OffRel.LinkHdr: return GenLoadAbsOffsetRel(ref _offLinkHdr, offset, size);
            case OffRel.PrevLinkHdr: return GenLoadAbsOffsetRel(ref _offPrevLinkHdr, offset, size);
            case OffRel.Llc: return GenLoadAbsOffsetRel(ref _offLinkPl, offset, size);
            case OffRel.PrevMplsHdr: return GenLoadAbsOffsetRel(ref _offLinkPl, _offNl - 4 + offset, size);
            case OffRel.LinkPl: return GenLoadAbsOffsetRel(ref _offLinkPl, _offNl + offset, size);
            case OffRel.LinkPlNoSnap: return GenLoadAbsOffsetRel(ref _offLinkPl, _offNlNoSnap + offset, size);
            case OffRel.LinkType: return GenLoadAbsOffsetRel(ref _offLinkType, offset, size);
            case OffRel.TranIpv4:
                {
                    Stmt s = GenLoadxIpHdrLen();
                    Append(s, NewStmt((ushort)(BpfOp.Ld | BpfOp.Ind | size), _offLinkPl.ConstantPart + _offNl + offset));
                    return s;
                }
            default: return GenLoadAbsOffsetRel(ref _offLinkPl, _offNl + 40 + offset, size);
        }
    }

    private Stmt GenLoadxIpHdrLen()
    {
        Stmt? s = GenAbsOffsetVarpart(ref _offLinkPl);
        if (s != null)
        {
            Append(s, NewStmt(BpfOp.Ld | BpfOp.Ind | BpfOp.B, _offLinkPl.ConstantPart + _offNl));
            Append(s, NewStmt(BpfOp.Alu | BpfOp.And | BpfOp.K, 0xf));
            Append(s, NewStmt(BpfOp.Alu | BpfOp.Lsh | BpfOp.K, 2));
            Append(s, NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.X));
            Append(s, NewStmt(BpfOp.Misc | BpfOp.Tax));
            return s;
        }
        return NewStmt(BpfOp.Ldx | BpfOp.Msh | BpfOp.B, _offLinkPl.ConstantPart + _offNl);
    }

    private Block GenNcmp(OffRel rel, uint offset, ushort size, uint mask, ushort jtype, bool reverse, uint v)
    {
        Stmt s = GenLoadA(rel, offset, size);
        if (mask != 0xffffffff) Append(s, NewStmt(BpfOp.Alu | BpfOp.And | BpfOp.K, mask));
        var b = new Block((ushort)(BpfOp.Jmp | jtype)) { Stmts = s, K = v };
        if (reverse && (jtype == BpfOp.Jgt || jtype == BpfOp.Jge)) Not(b);
        return b;
    }

    private Block GenCmp(OffRel rel, uint offset, ushort size, uint v) => GenNcmp(rel, offset, size, 0xffffffff, BpfOp.Jeq, false, v);
    private Block GenCmpGt(OffRel rel, uint offset, ushort size, uint v) => GenNcmp(rel, offset, size, 0xffffffff, BpfOp.Jgt, false, v);
    private Block GenCmpGe(OffRel rel, uint offset, ushort size, uint v) => GenNcmp(rel, offset, size, 0xffffffff, BpfOp.Jge, false, v);
    private Block GenCmpLt(OffRel rel, uint offset, ushort size, uint v) => GenNcmp(rel, offset, size, 0xffffffff, BpfOp.Jge, true, v);
    private Block GenCmpLe(OffRel rel, uint offset, ushort size, uint v) => GenNcmp(rel, offset, size, 0xffffffff, BpfOp.Jgt, true, v);
    private Block GenMcmp(OffRel rel, uint offset, ushort size, uint v, uint mask) => GenNcmp(rel, offset, size, mask, BpfOp.Jeq, false, v);

    private Block GenBcmp(OffRel rel, uint offset, uint size, ReadOnlySpan<byte> v)
    {
        Block? b = null;
        while (size >= 4)
        {
            var p = v.Slice((int)size - 4, 4);
            Block tmp = GenCmp(rel, offset + size - 4, BpfOp.W, (uint)(p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]));
            if (b != null) And(b, tmp);
            b = tmp;
            size -= 4;
        }
        while (size >= 2)
        {
            var p = v.Slice((int)size - 2, 2);
            Block tmp = GenCmp(rel, offset + size - 2, BpfOp.H, (uint)(p[0] << 8 | p[1]));
            if (b != null) And(b, tmp);
            b = tmp;
            size -= 2;
        }
        if (size > 0)
        {
            Block tmp = GenCmp(rel, offset, BpfOp.B, v[0]);
            if (b != null) And(b, tmp);
            b = tmp;
        }
        return b!;
    }
}
