using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// A program the verifier refused. <see cref="Insn"/> is the instruction the kernel's log would show before the
/// message (-1 for whole-program checks such as "unreachable insn 3", which name their instruction themselves).
/// </summary>
public sealed class BpfVerifierException(int insn, string reason)
    : Exception(insn >= 0 ? $"{insn}: {reason}" : reason)
{
    public int Insn { get; } = insn;
    /// <summary>The kernel's wording, without the instruction number.</summary>
    public string Reason { get; } = reason;
}

/// <summary>
/// The verifier (kernel/bpf/verifier.c, first version). Three passes, in the kernel's order:
/// <list type="number">
/// <item>opcode and reserved-field checks per instruction (resolve_pseudo_ldimm64, the BPF_* "uses reserved
/// fields" checks of do_check), jump ranges and subprogram ends (check_subprogs);</item>
/// <item>the control-flow graph: every instruction reachable (check_cfg); back-edges are allowed, as for a
/// privileged loader, and must then terminate in pass 3;</item>
/// <item>a path-by-path abstract interpretation (do_check): each register is not-initialised, a scalar with an
/// unsigned range, or a pointer of a kind (context, stack frame, packet, packet end, memory) with an offset.
/// Branches whose outcome the ranges decide are followed one way only, so loops with known bounds unroll and
/// terminate; an identical state met again on its own path is an infinite loop; a state met before elsewhere is
/// pruned. Loads and stores are checked against their pointer's region; packet accesses need a prior
/// comparison against data_end (find_good_pkt_pointers).</item>
/// </list>
/// Simpler than the kernel's (exact state equality instead of subsumption, no signed ranges or tnums, no
/// precision tracking), so it may walk more states and refuse some programs the kernel accepts; it accepts
/// nothing the interpreter cannot run safely, and the interpreter checks every access again.
/// </summary>
public static partial class BpfVerifier
{
    public static BpfProgram Verify(BpfInsn[] insns, BpfVerifierOptions options)
    {
        CheckInstructions(insns, options);
        CheckSubprogs(insns);
        CheckCfg(insns, options.AllowLoops);
        var rewritten = (BpfInsn[])insns.Clone();
        var walker = new Walker(insns, rewritten, options);
        int processed = walker.Run();
        return new BpfProgram(rewritten, options, processed)
        {
            ZeroStack = walker.ReadsUninitStack,
            PacketAccessProven = options.Context == BpfContextKind.Xdp ? walker.PacketOnlyAccesses() : null,
            MapValueAccessProven = options.Maps is not null ? walker.MapValueOnlyAccesses() : null,
        };
    }

    /// <summary>Verifies and returns null, or the refusal's message.</summary>
    public static string? Check(BpfInsn[] insns, BpfVerifierOptions options)
    {
        try
        {
            Verify(insns, options);
            return null;
        }
        catch (BpfVerifierException e)
        {
            return e.Message;
        }
    }

    private static BpfVerifierException Fail(int insn, string reason) => new(insn, reason);

    /// <summary>
    /// The map whose value storage holds <paramref name="addr"/> (a BPF_PSEUDO_MAP_VALUE immediate: global data, a
    /// one-entry array), with its index and the offset into the value; null when none does.
    /// </summary>
    private static Maps.BpfMap? ResolveMapValue(BpfRegionTable space, ulong addr, out int mapId, out int off)
    {
        Span<byte> key = stackalloc byte[4];
        key.Clear();
        for (int m = 0; m < space.Maps.Count; m++)
        {
            var map = space.Maps[m];
            if (map.Type != Maps.BpfMapType.Array) continue;
            ulong b = map.Lookup(key, 0);
            if (b != 0 && (b >> 32) == (addr >> 32) && addr >= b && addr - b < (ulong)map.ValueSize)
            {
                mapId = m;
                off = (int)(addr - b);
                return map;
            }
        }
        mapId = off = 0;
        return null;
    }

    // ---- pass 1: each instruction on its own ----

