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
    // Consecutive packets nearly always carry the same protocols: a run of them is one count here, added to
    // _protocols when the protocols change or the counts are read (one compare a packet instead of eleven tests).
    private readonly ProtocolRun[] _runs;

    private struct ProtocolRun
    {
        public ProtocolFlags Flags;
        public long Count;
    }
    private readonly long[] _delivered;
    private readonly byte[][] _scratch;

    public DecodeStack(int queues, int maxFrame = 65536 + 256)
    {
        _protocols = new ProtocolCounts[queues];
        _runs = new ProtocolRun[queues];
        _delivered = new long[queues];
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
        var reason = PacketDecoder.Decode(frame, LinkType.Ethernet, out var decoded);
        // A GRO skb stands for the segments merged into it: every count here is in segments, so that
        // conservation (frames in = delivered + dropped) holds with GRO on or off.
        int segments = skb.GsoSegs > 1 ? skb.GsoSegs : 1;
        if (reason == DropReason.None)
        {
            ref ProtocolRun run = ref _runs[queue.Id];
            if (decoded.Protocols != run.Flags)
            {
                if (run.Count != 0) _protocols[queue.Id].Count(run.Flags, run.Count);
                run.Flags = decoded.Protocols;
                run.Count = 0;
            }
            run.Count += segments;
            _delivered[queue.Id] += segments;
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

    public long Delivered(int queue) => _delivered[queue];

    /// <summary>The queue's counts so far (a copy, the current run added in).</summary>
    public ProtocolCounts Protocols(int queue)
    {
        var counts = new ProtocolCounts();
        counts.AddFrom(_protocols[queue]);
        var run = _runs[queue];
        if (run.Count != 0) counts.Count(run.Flags, run.Count);
        return counts;
    }
}
