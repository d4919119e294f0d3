namespace Softnet.Capture.Live;

/// <summary>Which kernel interface a live port takes frames through.</summary>
public enum LivePortKind
{
    /// <summary>AF_PACKET with a TPACKET_V3 mmap RX ring (packet_mmap), PACKET_FANOUT by hash across queues.</summary>
    Packet,
    /// <summary>AF_XDP: a UMEM and FILL/COMPLETION/RX/TX rings per queue, frames steered by an XDP redirect program.</summary>
    Xdp,
}

/// <summary>How to open a live port.</summary>
public sealed record LivePortOptions
{
    /// <summary>The interface's name in <see cref="Netns"/>.</summary>
    public required string Interface { get; init; }
    /// <summary>The network namespace the interface lives in (a name under /var/run/netns, as `ip netns` keeps them);
    /// null: the caller's. The sockets are made inside it and keep working from any thread afterwards.</summary>
    public string? Netns { get; init; }
    /// <summary>Receive queues: fanout members (packet) or one socket per device queue (xdp).</summary>
    public int Queues { get; init; } = 1;
    /// <summary>Frame slots per queue (RX ring size; the TX ring has as many).</summary>
    public int RingFrames { get; init; } = 4096;
    /// <summary>Bytes per frame slot (2048 fits a 1514-byte frame with the kernel's headers; 4096 for jumbo).</summary>
    public int FrameSize { get; init; } = 2048;
}

/// <summary>One received frame still in the port's ring: where its bytes are (read them with
/// <see cref="ILivePort.Bytes"/>) and when the kernel stamped it. Valid until <see cref="ILivePort.Release"/>.</summary>
public readonly record struct LiveFrame(long Offset, int Length, long TimestampNs);

/// <summary>A port's counters: the kernel side's (what it dropped before Softnet saw a frame) and the port's own.</summary>
public record struct LivePortStats
{
    /// <summary>Frames handed to Softnet.</summary>
    public long RxPackets, RxBytes;
    /// <summary>Frames the kernel dropped for want of ring room (PACKET_STATISTICS tp_drops; XDP_STATISTICS
    /// rx_dropped + rx_ring_full: in copy mode an empty FILL ring counts a drop in both rx_dropped and
    /// rx_fill_ring_empty_descs, so the latter is not added).</summary>
    public long KernelRxDropped;
    /// <summary>Times the RX ring froze (tp_freeze_q_cnt) or the XSK RX ring was full (rx_ring_full).</summary>
    public long KernelRxRingFull;
    /// <summary>Frames sent, and frames not sent because the TX ring was full or the kernel refused them.</summary>
    public long TxPackets, TxBytes, TxRingFull, TxErrors;
    /// <summary>Times the interface was seen going down (its frames are lost until it is up again).</summary>
    public long LinkDownEvents;
}

/// <summary>
/// A live port: frames from a real interface in, batch by batch, and frames out to it. Received frames stay in the
/// port's mmap ring (no copy) until <see cref="Release"/> hands their slots back to the kernel, so the only copy of a
/// frame is Softnet's NIC "DMA" into its RX buffer, as with a capture file. One thread uses a queue at a time.
/// </summary>
public interface ILivePort : IDisposable
{
    LivePortKind Kind { get; }
    /// <summary>The interface, as given.</summary>
    string Interface { get; }
    /// <summary>Its ifindex in its namespace.</summary>
    int Ifindex { get; }
    int Queues { get; }

    /// <summary>Takes up to <c>batch.Length</c> received frames of <paramref name="queue"/> without blocking; returns
    /// how many. Their bytes stay valid until <see cref="Release"/> for that queue.</summary>
    int Receive(int queue, Span<LiveFrame> batch);

    /// <summary>The bytes of a frame <see cref="Receive"/> gave for <paramref name="queue"/>.</summary>
    ReadOnlySpan<byte> Bytes(int queue, in LiveFrame frame);

    /// <summary>Hands every frame taken from <paramref name="queue"/> since the last release back to the kernel.</summary>
    void Release(int queue);

    /// <summary>Blocks until some queue has frames to receive, or <paramref name="timeoutMs"/> passes (poll(2) on
    /// the port's sockets). False on timeout or when interrupted.</summary>
    bool WaitReceive(int timeoutMs);

    /// <summary>The descriptors poll(2) watches for this port (its sockets, and any it reads link events from), so one
    /// thread can wait on several ports at once (<see cref="LivePortSet"/>); after they fire, <see cref="WaitReceive"/>
    /// with timeout 0 takes what the port must (socket errors, link events).</summary>
    IReadOnlyList<int> ReadinessFds { get; }

    /// <summary>Queues a copy of <paramref name="frame"/> for sending on <paramref name="queue"/>'s TX ring; false
    /// (and counted) when the ring is full or the frame does not fit a slot. Sent on <see cref="FlushTransmit"/>.</summary>
    bool Transmit(int queue, ReadOnlySpan<byte> frame);

    /// <summary>Kicks the kernel to send what <see cref="Transmit"/> queued (sendto with MSG_DONTWAIT) and reclaims
    /// completed slots.</summary>
    void FlushTransmit(int queue);

    /// <summary>Whether the interface is up with carrier now (IFF_UP and IFF_RUNNING).</summary>
    bool LinkUp { get; }

    /// <summary>The counters now (the kernel's read fresh: PACKET_STATISTICS resets on read, so the port accumulates).</summary>
    LivePortStats ReadStats();
}

/// <summary>A live port that cannot be opened, with what to do about it (a missing capability, an interface that is
/// not there, a second Softnet on the same interface).</summary>
public sealed class LivePortException(string message, int errno = 0) : Exception(message)
{
    public int Errno { get; } = errno;
}
