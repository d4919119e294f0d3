using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_LPM_TRIE (kernel/bpf/lpm_trie.c): keys are struct bpf_lpm_trie_key — a u32 prefixlen and key_size − 4
/// bytes of data, most significant bit first — and a lookup returns the value of the longest stored prefix that matches
/// the key's first prefixlen bits. The trie is the kernel's binary Patricia trie built by the same insert and delete
/// rules (intermediate nodes where two prefixes branch), so get_next_key gives the kernel's postorder: more specific
/// prefixes before less specific, bit 0 before bit 1. The kernel requires BPF_F_NO_PREALLOC; a full trie is -ENOSPC.
/// Nodes are allocated on update (a user-space or program update); lookups never allocate.
/// </summary>
public sealed class BpfLpmTrieMap : BpfMap
{
    private sealed class Node(int prefixLen, byte[] data, int slot)
    {
        public int PrefixLen = prefixLen;
        public byte[] Data = data;
        /// <summary>The value slot, or -1 for an intermediate node (LPM_TREE_NODE_FLAG_IM).</summary>
        public int Slot = slot;
        public Node? C0, C1;
        public bool Intermediate => Slot < 0;
        public ref Node? Child(int bit) => ref bit == 0 ? ref C0 : ref C1;
    }

    private readonly int _dataSize, _maxPrefixLen, _stride;
    private readonly byte[] _values;
    private readonly int[] _free;
    private int _freeCount;
    private ulong _base;
    private Node? _root;

    public BpfLpmTrieMap(BpfMapSpec spec) : base(spec)
    {
        _dataSize = spec.KeySize - 4;
        _maxPrefixLen = _dataSize * 8;
        _stride = BpfMapUtil.RoundUp8(spec.ValueSize);
        _values = new byte[(long)_stride * spec.MaxEntries];
        _free = new int[spec.MaxEntries];
        for (int i = 0; i < spec.MaxEntries; i++) _free[i] = spec.MaxEntries - 1 - i;
        _freeCount = spec.MaxEntries;
    }

    /// <summary>Prefixes stored (the kernel's n_entries).</summary>
    public int Count { get; private set; }

    public override void Bind(BpfRegionTable space) => _base = space.Add(_values, Spec.ReadOnlyForProgram);

    private static int Bit(ReadOnlySpan<byte> data, int i) => (data[i >> 3] >> (7 - (i & 7))) & 1;

    /// <summary>longest_prefix_match: equal leading bits of node and key, at most min(node, key prefix length).</summary>
    private static int MatchLen(Node node, ReadOnlySpan<byte> data, int prefixLen)
    {
        // As the kernel does, a word at a time: the first differing bit is the leading zeros of the XOR of the
        // big-endian words (8, 4 or 1 bytes as the data allows).
        int limit = Math.Min(node.PrefixLen, prefixLen);
        ReadOnlySpan<byte> a = node.Data;
        int bits = 0, i = 0;
        while (bits < limit)
        {
            int rest = a.Length - i;
            ulong x, y;
            int chunk;
            if (rest >= 8)
            {
                x = BinaryPrimitives.ReadUInt64BigEndian(a[i..]);
                y = BinaryPrimitives.ReadUInt64BigEndian(data[i..]);
                chunk = 8;
            }
            else if (rest >= 4)
            {
                x = (ulong)BinaryPrimitives.ReadUInt32BigEndian(a[i..]) << 32;
                y = (ulong)BinaryPrimitives.ReadUInt32BigEndian(data[i..]) << 32;
                chunk = 4;
            }
            else
            {
                x = (ulong)a[i] << 56;
                y = (ulong)data[i] << 56;
                chunk = 1;
            }
            ulong diff = x ^ y;
            if (diff != 0) return Math.Min(bits + System.Numerics.BitOperations.LeadingZeroCount(diff), limit);
            bits += chunk * 8;
            i += chunk;
        }
        return limit;
    }

    private Node? Find(ReadOnlySpan<byte> data, int prefixLen)
    {
        if (prefixLen > _maxPrefixLen) return null; // trie_lookup_elem refuses a key longer than the trie's
        Node? found = null;
        for (var node = _root; node != null;)
        {
            int m = MatchLen(node, data, prefixLen);
            if (m == _maxPrefixLen)
            {
                found = node;
                break;
            }
            if (m < node.PrefixLen) break;
            if (!node.Intermediate) found = node;
            node = node.Child(Bit(data, node.PrefixLen));
        }
        return found;
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        var n = Find(key.Slice(4, _dataSize), (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(key), int.MaxValue));
        return n is null ? 0 : _base + (ulong)n.Slot * (ulong)_stride;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        var n = Find(key.Slice(4, _dataSize), (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(key), int.MaxValue));
        if (n is null) return false;
        _values.AsSpan(n.Slot * _stride, ValueSize).CopyTo(value);
        return true;
    }

    /// <summary>trie_check_add_elem: a new prefix needs BPF_EXIST unset and room.</summary>
    private int CheckAdd(ulong flags)
    {
        if (flags == BpfMapFlags.Exist) return -ENOENT;
        if (Count == MaxEntries) return -ENOSPC;
        return 0;
    }

    /// <summary>trie_update_elem.</summary>
    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        uint plen = BinaryPrimitives.ReadUInt32LittleEndian(key);
        if (plen > (uint)_maxPrefixLen) return -EINVAL;
        int prefixLen = (int)plen;
        var data = key.Slice(4, _dataSize);

