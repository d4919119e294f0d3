using System.Runtime.ExceptionServices;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Capture.Live;
using Softnet.Gro;
using Softnet.Link;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using static Softnet.Capture.Live.LiveSyscalls;

namespace Softnet.Topology;

/// <summary>
/// One worker of `softnet run`: the port queues it owns, and the part of the path that is per CPU in the kernel —
/// the NIC's RX queue (ring, page pool, interrupt), NAPI on its CPU, GRO — in front of the scenario's stack, which
/// all workers share. With several workers the stack is entered under one lock, per skb, and everything else a
/// worker touches is its own: its ports' RX rings, its NIC, and the TX queue it sends on (its first queue of each
/// port, as XPS gives each CPU a transmit queue). Rings are read and written by one thread each, so the ports need
/// no locks of their own.
/// </summary>
internal sealed unsafe class LiveFront
{
    private readonly List<ScenarioRun.PortWire> _wires;
    private readonly (int Port, int Queue)[] _rx;
    private readonly object? _gate;
    private readonly NetStack _stack;
    private readonly LiveFrame[] _batch = new LiveFrame[64];
    private readonly PollFd[] _fds;
    private readonly int[] _fdPort;
    private readonly int[] _txQueue;

    public LiveFront(int index, IReadOnlyList<int> cpus, NicOptions nicOptions, NetStack stack, ScenarioRunOptions options,
        List<ScenarioRun.PortWire> wires, IReadOnlyList<(int Port, int Queue)> rx, object? gate)
    {
        Index = index;
        Cpu = cpus[0];
        _wires = wires;
        _rx = [.. rx];
        _gate = gate;
        _stack = stack;
        Engine = new NapiEngine(new NapiEngineOptions
        {
            Mode = NapiMode.Deterministic,
            Cpus = cpus,
            NetdevBudget = options.Replay.NetdevBudget,
            NetdevBudgetUsecs = options.Replay.NetdevBudgetUsecs,
        });
        int queues = nicOptions.Queues;
        Top = new ScenarioStack(queues, stack, id => (uint)id < (uint)wires.Count ? wires[id].Device : null);
        IRxHandler handler = gate is null ? Top : new LockedStack(Top, gate);
        // Each bound interface's GRO knows the UDP tunnel sockets (VXLAN) of the namespace its device is in.
        Gro = options.Replay.Gro is null ? null : new GroStage(queues, options.Replay.Gro, handler, e =>
        {
            options.Replay.GroCreated?.Invoke(e);
            for (int i = 0; i < wires.Count; i++) VxlanLink.RegisterGro(wires[i].Device.Namespace, e, i);
        }, nicOptions.RxChecksum);
        if (Gro is not null) handler = Gro;
        Nic = new VirtualNic(nicOptions, Engine, handler);
        if (Gro is not null) Gro.Queues = Nic.Queues;
        // The rings were filled here, on the thread that set the run up; a worker's first refill makes it the owner.
        if (gate is not null) Nic.ReleasePoolOwnership();
        var fds = new List<PollFd>();
        var fdPorts = new List<int>();
        foreach (var (p, q) in _rx)
            if (wires[p].Port.ReadinessFds is { } r && q < r.Count)
            {
                fds.Add(new PollFd { Fd = r[q], Events = PollIn | PollErr });
                fdPorts.Add(p);
            }
        _fds = [.. fds];
        _fdPort = [.. fdPorts];
        _txQueue = new int[wires.Count];
        for (int p = 0; p < wires.Count; p++) _txQueue[p] = gate is null ? 0 : Array.Find(_rx, r => r.Port == p).Queue;
        Owned = string.Join(",", _rx.Select(r => $"{r.Port}:{r.Queue}"));
    }

    private const short PollIn = 0x001, PollErr = 0x008;

    public int Index { get; }
    public int Cpu { get; }
    public bool Pinned { get; private set; }
    /// <summary>The port queues this worker reads, as "port:queue" pairs (ports in --bind order).</summary>
    public string Owned { get; }
    public NapiEngine Engine { get; }
    public VirtualNic Nic { get; }
    public GroStage? Gro { get; }
    public ScenarioStack Top { get; }
    public DropCounters PortDrops { get; } = new();
    // Written by the worker only; others read them (64-bit reads are atomic).
    private long _packetsIn, _bytesIn;
    public long PacketsIn => Volatile.Read(ref _packetsIn);
    public long BytesIn => Volatile.Read(ref _bytesIn);
    /// <summary>What stopped a worker thread early (rethrown by the run).</summary>
    public ExceptionDispatchInfo? Failure { get; private set; }

