using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// What the four htab map types share (kernel/bpf/hashtab.c): preallocated elements (max_entries slots, as the kernel
/// allocates by default), values of round_up(value_size, 8) bytes in one region per copy (one copy, or one per possible
/// CPU), BPF_NOEXIST / BPF_EXIST by check_flags, -E2BIG when full (-ENOENT / -EEXIST first when the flags say so),
/// and, for the LRU types, elements taken from <see cref="BpfLru"/>'s lists, which evict as the kernel does.
/// </summary>
public abstract class BpfHashMapBase : BpfMap
{
    private protected readonly BpfHashTable Table;
    private readonly byte[][] _values;
    private readonly ulong[] _base;
    private readonly int _stride;
    private readonly bool _percpu, _lru;
    private readonly BpfLru? _lruLists;

    private protected BpfHashMapBase(BpfMapSpec spec, int possibleCpus, bool percpu, bool lru) : base(spec)
    {
        _percpu = percpu;
        _lru = lru;
        int capacity = spec.MaxEntries;
        if (lru && (spec.Flags & BpfMapFlags.NoCommonLru) != 0)
        {
            // htab_map_alloc: every CPU's LRU list gets the same number of elements, at least one.
            long up = (capacity + (long)possibleCpus - 1) / possibleCpus * possibleCpus;
            capacity = up > int.MaxValue ? capacity / possibleCpus * possibleCpus : (int)up;
        }
        Table = new BpfHashTable(spec.KeySize, capacity);
        if (lru)
        {
            // htab_lru_map_delete_node: the element leaves the hash if it is still there.
            _lruLists = new BpfLru(capacity, possibleCpus, (spec.Flags & BpfMapFlags.NoCommonLru) != 0, slot =>
            {
                if (Table.Find(Table.KeyAt(slot)) != slot) return false;
                Table.Unlink(slot);
                return true;
            });
        }
        _stride = BpfMapUtil.RoundUp8(spec.ValueSize);
        int copies = percpu ? possibleCpus : 1;
        _values = new byte[copies][];
        for (int c = 0; c < copies; c++) _values[c] = new byte[(long)_stride * capacity];
        _base = new ulong[copies];
    }

    /// <summary>Elements in the map now.</summary>
    public int Count => Table.Count;

    /// <summary>Elements the map can hold (max_entries, rounded for BPF_F_NO_COMMON_LRU as the kernel does).</summary>
    public int Capacity => Table.Capacity;

    public override int UserValueSize => _percpu ? _stride * _values.Length : ValueSize;

    public override void Bind(BpfRegionTable space)
    {
        for (int c = 0; c < _values.Length; c++) _base[c] = space.Add(_values[c], Spec.ReadOnlyForProgram);
    }

