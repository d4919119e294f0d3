using Softnet.Capture.Generator;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Nic;

/// <summary>The port's bursts: descriptors written back and each queue's interrupt raised once per burst.</summary>
public class BurstTests
{
    private sealed class Counter : IRxHandler
    {
        public long Received;
        public void Receive(Skb skb, RxQueue queue) { Received++; skb.Free(); }
        public void PollEnd(RxQueue queue, int workDone, int budget) { }
    }

    private static (VirtualNic, NapiEngine, Counter) Nic(NicOptions o)
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        var stack = new Counter();
        return (new VirtualNic(o, engine, stack), engine, stack);
    }

    private static List<byte[]> Frames(int streams)
    {
        using var r = new GeneratorCaptureReader(new GeneratorOptions { Streams = streams, Bytes = 200_000, Seed = 3 });
        var list = new List<byte[]>();
        while (r.TryRead(out _, out var f)) list.Add(f.ToArray());
        return list;
    }

    [Fact]
    public void A_burst_raises_its_queue_interrupt_once_at_the_end()
    {
        var (nic, engine, stack) = Nic(new NicOptions { Moderation = InterruptModeration.Immediate });
        var frame = SkbBuilderTests.Tcp4Frame(100);
        var irq = nic.Queues[0].Vector;
        for (int i = 0; i < 10; i++) Assert.Equal(DropReason.None, nic.OfferInBurst(frame, 5));
        Assert.Equal(0, irq.InterruptsFired);
        // The descriptors are written but not yet written back: NAPI sees them with the burst's end.
        Assert.Equal(0, nic.Queues[0].Ring.Pending);
        Assert.Equal(10, nic.Queues[0].Ring.PortPending);
        nic.EndBurst(5);
        Assert.Equal(10, nic.Queues[0].Ring.Pending);
        Assert.Equal(1, irq.InterruptsFired);
        Assert.Equal(10, irq.FramesNotified);
        nic.EndBurst(6); // nothing taken since: no interrupt
        Assert.Equal(1, irq.InterruptsFired);
        engine.RunUntilIdle();
        Assert.Equal(10, stack.Received);
        Assert.Equal(10, nic.Queues[0].Offered);
    }

    [Fact]
    public void Frames_the_ring_refuses_are_not_signalled()
    {
        var (nic, engine, stack) = Nic(new NicOptions { RingSize = 64, Moderation = InterruptModeration.Immediate });
        var frame = SkbBuilderTests.Tcp4Frame(100);
        int full = 0;
        for (int i = 0; i < 70; i++)
            if (nic.OfferInBurst(frame, 1) == DropReason.RingFull) full++;
        nic.EndBurst(1);
        Assert.Equal(7, full); // one slot stays unused: 63 posted
        Assert.Equal(63, nic.Queues[0].Vector.FramesNotified);
        engine.RunUntilIdle();
        Assert.Equal(63, stack.Received);
        Assert.Equal(7, nic.Queues[0].Ring.RxMissed);
    }

    [Fact]
    public void Each_queue_of_a_burst_is_signalled_once_with_its_own_frames()
    {
        var (nic, engine, stack) = Nic(new NicOptions { Queues = 4, RingSize = 4096, Moderation = InterruptModeration.Immediate });
        var frames = Frames(streams: 16).Take(200).ToList();
        foreach (var f in frames) Assert.Equal(DropReason.None, nic.OfferInBurst(f, 1));
        nic.EndBurst(1);
        foreach (var q in nic.Queues)
        {
            Assert.Equal(q.Offered > 0 ? 1 : 0, q.Vector.InterruptsFired);
            Assert.Equal(q.Offered, q.Vector.FramesNotified);
        }
        Assert.True(nic.Queues.Count(q => q.Offered > 0) > 1, "the flows should spread over several queues");
        engine.RunUntilIdle();
        Assert.Equal(frames.Count, stack.Received);
    }

    [Fact]
    public void Threaded_bursts_deliver_every_frame_and_return_every_buffer()
    {
        using var engine = new NapiEngine(new NapiEngineOptions { Mode = NapiMode.Threaded, PinThreads = false });
        var stack = new Counter();
        var nic = new VirtualNic(new NicOptions { RingSize = 64 }, engine, stack);
        var pool = nic.Queues[0].Pool;
        var frame = SkbBuilderTests.Tcp4Frame(100);
        engine.Start();
        for (int i = 0; i < 1000; i++)
        {
            while (nic.OfferInBurst(frame, engine.NowNs) == DropReason.RingFull) nic.EndBurst(engine.NowNs);
            if (i % 16 == 15) nic.EndBurst(engine.NowNs);
        }
        nic.EndBurst(engine.NowNs);
        engine.Stop();
        Assert.Equal(1000 + nic.Queues[0].Ring.RxMissed, nic.Queues[0].Offered);
        Assert.Equal(1000, nic.Queues[0].Ring.RxPackets);
        Assert.Equal(1000, stack.Received);
        nic.Drain();
        Assert.Equal(0, pool.InUse);
    }
}
