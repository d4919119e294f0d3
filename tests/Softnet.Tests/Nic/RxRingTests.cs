using Softnet.Nic;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Nic;

public class RxRingTests
{
    private static byte[] Frame(int len, int seed)
    {
        var f = new byte[len];
        for (int i = 0; i < len; i++) f[i] = (byte)(seed * 31 + i);
        return f;
    }

    [Fact]
    public void Ring_posts_size_minus_one_buffers_and_full_ring_counts_rx_missed()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16);
        Assert.Equal(15, ring.Posted); // one slot stays unused, as ICE_RX_DESC_UNUSED leaves it
        Assert.Equal(15, pool.InUse);
        for (int i = 0; i < 15; i++) Assert.True(ring.TryReceive(Frame(60, i), i, 0, PktHashType.None));
        Assert.False(ring.TryReceive(Frame(60, 99), 99, 0, PktHashType.None));
        Assert.Equal(1, ring.RxMissed);
        Assert.Equal(15, ring.Pending);
    }

    [Fact]
    public void Poll_returns_frames_in_order_with_metadata_and_refills()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 32, queueId: 3);
        for (int i = 0; i < 20; i++) Assert.True(ring.TryReceive(Frame(60 + i, i), 1000 + i, (uint)i + 1, PktHashType.L4));
        Span<RxDescriptor> batch = stackalloc RxDescriptor[8];
        int seen = 0;
        while (true)
        {
            int n = ring.Poll(batch, int.MaxValue);
            if (n == 0) break;
            Assert.True(n <= batch.Length);
            for (int k = 0; k < n; k++, seen++)
            {
                ref readonly var d = ref batch[k];
                Assert.True(d.Done);
                Assert.Equal(60 + seen, d.Length);
                Assert.Equal(1000 + seen, d.TimestampNs);
                Assert.Equal((uint)seen + 1, d.RssHash);
                Assert.Equal(PktHashType.L4, d.HashType);
                Assert.Equal(Frame(60 + seen, seen), pool.Data(d.BufferIndex).Slice(0, d.Length).ToArray());
                pool.Return(d.BufferIndex); // XDP_DROP-like: the buffer goes back
            }
        }
        Assert.Equal(20, seen);
        Assert.Equal(20, ring.RxPackets);
        Assert.Equal(Enumerable.Range(0, 20).Sum(i => 60 + i), ring.RxBytes);
        // Polls of 8, 8, 4: the refill ran once 16 slots were free; the last 4 wait for the next batch.
        Assert.Equal(27, ring.Posted);
        Assert.Equal(27, pool.InUse);
        Assert.Equal(4, ring.Refill()); // an explicit refill posts the remaining 4
        Assert.Equal(31, ring.Posted);
        var names = ring.EthtoolStats().ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(20, names["rx_queue_3_packets"]);
        Assert.Equal(0, names["rx_queue_3_missed"]);
    }

    [Fact]
    public void Empty_pool_counts_alloc_failed_and_ring_recovers()
    {
        var pool = new PagePool(20);
        var ring = new RxRing(pool, size: 32);
        Assert.Equal(20, ring.Posted);
        Assert.Equal(1, ring.AllocFailed);
        for (int i = 0; i < 20; i++) Assert.True(ring.TryReceive(Frame(64, i), 0, 0, PktHashType.None));
        Assert.False(ring.TryReceive(Frame(64, 0), 0, 0, PktHashType.None));
        Assert.Equal(1, ring.RxMissed);

        var batch = new RxDescriptor[32];
        int n = ring.Poll(batch, int.MaxValue); // pool still empty: refill fails again
        Assert.Equal(20, n);
        Assert.Equal(2, ring.AllocFailed);
        Assert.Equal(0, ring.Posted);
        foreach (var d in batch.AsSpan(0, n)) pool.Return(d.BufferIndex);
        Assert.Equal(0, ring.Poll(batch, int.MaxValue)); // nothing pending, but the refill now succeeds
        Assert.Equal(20, ring.Posted);
    }

    [Fact]
    public void Oversize_frames_are_dropped_and_counted()
    {
        var pool = new PagePool(8, bufferSize: 2048, headroom: 256);
        var ring = new RxRing(pool, size: 4);
        Assert.True(ring.TryReceive(new byte[1792], 0, 0, PktHashType.None));
        Assert.False(ring.TryReceive(new byte[1793], 0, 0, PktHashType.None));
        Assert.Equal(1, ring.RxOversize);
        Assert.Equal(0, ring.RxMissed);
    }

    [Fact]
    public void Drain_returns_every_buffer()
    {
        var pool = new PagePool(64);
        var ring = new RxRing(pool, size: 16);
        ring.TryReceive(Frame(60, 1), 0, 0, PktHashType.None);
        ring.Drain();
        Assert.Equal(0, pool.InUse);
        Assert.Equal(0, ring.Posted);
    }

    [Fact]
    public void Port_and_napi_on_different_threads_lose_nothing_uncounted()
    {
        const int Frames = 300_000;
        var pool = new PagePool(256, bufferSize: 512, headroom: 64);
        var ring = new RxRing(pool, size: 128);
        long delivered = 0;
        bool orderOk = true;
        var producer = new Thread(() =>
        {
            Span<byte> f = stackalloc byte[64];
            for (int i = 0; i < Frames; i++)
            {
                BitConverter.TryWriteBytes(f, i);
                ring.TryReceive(f, i, 0, PktHashType.None);
            }
        });
        producer.Start();
        var batch = new RxDescriptor[64];
        int last = -1;
        while (producer.IsAlive || ring.Pending > 0)
        {
            int n = ring.Poll(batch, int.MaxValue);
            for (int k = 0; k < n; k++)
            {
                int seq = BitConverter.ToInt32(pool.Data(batch[k].BufferIndex));
                if (seq <= last || batch[k].TimestampNs != seq) orderOk = false;
                last = seq;
                pool.Return(batch[k].BufferIndex);
            }
            delivered += n;
        }
        producer.Join();
        delivered += DrainCount(ring, pool, batch);
        Assert.True(orderOk);
        Assert.Equal(Frames, delivered + ring.RxMissed);
        Assert.Equal(delivered, ring.RxPackets);
    }

    private static int DrainCount(RxRing ring, PagePool pool, RxDescriptor[] batch)
    {
        int total = 0, n;
        while ((n = ring.Poll(batch, int.MaxValue)) > 0)
        {
            for (int k = 0; k < n; k++) pool.Return(batch[k].BufferIndex);
            total += n;
        }
        return total;
    }
}
