namespace Softnet.Xdp.Bpf;

/// <summary>
/// Per-run state the helpers read and write beyond the address space: the CPU the program runs on (per-CPU maps,
/// bpf_get_smp_processor_id), the replay clock (bpf_ktime_get_ns), and the redirect the program asked for (the
/// kernel's per-CPU struct bpf_redirect_info, filled by bpf_redirect / bpf_redirect_map, read by the driver on
/// XDP_REDIRECT). One per NAPI context; reused for every packet, never allocated per run.
/// </summary>
public sealed class BpfRunContext
{
    /// <summary>The CPU the program runs on (the NAPI CPU).</summary>
    public int Cpu { get; set; }

    /// <summary>The clock bpf_ktime_get_ns reads: the replay clock in a replay, monotonic time otherwise.</summary>
    public Func<ulong> NowNs { get; set; } = static () => (ulong)(System.Diagnostics.Stopwatch.GetTimestamp() * (1e9 / System.Diagnostics.Stopwatch.Frequency));

    // bpf_redirect_info: set by the redirect helpers, consumed when the program returns XDP_REDIRECT.
    public uint RedirectIfindex;
    public uint RedirectFlags;
    public Maps.BpfMap? RedirectMap;
    public uint RedirectKey;

    /// <summary>
    /// bpf_tail_call's jump: the helper sets the program to continue in, the interpreter (or JIT) replaces the running
    /// program with it after the call returns, keeping the stack and R1. Null when no tail call is pending.
    /// </summary>
    public BpfProgram? PendingTailCall;

    /// <summary>Tail calls taken in this run (the kernel's tail_call_cnt, at most MAX_TAIL_CALL_CNT = 33); reset per run.</summary>
    public int TailCallCount;

    public void ClearRedirect()
    {
        RedirectIfindex = 0;
        RedirectFlags = 0;
        RedirectMap = null;
        RedirectKey = 0;
    }
}
