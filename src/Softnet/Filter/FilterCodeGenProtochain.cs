using static Softnet.Filter.FilterBlocks;

namespace Softnet.Filter;

/// <summary>
/// gen_protochain: "ip6 protochain N" / "ip protochain N" walk the header chain (IPv6 hop-by-hop, destination
/// options, routing and fragment headers, then AH for both versions) in a loop inside one block until the next
/// header is N (match), NONE or anything else (no match). The loop's jumps are statement-to-statement inside the
/// block, the one place libpcap's unoptimised code has them.
/// </summary>
internal sealed partial class FilterCodeGen
{
    private const uint IpprotoHopopts = 0, IpprotoDstopts = 60, IpprotoRouting = 43, IpprotoNone = 59;

    private Block GenProtochain(uint v, Qp proto)
    {
        int reg2 = AllocReg();
        switch (proto)
        {
            case Qp.Ip or Qp.Ipv6:
                break;
            case Qp.Default:
                {
                    Block b0d = GenProtochain(v, Qp.Ip);
                    Block bd = GenProtochain(v, Qp.Ipv6);
                    Or(b0d, bd);
                    return bd;
                }
            default:
                throw Error("bad protocol applied for 'protochain'");
        }
        if (_offLinkPl.IsVariable) throw Error("'protochain' not supported with variable length headers");
        uint nl = _offLinkPl.ConstantPart + _offNl;
        var s = new List<Stmt>();
        Block b0;
        if (proto == Qp.Ip)
        {
            b0 = GenLinktype(EthertypeIp);
            s.Add(NewStmt(BpfOp.Ld | BpfOp.Abs | BpfOp.B, nl + 9));
            s.Add(NewStmt(BpfOp.Ldx | BpfOp.Msh | BpfOp.B, nl));
        }
        else
        {
            b0 = GenLinktype(EthertypeIpv6);
            s.Add(NewStmt(BpfOp.Ld | BpfOp.Abs | BpfOp.B, nl + 6));
            s.Add(NewStmt(BpfOp.Ldx | BpfOp.Imm, 40));
        }
        // The statement indices below count libpcap's unused slot 0, so "again - i - 1" jumps come out alike.
        int Idx() => s.Count + 1;
        int again = Idx();
        Stmt jeqV = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, v);
        s.Add(jeqV);
        Stmt jeqNone = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoNone);
        jeqV.Jf = jeqNone;
        s.Add(jeqNone);
        Stmt? fix3 = null;
        if (proto == Qp.Ipv6)
        {
            Stmt hop = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoHopopts);
            jeqNone.Jf = hop;
            Stmt dst = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoDstopts);
            hop.Jf = dst;
            Stmt rt = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoRouting);
            dst.Jf = rt;
            Stmt frag = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoFragment);
            rt.Jf = frag;
            fix3 = frag;
            s.AddRange([hop, dst, rt, frag]);
            // Advance past an extension header: X += (hdr[1] + 1) * 8, A = its next header.
            Stmt advance = NewStmt(BpfOp.Ld | BpfOp.Ind | BpfOp.B, nl);
            s.Add(advance);
            s.Add(NewStmt(BpfOp.St, (uint)reg2));
            s.Add(NewStmt(BpfOp.Ld | BpfOp.Ind | BpfOp.B, nl + 1));
            s.Add(NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.K, 1));
            s.Add(NewStmt(BpfOp.Alu | BpfOp.Mul | BpfOp.K, 8));
            s.Add(NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.X));
            s.Add(NewStmt(BpfOp.Misc | BpfOp.Tax));
            Stmt ldm = NewStmt(BpfOp.Ld | BpfOp.Mem, (uint)reg2);
            s.Add(ldm);
            Stmt ja = NewStmt(BpfOp.Jmp | BpfOp.Ja);
            ja.K = (uint)(again - Idx() - 1);
            ldm.Jf = ja;
            s.Add(ja);
            foreach (var j in new[] { hop, dst, rt, frag }) j.Jt = advance;
        }
        else
        {
            Stmt nop = NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.K, 0);
            jeqNone.Jf = nop;
            s.Add(nop);
        }
        // AH: X += (ah[1] + 2) * 4, A = its next header.
        Stmt ah = NewStmt(BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, IpprotoAh);
        if (fix3 != null) fix3.Jf = ah;
        s.Add(ah);
        Stmt txa1 = NewStmt(BpfOp.Misc | BpfOp.Txa);
        ah.Jt = txa1;
        s.Add(txa1);
        s.Add(NewStmt(BpfOp.Ld | BpfOp.Ind | BpfOp.B, nl));
        Stmt st = NewStmt(BpfOp.St, (uint)reg2);
        s.Add(st);
        Stmt txa2 = NewStmt(BpfOp.Misc | BpfOp.Txa);
        st.Jt = txa2;
        s.Add(txa2);
        s.Add(NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.K, 1));
        s.Add(NewStmt(BpfOp.Misc | BpfOp.Tax));
        s.Add(NewStmt(BpfOp.Ld | BpfOp.Ind | BpfOp.B, nl));
        s.Add(NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.K, 2));
        s.Add(NewStmt(BpfOp.Alu | BpfOp.Mul | BpfOp.K, 4));
        s.Add(NewStmt(BpfOp.Misc | BpfOp.Tax));
        s.Add(NewStmt(BpfOp.Ld | BpfOp.Mem, (uint)reg2));
        Stmt ja2 = NewStmt(BpfOp.Jmp | BpfOp.Ja);
        ja2.K = (uint)(again - Idx() - 1);
        s.Add(ja2);
        Stmt end = NewStmt(BpfOp.Alu | BpfOp.Add | BpfOp.K, 0);
        jeqNone.Jt = end;
        ah.Jf = end;
        jeqV.Jt = end;
        s.Add(end);
        for (int i = 0; i < s.Count - 1; i++) s[i].Next = s[i + 1];
        var b = new Block(BpfOp.Jmp | BpfOp.Jeq) { Stmts = s[0], K = v };
        FreeReg(reg2);
        And(b0, b);
        return b;
    }
}
