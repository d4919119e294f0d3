using System.Diagnostics;
using Softnet.Capture;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Pipeline;

/// <summary>How the replay runs the path.</summary>
public enum ReplayMode
{
    /// <summary>One thread, fixed order, virtual time from the capture (or the rate): counters repeat exactly.</summary>
    Deterministic,
    /// <summary>One NAPI worker thread per CPU, the port on the calling thread, real time.</summary>
    Threaded,
}

/// <summary>Options of a replay run.</summary>
public sealed record ReplayOptions
{
    /// <summary>Called now and then with (frames so far, reader position in bytes).</summary>
    public Action<long, long>? Progress { get; init; }

    /// <summary>How many frames between progress callbacks.</summary>
    public int ProgressEvery { get; init; } = 16384;

    public ReplayMode Mode { get; init; } = ReplayMode.Deterministic;

    public NicOptions Nic { get; init; } = new();

    /// <summary>CPUs running NAPI (softirq) work; real CPU ids in threaded mode.</summary>
    public IReadOnlyList<int> Cpus { get; init; } = [0];

    /// <summary>Arrival pacing: null follows the capture's clock; a rate spaces frames evenly (max: no spacing).</summary>
    public Rate? Rate { get; init; }

    /// <summary>net.core.netdev_budget.</summary>
    public int NetdevBudget { get; init; } = 300;

    /// <summary>net.core.netdev_max_backlog for a scenario's netif_rx backlog (RPS's per-CPU backlogs take
    /// <see cref="Steering.RpsOptions.NetdevMaxBacklog"/>).</summary>
    public int NetdevMaxBacklog { get; init; } = 1000;

    /// <summary>The net.core sysctl keys the command line set explicitly (--budget: net.core.netdev_budget, ...): a
    /// scenario's value for them (Topology.NetCoreSysctls) gives way.</summary>
    public IReadOnlySet<string> GivenOnCommandLine { get; init; } = new HashSet<string>();

    /// <summary>net.core.netdev_budget_usecs.</summary>
    public int NetdevBudgetUsecs { get; init; } = 2000;

    /// <summary>Deterministic mode's CPU cost model: virtual nanoseconds per packet polled.</summary>
    public long PollCostNs { get; init; }

    /// <summary>Pin NAPI worker threads to their CPUs (threaded mode).</summary>
    public bool PinThreads { get; init; } = true;

    /// <summary>Threaded mode: idle NAPI workers spin instead of sleeping until an interrupt (busy polling),
    /// trading a CPU for the wake-up latency of a sleeping thread.</summary>
    public bool BusyPoll { get; init; }

    /// <summary>Makes the stack above the driver; default: decode and count (<see cref="DecodeStack"/>).</summary>
    public Func<int, IRxHandler>? Stack { get; init; }

    /// <summary>GRO between the driver and the stack; null is `ethtool -K DEV gro off`.</summary>
    public Gro.GroOptions? Gro { get; init; } = new();

    /// <summary>Scenario readers with `cpu N`: CPU time per byte a read copies (0 with <see cref="ReaderNsPerRead"/> 0:
    /// readers take no CPU time and read at once).</summary>
    public double ReaderNsPerByte { get; init; }
    /// <summary>Scenario readers with `cpu N`: CPU time per read (the system call and wake-up).</summary>
    public long ReaderNsPerRead { get; init; }

    /// <summary>Readers that take no CPU time read once per net_rx_action round, what the round queued for them, rather
    /// than after each frame: a reader behind a busy softirq, which TCP sees (the window does not grow for data still
    /// unread, so __tcp_ack_snd_check leaves the ACKs to the reads' tcp_cleanup_rbuf, on the reader's CPU).</summary>
    public bool ReadersPerRound { get; init; }

    /// <summary>Called with the NAPI engine once it is made, before any frame (a scenario puts its readers' CPUs on it).</summary>
    public Action<NapiEngine>? EngineCreated { get; init; }

    /// <summary>Called with each RX queue's GRO engine once it is made, before any frame: the stack above registers its
    /// UDP tunnel sockets' GRO handlers (<see cref="Gro.GroEngine.AddUdpTunnel"/>) as the kernel's tunnel devices do
    /// when their sockets open.</summary>
    public Action<Gro.GroEngine>? GroCreated { get; init; }

