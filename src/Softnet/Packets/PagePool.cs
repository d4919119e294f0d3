using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Softnet.Packets;

/// <summary>
/// Pinned memory cut into fixed-size buffers, handed out by index (the kernel's page_pool giving an RX
/// queue half-pages). Each buffer starts with <see cref="Headroom"/> bytes (XDP_PACKET_HEADROOM) in front of
/// the data area so later stages can push headers without copying.
/// <para>
/// Ownership moves with the index. Every buffer carries a reference count (page_ref_count): <see cref="TryRent"/>
/// hands it out with one reference, <see cref="AddRef"/> adds one for each extra holder (a clone, a frag that
/// points into it) and <see cref="Return"/> drops one; the buffer goes back to the free list when the last
/// reference drops. The pool is bounded: when it is empty <see cref="TryRent"/> fails and
/// <see cref="AllocFailed"/> counts it, nothing throws and nothing grows.
/// </para>
/// <para>Threads: every method is safe from any thread. The intended shape is one owner (the NAPI context of
/// the RX queue) renting, and any thread returning, which keeps the free list's atomics uncontended.
/// Buffers whose last reference the owner (the first thread that rents) drops go onto a small LIFO stack only
/// it touches, and its next rents take them from there: page_pool's direct-recycling alloc cache, which skips
/// the free list's atomics and hands back a buffer that is still in the CPU cache. It meets the free list only in
/// batches, as page_pool's alloc cache meets its ptr_ring: an empty cache refills <see cref="RefillBatch"/> buffers
/// with one atomic, and a full one spills its older half with one, so a poll that completes several 64 KB GRO
/// skbs (hundreds of buffers at once) does not pay an atomic per buffer.</para>
/// </summary>
public sealed class PagePool
{
    /// <summary>The owner's cache depth. page_pool's alloc cache holds 128 (PP_ALLOC_CACHE_SIZE) in front of a
    /// ptr_ring as long as the RX ring; here the shared free list spans the whole pool and its cells lap cold, so
    /// the cache is deeper: one poll that completes a full 64 KB GRO skb on each of 8 flows gives back about 360
    /// buffers, and a 512-deep cache takes them without touching the free list.</summary>
    public const int OwnerCacheSize = 512;
    /// <summary>PP_ALLOC_CACHE_REFILL: buffers the owner takes from the free list at once when its cache is empty.</summary>
    public const int RefillBatch = 64;

    /// <summary>Default buffer size: half of a 4 KiB page, as ice and most page_pool drivers use.</summary>
    public const int DefaultBufferSize = 2048;
    /// <summary>XDP_PACKET_HEADROOM.</summary>
    public const int DefaultHeadroom = 256;

    private readonly byte[] _memory; // pinned: addresses stay fixed, as DMA memory would; held for _base
    private readonly unsafe byte* _base; // buffer 0's first byte, _memory's first page boundary; valid as long as the pool lives
    private readonly int[] _refs;
    private readonly IndexQueue _free;
    private readonly int[] _cache = new int[OwnerCacheSize];
    private int _cacheCount;
    private Thread? _owner;
    private long _cacheTaken, _cachePut;
    // Buffers moved between the owner's cache and the free list in batches, which the free list's own counts
    // also see: subtracted so Allocated and Recycled count each rent and each last put once.
    private long _refilled, _spilled;
    private long _allocFailed;

