namespace Softnet.Xdp.Bpf;

/// <summary>
/// Per-run state the helpers read and write beyond the address space: the CPU the program runs on (per-CPU maps,
/// bpf_get_smp_processor_id), the replay clock (bpf_ktime_get_ns), the redirect the program asked for (the
/// kernel's per-CPU struct bpf_redirect_info, filled by bpf_redirect / bpf_redirect_map, read by the driver on
/// XDP_REDIRECT), the per-CPU random state, where bpf_trace_printk writes, and the namespace bpf_fib_lookup asks.
/// One per NAPI context; reused for every packet, never allocated per run.
/// </summary>
public sealed class BpfRunContext
{
    public BpfRunContext() => Reseed();

    /// <summary>The CPU the program runs on (the NAPI CPU).</summary>
    public int Cpu
    {
        get => _cpu;
        set
        {
            _cpu = value;
            Reseed();
        }
    }
    private int _cpu;

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

    /// <summary>
    /// Seed of bpf_get_prandom_u32. The kernel seeds each CPU's state from the entropy pool; here the state is
    /// seeded from this value and the CPU, so a replay gives the same numbers every time.
    /// </summary>
    public ulong Seed
    {
        get => _seed;
        set
        {
            _seed = value;
            Reseed();
        }
    }
    private ulong _seed;

    // struct rnd_state: the four words of the Tausworthe generator (prandom_u32_state).
    internal uint Rnd1, Rnd2, Rnd3, Rnd4;

    private void Reseed() => BpfPrandom.SeedState(this, _seed ^ ((ulong)(uint)_cpu * 0x9E3779B97F4A7C15UL));

    /// <summary>Where bpf_trace_printk writes its trace_pipe lines; null discards them (the helper still returns
    /// the formatted length).</summary>
    public TextWriter? TraceWriter { get; set; }

    /// <summary>The task name and pid trace_pipe shows for the line (softirq on an idle CPU shows &lt;idle&gt;-0).</summary>
    public string TraceTask { get; set; } = "<idle>";
    public int TracePid { get; set; }

    /// <summary>Scratch for bpf_trace_printk's formatting (the kernel's per-CPU bpf_bprintf buffers).</summary>
    internal readonly char[] TraceBuffer = new char[1024];

    /// <summary>The routes and neighbours bpf_fib_lookup consults (the namespace of the device the program runs
    /// on), or null: the helper then answers BPF_FIB_LKUP_RET_NOT_FWDED.</summary>
    public Helpers.IBpfFib? Fib { get; set; }
}

/// <summary>prandom_u32_state (lib/random32.c): L'Ecuyer's maximally equidistributed combined Tausworthe generator.</summary>
internal static class BpfPrandom
{
    public static void SeedState(BpfRunContext s, ulong seed)
    {
        // prandom_seed_state: one 32-bit mix of the seed, each word kept above its generator's minimum.
        uint i = (uint)((seed >> 32) ^ (seed << 10) ^ seed);
        s.Rnd1 = i < 2u ? i + 2u : i;
        s.Rnd2 = i < 8u ? i + 8u : i;
        s.Rnd3 = i < 16u ? i + 16u : i;
        s.Rnd4 = i < 128u ? i + 128u : i;
        for (int n = 0; n < 10; n++) Next(s); // prandom_warmup
    }

    public static uint Next(BpfRunContext s)
    {
        s.Rnd1 = ((s.Rnd1 & 0xFFFFFFFEu) << 18) ^ (((s.Rnd1 << 6) ^ s.Rnd1) >> 13);
        s.Rnd2 = ((s.Rnd2 & 0xFFFFFFF8u) << 2) ^ (((s.Rnd2 << 2) ^ s.Rnd2) >> 27);
        s.Rnd3 = ((s.Rnd3 & 0xFFFFFFF0u) << 7) ^ (((s.Rnd3 << 13) ^ s.Rnd3) >> 21);
        s.Rnd4 = ((s.Rnd4 & 0xFFFFFF80u) << 13) ^ (((s.Rnd4 << 3) ^ s.Rnd4) >> 12);
        return s.Rnd1 ^ s.Rnd2 ^ s.Rnd3 ^ s.Rnd4;
    }
}
