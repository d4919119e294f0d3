using Softnet.Napi;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Xdp;

namespace Softnet.Nic;

/// <summary>What the stack does with an skb the driver hands up (napi_gro_receive / netif_receive_skb).</summary>
public interface IRxHandler
{
    /// <summary>Takes ownership of <paramref name="skb"/>. Runs on the NAPI thread of <paramref name="queue"/>.</summary>
    void Receive(Skb skb, RxQueue queue);

    /// <summary>End of a NAPI poll of <paramref name="queue"/> (napi_complete_done's hook: GRO flushes here).</summary>
    void PollEnd(RxQueue queue, int workDone, int budget);

    /// <summary>A frame further down the batch, before it is processed: a stack may ask memory for what that frame
    /// will need (a hint; nothing may change).</summary>
    void Lookahead(ReadOnlySpan<byte> frame, int ifindex) { }
}

/// <summary>
/// One RX queue with its driver poll (ice_clean_rx_irq): descriptor ring, page pool, XDP program, skb build.
/// All counters are written by the one NAPI thread polling the queue and read after the run.
/// </summary>
public sealed class RxQueue : INapiPoller
{
    private readonly RxDescriptor[] _batch;
    private readonly SkbBuilder _builder;
    private XdpQueueHook? _xdp;
    private IXdpTransmit? _xdpTx;
    private readonly SkbBuildMode _mode;
    private readonly IRxHandler _handler;
    private readonly bool _handlerLooksAhead;
    // The buffers of the frame being assembled, first to last (ice keeps them on the ring between polls:
    // rx_ring->first_desc and the xdp_buff), so a frame whose last buffer has not arrived spans polls.
    private readonly RxDescriptor[] _frame;
    private int _frameBuffers;

    internal RxQueue(int id, NicOptions o, IRxHandler handler)
    {
        Id = id;
        Pool = new PagePool(o.EffectivePoolBuffers, o.BufferSize, 256, $"rxq{id}");
        Ring = new RxRing(Pool, o.RingSize, id) { MaxFrameSize = o.MaxFrameSize };
        _frame = new RxDescriptor[Math.Max(Ring.BuffersFor(o.MaxFrameSize), Ring.BuffersFor(NicOptions.MaxAggregateFrame))];
        Skbs = new SkbPool(o.EffectivePoolBuffers + 64, $"skb_cache{id}");
        HeadPool = o.SkbMode == SkbBuildMode.Construct ? SkbBuilder.CreateHeadPool(o.EffectivePoolBuffers) : null;
        _builder = new SkbBuilder(Skbs, HeadPool);
        _batch = new RxDescriptor[Math.Max(o.Weight, 64)];
        _mode = o.SkbMode;
        _handler = handler;
        _handlerLooksAhead = OverridesLookahead(handler);
    }

    /// <summary>Whether the handler's class implements <see cref="IRxHandler.Lookahead"/> rather than taking the
    /// interface's empty default: the hint then costs no interface call per frame where nobody listens.</summary>
    private static bool OverridesLookahead(IRxHandler handler)
    {
        var map = handler.GetType().GetInterfaceMap(typeof(IRxHandler));
        for (int i = 0; i < map.InterfaceMethods.Length; i++)
            if (map.InterfaceMethods[i].Name == nameof(IRxHandler.Lookahead))
                return map.TargetMethods[i].DeclaringType != typeof(IRxHandler);
        return true;
    }

    public int Id { get; }

    /// <summary>Attaches the device's XDP program to this queue for its NAPI CPU (once the vector is known), with the
    /// port's transmit side for XDP_TX.</summary>
    internal void AttachXdp(XdpAttachment? attachment, IXdpTransmit? tx)
    {
        _xdpTx = tx;
        _xdp = attachment?.CreateHook(Id, Vector.TargetCpu.Id, tx);
    }

    /// <summary>The queue's XDP hook, or null.</summary>
    public XdpQueueHook? XdpHook => _xdp;
    public PagePool Pool { get; }
    public PagePool? HeadPool { get; }
    public RxRing Ring { get; }
    public SkbPool Skbs { get; }
    public IrqVector Vector { get; internal set; } = null!;
    public XdpCounters Xdp { get; } = new();
    public DropCounters Drops { get; } = new();

