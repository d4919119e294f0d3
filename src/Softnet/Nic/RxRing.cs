using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Softnet.Packets;

namespace Softnet.Nic;

/// <summary>
/// One RX descriptor (the write-back format of union ice_32b_rx_flex_desc, reduced to what the path uses).
/// The ring posts it with <see cref="BufferIndex"/> set; the port fills the rest and sets the DD bit.
/// A frame longer than one buffer spans several descriptors in ring order; only the last carries EOF
/// (<see cref="EndOfPacket"/>), as ice's multi-buffer receive sees them.
/// </summary>
public struct RxDescriptor
{
    /// <summary>Status bit "descriptor done" (ICE_RX_FLEX_DESC_STATUS0_DD).</summary>
    public const int DescriptorDone = 1;
    /// <summary>Status bit "end of packet": the last buffer of a frame (ICE_RX_FLEX_DESC_STATUS0_EOF).</summary>
    public const int EndOfPacket = 2;
    /// <summary>The port checked the IP and TCP/UDP checksums (ICE_RX_FLEX_DESC_STATUS0_L3L4P); the two error bits
    /// below say what failed. Set on a frame's last descriptor only. See <see cref="RxChecksumOffload"/>.</summary>
    public const int L3L4Processed = 4;
    /// <summary>The IPv4 header checksum is wrong (ICE_RX_FLEX_DESC_STATUS0_XSUM_IPE).</summary>
    public const int IpChecksumError = 8;
    /// <summary>The TCP or UDP checksum is wrong (ICE_RX_FLEX_DESC_STATUS0_XSUM_L4E).</summary>
    public const int L4ChecksumError = 16;

    public int BufferIndex;
    /// <summary>Bytes of the frame in this buffer (the write-back pkt_len), written at <see cref="PagePool.Headroom"/>.</summary>
    public int Length;
    public long TimestampNs;
    public uint RssHash;
    public PktHashType HashType;
    public int Status;
    /// <summary>Which port interface the frame came in on (the capture's interface id; the stack's skb_iif).</summary>
    public int Ifindex;

    /// <summary>Non-zero for a TCP aggregate the port received whole (see <see cref="VirtualNic.Offer"/>): the
    /// payload bytes per segment, as a hardware-GRO completion reports it.</summary>
    public int GsoSize;
    /// <summary>Segments in the aggregate (the completion's segment count).</summary>
    public ushort GsoSegs;
    /// <summary>Offset of the TCP header from the frame start, for the aggregate's CHECKSUM_PARTIAL.</summary>
    public ushort L4Offset;
    public GsoType GsoType;
    /// <summary>The journey a <see cref="Telemetry.PacketTracer"/> gave the frame at the port (0: not traced); the skb
    /// built from the descriptor carries it on.</summary>
    public int TraceId;

    internal readonly bool Done => (Status & DescriptorDone) != 0;
    /// <summary>The last buffer of its frame (ice_is_non_eop is false).</summary>
    public readonly bool Eop => (Status & EndOfPacket) != 0;
}

/// <summary>What the port knows of a frame it DMAs as a TCP aggregate (hardware GRO); default for a plain frame.</summary>
public readonly record struct RxAggregate(int GsoSize, ushort GsoSegs, ushort L4Offset, GsoType GsoType)
{
    public bool IsAggregate => GsoSize != 0;
}

/// <summary>Snapshot of one RX queue's counters.</summary>
public readonly record struct RxQueueStats(long RxPackets, long RxBytes, long RxMissed, long AllocFailed, long RxOversize)
{
    /// <summary>Buffers that were not the last of their frame (ice's rx_stats.non_eop_descs).</summary>
    public long NonEopDescs { get; init; }
    /// <summary>TCP aggregates received whole (mlx5's rx_gro_skbs for hardware GRO).</summary>
    public long RxGroSkbs { get; init; }
    /// <summary>Segments in those aggregates (rx_gro_packets).</summary>
    public long RxGroPackets { get; init; }
    /// <summary>rx_length_errors as ice folds it: oversize frames among the length errors (the MAC's
    /// receive-oversize count, GLPRT_ROC, added into the netdev's rx_length_errors).</summary>
    public long RxLengthErrors => RxOversize;
}

