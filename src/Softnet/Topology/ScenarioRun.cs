using System.Diagnostics;
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

namespace Softnet.Topology;

/// <summary>`--bind NS:DEV=IFNAME[@NETNS]`: scenario device DEV of namespace NS is the real interface IFNAME (in
/// network namespace NETNS, or in Softnet's own when none is given).</summary>
public sealed record LiveBinding(string Namespace, string Device, string Interface, string? InterfaceNetns)
{
    public static LiveBinding Parse(string text)
    {
        int colon = text.IndexOf(':');
        int eq = text.IndexOf('=');
        if (colon <= 0 || eq < colon + 2 || eq == text.Length - 1)
            throw new ArgumentException($"--bind '{text}': expected NS:DEV=IFNAME or NS:DEV=IFNAME@NETNS");
        string iface = text[(eq + 1)..];
        string? netns = null;
        int at = iface.IndexOf('@');
        if (at >= 0)
        {
            netns = iface[(at + 1)..];
            iface = iface[..at];
            if (iface.Length == 0 || netns.Length == 0) throw new ArgumentException($"--bind '{text}': expected IFNAME@NETNS");
        }
        if (iface.Length > 15) throw new ArgumentException($"--bind '{text}': '{iface}' is longer than an interface name can be (IFNAMSIZ)");
        return new LiveBinding(text[..colon], text[(colon + 1)..eq], iface, netns);
    }

    public override string ToString() => $"{Namespace}:{Device}={Interface}{(InterfaceNetns is null ? "" : "@" + InterfaceNetns)}";
}

/// <summary>Options of `softnet run`.</summary>
public sealed record ScenarioRunOptions
{
    public required IReadOnlyList<LiveBinding> Bindings { get; init; }
    public LivePortKind Port { get; init; } = LivePortKind.Packet;
    /// <summary>Receive queues per port (fanout members or AF_XDP sockets).</summary>
    public int PortQueues { get; init; } = 1;
    public int RingFrames { get; init; } = 4096;
    /// <summary>Allow interfaces of Softnet's own namespace when that is the host's (init) namespace.</summary>
    public bool AllowHost { get; init; }
    /// <summary>Stop after this long (null: until cancelled).</summary>
    public TimeSpan? Duration { get; init; }
    /// <summary>`--capture NS:DEV=FILE`: what the device receives and sends, as pcapng (interfaces "DEV rx" and "DEV tx").</summary>
    public IReadOnlyList<(string Device, string File)> Captures { get; init; } = [];
    /// <summary>The NIC path in front of the scenario (as replay's; GRO off by default as for a scenario replay).</summary>
    public ReplayOptions Replay { get; init; } = new() { Gro = null };
    /// <summary>Called about every <see cref="ProgressEvery"/> with the counters so far.</summary>
    public Action<LiveProgress>? Progress { get; init; }
    public TimeSpan ProgressEvery { get; init; } = TimeSpan.FromSeconds(1);
    /// <summary>Opens a port (the CLI gives PacketPort.Open / XskPort.Open; tests may give their own).</summary>
    public required Func<LivePortKind, LivePortOptions, ILivePort> OpenPort { get; init; }
    /// <summary>Told what the run leaves out of the scenario (the CLI prints it on stderr).</summary>
    public Action<string>? Warning { get; init; }
    /// <summary>Called once the ports are open and the scenario is loaded (the metrics exporter attaches here).</summary>
    public Action<LiveRun>? Started { get; init; }
}

/// <summary>Counters of a running `softnet run`, for the progress line.</summary>
public readonly record struct LiveProgress(TimeSpan Elapsed, long RxPackets, long TxPackets, long Drops, long KernelDrops, double RxPps);

