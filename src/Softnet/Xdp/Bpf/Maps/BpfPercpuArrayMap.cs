using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_PERCPU_ARRAY: an array per possible CPU, each in its own region; a program sees the copy of the CPU it
/// runs on (this_cpu_ptr), user space all of them, round_up(value_size, 8) bytes apart (bpf_percpu_array_copy).
/// </summary>
public sealed class BpfPercpuArrayMap : BpfMap
{
    private readonly byte[][] _values;
    private readonly ulong[] _base;
    private readonly int _stride, _maxEntries;
    private readonly bool _readOnly;

    public BpfPercpuArrayMap(BpfMapSpec spec, int possibleCpus) : base(spec)
    {
        _maxEntries = spec.MaxEntries;
        _readOnly = spec.ReadOnlyForProgram;
        _stride = BpfMapUtil.RoundUp8(spec.ValueSize);
        _values = new byte[possibleCpus][];
        for (int c = 0; c < possibleCpus; c++) _values[c] = new byte[(long)_stride * spec.MaxEntries];
        _base = new ulong[possibleCpus];
    }

    public int Cpus => _values.Length;

    /// <summary>CPU <paramref name="cpu"/>'s value of element <paramref name="index"/>.</summary>
    public Span<byte> ValueAt(int index, int cpu) => _values[cpu].AsSpan(index * _stride, ValueSize);

    public override int UserValueSize => _stride * _values.Length;

    public override void Bind(BpfRegionTable space)
    {
        for (int c = 0; c < _values.Length; c++) _base[c] = space.Add(_values[c], Spec.ReadOnlyForProgram);
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => LookupIndex(BpfMapUtil.U32(key), cpu);

    /// <summary>percpu_array_map_lookup_elem on a u32 index: what the JIT inlines at a call site whose map is this
    /// array (the kernel's percpu_array_map_gen_lookup).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ulong LookupIndex(uint index, int cpu)
    {
        var bases = _base;
        if (index >= (uint)_maxEntries || (uint)cpu >= (uint)bases.Length) return 0;
        return bases[cpu] + (ulong)index * (ulong)_stride;
    }

    /// <summary>
    /// As <see cref="LookupIndex"/>, also giving CPU <paramref name="cpu"/>'s value storage and its region's base
    /// address on a hit (the JIT's region cache), with one range check.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ulong LookupIndex(uint index, int cpu, out byte[]? storage, out ulong regionBase)
    {
        var bases = _base;
        var values = _values;
        if (index >= (uint)_maxEntries || (uint)cpu >= (uint)bases.Length || (uint)cpu >= (uint)values.Length)
        {
            storage = null;
            regionBase = 0;
            return 0;
        }
        storage = values[cpu];
        regionBase = bases[cpu];
        return regionBase + (ulong)index * (ulong)_stride;
    }

    /// <summary>The first byte of CPU <paramref name="cpu"/>'s values (a null reference past the map's CPUs).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal ref byte ValuesFirst(int cpu)
    {
        var values = _values;
        return ref (uint)cpu < (uint)values.Length
            ? ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(values[cpu])
            : ref System.Runtime.CompilerServices.Unsafe.NullRef<byte>();
    }

    /// <summary>BPF_F_RDONLY_PROG, read once.</summary>
    internal bool ReadOnlyForProgram => _readOnly;

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu)
    {
        if (BpfMapUtil.BadUpdateFlags(flags)) return -EINVAL;
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        if ((flags & BpfMapFlags.NoExist) != 0) return -EEXIST;
        if ((flags & BpfMapFlags.Lock) != 0 || (uint)cpu >= (uint)_values.Length) return -EINVAL;
        value[..ValueSize].CopyTo(_values[cpu].AsSpan((int)index * _stride));
        return 0;
    }

    public override long Delete(ReadOnlySpan<byte> key) => -EINVAL;

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return false;
        for (int c = 0; c < _values.Length; c++)
            _values[c].AsSpan((int)index * _stride, _stride).CopyTo(value[(c * _stride)..]);
        return true;
    }

    /// <summary>bpf_percpu_array_update: round_up(value_size, 8) bytes for each CPU, padding included, as user space gives them.</summary>
    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if ((flags & BpfMapFlags.Lock) != 0 || BpfMapUtil.BadUpdateFlags(flags)) return -EINVAL;
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        if (flags == BpfMapFlags.NoExist) return -EEXIST;
        for (int c = 0; c < _values.Length; c++)
            value.Slice(c * _stride, _stride).CopyTo(_values[c].AsSpan((int)index * _stride));
        return 0;
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.PercpuArray];
        public override int Check(BpfMapSpec spec, int possibleCpus) => BpfArrayMap.CheckArray(spec, percpu: true);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfPercpuArrayMap(spec, possibleCpus);
    }
}
