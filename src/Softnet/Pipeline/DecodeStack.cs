using Softnet.Capture;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Pipeline;

/// <summary>
/// The stack above the driver as far as it exists: decode every header (the checks of eth_type_trans,
/// ip_rcv_core, tcp_v4_rcv ...) and count per protocol; malformed frames become drops with a reason.
/// Counters are per queue, so each NAPI thread writes only its own.
/// </summary>
public sealed class DecodeStack : IRxHandler
{
    private readonly ProtocolCounts[] _protocols;
    // What each packet updates, per queue. Consecutive packets nearly always carry the same protocols: a run of them
    // is one count here, added to _protocols when the protocols change or the counts are read (one compare a packet
    // instead of eleven tests).
    private readonly QueueTally[] _tally;

    // 128 bytes apiece: each queue's NAPI thread writes its own per packet, never on a line another queue's writes.
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential, Size = 128)]
    private struct QueueTally
    {
        public ProtocolFlags Flags;
        public long Run;
        public long Delivered;
    }
    private readonly byte[][] _scratch;

    public DecodeStack(int queues, int maxFrame = 65536 + 256)
    {
        _protocols = new ProtocolCounts[queues];
        _tally = new QueueTally[queues];
        _scratch = new byte[queues][];
        for (int i = 0; i < queues; i++)
        {
            _protocols[i] = new ProtocolCounts();
            _scratch[i] = new byte[maxFrame];
        }
    }

    public void Receive(Skb skb, RxQueue queue)
    {
        // The frame as a packet tap would see it: GRO has pulled skb->data past the MAC header.
        ReadOnlySpan<byte> frame;
        int mac = GroTap.MacLength(skb);
        if (!skb.IsNonlinear)
        {
            frame = skb.HeadBuffer.Slice(skb.Data - mac, mac + skb.HeadLen);
        }
        else
        {
            // construct_skb and GRO leave payload in frags; the decoder wants the frame in one piece.
            var scratch = _scratch[queue.Id];
            int n = GroTap.ToFrame(skb, scratch);
            frame = n > 0 ? scratch.AsSpan(0, n) : default;
        }
        // Only the protocols are counted: the offsets a full decode fills would be read by nobody.
        var reason = PacketDecoder.Classify(frame, LinkType.Ethernet, out var protocols);
        // A GRO skb stands for the segments merged into it: every count here is in segments, so that
        // conservation (frames in = delivered + dropped) holds with GRO on or off.
        int segments = skb.GsoSegs > 1 ? skb.GsoSegs : 1;
        if (reason == DropReason.None)
        {
            ref QueueTally t = ref _tally[queue.Id];
            if (protocols != t.Flags)
            {
                if (t.Run != 0) _protocols[queue.Id].Count(t.Flags, t.Run);
                t.Flags = protocols;
                t.Run = 0;
            }
            t.Run += segments;
            t.Delivered += segments;
        }
        else
        {
            queue.Drops.Add(reason, segments);
        }
        if (skb.TraceId != 0) TraceEnd(skb.TraceId, reason, segments);
        skb.Free(queue.PollThread ?? Thread.CurrentThread);
    }

    // A replay without a scenario ends the path here: the packet was decoded and counted (or dropped as malformed).
    private static void TraceEnd(int traceId, DropReason reason, int segments)
    {
        var tracer = Telemetry.PacketTracer.Current;
        if (tracer is null) return;
        if (reason == DropReason.None) tracer.Delivered(traceId, $"decoded and counted as {segments} segment{(segments == 1 ? "" : "s")} (no --scenario: the path ends here)");
        else tracer.Drop(traceId, null, reason);
    }

    public void PollEnd(RxQueue queue, int workDone, int budget) { }

    public long Delivered(int queue) => _tally[queue].Delivered;

    /// <summary>The queue's counts so far (a copy, the current run added in).</summary>
    public ProtocolCounts Protocols(int queue)
    {
        var counts = new ProtocolCounts();
        counts.AddFrom(_protocols[queue]);
        var t = _tally[queue];
        if (t.Run != 0) counts.Count(t.Flags, t.Run);
        return counts;
    }
}
