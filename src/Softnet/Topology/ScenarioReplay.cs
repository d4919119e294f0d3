using Softnet.Link;
using Softnet.Capture;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;

namespace Softnet.Topology;

/// <summary>Options of a scenario replay.</summary>
public sealed record ScenarioOptions
{
    /// <summary>
    /// The NIC path in front of the injected device. GRO defaults to off here (<c>Gro = null</c>): the
    /// injected device is a veth in a kernel-comparison run, and veth does GRO only with XDP or `gro on`.
    /// Pass a GroOptions (CLI: --gro linux) to put GRO back.
    /// </summary>
    public ReplayOptions Replay { get; init; } = new() { Gro = null };

    /// <summary>IP ID written into generated ICMP errors (the kernel's is random).</summary>
    public ushort IcmpErrorIpId { get; init; }
}

/// <summary>What a scenario replay produced: the pipeline's report (with a "scenario" section) and the final scenario state.</summary>
public sealed class ScenarioReport : IDisposable
{
    public required ReplayReport Replay { get; init; }
    public required Scenario Scenario { get; init; }
    public required ScenarioReportSection Section { get; init; }
    /// <summary>The replay clock at the end (the last frame's capture time), for conntrack timeouts.</summary>
    public long EndNs { get; init; }
    public string? DumpDirectory { get; init; }

    /// <summary>The namespaces go away (ip netns del): their conntrack entries return to the slab. Nothing of the
    /// scenario's netfilter state may be read afterwards.</summary>
    public void Dispose()
    {
        foreach (var ns in Scenario.Namespaces) ns.Netfilter.Conntrack.Release();
    }
}

/// <summary>
/// `softnet replay CAPTURE --scenario DIR --inject NS[:DEV] [--dump OUTDIR]`: frames go through the NIC path
/// (port → RSS → ring → NAPI → XDP → skb → optional GRO) and then enter the scenario as received on DEV in
/// namespace NS (without :DEV, on the device named by the frame's pcapng interface, if_name).
/// </summary>
public static class ScenarioReplay
{
    public static ScenarioReport Run(string scenarioDir, string capturePath, string inject, string outDir, ScenarioOptions? options = null)
        => Run(scenarioDir, () => CaptureReader.Open(capturePath), capturePath, inject, outDir, options);

