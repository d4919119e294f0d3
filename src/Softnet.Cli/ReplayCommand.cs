using System.CommandLine;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Xdp;
using Spectre.Console;

namespace Softnet.Cli;

/// <summary>`softnet replay [CAPTURE]`: runs a capture (or the embedded default scenario) through the path.</summary>
public static class ReplayCommand
{
    /// <summary>Traced packets the HTML report shows (the rest are in --trace-json / --trace-pcapng).</summary>
    private const int ReportTracePackets = 200;

    public static Command Create()
    {
        var capture = new Argument<string?>("capture")
        {
            Description = "pcap or pcapng file; without it, the embedded default: two Kubernetes nodes with flannel VXLAN, iperf3 streams native->native and pod->pod generated on the fly into node B",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var json = new Option<string?>("--json") { Description = "write a machine-readable report to FILE" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "print no summary" };
        var noProgress = new Option<bool>("--no-progress") { Description = "no progress bar even on a terminal" };
        var queues = new Option<int>("--queues") { Description = "RX queues (ethtool -L combined N)", DefaultValueFactory = _ => 1 };
        var cpus = new Option<string>("--cpus") { Description = "CPUs running NAPI, e.g. 0,1 or 0-3", DefaultValueFactory = _ => "0" };
        var mtu = new Option<int>("--mtu") { Description = $"device MTU (ip link set DEV mtu N), {NicOptions.DefaultMtu} by default, up to {NicOptions.MaxMtu}: longer frames are dropped as oversize, frames past one RX buffer span several descriptors", DefaultValueFactory = _ => NicOptions.DefaultMtu };
        var rxChecksum = new Option<string>("--rx-checksum") { Description = "receive checksum offload (ethtool -K DEV rx): on, the port checks IP and TCP/UDP checksums as ice does and the clean frames arrive CHECKSUM_UNNECESSARY (GRO and the stack sum nothing; failures counted as rx_csum_bad.nic); off, every frame arrives CHECKSUM_NONE, as from a veth", DefaultValueFactory = _ => "on" };
        rxChecksum.AcceptOnlyFromAmong("on", "off");
        var aggregates = new Option<string>("--aggregates") { Description = "TCP frames longer than the MTU, as captures on GRO/TSO hosts hold (up to 64 KB): accept (whole, as hardware-GRO aggregates: GSO skbs) or drop (oversize, like any long frame)", DefaultValueFactory = _ => "accept" };
        aggregates.AcceptOnlyFromAmong("accept", "drop");
        var ring = new Option<int>("--ring") { Description = "descriptors per RX ring (ethtool -G rx N)", DefaultValueFactory = _ => RxRing.DefaultSize };
        var budget = new Option<int>("--budget") { Description = "net.core.netdev_budget (given, it wins over a scenario's sysctl.conf)", DefaultValueFactory = _ => 300 };
        var budgetUsecs = new Option<int>("--budget-usecs") { Description = "net.core.netdev_budget_usecs (given, it wins over a scenario's sysctl.conf)", DefaultValueFactory = _ => 2000 };
        var weight = new Option<int>("--weight") { Description = "NAPI weight per queue", DefaultValueFactory = _ => 64 };
        var skb = new Option<string>("--skb") { Description = "skb build path: build (zero copy) or construct (copy headers)", DefaultValueFactory = _ => "build" };
        skb.AcceptOnlyFromAmong("build", "construct");
        var irqUsecs = new Option<int>("--irq-usecs") { Description = "interrupt moderation rx-usecs (ice's default 50; 0 = an interrupt per frame)", DefaultValueFactory = _ => 50 };
        var irqFrames = new Option<int>("--irq-frames") { Description = "interrupt moderation rx-frames", DefaultValueFactory = _ => 0 };
        var rate = new Option<string?>("--rate") { Description = "offered rate: e.g. 10Gbit, 14.88Mpps, max (default: the capture's clock)" };
        var clock = new Option<string?>("--clock") { Description = "arrival times: capture (timestamps in the file, the default) or rate (--rate)" };
        clock.AcceptOnlyFromAmong("capture", "rate");
        var mode = new Option<string>("--mode") { Description = "deterministic (one thread, virtual time) or threaded (a worker per CPU)", DefaultValueFactory = _ => "deterministic" };
        mode.AcceptOnlyFromAmong("deterministic", "threaded");
        var deterministic = new Option<bool>("--deterministic") { Description = "same as --mode deterministic" };
        var pollCost = new Option<long>("--poll-cost-ns") { Description = "deterministic mode: virtual CPU nanoseconds per packet polled", DefaultValueFactory = _ => 0 };
        var rpsCpus = new Option<string?>("--rps-cpus") { Description = "RPS: hex CPU mask written to every RX queue's rps_cpus (e.g. 2 or 3); deterministic mode" };
        var rpsFlowCnt = new Option<int>("--rps-flow-cnt") { Description = "RFS: rps_flow_cnt of every RX queue (with --rps-sock-flow-entries)" };
        var rpsSockFlows = new Option<int>("--rps-sock-flow-entries") { Description = "RFS: net.core.rps_sock_flow_entries (readers' CPUs from the scenario's sockets, `cpu N`)" };
        var maxBacklog = new Option<int>("--netdev-max-backlog") { Description = "net.core.netdev_max_backlog: the per-CPU backlog RPS fills, and netif_rx's in a scenario (given, it wins over the scenario's sysctl.conf)", DefaultValueFactory = _ => 1000 };
        var flowLimitCpus = new Option<string?>("--flow-limit-cpus") { Description = "net.core.flow_limit_cpu_bitmap: hex mask of CPUs whose backlog limits single flows" };
        var readerPerByte = new Option<double>("--reader-ns-per-byte") { Description = "scenario readers with `cpu N`: CPU ns per byte a read copies; the reader then shares its CPU with softirq (deterministic mode)" };
        var readerPerRead = new Option<long>("--reader-ns-per-read") { Description = "scenario readers with `cpu N`: CPU ns per read (system call, wake-up)" };
        var busyPoll = new Option<bool>("--busy-poll") { Description = "threaded mode: idle NAPI workers spin instead of sleeping (no wake-up latency, one CPU each)" };
        var xdp = new Option<string?>("--xdp") { Description = "attach an XDP program to every queue: pass, drop (built in) or PROG.o[:SECTION] (a clang-built eBPF object)" };
        var xdpEngine = new Option<string>("--xdp-engine") { Description = "what runs an --xdp PROG.o: jit (IL, the default, as the kernel's bpf_jit_enable) or interp (the reference interpreter)", DefaultValueFactory = _ => "jit" };
        xdpEngine.AcceptOnlyFromAmong("jit", "interp");
        var xdpTx = new Option<string?>("--xdp-tx") { Description = "write the frames XDP_TX sends (and XDP_REDIRECT without a target device) to FILE (.pcap or .pcapng)" };
        var gro = new Option<string>("--gro") { Description = "GRO engine: linux (the kernel's), off (ethtool -K gro off), hash (flow hash table), ack (also coalesce pure ACKs)", DefaultValueFactory = _ => "linux" };
        gro.AcceptOnlyFromAmong("linux", "off", "hash", "ack");
        var groFlushTimeout = new Option<long>("--gro-flush-timeout") { Description = "/sys/class/net/DEV/gro_flush_timeout in ns", DefaultValueFactory = _ => 0 };
        var deferIrqs = new Option<int>("--napi-defer-hard-irqs") { Description = "/sys/class/net/DEV/napi_defer_hard_irqs", DefaultValueFactory = _ => 0 };
        var groMaxSize = new Option<int>("--gro-max-size") { Description = "gro_max_size (ip link set DEV gro_max_size N), at most 65536", DefaultValueFactory = _ => 65536 };
        var groInterval = new Option<long>("--gro-flush-interval") { Description = "variant: age in ns at which held skbs are flushed (default: one jiffy)", DefaultValueFactory = _ => 0 };
        var hz = new Option<int>("--hz") { Description = "CONFIG_HZ for jiffies (GRO ageing)", DefaultValueFactory = _ => 1000 };
        var tap = new Option<string?>("--tap") { Description = "write every packet leaving the receive stage (post-GRO, what tcpdump on the device sees) to FILE (.pcap or .pcapng)" };
        var scenario = new Option<string?>("--scenario") { Description = "scenario folder (links.batch, ns/NAME/ip.batch, sysctl.conf, iptables.save): the hosts the frames arrive at; GRO is off unless --gro is given" };
        var inject = new Option<string?>("--inject") { Description = "with --scenario: NS[:DEV], the namespace (and device) frames are received on; without :DEV, the device named by each frame's pcapng interface" };
        var dump = new Option<string?>("--dump") { Description = "with --scenario: write OUTDIR/NS/iptables-save.txt, conntrack.txt and DEV.rx.pcap/DEV.tx.pcap" };

        var cmd = new Command("replay", "Replay a capture through the receive path and report what each stage did")
        {
            capture, json, quiet, noProgress, queues, cpus, mtu, aggregates, rxChecksum, ring, budget, budgetUsecs, weight, skb, irqUsecs, irqFrames,
            rate, clock, mode, deterministic, pollCost, busyPoll, xdp, xdpEngine, xdpTx, gro, groFlushTimeout, deferIrqs, groMaxSize, groInterval, hz, tap,
            scenario, inject, dump, rpsCpus, rpsFlowCnt, rpsSockFlows, maxBacklog, flowLimitCpus, readerPerByte, readerPerRead,
        };
        var reportFiles = new ReportFiles.Options();
        reportFiles.AddTo(cmd);
        var trace = new TraceCli("replay");
        trace.AddTo(cmd);
        cmd.SetAction(pr =>
        {
            ReplayOptions options;
            try
            {
                Rate? r = null;
                string? rateText = pr.GetValue(rate);
                if (rateText is not null) r = Units.ParseRate(rateText);
                if (pr.GetValue(clock) == "rate" && r is null) throw new ArgumentException("--clock rate needs --rate");
                if (pr.GetValue(clock) == "capture" && r is not null)
                    throw new ArgumentException("--clock capture and --rate contradict each other");
                var nic = new NicOptions
                {
                    Queues = pr.GetValue(queues),
                    RingSize = pr.GetValue(ring),
                    Mtu = pr.GetValue(mtu),
                    TcpAggregates = pr.GetValue(aggregates) != "drop",
                    RxChecksum = pr.GetValue(rxChecksum) != "off",
                    Weight = pr.GetValue(weight),
                    SkbMode = pr.GetValue(skb) == "construct" ? SkbBuildMode.Construct : SkbBuildMode.Build,
                    Moderation = new InterruptModeration(pr.GetValue(irqUsecs), pr.GetValue(irqFrames)),
                    Xdp = pr.GetValue(xdp) switch { "drop" => XdpPrograms.DropAll, "pass" => XdpPrograms.PassAll, _ => null },
                    XdpAttachment = pr.GetValue(xdp) is { } spec and not ("drop" or "pass") ? LoadXdpObject(spec, pr.GetValue(xdpEngine) == "interp" ? Softnet.Xdp.Bpf.BpfEngine.Interpreter : Softnet.Xdp.Bpf.BpfEngine.Jit) : null,
                };
                nic.Validate();
                int b = pr.GetValue(budget);
                if (b < 1) throw new ArgumentException($"--budget must be positive, got {b}");
                options = new ReplayOptions
                {
                    Nic = nic,
                    Cpus = ParseCpuList(pr.GetValue(cpus)!),
                    NetdevBudget = b,
                    NetdevBudgetUsecs = pr.GetValue(budgetUsecs),
                    NetdevMaxBacklog = pr.GetValue(maxBacklog),
                    Rate = r,
                    Mode = pr.GetValue(deterministic) || pr.GetValue(mode) == "deterministic" ? ReplayMode.Deterministic : ReplayMode.Threaded,
                    PollCostNs = pr.GetValue(pollCost),
                    BusyPoll = pr.GetValue(busyPoll),
                    Gro = pr.GetValue(gro) == "off" ? null : new Softnet.Gro.GroOptions
                    {
                        Mode = pr.GetValue(gro) switch { "hash" => Softnet.Gro.GroMode.Hash, "ack" => Softnet.Gro.GroMode.Ack, _ => Softnet.Gro.GroMode.Linux },
                        GroFlushTimeoutNs = pr.GetValue(groFlushTimeout),
                        NapiDeferHardIrqs = pr.GetValue(deferIrqs),
                        GroMaxSize = pr.GetValue(groMaxSize) is > 0 and <= 65536 and var m ? m : throw new ArgumentException("--gro-max-size must be 1..65536"),
                        FlushIntervalNs = pr.GetValue(groInterval),
                        Hz = pr.GetValue(hz) is > 0 and <= 10000 and var h ? h : throw new ArgumentException("--hz must be 1..10000"),
                        // The merge ratio per flow is written only to the JSON report (gro.flows): without --json its
                        // per-packet bookkeeping (~3 ns a packet at 64 B) would be paid for nothing.
                        PerFlowStats = pr.GetValue(json) is not null,
                    },
                    TapPath = pr.GetValue(tap),
                    XdpTxPath = pr.GetValue(xdpTx),
                    ReaderNsPerByte = pr.GetValue(readerPerByte) is >= 0 and var rb ? rb : throw new ArgumentException("--reader-ns-per-byte must not be negative"),
                    ReaderNsPerRead = pr.GetValue(readerPerRead) is >= 0 and var rr ? rr : throw new ArgumentException("--reader-ns-per-read must not be negative"),
                    Rps = RpsFrom(pr.GetValue(rpsCpus), pr.GetValue(rpsFlowCnt), pr.GetValue(rpsSockFlows), pr.GetValue(maxBacklog), pr.GetValue(flowLimitCpus)),
                    // An option given explicitly wins over a scenario's sysctl.conf for the same net.core key.
                    GivenOnCommandLine = new (Option, string)[]
                    {
                        (budget, "net.core.netdev_budget"), (budgetUsecs, "net.core.netdev_budget_usecs"),
                        (maxBacklog, "net.core.netdev_max_backlog"), (rpsSockFlows, "net.core.rps_sock_flow_entries"),
                    }.Where(g => pr.GetResult(g.Item1) is { Implicit: false }).Select(g => g.Item2).ToHashSet(),
                };
                if (options.Rps is { Enabled: true } && options.Mode != ReplayMode.Deterministic)
                    throw new ArgumentException("--rps-cpus / RFS are modelled in deterministic mode only");
                options = options with { Tracer = trace.Make(pr, options.Mode == ReplayMode.Deterministic) };
            }
            catch (Exception e) when (e is ArgumentException or FormatException or NotSupportedException or IOException)
            {
                Console.Error.WriteLine($"softnet replay: {e.Message}");
                return 2;
            }
            // The report's trace section: the traced journeys, asked for once the run is over.
            ReportFileOptions Files() => reportFiles.From(pr) with
            {
                TraceLines = () => options.Tracer is { } t ? t.TextLines(ReportTracePackets) : null,
            };
            if (pr.GetValue(scenario) is { } scenarioDir)
            {
                // Scenario replay: GRO only when asked for (a kernel veth does GRO only with XDP or gro on).
                bool groGiven = pr.GetResult(gro) is { Implicit: false };
                return trace.Finish(pr, options.Tracer, ScenarioCli.Run(scenarioDir, pr.GetValue(capture), pr.GetValue(inject), pr.GetValue(dump), pr.GetValue(json), pr.GetValue(quiet),
                    groGiven ? options : options with { Gro = null }, Files()), pr.GetValue(quiet));
            }
            if (pr.GetValue(capture) is null && pr.GetValue(inject) is null)
                return trace.Finish(pr, options.Tracer, DefaultReplayCli.Run(pr.GetValue(json), pr.GetValue(dump), pr.GetValue(quiet), options, Files()), pr.GetValue(quiet));
            if (pr.GetValue(inject) is not null || pr.GetValue(dump) is not null)
            {
                Console.Error.WriteLine("softnet replay: --inject and --dump need --scenario");
                return 2;
            }
            return trace.Finish(pr, options.Tracer, Run(pr.GetValue(capture), pr.GetValue(json), pr.GetValue(quiet), pr.GetValue(noProgress), options, Files()), pr.GetValue(quiet));
        });
        return cmd;
    }

    /// <summary>
    /// `--xdp PROG.o[:SECTION]`: loads the object's XDP program (the named section, or the first XDP one) with its maps
    /// and global data, verified, and attaches it to every queue. The one place the CLI meets the ELF loader.
    /// </summary>
    public static XdpAttachment LoadXdpObject(string spec, Softnet.Xdp.Bpf.BpfEngine engine = Softnet.Xdp.Bpf.BpfEngine.Jit) => XdpBpfAttachment.Load(spec, engine);

    /// <summary>Parses a CPU list as the kernel writes them: "0", "0,2", "0-3,6".</summary>
    public static IReadOnlyList<int> ParseCpuList(string text)
    {
        var cpus = new SortedSet<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var range = part.Split('-');
            if (range.Length > 2 || !int.TryParse(range[0], out int lo) || lo < 0)
                throw new FormatException($"bad CPU list '{text}'");
            int hi = lo;
            if (range.Length == 2 && (!int.TryParse(range[1], out hi) || hi < lo))
                throw new FormatException($"bad CPU list '{text}'");
            if (hi > 4095) throw new FormatException($"CPU {hi} is out of range in '{text}'");
            for (int c = lo; c <= hi; c++) cpus.Add(c);
        }
        if (cpus.Count == 0) throw new FormatException("the CPU list is empty");
        return [.. cpus];
    }