/// <summary>
/// `softnet run --scenario DIR --bind NS:DEV=IFNAME ...`: the scenario's devices bound to real interfaces, and the
/// same path as a replay between them — port → RSS → RX ring → NAPI → (XDP, GRO) → the scenario's stack (bridge,
/// netfilter, conntrack, NAT, routing) → the egress device, whose transmit is the bound port's TX ring. Runs on the
/// calling thread in the order deterministic replay uses, on the wall clock, until cancelled or the duration ends;
/// then drains, and the report, dumps and counters are those of a replay.
/// </summary>
public static class ScenarioRun
{
    public static ScenarioReport Run(string scenarioDir, ScenarioRunOptions options, string? dumpDir, CancellationToken stop)
    {
        if (options.Bindings.Count == 0) throw new ArgumentException("softnet run needs at least one --bind NS:DEV=IFNAME");
        var scenario = ScenarioLoader.Load(scenarioDir);
        var devices = new List<Device>();
        foreach (var b in options.Bindings)
        {
            var ns = scenario.Namespace(b.Namespace) ?? throw new ArgumentException($"--bind {b}: no namespace '{b.Namespace}' in the scenario");
            var dev = ns.Device(b.Device) ?? throw new ArgumentException($"--bind {b}: no device '{b.Device}' in namespace '{b.Namespace}'");
            if (dev.Kind.IsLoopback || dev.Kind.IsBridge) throw new ArgumentException($"--bind {b}: {b.Device} is a {dev.Kind.Name}; only a device with a wire (veth) can be bound");
            if (devices.Contains(dev)) throw new ArgumentException($"--bind {b}: {b.Namespace}:{b.Device} is bound twice");
            devices.Add(dev);
        }
        var seen = new HashSet<(string?, string)>();
        foreach (var b in options.Bindings)
            if (!seen.Add((b.InterfaceNetns, b.Interface))) throw new ArgumentException($"--bind {b}: interface {b.Interface} is bound twice");
        CheckHost(options);
        // RPS/RFS on netif_rx steers between the virtual CPUs of one deterministic engine (replay); a live run's
        // workers each have their own, fed by the ports' queues, so the sysfs settings have nowhere to steer to.
        foreach (var ns in scenario.Namespaces)
            foreach (var dev in ns.Devices)
                if (dev.RpsRx is not null)
                    options.Warning?.Invoke($"ns/{ns.Name}/sysfs: RPS/RFS on {dev.Name} is applied by replay only, not live (spread live traffic with --queues and --cpus)");

        var wires = new List<PortWire>();
        var captures = new List<PcapngWriter>();
        var run = new LiveRun(scenario, wires);
        try
        {
            for (int i = 0; i < options.Bindings.Count; i++)
            {
                var b = options.Bindings[i];
                var port = options.OpenPort(options.Port, new LivePortOptions
                {
                    Interface = b.Interface,
                    Netns = b.InterfaceNetns,
                    Queues = options.PortQueues,
                    RingFrames = options.RingFrames,
                });
                var wire = new PortWire(b, port, devices[i]);
                wires.Add(wire);
                devices[i].BindWire(wire);
            }
            foreach (var (name, file) in options.Captures)
            {
                var dev = ResolveCapture(scenario, name);
                var w = PcapngWriter.Create(file, [new CaptureInterface(LinkType.Ethernet, 262144, dev.Name + " rx", 1_000_000_000),
                    new CaptureInterface(LinkType.Ethernet, 262144, dev.Name + " tx", 1_000_000_000)]);
                captures.Add(w);
                dev.RxTap = new InterfaceTap(w, 0);
                dev.TxTap = new InterfaceTap(w, 1);
            }
            bool dump = !string.IsNullOrEmpty(dumpDir);
            if (dump) foreach (var n in scenario.Namespaces) n.Sockets.StartRecording();
            options.Started?.Invoke(run);
            var report = Loop(scenario, options, wires, run, stop, dump ? dumpDir : null);
            if (dump) ScenarioDump.Write(scenario, dumpDir!, report.EndNs);
            return report;
        }
        finally
        {
            foreach (var w in wires) w.Port.Dispose();
            foreach (var d in devices) d.RxTap = d.TxTap = null;
            foreach (var c in captures) c.Dispose();
        }
    }

    private static Device ResolveCapture(Scenario scenario, string name)
    {
        int colon = name.IndexOf(':');
        if (colon < 0) throw new ArgumentException($"--capture {name}: expected NS:DEV=FILE");
        var ns = scenario.Namespace(name[..colon]) ?? throw new ArgumentException($"--capture {name}: no namespace '{name[..colon]}'");
        return ns.Device(name[(colon + 1)..]) ?? throw new ArgumentException($"--capture {name}: no device '{name[(colon + 1)..]}' in '{ns.Name}'");
    }

    /// <summary>An interface of Softnet's own namespace, when that is the host's, only with --allow-host: a scenario
    /// is meant to sit between namespaces it binds, not to take over the machine's own links.</summary>
    private static void CheckHost(ScenarioRunOptions options)
    {
        if (options.AllowHost) return;
        var local = options.Bindings.Where(b => b.InterfaceNetns is null).ToList();
        if (local.Count == 0 || !InInitNetns()) return;
        throw new ArgumentException($"--bind {local[0]}: {local[0].Interface} is an interface of the host's own network namespace; "
            + "bind interfaces of other namespaces (IFNAME@NETNS), run Softnet inside one (ip netns exec NS softnet run ...), or pass --allow-host");
    }