    /// <summary>The same, on frames from <paramref name="open"/> (a generator, or a file opened again for each pass);
    /// <paramref name="capturePath"/> names the source in messages and the report.</summary>
    public static ScenarioReport Run(string scenarioDir, Func<ICaptureReader> open, string capturePath, string inject, string outDir, ScenarioOptions? options = null)
    {
        options ??= new ScenarioOptions();
        var scenario = ScenarioLoader.Load(scenarioDir);
        var (ns, fixedDev) = ParseInject(scenario, inject);

        // Resolve devices up front so a bad if_name is an error, not a silent drop.
        var byInterface = new Dictionary<int, Device>();
        if (fixedDev == null)
        {
            using var scan = open();
            long n = 0;
            while (scan.TryRead(out var meta, out _))
            {
                n++;
                if (byInterface.ContainsKey(meta.InterfaceId)) continue;
                var ifs = scan.Interfaces;
                string? name = meta.InterfaceId < ifs.Count ? ifs[meta.InterfaceId].Name : null;
                if (name == null)
                    throw new ArgumentException($"{capturePath}: frame {n} is on interface #{meta.InterfaceId}, which has no if_name: give --inject {ns.Name}:DEV");
                // An if_name of NS:DEV places the frame in another namespace of the scenario (a capture of several hosts'
                // interfaces, as the default scenario's generator writes one).
                int colon = name.IndexOf(':');
                var home = colon < 0 ? ns : scenario.Namespace(name[..colon])
                    ?? throw new ArgumentException($"{capturePath}: frame {n} arrives on '{name}': no namespace '{name[..colon]}' in the scenario");
                string devName = colon < 0 ? name : name[(colon + 1)..];
                var dev = home.Device(devName) ?? throw new ArgumentException($"{capturePath}: frame {n} arrives on '{name}', which is not a device of namespace '{home.Name}'");
                byInterface[meta.InterfaceId] = dev;
            }
        }

        bool dump = !string.IsNullOrEmpty(outDir);
        if (dump)
        {
            OpenTaps(scenario, outDir);
            foreach (var n in scenario.Namespaces) n.Sockets.StartRecording();
        }
        var stack = new NetStack(scenario.Namespaces) { IcmpErrorIpId = options.IcmpErrorIpId };
        // The scenario's global net.core values where the command line gave none; the netif_rx backlog's limit too.
        var netCore = scenario.NetCore.ApplyTo(options.Replay);
        stack.NetdevMaxBacklog = netCore.NetdevMaxBacklog;
        if (options.Replay.Nic.XdpAttachment is Xdp.XdpBpfAttachment bpf)
        {
            // The program is attached to the injected device: its ifindex, its namespace's routes for bpf_fib_lookup,
            // and that namespace's devices as redirect targets (ndo_xdp_xmit as the device's transmit).
            if (fixedDev is not null) bpf.Ifindex = fixedDev.Ifindex;
            bpf.Fib = new NamespaceBpfFib(ns);
            var targets = new Dictionary<int, Xdp.IXdpTransmit>();
            foreach (var d in ns.Devices) targets[d.Ifindex] = new DeviceXdpTransmit(stack, d);
            bpf.Devices = ifindex => targets.GetValueOrDefault(ifindex);
        }
        ScenarioStack? top = null;
        // One thread, fixed order: the scenario state is not shared between NAPI workers.
        var replayOptions = netCore with
        {
            Mode = ReplayMode.Deterministic,
            EngineCreated = engine =>
            {
                options.Replay.EngineCreated?.Invoke(engine);
                Func<long> offset = () => (top?.BaseNs ?? 1) - 1;
                // Readers pinned with `cpu N` share their CPU with softirq when reads cost CPU time.
                if (options.Replay.ReaderNsPerByte > 0 || options.Replay.ReaderNsPerRead > 0)
                    stack.ReaderCpus = new Transport.SocketReaderCpus(engine, stack, options.Replay.ReaderNsPerByte, options.Replay.ReaderNsPerRead, offset);
                else if (options.Replay.ReadersPerRound)
                {
                    stack.DeferReaders = true;
                    engine.RoundClosing += _ => stack.RunReaders();
                }
                // netif_rx on the engine's CPUs: RPS/RFS set on scenario devices (ns/NAME/sysfs) steers to the CPUs'
                // backlogs, and softnet_stat counts what each CPU processed; the global settings (netdev_max_backlog,
                // rps_sock_flow_entries, the flow limit) are the replay's.
                stack.RpsSteering = new Steering.NetifRxSteering(engine, stack, netCore.Rps ?? new Steering.RpsOptions
                {
                    NetdevMaxBacklog = netCore.NetdevMaxBacklog,
                    BacklogWeight = scenario.NetCore.DevWeight ?? 64,
                    SockFlowEntries = scenario.NetCore.RpsSockFlowEntries ?? 0,
                });
            },
            Stack = queues => top = new ScenarioStack(queues, stack, id => fixedDev ?? (byInterface.TryGetValue(id, out var d) ? d : null)),
            // The NIC's GRO finds the UDP tunnel sockets (VXLAN) of the namespace its packets arrive in.
            GroCreated = engine =>
            {
                options.Replay.GroCreated?.Invoke(engine);
                if (fixedDev is not null) VxlanLink.RegisterGro(fixedDev.Namespace, engine);
                else foreach (var (id, d) in byInterface) VxlanLink.RegisterGro(d.Namespace, engine, id);
            },
        };
        ReplayReport report;
        long endNs;
        // The trace follows packets through the scenario's stack too, to the timers its end runs.
        PacketTracer.Scope? traceScope = options.Replay.Tracer?.Activate();
        try
        {
            using var reader = new FirstTimestampReader(open());
            var pipeline = new ReplayPipeline(replayOptions);
            report = pipeline.Run(new LazyBase(reader, () => top!), capturePath);
            stack.Finish();
            endNs = Math.Max(report.LastTimestampNs, top?.LastNs ?? 0);
            report.Delivered = top?.Received ?? 0;
            if (top != null) report.Drops.AddFrom(top.Drops);
        }
        finally
        {
            traceScope?.Dispose();
            if (dump) CloseTaps(scenario);
        }
        foreach (var t in report.Sections.OfType<StageTimeSection>()) t.StackStages = stack.Clock;
        var section = new ScenarioReportSection(scenario, endNs);
        report.Sections.Add(section);
        report.Sections.Add(new SnmpReportSection(scenario.Namespaces.Select(n => (n.Name, n.Mib)).ToList()));
        report.Sections.Add(new SysctlReportSection(scenario.Namespaces.Select(n => (n.Name, (IReadOnlyDictionary<string, string>)n.SysctlsNotModelled)).ToList()));
        if (dump) ScenarioDump.Write(scenario, outDir, endNs);
        return new ScenarioReport { Replay = report, Scenario = scenario, Section = section, EndNs = endNs, DumpDirectory = dump ? outDir : null };
    }

