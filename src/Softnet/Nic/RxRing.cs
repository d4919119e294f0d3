using System.Runtime.CompilerServices;
using Softnet.Packets;

namespace Softnet.Nic;

/// <summary>
/// One RX descriptor (the write-back format of union ice_32b_rx_flex_desc, reduced to what the path uses).
/// The ring posts it with <see cref="BufferIndex"/> set; the port fills the rest and sets the DD bit.
/// </summary>
public struct RxDescriptor
{
    /// <summary>Status bit "descriptor done" (ICE_RX_FLEX_DESC_STATUS0_DD).</summary>
    public const int DescriptorDone = 1;

    public int BufferIndex;
    /// <summary>Frame length written at <see cref="PagePool.Headroom"/> in the buffer.</summary>
    public int Length;
    public long TimestampNs;
    public uint RssHash;
    public PktHashType HashType;
    public int Status;
    /// <summary>Which port interface the frame came in on (the capture's interface id; the stack's skb_iif).</summary>
    public int Ifindex;

    public readonly bool Done => (Status & DescriptorDone) != 0;
}

/// <summary>Snapshot of one RX queue's counters.</summary>
public readonly record struct RxQueueStats(long RxPackets, long RxBytes, long RxMissed, long AllocFailed, long RxOversize);

/// <summary>
/// The descriptor ring of one RX queue. Two sides, one thread each, no locks:
/// <list type="bullet">
/// <item>the port (replay, generator; the NIC's DMA engine) calls <see cref="TryReceive(ReadOnlySpan{byte}, long, uint, PktHashType)"/>:
/// it takes the next posted descriptor, copies the frame into its buffer after the headroom and sets DD.
/// No posted descriptor left means the ring is full: the frame is dropped and counted in rx_missed.</item>
/// <item>NAPI calls <see cref="Poll"/> (ice_clean_rx_irq): completed descriptors come out in order, ownership of
/// each buffer index moves to the caller, and the ring re-posts fresh buffers from its pool in batches of
/// <see cref="RefillBatch"/> (ice_alloc_rx_bufs); an empty pool counts alloc_failed and the ring runs shorter
/// until a later refill succeeds.</item>
/// </list>
/// Publication mirrors the hardware: the DD bit (written last with release semantics) hands a descriptor to
/// NAPI, and the tail register (<c>next_to_use</c>, likewise) hands posted buffers to the port. As in the
/// kernel one slot stays unused, so at most <see cref="Size"/> - 1 frames wait in the ring.
/// </summary>
public sealed class RxRing
{
    public const int DefaultSize = 1024;
    /// <summary>ICE_RX_BUF_WRITE: refill once this many descriptors are free.</summary>
    public const int RefillBatch = 16;

    private readonly RxDescriptor[] _descs;
    private readonly int _mask;

    // Port side (producer): private head plus its counters.
    private PaddedLong _hwHead;
    private PaddedLong _rxMissed;
    private long _rxOversize;
    private long _portTail;          // the port's copy of next_to_use
    // NAPI side (consumer): next_to_clean is private, next_to_use is the published tail.
    private PaddedLong _nextToClean;
    private PaddedLong _nextToUse;
    private long _rxPackets, _rxBytes, _allocFailed;

    /// <param name="pool">buffers to post; its data area bounds the frame size</param>
    /// <param name="size">descriptor count, a power of two</param>
    /// <param name="queueId">queue number, for counters and skb queue_mapping</param>
    public RxRing(PagePool pool, int size = DefaultSize, int queueId = 0)
    {
        if (size < 2 || !System.Numerics.BitOperations.IsPow2(size)) throw new ArgumentOutOfRangeException(nameof(size), "ring size must be a power of two >= 2");
        Pool = pool;
        QueueId = queueId;
        _descs = new RxDescriptor[size];
        _mask = size - 1;
        for (int i = 0; i < size; i++) _descs[i].BufferIndex = -1;
        Refill(); // ice_alloc_rx_bufs at ifup
    }

    public PagePool Pool { get; }
    public int QueueId { get; }
    public int Size => _descs.Length;

    public long RxPackets => Volatile.Read(ref _rxPackets);
    public long RxBytes => Volatile.Read(ref _rxBytes);
    /// <summary>Frames dropped because no posted descriptor was free (rx_missed / rx_dropped).</summary>
    public long RxMissed => Volatile.Read(ref _rxMissed.Value);
    /// <summary>Refills that found the pool empty.</summary>
    public long AllocFailed => Volatile.Read(ref _allocFailed);
    /// <summary>Frames longer than one buffer's data area, dropped by the port.</summary>
    public long RxOversize => Volatile.Read(ref _rxOversize);

    /// <summary>Descriptors holding a buffer the port may fill.</summary>
    public int Posted => (int)(Volatile.Read(ref _nextToUse.Value) - Volatile.Read(ref _hwHead.Value));
    /// <summary>Filled descriptors NAPI has not consumed yet.</summary>
    public int Pending => (int)(Volatile.Read(ref _hwHead.Value) - Volatile.Read(ref _nextToClean.Value));
    /// <summary>Descriptors without a buffer (ICE_RX_DESC_UNUSED).</summary>
    public int Unused => (int)(_nextToClean.Value + _mask - _nextToUse.Value);