    private static bool InInitNetns()
    {
        try
        {
            string self = new FileInfo("/proc/self/ns/net").LinkTarget ?? "";
            string init = new FileInfo("/proc/1/ns/net").LinkTarget ?? "";
            return self.Length > 0 && self == init;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true; // cannot tell: assume the host's
        }
    }

    private static ScenarioReport Loop(Scenario scenario, ScenarioRunOptions options, List<PortWire> wires, LiveRun run, CancellationToken stop, string? dumpDir)
    {
        var stack = new NetStack(scenario.Namespaces);
        var report = new ReplayReport { Source = "live: " + string.Join(", ", options.Bindings) };
        // The scenario's global net.core values where the command line gave none.
        options = options with { Replay = scenario.NetCore.ApplyTo(options.Replay) };
        stack.NetdevMaxBacklog = options.Replay.NetdevMaxBacklog;
        var cpus = options.Replay.Cpus;
        int workers = Math.Min(cpus.Count, options.PortQueues);
        var tracer = options.Replay.Tracer;
        if (workers > 1 && tracer is not null)
            throw new ArgumentException($"--trace follows packets through one worker; --cpus gives {workers} (give one CPU, or leave --trace out)");
        // One worker: the whole path on the calling thread, its NIC's queues spread over the CPUs as a replay's are.
        // Several: each worker (pinned to its CPU) owns the port queues q with q % workers == its index, and has
        // its own NIC queue, NAPI and GRO; the scenario's stack is one, entered under a lock (see LiveFront).
        object? gate = workers > 1 ? new object() : null;
        var fronts = new LiveFront[workers];
        for (int w = 0; w < workers; w++)
        {
            var rx = new List<(int Port, int Queue)>();
            for (int p = 0; p < wires.Count; p++)
                for (int q = w; q < wires[p].Port.Queues; q += workers) rx.Add((p, q));
            fronts[w] = new LiveFront(w, workers == 1 ? cpus : [cpus[w]], workers == 1 ? options.Replay.Nic : options.Replay.Nic with { Queues = 1 },
                stack, options, wires, rx, gate);
        }
        run.Attach(stack, fronts, report);

        var clock = Stopwatch.StartNew();
        long Now() => clock.Elapsed.Ticks * 100 + 1;
        long deadline = options.Duration is { } d ? d.Ticks * 100 : long.MaxValue;
        long nextProgress = options.ProgressEvery.Ticks * 100, nextLinkCheck = 0;
        long lastRx = 0;
        using var traceScope = tracer is null ? default : tracer.Activate();
        tracer?.UseClock(() => fronts[0].Engine.NowNs);
        void Supervise(long now)
        {
            if (now >= nextLinkCheck)
            {
                if (gate is null) foreach (var w in wires) w.CheckLink();
                else lock (gate) foreach (var w in wires) w.CheckLink();
                nextLinkCheck = now + 100_000_000;
            }
            if (options.Progress is not null && now >= nextProgress)
            {
                long rx = fronts.Sum(f => f.PacketsIn);
                options.Progress(run.Progress(clock.Elapsed, (rx - lastRx) / options.ProgressEvery.TotalSeconds));
                lastRx = rx;
                nextProgress = now + options.ProgressEvery.Ticks * 100;
            }
        }
        if (workers == 1)
        {
            var f = fronts[0];
            var waiter = new LivePortSet(wires.Select(w => w.Port).ToList());
            int idle = 0;
            while (!stop.IsCancellationRequested)
            {
                long now = Now();
                if (now >= deadline) break;
                Supervise(now);
                int got = f.Turn(now, tracer);
                if (got == 0 && ++idle > 64)
                {
                    // Nothing for a while: sleep in one poll(2) over every port until a frame comes (20 ms at most, so
                    // timers and the stop request are seen).
                    waiter.Wait(20);
                }
                else if (got > 0) idle = 0;
            }
            f.Drain();
        }
        else
        {
            using var done = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var threads = fronts.Select(f => new Thread(() => f.Work(Now, done.Token)) { Name = $"softnet-run-{f.Index}", IsBackground = true }).ToArray();
            foreach (var t in threads) t.Start();
            try
            {
                while (!stop.IsCancellationRequested && threads.All(t => t.IsAlive))
                {
                    long now = Now();
                    if (now >= deadline) break;
                    Supervise(now);
                    stop.WaitHandle.WaitOne(10);
                }
            }
            finally
            {
                // Whatever ends the run, the workers stop (and drain) before the ports can close.
                done.Cancel();
                foreach (var t in threads) t.Join();
            }
            foreach (var f in fronts) f.Failure?.Throw();
        }
        // Stopping: what is in the rings went through; held GRO packets were flushed; readers finish; the ports send the rest.
        stack.Finish();
        foreach (var w in wires)
            for (int q = 0; q < w.Port.Queues; q++) w.Port.FlushTransmit(q);
        foreach (var w in wires) w.CheckLink();

        foreach (var f in fronts)
        {
            report.PacketsIn += f.PacketsIn;
            report.BytesIn += f.BytesIn;
            report.Drops.AddFrom(f.PortDrops);
            foreach (var q in f.Nic.Queues)
            {
                report.Drops.AddFrom(q.Drops);
                report.AggregateSegments += q.AggregateSegments;
            }
            f.Nic.Drain();
            report.Delivered += f.Top.Received;
            report.Drops.AddFrom(f.Top.Drops);
        }
        report.Elapsed = clock.Elapsed;
        report.FirstTimestampNs = 1;
        long lastNs = fronts.Max(f => f.Top.LastNs);
        report.LastTimestampNs = Math.Max(1, lastNs);
        var nics = fronts.Select(f => f.Nic).ToList();
        report.Sections.Add(new NicReportSection(nics));
        report.Sections.Add(new SoftnetReportSection(fronts.Select(f => f.Engine).ToList()));
        var gros = fronts.Select(f => f.Gro).ToList();
        if (gros[0] is not null) report.Sections.Add(gros.Count == 1 ? gros[0]!.TotalStats() : GroStage.TotalStats(gros!));
        report.Sections.Add(new StageTimeSection(nics, gros) { StackStages = stack.Clock });
        long endNs = Math.Max(Now(), lastNs);
        var section = new ScenarioReportSection(scenario, endNs);
        report.Sections.Add(section);
        report.Sections.Add(new SnmpReportSection(scenario.Namespaces.Select(n => (n.Name, n.Mib)).ToList()));
        report.Sections.Add(new SysctlReportSection(scenario.Namespaces.Select(n => (n.Name, (IReadOnlyDictionary<string, string>)n.SysctlsNotModelled)).ToList()));
        report.Sections.Add(new LivePortsSection(wires.Select(w => new LivePortRow(w.Binding, w.Port.Kind, w.Port.Ifindex, w.Port.Queues, w.Stats)).ToList()));
        report.Sections.Add(new LiveWorkersSection(fronts.Select(f => new LiveWorkerRow(f.Index, f.Cpu, f.Pinned, f.PacketsIn, f.Owned)).ToList()));
        return new ScenarioReport { Replay = report, Scenario = scenario, Section = section, EndNs = endNs, DumpDirectory = dumpDir };
    }

