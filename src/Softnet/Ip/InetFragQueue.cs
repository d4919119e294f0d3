using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Ip;

/// <summary>What inet_frag_queue_insert did with a fragment.</summary>
internal enum FragInsertResult : byte { Ok, Duplicate, Overlap }

/// <summary>One held fragment: its skb and the data range it covers.</summary>
internal struct FragEntry
{
    public Skb Skb;
    public int Offset;
    public int Len;
}

/// <summary>A run of adjacent fragments (the rb-tree node of inet_frag_queue: a run head and frag_run_len).</summary>
internal struct FragRun
{
    public int Offset;
    public int End;
}

/// <summary>struct inet_frag_queue (ipq, frag_queue): one datagram being reassembled, keyed by <typeparamref name="TKey"/>.
/// Fragments sorted by offset; runs sorted and disjoint. Shared by IPv4 and IPv6 reassembly.</summary>
internal sealed class InetFragQueue<TKey> where TKey : struct
{
    private FragEntry[] _frags = new FragEntry[8];
    private FragRun[] _runs = new FragRun[4];
    private int _runCount;

    public TKey Key;
    public long ExpiresNs;
    public int Count;
    public bool FirstIn, LastIn;
    /// <summary>The datagram's data length as known so far (q->len).</summary>
    public int Len;
    /// <summary>Data bytes held (q->meat).</summary>
    public int Meat;
    public byte Ecn;
    public int MaxSize, MaxDfSize;
    public Device? Iif;
    public long Stamp;
    public uint Rid;
    /// <summary>frag_queue.nhoffset (IPv6): where the first fragment keeps the field that names its fragment header.</summary>
    public int NhOff;

    public ref FragEntry Frag(int i) => ref _frags[i];

    public void Init(TKey key, long expires)
    {
        Key = key;
        Rid = 0;
        Restart(expires);
    }

    /// <summary>The state after inet_frag_alloc, or ip_frag_reinit (the key and rid stay).</summary>
    public void Restart(long expires)
    {
        ExpiresNs = expires;
        FirstIn = LastIn = false;
        Len = Meat = MaxSize = MaxDfSize = 0;
        Ecn = 0;
        Iif = null;
        Stamp = 0;
        NhOff = 6;
        Clear();
    }

    public void Clear()
    {
        Array.Clear(_frags, 0, Count);
        Count = 0;
        _runCount = 0;
    }

    /// <summary>inet_frag_kill's rbtree purge: frees every fragment held, each counted as dropped for
    /// <paramref name="reason"/>; returns the truesize freed (for the fqdir's memory).</summary>
    public long DropHeld(Namespace ns, DropReason reason)
    {
        long freed = 0;
        for (int i = 0; i < Count; i++)
        {
            var s = _frags[i].Skb;
            freed += s.TrueSize;
            ns.Counters.FragHeld--;
            NetStack.Drop(ns, s, reason);
        }
        Clear();
        return freed;
    }

    /// <summary>The queue whose timer is due first by <paramref name="nowNs"/> (null: none), and the earliest expiry
    /// of them all (<paramref name="next"/>: long.MaxValue for none).</summary>
    public static InetFragQueue<TKey>? EarliestDue(Dictionary<TKey, InetFragQueue<TKey>> queues, long nowNs, out long next)
    {
        InetFragQueue<TKey>? due = null;
        next = long.MaxValue;
        foreach (var (_, q) in queues)
        {
            if (q.ExpiresNs <= nowNs && (due == null || q.ExpiresNs < due.ExpiresNs)) due = q;
            if (q.ExpiresNs < next) next = q.ExpiresNs;
        }
        return due;
    }

    /// <summary>inet_frag_queue_insert: past the last fragment it appends (to the last run when adjacent), starting
    /// inside it is an overlap; otherwise the run it falls in decides: wholly inside one run is a duplicate, any
    /// other contact an overlap, none a new run.</summary>
    public FragInsertResult Insert(Skb skb, int offset, int end)
    {
        if (Count == 0)
        {
            AddRun(_runCount, offset, end);
            AddFrag(Count, skb, offset, end);
            return FragInsertResult.Ok;
        }
        ref FragEntry last = ref _frags[Count - 1];
        int lastEnd = last.Offset + last.Len;
        if (lastEnd < end)
        {
            if (offset < lastEnd) return FragInsertResult.Overlap;
            if (offset == lastEnd) _runs[_runCount - 1].End = end;
            else AddRun(_runCount, offset, end);
            AddFrag(Count, skb, offset, end);
            return FragInsertResult.Ok;
        }
        int r = 0;
        while (r < _runCount && _runs[r].End <= offset) r++;
        if (r < _runCount && _runs[r].Offset < end)
            return offset >= _runs[r].Offset && end <= _runs[r].End ? FragInsertResult.Duplicate : FragInsertResult.Overlap;
        // In a gap: a run of its own (the kernel does not merge it with its neighbours).
        AddRun(r, offset, end);
        int at = 0;
        while (at < Count && _frags[at].Offset < offset) at++;
        AddFrag(at, skb, offset, end);
        return FragInsertResult.Ok;
    }

    private void AddRun(int at, int offset, int end)
    {
        if (_runCount == _runs.Length) Array.Resize(ref _runs, _runs.Length * 2);
        Array.Copy(_runs, at, _runs, at + 1, _runCount - at);
        _runs[at] = new FragRun { Offset = offset, End = end };
        _runCount++;
    }

    private void AddFrag(int at, Skb skb, int offset, int end)
    {
        if (Count == _frags.Length) Array.Resize(ref _frags, _frags.Length * 2);
        Array.Copy(_frags, at, _frags, at + 1, Count - at);
        _frags[at] = new FragEntry { Skb = skb, Offset = offset, Len = end - offset };
        Count++;
    }
}