    /// <summary>A scenario device as an XDP redirect target: the frame becomes an skb sent out of the device.</summary>
    private sealed class DeviceXdpTransmit(NetStack stack, Device dev) : Xdp.IXdpTransmit
    {
        public bool Transmit(ReadOnlySpan<byte> frame, long nowNs)
        {
            var skb = stack.SkbFrom(frame);
            return skb is not null && stack.Transmit(dev, skb) == DropReason.None;
        }
    }

    /// <summary>"NS" or "NS:DEV".</summary>
    public static (Namespace Ns, Device? Dev) ParseInject(Scenario scenario, string inject)
    {
        int colon = inject.IndexOf(':');
        string nsName = colon < 0 ? inject : inject[..colon];
        var ns = scenario.Namespace(nsName) ?? throw new ArgumentException($"--inject: no namespace '{nsName}' in the scenario");
        if (colon < 0) return (ns, null);
        string devName = inject[(colon + 1)..];
        var dev = ns.Device(devName) ?? throw new ArgumentException($"--inject: no device '{devName}' in namespace '{nsName}'");
        return (ns, dev);
    }

    private static void OpenTaps(Scenario scenario, string outDir)
    {
        foreach (var ns in scenario.Namespaces)
        {
            string dir = Path.Combine(outDir, ns.Name);
            System.IO.Directory.CreateDirectory(dir);
            foreach (var d in ns.Devices)
            {
                if (d.Kind.IsLoopback) continue;
                // tcpdump -w writes microsecond pcap, snaplen 262144, LINKTYPE_ETHERNET.
                d.RxTap = PcapWriter.Create(Path.Combine(dir, d.Name + ".rx.pcap"), LinkType.Ethernet, nanosecond: false);
                d.TxTap = PcapWriter.Create(Path.Combine(dir, d.Name + ".tx.pcap"), LinkType.Ethernet, nanosecond: false);
            }
        }
    }

    private static void CloseTaps(Scenario scenario)
    {
        foreach (var ns in scenario.Namespaces)
            foreach (var d in ns.Devices)
            {
                d.RxTap?.Dispose();
                d.TxTap?.Dispose();
                d.RxTap = d.TxTap = null;
            }
    }

    /// <summary>Tells the stack the capture's first timestamp once it is known (arrival times are relative to it).</summary>
    private sealed class LazyBase(FirstTimestampReader inner, Func<ScenarioStack> stack) : ICaptureReader
    {
        public IReadOnlyList<CaptureInterface> Interfaces => inner.Interfaces;
        public long Position => inner.Position;

