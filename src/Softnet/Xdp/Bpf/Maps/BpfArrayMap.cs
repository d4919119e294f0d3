using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY (kernel/bpf/arraymap.c): max_entries values of round_up(value_size, 8) bytes, zeroed at creation,
/// indexed by a u32 key. Every element always exists: delete is -EINVAL, BPF_NOEXIST is -EEXIST, an index past the
/// end is -E2BIG on update and absent on lookup. Global data (.data/.rodata/.bss) is a one-entry array whose value
/// starts as the section's bytes.
/// </summary>
public sealed class BpfArrayMap : BpfMap
{
    private readonly byte[] _values;
    private readonly int _stride;
    private readonly int _maxEntries;
    private readonly bool _readOnly;
    private ulong _base;

    public BpfArrayMap(BpfMapSpec spec) : base(spec)
    {
        _maxEntries = spec.MaxEntries;
        _readOnly = spec.ReadOnlyForProgram;
        _stride = BpfMapUtil.RoundUp8(spec.ValueSize);
        _values = new byte[(long)_stride * spec.MaxEntries];
        spec.InitialValue?.AsSpan(0, Math.Min(spec.InitialValue.Length, spec.ValueSize)).CopyTo(_values);
    }

    /// <summary>The value bytes of element <paramref name="index"/> (tests, the loader, map dumps).</summary>
    public Span<byte> ValueAt(int index) => _values.AsSpan(index * _stride, ValueSize);

    public override void Bind(BpfRegionTable space) => _base = space.Add(_values, Spec.ReadOnlyForProgram);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => LookupIndex(BpfMapUtil.U32(key));

    /// <summary>array_map_lookup_elem on a u32 index: what the JIT inlines at a call site whose map is this array
    /// (the kernel's array_map_gen_lookup); the value region is handed to the JIT's region cache.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ulong LookupIndex(uint index) => index < (uint)_maxEntries ? _base + (ulong)index * (ulong)_stride : 0;

    /// <summary>The value storage and its region's base address (the JIT's region cache).</summary>
    internal byte[] Values => _values;
    internal ulong RegionBase => _base;
    /// <summary>BPF_F_RDONLY_PROG, read once.</summary>
    internal bool ReadOnlyForProgram => _readOnly;

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu)
    {
        // array_map_update_elem: flags first, then the index, then BPF_NOEXIST (every element exists).
        if (BpfMapUtil.BadUpdateFlags(flags)) return -EINVAL;
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        if ((flags & BpfMapFlags.NoExist) != 0) return -EEXIST;
        if ((flags & BpfMapFlags.Lock) != 0) return -EINVAL; // no bpf_spin_lock without BTF
        value[..ValueSize].CopyTo(_values.AsSpan((int)index * _stride));
        return 0;
    }

    public override long Delete(ReadOnlySpan<byte> key) => -EINVAL;

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return false;
        _values.AsSpan((int)index * _stride, ValueSize).CopyTo(value);
        return true;
    }

    /// <summary>The syscall refuses BPF_F_LOCK first for a value without a bpf_spin_lock (bpf_map_check_op_flags).</summary>
    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
        => (flags & BpfMapFlags.Lock) != 0 ? -EINVAL : Update(key, value, flags, 0);

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    /// <summary>array_map_alloc_check (both array types) plus the power-of-two overflow check of array_map_alloc.</summary>
    internal static int CheckArray(BpfMapSpec spec, bool percpu)
    {
        const uint mask = BpfMapFlags.NumaNode | BpfMapFlags.Mmapable | BpfMapFlags.AccessMask | BpfMapFlags.PreserveElems | BpfMapFlags.InnerMap;
        uint f = spec.Flags;
        if (spec.MaxEntries == 0 || spec.KeySize != 4 || spec.ValueSize == 0 || (f & ~mask) != 0 || !BpfMapFlags.AccessOk(f)
            || (percpu && (f & BpfMapFlags.NumaNode) != 0))
            return -EINVAL;
        if (spec.Type != BpfMapType.Array && (f & (BpfMapFlags.Mmapable | BpfMapFlags.InnerMap)) != 0) return -EINVAL;
        if (spec.Type != BpfMapType.PerfEventArray && (f & BpfMapFlags.PreserveElems) != 0) return -EINVAL;
        // PCPU_MIN_UNIT_SIZE is 32 KiB.
        if (percpu && BpfMapUtil.RoundUp8(spec.ValueSize) > 32 << 10) return -E2BIG;
        return 0;
    }

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Array];
        public override int Check(BpfMapSpec spec, int possibleCpus) => CheckArray(spec, percpu: false);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfArrayMap(spec);
    }
}
