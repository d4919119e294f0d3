using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// What JIT-compiled code calls: the slow path of a memory access (the interpreter's own
/// <see cref="BpfMemory.TryMap"/>, so both engines accept and refuse exactly the same addresses), the per-run views
/// of the packet and context the inline fast paths compare against, the rare ALU operations with special cases
/// (division, modulo), and the atomics. Small and static so the JIT inlines the scalar ones into the generated code.
/// </summary>
internal static class BpfJitRuntime
{
    /// <summary>The bytes at <paramref name="addr"/>, or a null reference when the access faults.</summary>
    public static ref byte Map(ref BpfMemory mem, ulong addr, int size, bool write)
    {
        if (mem.TryMap(addr, size, write, out var bytes)) return ref MemoryMarshal.GetReference(bytes);
        return ref Unsafe.NullRef<byte>();
    }

    /// <summary>
    /// Bytes from data_meta to data_end, or -1 when the bounds do not fit the buffer (then every packet access takes
    /// the slow path, which reports it as the interpreter does).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PacketLength(ref BpfMemory mem)
    {
        int start = mem.PacketStart, end = mem.PacketEnd;
        return start >= 0 && start <= end && end <= mem.Packet.Length ? end - start : -1;
    }

    /// <summary>The BPF address of data_meta: what a packet address is rebased on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PacketLow(ref BpfMemory mem) => BpfMemory.Address(BpfMemory.PacketRegion, mem.PacketStart);

    /// <summary>The first accessible packet byte (data_meta), or the buffer start when the bounds are bad.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte PacketFirst(ref BpfMemory mem)
    {
        ref byte b = ref MemoryMarshal.GetReference(mem.Packet);
        return ref PacketLength(ref mem) >= 0 ? ref Unsafe.Add(ref b, mem.PacketStart) : ref b;
    }

    /// <summary>As <see cref="PacketFirst"/> with the packet length already known.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte PacketFirstAt(ref BpfMemory mem, int length)
        => ref Unsafe.Add(ref MemoryMarshal.GetReference(mem.Packet), length >= 0 ? mem.PacketStart : 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CtxLength(ref BpfMemory mem) => mem.Ctx.Length;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte CtxFirst(ref BpfMemory mem) => ref MemoryMarshal.GetReference(mem.Ctx);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte StackFirst(ref BpfMemory mem) => ref MemoryMarshal.GetReference(mem.Stack);

    /// <summary>
    /// The exclusive bound for (addr − low) of a <paramref name="size"/>-byte access in a region of
    /// <paramref name="length"/> bytes: one unsigned compare then proves region, lower and upper bound at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Limit(int length, int size) => length + 1 - size > 0 ? (ulong)(length + 1 - size) : 0;

    // ---- map values and global data (regions 16 and up) ----

    /// <summary>
    /// The bytes at <paramref name="addr"/> when it lies in the region <paramref name="c"/> holds (the last map value or
    /// global-data region this run touched), else a null reference. The same test <see cref="BpfMemory.TryMap"/> makes
    /// for such a region: offset + size within the storage, and no write to a region read-only for programs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte Cached(ref BpfJitRegionCache c, ulong addr, int size, bool write)
    {
        ulong t = addr - c.Low;
        if (t < c.Limit(size) && !(write && c.ReadOnly))
            return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(c.Storage!), (nint)t);
        return ref Unsafe.NullRef<byte>();
    }

    /// <summary>The first byte of the cached region's storage (the generated code adds the offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte CachedFirst(ref BpfJitRegionCache c) => ref MemoryMarshal.GetArrayDataReference(c.Storage!);

