using Softnet.Tests.Support;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Packets;

public class PagePoolTests
{
    private static int Rent(PagePool pool) => pool.TryRent(out int index) ? index : -1;

    [Fact]
    public void Pool_is_bounded_and_counts_exhaustion()
    {
        var pool = new PagePool(4);
        var got = new List<int>();
        for (int i = 0; i < 4; i++)
        {
            Assert.True(pool.TryRent(out int idx));
            got.Add(idx);
        }
        Assert.Equal(4, got.Distinct().Count());
        Assert.Equal(4, pool.InUse);
        Assert.False(pool.TryRent(out int none));
        Assert.Equal(-1, none);
        Assert.Equal(-1, Rent(pool));
        Assert.Equal(2, pool.AllocFailed);
        foreach (var i in got) pool.Return(i);
        Assert.Equal(0, pool.InUse);
        Assert.Equal(4, pool.Recycled);
        Assert.True(pool.TryRent(out _));
    }

    [Fact]
    public void Buffer_layout_has_headroom_before_data()
    {
        var pool = new PagePool(2, bufferSize: 2048, headroom: 256);
        int idx = Rent(pool);
        Assert.Equal(2048, pool.Buffer(idx).Length);
        Assert.Equal(1792, pool.Data(idx).Length);
        Assert.Equal(1792, pool.DataSize);
        pool.Data(idx)[0] = 0xAB;
        Assert.Equal(0xAB, pool.Buffer(idx)[256]);
        // Buffers do not overlap.
        int other = Rent(pool);
        pool.Buffer(other).Fill(0x11);
        Assert.Equal(0xAB, pool.Buffer(idx)[256]);
    }

    [Fact]
    public unsafe void Buffers_start_on_pages_and_frames_on_cache_lines()
    {
        // As page_pool's half-pages: buffer i at i * 2048 from a page boundary, so the data after the 256-byte headroom
        // (where the port writes the frame) starts a cache line, whatever address the runtime gave the pool's array.
        for (int n = 1; n <= 5; n++)
        {
            var pool = new PagePool(100 * n + 3, bufferSize: 2048, headroom: 256);
            for (int i = 0; i < pool.Capacity; i += 7)
            {
                Assert.Equal(i * 2048 % 4096, (long)pool.BufferPointer(i) % 4096);
                fixed (byte* data = pool.Data(i)) Assert.Equal(0, (long)data % 64);
            }
        }
    }

    [Fact]
    public void Last_reference_recycles_the_buffer()
    {
        var pool = new PagePool(1);
        int idx = Rent(pool);
        pool.AddRef(idx);
        pool.AddRef(idx);
        Assert.Equal(3, pool.RefCount(idx));
        pool.Return(idx);
        pool.Return(idx);
        Assert.Equal(1, pool.InUse);
        Assert.Equal(-1, Rent(pool));
        pool.Return(idx);
        Assert.Equal(0, pool.InUse);
        Assert.Equal(0, pool.RefCount(idx));
        Assert.Equal(idx, Rent(pool));
    }

    [Fact]
    public void Return_of_a_free_buffer_is_caught()
    {
        var pool = new PagePool(2);
        int idx = Rent(pool);
        pool.Return(idx);
        Assert.Throws<InvalidOperationException>(() => pool.Return(idx));
        Assert.Throws<InvalidOperationException>(() => pool.AddRef(idx));
        Assert.Equal(0, pool.InUse);
    }

    [Fact]
    public void Returns_from_other_threads_while_owner_rents()
    {
        // One owner rents; four threads return what it hands them, as remote CPUs free skbs after RPS.
        const int Capacity = 64, Total = 200_000;
        var pool = new PagePool(Capacity, bufferSize: 128, headroom: 0);
        var queues = Enumerable.Range(0, 4).Select(_ => new System.Collections.Concurrent.BlockingCollection<int>(16)).ToArray();
        var freers = queues.Select(q => new Thread(() =>
        {
            foreach (int idx in q.GetConsumingEnumerable())
            {
                if (pool.Buffer(idx)[0] != (byte)idx) throw new Exception("buffer corrupted");
                pool.Return(idx);
            }
        })).ToArray();
        foreach (var t in freers) t.Start();
        int sent = 0;
        while (sent < Total)
        {
            if (!pool.TryRent(out int idx)) { Thread.Yield(); continue; }
            pool.Buffer(idx)[0] = (byte)idx;
            queues[sent & 3].Add(idx);
            sent++;
        }
        foreach (var q in queues) q.CompleteAdding();
        foreach (var t in freers) t.Join();
        Assert.Equal(0, pool.InUse);
        Assert.Equal(Total, pool.Recycled);
        Assert.Equal(Total, pool.Allocated);
    }