/// <summary>
/// The descriptor ring of one RX queue. Two sides, one thread each, no locks:
/// <list type="bullet">
/// <item>the port (replay, generator; the NIC's DMA engine) calls <see cref="TryReceive(ReadOnlySpan{byte}, long, uint, PktHashType, int)"/>:
/// it takes the next posted descriptor, copies the frame into its buffer after the headroom and sets DD. A frame
/// longer than one buffer's data area (up to <see cref="MaxFrameSize"/>) is cut into as many buffers as it needs,
/// one descriptor each, EOP on the last. The port needs every descriptor of a frame before it writes any: with
/// fewer posted the ring is full, the whole frame is dropped and counted once in rx_missed (the NIC holds a
/// frame in its own packet buffer until it has descriptors for it, and drops it there), so NAPI never sees
/// half a frame that will not be finished.</item>
/// <item>NAPI calls <see cref="Poll"/> (ice_clean_rx_irq): completed descriptors come out in order, ownership of
/// each buffer index moves to the caller, and the ring re-posts fresh buffers from its pool in batches of
/// <see cref="RefillBatch"/> (ice_alloc_rx_bufs); an empty pool counts alloc_failed and the ring runs shorter
/// until a later refill succeeds. Packets and bytes count frames (EOP descriptors) and their bytes.</item>
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

    // Port side (producer): everything it touches per frame, on cache lines of its own, so NAPI's per-poll counters
    // and the page pool's per-packet cache (written on the worker's CPU) never share a line with them.
    private PortSide _port;
    // NAPI side (consumer): next_to_clean is private, next_to_use is the published tail.
    private PaddedLong _nextToClean;
    private PaddedLong _nextToUse;
    // The descriptors the port has written back (a count, like Head): NAPI reads no descriptor past it. A port that
    // writes in bursts moves it once per burst, so NAPI never reads a descriptor line the port is still writing.
    private PaddedLong _writtenBack;
    private long _rxPackets, _rxBytes, _allocFailed, _nonEop;

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
    private unsafe struct PortSide
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public RxDescriptor[] Descs;
        [System.Runtime.InteropServices.FieldOffset(72)] public long Head;      // the hardware's head: next descriptor to write
        [System.Runtime.InteropServices.FieldOffset(80)] public long Tail;      // the port's copy of next_to_use
        [System.Runtime.InteropServices.FieldOffset(88)] public long RxMissed;
        [System.Runtime.InteropServices.FieldOffset(96)] public long RxOversize;
        [System.Runtime.InteropServices.FieldOffset(104)] public long GroSkbs;
        [System.Runtime.InteropServices.FieldOffset(112)] public long GroPackets;
        // The pool's pinned memory as the DMA engine sees it: buffer 0's data area and the stride.
        [System.Runtime.InteropServices.FieldOffset(120)] public byte* Data;
        [System.Runtime.InteropServices.FieldOffset(128)] public int BufferSize;
        [System.Runtime.InteropServices.FieldOffset(132)] public int DataSize;
        [System.Runtime.InteropServices.FieldOffset(136)] public int MaxFrame;
        [System.Runtime.InteropServices.FieldOffset(140)] public int Mask;
        [System.Runtime.InteropServices.FieldOffset(144)] public int Buffers;
        // The trace id of the frame being written (0 almost always): set by the port before the DMA.
        [System.Runtime.InteropServices.FieldOffset(148)] public int TraceId;
    }

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
        _port.Descs = _descs;
        _port.Mask = _mask;
        _port.MaxFrame = pool.DataSize;
        _port.BufferSize = pool.BufferSize;
        _port.DataSize = pool.DataSize;
        _port.Buffers = pool.Capacity;
        unsafe { _port.Data = pool.BufferPointer(0) + pool.Headroom; }
        Refill(); // ice_alloc_rx_bufs at ifup
    }

    public PagePool Pool { get; }
    public int QueueId { get; }
    public int Size => _descs.Length;

    /// <summary>Longest plain frame the port accepts (the queue context's rxmax); longer ones count as oversize.
    /// Defaults to one buffer's data area; the NIC sets it from the MTU, and frames past one buffer then span
    /// several descriptors. Set before traffic starts.</summary>
    public int MaxFrameSize
    {
        get => _port.MaxFrame;
        set
        {
            if (value < 1) throw new ArgumentOutOfRangeException(nameof(value));
            _port.MaxFrame = value;
        }
    }

    /// <summary>Descriptors a frame of <paramref name="length"/> bytes takes.</summary>
    public int BuffersFor(int length) => length <= Pool.DataSize ? 1 : (length + Pool.DataSize - 1) / Pool.DataSize;

    public long RxPackets => Volatile.Read(ref _rxPackets);
    public long RxBytes => Volatile.Read(ref _rxBytes);
    /// <summary>Frames dropped because no posted descriptor was free (rx_missed / rx_dropped).</summary>
    public long RxMissed => Volatile.Read(ref _port.RxMissed);
    /// <summary>Refills that found the pool empty.</summary>
    public long AllocFailed => Volatile.Read(ref _allocFailed);
    /// <summary>Frames longer than one buffer's data area, dropped by the port.</summary>
    public long RxOversize => Volatile.Read(ref _port.RxOversize);
    /// <summary>Descriptors that were not the last of their frame.</summary>
    public long NonEopDescs => Volatile.Read(ref _nonEop);

    /// <summary>Descriptors holding a buffer the port may fill.</summary>
    internal int Posted => (int)(Volatile.Read(ref _nextToUse.Value) - Volatile.Read(ref _port.Head));
    /// <summary>Written-back descriptors NAPI has not consumed yet.</summary>
    public int Pending => (int)(Volatile.Read(ref _writtenBack.Value) - Volatile.Read(ref _nextToClean.Value));

    /// <summary>Port side: descriptors filled (written back or not) and not consumed yet.</summary>
    internal int PortPending => (int)(_port.Head - Volatile.Read(ref _nextToClean.Value));
    /// <summary>Descriptors without a buffer (ICE_RX_DESC_UNUSED).</summary>
    public int Unused => (int)(_nextToClean.Value + _mask - _nextToUse.Value);

    public RxQueueStats Stats => new(RxPackets, RxBytes, RxMissed, AllocFailed, RxOversize)
    {
        NonEopDescs = NonEopDescs,
        RxGroSkbs = Volatile.Read(ref _port.GroSkbs),
        RxGroPackets = Volatile.Read(ref _port.GroPackets),
    };

    /// <summary>Counters under the names ethtool -S gives them (per queue, then the drop counters).</summary>
    internal IEnumerable<KeyValuePair<string, long>> EthtoolStats()
    {
        yield return new($"rx_queue_{QueueId}_packets", RxPackets);
        yield return new($"rx_queue_{QueueId}_bytes", RxBytes);
        yield return new($"rx_queue_{QueueId}_missed", RxMissed);
        yield return new($"rx_queue_{QueueId}_alloc_failed", AllocFailed);
        yield return new($"rx_queue_{QueueId}_oversize", RxOversize);
        yield return new($"rx_queue_{QueueId}_non_eop_descs", NonEopDescs);
    }

    // ---------------- port side ----------------

    /// <summary>DMA one frame into the next posted buffers. False if the ring is full (rx_missed) or the frame is
    /// longer than <see cref="MaxFrameSize"/> (oversize); the frame is then dropped.</summary>
    public bool TryReceive(ReadOnlySpan<byte> frame, long timestampNs, uint rssHash, PktHashType hashType, int ifindex = 0)
        => TryReceive(frame, timestampNs, rssHash, hashType, ifindex, default);

    /// <summary>As <see cref="TryReceive(ReadOnlySpan{byte}, long, uint, PktHashType, int)"/>; a frame the port took
    /// as a TCP <paramref name="aggregate"/> is accepted past <see cref="MaxFrameSize"/> and its descriptors carry
    /// the aggregate's GSO fields.</summary>
    /// <param name="checksumStatus">The port's checksum verdict for the frame's last descriptor (<see cref="RxChecksumOffload.Status"/>).</param>
    public bool TryReceive(ReadOnlySpan<byte> frame, long timestampNs, uint rssHash, PktHashType hashType, int ifindex, RxAggregate aggregate, int checksumStatus = 0)
    {
        bool ok = TryReceiveHeld(frame, timestampNs, rssHash, hashType, ifindex, aggregate, checksumStatus);
        if (ok) WriteBack();
        return ok;
    }

    /// <summary>As <see cref="TryReceive(ReadOnlySpan{byte}, long, uint, PktHashType, int, RxAggregate)"/>, but the
    /// descriptors stay unseen by NAPI until <see cref="WriteBack"/>: a DMA engine writing a burst hands its
    /// descriptors over together (ice writes descriptors back a cache line at a time, or on the interrupt with
    /// WB_ON_ITR), and NAPI then reads lines the port has finished with instead of chasing the port line by line.</summary>
    internal bool TryReceiveHeld(ReadOnlySpan<byte> frame, long timestampNs, uint rssHash, PktHashType hashType, int ifindex, RxAggregate aggregate, int checksumStatus = 0)
    {
        ref PortSide p = ref _port;
        if (frame.Length > p.MaxFrame && !aggregate.IsAggregate)
        {
            CountOversize();
            return false;
        }
        int dataSize = p.DataSize;
        int need = frame.Length <= dataSize ? 1 : (frame.Length + dataSize - 1) / dataSize;
        long head = p.Head;
        // The tail NAPI publishes lives on a cache line the consumer keeps writing; re-read it only when the
        // copy the port holds says the ring has too few posted buffers (the usual single-producer/single-consumer trick).
        if (p.Tail - head < need)
        {
            p.Tail = Volatile.Read(ref _nextToUse.Value);
            if (p.Tail - head < need)
            {
                Volatile.Write(ref p.RxMissed, p.RxMissed + 1);
                return false;
            }
        }
        var descs = p.Descs;
        if (need == 1)
        {
            ref RxDescriptor d = ref descs[(int)head & p.Mask];
            CopyFrame(frame, PortBuffer(ref p, d.BufferIndex));
            Fill(ref d, frame.Length, timestampNs, rssHash, hashType, ifindex, aggregate, p.TraceId);
            Volatile.Write(ref d.Status, RxDescriptor.DescriptorDone | RxDescriptor.EndOfPacket | checksumStatus);
        }
        else
        {
            // One buffer after another, each with the headroom in front (the ring's rx_offset applies to every
            // buffer); each descriptor is handed over as soon as it is written, as the hardware writes back.
            int offset = 0;
            for (int i = 0; i < need; i++)
            {
                ref RxDescriptor d = ref descs[(int)(head + i) & p.Mask];
                int n = Math.Min(dataSize, frame.Length - offset);
                frame.Slice(offset, n).CopyTo(PortBuffer(ref p, d.BufferIndex));
                Fill(ref d, n, timestampNs, rssHash, hashType, ifindex, aggregate, p.TraceId);
                offset += n;
                Volatile.Write(ref d.Status, i == need - 1 ? RxDescriptor.DescriptorDone | RxDescriptor.EndOfPacket | checksumStatus : RxDescriptor.DescriptorDone);
            }
        }
        if (aggregate.IsAggregate)
        {
            Volatile.Write(ref p.GroSkbs, p.GroSkbs + 1);
            Volatile.Write(ref p.GroPackets, p.GroPackets + aggregate.GsoSegs);
        }
        Volatile.Write(ref p.Head, head + need);
        return true;
    }

    /// <summary>Port side: the trace id the next frames' descriptors carry (0: untraced), and the slot the next frame
    /// goes to (for the trace's arrival line).</summary>
    internal int PortTraceId
    {
        get => _port.TraceId;
        set => _port.TraceId = value;
    }

    internal int PortSlot => (int)_port.Head & _port.Mask;

    /// <summary>Port side: hands every descriptor filled so far to NAPI (the descriptor write-back).</summary>
    internal void WriteBack()
    {
        if (_writtenBack.Value != _port.Head) Volatile.Write(ref _writtenBack.Value, _port.Head);
    }

    /// <summary>The port's "DMA" of a frame that fits one buffer (<paramref name="buffer"/> is at least as long). A
    /// minimum-size frame (60-64 bytes) is two overlapping 32-byte moves done here; the call into Memmove with its
    /// size dispatch cost as much as the move (2-4 % of a 64 B replay).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyFrame(ReadOnlySpan<byte> frame, Span<byte> buffer)
    {
        int n = frame.Length;
        if (n is >= 32 and <= 64 && Vector256.IsHardwareAccelerated && buffer.Length >= n)
        {
            ref byte from = ref MemoryMarshal.GetReference(frame);
            ref byte to = ref MemoryMarshal.GetReference(buffer);
            var head = Vector256.LoadUnsafe(ref from);
            var tail = Vector256.LoadUnsafe(ref from, (nuint)(n - 32));
            head.StoreUnsafe(ref to);
            tail.StoreUnsafe(ref to, (nuint)(n - 32));
        }
        else
        {
            frame.CopyTo(buffer);
        }
    }

    /// <summary>The data area of a posted buffer, reached without touching the pool object (whose free-list cache the
    /// NAPI worker writes per packet). The index comes from a descriptor this ring posted, so it is in range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Span<byte> PortBuffer(ref PortSide p, int index)
    {
        if ((uint)index >= (uint)p.Buffers) ThrowNoBuffer(index);
        return new Span<byte>(p.Data + (nint)index * p.BufferSize, p.DataSize);
    }

    private static void ThrowNoBuffer(int index) => throw new InvalidOperationException($"posted descriptor holds no buffer ({index})");

    /// <summary>The port dropped a frame longer than the MAC accepts (port side only).</summary>
    public void CountOversize() => Volatile.Write(ref _port.RxOversize, _port.RxOversize + 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fill(ref RxDescriptor d, int length, long timestampNs, uint rssHash, PktHashType hashType, int ifindex, RxAggregate aggregate, int traceId)
    {
        d.TraceId = traceId;
        d.Length = length;
        d.TimestampNs = timestampNs;
        d.RssHash = rssHash;
        d.HashType = hashType;
        d.Ifindex = ifindex;
        d.GsoSize = aggregate.GsoSize;
        d.GsoSegs = aggregate.GsoSegs;
        d.L4Offset = aggregate.L4Offset;
        d.GsoType = aggregate.GsoType;
    }

    // ---------------- NAPI side ----------------

    /// <summary>Take up to <c>batch.Length</c> completed descriptors in ring order; the caller now owns each
    /// <see cref="RxDescriptor.BufferIndex"/> (build an skb from it, or <see cref="PagePool.Return"/> it to drop).
    /// Refills the ring when enough slots are free. Returns how many were taken. Stops after the
    /// <paramref name="maxFrames"/>-th EOP descriptor: ice_clean_rx_irq's budget counts frames, not buffers. A frame whose last buffer has not come
    /// yet ends the batch with its first buffers; the rest follows in a later poll.</summary>
    public int Poll(Span<RxDescriptor> batch, int maxFrames)
    {
        long ntc = _nextToClean.Value;
        long written = Volatile.Read(ref _writtenBack.Value);
        int n = 0, frames = 0;
        long bytes = 0;
        while (n < batch.Length && frames < maxFrames && ntc < written)
        {
            ref RxDescriptor d = ref _descs[(int)ntc & _mask];
            int status = Volatile.Read(ref d.Status);
            if ((status & RxDescriptor.DescriptorDone) == 0) break;
            batch[n++] = d;
            bytes += d.Length;
            if ((status & RxDescriptor.EndOfPacket) != 0) frames++;
            d.Status = 0;
            d.BufferIndex = -1;
            ntc++;
        }
        if (n > 0)
        {
            Volatile.Write(ref _nextToClean.Value, ntc);
            Volatile.Write(ref _rxPackets, _rxPackets + frames);
            Volatile.Write(ref _rxBytes, _rxBytes + bytes);
            if (n != frames) Volatile.Write(ref _nonEop, _nonEop + (n - frames));
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
        // The pool's owner check wants the thread: looked up once a refill, not once a buffer (a thread-static read is a
        // call into the TLS resolver here).
        Thread current = Thread.CurrentThread;
        while (ntu < limit)
        {
            if (!Pool.TryRent(out int index, current))
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
        _nextToClean.Value = _nextToUse.Value = _port.Head = _writtenBack.Value = _nextToUse.Value;
    }
}