        public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
        {
            bool ok = inner.TryRead(out meta, out data);
            if (ok && inner.Count == 1) stack().BaseNs = meta.TimestampNs;
            return ok;
        }

        public void Dispose() => inner.Dispose();
    }

    private sealed class FirstTimestampReader(ICaptureReader inner) : ICaptureReader
    {
        public long Count;
        public IReadOnlyList<CaptureInterface> Interfaces => inner.Interfaces;
        public long Position => inner.Position;

        public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
        {
            bool ok = inner.TryRead(out meta, out data);
            if (ok) Count++;
            return ok;
        }

        public void Dispose() => inner.Dispose();
    }
}

/// <summary>
/// The stack above the NIC for a scenario replay: each skb is received on its scenario device (chosen by
/// <see cref="Skb.Ifindex"/>, the capture interface id) and travels on as the same skb. Single-threaded use only
/// (deterministic mode).
/// </summary>
public sealed class ScenarioStack : IRxHandler, Steering.IRfsReader
{
    /// <summary>RFS: the scenario's socket readers record their flows here.</summary>
    public Steering.RpsSockFlowTable? RpsSockFlows { get => _stack.RpsSockFlows; set => _stack.RpsSockFlows = value; }

    private readonly NetStack _stack;
    private readonly Func<int, Device?> _device;

    public ScenarioStack(int queues, NetStack stack, Func<int, Device?> device)
    {
        _stack = stack;
        _device = device;
    }

    /// <summary>Capture time of the first frame; skb timestamps count from 1 ns after it.</summary>
    public long BaseNs { get; set; }
    public long LastNs { get; private set; }
    /// <summary>Frames (GRO segments counted) handed to the scenario.</summary>
    public long Received { get; private set; }
    public DropCounters Drops { get; } = new();

    public void Receive(Skb skb, RxQueue queue)
    {
        int segments = skb.GsoSegs > 1 ? skb.GsoSegs : 1;
        var dev = _device(skb.Ifindex);
        if (dev == null)
        {
            Drops.Add(DropReason.NotSpecified, segments);
            if (skb.TraceId != 0) PacketTracer.Current?.Drop(skb.TraceId, null, DropReason.NotSpecified);
            skb.Free();
            return;
        }
        // The driver's eth_type_trans pulled the MAC header: the device's own receive path starts before it.
        int mac = GroTap.MacLength(skb);
        if (mac > 0) skb.Push(mac);
        long ts = BaseNs + skb.TimestampNs - 1;
        if (ts > LastNs) LastNs = ts;
        Received += segments;
        _stack.Clock.StartPacket(queue.TimingThisPoll, queue.TimingWarm, segments);
        _stack.Receive(dev, skb, ts);
        _stack.Clock.EndPacket();
    }

    public void PollEnd(RxQueue queue, int workDone, int budget) { }

    /// <summary>A frame further down the batch: its conntrack bucket is asked of memory while earlier ones go up the
    /// stack.</summary>
    public void Lookahead(ReadOnlySpan<byte> frame, int ifindex)
    {
        // The frame looked ahead at before this one: its bucket has had a frame's time to land, so its first entry
        // can be asked for now (a dependent miss the lookup would otherwise wait for).
        if (_pendingTable is { } pending)
        {
            pending.PrefetchEntry(_pendingBucket);
            _pendingTable = null;
        }
        var dev = _device(ifindex);
        if (dev == null || !dev.Namespace.HasIptables) return;
        var table = dev.Namespace.Netfilter.Conntrack;
        int bucket = table.PrefetchForFrame(frame);
        if (bucket >= 0) (_pendingTable, _pendingBucket) = (table, bucket);
    }

    private Netfilter.Conntrack.ConntrackTable? _pendingTable;
    private int _pendingBucket;
}
