using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_CPUMAP (kernel/bpf/cpumap.c): per destination CPU a struct bpf_cpumap_val — the queue size of the
/// CPU's ptr_ring and, with an 8-byte value, a program run there — the targets of bpf_redirect_map to another CPU.
/// A queue size of 0 removes the entry; a CPU that is not possible is -ENODEV; a queue over 16384 is -EOVERFLOW.
/// max_entries is limited by NR_CPUS, taken as 8192 (CONFIG_NR_CPUS of distribution kernels).
/// </summary>
public sealed class BpfCpumapMap : BpfMap, IBpfRedirectMap
{
    public const int NrCpus = 8192;
    private readonly byte[] _vals;
    private readonly bool[] _present;
    private readonly int _possibleCpus;
    private ulong _base;

    public BpfCpumapMap(BpfMapSpec spec, int possibleCpus) : base(spec)
    {
        _vals = new byte[8L * spec.MaxEntries];
        _present = new bool[spec.MaxEntries];
        _possibleCpus = possibleCpus;
    }

    public ulong RedirectFlagMask => 0;
    public bool HasTarget(uint key) => key < (uint)_present.Length && _present[key];

    /// <summary>The queue size for CPU <paramref name="cpu"/>, or 0 when the entry is empty.</summary>
    public uint QueueSize(uint cpu) => HasTarget(cpu) ? BinaryPrimitives.ReadUInt32LittleEndian(_vals.AsSpan((int)cpu * 8)) : 0;

    public override void Bind(BpfRegionTable space) => _base = space.Add(_vals, readOnly: true);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        uint k = BpfMapUtil.U32(key);
        return HasTarget(k) ? _base + k * 8ul : 0;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => UserUpdate(key, value, flags);

    /// <summary>cpu_map_delete_elem: -EINVAL past the end, else 0.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint k = BpfMapUtil.U32(key);
        if (k >= (uint)MaxEntries) return -EINVAL;
        _present[k] = false;
        _vals.AsSpan((int)k * 8, 8).Clear();
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        uint k = BpfMapUtil.U32(key);
        if (!HasTarget(k)) return false;
        _vals.AsSpan((int)k * 8, ValueSize).CopyTo(value);
        return true;
    }

    /// <summary>cpu_map_update_elem (a program fd in the value cannot be resolved here: -EINVAL).</summary>
    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        uint k = BpfMapUtil.U32(key);
        if (k >= (uint)MaxEntries) return -E2BIG;
        if (flags == BpfMapFlags.NoExist) return -EEXIST;
        uint qsize = BinaryPrimitives.ReadUInt32LittleEndian(value);
        if (qsize > 16384) return -EOVERFLOW;
        if (k >= (uint)_possibleCpus) return -ENODEV;
        if (qsize == 0) return Delete(key);
        int fd = ValueSize >= 8 ? BinaryPrimitives.ReadInt32LittleEndian(value[4..]) : 0;
        if (fd > 0) return -EINVAL;
        var v = _vals.AsSpan((int)k * 8, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(v, qsize);
        BinaryPrimitives.WriteUInt32LittleEndian(v[4..], 0);
        _present[k] = true;
        return 0;
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Cpumap];

        /// <summary>cpu_map_alloc's checks.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            const uint mask = BpfMapFlags.NumaNode | BpfMapFlags.Rdonly | BpfMapFlags.Wronly;
            if (spec.MaxEntries == 0 || spec.KeySize != 4 || (spec.ValueSize != 4 && spec.ValueSize != 8) || (spec.Flags & ~mask) != 0)
                return -EINVAL;
            if (spec.MaxEntries > NrCpus) return -E2BIG;
            return 0;
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfCpumapMap(spec, possibleCpus);
    }
}
