namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// The LRU hash maps' element lists (kernel/bpf/bpf_lru.c), node for node, so the kernel's evictions are Softnet's:
/// <list type="bullet">
/// <item>common LRU (the default): one active / inactive / free list set for the map and, per CPU, a local free list
/// and a pending list. A CPU takes free elements from its local list; when that is empty it flushes its pending
/// elements into the common lists (referenced ones to active), rotates them, and moves up to target_free elements
/// (half a CPU's share of max_entries, 1..128) from the common free list — shrinking the inactive list (evicting
/// unreferenced elements from its tail, or one element by force) when that list runs short; failing all that it
/// steals from the CPUs' local lists in turn;</item>
/// <item>per-CPU LRU (BPF_F_NO_COMMON_LRU): each CPU has its own active / inactive / free lists over its share of the
/// elements, shrinking four at a time.</item>
/// </list>
/// A program's lookup sets an element's reference bit, which the rotations read. Nodes are the map's element slots; a
/// list is circular with a sentinel, as the kernel's list_head, so each step walks the same order.
/// </summary>
internal sealed class BpfLru
{
    private const byte Active = 0, Inactive = 1, Free = 2, LocalFree = 3, LocalPending = 4;
    private const int LocalFreeTarget = 128, PercpuFreeTarget = 4;

    private readonly int _nodes;
    private readonly int[] _prev, _next;     // nodes 0.._nodes-1, then the list heads
    private readonly byte[] _type;
    private readonly bool[] _ref;
    private readonly int[] _cpu;
    private readonly Func<int, bool> _delFromHtab;
    private readonly bool _percpu;
    private readonly int _nrScans, _targetFree, _cpus;

    // One bpf_lru_list: the common one, or one per CPU for the per-CPU LRU.
    private sealed class List
    {
        public int ActiveHead, InactiveHead, FreeHead;
        public int CountActive, CountInactive;
        public int NextInactiveRotation;

        public int Head(byte type) => type == Active ? ActiveHead : type == Inactive ? InactiveHead : FreeHead;
    }

    private readonly List[] _lists;
    // Per CPU (common LRU): local free and pending list heads, and the next CPU to steal from.
    private readonly int[] _localFree = [], _localPending = [], _nextSteal = [];

    /// <param name="nodes">The map's elements (its slots), all free at first.</param>
    /// <param name="cpus">Possible CPUs.</param>
    /// <param name="percpu">BPF_F_NO_COMMON_LRU.</param>
    /// <param name="delFromHtab">htab_lru_map_delete_node: unlinks the slot's element from the hash if it is there.</param>
    public BpfLru(int nodes, int cpus, bool percpu, Func<int, bool> delFromHtab)
    {
        _nodes = nodes;
        _cpus = cpus;
        _percpu = percpu;
        _delFromHtab = delFromHtab;
        int heads = percpu ? 3 * cpus : 3 + 2 * cpus;
        _prev = new int[nodes + heads];
        _next = new int[nodes + heads];
        _type = new byte[nodes];
        _ref = new bool[nodes];
        _cpu = new int[nodes];
        for (int h = nodes; h < nodes + heads; h++) _prev[h] = _next[h] = h;
        int nextHead = nodes;
        List NewList()
        {
            var l = new List { ActiveHead = nextHead++, InactiveHead = nextHead++, FreeHead = nextHead++ };
            l.NextInactiveRotation = l.InactiveHead;
            return l;
        }
        if (percpu)
        {
            _lists = new List[cpus];
            for (int c = 0; c < cpus; c++) _lists[c] = NewList();
            _nrScans = PercpuFreeTarget;
            // bpf_percpu_lru_populate: each CPU in turn takes max_entries / CPUs consecutive elements.
            int share = Math.Max(1, nodes / cpus);
            for (int i = 0, c = 0; i < nodes; i++)
            {
                if (i > 0 && i % share == 0 && c < cpus - 1) c++;
                _cpu[i] = c;
                _type[i] = Free;
                ListAdd(i, _lists[c].FreeHead);
            }
        }
        else
        {
            _lists = [NewList()];
            _localFree = new int[cpus];
            _localPending = new int[cpus];
            _nextSteal = new int[cpus];
            for (int c = 0; c < cpus; c++)
            {
                _localFree[c] = nextHead++;
                _localPending[c] = nextHead++;
                _nextSteal[c] = c;
            }
            _nrScans = LocalFreeTarget;
            for (int i = 0; i < nodes; i++)
            {
                _type[i] = Free;
                ListAdd(i, _lists[0].FreeHead);
            }
            _targetFree = Math.Clamp(nodes / cpus / 2, 1, LocalFreeTarget);
        }
    }

