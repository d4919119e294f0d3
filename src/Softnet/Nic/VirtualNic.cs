using System.Runtime.CompilerServices;
using Softnet.Napi;
using Softnet.Packets;

namespace Softnet.Nic;

/// <summary>
/// A multi-queue NIC: the port side (<see cref="Offer"/>) hashes each frame with RSS, picks a queue from the
/// indirection table, DMAs it into that queue's ring and signals the queue's interrupt vector; the NAPI side
/// is each <see cref="RxQueue"/>'s poll, registered with a <see cref="NapiEngine"/>.
/// </summary>
public sealed class VirtualNic
{
    private readonly RxQueue[] _queues;
    private readonly RssHasher _rss;
    private readonly RssIndirectionTable _indir;
    private readonly int _plainMax; // MTU + ETH_HLEN: the longest untagged frame
    // The port's view of the queues, so a frame touches no line the NAPI workers write (RxQueue's counters).
    private readonly RxRing[] _rings;
    private readonly IrqVector[] _vectors;
    private readonly int[] _burst; // frames taken per queue since the burst's interrupt causes were last signalled
    private int _burstFrames;
    private readonly bool _rxChecksum; // ethtool -K DEV rx: the port checks IP and TCP/UDP checksums

    public VirtualNic(NicOptions options, NapiEngine engine, IRxHandler handler)
    {
        options.Validate();
        Options = options;
        _plainMax = options.Mtu + NicOptions.EthHlen;
        _rxChecksum = options.RxChecksum;
        _rss = options.RssKey is null ? new RssHasher() : new RssHasher(options.RssKey);
        _indir = options.RssWeights is null
            ? RssIndirectionTable.Equal(options.Queues)
            : RssIndirectionTable.Weighted(options.RssWeights, 128);
        _queues = new RxQueue[options.Queues];
        _rings = new RxRing[options.Queues];
        _vectors = new IrqVector[options.Queues];
        _burst = new int[options.Queues];
        var cpus = engine.Options.Cpus;
        var xdp = options.EffectiveXdp;
        for (int i = 0; i < _queues.Length; i++)
        {
            var q = new RxQueue(i, options, handler);
            var mask = options.Affinity is { Count: > 0 } a ? a[i % a.Count] : CpuMask.Of(cpus[i % cpus.Count]);
            q.Vector = engine.AddQueue(q, mask, options.Moderation, options.Weight);
            q.AttachXdp(xdp, options.XdpTransmit);
            _queues[i] = q;
            _rings[i] = q.Ring;
            _vectors[i] = q.Vector;
            // The ring was filled on this thread (ifup). With worker threads its buffers belong to the worker that
            // polls it: the pool gives up this thread's cache, and the first rent on the NAPI CPU (the ring's
            // refill) makes that worker the owner of the alloc cache, as page_pool is tied to its NAPI.
            if (engine.Mode == NapiMode.Threaded) q.Pool.ReleaseOwner();
        }
    }

    public NicOptions Options { get; }

    /// <summary>Gives up this thread's claim on the queues' page pools (see <see cref="PagePool.ReleaseOwner"/>): for
    /// a NIC set up on one thread and polled by another in deterministic mode (a `softnet run` worker). Call before
    /// the polling thread starts.</summary>
    public void ReleasePoolOwnership()
    {
        foreach (var q in _queues) q.Pool.ReleaseOwner();
    }

    /// <summary>Ring occupancy is sampled when (offered &amp; mask) == 0: every frame by default; threaded runs
    /// sample less often, since reading the consumer's index costs a cache miss while NAPI runs elsewhere.</summary>
    public int OccupancySampleMask { get; set; }
    public IReadOnlyList<RxQueue> Queues => _queues;
    public RssIndirectionTable IndirectionTable => _indir;

    /// <summary>
    /// The wire delivers one frame at <paramref name="nowNs"/>. Returns the drop reason when the NIC could not
    /// take it (ring full: rx_missed; longer than the MTU plus the Ethernet header and its VLAN tags:
    /// <see cref="DropReason.FrameTooLong"/>, counted oversize), else <see cref="DropReason.None"/>. A frame
    /// longer than one buffer spans several descriptors. A TCP packet longer than the MTU allows, as captures on
    /// GRO/TSO hosts hold, is taken whole as a hardware-GRO aggregate (<see cref="TcpAggregate"/>).
    /// </summary>
    public DropReason Offer(ReadOnlySpan<byte> frame, long nowNs, int ifindex = 0, int traceId = 0)
    {
        var reason = Take(frame, nowNs, ifindex, held: false, traceId, out int queue);
        if (reason == DropReason.None) _vectors[queue].NotifyFrames(1, nowNs);
        return reason;
    }

    /// <summary>
    /// As <see cref="Offer"/>, but the frame's interrupt cause is held until <see cref="EndBurst"/>: a port that
    /// writes frames in bursts (a DMA engine writing back a batch of descriptors, a batch from a socket ring) raises
    /// each queue's interrupt once per burst, and NAPI, masked after the first, is not signalled per frame. The
    /// descriptors are written back together at <see cref="EndBurst"/>, so NAPI reads lines the port has finished writing.
    /// </summary>
    public DropReason OfferInBurst(ReadOnlySpan<byte> frame, long nowNs, int ifindex = 0, int traceId = 0)
    {
        var reason = Take(frame, nowNs, ifindex, held: true, traceId, out int queue);
        if (reason == DropReason.None)
        {
            _burst[queue]++;
            _burstFrames++;
        }
        return reason;
    }