    /// <summary>Skbs handed to the stack.</summary>
    public long SkbsBuilt { get; private set; }

    /// <summary>Segments beyond the first of the TCP aggregates built into GSO skbs (see <see cref="TcpAggregate"/>);
    /// the stack counts those skbs in segments, the port counted each as one frame.</summary>
    public long AggregateSegments { get; private set; }

    // The port's counters, written per frame on the port's thread: on their own cache lines, away from the
    // counters the NAPI worker writes per packet.
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
    private struct PortCounters
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public long Offered;
        [System.Runtime.InteropServices.FieldOffset(72)] public long OccupancySum;
        [System.Runtime.InteropServices.FieldOffset(80)] public long OccupancySamples;
        [System.Runtime.InteropServices.FieldOffset(88)] public int MaxOccupancy;
    }
    private PortCounters _port;

    /// <summary>Frames the port offered to this queue, dropped or not.</summary>
    public long Offered => Volatile.Read(ref _port.Offered);

    /// <summary>Largest ring occupancy the port saw (filled, not yet polled descriptors).</summary>
    public int MaxOccupancy => Volatile.Read(ref _port.MaxOccupancy);

    /// <summary>Sum of occupancy samples for the mean.</summary>
    public long OccupancySum => Volatile.Read(ref _port.OccupancySum);

    /// <summary>Occupancy samples taken (see <see cref="VirtualNic.OccupancySampleMask"/>).</summary>
    public long OccupancySamples => Volatile.Read(ref _port.OccupancySamples);

    /// <summary>Port side: one frame offered to this queue; the ring's occupancy is sampled when
    /// (offered &amp; <paramref name="sampleMask"/>) == 0.</summary>
    internal void CountOffered(RxRing ring, int sampleMask)
    {
        if ((_port.Offered++ & sampleMask) != 0) return;
        int occupancy = ring.PortPending;
        _port.OccupancySum += occupancy;
        _port.OccupancySamples++;
        if (occupancy > _port.MaxOccupancy) _port.MaxOccupancy = occupancy;
    }

    public bool HasWork => Ring.Pending > 0;

    /// <summary>Descriptors waiting at each poll's start, over time (the report's ring occupancy chart).</summary>
    public OccupancySeries Occupancy { get; } = new();

    /// <summary>Buffers of a frame whose EOP descriptor has not been polled yet.</summary>
    internal int PartialFrameBuffers => _frameBuffers;

    public long SkbAllocFailed => _builder.AllocFailed;

    /// <summary>Frames the port's checksum offload found wrong (see <see cref="RxChecksumOffload"/>).</summary>
    public long ChecksumErrors => _builder.ChecksumErrors;

    /// <summary>Stopwatch ticks spent in sampled NAPI polls of this queue, everything above the driver included.
    /// One poll in <see cref="TimingSampleEvery"/> is timed (reading the clock costs ~20 ns a call).</summary>
    public long PollTicks { get; private set; }

    /// <summary>Stopwatch ticks of those spent in the stack above the driver (GRO and up).</summary>
    public long StackTicks { get; private set; }

    /// <summary>Packets processed in the sampled polls.</summary>
    public long SampledPackets { get; private set; }

    /// <summary>True while a poll whose time is being sampled runs; stages above time themselves only then.</summary>
    public bool TimingThisPoll { get; private set; }

    /// <summary>A timed poll reads the clock twice per packet (around each call into the stack): at one poll in 16 that
    /// was 0.125 reads, ~3 ns of every packet's ~110 (2-3 % of replay's profile in clock_gettime); at one in 64 it is
    /// under 1 ns, and a replay of a million frames still samples some 16,000 of them.</summary>
    public const int TimingSampleEvery = 64;
    /// <summary>Wall time after the first poll before samples count as warm: the first polls run while the JIT
    /// compiles the path (tier 0, then tier 1 after its call-counting delay), which a kernel's softirq never pays.
    /// Once a warm sample exists the earlier ones are discarded; a replay too short to warm up keeps them.</summary>
    public static readonly long TimingWarmupTicks = System.Diagnostics.Stopwatch.Frequency / 4;
    private long _polls;
    private long _firstPollTicks;

    /// <summary>The thread running this queue's poll while it runs, else null: a stage above frees skbs with it instead
    /// of looking the thread up per packet (Skb.Free's pool owner checks).</summary>
    public Thread? PollThread { get; private set; }

    /// <summary>The samples so far were taken after the warm-up.</summary>
    public bool TimingWarm { get; private set; }

    /// <summary>The driver's NAPI poll: up to <paramref name="budget"/> descriptors through XDP and skb build.</summary>
    public int Poll(int budget)
    {
        bool timed = TimingThisPoll = _polls++ % TimingSampleEvery == 0;
        long t0 = timed ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        if (timed)
        {
            if (_firstPollTicks == 0) _firstPollTicks = t0;
            else if (!TimingWarm && t0 - _firstPollTicks >= TimingWarmupTicks)
            {
                TimingWarm = true;
                PollTicks = StackTicks = SampledPackets = 0;
            }
        }
        int done = 0;
        int waiting = Ring.Pending;
        bool first = true;
        Thread current = Thread.CurrentThread; // for the pools' owner checks: once per poll, not per packet
        PollThread = current;
        // The budget counts frames (ice_clean_rx_irq's total_rx_pkts grows at EOP), so the ring hands out
        // descriptors up to the budget-th EOP and the rest wait.
        while (done < budget)
        {
            int want = budget - done;
            int n = Ring.Poll(_batch, want);
            if (first)
            {
                Occupancy.Record(n > 0 ? _batch[0].TimestampNs : 0, waiting);
                first = false;
            }
            int frames = 0;
            // As ice prefetches the next descriptors' data, the stack may look ahead: two frames ahead gave its memory
            // requests the time to land (one ahead was 5% slower on docker, the frame itself 10%).
            for (int i = 0; i < Math.Min(n, LookaheadFrames); i++) LookAhead(i);
            for (int i = 0; i < n; i++)
            {
                if (i + LookaheadFrames < n) LookAhead(i + LookaheadFrames);
                frames += Process(in _batch[i], current);
            }
            done += frames;
            if (n < _batch.Length && frames < want) break; // the ring ran dry
        }
        if (!timed)
        {
            _handler.PollEnd(this, done, budget);
            PollThread = null;
            return done;
        }
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        _handler.PollEnd(this, done, budget);
        PollThread = null;
        long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
        StackTicks += t2 - t1;
        PollTicks += t2 - t0;
        SampledPackets += done;
        TimingThisPoll = false;
        return done;
    }

    private const int LookaheadFrames = 2;

    private unsafe void LookAhead(int at)
    {
        ref readonly var d = ref _batch[at];
        // net_prefetch(xdp->data), as ice does before building the skb: the port wrote the frame from another CPU,
        // so its first line is a cache miss that the frames in between can hide.
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(Pool.BufferPointer(d.BufferIndex) + Pool.Headroom);
        if (d.Eop && _handlerLooksAhead) _handler.Lookahead(Pool.Data(d.BufferIndex)[..Math.Min(d.Length, 64)], d.Ifindex);
    }

    // One descriptor: a buffer that is not the frame's last is kept (ice_is_non_eop), the EOP one completes the
    // frame. Returns 1 when a frame completed (the budget's unit), else 0.
    private int Process(in RxDescriptor d, Thread current)
    {
        if (!d.Eop)
        {
            if (_frameBuffers == _frame.Length) DropPartial(current); // cannot happen with a sane port
            _frame[_frameBuffers++] = d;
            return 0;
        }
        if (_frameBuffers == 0)
        {
            ProcessSingle(in d, current);
            return 1;
        }
        if (_frameBuffers == _frame.Length) DropPartial(current);
        _frame[_frameBuffers++] = d;
        ProcessMulti(_frame.AsSpan(0, _frameBuffers), current);
        _frameBuffers = 0;
        return 1;
    }

    /// <summary>ifdown (ice_clean_rx_ring): the buffers of a frame still being assembled go back to the pool.</summary>
    internal void DrainPartialFrame()
    {
        for (int i = 0; i < _frameBuffers; i++) Pool.Return(_frame[i].BufferIndex);
        _frameBuffers = 0;
    }

    private void DropPartial(Thread current)
    {
        for (int i = 0; i < _frameBuffers; i++) Pool.Return(_frame[i].BufferIndex, current);
        _frameBuffers = 0;
        Drops.Add(DropReason.FrameTooLong);
    }

    // A frame over several buffers, as ice's multi-buffer path runs it: XDP sees the first buffer (the linear part
    // of a frags-aware xdp_buff) once the whole frame is in, then the skb is built with the other buffers as frags.
    private void ProcessMulti(ReadOnlySpan<RxDescriptor> frame, Thread current)
    {
        ref readonly RxDescriptor first = ref frame[0];
        int offset = Pool.Headroom, length = first.Length;
        if (_xdp is not null && !RunXdp(first.BufferIndex, first.TimestampNs, ref offset, ref length, first.TraceId))
        {
            foreach (ref readonly RxDescriptor b in frame) Pool.Return(b.BufferIndex, current);
            return;
        }
        Skb? skb = _mode == SkbBuildMode.Build
            ? _builder.BuildSkb(Pool, frame, Id, offset, length, current)
            : _builder.ConstructSkb(Pool, frame, Id, offset, length);
        Deliver(skb, first.TraceId);
    }

    /// <summary>The queue's XDP program on the frame's first buffer (ice_run_xdp); on PASS the (possibly moved) data
    /// bounds come back, on any other verdict false and the caller returns the buffers. XDP_TX frames go to the port's
    /// transmit side and XDP_REDIRECT frames to the target the program chose, both copied out as they left the program
    /// (the buffer goes back to the pool at once, where ice recycles it on TX completion); failures are counted as
    /// ethtool's xdp_tx_errors / xdp_redirect_errors.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool RunXdp(int bufferIndex, long nowNs, ref int offset, ref int length, int traceId)
    {
        var buffer = Pool.Buffer(bufferIndex);
        // skb_shared_info's room at the end, as far as the buffer has it past the frame.
        int tailroom = Math.Clamp(buffer.Length - offset - length, 0, XdpAdjust.SkbSharedInfoSize);
        var ctx = new XdpBuff(buffer, offset, length, Id, tailroom);
        var verdict = _xdp!.Run(ref ctx, nowNs);
        Xdp.Count(verdict);
        if (traceId != 0) PacketTracer.Current?.XdpVerdict(traceId, verdict, ctx.Data - offset, ctx.Length - length);
        if (verdict == XdpAction.Pass)
        {
            offset = ctx.Data;
            length = ctx.Length;
            return true;
        }
        switch (verdict)
        {
            case XdpAction.Drop: Drops.Add(DropReason.XdpDrop); break;
            case XdpAction.Tx:
                if (_xdpTx is { } tx && !tx.Transmit(ctx.Packet, nowNs)) Xdp.TxErrors++;
                break;
            case XdpAction.Redirect:
                if (_xdp.TakeRedirect() is not { } target || !target.Transmit(ctx.Packet, nowNs)) Xdp.RedirectErrors++;
                break;
            default: Drops.Add(DropReason.XdpAborted); break; // ABORTED or an invalid verdict
        }
        return false;
    }

    private void ProcessSingle(in RxDescriptor d, Thread current)
    {
        int offset = Pool.Headroom, length = d.Length;
        if (_xdp is not null && !RunXdp(d.BufferIndex, d.TimestampNs, ref offset, ref length, d.TraceId))
        {
            Pool.Return(d.BufferIndex, current);
            return;
        }
        Skb? skb = _mode == SkbBuildMode.Build
            ? _builder.BuildSkb(Pool, in d, Id, offset, length, current)
            : _builder.ConstructSkb(Pool, in d, Id, offset, length);
        Deliver(skb, d.TraceId);
    }

    private void Deliver(Skb? skb, int traceId)
    {
        if (skb is null)
        {
            Drops.Add(DropReason.PoolExhausted);
            if (traceId != 0) PacketTracer.Current?.Drop(traceId, null, DropReason.PoolExhausted);
            return;
        }
        if (traceId != 0) PacketTracer.Current?.SkbBuilt(skb, Id, _mode == SkbBuildMode.Build ? "build_skb" : "construct_skb");
        SkbsBuilt++;
        if (skb.GsoSegs > 1) AggregateSegments += skb.GsoSegs - 1;
        if (!TimingThisPoll)
        {
            _handler.Receive(skb, this);
            return;
        }
        long t = System.Diagnostics.Stopwatch.GetTimestamp();
        _handler.Receive(skb, this);
        StackTicks += System.Diagnostics.Stopwatch.GetTimestamp() - t;
    }
}