    // ---- list_head ----

    private bool IsHead(int n) => n >= _nodes;
    private bool Empty(int head) => _next[head] == head;

    private void Unlink(int n)
    {
        _next[_prev[n]] = _next[n];
        _prev[_next[n]] = _prev[n];
    }

    /// <summary>list_add: right after <paramref name="head"/>.</summary>
    private void ListAdd(int n, int head)
    {
        int first = _next[head];
        _next[head] = n;
        _prev[n] = head;
        _next[n] = first;
        _prev[first] = n;
    }

    private void ListMove(int n, int head)
    {
        Unlink(n);
        ListAdd(n, head);
    }

    // ---- bpf_lru_list ----

    private static void CountInc(List l, byte type)
    {
        if (type == Active) l.CountActive++;
        else if (type == Inactive) l.CountInactive++;
    }

    private static void CountDec(List l, byte type)
    {
        if (type == Active) l.CountActive--;
        else if (type == Inactive) l.CountInactive--;
    }

    /// <summary>__bpf_lru_node_move_to_free.</summary>
    private void MoveToFree(List l, int n, int freeHead, byte freeType)
    {
        if (n == l.NextInactiveRotation) l.NextInactiveRotation = _prev[n];
        CountDec(l, _type[n]);
        _type[n] = freeType;
        ListMove(n, freeHead);
    }

    /// <summary>__bpf_lru_node_move_in: from a local list into the common lists.</summary>
    private void MoveIn(List l, int n, byte type)
    {
        CountInc(l, type);
        _type[n] = type;
        _ref[n] = false;
        ListMove(n, l.Head(type));
    }

    /// <summary>__bpf_lru_node_move: between or within the active and inactive (and free) lists.</summary>
    private void Move(List l, int n, byte type)
    {
        if (_type[n] != type)
        {
            CountDec(l, _type[n]);
            CountInc(l, type);
            _type[n] = type;
        }
        _ref[n] = false;
        if (n == l.NextInactiveRotation) l.NextInactiveRotation = _prev[n];
        ListMove(n, l.Head(type));
    }

    /// <summary>__bpf_lru_list_rotate_active: from the tail, referenced nodes back to the head, the rest to inactive.</summary>
    private void RotateActive(List l)
    {
        int head = l.ActiveHead;
        int first = _next[head];
        int i = 0;
        for (int n = _prev[head], tmp; n != head; n = tmp)
        {
            tmp = _prev[n];
            Move(l, n, _ref[n] ? Active : Inactive);
            if (++i == _nrScans || n == first) break;
        }
    }

    /// <summary>__bpf_lru_list_rotate_inactive: from next_inactive_rotation backwards, referenced nodes to active.</summary>
    private void RotateInactive(List l)
    {
        int inactive = l.InactiveHead;
        if (Empty(inactive)) return;
        int last = _next[l.NextInactiveRotation];
        if (last == inactive) last = _next[last];
        int cur = l.NextInactiveRotation, next = inactive;
        int i = 0;
        while (i < _nrScans)
        {
            if (cur == inactive)
            {
                cur = _prev[cur];
                continue;
            }
            next = _prev[cur];
            if (_ref[cur]) Move(l, cur, Active);
            if (cur == last) break;
            cur = next;
            i++;
        }
        l.NextInactiveRotation = next;
    }

    /// <summary>__bpf_lru_list_rotate.</summary>
    private void Rotate(List l)
    {
        if (l.CountInactive < l.CountActive) RotateActive(l);
        RotateInactive(l);
    }

    /// <summary>__bpf_lru_list_shrink_inactive: from the inactive tail, evicts unreferenced elements into <paramref name="freeHead"/>.</summary>
    private int ShrinkInactive(List l, int target, int freeHead, byte freeType)
    {
        int head = l.InactiveHead;
        int shrunk = 0, i = 0;
        for (int n = _prev[head], tmp; n != head; n = tmp)
        {
            tmp = _prev[n];
            if (_ref[n]) Move(l, n, Active);
            else if (_delFromHtab(n))
            {
                MoveToFree(l, n, freeHead, freeType);
                if (++shrunk == target) break;
            }
            if (++i == _nrScans) break;
        }
        return shrunk;
    }

    /// <summary>__bpf_lru_list_shrink: the inactive shrink, else one element by force (inactive list first).</summary>
    private int Shrink(List l, int target, int freeHead, byte freeType)
    {
        int shrunk = ShrinkInactive(l, target, freeHead, freeType);
        if (shrunk > 0) return shrunk;
        int force = !Empty(l.InactiveHead) ? l.InactiveHead : l.ActiveHead;
        for (int n = _prev[force], tmp; n != force; n = tmp)
        {
            tmp = _prev[n];
            if (_delFromHtab(n))
            {
                MoveToFree(l, n, freeHead, freeType);
                return 1;
            }
        }
        return 0;
    }

