namespace Softnet.Xdp.Bpf;

/// <summary>A helper function: R1–R5 in, R0 out, with the program's address space to read and write through.</summary>
public delegate ulong BpfHelperFn(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>
/// What a helper argument must be (enum bpf_arg_type in include/linux/bpf.h, the kinds XDP helpers use);
/// the verifier's check_func_arg proves each register matches before the call.
/// </summary>
public enum BpfArg : byte
{
    /// <summary>ARG_ANYTHING: any initialised value.</summary>
    Anything,
    /// <summary>ARG_CONST_MAP_PTR: a map loaded with ld_imm64 (BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_IDX).</summary>
    ConstMapPtr,
    /// <summary>ARG_PTR_TO_MAP_KEY: initialised memory of the map's key_size (stack, map value or packet).</summary>
    PtrToMapKey,
    /// <summary>ARG_PTR_TO_MAP_VALUE: initialised memory of the map's value_size.</summary>
    PtrToMapValue,
    /// <summary>ARG_PTR_TO_CTX: the context pointer R1 held at entry, unmodified.</summary>
    PtrToCtx,
    /// <summary>ARG_PTR_TO_MEM | MEM_RDONLY: initialised readable memory; its size is the next argument.</summary>
    PtrToReadableMem,
    /// <summary>ARG_PTR_TO_MEM | MEM_UNINIT: writable memory the helper fills; its size is the next argument.</summary>
    PtrToWritableMem,
    /// <summary>ARG_PTR_TO_MEM | PTR_MAYBE_NULL: like <see cref="PtrToReadableMem"/> or NULL (with size 0).</summary>
    PtrToReadableMemOrNull,
    /// <summary>ARG_CONST_SIZE: a bounded scalar > 0, the size of the memory argument before it.</summary>
    ConstSize,
    /// <summary>ARG_CONST_SIZE_OR_ZERO: a bounded scalar ≥ 0, the size of the memory argument before it.</summary>
    ConstSizeOrZero,
}

/// <summary>What a helper returns (enum bpf_return_type): R0's type after the call.</summary>
public enum BpfRet : byte
{
    /// <summary>RET_INTEGER: an unknown scalar.</summary>
    Integer,
    /// <summary>RET_VOID: R0 is left uninitialised for the program.</summary>
    Void,
    /// <summary>RET_PTR_TO_MAP_VALUE_OR_NULL: must be compared with 0 before use.</summary>
    PtrToMapValueOrNull,
}

/// <summary>
/// A helper as the verifier and the interpreter see it (the kernel's bpf_func_proto plus the function):
/// its id (enum bpf_func_id), name, argument kinds (their count is how many registers it reads), return kind,
/// and whether the program stops when it returns 0 (uBPF's "unwind" helper, which the conformance suite uses).
/// </summary>
public sealed record BpfHelper(int Id, string Name, BpfArg[] Args, BpfRet Ret, BpfHelperFn Fn, bool UnwindOnZero = false)
{
    /// <summary>A helper that takes <paramref name="argCount"/> values of any kind and returns an integer.</summary>
    public BpfHelper(int id, string name, int argCount, BpfHelperFn fn, bool unwindOnZero = false)
        : this(id, name, Enumerable.Repeat(BpfArg.Anything, argCount).ToArray(), BpfRet.Integer, fn, unwindOnZero) { }

    public int ArgCount => Args.Length;

    /// <summary>Packet data may have moved (bpf_helper_changes_pkt_data): packet pointers die at the call.</summary>
    public bool ChangesPacketData { get; init; }
}

/// <summary>Helper id → helper: the table BPF_CALL looks up, filled by whoever sets up the program type.</summary>
public sealed class BpfHelperTable
{
    private BpfHelper?[] _byId = new BpfHelper?[256];

    public void Register(BpfHelper helper)
    {
        if (helper.Id < 0) throw new ArgumentOutOfRangeException(nameof(helper));
        if (helper.Id >= _byId.Length) Array.Resize(ref _byId, Math.Max(helper.Id + 1, _byId.Length * 2));
        _byId[helper.Id] = helper;
    }

    public BpfHelper? Get(long id) => id >= 0 && id < _byId.Length ? _byId[id] : null;

    /// <summary>
    /// The helpers uBPF's test runner offers and the conformance suite calls: 5 is "unwind" (returns its
    /// argument; a zero return ends the program with R0 = 0). No other helper id appears in the suite.
    /// </summary>
    public static BpfHelperTable Conformance()
    {
        var t = new BpfHelperTable();
        t.Register(new BpfHelper(5, "unwind", 1, static (ref BpfMemory _, ulong r1, ulong _, ulong _, ulong _, ulong _) => r1, unwindOnZero: true));
        return t;
    }
}