    private static bool IsValidOpcode(byte code, bool rfc)
    {
        int cls = code & 7;
        switch (cls)
        {
            case BPF_ALU:
            case BPF_ALU64:
            {
                int op = code & 0xf0;
                if (op > BPF_END) return false;
                if (op == BPF_NEG) return (code & BPF_X) == 0;
                if (op == BPF_END && cls == BPF_ALU64) return (code & BPF_X) == 0;
                return true;
            }
            case BPF_JMP:
            case BPF_JMP32:
            {
                int op = code & 0xf0;
                bool x = (code & BPF_X) != 0;
                if (op == BPF_JA) return !x;
                if (op == BPF_CALL) return cls == BPF_JMP && (!x || rfc);
                if (op == BPF_EXIT) return cls == BPF_JMP && !x;
                return op <= BPF_JSLE;
            }
            case BPF_LD: return code == (BPF_LD | BPF_IMM | BPF_DW);
            case BPF_LDX:
                return (code & 0xe0) == BPF_MEM || ((code & 0xe0) == BPF_MEMSX && (code & 0x18) != BPF_DW);
            case BPF_ST: return (code & 0xe0) == BPF_MEM;
            case BPF_STX: return (code & 0xe0) == BPF_MEM || (code & 0xe0) == BPF_ATOMIC;
        }
        return false;
    }

    private static void CheckInstructions(BpfInsn[] insns, BpfVerifierOptions options)
    {
        if (insns.Length == 0) throw Fail(-1, "BPF program is empty");
        for (int i = 0; i < insns.Length; i++)
        {
            var insn = insns[i];
            if (insn.IsLdImm64)
            {
                if (i == insns.Length - 1 || insns[i + 1].Code != 0 || insns[i + 1].Regs != 0 || insns[i + 1].Off != 0)
                    throw Fail(i, "invalid bpf_ld_imm64 insn");
                // resolve_pseudo_ldimm64: a map reference must name one of the loader's maps.
                ulong imm = (uint)insn.Imm | ((ulong)(uint)insns[i + 1].Imm << 32);
                if (insn.Src == BPF_PSEUDO_MAP_FD && options.Maps is { } maps)
                {
                    if (maps.MapAt(imm) is null) throw Fail(i, $"fd {insn.Imm} is not pointing to valid bpf_map");
                }
                else if (insn.Src == BPF_PSEUDO_MAP_VALUE && options.Maps is { } space)
                {
                    if (ResolveMapValue(space, imm, out _, out _) is null) throw Fail(i, $"invalid bpf_ld_imm64 map value address {imm:x}");
                }
                else if (insn.Src != 0) throw Fail(i, "unrecognized bpf_ld_imm64 insn");
                i++;
                continue;
            }
            // Legacy packet loads (cBPF's ld abs/ind) are real opcodes, but only socket filters may use them.
            if (insn.Class == BPF_LD && (insn.Mode == BPF_ABS || insn.Mode == BPF_IND) && insn.SizeField != BPF_DW)
                throw Fail(i, "BPF_LD_[ABS|IND] instructions not allowed for this program type");
            if (!IsValidOpcode(insn.Code, options.Rfc9669)) throw Fail(i, $"unknown opcode {insn.Code:x2}");
            CheckReservedFields(i, insn, options);
        }
    }

