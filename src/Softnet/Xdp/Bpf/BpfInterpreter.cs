using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>Why a run stopped early. The datapath counts these; none of them is an exception.</summary>
public enum BpfFault
{
    None,
    /// <summary>A load or store outside the region its pointer names (or a write to a read-only region).</summary>
    MemoryAccess,
    /// <summary>More than MAX_CALL_FRAMES nested BPF-to-BPF calls.</summary>
    CallDepth,
    /// <summary>A call to a helper id with nothing registered.</summary>
    UnknownHelper,
    /// <summary>An opcode the interpreter does not know (the verifier rejects these first).</summary>
    BadInstruction,
    /// <summary>The program ran past its last instruction.</summary>
    FellOff,
    /// <summary>
    /// Not a fault: a JIT-compiled program's way of handing a taken bpf_tail_call back to <see cref="BpfJitProgram"/>,
    /// which continues in the target program (R0 then holds R1, the context). Never returned to a caller.
    /// </summary>
    TailCall,
}

/// <summary>The outcome of one run: R0 at the final exit, or the fault and the instruction that raised it.</summary>
public readonly record struct BpfRunResult(ulong R0, BpfFault Fault, int Pc)
{
    public bool Ok => Fault == BpfFault.None;
}

/// <summary>
/// The reference eBPF interpreter, with the semantics of the kernel's ___bpf_prog_run (kernel/bpf/core.c) as the
/// verifier's fix-ups leave it: ALU32 results zero-extended; division by zero gives 0 and modulo by zero leaves
/// the dividend (truncated to 32 bits for ALU32); signed INT_MIN / -1 gives INT_MIN and INT_MIN % -1 gives 0;
/// shift amounts masked to the operand width; BPF-to-BPF calls get a fresh 512-byte frame with R6–R9 restored on
/// return. One instance per queue: the register file, stack and call frames are reused, so a run allocates
/// nothing.
/// </summary>
public sealed class BpfInterpreter
{
    private readonly ulong[] _regs = new ulong[MaxReg];
    private readonly byte[] _stack = new byte[MaxCallFrames * StackSize];
    private readonly int[] _returnPc = new int[MaxCallFrames];
    private readonly ulong[] _saved = new ulong[MaxCallFrames * 4];

    private readonly byte[] _ctx = new byte[XdpMd.TableSize];

    /// <summary>
    /// Runs an XDP program on one frame, as the driver's XDP hook does: R1 is the xdp_md context, whose table
    /// holds data, data_end and data_meta as packet addresses; the program reads and writes the frame in place.
    /// A fault, or a return value that is no XDP action, is XDP_ABORTED (bpf_warn_invalid_xdp_action).
    /// </summary>
    public XdpAction RunXdp(BpfProgram prog, ref XdpBuff xdp, uint ingressIfindex, out BpfRunResult result)
        => RunXdp(prog, ref xdp, ingressIfindex, null, null, out result);

    /// <summary>
    /// <see cref="RunXdp(BpfProgram, ref XdpBuff, uint, out BpfRunResult)"/> with the helpers' run state
    /// (<paramref name="run"/>: CPU, clock, redirect info) and the object's maps and global data
    /// (<paramref name="space"/>). Helpers that move the packet (bpf_xdp_adjust_head/tail/meta) update the context
    /// table; the bounds it holds at the end go back into <paramref name="xdp"/>.
    /// </summary>
    public XdpAction RunXdp(BpfProgram prog, ref XdpBuff xdp, uint ingressIfindex, BpfRunContext? run, BpfRegionTable? space, out BpfRunResult result)
    {
        var mem = BeginXdp(_ctx, _stack, ref xdp, ingressIfindex, run, space);
        result = Run(prog, ref mem, XdpCtxPointer);
        return EndXdp(ref xdp, ref mem, result);
    }

    /// <summary>R1 of an XDP run: the context region.</summary>
    internal static ulong XdpCtxPointer => BpfMemory.Address(BpfMemory.CtxRegion, 0);

