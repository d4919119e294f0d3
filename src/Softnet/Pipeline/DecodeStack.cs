using Softnet.Capture;
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

    public DecodeStack(int queues, int maxFrame = 65536)
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
        ReadOnlySpan<byte> frame;
        if (!skb.IsNonlinear)
        {
            frame = skb.LinearData;
        }
        else
        {
            // construct_skb left the payload in a frag; the decoder wants the frame in one piece.
            var scratch = _scratch[queue.Id];
            int n = Math.Min(skb.Len, scratch.Length);
            skb.CopyBits(0, scratch.AsSpan(0, n));
            frame = scratch.AsSpan(0, n);
        }
        var reason = PacketDecoder.Decode(frame, LinkType.Ethernet, out var decoded);
        if (reason == DropReason.None)
        {
            _protocols[queue.Id].Count(decoded.Protocols);
            _delivered[queue.Id]++;
        }
        else
        {
            queue.Drops.Add(reason);
        }
        skb.Free();
    }

    public void PollEnd(RxQueue queue, int workDone, int budget) { }

    public long Delivered(int queue) => _delivered[queue];

    public ProtocolCounts Protocols(int queue) => _protocols[queue];
}