    /// <summary>
    /// The slow path of an access the inline checks missed: a map value or global-data address fills the region cache
    /// and is answered from it; anything else (another call frame's stack, the context, a fault) is
    /// <see cref="BpfMemory.TryMap"/>'s answer.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static ref byte Fill(ref BpfJitRegionCache c, ref BpfMemory mem, ulong addr, int size, bool write)
    {
        uint region = (uint)(addr >> 32);
        if (region >= BpfMemory.ExtraRegion0 && mem.Extra is { } extra && region - BpfMemory.ExtraRegion0 < (uint)extra.Count)
        {
            int i = (int)(region - BpfMemory.ExtraRegion0);
            c.Set(extra[i], addr & 0xFFFF_FFFF_0000_0000UL, extra.IsReadOnly(i));
            return ref Cached(ref c, addr, size, write);
        }
        return ref Map(ref mem, addr, size, write);
    }

    /// <summary>The CPU per-CPU maps answer for (as the map helpers read it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Cpu(ref BpfMemory mem) => mem.Run?.Cpu ?? 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static BpfRegionTable? Extra(ref BpfMemory mem) => mem.Extra;

    /// <summary>bpf_map_lookup_elem inlined for an array map (the kernel's array_map_gen_lookup): the key is a u32
    /// index; a hit also points the region cache at the array's values, which the program reads next.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ArrayLookup(Maps.BpfMap map, ref byte key, ref BpfJitRegionCache c)
    {
        var m = Unsafe.As<Maps.BpfArrayMap>(map);
        ulong v = m.LookupIndex(Unsafe.ReadUnaligned<uint>(ref key));
        if (v != 0) c.Set(m.Values, m.RegionBase, m.ReadOnlyForProgram);
        return v;
    }

    /// <summary>bpf_map_lookup_elem inlined for a per-CPU array (percpu_array_map_gen_lookup): this CPU's copy.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PercpuArrayLookup(Maps.BpfMap map, ref byte key, int cpu, ref BpfJitRegionCache c)
    {
        var m = Unsafe.As<Maps.BpfPercpuArrayMap>(map);
        ulong v = m.LookupIndex(Unsafe.ReadUnaligned<uint>(ref key), cpu, out var storage, out ulong low);
        if (v != 0) c.Set(storage!, low, m.ReadOnlyForProgram);
        return v;
    }

    /// <summary>bpf_map_lookup_elem inlined for an array map whose values the program's proven accesses read through
    /// <see cref="ArrayValues"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ArrayLookupIndex(Maps.BpfMap map, ref byte key)
        => Unsafe.As<Maps.BpfArrayMap>(map).LookupIndex(Unsafe.ReadUnaligned<uint>(ref key));

    /// <summary>The first byte of an array map's value storage.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte ArrayValues(Maps.BpfMap map) => ref MemoryMarshal.GetArrayDataReference(Unsafe.As<Maps.BpfArrayMap>(map).Values);

    /// <summary>bpf_map_lookup_elem inlined for a per-CPU array whose values the program's proven accesses read through
    /// <see cref="PercpuArrayValues"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong PercpuArrayLookupIndex(Maps.BpfMap map, ref byte key, int cpu)
        => Unsafe.As<Maps.BpfPercpuArrayMap>(map).LookupIndex(Unsafe.ReadUnaligned<uint>(ref key), cpu);

    /// <summary>The first byte of CPU <paramref name="cpu"/>'s copy of a per-CPU array (a null reference for a CPU the
    /// map has no copy for, where the lookup gave NULL).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ref byte PercpuArrayValues(Maps.BpfMap map, int cpu) => ref Unsafe.As<Maps.BpfPercpuArrayMap>(map).ValuesFirst(cpu);

    /// <summary>The first byte of the storage of the region <paramref name="value"/> (a lookup's result) lies in, or a
    /// null reference when it is NULL or no value region (which the verifier keeps the program from dereferencing).</summary>
    public static ref byte ValueRegion(ref BpfMemory mem, ulong value)
    {
        uint region = (uint)(value >> 32);
        if (region >= BpfMemory.ExtraRegion0 && mem.Extra is { } extra && region - BpfMemory.ExtraRegion0 < (uint)extra.Count)
            return ref MemoryMarshal.GetArrayDataReference(extra[(int)(region - BpfMemory.ExtraRegion0)]);
        return ref Unsafe.NullRef<byte>();
    }