    private Span<byte> Value(int slot, int copy) => _values[copy].AsSpan(slot * _stride, _stride);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        int s = Table.Find(key);
        if (s < 0) return 0;
        int copy = _percpu ? cpu : 0;
        if ((uint)copy >= (uint)_values.Length) return 0;
        _lruLists?.SetRef(s); // bpf_lru_node_set_ref
        return _base[copy] + (ulong)s * (ulong)_stride;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu)
        => UpdateCore(key, value, flags, onAllCpus: false, cpu);

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
        => UpdateCore(key, value, flags, onAllCpus: true, 0);

    /// <summary>
    /// htab_map_update_elem and its percpu / LRU variants. From a program (<paramref name="onAllCpus"/> false) a per-CPU
    /// value is written for the running CPU only and a new element's other copies are zeroed (pcpu_init_value); from
    /// user space every CPU's copy comes from round_up(value_size, 8)-spaced slots.
    /// </summary>
    private long UpdateCore(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, bool onAllCpus, int cpu)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL; // BPF_F_LOCK needs a bpf_spin_lock in the value (BTF)
        if (_percpu && !onAllCpus && (uint)cpu >= (uint)_values.Length) return -EINVAL;
        if (_lruLists is { } lru) return LruUpdate(lru, key, value, flags, onAllCpus, cpu);
        int old = Table.Find(key);
        long err = old >= 0 && flags == BpfMapFlags.NoExist ? -EEXIST : old < 0 && flags == BpfMapFlags.Exist ? -ENOENT : 0;
        if (err != 0) return err;
        if (old >= 0 && _percpu)
        {
            // Per-CPU values are replaced in place (pcpu_copy_value), the element keeps its place in its bucket.
            WriteValue(old, value, onAllCpus, cpu, fresh: false);
            return 0;
        }
        if (old >= 0)
        {
            // A replaced element keeps its storage here; the kernel swaps in a new element at the head of the
            // bucket, which only changes the get_next_key order, so the element moves to the head too.
            Value(old, 0)[..ValueSize].Clear();
            value[..ValueSize].CopyTo(Value(old, 0));
            Table.Unlink(old);
            Table.Link(old, key);
            return 0;
        }
        int newSlot = Table.Alloc();
        if (newSlot < 0) return -E2BIG;
        WriteValue(newSlot, value, onAllCpus, cpu, fresh: true);
        Table.Link(newSlot, key);
        return 0;
    }

    /// <summary>
    /// htab_lru_map_update_elem / htab_lru_percpu_map_update_elem: an element is taken from the LRU lists first
    /// (prealloc_lru_pop, which may evict — even the key being updated), then the flags are checked against what the
    /// hash holds now. A new element goes in at the head of its bucket; replacing one marks the new element referenced
    /// and frees the old; a failed update frees the taken element again. A per-CPU value of an existing key is
    /// written in place (the element marked referenced), and BPF_EXIST takes no element.
    /// </summary>
    private long LruUpdate(BpfLru lru, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, bool onAllCpus, int cpu)
    {
        int newSlot = -1;
        if (!(_percpu && flags == BpfMapFlags.Exist))
        {
            newSlot = lru.PopFree(cpu);
            if (newSlot < 0) return -ENOMEM;
        }
        int old = Table.Find(key);
        long err = old >= 0 && flags == BpfMapFlags.NoExist ? -EEXIST : old < 0 && flags == BpfMapFlags.Exist ? -ENOENT : 0;
        if (err != 0)
        {
            if (newSlot >= 0) lru.PushFree(newSlot);
            return err;
        }
        if (_percpu && old >= 0)
        {
            lru.SetRef(old);
            WriteValue(old, value, onAllCpus, cpu, fresh: false);
            if (newSlot >= 0) lru.PushFree(newSlot);
            return 0;
        }
        WriteValue(newSlot, value, onAllCpus, cpu, fresh: true);
        Table.Link(newSlot, key);
        if (old >= 0)
        {
            lru.SetRef(newSlot);
            Table.Unlink(old);
            lru.PushFree(old);
        }
        return 0;
    }

    private void WriteValue(int slot, ReadOnlySpan<byte> value, bool onAllCpus, int cpu, bool fresh)
    {
        if (!_percpu)
        {
            var v = Value(slot, 0);
            v.Clear();
            value[..ValueSize].CopyTo(v);
            return;
        }
        for (int c = 0; c < _values.Length; c++)
        {
            var v = Value(slot, c);
            if (onAllCpus)
            {
                value.Slice(c * _stride, _stride).CopyTo(v); // copy_map_value_long: padding included
            }
            else if (c == cpu)
            {
                value[..ValueSize].CopyTo(v);
            }
            else if (fresh)
            {
                v.Clear();
            }
        }
    }

    public override long Delete(ReadOnlySpan<byte> key)
    {
        int s = Table.Find(key);
        if (s < 0) return -ENOENT;
        Table.Unlink(s);
        if (_lruLists is { } lru) lru.PushFree(s); // htab_lru_push_free
        else Table.Free(s);
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        // The syscall's lookup (htab_lru_map_lookup_elem_sys for LRU) does not mark the element used.
        int s = Table.Find(key);
        if (s < 0) return false;
        if (!_percpu) Value(s, 0)[..ValueSize].CopyTo(value);
        else
            for (int c = 0; c < _values.Length; c++) Value(s, c).CopyTo(value[(c * _stride)..]);
        return true;
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => Table.NextKey(key, next);

    /// <summary>htab_map_alloc_check for the four htab types.</summary>
    internal static int CheckHtab(BpfMapSpec spec)
    {
        const uint mask = BpfMapFlags.NoPrealloc | BpfMapFlags.NoCommonLru | BpfMapFlags.NumaNode | BpfMapFlags.AccessMask | BpfMapFlags.ZeroSeed;
        bool percpu = spec.Type is BpfMapType.PercpuHash or BpfMapType.LruPercpuHash;
        bool lru = spec.Type is BpfMapType.LruHash or BpfMapType.LruPercpuHash;
        uint f = spec.Flags;
        bool percpuLru = (f & BpfMapFlags.NoCommonLru) != 0;
        bool prealloc = (f & BpfMapFlags.NoPrealloc) == 0;
        if ((f & ~mask) != 0 || !BpfMapFlags.AccessOk(f)) return -EINVAL;
        if (!lru && percpuLru) return -EINVAL;
        if (lru && !prealloc) return -ENOTSUPP;
        if ((f & BpfMapFlags.NumaNode) != 0 && (percpu || percpuLru)) return -EINVAL;
        if (spec.MaxEntries == 0 || spec.KeySize == 0 || spec.ValueSize == 0) return -EINVAL;
        // KMALLOC_MAX_SIZE (4 MiB with SLUB on x86-64) less sizeof(struct htab_elem) (48).
        if ((long)spec.KeySize + spec.ValueSize >= (4 << 20) - 48) return -E2BIG;
        if (percpu && BpfMapUtil.RoundUp8(spec.ValueSize) > 32 << 10) return -E2BIG;
        return 0;
    }
}