        ref Node? slot = ref _root;
        Node? node;
        int m = 0;
        while ((node = slot) != null)
        {
            m = MatchLen(node, data, prefixLen);
            if (node.PrefixLen != m || node.PrefixLen == prefixLen) break;
            slot = ref node.Child(Bit(data, node.PrefixLen));
        }
        int err;
        if (node is null)
        {
            if ((err = CheckAdd(flags)) != 0) return err;
            slot = NewNode(prefixLen, data, value);
            return 0;
        }
        if (node.PrefixLen == m)
        {
            // The exact prefix: replace a real node's value and data, or turn an intermediate node into a real one.
            if (!node.Intermediate)
            {
                if (flags == BpfMapFlags.NoExist) return -EEXIST;
            }
            else
            {
                if ((err = CheckAdd(flags)) != 0) return err;
                node.Slot = AllocSlot();
                Count++;
            }
            data.CopyTo(node.Data);
            WriteValue(node.Slot, value);
            return 0;
        }
        if ((err = CheckAdd(flags)) != 0) return err;
        var fresh = NewNode(prefixLen, data, value);
        if (m == prefixLen)
        {
            // The new prefix covers the node: it goes in between, as an ancestor.
            fresh.Child(Bit(node.Data, m)) = node;
            slot = fresh;
            return 0;
        }
        var im = new Node(m, (byte[])node.Data.Clone(), -1);
        if (Bit(data, m) == 1) { im.C0 = node; im.C1 = fresh; }
        else { im.C0 = fresh; im.C1 = node; }
        slot = im;
        return 0;
    }

    private Node NewNode(int prefixLen, ReadOnlySpan<byte> data, ReadOnlySpan<byte> value)
    {
        var n = new Node(prefixLen, data.ToArray(), AllocSlot());
        Count++;
        WriteValue(n.Slot, value);
        return n;
    }

    private int AllocSlot() => _free[--_freeCount];

    private void WriteValue(int slot, ReadOnlySpan<byte> value)
    {
        var v = _values.AsSpan(slot * _stride, _stride);
        v.Clear();
        value[..ValueSize].CopyTo(v);
    }

    /// <summary>trie_delete_elem.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint plen = BinaryPrimitives.ReadUInt32LittleEndian(key);
        if (plen > (uint)_maxPrefixLen) return -EINVAL;
        int prefixLen = (int)plen;
        var data = key.Slice(4, _dataSize);
        ref Node? trim = ref _root;
        ref Node? trim2 = ref _root;
        Node? parent = null, node;
        int m = 0;
        while ((node = trim) != null)
        {
            m = MatchLen(node, data, prefixLen);
            if (node.PrefixLen != m || node.PrefixLen == prefixLen) break;
            parent = node;
            trim2 = ref trim;
            trim = ref node.Child(Bit(data, node.PrefixLen));
        }
        if (node is null || node.PrefixLen != prefixLen || node.PrefixLen != m || node.Intermediate) return -ENOENT;
        Count--;
        _free[_freeCount++] = node.Slot;
        if (node.C0 != null && node.C1 != null)
        {
            node.Slot = -1;
            return 0;
        }
        if (parent is { Intermediate: true } && node.C0 is null && node.C1 is null)
        {
            trim2 = ReferenceEquals(parent.C0, node) ? parent.C1 : parent.C0;
            return 0;
        }
        trim = node.C0 ?? node.C1;
        return 0;
    }

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags) => Update(key, value, flags, 0);

    /// <summary>trie_get_next_key: postorder from the exact key's node; the leftmost node when the key is absent.</summary>
    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next)
    {
        var searchRoot = _root;
        if (searchRoot is null) return false;
        Node? nextNode = null;
        uint plen = key.Length >= 4 ? BinaryPrimitives.ReadUInt32LittleEndian(key) : uint.MaxValue;
        if (!key.IsEmpty && plen <= (uint)_maxPrefixLen)
        {
            var data = key.Slice(4, _dataSize);
            var stack = new List<Node>();
            Node? node = searchRoot;
            int m = 0;
            while (node != null)
            {
                stack.Add(node);
                m = MatchLen(node, data, (int)plen);
                if (node.PrefixLen != m || node.PrefixLen == (int)plen) break;
                node = node.Child(Bit(data, node.PrefixLen));
            }
            if (node != null && node.PrefixLen == m && !node.Intermediate)
            {
                int sp = stack.Count - 1;
                searchRoot = null;
                while (sp > 0)
                {
                    var p = stack[sp - 1];
                    if (ReferenceEquals(p.C0, node) && p.C1 != null)
                    {
                        searchRoot = p.C1;
                        break;
                    }
                    if (!p.Intermediate)
                    {
                        nextNode = p;
                        break;
                    }
                    node = p;
                    sp--;
                }
                if (searchRoot is null && nextNode is null) return false;
            }
        }
        if (nextNode is null)
        {
            for (var node = searchRoot; node != null;)
            {
                if (node.Intermediate) node = node.C0;
                else
                {
                    nextNode = node;
                    node = node.C0 ?? nextNode.C1;
                }
            }
        }
        BinaryPrimitives.WriteUInt32LittleEndian(next, (uint)nextNode!.PrefixLen);
        nextNode.Data.CopyTo(next[4..]);
        return true;
    }

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.LpmTrie];

        /// <summary>The checks at the top of trie_alloc: data of 1..256 bytes, BPF_F_NO_PREALLOC required.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            const uint mask = BpfMapFlags.NoPrealloc | BpfMapFlags.NumaNode | BpfMapFlags.AccessMask;
            uint f = spec.Flags;
            if (spec.MaxEntries == 0 || (f & BpfMapFlags.NoPrealloc) == 0 || (f & ~mask) != 0 || !BpfMapFlags.AccessOk(f)
                || spec.KeySize < 4 + 1 || spec.KeySize > 4 + 256 || spec.ValueSize < 1 || spec.ValueSize > (4 << 20) - 256 - 48)
                return -EINVAL;
            return 0;
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfLpmTrieMap(spec);
    }
}
