namespace Softnet.Xdp.Bpf;

/// <summary>A helper function: R1–R5 in, R0 out, with the program's address space to read and write through.</summary>
public delegate ulong BpfHelperFn(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5);

/// <summary>
/// A helper as the verifier and the interpreter see it (the kernel's bpf_func_proto plus the function):
/// its id (enum bpf_func_id), name, how many argument registers it reads, and whether the program stops
/// when it returns 0 (uBPF's "unwind" helper, which the conformance suite uses).
/// </summary>
public sealed record BpfHelper(int Id, string Name, int ArgCount, BpfHelperFn Fn, bool UnwindOnZero = false);

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
        t.Register(new BpfHelper(5, "unwind", 1, static (ref BpfMemory _, ulong r1, ulong _, ulong _, ulong _, ulong _) => r1, UnwindOnZero: true));
        return t;
    }
}