    // ---- common LRU: local lists ----

    /// <summary>__local_list_flush: pending elements into the common lists, oldest first.</summary>
    private void Flush(List l, int cpu)
    {
        int head = _localPending[cpu];
        for (int n = _prev[head], tmp; n != head; n = tmp)
        {
            tmp = _prev[n];
            MoveIn(l, n, _ref[n] ? Active : Inactive);
        }
    }

    /// <summary>bpf_lru_list_pop_free_to_local (called with the CPU's local free list empty).</summary>
    private void PopFreeToLocal(int cpu)
    {
        var l = _lists[0];
        Flush(l, cpu);
        Rotate(l);
        int taken = 0;
        for (int n = _next[l.FreeHead], tmp; n != l.FreeHead; n = tmp)
        {
            tmp = _next[n];
            MoveToFree(l, n, _localFree[cpu], LocalFree);
            if (++taken == _targetFree) break;
        }
        if (taken < _targetFree) Shrink(l, _targetFree - taken, _localFree[cpu], LocalFree);
        ReorderLocalFree(cpu);
    }

    /// <summary>The kernel moves the harvest through a temporary list into an llist, which reverses it: the node taken
    /// first is popped first. Nodes went to the head of the local list as taken, so reverse that list.</summary>
    private void ReorderLocalFree(int cpu)
    {
        int head = _localFree[cpu];
        int n = _next[head];
        while (n != head)
        {
            int after = _next[n];
            (_next[n], _prev[n]) = (_prev[n], _next[n]);
            n = after;
        }
        (_next[head], _prev[head]) = (_prev[head], _next[head]);
    }

    private int PopLocalFree(int cpu)
    {
        int head = _localFree[cpu];
        if (Empty(head)) return -1;
        int n = _next[head];
        Unlink(n);
        return n;
    }

    /// <summary>__local_list_pop_pending: the oldest unreferenced pending element still in the hash, else any.</summary>
    private int PopPending(int cpu)
    {
        int head = _localPending[cpu];
        for (int force = 0; force < 2; force++)
            for (int n = _prev[head]; n != head; n = _prev[n])
                if ((!_ref[n] || force == 1) && _delFromHtab(n))
                {
                    Unlink(n);
                    return n;
                }
        return -1;
    }

    private void AddPending(int cpu, int n)
    {
        _cpu[n] = cpu;
        _type[n] = LocalPending;
        _ref[n] = false;
        ListAdd(n, _localPending[cpu]);
    }

    // ---- the map's side ----

    /// <summary>bpf_lru_pop_free: a free element for an update on <paramref name="cpu"/>, evicting as the kernel does;
    /// -1 when none can be had (-ENOMEM).</summary>
    public int PopFree(int cpu)
    {
        if ((uint)cpu >= (uint)_cpus) cpu = 0;
        if (_percpu)
        {
            var l = _lists[cpu];
            Rotate(l);
            if (Empty(l.FreeHead)) Shrink(l, PercpuFreeTarget, l.FreeHead, Free);
            if (Empty(l.FreeHead)) return -1;
            int n = _next[l.FreeHead];
            _ref[n] = false;
            Move(l, n, Inactive);
            return n;
        }
        int node = PopLocalFree(cpu);
        if (node < 0)
        {
            PopFreeToLocal(cpu);
            node = PopLocalFree(cpu);
        }
        if (node >= 0)
        {
            AddPending(cpu, node);
            return node;
        }
        int first = _nextSteal[cpu], steal = first;
        do
        {
            node = PopLocalFree(steal);
            if (node < 0) node = PopPending(steal);
            steal = (steal + 1) % _cpus;
        }
        while (node < 0 && steal != first);
        _nextSteal[cpu] = steal;
        if (node < 0) return -1;
        AddPending(cpu, node);
        return node;
    }

    /// <summary>bpf_lru_push_free: an element deleted, replaced or not used after all goes back to a free list.</summary>
    public void PushFree(int n)
    {
        if (_percpu)
        {
            Move(_lists[_cpu[n]], n, Free);
            return;
        }
        if (_type[n] == LocalPending)
        {
            _type[n] = LocalFree;
            _ref[n] = false;
            Unlink(n);
            ListAdd(n, _localFree[_cpu[n]]);
            return;
        }
        if (_type[n] is Free or LocalFree) return;
        Move(_lists[0], n, Free);
    }

    /// <summary>bpf_lru_node_set_ref: a program looked the element up.</summary>
    public void SetRef(int n) => _ref[n] = true;
}
