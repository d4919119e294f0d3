using System.Diagnostics;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;

namespace Softnet.Pipeline;

/// <summary>
/// napi_gro_receive between the driver and the stack: one <see cref="GroEngine"/> per RX queue (GRO state
/// belongs to the NAPI instance), completed skbs passed on to <paramref name="next"/> in the order the kernel
/// passes them up, and the end of each poll run through napi_complete_done's GRO flush.
/// </summary>
public sealed class GroStage : IRxHandler
{
    private readonly IRxHandler _next;
    private readonly GroEngine[] _engines;
    private readonly Sink[] _sinks;
    private readonly RxChecksum _checksum;

    /// <param name="created">Called with each queue's engine once it is made, before any packet (the scenario registers
    /// its UDP tunnel sockets' GRO handlers here).</param>
    /// <param name="deviceChecksums">The NIC checks checksums itself (<see cref="NicOptions.RxChecksum"/>): what its driver
    /// set stands, and <see cref="GroOptions.RxChecksum"/> (a stand-in for a device that is not modelled) is not applied.</param>
    public GroStage(int queues, GroOptions options, IRxHandler next, Action<GroEngine>? created = null, bool deviceChecksums = false)
    {
        _next = next;
        _checksum = deviceChecksums ? RxChecksum.None : options.RxChecksum;
        _engines = new GroEngine[queues];
        GroTicks = new long[queues];
        _warm = new bool[queues];
        _sinks = new Sink[queues];
        for (int i = 0; i < queues; i++)
        {
            var sink = _sinks[i] = new Sink(next, i);
            _engines[i] = sink.Engine = new GroEngine(options, sink);
        }
        Options = options;
        if (created is not null) foreach (var e in _engines) created(e);
    }

    public GroOptions Options { get; }
    public IReadOnlyList<GroEngine> Engines => _engines;

    /// <summary>Stopwatch ticks spent in GRO itself per queue in the sampled polls (the stack above excluded).</summary>
    public long[] GroTicks { get; }
    private readonly bool[] _warm;

    /// <summary>The queue's samples just turned warm (RxQueue.TimingWarm discards the JIT-cold ones): so do GRO's, or
    /// the cold GRO time would be divided by the warm packet count.</summary>
    private void WarmCheck(RxQueue queue)
    {
        if (queue.TimingWarm && !_warm[queue.Id])
        {
            _warm[queue.Id] = true;
            GroTicks[queue.Id] = 0;
        }
    }

    /// <summary>RX queues of the NIC, set by the pipeline so the sink can name the queue to the stack.</summary>
    internal IReadOnlyList<RxQueue>? Queues
    {
        get => _queues;
        set
        {
            _queues = value;
            if (value is not null) foreach (var sink in _sinks) sink.Queue = value[sink.QueueId];
        }
    }
    private IReadOnlyList<RxQueue>? _queues;

    public void Receive(Skb skb, RxQueue queue)
    {
        int q = queue.Id;
        var sink = _sinks[q]; // the queue's engine and clock with it: one bounds-checked load per packet
        if (queue.TimingThisPoll && !sink.Timed) StartTiming(queue, sink);
        // The descriptor's arrival time is GRO's clock: held skbs age in jiffies of it.
        long now = Math.Max(sink.Now, skb.TimestampNs);
        sink.Now = now;
        var engine = sink.Engine!;
        if (engine.TimerDeadlineNs is long deadline && deadline <= now) engine.TimerFired(now);
        skb.ResetMacHeader();
        // A hardware-GRO aggregate arrives CHECKSUM_PARTIAL from the driver and keeps it; so does what a NIC that checks
        // checksums found (then the option is None).
        if (_checksum != RxChecksum.None && skb.IpSummed == CsumState.None) GroReplay.SetChecksumState(skb, _checksum);
        int traceId = skb.TraceId; // the skb may be freed (merged) by the time Receive returns
        var result = engine.Receive(skb, now);
        if (traceId != 0) Telemetry.PacketTracer.Current?.GroReceived(traceId, result, engine.LastMergeTraceId);
    }

    /// <summary>The first call of a sampled poll: the queue already times each call into this stage (its StackTicks), so
    /// GRO's share of the receives is that time less the stack's, taken once at the poll's end instead of two clock
    /// reads per packet.</summary>
    private void StartTiming(RxQueue queue, Sink sink)
    {
        WarmCheck(queue);
        sink.Timed = true;
        sink.StackTicks = 0;
        sink.ReceiveStart = queue.StackTicks;
    }

    public void PollEnd(RxQueue queue, int workDone, int budget)
    {
        int q = queue.Id;
        bool timed = queue.TimingThisPoll;
        var sink = _sinks[q];
        if (timed)
        {
            if (!sink.Timed) StartTiming(queue, sink);
            GroTicks[q] += queue.StackTicks - sink.ReceiveStart - sink.StackTicks;
            sink.StackTicks = 0;
        }
        long t0 = timed ? Stopwatch.GetTimestamp() : 0;
        _engines[q].PollComplete(workDone, budget, sink.Now);
        if (timed) GroTicks[q] += Stopwatch.GetTimestamp() - t0 - sink.StackTicks;
        sink.Timed = false;
        _next.PollEnd(queue, workDone, budget);
    }

    /// <summary>End of the run: every held skb goes up (as at ifdown / a final flush).</summary>
    public void FlushAll()
    {
        for (int q = 0; q < _engines.Length; q++)
        {
            _engines[q].Flush(false, _sinks[q].Now);
            _engines[q].NormalList();
        }
    }

    /// <summary>The counters of all engines summed, for the report's `gro` section.</summary>
    public GroStats TotalStats()
    {
        var total = GroStats.Empty(Options);
        foreach (var e in _engines) total.AddFrom(e.Stats);
        return total;
    }

    /// <summary>The totals of several stages (one per worker of a multi-worker `softnet run`).</summary>
    public static GroStats TotalStats(IReadOnlyList<GroStage> stages)
    {
        var total = GroStats.Empty(stages[0].Options);
        foreach (var s in stages) total.AddFrom(s.TotalStats());
        return total;
    }

    /// <summary>One queue's delivery to the stack, with the time spent below GRO during a sampled poll: queues on
    /// different CPUs run concurrently, but one queue is polled by one thread at a time, so the queue's sink holds it
    /// (a thread-static cost a TLS lookup per packet).</summary>
    private sealed class Sink(IRxHandler next, int queue) : IGroSink
    {
        public readonly int QueueId = queue;
        public RxQueue? Queue;
        public GroEngine? Engine;
        /// <summary>GRO's clock on this queue: the latest descriptor arrival time seen.</summary>
        public long Now;
        public bool Timed;
        public long StackTicks;
        /// <summary>The queue's StackTicks when the sampled poll's first packet came in.</summary>
        public long ReceiveStart;

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            var q = Queue!;
            if (!Timed)
            {
                foreach (var skb in batch) next.Receive(skb, q);
                return;
            }
            long t0 = Stopwatch.GetTimestamp();
            foreach (var skb in batch) next.Receive(skb, q);
            StackTicks += Stopwatch.GetTimestamp() - t0;
        }
    }
}
