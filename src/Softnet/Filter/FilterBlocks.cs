namespace Softnet.Filter;

/// <summary>A statement in a block's list (libpcap's struct slist/stmt).</summary>
internal sealed class Stmt(ushort code, uint k = 0)
{
    public ushort Code = code;
    public uint K = k;
    public Stmt? Next;
    // Targets of a conditional jump inside a block (only protochain's loop uses them).
    public Stmt? Jt, Jf;
}

/// <summary>
/// A basic block of libpcap's intermediate code (struct block): straight-line statements ending in a conditional
/// jump. While an expression is being built, <see cref="Sense"/> says which of JT/JF still links the chain of
/// unresolved exits (backpatch/merge), and <see cref="Head"/> is the entry of the sub-expression the block ends.
/// </summary>
internal sealed class Block
{
    public Stmt? Stmts;
    public ushort Code;
    public uint K;
    public Block? JT, JF;
    public bool Sense;
    public Block Head;
    public int Offset;
    public int LongJt, LongJf;
    public bool Mark;

    public Block(ushort code) { Code = code; Head = this; }
}

/// <summary>An arithmetic value under construction (struct arth): its statements, its scratch register, its guard.</summary>
internal sealed class Arth
{
    public Stmt S = null!;
    public int Regno;
    public Block? B;
}

/// <summary>
/// The block-graph operations of gencode.c (backpatch, merge, gen_and, gen_or, gen_not) and the linearisation of
/// optimize.c's icode_to_fcode/convert_code_r, which lays the blocks out from the end of the program backwards
/// (a block's false branch first, then its true branch, then the block before both), so an unoptimised program
/// comes out in the same order libpcap prints it.
/// </summary>
internal static class FilterBlocks
{
    public static void Backpatch(Block? list, Block target)
    {
        while (list != null)
        {
            Block? next;
            if (!list.Sense) { next = list.JT; list.JT = target; }
            else { next = list.JF; list.JF = target; }
            list = next;
        }
    }

    public static void Merge(Block b0, Block? b1)
    {
        Block cur = b0;
        while (true)
        {
            Block? nxt = !cur.Sense ? cur.JT : cur.JF;
            if (nxt == null) break;
            cur = nxt;
        }
        if (!cur.Sense) cur.JT = b1; else cur.JF = b1;
    }

    public static void And(Block b0, Block b1)
    {
        Backpatch(b0, b1.Head);
        b0.Sense = !b0.Sense;
        b1.Sense = !b1.Sense;
        Merge(b1, b0);
        b1.Sense = !b1.Sense;
        b1.Head = b0.Head;
    }

    public static void Or(Block b0, Block b1)
    {
        b0.Sense = !b0.Sense;
        Backpatch(b0, b1.Head);
        b0.Sense = !b0.Sense;
        Merge(b1, b0);
        b1.Head = b0.Head;
    }

    public static void Not(Block b) => b.Sense = !b.Sense;

    public static void Append(Stmt s0, Stmt? s1)
    {
        while (s0.Next != null) s0 = s0.Next;
        s0.Next = s1;
    }

    private static int Length(Stmt? s)
    {
        int n = 0;
        for (; s != null; s = s.Next) n++;
        return n;
    }

    private static void Unmark(Block? b)
    {
        if (b == null || !b.Mark) return;
        b.Mark = false;
        Unmark(b.JT);
        Unmark(b.JF);
    }

    private static int Count(Block? b)
    {
        if (b == null || b.Mark) return 0;
        b.Mark = true;
        return Count(b.JT) + Count(b.JF) + Length(b.Stmts) + 1 + b.LongJt + b.LongJf;
    }

    /// <summary>icode_to_fcode: the program, retried with long-jump slots where a branch is 256 or more away.</summary>
    public static BpfInsn[] ToProgram(Block root)
    {
        while (true)
        {
            Unmark(root);
            int n = Count(root);
            var prog = new BpfInsn[n];
            Unmark(root);
            int tail = n;
            if (Convert(root, prog, ref tail)) return prog;
        }
    }

    private static bool Convert(Block? p, BpfInsn[] prog, ref int tail)
    {
        if (p == null || p.Mark) return true;
        p.Mark = true;
        if (!Convert(p.JF, prog, ref tail)) return false;
        if (!Convert(p.JT, prog, ref tail)) return false;
        int slen = Length(p.Stmts);
        tail -= slen + 1 + p.LongJt + p.LongJf;
        int dst = tail;
        p.Offset = dst;
        var stmts = new List<Stmt>(slen);
        for (Stmt? s = p.Stmts; s != null; s = s.Next) stmts.Add(s);
        for (int off = 0; off < stmts.Count; off++)
        {
            Stmt s = stmts[off];
            byte sjt = 0, sjf = 0;
            // A conditional jump between statements of the block: relative to the next statement. convert_code_r
            // leaves the one second to last unresolved (in libpcap's programs that slot is never such a jump).
            if (BpfOp.Class(s.Code) == BpfOp.Jmp && s.Code != (BpfOp.Jmp | BpfOp.Ja) && off != slen - 2)
            {
                int ti = stmts.IndexOf(s.Jt!), fi = stmts.IndexOf(s.Jf!);
                if (ti < 0 || fi < 0 || ti - off - 1 >= 256 || fi - off - 1 >= 256)
                    throw new InvalidOperationException("block-local jump without a destination in the block");
                sjt = (byte)(ti - off - 1);
                sjf = (byte)(fi - off - 1);
            }
            prog[dst++] = new BpfInsn(s.Code, sjt, sjf, s.K);
        }
        byte jt = 0, jf = 0;
        if (p.JT != null)
        {
            int extra = 0;
            int off = p.JT.Offset - (p.Offset + slen) - 1;
            if (off >= 256)
            {
                if (p.LongJt == 0) { p.LongJt++; return false; }
                jt = (byte)extra;
                extra++;
                prog[dst + extra] = new BpfInsn(BpfOp.Jmp | BpfOp.Ja, 0, 0, (uint)(off - extra));
            }
            else jt = (byte)off;
            off = p.JF!.Offset - (p.Offset + slen) - 1;
            if (off >= 256)
            {
                if (p.LongJf == 0) { p.LongJf++; return false; }
                jf = (byte)extra;
                extra++;
                prog[dst + extra] = new BpfInsn(BpfOp.Jmp | BpfOp.Ja, 0, 0, (uint)(off - extra));
            }
            else jf = (byte)off;
        }
        prog[dst] = new BpfInsn(p.Code, jt, jf, p.K);
        return true;
    }
}