    /// <summary>A bound device's wire: the port's queue of the worker that transmits (XPS: a transmit queue per CPU),
    /// its link state checked a few times a second.</summary>
    internal sealed class PortWire(LiveBinding binding, ILivePort port, Device device) : IDeviceWire
    {
        public LiveBinding Binding { get; } = binding;
        public ILivePort Port { get; } = port;
        public Device Device { get; } = device;
        public bool Carrier { get; private set; } = port.LinkUp;

        /// <summary>The transmit queue of the calling thread: a worker sends on its own first queue, whose rings no
        /// other thread touches (0 on the thread that set up or finishes the run).</summary>
        [ThreadStatic] internal static int TxQueue;

        public bool Send(ReadOnlySpan<byte> frame) => Port.Transmit(TxQueue, frame);

        /// <summary>The port's counters as the loop last read them: only the loop's thread touches the port (reading
        /// PACKET_STATISTICS resets the kernel's count, so two readers would lose counts), others read this copy.</summary>
        public LivePortStats Stats { get; private set; }

        /// <summary>A few times a second, on the loop's thread: the carrier and the counters.</summary>
        public void CheckLink()
        {
            Carrier = Port.LinkUp;
            Stats = Port.ReadStats();
        }
    }

    /// <summary>A device tap into one interface of a shared pcapng file (rx and tx of `--capture`).</summary>
    private sealed class InterfaceTap(PcapngWriter writer, int interfaceId) : ICaptureWriter
    {
        public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int id = 0)
            => writer.Write(timestampNs, frame, originalLength, interfaceId);

