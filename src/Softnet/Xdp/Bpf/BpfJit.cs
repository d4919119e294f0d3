using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Softnet.Xdp.Bpf;

/// <summary>Which engine runs a verified program: the reference interpreter or the JIT.</summary>
public enum BpfEngine
{
    Interpreter,
    Jit,
}

/// <summary>
/// The eBPF JIT: compiles a verified <see cref="BpfProgram"/> to one IL method (the kernel's bpf_int_jit_compile,
/// with .NET's JIT as the back end), which must give exactly what <see cref="BpfInterpreter"/> gives — R0, the
/// fault and its instruction, every byte of memory — the interpreter staying the reference.
/// <para>
/// Why <see cref="System.Reflection.Emit.DynamicMethod"/> and ILGenerator rather than expression trees: eBPF is a
/// register machine with arbitrary jumps, which IL expresses one to one (eleven 64-bit registers become eleven IL
/// locals the .NET JIT keeps in machine registers, each jump a branch to a label); expression trees would need
/// the same labels through Expression.Goto plus a closure per variable, and cannot express a managed-pointer load
/// (<c>unaligned. ldind</c> from <c>ref byte</c>), so every memory access would go through a Span. IL gives the
/// control the inline fast paths need: a packet access is one subtract, one unsigned compare and one unaligned
/// load; a stack access through R10 with a constant offset is a load at a fixed displacement from the frame,
/// checked at compile time. A dynamic method is also collectible with its delegate, so programs can be loaded
/// and dropped in a long-running replay.
/// </para>
/// </summary>
public static class BpfJit
{
    /// <summary>Compiles <paramref name="prog"/>; the result runs on any thread (see <see cref="BpfJitProgram"/>).</summary>
    public static BpfJitProgram Compile(BpfProgram prog)
    {
        ArgumentNullException.ThrowIfNull(prog);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("the eBPF JIT emits little-endian loads");
        var emitter = new BpfJitEmitter(prog);
        var entry = emitter.Compile();
        return new BpfJitProgram(prog, entry) { InlinedLookups = emitter.InlinedLookups, ElidedChecks = emitter.ElidedChecks };
    }
}

/// <summary>
/// The per-run scratch of a JIT-compiled program: all call frames' stacks (<see cref="BpfOp.MaxCallFrames"/> ×
/// 512 bytes, as the interpreter's) and the xdp_md context table. One per thread (per queue): a run uses it
/// exclusively, and nothing is allocated per run.
/// </summary>
public sealed class BpfJitStack
{
    internal readonly byte[] Bytes = new byte[BpfOp.MaxCallFrames * BpfOp.StackSize];
    internal readonly byte[] Ctx = new byte[XdpMd.TableSize];

    /// <summary>Stack bytes, all frames (tests compare them with the interpreter's).</summary>
    public Span<byte> StackBytes => Bytes;
}

/// <summary>
/// A compiled program. The code itself is immutable and may run on many threads at once, each with its own
/// <see cref="BpfJitStack"/>; the overloads without one use the program's own stack, so those are for one
/// thread at a time (as a <see cref="BpfInterpreter"/> is one queue's).
/// </summary>
public sealed class BpfJitProgram
{
    private readonly BpfJitEntry _entry;
    private readonly BpfJitStack _stack = new();

    internal BpfJitProgram(BpfProgram program, BpfJitEntry entry)
    {
        Program = program;
        _entry = entry;
    }

    public BpfProgram Program { get; }

    /// <summary>Call sites of bpf_map_lookup_elem compiled inline or to the map's own lookup (tests).</summary>
    internal int InlinedLookups { get; init; }

    /// <summary>Packet accesses compiled without a bounds test on the verifier's proof (tests). The generated code
    /// runs them only when R1 is the context and the context table agrees with the packet bounds (an XDP run); any
    /// other run goes to a version of the program with every test (<see cref="BpfJitRuntime.RunChecked"/>).</summary>
    internal int ElidedChecks { get; init; }

    /// <summary>The program's own stack (what the overloads without a <see cref="BpfJitStack"/> use).</summary>
    public BpfJitStack Stack => _stack;

    /// <summary>Stack bytes of the program's own stack, all frames.</summary>
    public Span<byte> StackBytes => _stack.StackBytes;

    /// <summary>Runs the program over <paramref name="mem"/> with R1 and R2 set as given (as <see cref="BpfInterpreter.Run"/>).</summary>
    public BpfRunResult Run(ref BpfMemory mem, ulong r1, ulong r2 = 0) => Run(_stack, ref mem, r1, r2);

    /// <summary>As <see cref="Run(ref BpfMemory, ulong, ulong)"/> on a caller's stack, for sharing one program between threads.</summary>
    public BpfRunResult Run(BpfJitStack stack, ref BpfMemory mem, ulong r1, ulong r2 = 0)
    {
        mem.Stack = stack.Bytes;
        if (mem.Run is { } run)
        {
            run.TailCallCount = 0;
            run.PendingTailCall = null;
        }
        return Finish(_entry(ref mem, r1, r2), ref mem);
    }

    /// <summary>
    /// Follows the tail calls a run took: each target program runs, compiled on its first use, on the same memory
    /// with R1 = the context, as bpf_tail_call's jump does (the helper has counted them against MAX_TAIL_CALL_CNT).
    /// </summary>
    private static BpfRunResult Finish(BpfRunResult r, ref BpfMemory mem)
    {
        while (r.Fault == BpfFault.TailCall)
        {
            var run = mem.Run!;
            var next = run.PendingTailCall!;
            run.PendingTailCall = null;
            var jit = next.Jitted ??= BpfJit.Compile(next);
            r = jit._entry(ref mem, r.R0, 0);
        }
        return r;
    }

    /// <summary>Runs an XDP program on one frame with the context and verdict rules of <see cref="BpfInterpreter.RunXdp"/>.</summary>
    public XdpAction RunXdp(ref XdpBuff xdp, uint ingressIfindex, out BpfRunResult result)
        => RunXdp(_stack, ref xdp, ingressIfindex, null, null, out result);

    public XdpAction RunXdp(BpfJitStack stack, ref XdpBuff xdp, uint ingressIfindex, out BpfRunResult result)
        => RunXdp(stack, ref xdp, ingressIfindex, null, null, out result);

    /// <summary>
    /// As <see cref="BpfInterpreter.RunXdp(BpfProgram, ref XdpBuff, uint, BpfRunContext?, BpfRegionTable?, out BpfRunResult)"/>:
    /// with the helpers' run state and the object's maps, the bounds the program moved written back to <paramref name="xdp"/>.
    /// </summary>
    public XdpAction RunXdp(BpfJitStack stack, ref XdpBuff xdp, uint ingressIfindex, BpfRunContext? run, BpfRegionTable? space, out BpfRunResult result)
    {
        var mem = BpfInterpreter.BeginXdp(stack.Ctx, stack.Bytes, ref xdp, ingressIfindex, run, space);
        if (run is not null)
        {
            run.TailCallCount = 0;
            run.PendingTailCall = null;
        }
        var r = _entry(ref mem, BpfInterpreter.XdpCtxPointer, 0);
        if (r.Fault == BpfFault.TailCall) r = Finish(r, ref mem);
        result = r;
        return BpfInterpreter.EndXdp(ref xdp, ref mem, r);
    }
}
