using System.Runtime.CompilerServices;

namespace Softnet.Packets;

/// <summary>
/// A bounded cache of preallocated <see cref="Skb"/> objects (napi_alloc_cache's skb_cache), so building an skb
/// per packet allocates nothing. Allocation fails softly: null and <see cref="AllocFailed"/>+1. As with
/// <see cref="PagePool"/>, any thread may free; the owner (one NAPI context) allocates.
/// <para>The owner (the first thread that allocates) also keeps a small LIFO stack of skbs it freed itself
/// (napi_skb_cache_put / napi_skb_cache_get), so an skb freed in a poll (a GRO-merged shell) is the next one
/// built, still in the CPU cache; the shared FIFO free list alone would walk the whole pool, touching a cold
/// skb per packet. Other threads always go through the shared list.</para>
/// </summary>
public sealed class SkbPool
{
    /// <summary>NAPI_SKB_CACHE_SIZE.</summary>
    public const int OwnerCacheSize = 64;

    private readonly Skb[] _skbs;
    private readonly IndexQueue _free;
    // Slots, not references: storing an int needs no GC write barrier, and the cache is written per packet.
    private readonly int[] _cache = new int[OwnerCacheSize];
    private int _cacheCount;
    private Thread? _owner; // the allocating thread; null until the first allocation
    private long _cacheTaken;
    private long _allocFailed;

    public SkbPool(int capacity, string name = "skb_cache")
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity));
        Name = name;
        Capacity = capacity;
        _skbs = new Skb[capacity];
        _free = new IndexQueue(capacity);
        for (int i = 0; i < capacity; i++)
        {
            _skbs[i] = new Skb(this, i);
            _free.TryEnqueue(i);
        }
    }

    public string Name { get; }
    public int Capacity { get; }
    public int InUse => Capacity - _free.Count - Volatile.Read(ref _cacheCount);
    public long Allocated => _free.Dequeued + Volatile.Read(ref _cacheTaken);
    public long AllocFailed => Volatile.Read(ref _allocFailed);

    /// <summary>napi_build_skb: wrap a buffer the caller holds (one reference, which the skb takes over) as the
    /// head, with data at <paramref name="dataOffset"/> and <paramref name="len"/> linear bytes. No copy.
    /// On failure (null) the caller still holds the buffer.</summary>
    public Skb? Build(PagePool pool, int index, int dataOffset, int len) => Build(pool, index, dataOffset, len, Thread.CurrentThread);

    /// <summary><see cref="Build(PagePool, int, int, int)"/> for a caller that knows its thread: a NAPI poll looks
    /// it up once rather than per packet (a thread-static read is a call into the TLS resolver here).</summary>
    internal Skb? Build(PagePool pool, int index, int dataOffset, int len, Thread current)
    {
        if (dataOffset < 0 || len < 0 || dataOffset + len > pool.BufferSize) throw new ArgumentOutOfRangeException(nameof(len));
        Skb? skb = Take(current);
        skb?.InitHead(pool, index, dataOffset, len);
        return skb;
    }

    /// <summary>napi_alloc_skb: rent a head buffer from <paramref name="headPool"/> and reserve
    /// <paramref name="headroom"/> (default: the pool's headroom); the skb is empty, fill it with Put.
    /// Null if either pool is exhausted.</summary>
    public Skb? Alloc(PagePool headPool, int headroom = -1)
    {
        if (headroom < 0) headroom = headPool.Headroom;
        Skb? skb = Take();
        if (skb is null) return null;
        if (!headPool.TryRent(out int index))
        {
            Recycle(skb);
            return null;
        }
        skb.InitHead(headPool, index, headroom, 0);
        return skb;
    }

    /// <summary>skb_clone: a new skb sharing <paramref name="src"/>'s buffers (one more reference on each) with a
    /// copy of its metadata; the frag_list members are cloned too. Both are marked <see cref="Skb.Cloned"/>.
    /// Null if the pool ran out (nothing is leaked).</summary>
    public Skb? Clone(Skb src)
    {
        if (src.InPool) throw new InvalidOperationException("clone of a freed skb");
        Skb? c = Take();
        if (c is null) return null;
        c.ShareDataOf(src);
        for (Skb? m = src.FragList; m != null; m = m.Next)
        {
            Skb? mc = Clone(m);
            if (mc is null)
            {
                c.Free();
                return null;
            }
            c.LinkFragList(mc);
        }
        c.CopyMetaFrom(src);
        c.Cloned = src.Cloned = true;
        return c;
    }

    private Skb? Take() => Take(Thread.CurrentThread);

    private Skb? Take(Thread me)
    {
        if (_owner != me && _owner is null) Interlocked.CompareExchange(ref _owner, me, null);
        if (_owner == me && _cacheCount > 0)
        {
            int n = _cacheCount - 1;
            Skb skb = _skbs[_cache[n]];
            Volatile.Write(ref _cacheCount, n);
            _cacheTaken++;
            return skb;
        }
        if (_free.TryDequeue(out int slot)) return _skbs[slot];
        Interlocked.Increment(ref _allocFailed);
        return null;
    }

    internal void Recycle(Skb skb) => Recycle(skb, Thread.CurrentThread);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Recycle(Skb skb, Thread current)
    {
        skb.InPool = true;
        if (_owner == current && _cacheCount < OwnerCacheSize)
        {
            _cache[_cacheCount] = skb.Slot;
            Volatile.Write(ref _cacheCount, _cacheCount + 1);
            return;
        }
        if (!_free.TryEnqueue(skb.Slot)) throw new InvalidOperationException($"{Name}: free list overflow");
    }

    public override string ToString() => $"{Name}: capacity={Capacity} in_use={InUse} alloc_failed={AllocFailed}";
}