    /// <summary>
    /// The address space of one XDP run, shared by the interpreter and the JIT: the context table
    /// <paramref name="ctx"/> filled from <paramref name="xdp"/> (data, data_end and data_meta as packet addresses,
    /// then the queue numbers), the packet region over the whole buffer bounded by data_meta..data_end, and
    /// <paramref name="stack"/>. Written without per-field bounds tests: a run's fixed cost is most of what a small
    /// program costs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static BpfMemory BeginXdp(Span<byte> ctx, Span<byte> stack, scoped ref XdpBuff xdp, uint ingressIfindex,
        BpfRunContext? run, BpfRegionTable? space)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ctx.Length, XdpMd.TableSize);
        ref byte c = ref MemoryMarshal.GetReference(ctx);
        const ulong packet = (ulong)BpfMemory.PacketRegion << 32;
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.Data * 2), packet | (uint)xdp.Data);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.DataEnd * 2), packet | (uint)xdp.DataEnd);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.DataMeta * 2), packet | (uint)xdp.DataMeta);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.IngressIfindex * 2), (ulong)ingressIfindex);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.RxQueueIndex * 2), (ulong)(uint)xdp.RxQueue);
        Unsafe.WriteUnaligned(ref Unsafe.Add(ref c, XdpMd.EgressIfindex * 2), 0UL);
        return new BpfMemory(stack, xdp.Buffer, xdp.DataMeta, xdp.DataEnd)
        {
            Ctx = ctx,
            PacketHardEnd = xdp.HardEnd,
            Run = run,
            Extra = space,
        };
    }

    /// <summary>
    /// The verdict of an XDP run, shared by the interpreter and the JIT: the packet bounds the context table holds
    /// at the end (moved by bpf_xdp_adjust_*) go back into <paramref name="xdp"/>; a fault, or a return value that
    /// is no XDP action, is XDP_ABORTED (bpf_warn_invalid_xdp_action).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static XdpAction EndXdp(ref XdpBuff xdp, scoped ref BpfMemory mem, in BpfRunResult result)
    {
        // BeginXdp checked the table's length.
        ref byte c = ref MemoryMarshal.GetReference(mem.Ctx);
        xdp.SetBounds(
            (int)(uint)Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.DataMeta * 2)),
            (int)(uint)Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.Data * 2)),
            (int)(uint)Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.DataEnd * 2)));
        return result.Ok && result.R0 <= (ulong)XdpAction.Redirect ? (XdpAction)result.R0 : XdpAction.Aborted;
    }

    /// <summary>Stack bytes, all frames (tests and helpers look at them).</summary>
    public Span<byte> StackBytes => _stack;

    /// <summary>Runs <paramref name="prog"/> over <paramref name="mem"/> with R1 and R2 set as given.</summary>
    public BpfRunResult Run(BpfProgram prog, ref BpfMemory mem, ulong r1, ulong r2 = 0)
    {
        mem.Stack = _stack;
        var regs = _regs.AsSpan();
        regs.Clear();
        regs[1] = r1;
        regs[2] = r2;
        regs[FramePointer] = BpfMemory.FramePointer(0);
        // Frames start zeroed when the verifier saw a possible read of a never-written stack byte, so it is deterministic.
        if (prog.ZeroStack) _stack.AsSpan(0, StackSize).Clear();
        if (mem.Run is { } run)
        {
            run.TailCallCount = 0;
            run.PendingTailCall = null;
        }
        return Execute(prog.Insns, prog.Helpers, prog.ZeroStack, ref mem, regs);
    }

    private BpfRunResult Execute(BpfInsn[] insns, BpfHelperTable? helpers, bool zeroStack, ref BpfMemory mem, Span<ulong> regs)
    {
        int frame = 0;
        int pc = 0;
        while ((uint)pc < (uint)insns.Length)
        {
            var insn = insns[pc];
            int dst = insn.Dst, src = insn.Src;
            if (dst >= MaxReg || src >= MaxReg) return new(0, BpfFault.BadInstruction, pc);
            ulong imm64 = (ulong)(long)insn.Imm;        // sign-extended immediate (ALU64, JMP)
            ulong imm32 = (uint)insn.Imm;               // zero-extended immediate (ALU32, JMP32)
            int cls = insn.Class;
            switch (cls)
            {
                case BPF_ALU64:
                {
                    ulong s = insn.Source == BPF_X ? regs[src] : imm64;
                    regs[dst] = BpfAlu.Alu64(insn.Op, insn.Source, insn.Off, insn.Imm, regs[dst], s);
                    pc++;
                    continue;
                }
                case BPF_ALU:
                {
                    ulong s = insn.Source == BPF_X ? regs[src] : imm32;
                    regs[dst] = BpfAlu.Alu32(insn.Op, insn.Source, insn.Off, insn.Imm, regs[dst], s);
                    pc++;
                    continue;
                }
                case BPF_JMP:
                case BPF_JMP32:
                {
                    int op = insn.Op;
                    if (op == BPF_JA)
                    {
                        pc += 1 + (cls == BPF_JMP ? insn.Off : insn.Imm);
                        continue;
                    }
                    if (op == BPF_EXIT && cls == BPF_JMP)
                    {
                        if (frame == 0) return new(regs[0], BpfFault.None, pc);
                        frame--;
                        var sv = _saved.AsSpan(frame * 4, 4);
                        regs[6] = sv[0]; regs[7] = sv[1]; regs[8] = sv[2]; regs[9] = sv[3];
                        regs[FramePointer] = BpfMemory.FramePointer(frame);
                        pc = _returnPc[frame];
                        continue;
                    }
                    if (op == BPF_CALL && cls == BPF_JMP)
                    {
                        if (insn.Source == BPF_K && src == BPF_PSEUDO_CALL)
                        {
                            if (frame + 1 >= MaxCallFrames) return new(0, BpfFault.CallDepth, pc);
                            _returnPc[frame] = pc + 1;
                            var sv = _saved.AsSpan(frame * 4, 4);
                            sv[0] = regs[6]; sv[1] = regs[7]; sv[2] = regs[8]; sv[3] = regs[9];
                            frame++;
                            if (zeroStack) _stack.AsSpan(frame * StackSize, StackSize).Clear();
                            regs[FramePointer] = BpfMemory.FramePointer(frame);
                            pc += 1 + insn.Imm;
                            continue;
                        }
                        // Helper: by immediate, or (uBPF's callx) by the id in dst.
                        long id = insn.Source == BPF_X ? (long)regs[dst] : insn.Imm;
                        var h = helpers?.Get(id);
                        if (h is null) return new(0, BpfFault.UnknownHelper, pc);
                        ulong ret = h.Fn(ref mem, regs[1], regs[2], regs[3], regs[4], regs[5]);
                        regs[0] = ret;
                        if (h.UnwindOnZero && ret == 0) return new(0, BpfFault.None, pc);
                        if (mem.Run?.PendingTailCall is { } next)
                        {
                            // bpf_tail_call succeeded: continue at the start of the next program in this frame, stack
                            // and registers as they are (the kernel's JMP_TAIL_CALL in ___bpf_prog_run). As in the
                            // kernel's interpreter, only from the main frame (tail calls inside BPF-to-BPF calls need
                            // the JIT); from a subprogram the call falls through.
                            mem.Run.PendingTailCall = null;
                            if (frame != 0)
                            {
                                pc++;
                                continue;
                            }
                            insns = next.Insns;
                            helpers = next.Helpers;
                            pc = 0;
                            continue;
                        }
                        pc++;
                        continue;
                    }
                    if (op > BPF_JSLE || op == BPF_CALL || op == BPF_EXIT) return new(0, BpfFault.BadInstruction, pc);
                    ulong a, b;
                    if (cls == BPF_JMP)
                    {
                        a = regs[dst];
                        b = insn.Source == BPF_X ? regs[src] : imm64;
                    }
                    else
                    {
                        a = (uint)regs[dst];
                        b = insn.Source == BPF_X ? (uint)regs[src] : imm32;
                    }
                    bool taken;
                    if (cls == BPF_JMP)
                    {
                        taken = op switch
                        {
                            BPF_JEQ => a == b,
                            BPF_JNE => a != b,
                            BPF_JGT => a > b,
                            BPF_JGE => a >= b,
                            BPF_JLT => a < b,
                            BPF_JLE => a <= b,
                            BPF_JSET => (a & b) != 0,
                            BPF_JSGT => (long)a > (long)b,
                            BPF_JSGE => (long)a >= (long)b,
                            BPF_JSLT => (long)a < (long)b,
                            BPF_JSLE => (long)a <= (long)b,
                            _ => false,
                        };
                    }
                    else
                    {
                        taken = op switch
                        {
                            BPF_JEQ => a == b,
                            BPF_JNE => a != b,
                            BPF_JGT => a > b,
                            BPF_JGE => a >= b,
                            BPF_JLT => a < b,
                            BPF_JLE => a <= b,
                            BPF_JSET => (a & b) != 0,
                            BPF_JSGT => (int)a > (int)b,
                            BPF_JSGE => (int)a >= (int)b,
                            BPF_JSLT => (int)a < (int)b,
                            BPF_JSLE => (int)a <= (int)b,
                            _ => false,
                        };
                    }
                    pc += taken ? 1 + insn.Off : 1;
                    continue;
                }
                case BPF_LDX:
                {
                    if (insn.Mode != BPF_MEM && insn.Mode != BPF_MEMSX) return new(0, BpfFault.BadInstruction, pc);
                    int size = SizeBytes(insn.SizeField);
                    if (!mem.TryMap(regs[src] + (ulong)(long)insn.Off, size, false, out var p))
                        return new(0, BpfFault.MemoryAccess, pc);
                    ulong v = Load(p, size);
                    if (insn.Mode == BPF_MEMSX)
                    {
                        v = size switch
                        {
                            1 => (ulong)(long)(sbyte)v,
                            2 => (ulong)(long)(short)v,
                            4 => (ulong)(long)(int)v,
                            _ => v,
                        };
                    }
                    regs[dst] = v;
                    pc++;
                    continue;
                }
                case BPF_ST:
                case BPF_STX:
                {
                    int size = SizeBytes(insn.SizeField);
                    if (insn.Mode != BPF_MEM && !(insn.Mode == BPF_ATOMIC && cls == BPF_STX)) return new(0, BpfFault.BadInstruction, pc);
                    if (insn.Mode == BPF_ATOMIC)
                    {
                        var fault = Atomic(insn, ref mem, regs, size);
                        if (fault != BpfFault.None) return new(0, fault, pc);
                        pc++;
                        continue;
                    }
                    if (!mem.TryMap(regs[dst] + (ulong)(long)insn.Off, size, true, out var p))
                        return new(0, BpfFault.MemoryAccess, pc);
                    Store(p, size, cls == BPF_STX ? regs[src] : imm64);
                    pc++;
                    continue;
                }
                case BPF_LD:
                {
                    if (!insn.IsLdImm64 || pc + 1 >= insns.Length) return new(0, BpfFault.BadInstruction, pc);
                    regs[dst] = (uint)insn.Imm | ((ulong)(uint)insns[pc + 1].Imm << 32);
                    pc += 2;
                    continue;
                }
                default:
                    return new(0, BpfFault.BadInstruction, pc);
            }
        }
        return new(0, BpfFault.FellOff, pc);
    }

    private static BpfFault Atomic(BpfInsn insn, ref BpfMemory mem, Span<ulong> regs, int size)
    {
        ulong addr = regs[insn.Dst] + (ulong)(long)insn.Off;
        int op = insn.Imm;
        // Load-acquire and store-release (BPF_LOAD_ACQ / BPF_STORE_REL, any size): ordered plain accesses.
        if (op == 0x100 || op == 0x110)
        {
            bool store = op == 0x110;
            ulong a = store ? addr : regs[insn.Src] + (ulong)(long)insn.Off;
            if (!mem.TryMap(a, size, store, out var q)) return BpfFault.MemoryAccess;
            if (store) { Interlocked.MemoryBarrier(); Store(q, size, regs[insn.Src]); }
            else { regs[insn.Dst] = Load(q, size); Interlocked.MemoryBarrier(); }
            return BpfFault.None;
        }
        if (size != 4 && size != 8) return BpfFault.BadInstruction;
        if (!mem.TryMap(addr, size, true, out var p)) return BpfFault.MemoryAccess;
        ulong src = regs[insn.Src];
        if (size == 8)
        {
            ref long cell = ref Unsafe.As<byte, long>(ref MemoryMarshal.GetReference(p));
            long old;
            switch (op & ~BPF_FETCH)
            {
                case BPF_ADD: old = Interlocked.Add(ref cell, (long)src) - (long)src; break;
                case BPF_AND: old = Interlocked.And(ref cell, (long)src); break;
                case BPF_OR: old = Interlocked.Or(ref cell, (long)src); break;
                case BPF_XOR: old = XorLong(ref cell, (long)src); break;
                case BPF_XCHG & ~BPF_FETCH: old = Interlocked.Exchange(ref cell, (long)src); break;
                case BPF_CMPXCHG & ~BPF_FETCH:
                    regs[0] = (ulong)Interlocked.CompareExchange(ref cell, (long)src, (long)regs[0]);
                    return BpfFault.None;
                default: return BpfFault.BadInstruction;
            }
            if ((op & BPF_FETCH) != 0) regs[insn.Src] = (ulong)old;
        }
        else
        {
            ref int cell = ref Unsafe.As<byte, int>(ref MemoryMarshal.GetReference(p));
            int s32 = (int)src;
            int old;
            switch (op & ~BPF_FETCH)
            {
                case BPF_ADD: old = Interlocked.Add(ref cell, s32) - s32; break;
                case BPF_AND: old = Interlocked.And(ref cell, s32); break;
                case BPF_OR: old = Interlocked.Or(ref cell, s32); break;
                case BPF_XOR: old = XorInt(ref cell, s32); break;
                case BPF_XCHG & ~BPF_FETCH: old = Interlocked.Exchange(ref cell, s32); break;
                case BPF_CMPXCHG & ~BPF_FETCH:
                    regs[0] = (uint)Interlocked.CompareExchange(ref cell, s32, (int)regs[0]);
                    return BpfFault.None;
                default: return BpfFault.BadInstruction;
            }
            if ((op & BPF_FETCH) != 0) regs[insn.Src] = (uint)old;
        }
        return BpfFault.None;
    }

    private static long XorLong(ref long cell, long v)
    {
        long old;
        do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }

    private static int XorInt(ref int cell, int v)
    {
        int old;
        do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ v, old) != old);
        return old;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Load(Span<byte> p, int size) => size switch
    {
        1 => p[0],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(p),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(p),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(p),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Span<byte> p, int size, ulong v)
    {
        switch (size)
        {
            case 1: p[0] = (byte)v; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(p, (ushort)v); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(p, (uint)v); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(p, v); break;
        }
    }
}
