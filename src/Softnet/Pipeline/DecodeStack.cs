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
    private readonly long[] _delivered;
    private readonly byte[][] _scratch;

    public DecodeStack(int queues, int maxFrame = 65536 + 256)
    {
        _protocols = new ProtocolCounts[queues];
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
            _protocols[queue.Id].Count(decoded.Protocols, segments);
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

    public ProtocolCounts Protocols(int queue) => _protocols[queue];
}