    [Fact]
    public void Rent_and_return_do_not_allocate()
    {
        var pool = new PagePool(8);
        for (int i = 0; i < 1000; i++) pool.Return(Rent(pool));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100_000; i++)
        {
            int a = Rent(pool);
            pool.AddRef(a);
            pool.Return(a);
            pool.Return(a);
        }
        AllocationAssert.NothingPerOperation(GC.GetAllocatedBytesForCurrentThread() - before, 100_000, "rent/return cycles");
    }

    [Fact]
    public void Release_owner_hands_cached_buffers_and_ownership_to_the_next_renting_thread()
    {
        var pool = new PagePool(16);
        var held = Enumerable.Range(0, 16).Select(_ => Rent(pool)).ToArray();
        foreach (int i in held) pool.Return(i); // into this thread's owner cache
        pool.ReleaseOwner();
        int rented = 0;
        var t = new Thread(() =>
        {
            while (pool.TryRent(out int i)) { rented++; }
        });
        t.Start();
        t.Join();
        Assert.Equal(16, rented); // every cached buffer reached the other thread
        Assert.Equal(16, pool.InUse);
    }

    [Fact]
    public void Owner_cache_spills_and_refills_in_batches_and_counts_each_buffer_once()
    {
        // A poll that completes several 64 KB GRO skbs returns hundreds of buffers at once: more than the
        // owner's cache holds. The overflow goes to the free list half a cache at a time and comes back a refill
        // batch at a time; every buffer stays accounted for.
        const int Capacity = 1024;
        var pool = new PagePool(Capacity, bufferSize: 128, headroom: 0);
        for (int round = 0; round < 3; round++)
        {
            var held = new int[700];
            for (int i = 0; i < held.Length; i++) Assert.True(pool.TryRent(out held[i]));
            Assert.Equal(held.Length, held.Distinct().Count());
            Assert.Equal(held.Length, pool.InUse);
            foreach (int i in held) pool.Return(i);
            Assert.Equal(0, pool.InUse);
            Assert.All(held, i => Assert.Equal(0, pool.RefCount(i)));
        }
        Assert.Equal(3 * 700, pool.Allocated);
        Assert.Equal(3 * 700, pool.Recycled);
        // Everything can still be rented, each buffer once.
        var all = Enumerable.Range(0, Capacity).Select(_ => Rent(pool)).ToArray();
        Assert.DoesNotContain(-1, all);
        Assert.Equal(Capacity, all.Distinct().Count());
        Assert.Equal(-1, Rent(pool));
    }

    [Fact]
    public void Owner_spills_while_other_threads_rent_and_return()
    {
        // Other threads' single dequeues from the free list race with the owner's batch spills and refills; a
        // spill that meets a cell another thread has not released yet must wait for it, not fail.
        const int Capacity = 2048;
        var pool = new PagePool(Capacity, bufferSize: 128, headroom: 0);
        pool.Return(Rent(pool)); // this thread becomes the owner
        using var stop = new CancellationTokenSource();
        var others = Enumerable.Range(0, 2).Select(_ => new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
                if (pool.TryRent(out int i)) pool.Return(i);
        })).ToArray();
        foreach (var t in others) t.Start();
        var held = new List<int>(1500);
        for (int round = 0; round < 300; round++)
        {
            while (held.Count < 1500 && pool.TryRent(out int i)) held.Add(i);
            foreach (int i in held) pool.Return(i);
            held.Clear();
        }
        stop.Cancel();
        foreach (var t in others) t.Join();
        Assert.Equal(0, pool.InUse);
        Assert.Equal(pool.Allocated, pool.Recycled);
        var all = Enumerable.Range(0, Capacity).Select(_ => Rent(pool)).ToArray();
        Assert.Equal(Capacity, all.Distinct().Count(i => i >= 0));
    }
}