    private static void CheckReservedFields(int i, BpfInsn insn, BpfVerifierOptions options)
    {
        int cls = insn.Class;
        int op = insn.Op;
        bool x = insn.Source == BPF_X;
        switch (cls)
        {
            case BPF_ALU:
            case BPF_ALU64:
                if (op == BPF_NEG)
                {
                    if (x || insn.Src != 0 || insn.Off != 0 || insn.Imm != 0) throw Fail(i, "BPF_NEG uses reserved fields");
                }
                else if (op == BPF_END)
                {
                    if (insn.Src != 0 || insn.Off != 0 || (insn.Imm != 16 && insn.Imm != 32 && insn.Imm != 64))
                        throw Fail(i, "BPF_END uses reserved fields");
                }
                else if (op == BPF_MOV)
                {
                    if (x)
                    {
                        bool offOk = insn.Off is 0 or 8 or 16 || (cls == BPF_ALU64 && insn.Off == 32);
                        if (!offOk || insn.Imm != 0) throw Fail(i, "BPF_MOV uses reserved fields");
                    }
                    else if (insn.Src != 0 || insn.Off != 0) throw Fail(i, "BPF_MOV uses reserved fields");
                }
                else
                {
                    bool offOk = insn.Off == 0 || (insn.Off == 1 && (op == BPF_DIV || op == BPF_MOD));
                    if ((x ? insn.Imm != 0 : insn.Src != 0) || !offOk) throw Fail(i, "BPF_ALU uses reserved fields");
                    if (!x && (op == BPF_DIV || op == BPF_MOD) && insn.Imm == 0 && !options.Rfc9669) throw Fail(i, "div by zero");
                    if (!x && (op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) && !options.Rfc9669)
                    {
                        int size = cls == BPF_ALU64 ? 64 : 32;
                        if (insn.Imm < 0 || insn.Imm >= size) throw Fail(i, $"invalid shift {insn.Imm}");
                    }
                }
                break;
            case BPF_JMP:
            case BPF_JMP32:
                if (op == BPF_CALL)
                {
                    bool ok = x
                        ? insn.Src == 0 && insn.Off == 0 && insn.Imm == 0
                        : (insn.Src == BPF_PSEUDO_KFUNC_CALL || insn.Off == 0) && insn.Src is 0 or BPF_PSEUDO_CALL or BPF_PSEUDO_KFUNC_CALL && insn.Dst == 0;
                    if (!ok) throw Fail(i, "BPF_CALL uses reserved fields");
                }
                else if (op == BPF_JA)
                {
                    if (insn.Src != 0 || insn.Dst != 0 || (cls == BPF_JMP && insn.Imm != 0) || (cls == BPF_JMP32 && insn.Off != 0))
                        throw Fail(i, "BPF_JA uses reserved fields");
                }
                else if (op == BPF_EXIT)
                {
                    if (insn.Imm != 0 || insn.Src != 0 || insn.Dst != 0 || insn.Off != 0) throw Fail(i, "BPF_EXIT uses reserved fields");
                }
                else if (x ? insn.Imm != 0 : insn.Src != 0) throw Fail(i, "BPF_JMP/JMP32 uses reserved fields");
                break;
            case BPF_LDX:
                if (insn.Imm != 0) throw Fail(i, "BPF_LDX uses reserved fields");
                break;
            case BPF_ST:
                if (insn.Src != 0) throw Fail(i, "BPF_ST uses reserved fields");
                break;
            case BPF_STX:
                if (insn.Mode == BPF_ATOMIC)
                {
                    int imm = insn.Imm;
                    bool rmw = imm is BPF_ADD or BPF_AND or BPF_OR or BPF_XOR or (BPF_ADD | BPF_FETCH) or (BPF_AND | BPF_FETCH)
                        or (BPF_OR | BPF_FETCH) or (BPF_XOR | BPF_FETCH) or BPF_XCHG or BPF_CMPXCHG;
                    bool acqRel = imm is 0x100 or 0x110;
                    if (!(rmw && (insn.SizeField == BPF_W || insn.SizeField == BPF_DW)) && !acqRel)
                        throw Fail(i, $"BPF_ATOMIC uses invalid atomic opcode {imm:x2}");
                }
                else if (insn.Imm != 0) throw Fail(i, "BPF_STX uses reserved fields");
                break;
        }
    }

    // ---- jumps, subprograms, CFG ----

    private static bool IsJump(BpfInsn insn, out int target, int i)
    {
        target = 0;
        if (insn.Class != BPF_JMP && insn.Class != BPF_JMP32) return false;
        int op = insn.Op;
        if (op == BPF_EXIT || op == BPF_CALL) return false;
        target = i + 1 + (op == BPF_JA && insn.Class == BPF_JMP32 ? insn.Imm : insn.Off);
        return true;
    }