    /// <summary>RPS/RFS between GRO and the stack (null or not enabled: none), deterministic mode only.</summary>
    public Steering.RpsOptions? Rps { get; init; }

    /// <summary>Write every packet leaving the receive stage (post-GRO) to this pcap/pcapng file.</summary>
    public string? TapPath { get; init; }

    /// <summary>Write every XDP_TX frame (and every redirected one without a device of its own) to this pcap/pcapng
    /// file: the port's transmit side (`softnet replay --xdp-tx FILE`).</summary>
    public string? XdpTxPath { get; init; }

    /// <summary>`--trace EXPR`: the packets whose journeys are recorded (deterministic mode; a threaded replay runs
    /// without it).</summary>
    public PacketTracer? Tracer { get; init; }
}

/// <summary>
/// Replays frames from a capture (or the generator) through the path: port → RSS → RX ring → interrupt →
/// NAPI poll (XDP, skb build) → the stack. Bad frames become counted drops; a broken file ends the run with
/// <see cref="ReplayReport.CaptureError"/> set and every frame before the damage counted.
/// </summary>
public sealed class ReplayPipeline(ReplayOptions options)
{
    public ReplayReport Run(ICaptureReader reader, string sourceName)
    {
        var report = new ReplayReport { Source = sourceName };
        var engine = new NapiEngine(new NapiEngineOptions
        {
            Mode = options.Mode == ReplayMode.Deterministic ? NapiMode.Deterministic : NapiMode.Threaded,
            Cpus = options.Cpus,
            NetdevBudget = options.NetdevBudget,
            NetdevBudgetUsecs = options.NetdevBudgetUsecs,
            NsPerPacket = options.PollCostNs,
            PinThreads = options.PinThreads,
            BusyPoll = options.BusyPoll,
        });
        options.EngineCreated?.Invoke(engine);
        int maxFrame = options.Nic.BufferSize;
        int queues = options.Nic.Queues;
        var stack = options.Stack?.Invoke(queues) ?? new DecodeStack(queues);
        IRxHandler top = stack;
        TapStage? tap = options.TapPath is null ? null : new TapStage(options.TapPath, queues, stack);
        if (tap is not null) top = tap;
        // RPS runs where netif_receive_skb_list_internal does: after GRO, before the taps and the protocols.
        Steering.RpsStage? rps = options.Rps is { Enabled: true } ? new Steering.RpsStage(engine, queues, options.Rps, top) : null;
        if (rps is not null)
        {
            if (stack is Steering.IRfsReader rfs) rfs.RpsSockFlows = rps.SockFlows;
            top = rps;
        }
        GroStage? gro = options.Gro is null ? null : new GroStage(queues, options.Gro, top, options.GroCreated, options.Nic.RxChecksum);
        if (gro is not null) top = gro;
        var xdpTx = options.XdpTxPath is null ? null : new Xdp.XdpTxCapture(CaptureWriter.Create(options.XdpTxPath, LinkType.Ethernet));
        var nic = new VirtualNic(xdpTx is null ? options.Nic : options.Nic with { XdpTransmit = xdpTx }, engine, top);
        if (gro is not null) gro.Queues = nic.Queues;
        if (options.Mode == ReplayMode.Threaded) nic.OccupancySampleMask = 15;
        var scratch = new byte[Math.Max(maxFrame, 65536 + 64)];
        var snapScratch = new byte[65536 + 64];
        var portDrops = report.Drops;
        bool deterministic = options.Mode == ReplayMode.Deterministic;
        var rate = options.Rate;
        int every = Math.Max(1, options.ProgressEvery);
        int untilProgress = every; // counted down: a division per frame cost more than the test it guards
        // The tracer follows packets on this thread: deterministic mode runs the whole path here.
        var tracer = deterministic ? options.Tracer : null;
        PacketTracer.Scope? traceScope = tracer?.Activate();
        tracer?.UseClock(() => engine.NowNs);

        long packets = 0, bytes = 0;
        long firstTs = 0;
        double virtualNs = 0;
        long startTicks = 0;
        long burstNs = -1; // threaded: the current burst's timestamp, -1 between bursts
        int inBurst = 0;
        var sw = Stopwatch.StartNew();
        int[]? savedAffinity = null;
        if (!deterministic)
        {
            engine.Start();
            savedAffinity = PinPortThread(options);
        }
        try
        {
            while (reader.TryRead(out var meta, out var frame))
            {
                if (packets == 0)
                {
                    firstTs = meta.TimestampNs;
                    if (tap is not null) tap.TimeBaseNs = firstTs - 1; // the path's clock starts at 1 ns
                    if (xdpTx is not null) xdpTx.TimeBaseNs = firstTs - 1;
                    report.FirstTimestampNs = meta.TimestampNs;
                    startTicks = Stopwatch.GetTimestamp();
                }
                report.LastTimestampNs = meta.TimestampNs;
                packets++;
                bytes += frame.Length;

                // Arrival time relative to the first frame, on the capture's clock or the requested rate.
                // Virtual time starts at 1 ns so that "everything due before the first frame" is a real instant.
                long arrival;
                if (rate is null) arrival = 1 + Math.Max(0, meta.TimestampNs - firstTs);
                else
                {
                    arrival = 1 + (long)virtualNs;
                    virtualNs += rate.Value.IsMax ? 0 : SpacingNs(rate.Value, frame.Length);
                }

                // The trace's filter sees the frame as tcpdump -r would: the captured bytes, the length on the wire.
                int traceId = tracer is null ? 0 : tracer.Select(frame, Math.Max(meta.OriginalLength, frame.Length), meta.LinkType, arrival, meta.InterfaceId, packets);

                // A capture taken with a snap length holds only the head of long frames. The wire carried the
                // whole frame, so the port restores its length with zeros: headers and byte counts stay true
                // (checksums over the lost payload cannot).
                if (meta.OriginalLength > frame.Length && frame.Length > 0)
                {
                    int full = Math.Min(meta.OriginalLength, snapScratch.Length);
                    frame.CopyTo(snapScratch);
                    snapScratch.AsSpan(frame.Length, full - frame.Length).Clear();
                    frame = snapScratch.AsSpan(0, full);
                    report.SnappedFrames++;
                }
                // An Ethernet capture (nearly every one) needs no adapting: no call per frame for it.
                int len = frame.Length;
                bool adapted = false;
                var reason = meta.LinkType == LinkType.Ethernet ? DropReason.None
                    : LinkAdapter.ToEthernet(meta.LinkType, frame, scratch, out len, out adapted);
                if (reason == DropReason.None)
                {
                    var ethernet = adapted ? scratch.AsSpan(0, len) : frame;
                    if (deterministic)
                    {
                        // Run what was due before this instant, not at it: frames sharing a capture timestamp
                        // all land in the ring before NAPI polls, so they arrive within one poll.
                        engine.Step(arrival - 1);
                        reason = nic.Offer(ethernet, arrival, meta.InterfaceId, traceId);
                    }
                    else
                    {
                        // The port writes frames in bursts and raises each queue's interrupt once per burst: when the
                        // burst is full, and before waiting for a frame that is not due yet.
                        if ((rate is null || !rate.Value.IsMax) && !IsDue(startTicks, arrival))
                        {
                            if (burstNs >= 0) nic.EndBurst(burstNs);
                            burstNs = -1;
                            inBurst = 0;
                            WaitUntil(startTicks, arrival);
                        }
                        if (burstNs < 0) burstNs = engine.NowNs;
                        reason = nic.OfferInBurst(ethernet, burstNs, meta.InterfaceId);
                        if (++inBurst == PortBurst)
                        {
                            nic.EndBurst(burstNs);
                            burstNs = -1;
                            inBurst = 0;
                        }
                    }
                }
                if (reason != DropReason.None)
                {
                    portDrops.Add(reason);
                    if (traceId != 0) tracer!.Drop(traceId, null, reason);
                }
                if (--untilProgress == 0)
                {
                    untilProgress = every;
                    options.Progress?.Invoke(packets, reader.Position);
                }
            }
        }
        catch (CaptureFormatException e)
        {
            report.CaptureError = e.Message;
        }
        finally
        {
            if (deterministic) engine.RunUntilIdle();
            else
            {
                nic.EndBurst(engine.NowNs);
                engine.Stop();
            }
            if (savedAffinity is not null) CpuAffinity.TrySetCurrentThreadAffinity(savedAffinity);
            gro?.FlushAll();
            tap?.Dispose();
            xdpTx?.Dispose();
            traceScope?.Dispose();
        }
        sw.Stop();

        long delivered = 0;
        foreach (var q in nic.Queues)
        {
            report.Drops.AddFrom(q.Drops);
            report.XdpTx += q.Xdp.Tx;
            report.XdpRedirect += q.Xdp.Redirect;
            report.AggregateSegments += q.AggregateSegments;
            if (stack is DecodeStack ds)
            {
                delivered += ds.Delivered(q.Id);
                report.Protocols.AddFrom(ds.Protocols(q.Id));
            }
        }
        nic.Drain();
        report.PacketsIn = packets;
        report.BytesIn = bytes;
        report.Delivered = delivered;
        report.Elapsed = sw.Elapsed;
        report.Sections.Add(new NicReportSection(nic));
        report.Sections.Add(new SoftnetReportSection(engine));
        if (gro is not null) report.Sections.Add(gro.TotalStats());
        report.Sections.Add(new StageTimeSection(nic, gro));
        Nic = nic;
        Gro = gro;
        Engine = engine;
        options.Progress?.Invoke(packets, reader.Position);
        return report;
    }