    /// <summary>bpf_map_lookup_elem for any other map whose handle is constant at the call: the map's own lookup,
    /// called directly (no delegate, handle resolution or key mapping).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MapLookup(Maps.BpfMap map, ref byte key, int cpu)
        => map.Lookup(MemoryMarshal.CreateReadOnlySpan(ref key, map.KeySize), cpu);

    /// <summary>
    /// Whether the verifier's packet proofs hold for this run: R1 is the context, the packet bounds are sane
    /// (<paramref name="packetLength"/> ≥ 0) and the context table's data_meta, data and data_end are packet addresses
    /// with data_meta = the first accessible byte, data between, data_end = the end — so data + the range a comparison
    /// with data_end proved lies inside [data_meta, data_end), as <see cref="BpfMemory.TryMap"/> would find.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool XdpBoundsAgree(ref BpfMemory mem, ulong r1, int packetLength)
    {
        var ctx = mem.Ctx;
        if (r1 != BpfMemory.Address(BpfMemory.CtxRegion, 0) || packetLength < 0 || ctx.Length < XdpMd.TableSize) return false;
        ref byte c = ref MemoryMarshal.GetReference(ctx);
        ulong data = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.Data * 2));
        ulong end = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.DataEnd * 2));
        ulong meta = Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref c, XdpMd.DataMeta * 2));
        ulong low = BpfMemory.Address(BpfMemory.PacketRegion, mem.PacketStart);
        return meta == low && end == BpfMemory.Address(BpfMemory.PacketRegion, mem.PacketEnd) && data >= low && data <= end;
    }

    /// <summary>The run the proofs do not cover: the program compiled with every test (once, on first need).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static BpfRunResult RunChecked(BpfJitClosure closure, ref BpfMemory mem, ulong r1, ulong r2)
        => (closure.CheckedEntry ??= new BpfJitEmitter(closure.Program, elideProvenChecks: false).Compile())(ref mem, r1, r2);

    /// <summary>A helper by run-time id (uBPF's callx), or null.</summary>
    public static BpfHelper? Helper(BpfHelperTable? table, ulong id) => table?.Get((long)id);

    /// <summary>After bpf_tail_call: is a jump pending that this frame takes? A pending jump from a BPF-to-BPF
    /// subprogram is dropped and the call falls through (as <see cref="BpfInterpreter"/> does).</summary>
    public static bool TakeTailCall(ref BpfMemory mem, int frame)
    {
        if (mem.Run is not { PendingTailCall: not null } run) return false;
        if (frame == 0) return true;
        run.PendingTailCall = null;
        return false;
    }

    // Division and modulo by a register: the verifier's fix-ups (x / 0 = 0, x % 0 = x, INT_MIN / -1 = INT_MIN).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div64(ulong d, ulong s) => s == 0 ? 0 : d / s;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod64(ulong d, ulong s) => s == 0 ? d : d % s;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SDiv64(ulong d, ulong s) => s == 0 ? 0 : BpfAlu.SDiv64((long)d, (long)s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SMod64(ulong d, ulong s) => s == 0 ? d : BpfAlu.SMod64((long)d, (long)s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div32(ulong d, ulong s) => (uint)s == 0 ? 0 : (uint)d / (uint)s;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod32(ulong d, ulong s) => (uint)s == 0 ? (uint)d : (uint)d % (uint)s;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SDiv32(ulong d, ulong s) => (uint)s == 0 ? 0 : BpfAlu.SDiv32((int)d, (int)s);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SMod32(ulong d, ulong s) => (uint)s == 0 ? (uint)d : BpfAlu.SMod32((int)d, (int)s);

    /// <summary>
    /// BPF_STX | BPF_ATOMIC read-modify-write on an 8-byte cell (already mapped). Returns the old value;
    /// <paramref name="op"/> is imm without BPF_FETCH and is one of add/and/or/xor/xchg (cmpxchg has its own).
    /// </summary>
    public static ulong Atomic64(ref byte p, int op, ulong v)
    {
        ref long cell = ref Unsafe.As<byte, long>(ref p);
        long s = (long)v;
        switch (op)
        {
            case BPF_ADD: return (ulong)(Interlocked.Add(ref cell, s) - s);
            case BPF_AND: return (ulong)Interlocked.And(ref cell, s);
            case BPF_OR: return (ulong)Interlocked.Or(ref cell, s);
            case BPF_XOR:
            {
                long old;
                do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ s, old) != old);
                return (ulong)old;
            }
            default: return (ulong)Interlocked.Exchange(ref cell, s);
        }
    }

    /// <summary>As <see cref="Atomic64"/> on a 4-byte cell; the old value zero-extended.</summary>
    public static ulong Atomic32(ref byte p, int op, ulong v)
    {
        ref int cell = ref Unsafe.As<byte, int>(ref p);
        int s = (int)v;
        switch (op)
        {
            case BPF_ADD: return (uint)(Interlocked.Add(ref cell, s) - s);
            case BPF_AND: return (uint)Interlocked.And(ref cell, s);
            case BPF_OR: return (uint)Interlocked.Or(ref cell, s);
            case BPF_XOR:
            {
                int old;
                do old = Volatile.Read(ref cell); while (Interlocked.CompareExchange(ref cell, old ^ s, old) != old);
                return (uint)old;
            }
            default: return (uint)Interlocked.Exchange(ref cell, s);
        }
    }

    /// <summary>BPF_CMPXCHG: R0 becomes the old value; the cell takes <paramref name="v"/> when it held R0.</summary>
    public static ulong CmpXchg64(ref byte p, ulong v, ulong r0)
        => (ulong)Interlocked.CompareExchange(ref Unsafe.As<byte, long>(ref p), (long)v, (long)r0);

    public static ulong CmpXchg32(ref byte p, ulong v, ulong r0)
        => (uint)Interlocked.CompareExchange(ref Unsafe.As<byte, int>(ref p), (int)v, (int)r0);
}

