namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// The bucket structure under every hash-shaped map (struct bpf_htab's buckets, devmap_hash's dev_index_head): keys in
/// preallocated slots, roundup_pow_of_two(capacity) buckets, each a chain with the newest element first (the kernel's
/// hlist add-head), and a free list of slots. The bucket of a key is jhash(key, key_size, 0) — the kernel's hash with
/// BPF_F_ZERO_SEED — or, for devmap_hash, the key itself; so the order get_next_key walks (bucket 0 up, each chain
/// newest first) is the kernel's for a map created with BPF_F_ZERO_SEED (the kernel otherwise seeds jhash randomly).
/// The LRU maps keep their element lists beside it (<see cref="BpfLru"/>). Program-side operations never allocate.
/// </summary>
internal sealed class BpfHashTable
{
    private readonly int _keySize;
    private readonly byte[] _keys;
    private readonly int[] _buckets;
    private readonly int[] _chain;
    private readonly int[] _free;
    private int _freeCount;
    private readonly uint _mask;
    private readonly bool _identity;

    public BpfHashTable(int keySize, int capacity, bool identityHash = false)
    {
        _keySize = keySize;
        Capacity = capacity;
        _keys = new byte[(long)keySize * capacity];
        uint n = BpfMapUtil.RoundUpPow2((uint)capacity);
        _buckets = new int[n];
        Array.Fill(_buckets, -1);
        _mask = n - 1;
        _chain = new int[capacity];
        _free = new int[capacity];
        for (int i = 0; i < capacity; i++) _free[i] = capacity - 1 - i; // slot 0 first
        _freeCount = capacity;
        _identity = identityHash;
    }

    public int Capacity { get; }
    public int Count { get; private set; }

    public ReadOnlySpan<byte> KeyAt(int slot) => _keys.AsSpan(slot * _keySize, _keySize);

    private uint Bucket(ReadOnlySpan<byte> key) => (_identity ? BpfMapUtil.U32(key) : BpfMapUtil.JHash(key[.._keySize], 0)) & _mask;

    /// <summary>The slot holding <paramref name="key"/>, or -1.</summary>
    public int Find(ReadOnlySpan<byte> key)
    {
        key = key[.._keySize];
        for (int s = _buckets[Bucket(key)]; s >= 0; s = _chain[s])
            if (KeyAt(s).SequenceEqual(key)) return s;
        return -1;
    }

    /// <summary>A free slot, or -1 when all are in use.</summary>
    public int Alloc() => _freeCount > 0 ? _free[--_freeCount] : -1;

    public void Free(int slot) => _free[_freeCount++] = slot;

    /// <summary>Inserts <paramref name="key"/> in <paramref name="slot"/> at the head of its bucket.</summary>
    public void Link(int slot, ReadOnlySpan<byte> key)
    {
        key[.._keySize].CopyTo(_keys.AsSpan(slot * _keySize));
        ref int head = ref _buckets[Bucket(key)];
        _chain[slot] = head;
        head = slot;
        Count++;
    }

    /// <summary>Takes <paramref name="slot"/> out of its bucket; the caller frees it.</summary>
    public void Unlink(int slot)
    {
        ref int p = ref _buckets[Bucket(KeyAt(slot))];
        while (p != slot) p = ref _chain[p];
        p = _chain[slot];
        Count--;
    }

    /// <summary>
    /// htab_map_get_next_key: the key after <paramref name="key"/> in bucket order; the first key when
    /// <paramref name="key"/> is empty or absent; false after the last.
    /// </summary>
    public bool NextKey(ReadOnlySpan<byte> key, Span<byte> next)
    {
        int s = key.IsEmpty ? -1 : Find(key);
        uint b;
        if (s >= 0)
        {
            if (_chain[s] >= 0)
            {
                KeyAt(_chain[s]).CopyTo(next);
                return true;
            }
            b = Bucket(key) + 1;
        }
        else b = 0;
        for (; b < (uint)_buckets.Length; b++)
        {
            if (_buckets[b] >= 0)
            {
                KeyAt(_buckets[b]).CopyTo(next);
                return true;
            }
        }
        return false;
    }
}
