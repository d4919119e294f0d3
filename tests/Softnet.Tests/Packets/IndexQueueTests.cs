using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Packets;

public class IndexQueueTests
{
    [Fact]
    public void Batches_keep_fifo_order_and_stop_at_full_and_empty()
    {
        var q = new IndexQueue(8);
        Assert.Equal(5, q.TryEnqueueBatch(new[] { 1, 2, 3, 4, 5 }));
        Assert.Equal(3, q.TryEnqueueBatch(new[] { 6, 7, 8, 9 })); // only three cells left
        Assert.Equal(0, q.TryEnqueueBatch(new[] { 10 }));
        var got = new int[6];
        Assert.Equal(6, q.TryDequeueBatch(got));
        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6 }, got);
        Assert.True(q.TryEnqueue(11)); // the ring wraps
        Assert.Equal(3, q.TryDequeueBatch(got));
        Assert.Equal(new[] { 7, 8, 11 }, got.AsSpan(0, 3).ToArray());
        Assert.Equal(0, q.TryDequeueBatch(got));
        Assert.Equal(0, q.Count);
    }

    [Fact]
    public void Concurrent_batch_and_single_operations_lose_and_duplicate_nothing()
    {
        const int Size = 256, PerThread = 200_000;
        var q = new IndexQueue(Size);
        for (int i = 0; i < Size; i++) Assert.True(q.TryEnqueue(i));
        // Four threads each take tokens (singly or in batches) and put them back; the set must survive.
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            var buf = new int[16];
            var rng = new Random(t);
            for (int done = 0; done < PerThread;)
            {
                if ((t & 1) == 0)
                {
                    int n = q.TryDequeueBatch(buf.AsSpan(0, rng.Next(1, 17)));
                    for (int put = 0; put < n;) put += q.TryEnqueueBatch(buf.AsSpan(put, n - put));
                    done += Math.Max(n, 1);
                }
                else if (q.TryDequeue(out int v))
                {
                    while (!q.TryEnqueue(v)) { }
                    done++;
                }
                else done++;
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        var all = new List<int>();
        while (q.TryDequeue(out int v)) all.Add(v);
        Assert.Equal(Enumerable.Range(0, Size), all.Order());
    }
}
