using Softnet.Capture;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;

namespace Softnet.Pipeline;

/// <summary>
/// `replay --tap FILE`: writes every packet as it leaves the receive stage (after GRO), which is where a
/// packet socket, so tcpdump on the receiving device, sees it (__netif_receive_skb_core's ptype_all taps).
/// </summary>
public sealed class TapStage : IRxHandler, IDisposable
{
    private readonly IRxHandler _next;
    private readonly ICaptureWriter _writer;
    private readonly byte[][] _scratch;
    private readonly Lock _lock = new();

    public TapStage(string path, int queues, IRxHandler next)
    {
        _next = next;
        _writer = CaptureWriter.Create(path, LinkType.Ethernet);
        _scratch = new byte[queues][];
        for (int i = 0; i < queues; i++) _scratch[i] = new byte[GroEngine.GroLegacyMaxSize + 256];
    }

    public long Written { get; private set; }

    /// <summary>Added to skb timestamps (the path runs on time relative to the first frame) when writing.</summary>
    public long TimeBaseNs { get; set; }

    public void Receive(Skb skb, RxQueue queue)
    {
        var buffer = _scratch[queue.Id];
        int n = GroTap.ToFrame(skb, buffer);
        if (n > 0)
        {
            // NAPI threads of different CPUs share the file; the tap is a debugging aid, not the hot path.
            lock (_lock)
            {
                _writer.Write(TimeBaseNs + skb.TimestampNs, buffer.AsSpan(0, n));
                Written++;
            }
        }
        _next.Receive(skb, queue);
    }

    public void PollEnd(RxQueue queue, int workDone, int budget) => _next.PollEnd(queue, workDone, budget);

    public void Dispose() => _writer.Dispose();
}