    /// <summary>The NIC of the last run (for tables and tests).</summary>
    public VirtualNic? Nic { get; private set; }

    /// <summary>The GRO stage of the last run (null with GRO off).</summary>
    public GroStage? Gro { get; private set; }

    /// <summary>The NAPI engine of the last run.</summary>
    public NapiEngine? Engine { get; private set; }

    /// <summary>Time one frame occupies at <paramref name="rate"/>: bits on the wire (with 24 bytes of
    /// preamble, IFG and FCS, as the generator counts them) or 1/pps.</summary>
    internal static double SpacingNs(Rate rate, int frameLength)
        => rate.IsPacketRate
            ? 1e9 / rate.PacketsPerSecond
            : (frameLength + 24) * 8 * 1e9 / rate.BitsPerSecond;

    /// <summary>
    /// The port plays the NIC's DMA engine, which does not compete with softirq for a CPU: run it on a CPU
    /// that no NAPI worker uses, when the machine has one. Returns the affinity to restore afterwards.
    /// </summary>
    private static int[]? PinPortThread(ReplayOptions options)
    {
        if (!options.PinThreads) return null;
        var allowed = CpuAffinity.CurrentThreadAffinity()?.ToArray();
        if (allowed is null) return null;
        int free = Array.FindIndex(allowed, c => !options.Cpus.Contains(c));
        if (free < 0) return null;
        return CpuAffinity.TryPinCurrentThread(allowed[free], out _) ? allowed : null;
    }

    /// <summary>Threaded mode: frames the port writes before it raises the interrupts of a burst (as a NIC's
    /// descriptor write-back or a socket ring's batch hands over several frames at once).</summary>
    internal const int PortBurst = 32;

    private static bool IsDue(long startTicks, long offsetNs) => Stopwatch.GetTimestamp() >= TicksAt(startTicks, offsetNs);

    // Whole seconds apart, so a capture hours long does not overflow (ns x a 1 GHz frequency passes 2^63 at 9 s).
    private static long TicksAt(long startTicks, long offsetNs)
        => startTicks + offsetNs / 1_000_000_000 * Stopwatch.Frequency + offsetNs % 1_000_000_000 * Stopwatch.Frequency / 1_000_000_000;

    private static void WaitUntil(long startTicks, long offsetNs)
    {
        long target = TicksAt(startTicks, offsetNs);
        while (true)
        {
            long now = Stopwatch.GetTimestamp();
            long left = target - now;
            if (left <= 0) return;
            // Sleep through long gaps, spin through short ones (sub-millisecond pacing needs a spin).
            if (left > Stopwatch.Frequency / 500) Thread.Sleep(1);
            else Thread.SpinWait(20);
        }
    }
}