    public RxQueueStats Stats => new(RxPackets, RxBytes, RxMissed, AllocFailed, RxOversize);

    /// <summary>Counters under the names ethtool -S gives them (per queue, then the drop counters).</summary>
    public IEnumerable<KeyValuePair<string, long>> EthtoolStats()
    {
        yield return new($"rx_queue_{QueueId}_packets", RxPackets);
        yield return new($"rx_queue_{QueueId}_bytes", RxBytes);
        yield return new($"rx_queue_{QueueId}_missed", RxMissed);
        yield return new($"rx_queue_{QueueId}_alloc_failed", AllocFailed);
        yield return new($"rx_queue_{QueueId}_oversize", RxOversize);
    }

    // ---------------- port side ----------------

    /// <summary>DMA one frame into the next posted buffer. False if the ring is full (rx_missed) or the frame does
    /// not fit a buffer (oversize); the frame is then dropped.</summary>
    public bool TryReceive(ReadOnlySpan<byte> frame, long timestampNs, uint rssHash)
        => TryReceive(frame, timestampNs, rssHash, rssHash != 0 ? PktHashType.L3 : PktHashType.None);

    /// <inheritdoc cref="TryReceive(ReadOnlySpan{byte}, long, uint)"/>
    public bool TryReceive(ReadOnlySpan<byte> frame, long timestampNs, uint rssHash, PktHashType hashType, int ifindex = 0)
    {
        if (frame.Length > Pool.DataSize)
        {
            Volatile.Write(ref _rxOversize, _rxOversize + 1);
            return false;
        }
        long head = _hwHead.Value;
        // The tail NAPI publishes lives on a cache line the consumer keeps writing; re-read it only when the
        // copy the port holds says the ring is full (the usual single-producer/single-consumer trick).
        if (head == _portTail)
        {
            _portTail = Volatile.Read(ref _nextToUse.Value);
            if (head == _portTail)
            {
                Volatile.Write(ref _rxMissed.Value, _rxMissed.Value + 1);
                return false;
            }
        }
        ref RxDescriptor d = ref _descs[(int)head & _mask];
        frame.CopyTo(Pool.Data(d.BufferIndex));
        d.Length = frame.Length;
        d.TimestampNs = timestampNs;
        d.RssHash = rssHash;
        d.HashType = hashType;
        d.Ifindex = ifindex;
        Volatile.Write(ref d.Status, RxDescriptor.DescriptorDone);
        Volatile.Write(ref _hwHead.Value, head + 1);
        return true;
    }

    // ---------------- NAPI side ----------------

    /// <summary>Take up to <c>batch.Length</c> completed descriptors in ring order; the caller now owns each
    /// <see cref="RxDescriptor.BufferIndex"/> (build an skb from it, or <see cref="PagePool.Return"/> it to drop).
    /// Refills the ring when enough slots are free. Returns how many were taken.</summary>
    public int Poll(Span<RxDescriptor> batch)
    {
        long ntc = _nextToClean.Value;
        int n = 0;
        long bytes = 0;
        while (n < batch.Length)
        {
            ref RxDescriptor d = ref _descs[(int)ntc & _mask];
            if ((Volatile.Read(ref d.Status) & RxDescriptor.DescriptorDone) == 0) break;
            batch[n++] = d;
            bytes += d.Length;
            d.Status = 0;
            d.BufferIndex = -1;
            ntc++;
        }
        if (n > 0)
        {
            Volatile.Write(ref _nextToClean.Value, ntc);
            Volatile.Write(ref _rxPackets, _rxPackets + n);
            Volatile.Write(ref _rxBytes, _rxBytes + bytes);
        }
        if (Unused >= RefillBatch) Refill();
        return n;
    }

    /// <summary>ice_alloc_rx_bufs: post a fresh buffer in every unused slot, then move the tail. Stops at the first
    /// failed rent (counted in <see cref="AllocFailed"/>). Returns how many were posted. NAPI side only.</summary>
    public int Refill()
    {
        long ntu = _nextToUse.Value;
        long limit = _nextToClean.Value + _mask; // one slot stays unused
        int posted = 0;
        while (ntu < limit)
        {
            if (!Pool.TryRent(out int index))
            {
                Volatile.Write(ref _allocFailed, _allocFailed + 1);
                break;
            }
            ref RxDescriptor d = ref _descs[(int)ntu & _mask];
            d = default;
            d.BufferIndex = index;
            ntu++;
            posted++;
        }
        if (posted > 0) Volatile.Write(ref _nextToUse.Value, ntu);
        return posted;
    }

    /// <summary>Give every buffer the ring holds back to the pool (ice_clean_rx_ring at ifdown). Both sides must
    /// be stopped; completed descriptors not yet polled are dropped.</summary>
    public void Drain()
    {
        for (long i = _nextToClean.Value; i < _nextToUse.Value; i++)
        {
            ref RxDescriptor d = ref _descs[(int)i & _mask];
            if (d.BufferIndex >= 0) Pool.Return(d.BufferIndex);
            d = default;
            d.BufferIndex = -1;
        }
        _nextToClean.Value = _nextToUse.Value = _hwHead.Value = _nextToUse.Value;
    }
}