/// <summary>
/// The JIT's one-entry cache of a map value or global-data region (a local of the generated method): its storage, its
/// BPF base address and whether programs may write it, so repeated accesses through a map value pointer cost one
/// compare instead of a call. Regions never move while a program runs, so the cache needs no invalidation.
/// </summary>
internal struct BpfJitRegionCache
{
    public byte[]? Storage;
    public ulong Low;
    /// <summary>Exclusive bounds of (address − Low) for 1-, 2-, 4- and 8-byte accesses (<see cref="BpfJitRuntime.Limit"/>);
    /// all 0 while the cache is empty, so nothing hits.</summary>
    public ulong Lim1, Lim2, Lim4, Lim8;
    public bool ReadOnly;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set(byte[] storage, ulong low, bool readOnly)
    {
        ulong n = (ulong)storage.Length;
        Storage = storage;
        Low = low;
        if (n >= 8)
        {
            // Every map's storage (values are 8-byte aligned): no clamping.
            Lim1 = n;
            Lim2 = n - 1;
            Lim4 = n - 3;
            Lim8 = n - 7;
        }
        else SetSmall((int)n);
        ReadOnly = readOnly;
    }

    private void SetSmall(int n)
    {
        Lim1 = BpfJitRuntime.Limit(n, 1);
        Lim2 = BpfJitRuntime.Limit(n, 2);
        Lim4 = BpfJitRuntime.Limit(n, 4);
        Lim8 = BpfJitRuntime.Limit(n, 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly ulong Limit(int size) => size switch { 1 => Lim1, 2 => Lim2, 4 => Lim4, _ => Lim8 };
}
