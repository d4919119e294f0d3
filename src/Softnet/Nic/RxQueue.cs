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
}

/// <summary>
/// One RX queue with its driver poll (ice_clean_rx_irq): descriptor ring, page pool, XDP program, skb build.
/// All counters are written by the one NAPI thread polling the queue and read after the run.
/// </summary>
public sealed class RxQueue : INapiPoller
{
    private readonly RxDescriptor[] _batch;
    private readonly SkbBuilder _builder;
    private readonly XdpProgram? _xdp;
    private readonly SkbBuildMode _mode;
    private readonly IRxHandler _handler;

    internal RxQueue(int id, NicOptions o, IRxHandler handler)
    {
        Id = id;
        Pool = new PagePool(o.EffectivePoolBuffers, o.BufferSize, 256, $"rxq{id}");
        Ring = new RxRing(Pool, o.RingSize, id);
        Skbs = new SkbPool(o.EffectivePoolBuffers + 64, $"skb_cache{id}");
        HeadPool = o.SkbMode == SkbBuildMode.Construct ? SkbBuilder.CreateHeadPool(o.EffectivePoolBuffers) : null;
        _builder = new SkbBuilder(Skbs, HeadPool);
        _batch = new RxDescriptor[Math.Max(o.Weight, 64)];
        _xdp = o.Xdp;
        _mode = o.SkbMode;
        _handler = handler;
    }

    public int Id { get; }
    public PagePool Pool { get; }
    public PagePool? HeadPool { get; }
    public RxRing Ring { get; }
    public SkbPool Skbs { get; }
    public IrqVector Vector { get; internal set; } = null!;
    public XdpCounters Xdp { get; } = new();
    public DropCounters Drops { get; } = new();

    /// <summary>Skbs handed to the stack.</summary>
    public long SkbsBuilt { get; private set; }

    /// <summary>Frames the port offered to this queue, dropped or not.</summary>
    public long Offered;

    /// <summary>Largest ring occupancy the port saw (filled, not yet polled descriptors).</summary>
    public int MaxOccupancy;

    /// <summary>Sum of occupancy samples for the mean.</summary>
    public long OccupancySum;

    /// <summary>Occupancy samples taken (see <see cref="VirtualNic.OccupancySampleMask"/>).</summary>
    public long OccupancySamples;

    public bool HasWork => Ring.Pending > 0;

    public long SkbAllocFailed => _builder.AllocFailed;

    /// <summary>Stopwatch ticks spent in sampled NAPI polls of this queue, everything above the driver included.
    /// One poll in <see cref="TimingSampleEvery"/> is timed (reading the clock costs ~20 ns a call).</summary>
    public long PollTicks { get; private set; }

    /// <summary>Stopwatch ticks of those spent in the stack above the driver (GRO and up).</summary>
    public long StackTicks { get; private set; }

    /// <summary>Packets processed in the sampled polls.</summary>
    public long SampledPackets { get; private set; }

    /// <summary>True while a poll whose time is being sampled runs; stages above time themselves only then.</summary>
    public bool TimingThisPoll { get; private set; }

    public const int TimingSampleEvery = 8;
    private long _polls;

    /// <summary>The driver's NAPI poll: up to <paramref name="budget"/> descriptors through XDP and skb build.</summary>
    public int Poll(int budget)
    {
        bool timed = TimingThisPoll = _polls++ % TimingSampleEvery == 0;
        long t0 = timed ? System.Diagnostics.Stopwatch.GetTimestamp() : 0;
        int done = 0;
        Thread current = Thread.CurrentThread; // for the pools' owner checks: once per poll, not per packet
        while (done < budget)
        {
            int want = Math.Min(budget - done, _batch.Length);
            int n = Ring.Poll(_batch.AsSpan(0, want));
            for (int i = 0; i < n; i++) Process(in _batch[i], current);
            done += n;
            if (n < want) break;
        }
        if (!timed)
        {
            _handler.PollEnd(this, done, budget);
            return done;
        }
        long t1 = System.Diagnostics.Stopwatch.GetTimestamp();
        _handler.PollEnd(this, done, budget);
        long t2 = System.Diagnostics.Stopwatch.GetTimestamp();
        StackTicks += t2 - t1;
        PollTicks += t2 - t0;
        SampledPackets += done;
        TimingThisPoll = false;
        return done;
    }

    private void Process(in RxDescriptor d, Thread current)
    {
        int offset = Pool.Headroom, length = d.Length;
        if (_xdp is not null)
        {
            var ctx = new XdpBuff(Pool.Buffer(d.BufferIndex), offset, length, Id);
            var verdict = _xdp(ref ctx);
            Xdp.Count(verdict);
            if (verdict != XdpAction.Pass)
            {
                // No TX/redirect path yet: those frames leave the receive path like drops do, counted apart.
                Pool.Return(d.BufferIndex);
                switch (verdict)
                {
                    case XdpAction.Drop: Drops.Add(DropReason.XdpDrop); break;
                    case XdpAction.Tx or XdpAction.Redirect: break;
                    default: Drops.Add(DropReason.XdpAborted); break; // ABORTED or an invalid verdict
                }
                return;
            }
            offset = ctx.Data;
            length = ctx.Length;
        }
        Skb? skb = _mode == SkbBuildMode.Build
            ? _builder.BuildSkb(Pool, in d, Id, offset, length, current)
            : _builder.ConstructSkb(Pool, in d, Id, offset, length);
        if (skb is null)
        {
            Drops.Add(DropReason.PoolExhausted);
            return;
        }
        SkbsBuilt++;
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