    /// <summary>One turn of the loop: every owned queue's batch to the NIC (the only copy), then everything those frames
    /// cause (interrupts, NAPI, GRO, the stack, transmits); with nothing received, the clocks and timers advance.</summary>
    public int Turn(long now, PacketTracer? tracer)
    {
        int got = 0;
        foreach (var (p, q) in _rx)
        {
            var port = _wires[p].Port;
            int n = port.Receive(q, _batch);
            if (n == 0) continue;
            long arrival = Math.Max(now, Engine.NowNs + 1);
            for (int i = 0; i < n; i++)
            {
                var frame = port.Bytes(q, _batch[i]);
                long number = ++_packetsIn;
                _bytesIn += frame.Length;
                // The wire is Ethernet: the port's frames go to the NIC as a capture's would (its DMA copy).
                int traceId = tracer is null ? 0 : tracer.Select(frame, frame.Length, LinkType.Ethernet, arrival, p, number);
                var reason = Nic.Offer(frame, arrival, p, traceId);
                if (reason != DropReason.None)
                {
                    PortDrops.Add(reason);
                    if (traceId != 0) tracer!.Drop(traceId, null, reason);
                }
            }
            port.Release(q);
            got += n;
        }
        if (got > 0) Engine.RunUntilIdle();
        else
        {
            Engine.Step(now);
            if (_gate is null) _stack.AdvanceClock(Math.Max(now, _stack.Now));
            else if (Monitor.TryEnter(_gate))
            {
                // Timers are the stack's: whichever worker is idle runs them (never waiting for the lock to do so).
                try { _stack.AdvanceClock(Math.Max(now, _stack.Now)); }
                finally { Monitor.Exit(_gate); }
            }
        }
        FlushTransmit();
        return got;
    }

    private void FlushTransmit()
    {
        for (int p = 0; p < _wires.Count; p++) _wires[p].Port.FlushTransmit(_txQueue[p]);
    }

    /// <summary>Stopping: the rings' frames go through and GRO's held packets go up.</summary>
    public void Drain()
    {
        Engine.RunUntilIdle();
        Gro?.FlushAll();
        FlushTransmit();
    }

    /// <summary>A worker thread: pinned to its CPU, turns until stopped, waiting in poll(2) on its own queues when idle.</summary>
    public void Work(Func<long> now, CancellationToken stop)
    {
        try
        {
            Pinned = CpuAffinity.TryPinCurrentThread(Cpu, out _);
            ScenarioRun.PortWire.TxQueue = _txQueue.Length > 0 ? _txQueue[0] : 0;
            if (_txQueue.Distinct().Count() > 1)
                throw new InvalidOperationException("ports with different queue counts: a worker's transmit queue differs per port");
            int idle = 0;
            while (!stop.IsCancellationRequested)
            {
                int got = Turn(now(), null);
                if (got > 0) idle = 0;
                else if (++idle > 64) Wait(20);
            }
            Drain();
        }
        catch (Exception e)
        {
            Failure = ExceptionDispatchInfo.Capture(e);
        }
    }

    /// <summary>Sleeps until one of this worker's queues is readable (or <paramref name="timeoutMs"/>). A socket error
    /// (a packet socket's ENETDOWN) is left to the port's own bookkeeping, under the stack's lock, where the link checks
    /// run.</summary>
    private void Wait(int timeoutMs)
    {
        if (_fds.Length == 0)
        {
            Thread.Sleep(1); // ports without descriptors (in memory): look again soon
            return;
        }
        int rc;
        fixed (PollFd* p = _fds)
        {
            for (int i = 0; i < _fds.Length; i++) p[i].Revents = 0;
            rc = poll(p, (nuint)_fds.Length, timeoutMs);
        }
        if (rc <= 0) return;
        for (int i = 0; i < _fds.Length; i++)
            if ((_fds[i].Revents & PollErr) != 0)
            {
                lock (_gate!) _wires[_fdPort[i]].Port.WaitReceive(0);
                break;
            }
    }

    /// <summary>The shared stack behind a lock (taken per skb; GRO's batches and NAPI run outside it).</summary>
    private sealed class LockedStack(ScenarioStack inner, object gate) : IRxHandler
    {
        public void Receive(Skb skb, RxQueue queue)
        {
            lock (gate) inner.Receive(skb, queue);
        }

        public void PollEnd(RxQueue queue, int workDone, int budget) => inner.PollEnd(queue, workDone, budget);
    }
}

/// <summary>The "live_workers" report section: each worker of `softnet run`, its CPU and the port queues it read.</summary>
public sealed class LiveWorkersSection(IReadOnlyList<LiveWorkerRow> rows) : RowsSection<LiveWorkerRow>("live_workers", rows)
{
    protected override void WriteRow(Utf8JsonWriter w, LiveWorkerRow r)
    {
        w.WriteNumber("worker", r.Worker);
        w.WriteNumber("cpu", r.Cpu);
        w.WriteBoolean("pinned", r.Pinned);
        w.WriteNumber("rx_packets", r.RxPackets);
        w.WriteString("port_queues", r.PortQueues);
    }
}

/// <summary>One worker at the end of a run.</summary>
public sealed record LiveWorkerRow(int Worker, int Cpu, bool Pinned, long RxPackets, string PortQueues);