    /// <summary>Ends a burst: signals each queue's vector once with the frames it took since the last call.</summary>
    public void EndBurst(long nowNs)
    {
        if (_burstFrames == 0) return;
        _burstFrames = 0;
        for (int i = 0; i < _burst.Length; i++)
        {
            int n = _burst[i];
            if (n == 0) continue;
            _burst[i] = 0;
            _rings[i].WriteBack(); // the burst's descriptors, then its interrupt
            _vectors[i].NotifyFrames(n, nowNs);
        }
    }

    /// <summary>The EtherType 0x0800 as the two bytes read in native order give it.</summary>
    private static readonly ushort PlainIpv4Type = BitConverter.IsLittleEndian ? (ushort)0x0008 : (ushort)0x0800;

    // RSS, the MTU check and the DMA into the chosen queue's ring; the interrupt is the caller's.
    private DropReason Take(ReadOnlySpan<byte> frame, long nowNs, int ifindex, bool held, int traceId, out int queue)
    {
        uint hash = 0;
        PktHashType type = PktHashType.None;
        bool hashed;
        uint h;
        RssHashType rssType;
        int checksumStatus = 0;
        // The parser reads the common frame (untagged IPv4, 20-byte header) once, by pointer, for RSS and the checksum
        // offload; any other goes through their general paths, which give the same results.
        if (frame.Length >= NicOptions.EthHlen + 20 && Unsafe.ReadUnaligned<ushort>(ref Unsafe.AsRef(in frame[12])) == PlainIpv4Type && frame[14] == 0x45)
        {
            unsafe
            {
                fixed (byte* f = frame)
                {
                    byte* ip = f + NicOptions.EthHlen;
                    int length = frame.Length - NicOptions.EthHlen;
                    hashed = _rss.TryHashIpv4(ip, length, out h, out rssType);
                    // A frame longer than the MTU is an aggregate (CHECKSUM_PARTIAL whatever the check says) or a drop.
                    if (_rxChecksum && frame.Length <= _plainMax) checksumStatus = RxChecksumOffload.Ipv4(ip, length);
                }
            }
        }
        else
        {
            hashed = _rss.TryHashFrame(frame, out h, out rssType);
            checksumStatus = _rxChecksum ? -1 : 0; // checked below, once the frame is known to be a plain one
        }
        if (hashed)
        {
            hash = h;
            type = rssType.IsL4() ? PktHashType.L4 : PktHashType.L3;
        }
        queue = _rings.Length == 1 ? 0 : _indir.QueueFor(hash);
        var ring = _rings[queue];
        _queues[queue].CountOffered(ring, OccupancySampleMask);
        // The descriptors carry the frame's trace id (one store; 0 for every frame a trace did not select).
        ring.PortTraceId = traceId;
        if (traceId != 0) Telemetry.PacketTracer.Current?.Arrival(traceId, queue, _vectors[queue].TargetCpu.Id, ring.PortSlot, hash, frame.Length);
        if (frame.Length > _plainMax && frame.Length > _plainMax + NicOptions.VlanHlen * TcpAggregate.VlanTags(frame))
            return TakeLong(frame, nowNs, ifindex, held, ring, hash, type);
        if (checksumStatus < 0) checksumStatus = RxChecksumOffload.Status(frame);
        // A frame the MAC takes as it is: no aggregate fields (a constant, so the inlined descriptor write folds them).
        return Dma(ring, frame, nowNs, hash, type, ifindex, held, default, checksumStatus);
    }

    /// <summary>The frame into the ring's posted buffers, its descriptors held for the burst's write-back or handed over now.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static DropReason Dma(RxRing ring, ReadOnlySpan<byte> frame, long nowNs, uint hash, PktHashType type, int ifindex, bool held, RxAggregate aggregate, int checksumStatus = 0)
    {
        bool taken = held ? ring.TryReceiveHeld(frame, nowNs, hash, type, ifindex, aggregate, checksumStatus)
            : ring.TryReceive(frame, nowNs, hash, type, ifindex, aggregate, checksumStatus);
        return taken ? DropReason.None : DropReason.RingFull;
    }

    /// <summary>A frame longer than the MTU lets the MAC take: a TCP aggregate the port accepts whole, or a drop.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private DropReason TakeLong(ReadOnlySpan<byte> frame, long nowNs, int ifindex, bool held, RxRing ring, uint hash, PktHashType type)
    {
        if (!(Options.TcpAggregates && TcpAggregate.TryParse(frame, Options.Mtu, out var aggregate)))
        {
            // The NIC drops it and counts it oversize (GLPRT_ROC, part of rx_length_errors); the driver never sees it.
            ring.CountOversize();
            return DropReason.FrameTooLong;
        }
        return Dma(ring, frame, nowNs, hash, type, ifindex, held, aggregate);
    }

    /// <summary>Returns every buffer the rings hold to their pools (ifdown); all threads must be stopped.</summary>
    public void Drain()
    {
        foreach (var q in _queues)
        {
            q.DrainPartialFrame();
            q.Ring.Drain();
        }
    }
}
