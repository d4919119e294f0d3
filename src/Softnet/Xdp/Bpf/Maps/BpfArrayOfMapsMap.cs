using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_ARRAY_OF_MAPS: an array whose values are maps shaped like <see cref="BpfMapSpec.Inner"/>. A program's
/// lookup returns the inner map's handle (which it passes to the map helpers) or 0 for an empty slot; user space
/// stores maps with <see cref="SetMap"/> (or an update whose 4-byte value is a map id, the kernel's is an fd) and a
/// lookup returns the inner map's id.
/// </summary>
public sealed class BpfArrayOfMapsMap(BpfMapSpec spec) : BpfMap(spec)
{
    private readonly ulong[] _handles = new ulong[spec.MaxEntries];
    private BpfRegionTable? _space;

    public override void Bind(BpfRegionTable space) => _space = space;

    /// <summary>The inner map at <paramref name="index"/>, or null.</summary>
    public BpfMap? MapAt(int index) => (uint)index < (uint)_handles.Length && _handles[index] != 0 ? _space!.MapAt(_handles[index]) : null;

    /// <summary>bpf_fd_array_map_update_elem with a map: 0, -E2BIG past the end, -EINVAL for a map unlike the template.</summary>
    public long SetMap(uint index, BpfMap inner, ulong flags = 0)
    {
        if (_space is null) throw new InvalidOperationException($"map '{Name}' is not bound to an address space");
        if (flags != BpfMapFlags.Any) return -EINVAL;
        if (index >= (uint)MaxEntries) return -E2BIG;
        if (!BpfInnerMaps.Fits(Spec.Inner!, inner)) return -EINVAL;
        _handles[index] = BpfInnerMaps.HandleOf(_space, inner);
        return 0;
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        uint index = BpfMapUtil.U32(key);
        return index < (uint)_handles.Length ? _handles[index] : 0;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => -EOPNOTSUPP;

    /// <summary>fd_array_map_delete_elem.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        if (_handles[index] == 0) return -ENOENT;
        _handles[index] = 0;
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        ulong h = Lookup(key, 0);
        if (h == 0) return false;
        BinaryPrimitives.WriteUInt32LittleEndian(value, BpfInnerMaps.IdOf(h));
        return true;
    }

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags != BpfMapFlags.Any) return -EINVAL;
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        ulong h = BpfInnerMaps.HandleOfId(_space, BinaryPrimitives.ReadUInt32LittleEndian(value));
        if (h == 0) return -EBADF;
        return SetMap(index, _space!.MapAt(h)!, flags);
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.ArrayOfMaps];

        /// <summary>fd_array_map_alloc_check, then the inner template (bpf_map_meta_alloc).</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            if (spec.ValueSize != 4 || (spec.Flags & (BpfMapFlags.RdonlyProg | BpfMapFlags.WronlyProg)) != 0) return -EINVAL;
            int e = BpfArrayMap.CheckArray(spec, percpu: false);
            return e != 0 ? e : BpfInnerMaps.CheckTemplate(spec);
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfArrayOfMapsMap(spec);
    }
}