    private static bool IsPseudoCall(BpfInsn insn) =>
        insn.Code == (BPF_JMP | BPF_CALL) && insn.Src == BPF_PSEUDO_CALL;

    /// <summary>Subprogram starts (check_subprogs): instruction 0 and every BPF-to-BPF call target.</summary>
    private static int[] CheckSubprogs(BpfInsn[] insns)
    {
        var starts = new SortedSet<int> { 0 };
        for (int i = 0; i < insns.Length; i++)
        {
            if (!IsPseudoCall(insns[i])) continue;
            long t = (long)i + 1 + insns[i].Imm;
            if (t < 0 || t >= insns.Length) throw Fail(i, "call to invalid destination");
            starts.Add((int)t);
        }
        var list = starts.ToArray();
        for (int s = 0; s < list.Length; s++)
        {
            int start = list[s], end = s + 1 < list.Length ? list[s + 1] : insns.Length;
            for (int i = start; i < end; i++)
            {
                var insn = insns[i];
                if (IsJump(insn, out int t, i) && (t < start || t >= end))
                    throw Fail(-1, $"jump out of range from insn {i} to {t}");
                if (i == end - 1 && insn.Code != (BPF_JMP | BPF_EXIT) && insn.Code != (BPF_JMP | BPF_JA) && insn.Code != (BPF_JMP32 | BPF_JA))
                    throw Fail(-1, "last insn is not an exit or jmp");
                if (insn.IsLdImm64) i++;
            }
        }
        return list;
    }

    /// <summary>
    /// check_cfg: a depth-first walk of the control-flow graph. An edge to an instruction still on the walk's
    /// stack is a back-edge (a loop): refused when loops are not allowed (the kernel's unprivileged loader),
    /// otherwise left to pass 3 to prove it ends. Whatever the walk never reaches is unreachable.
    /// </summary>
    private static void CheckCfg(BpfInsn[] insns, bool allowLoops)
    {
        var secondHalf = new bool[insns.Length];
        for (int i = 0; i < insns.Length; i++) if (insns[i].IsLdImm64 && i + 1 < insns.Length) secondHalf[++i] = true;
        var color = new byte[insns.Length];   // 0 unseen, 1 on the stack, 2 done
        var stack = new Stack<(int Insn, int Edge)>();
        Span<int> edges = stackalloc int[2];
        int Successors(int i, Span<int> e)
        {
            var insn = insns[i];
            if (insn.Code == (BPF_JMP | BPF_EXIT)) return 0;
            if (IsJump(insn, out int t, i))
            {
                e[0] = t;
                if (insn.Op == BPF_JA) return 1;
                e[1] = i + 1;
                return 2;
            }
            if (IsPseudoCall(insn))
            {
                e[0] = i + 1 + insn.Imm;
                e[1] = i + 1;
                return 2;
            }
            e[0] = insn.IsLdImm64 ? i + 2 : i + 1;
            return 1;
        }
        color[0] = 1;
        stack.Push((0, 0));
        while (stack.Count > 0)
        {
            var (i, edge) = stack.Pop();
            int n = Successors(i, edges);
            if (edge >= n)
            {
                color[i] = 2;
                continue;
            }
            int to = edges[edge];
            stack.Push((i, edge + 1));
            if (to < 0 || to >= insns.Length) throw Fail(-1, $"jump out of range from insn {i} to {to}");
            if (secondHalf[to]) throw Fail(-1, $"jump into the middle of ldimm64 insn {to - 1}");
            if (color[to] == 1 && !allowLoops) throw Fail(-1, $"back-edge from insn {i} to {to}");
            if (color[to] == 0)
            {
                color[to] = 1;
                stack.Push((to, 0));
            }
        }
        for (int i = 0; i < insns.Length; i++)
            if (color[i] == 0 && !secondHalf[i]) throw Fail(-1, $"unreachable insn {i}");
    }
}
