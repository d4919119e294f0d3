using Softnet.Xdp.Bpf.Maps;

namespace Softnet.Xdp.Bpf.Helpers;

/// <summary>
/// The map helpers XDP programs call (kernel/bpf/helpers.c, net/core/filter.c, kernel/bpf/ringbuf.c), each with the
/// argument and return kinds of its bpf_func_proto. Map handles resolve through the address space
/// (<see cref="BpfRegionTable.MapAt"/>), per-CPU maps answer for <see cref="BpfRunContext.Cpu"/>; nothing allocates per call.
/// </summary>
public static class BpfMapHelpers
{
    public const int MapLookupElemId = 1, MapUpdateElemId = 2, MapDeleteElemId = 3, TailCallId = 12, RedirectMapId = 51,
        RingbufOutputId = 130;

    /// <summary>MAX_TAIL_CALL_CNT: tail calls one run may take.</summary>
    public const int MaxTailCallCount = 33;

    /// <summary>BPF_F_BROADCAST: redirect to every device of a devmap.</summary>
    public const ulong BroadcastFlag = 8;

    private const ulong XdpAborted = 0, XdpRedirect = 4, XdpActionMask = 3;

    private static ulong Err(long e) => (ulong)e;

    /// <summary>bpf_map_lookup_elem(map, key): a pointer to the value, or NULL.</summary>
    public static readonly BpfHelper MapLookupElem = new(MapLookupElemId, "bpf_map_lookup_elem",
        [BpfArg.ConstMapPtr, BpfArg.PtrToMapKey], BpfRet.PtrToMapValueOrNull,
        static (ref BpfMemory mem, ulong r1, ulong r2, ulong _, ulong _, ulong _) =>
        {
            var map = mem.Extra?.MapAt(r1);
            if (map is null || !mem.TryMap(r2, map.KeySize, false, out var key)) return 0;
            return map.Lookup(key, mem.Run?.Cpu ?? 0);
        });

    /// <summary>bpf_map_update_elem(map, key, value, flags): 0 or a negative errno.</summary>
    public static readonly BpfHelper MapUpdateElem = new(MapUpdateElemId, "bpf_map_update_elem",
        [BpfArg.ConstMapPtr, BpfArg.PtrToMapKey, BpfArg.PtrToMapValue, BpfArg.Anything], BpfRet.Integer,
        static (ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong _) =>
        {
            var map = mem.Extra?.MapAt(r1);
            if (map is null) return Err(-BpfErrno.EINVAL);
            if (!mem.TryMap(r2, map.KeySize, false, out var key) || !mem.TryMap(r3, map.ValueSize, false, out var value))
                return Err(-BpfErrno.EFAULT);
            return Err(map.Update(key, value, r4, mem.Run?.Cpu ?? 0));
        });

    /// <summary>bpf_map_delete_elem(map, key): 0 or a negative errno.</summary>
    public static readonly BpfHelper MapDeleteElem = new(MapDeleteElemId, "bpf_map_delete_elem",
        [BpfArg.ConstMapPtr, BpfArg.PtrToMapKey], BpfRet.Integer,
        static (ref BpfMemory mem, ulong r1, ulong r2, ulong _, ulong _, ulong _) =>
        {
            var map = mem.Extra?.MapAt(r1);
            if (map is null) return Err(-BpfErrno.EINVAL);
            if (!mem.TryMap(r2, map.KeySize, false, out var key)) return Err(-BpfErrno.EFAULT);
            return Err(map.Delete(key));
        });

    /// <summary>
    /// bpf_tail_call(ctx, prog_array, index): the checks of the interpreter's JMP_TAIL_CALL — index in range, fewer than
    /// MAX_TAIL_CALL_CNT tail calls so far (counted even when the slot is empty), a program in the slot — then the
    /// jump is left in <see cref="BpfRunContext.PendingTailCall"/> for the interpreter. On failure the program goes on.
    /// </summary>
    public static readonly BpfHelper TailCall = new(TailCallId, "bpf_tail_call",
        [BpfArg.PtrToCtx, BpfArg.ConstMapPtr, BpfArg.Anything], BpfRet.Void,
        static (ref BpfMemory mem, ulong _, ulong r2, ulong r3, ulong _, ulong _) =>
        {
            if (mem.Run is not { } run || mem.Extra?.MapAt(r2) is not BpfProgArrayMap progs) return 0;
            uint index = (uint)r3;
            if (index >= (uint)progs.MaxEntries || run.TailCallCount >= MaxTailCallCount) return 0;
            run.TailCallCount++;
            run.PendingTailCall = progs.ProgramAt(index);
            return 0;
        });

    /// <summary>
    /// bpf_redirect_map(map, key, flags), as __bpf_xdp_redirect_map: flags beyond the fallback action (low two bits)
    /// and the map's own flags give XDP_ABORTED; a key with no target clears the redirect map and returns the fallback
    /// action (unless BPF_F_BROADCAST); otherwise the run context records map and key and the helper returns XDP_REDIRECT.
    /// </summary>
    public static readonly BpfHelper RedirectMap = new(RedirectMapId, "bpf_redirect_map",
        [BpfArg.ConstMapPtr, BpfArg.Anything, BpfArg.Anything], BpfRet.Integer,
        static (ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong _, ulong _) =>
        {
            var map = mem.Extra?.MapAt(r1);
            if (map is not IBpfRedirectMap target) return XdpAborted;
            ulong flags = r3;
            if ((flags & ~(XdpActionMask | target.RedirectFlagMask)) != 0) return XdpAborted;
            uint key = (uint)r2; // the map's lookup takes a u32 key
            bool broadcast = (flags & BroadcastFlag) != 0;
            var run = mem.Run;
            if (!target.HasTarget(key) && !broadcast)
            {
                // The last lookup decides: a failed one leaves no map target (bpf_redirect's ifindex survives).
                if (run != null) run.RedirectMap = null;
                return flags & XdpActionMask;
            }
            if (run != null)
            {
                run.RedirectIfindex = key; // ri->tgt_index
                run.RedirectKey = key;
                run.RedirectMap = map;
                run.RedirectFlags = broadcast ? (uint)flags : 0;
            }
            return XdpRedirect;
        });

    /// <summary>bpf_ringbuf_output(ringbuf, data, size, flags): copies a record into the ring; 0 or a negative errno.</summary>
    public static readonly BpfHelper RingbufOutput = new(RingbufOutputId, "bpf_ringbuf_output",
        [BpfArg.ConstMapPtr, BpfArg.PtrToReadableMem, BpfArg.ConstSizeOrZero, BpfArg.Anything], BpfRet.Integer,
        static (ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong _) =>
        {
            if (mem.Extra?.MapAt(r1) is not BpfRingbufMap rb) return Err(-BpfErrno.EINVAL);
            if (r3 > int.MaxValue) return Err(-BpfErrno.EAGAIN);
            ReadOnlySpan<byte> data = default;
            if (r3 != 0)
            {
                if (!mem.TryMap(r2, (int)r3, false, out var d)) return Err(-BpfErrno.EFAULT);
                data = d;
            }
            return Err(rb.Output(data, r4));
        });

    /// <summary>Every helper of this file.</summary>
    public static IReadOnlyList<BpfHelper> All { get; } = [MapLookupElem, MapUpdateElem, MapDeleteElem, TailCall, RedirectMap, RingbufOutput];

    /// <summary>Adds the map helpers to <paramref name="table"/>.</summary>
    public static void Register(BpfHelperTable table)
    {
        foreach (var h in All) table.Register(h);
    }
}
