using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_DEVMAP_HASH: devmap entries under arbitrary u32 keys, at most max_entries of them, in
/// roundup_pow_of_two(max_entries) buckets chosen by key &amp; (buckets − 1) — as the kernel's, so get_next_key walks
/// in the kernel's order. BPF_EXIST is not checked on update (a missing key is added), as in
/// __dev_map_hash_update_elem; a full map is -E2BIG.
/// </summary>
public sealed class BpfDevmapHashMap : BpfMap, IBpfRedirectMap
{
    private readonly BpfHashTable _table;
    private readonly byte[] _vals;
    private readonly BpfProgram?[] _progs;
    private ulong _base;

    public BpfDevmapHashMap(BpfMapSpec spec) : base(spec)
    {
        _table = new BpfHashTable(4, spec.MaxEntries, identityHash: true);
        _vals = new byte[8L * spec.MaxEntries];
        _progs = new BpfProgram?[spec.MaxEntries];
    }

    public Func<uint, bool>? DeviceExists { get; set; }
    public int Count => _table.Count;
    public ulong RedirectFlagMask => BpfDevmapShared.BroadcastFlags;

    private int Find(uint key)
    {
        Span<byte> k = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(k, key);
        return _table.Find(k);
    }

    public bool HasTarget(uint key) => Find(key) >= 0;

    public bool TryGetTarget(uint key, out uint ifindex, out BpfProgram? prog)
    {
        int s = Find(key);
        ifindex = s >= 0 ? BinaryPrimitives.ReadUInt32LittleEndian(_vals.AsSpan(s * 8)) : 0;
        prog = s >= 0 ? _progs[s] : null;
        return s >= 0;
    }

    /// <summary>__dev_map_hash_update_elem with a devmap program given directly.</summary>
    public long SetEntry(uint key, uint ifindex, BpfProgram? prog = null, ulong flags = 0)
    {
        if (flags > BpfMapFlags.Exist || ifindex == 0) return -EINVAL;
        Span<byte> k = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(k, key);
        int old = _table.Find(k);
        if (old >= 0 && (flags & BpfMapFlags.NoExist) != 0) return -EEXIST;
        if (!(DeviceExists?.Invoke(ifindex) ?? true) || (prog != null && ValueSize < 8)) return -EINVAL;
        int s;
        if (old >= 0)
        {
            _table.Unlink(old);
            s = old;
        }
        else
        {
            if (_table.Count >= MaxEntries) return -E2BIG;
            s = _table.Alloc();
        }
        var v = _vals.AsSpan(s * 8, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(v, ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(v[4..], prog is null ? 0 : BpfProgramIds.Of(prog));
        _progs[s] = prog;
        _table.Link(s, k);
        return 0;
    }

    public override void Bind(BpfRegionTable space) => _base = space.Add(_vals, readOnly: true);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        int s = _table.Find(key);
        return s < 0 ? 0 : _base + (ulong)s * 8;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => UserUpdate(key, value, flags);

    public override long Delete(ReadOnlySpan<byte> key)
    {
        int s = _table.Find(key);
        if (s < 0) return -ENOENT;
        _table.Unlink(s);
        _table.Free(s);
        _progs[s] = null;
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        int s = _table.Find(key);
        if (s < 0) return false;
        _vals.AsSpan(s * 8, ValueSize).CopyTo(value);
        return true;
    }

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        uint ifindex = BinaryPrimitives.ReadUInt32LittleEndian(value);
        if (flags > BpfMapFlags.Exist || ifindex == 0) return -EINVAL;
        int fd = ValueSize >= 8 ? BinaryPrimitives.ReadInt32LittleEndian(value[4..]) : 0;
        if (fd > 0)
        {
            // The fd cannot name a program here; the kernel's EEXIST check comes first.
            if (_table.Find(key) >= 0 && (flags & BpfMapFlags.NoExist) != 0) return -EEXIST;
            return -EINVAL;
        }
        return SetEntry(BpfMapUtil.U32(key), ifindex, null, flags);
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => _table.NextKey(key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.DevmapHash];
        public override int Check(BpfMapSpec spec, int possibleCpus) => BpfDevmapShared.Check(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfDevmapHashMap(spec);
    }
}