    /// <summary>The RPS/RFS settings of the replay options (null when none is asked for).</summary>
    internal static Softnet.Steering.RpsOptions? RpsFrom(string? cpus, int flowCnt, int sockFlows, int maxBacklog, string? flowLimit)
    {
        if (flowCnt < 0 || flowCnt > 1 << 20) throw new ArgumentException("--rps-flow-cnt must be 0..1048576");
        if (sockFlows < 0 || sockFlows > 1 << 26) throw new ArgumentException("--rps-sock-flow-entries must be 0..67108864");
        if (maxBacklog < 1) throw new ArgumentException("--netdev-max-backlog must be positive");
        CpuMask? mask = null, limit = null;
        if (cpus is not null && !CpuMask.TryParse(cpus, out mask)) throw new ArgumentException($"--rps-cpus '{cpus}': not a hex CPU mask (as /sys/class/net/DEV/queues/rx-N/rps_cpus takes)");
        if (flowLimit is not null && !CpuMask.TryParse(flowLimit, out limit)) throw new ArgumentException($"--flow-limit-cpus '{flowLimit}': not a hex CPU mask");
        if (mask is null && flowCnt == 0 && sockFlows == 0) return null;
        return new Softnet.Steering.RpsOptions { RpsCpus = mask, RpsFlowCnt = flowCnt, SockFlowEntries = sockFlows, NetdevMaxBacklog = maxBacklog, FlowLimitCpus = limit };
    }