        public void Flush() => writer.Flush();

        public void Dispose() { }
    }
}

/// <summary>A running `softnet run`, for what watches it from other threads (the metrics exporter, the progress
/// line): the scenario and its counters, read without locks (they are only ever added to).</summary>
public sealed class LiveRun
{
    private readonly List<ScenarioRun.PortWire> _wires;

    internal LiveRun(Scenario scenario, List<ScenarioRun.PortWire> wires)
    {
        Scenario = scenario;
        _wires = wires;
    }

    public Scenario Scenario { get; }
    public NetStack? Stack { get; private set; }
    /// <summary>The first worker's NIC (the only one unless `--cpus` gives several workers).</summary>
    public VirtualNic? Nic => Nics.Count > 0 ? Nics[0] : null;
    /// <summary>Each worker's NIC: their queues make the device's, numbered on in order.</summary>
    public IReadOnlyList<VirtualNic> Nics { get; private set; } = [];
    /// <summary>Each worker's NAPI engine (its CPUs' softnet_stat).</summary>
    public IReadOnlyList<NapiEngine> Engines { get; private set; } = [];
    public ReplayReport? Report { get; private set; }
    private IReadOnlyList<LiveFront> _fronts = [];

    /// <summary>Frames taken from the ports so far, over all workers.</summary>
    public long RxPackets => _fronts.Sum(f => f.PacketsIn);

    /// <summary>Each bound port: its binding, kind and counters as the loop last read them (at most 0.1 s old).</summary>
    public IEnumerable<(LiveBinding Binding, LivePortKind Kind, LivePortStats Stats)> Ports => _wires.Select(w => (w.Binding, w.Port.Kind, w.Stats));

    internal void Attach(NetStack stack, IReadOnlyList<LiveFront> fronts, ReplayReport report)
    {
        Stack = stack;
        _fronts = fronts;
        Nics = fronts.Select(f => f.Nic).ToList();
        Engines = fronts.Select(f => f.Engine).ToList();
        Report = report;
    }

    internal LiveProgress Progress(TimeSpan elapsed, double pps)
    {
        long tx = 0, kernel = 0, drops = _fronts.Sum(f => f.PortDrops.Total);
        foreach (var w in _wires)
        {
            var s = w.Stats;
            tx += s.TxPackets;
            kernel += s.KernelRxDropped;
        }
        foreach (var ns in Scenario.Namespaces) drops += ns.Counters.Drops.Total;
        foreach (var nic in Nics) foreach (var q in nic.Queues) drops += q.Drops.Total;
        return new LiveProgress(elapsed, RxPackets, tx, drops, kernel, pps);
    }
}

/// <summary>The "live_ports" report section: each bound interface and its port's counters at the end of the run, the
/// kernel's drops beside Softnet's own.</summary>
public sealed class LivePortsSection(IReadOnlyList<LivePortRow> rows) : RowsSection<LivePortRow>("live_ports", rows)
{
    protected override void WriteRow(Utf8JsonWriter w, LivePortRow r)
    {
        var s = r.Stats;
        w.WriteString("bind", r.Binding.ToString());
        w.WriteString("port", r.Kind == LivePortKind.Xdp ? "xdp" : "packet");
        w.WriteNumber("ifindex", r.Ifindex);
        w.WriteNumber("queues", r.Queues);
        w.WriteNumber("rx_packets", s.RxPackets);
        w.WriteNumber("rx_bytes", s.RxBytes);
        w.WriteNumber("kernel_rx_dropped", s.KernelRxDropped);
        w.WriteNumber("kernel_rx_ring_full", s.KernelRxRingFull);
        w.WriteNumber("tx_packets", s.TxPackets);
        w.WriteNumber("tx_bytes", s.TxBytes);
        w.WriteNumber("tx_ring_full", s.TxRingFull);
        w.WriteNumber("tx_errors", s.TxErrors);
        w.WriteNumber("link_down_events", s.LinkDownEvents);
    }
}

/// <summary>One bound port at the end of a run.</summary>
public sealed record LivePortRow(LiveBinding Binding, LivePortKind Kind, int Ifindex, int Queues, LivePortStats Stats);