    /// <param name="capacity">number of buffers; fixed for the life of the pool</param>
    /// <param name="bufferSize">bytes per buffer, headroom included</param>
    /// <param name="headroom">bytes reserved in front of the data area</param>
    /// <param name="name">label for reports</param>
    public PagePool(int capacity, int bufferSize = DefaultBufferSize, int headroom = DefaultHeadroom, string name = "page_pool")
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity));
        if (bufferSize < 64) throw new ArgumentOutOfRangeException(nameof(bufferSize));
        if (headroom < 0 || headroom >= bufferSize) throw new ArgumentOutOfRangeException(nameof(headroom));
        long total = (long)capacity * bufferSize;
        if (total > Array.MaxLength - PageAlign) throw new ArgumentOutOfRangeException(nameof(capacity), "pool larger than one array");
        Capacity = capacity;
        BufferSize = bufferSize;
        Headroom = headroom;
        Name = name;
        // Buffers start on a page boundary, as page_pool's pages do: with the headroom a multiple of 64, a frame then starts
        // on a cache line (an array's data starts 16 bytes into its object, and a 64-byte frame spanned two lines).
        _memory = GC.AllocateUninitializedArray<byte>((int)total + PageAlign, pinned: true);
        unsafe
        {
            byte* start = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_memory));
            _base = start + (PageAlign - (nint)start % PageAlign) % PageAlign;
        }
        _refs = new int[capacity];
        _free = new IndexQueue(capacity);
        for (int i = 0; i < capacity; i++) _free.TryEnqueue(i);
    }

    private const int PageAlign = 4096;

    public string Name { get; }
    public int Capacity { get; }
    public int BufferSize { get; }
    public int Headroom { get; }
    /// <summary>Bytes after the headroom: the largest frame one buffer holds.</summary>
    public int DataSize => BufferSize - Headroom;

    /// <summary>Buffers currently handed out (rented and not yet fully returned).</summary>
    public int InUse => Capacity - _free.Count - Volatile.Read(ref _cacheCount);
    /// <summary>Successful rents since creation.</summary>
    internal long Allocated => _free.Dequeued - Volatile.Read(ref _refilled) + Volatile.Read(ref _cacheTaken);
    /// <summary>Buffers that went back to the free list (last reference dropped) since creation.</summary>
    public long Recycled => _free.Enqueued - Capacity - Volatile.Read(ref _spilled) + Volatile.Read(ref _cachePut);
    /// <summary>Rents refused because the pool was empty.</summary>
    public long AllocFailed => Volatile.Read(ref _allocFailed);

    /// <summary>Takes a free buffer with one reference; false (and <see cref="AllocFailed"/>+1) when empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryRent(out int index) => TryRent(out index, Thread.CurrentThread);

    /// <summary><see cref="TryRent(out int)"/> for a caller that already knows its thread (a NAPI poll looks it up once).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryRent(out int index, Thread current)
    {
        if (_owner != current && _owner is null) Interlocked.CompareExchange(ref _owner, current, null);
        if (_owner == current && (_cacheCount > 0 || Refill()))
        {
            int n = _cacheCount - 1;
            index = _cache[n];
            Volatile.Write(ref _cacheCount, n);
            _cacheTaken++;
            Volatile.Write(ref _refs[index], 1);
            return true;
        }
        if (_free.TryDequeue(out index))
        {
            Volatile.Write(ref _refs[index], 1);
            return true;
        }
        Interlocked.Increment(ref _allocFailed);
        return false;
    }

    /// <summary>page_pool_refill_alloc_cache: the owner's cache is empty, so take up to
    /// <see cref="RefillBatch"/> buffers from the shared free list at once (one atomic instead of one per buffer).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private bool Refill()
    {
        int n = _free.TryDequeueBatch(_cache.AsSpan(0, RefillBatch));
        if (n == 0) return false;
        _refilled += n;
        Volatile.Write(ref _cacheCount, n);
        return true;
    }

    /// <summary>The owner's cache is full: the older half goes to the shared free list in one batch and the
    /// younger half (likelier still in the CPU cache) moves down.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Spill()
    {
        const int half = OwnerCacheSize / 2;
        // A batch stops short at a cell another thread is still releasing: put the rest in after it.
        for (int n = 0; n < half;)
        {
            int k = _free.TryEnqueueBatch(_cache.AsSpan(n, half - n));
            if (k == 0) ThrowCorrupt(_cache[n]); // full: more buffers came back than the pool has
            n += k;
        }
        Array.Copy(_cache, half, _cache, 0, OwnerCacheSize - half);
        _spilled += half;
        Volatile.Write(ref _cacheCount, OwnerCacheSize - half);
    }

    /// <summary>
    /// Gives up the owner cache: its buffers go to the shared free list and the next thread that rents becomes
    /// the owner. For a pool filled on one thread (a ring set up at ifup) and then used by a NAPI worker.
    /// Call only while no other thread uses the pool.
    /// </summary>
    public void ReleaseOwner()
    {
        for (int i = 0; i < _cacheCount; i++)
            if (!_free.TryEnqueue(_cache[i])) ThrowCorrupt(_cache[i]);
        _spilled += _cacheCount;
        Volatile.Write(ref _cacheCount, 0);
        Volatile.Write(ref _owner, null);
    }

    /// <summary>One more holder of <paramref name="index"/> (page_ref_inc). The caller must already hold a reference.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddRef(int index)
    {
        int n = Interlocked.Increment(ref _refs[index]);
        if (n <= 1)
        {
            Interlocked.Decrement(ref _refs[index]);
            ThrowNotOwned(index);
        }
    }

    /// <summary>Drops one reference (put_page); the buffer is recycled when it was the last one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Return(int index) => Return(index, Thread.CurrentThread);

    /// <summary><see cref="Return(int)"/> for a caller that already knows its thread (dropping many buffers at once).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void Return(int index, Thread current)
    {
        ref int r = ref _refs[index];
        int n;
        // Sole holder: nobody else can add a reference, so a plain store is enough (page_pool's fast path).
        if (Volatile.Read(ref r) == 1) { Volatile.Write(ref r, 0); n = 0; }
        else n = Interlocked.Decrement(ref r);
        if (n == 0)
        {
            if (_owner == current)
            {
                if (_cacheCount == OwnerCacheSize) Spill();
                _cache[_cacheCount] = index;
                Volatile.Write(ref _cacheCount, _cacheCount + 1);
                _cachePut++;
            }
            else if (!_free.TryEnqueue(index)) ThrowCorrupt(index);
        }
        else if (n < 0)
        {
            Interlocked.Increment(ref r);
            ThrowNotOwned(index);
        }
    }

    /// <summary>Current reference count of a buffer (0 = free).</summary>
    public int RefCount(int index) => Volatile.Read(ref _refs[index]);

    /// <summary>The whole buffer, headroom included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Buffer(int index)
    {
        unsafe { return new Span<byte>(_base + (nint)CheckIndex(index) * BufferSize, BufferSize); }
    }

    /// <summary>The data area: the buffer after its headroom.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Data(int index) => Buffer(index).Slice(Headroom);

    /// <summary>A slice of a buffer, offsets measured from the buffer start.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Slice(int index, int offset, int length) => Buffer(index).Slice(offset, length);

    /// <summary>Address of a buffer's first byte. The memory is pinned, so the address holds for the pool's
    /// life; an skb keeps it to reach its head without going through the pool on every header access.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal unsafe byte* BufferPointer(int index) => _base + (nint)CheckIndex(index) * BufferSize;

    /// <summary>A slice the caller guarantees is inside a buffer it holds (an skb's own head or frag, whose
    /// offsets the skb keeps within bounds): no checks, for the per-packet paths.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Span<byte> SliceUnchecked(int index, int offset, int length)
    {
        unsafe { return new Span<byte>(_base + (nint)index * BufferSize + offset, length); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int CheckIndex(int index)
    {
        if ((uint)index >= (uint)Capacity) ThrowIndex(index);
        return index;
    }

    public override string ToString()
        => $"{Name}: capacity={Capacity} in_use={InUse} recycled={Recycled} alloc_failed={AllocFailed}";

    private static void ThrowIndex(int index) => throw new ArgumentOutOfRangeException(nameof(index), index, "no such buffer");
    private void ThrowNotOwned(int index) => throw new InvalidOperationException($"{Name}: buffer {index} is not held (reference count underflow)");
    private void ThrowCorrupt(int index) => throw new InvalidOperationException($"{Name}: free list overflow returning buffer {index}");
}