    internal static int Run(string? capturePath, string? jsonPath, bool quiet, bool noProgress, ReplayOptions? options = null, ReportFileOptions? files = null)
    {
        options ??= new ReplayOptions();
        ICaptureReader reader;
        string source;
        long totalBytes;
        try
        {
            (reader, source, totalBytes) = OpenSource(capturePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CaptureFormatException)
        {
            Console.Error.WriteLine($"softnet replay: {e.Message}");
            return 1;
        }

        ReplayReport report;
        var pipeline = new ReplayPipeline(options);
        using (reader)
        {
            bool showProgress = !quiet && !noProgress && !Console.IsOutputRedirected && totalBytes > 0;
            if (showProgress)
            {
                report = null!;
                AnsiConsole.Progress()
                    .AutoClear(true)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask($"replay {Path.GetFileName(source)}", maxValue: totalBytes);
                        pipeline = new ReplayPipeline(options with { Progress = (_, pos) => task.Value = pos });
                        report = pipeline.Run(reader, source);
                        task.Value = totalBytes;
                    });
            }
            else
            {
                report = pipeline.Run(reader, source);
            }
        }

        if (jsonPath is not null) report.WriteJson(jsonPath);
        if (!ReportFiles.Write(report, files, "replay")) return 1;
        if (!quiet) PrintSummary(report, pipeline);
        if (report.CaptureError is not null)
        {
            Console.Error.WriteLine($"softnet replay: {source}: {report.CaptureError}; the {report.PacketsIn} packets before it were replayed");
            return 1;
        }
        return 0;
    }

    internal static (ICaptureReader Reader, string Source, long TotalBytes) OpenSource(string? path)
    {
        if (path is null)
            return (DefaultScenario.Open(), "embedded default scenario", 0);
        var reader = CaptureReader.Open(path);
        return (reader, path, new FileInfo(path).Length);
    }

    private static void PrintSummary(ReplayReport r, ReplayPipeline pipeline)
    {
        var console = AnsiConsole.Console;
        console.MarkupLine($"[bold]softnet replay[/] {Markup.Escape(r.Source)}");
        console.MarkupLine($"  packets in {r.PacketsIn:N0}  bytes in {r.BytesIn:N0}  delivered {r.Delivered:N0}  dropped {r.Drops.Total:N0}" +
                           (r.XdpTx + r.XdpRedirect > 0 ? $"  xdp tx/redirect {r.XdpTx + r.XdpRedirect:N0}" : "") +
                           $"  ({(r.Conserved ? "conserved" : "[red]NOT conserved[/]")})  in {r.Elapsed.TotalMilliseconds:N0} ms");
        var proto = new Table().Border(TableBorder.Simple).AddColumn("protocol").AddColumn(new TableColumn("packets").RightAligned());
        foreach (var (name, count) in r.Protocols.Items())
            if (count != 0 || name is "ethernet" or "ipv4" or "ipv6" or "tcp" or "udp" or "icmp" or "other")
                proto.AddRow(name, count.ToString("N0"));
        console.Write(proto);
        if (r.Drops.Total > 0)
        {
            var drops = new Table().Border(TableBorder.Simple).AddColumn("drop reason").AddColumn(new TableColumn("packets").RightAligned());
            foreach (var (reason, count) in r.Drops.NonZero())
                drops.AddRow(DropReasons.Name(reason), count.ToString("N0"));
            console.Write(drops);
        }
        if (pipeline.Gro is { } g)
        {
            var st = g.TotalStats();
            console.MarkupLine($"  gro {g.Options.Mode.ToString().ToLowerInvariant()}: {st.Received:N0} segments in, {st.DeliveredSkbs:N0} skbs out " +
                               $"(merge ratio {st.MergeRatio:F2}), {st.Merged:N0} merged, {st.Normal:N0} passed unmerged");
        }
        if (pipeline.Nic is { } nic)
        {
            var t = new Table().Border(TableBorder.Simple).Title("RX queues (ethtool -S)");
            foreach (var c in new[] { "queue", "packets", "bytes", "missed", "alloc_fail", "occ_max", "irqs", "cpu" })
                t.AddColumn(new TableColumn(c).RightAligned());
            foreach (var q in nic.Queues)
            {
                var s = q.Ring.Stats;
                t.AddRow(q.Id.ToString(), s.RxPackets.ToString("N0"), s.RxBytes.ToString("N0"), s.RxMissed.ToString("N0"),
                    (s.AllocFailed + q.SkbAllocFailed).ToString("N0"), q.MaxOccupancy.ToString("N0"),
                    q.Vector.InterruptsFired.ToString("N0"), q.Vector.TargetCpu.Id.ToString());
            }
            console.Write(t);
        }
        if (pipeline.Engine is { } engine)
        {
            var t = new Table().Border(TableBorder.Simple).Title("softnet_stat");
            foreach (var c in new[] { "cpu", "processed", "dropped", "squeeze", "rps_ipi", "flow_lim", "rounds", "ksoftirqd", "pinned" })
                t.AddColumn(new TableColumn(c).RightAligned());
            foreach (var c in engine.Cpus)
                t.AddRow(c.Id.ToString(), c.Processed.ToString("N0"), c.Dropped.ToString("N0"), c.TimeSqueeze.ToString("N0"),
                    c.ReceivedRps.ToString("N0"), c.FlowLimitCount.ToString("N0"),
                    c.Rounds.ToString("N0"), c.KsoftirqdRounds.ToString("N0"), c.Pinned ? "yes" : "no");
            console.Write(t);
        }
    }
}
