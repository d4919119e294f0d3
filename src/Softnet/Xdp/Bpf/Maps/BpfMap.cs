namespace Softnet.Xdp.Bpf.Maps;

/// <summary>enum bpf_map_type (include/uapi/linux/bpf.h), same values.</summary>
public enum BpfMapType : uint
{
    Unspec = 0, Hash = 1, Array = 2, ProgArray = 3, PerfEventArray = 4, PercpuHash = 5, PercpuArray = 6,
    StackTrace = 7, CgroupArray = 8, LruHash = 9, LruPercpuHash = 10, LpmTrie = 11, ArrayOfMaps = 12,
    HashOfMaps = 13, Devmap = 14, Sockmap = 15, Cpumap = 16, Xskmap = 17, Sockhash = 18, CgroupStorage = 19,
    ReuseportSockarray = 20, PercpuCgroupStorage = 21, Queue = 22, Stack = 23, SkStorage = 24, DevmapHash = 25,
    StructOps = 26, Ringbuf = 27,
}

/// <summary>
/// What BPF_MAP_CREATE is given (union bpf_attr's map fields): the loader reads it from a BTF map definition in
/// <c>.maps</c>, a legacy <c>struct bpf_map_def</c> in <c>maps</c>, or a global-data section.
/// </summary>
public sealed record BpfMapSpec(string Name, BpfMapType Type, int KeySize, int ValueSize, int MaxEntries, uint Flags = 0)
{
    /// <summary>For array/hash of maps: the shape every inner map must have (the kernel's inner_map_fd template).</summary>
    public BpfMapSpec? Inner { get; init; }

    /// <summary>For global data (.data/.rodata): the section's bytes, the single value of a one-entry array.</summary>
    public byte[]? InitialValue { get; init; }

    /// <summary>BPF_F_RDONLY_PROG: the program may read but not write values (.rodata).</summary>
    public bool ReadOnlyForProgram => (Flags & 0x80) != 0;
}

/// <summary>
/// A BPF map as programs and user space see it (the kernel's struct bpf_map with its bpf_map_ops). Values live in
/// regions of the program's address space (<see cref="BpfRegionTable"/>), so a program-side lookup returns a BPF
/// address into storage the map owns and never allocates; per-CPU maps keep one region per CPU and answer for the
/// CPU the program runs on.
/// </summary>
public abstract class BpfMap(BpfMapSpec spec)
{
    public BpfMapSpec Spec { get; } = spec;
    public string Name => Spec.Name;
    public BpfMapType Type => Spec.Type;
    public int KeySize => Spec.KeySize;
    public int ValueSize => Spec.ValueSize;
    public int MaxEntries => Spec.MaxEntries;

    /// <summary>Places the map's value storage in <paramref name="space"/>; called once, before any program runs.</summary>
    public abstract void Bind(BpfRegionTable space);

    // Program side (the helpers): no allocation, errors as negative errno.

    /// <summary>bpf_map_lookup_elem: the BPF address of the value for <paramref name="cpu"/>, or 0.</summary>
    public abstract ulong Lookup(ReadOnlySpan<byte> key, int cpu);

    /// <summary>bpf_map_update_elem (BPF_ANY / BPF_NOEXIST / BPF_EXIST in <paramref name="flags"/>): 0 or -errno.</summary>
    public abstract long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu);

    /// <summary>bpf_map_delete_elem: 0 or -errno.</summary>
    public abstract long Delete(ReadOnlySpan<byte> key);

    // User side (bpf(2) BPF_MAP_*_ELEM, bpftool map dump): a per-CPU value is every possible CPU's value, each
    // rounded up to 8 bytes, as the syscall returns it.

    /// <summary>Bytes of a value as user space sees it (ValueSize, or round_up(ValueSize, 8) × CPUs for per-CPU maps).</summary>
    public virtual int UserValueSize => ValueSize;

    public abstract bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value);
    public abstract long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags);

    /// <summary>BPF_MAP_GET_NEXT_KEY: the key after <paramref name="key"/> (the first when it is empty or absent).</summary>
    public abstract bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next);

    /// <summary>BPF_MAP_DELETE_ELEM from user space: 0 or -errno (the program-side delete unless a map differs).</summary>
    public virtual long UserDelete(ReadOnlySpan<byte> key) => Delete(key);

    /// <summary>BPF_MAP_LOOKUP_ELEM with the kernel's errno: 0, -ENOENT, or another -errno some maps give.</summary>
    public virtual long UserLookupElem(ReadOnlySpan<byte> key, Span<byte> value) => UserLookup(key, value) ? 0 : -2;
}
