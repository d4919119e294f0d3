namespace Softnet.Xdp.Bpf;

/// <summary>What R1 points at when the program starts, which decides what the verifier lets it touch.</summary>
public enum BpfContextKind
{
    /// <summary>
    /// The conformance suite's (and uBPF's) calling convention: R1 points at a plain memory block of
    /// <see cref="BpfVerifierOptions.MemSize"/> bytes (the test's `-- mem`) and R2 holds its length.
    /// </summary>
    Memory,

    /// <summary>
    /// An XDP program: R1 points at struct xdp_md. Loads of data, data_end and data_meta give packet pointers,
    /// which the verifier rewrites into 64-bit loads of the run's context table (<see cref="XdpMd"/>).
    /// </summary>
    Xdp,
}

/// <summary>
/// struct xdp_md (include/uapi/linux/bpf.h): what an XDP program reads through R1, six u32 fields. At run time
/// the context region holds them as six u64 values (the packet ones as BPF addresses), which the verifier's
/// rewrite of each ctx load reads.
/// </summary>
public static class XdpMd
{
    public const int Data = 0, DataEnd = 4, DataMeta = 8, IngressIfindex = 12, RxQueueIndex = 16, EgressIfindex = 20;
    public const int Size = 24;
    /// <summary>Bytes of the run-time context table: one u64 per field.</summary>
    public const int TableSize = Size * 2;
}

/// <summary>How strict the verifier is and what the program may call.</summary>
public sealed record BpfVerifierOptions
{
    public BpfContextKind Context { get; init; } = BpfContextKind.Memory;

    /// <summary>Bytes behind R1 for <see cref="BpfContextKind.Memory"/>.</summary>
    public int MemSize { get; init; }

    public BpfHelperTable? Helpers { get; init; }

    /// <summary>
    /// The object's maps and global data (the loader's address space): ld_imm64 with src_reg BPF_PSEUDO_MAP_FD holds a
    /// handle into it, with BPF_PSEUDO_MAP_VALUE a value address in it. Null: no map references allowed.
    /// </summary>
    public BpfRegionTable? Maps { get; init; }

    /// <summary>
    /// Accept what RFC 9669 defines but the kernel's verifier refuses: shifts by an immediate at or past the
    /// operand width (masked), division or modulo by an immediate zero, and uBPF's call-by-register (callx).
    /// The conformance suite needs these; the kernel (and XDP programs) do not.
    /// </summary>
    public bool Rfc9669 { get; init; }

    /// <summary>
    /// Loops allowed (and proven to end by walking them), as for a loader with CAP_BPF; when false any back-edge
    /// is refused, as the kernel's verifier does for an unprivileged loader.
    /// </summary>
    public bool AllowLoops { get; init; } = true;

    /// <summary>The kernel's BPF_COMPLEXITY_LIMIT_INSNS: instructions the verifier may walk before giving up.</summary>
    public int MaxProcessedInsns { get; init; } = 1_000_000;

    /// <summary>An XDP program as the kernel loads one with CAP_BPF (helpers come with the loader).</summary>
    public static BpfVerifierOptions Xdp(BpfHelperTable? helpers = null) => new()
    {
        Context = BpfContextKind.Xdp,
        Helpers = helpers,
    };

    /// <summary>The conformance suite's setting: plain memory of <paramref name="memSize"/> bytes, uBPF's helpers, RFC 9669.</summary>
    public static BpfVerifierOptions Conformance(int memSize) => new()
    {
        Context = BpfContextKind.Memory,
        MemSize = memSize,
        Helpers = BpfHelperTable.Conformance(),
        Rfc9669 = true,
    };
}

/// <summary>A program the verifier accepted, ready for the interpreter (and later the JIT).</summary>
public sealed class BpfProgram
{
    internal BpfProgram(BpfInsn[] insns, BpfVerifierOptions options, int processed)
    {
        Insns = insns;
        Options = options;
        ProcessedInsns = processed;
    }

    public BpfInsn[] Insns { get; }
    public BpfVerifierOptions Options { get; }
    public BpfHelperTable? Helpers => Options.Helpers;

    /// <summary>
    /// The program may read stack bytes it has not written (a privileged verifier allows it), so the interpreter
    /// zeroes each frame first to make such reads deterministic; other programs skip the 512-byte clear.
    /// Unverified programs built in tests get it too.
    /// </summary>
    internal bool ZeroStack { get; init; } = true;

    /// <summary>
    /// For a verified XDP program: the loads and stores the verifier proved, on every path, to be packet accesses
    /// inside the range a comparison with data_end established (check_packet_access). The JIT compiles them without
    /// a bounds test, as the kernel's JIT does, when the run's packet bounds are sane. Null: none.
    /// </summary>
    internal bool[]? PacketAccessProven { get; init; }

    /// <summary>The loads and stores the verifier proved, on every path, to lie inside a map value (check_map_access);
    /// the JIT leaves out their test where it knows which value region the pointer is in. Null: none.</summary>
    internal bool[]? MapValueAccessProven { get; init; }

    /// <summary>The program compiled by <see cref="BpfJit"/> when a JIT-compiled program tail-calls into it.</summary>
    internal BpfJitProgram? Jitted { get; set; }

    /// <summary>Instructions the verifier walked (the kernel's "processed N insns").</summary>
    public int ProcessedInsns { get; }

    /// <summary>Verifies <paramref name="insns"/> and returns the program, or throws <see cref="BpfVerifierException"/>.</summary>
    public static BpfProgram Load(BpfInsn[] insns, BpfVerifierOptions options) => BpfVerifier.Verify(insns, options);
}
