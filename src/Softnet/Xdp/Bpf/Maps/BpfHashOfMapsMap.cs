using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_HASH_OF_MAPS: a hash (same buckets, flags and get_next_key order as <see cref="BpfHashMap"/>) whose
/// values are maps shaped like <see cref="BpfMapSpec.Inner"/>; a program's lookup returns the inner map's handle, a
/// user-space lookup its id.
/// </summary>
public sealed class BpfHashOfMapsMap : BpfMap
{
    private readonly BpfHashTable _table;
    private readonly ulong[] _handles;
    private BpfRegionTable? _space;

    public BpfHashOfMapsMap(BpfMapSpec spec) : base(spec)
    {
        _table = new BpfHashTable(spec.KeySize, spec.MaxEntries);
        _handles = new ulong[spec.MaxEntries];
    }

    public int Count => _table.Count;

    public override void Bind(BpfRegionTable space) => _space = space;

    /// <summary>htab_map_update_elem with a map as the value.</summary>
    public long SetMap(ReadOnlySpan<byte> key, BpfMap inner, ulong flags = 0)
    {
        if (_space is null) throw new InvalidOperationException($"map '{Name}' is not bound to an address space");
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        if (!BpfInnerMaps.Fits(Spec.Inner!, inner)) return -EINVAL;
        return Put(key, BpfInnerMaps.HandleOf(_space, inner), flags);
    }

    private long Put(ReadOnlySpan<byte> key, ulong handle, ulong flags)
    {
        int old = _table.Find(key);
        if (old >= 0 && flags == BpfMapFlags.NoExist) return -EEXIST;
        if (old < 0 && flags == BpfMapFlags.Exist) return -ENOENT;
        if (old >= 0)
        {
            _handles[old] = handle;
            _table.Unlink(old);
            _table.Link(old, key);
            return 0;
        }
        int s = _table.Alloc();
        if (s < 0) return -E2BIG;
        _handles[s] = handle;
        _table.Link(s, key);
        return 0;
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        int s = _table.Find(key);
        return s < 0 ? 0 : _handles[s];
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => -EOPNOTSUPP;

    public override long Delete(ReadOnlySpan<byte> key)
    {
        int s = _table.Find(key);
        if (s < 0) return -ENOENT;
        _table.Unlink(s);
        _table.Free(s);
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
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        ulong h = BpfInnerMaps.HandleOfId(_space, BinaryPrimitives.ReadUInt32LittleEndian(value));
        if (h == 0) return -EBADF;
        return SetMap(key, _space!.MapAt(h)!, flags);
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => _table.NextKey(key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.HashOfMaps];

        /// <summary>fd_htab_map_alloc_check, then the inner template.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            if (spec.ValueSize != 4) return -EINVAL;
            int e = BpfHashMapBase.CheckHtab(spec);
            return e != 0 ? e : BpfInnerMaps.CheckTemplate(spec);
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfHashOfMapsMap(spec);
    }
}
