using System.CommandLine;
using System.Runtime.InteropServices;
using Softnet.Capture.Live;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Pipeline;
using Softnet.Topology;
using Spectre.Console;

namespace Softnet.Cli;

/// <summary>
/// `softnet run --scenario DIR --bind NS:DEV=IFNAME[@NETNS] ...`: the scenario's devices bound to real interfaces,
/// Softnet routing, tracking, NATing and filtering between them as the scenario's namespace would, until SIGINT or
/// SIGTERM (or --duration); then the rings are drained and the report, --json and --dump written as replay writes them.
/// </summary>
public static class RunCommand
{
    public static Command Create()
    {
        var scenario = new Option<string>("--scenario") { Description = "scenario folder (links.batch, ns/NAME/ip.batch, sysctl.conf, iptables.save)", Required = true };
        var bind = new Option<string[]>("--bind") { Description = "NS:DEV=IFNAME[@NETNS]: scenario device DEV of namespace NS is the real interface IFNAME (in network namespace NETNS); repeat for each device", AllowMultipleArgumentsPerToken = false };
        var port = new Option<string>("--port") { Description = "packet (AF_PACKET, TPACKET_V3 rings) or xdp (AF_XDP sockets with an XDP redirect program)", DefaultValueFactory = _ => "packet" };
        port.AcceptOnlyFromAmong("packet", "xdp");
        var queues = new Option<int>("--queues") { Description = "receive queues per port (fanout members or AF_XDP sockets) and RX queues of the virtual NIC", DefaultValueFactory = _ => 1 };
        var cpus = new Option<string>("--cpus") { Description = "CPUs for the datapath, e.g. 0 or 2-3: a worker per CPU (at most --queues), each pinned to its CPU with its own queues, NIC queue, NAPI and GRO, the scenario's stack shared; with one worker the loop is pinned to the first CPU", DefaultValueFactory = _ => "" };
        var ring = new Option<int>("--ring") { Description = "frames per port ring (RX and TX)", DefaultValueFactory = _ => 4096 };
        var duration = new Option<double?>("--duration") { Description = "stop after this many seconds (default: run until SIGINT/SIGTERM)" };
        var json = new Option<string?>("--json") { Description = "write a machine-readable report to FILE at the end" };
        var dump = new Option<string?>("--dump") { Description = "write OUTDIR/NS/iptables-save.txt, conntrack.txt, nstat ... at the end" };
        var metrics = new Option<string?>("--metrics") { Description = "serve Prometheus metrics on HOST:PORT (/metrics), e.g. 127.0.0.1:9100" };
        var capture = new Option<string[]>("--capture") { Description = "NS:DEV=FILE: write what the device receives and sends to FILE (pcapng, interfaces 'DEV rx' and 'DEV tx')" };
        var allowHost = new Option<bool>("--allow-host") { Description = "allow binding interfaces of the host's own network namespace" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "print no summary" };
        var noProgress = new Option<bool>("--no-progress") { Description = "no progress line even on a terminal" };
        var gro = new Option<string>("--gro") { Description = "GRO in front of the scenario: off (the default, as a veth) or linux", DefaultValueFactory = _ => "off" };
        gro.AcceptOnlyFromAmong("off", "linux");

        var cmd = new Command("run", "Run a scenario live: its devices bound to real interfaces, Softnet forwarding between them")
        {
            scenario, bind, port, queues, cpus, ring, duration, json, dump, metrics, capture, allowHost, quiet, noProgress, gro,
        };
        var reportFiles = new ReportFiles.Options();
        reportFiles.AddTo(cmd);
        var trace = new TraceCli("run");
        trace.AddTo(cmd);
        cmd.SetAction(pr =>
        {
            ScenarioRunOptions options;
            try
            {
                var binds = (pr.GetValue(bind) ?? []).Select(LiveBinding.Parse).ToList();
                if (binds.Count == 0) throw new ArgumentException("give at least one --bind NS:DEV=IFNAME[@NETNS]");
                var caps = new List<(string, string)>();
                foreach (string c in pr.GetValue(capture) ?? [])
                {
                    int eq = c.IndexOf('=');
                    if (eq <= 0 || eq == c.Length - 1) throw new ArgumentException($"--capture '{c}': expected NS:DEV=FILE");
                    caps.Add((c[..eq], c[(eq + 1)..]));
                }
                int q = pr.GetValue(queues);
                if (q is < 1 or > 64) throw new ArgumentException("--queues must be 1..64");
                string cpuText = pr.GetValue(cpus)!;
                var cpuList = cpuText.Length == 0 ? [0] : ReplayCommand.ParseCpuList(cpuText);
                if (cpuText.Length > 0 && !CpuAffinity.TryPinCurrentThread(cpuList[0], out int why))
                    Console.Error.WriteLine($"softnet run: not pinned to CPU {cpuList[0]} (sched_setaffinity errno {why})");
                options = new ScenarioRunOptions
                {
                    Bindings = binds,
                    Port = pr.GetValue(port) == "xdp" ? LivePortKind.Xdp : LivePortKind.Packet,
                    PortQueues = q,
                    RingFrames = pr.GetValue(ring),
                    AllowHost = pr.GetValue(allowHost),
                    Duration = pr.GetValue(duration) is { } s ? TimeSpan.FromSeconds(s) : null,
                    Captures = caps,
                    Replay = new ReplayOptions
                    {
                        Gro = pr.GetValue(gro) == "linux" ? new Gro.GroOptions() : null,
                        Nic = new NicOptions { Queues = q },
                        Cpus = cpuList,
                        Tracer = trace.Make(pr, deterministic: true),
                    },
                    OpenPort = LivePorts.Open,
                };
            }
            catch (Exception e) when (e is ArgumentException or FormatException)
            {
                Console.Error.WriteLine($"softnet run: {e.Message}");
                return 2;
            }
            var files = reportFiles.From(pr) with { TraceLines = () => options.Replay.Tracer is { } t ? t.TextLines(200) : null };
            return trace.Finish(pr, options.Replay.Tracer,
                Run(pr.GetValue(scenario)!, options, pr.GetValue(json), pr.GetValue(dump), pr.GetValue(metrics), pr.GetValue(quiet), pr.GetValue(noProgress), files), pr.GetValue(quiet));
        });
        return cmd;
    }

    internal static int Run(string scenarioDir, ScenarioRunOptions options, string? json, string? dump, string? metricsEndpoint, bool quiet, bool noProgress, ReportFileOptions? files = null)
    {
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true; // stop gracefully: drain, report, dump
            cts.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx =>
        {
            ctx.Cancel = true;
            cts.Cancel();
        });
        bool progress = !noProgress && !quiet && !Console.IsErrorRedirected;
        RunMetrics? exporter = null;
        options = options with
        {
            Progress = progress ? p => Console.Error.Write(
                $"\r{p.Elapsed:hh\\:mm\\:ss}  rx {p.RxPackets:N0} ({p.RxPps / 1e3:F1} kpps)  tx {p.TxPackets:N0}  dropped {p.Drops:N0}  kernel dropped {p.KernelDrops:N0}   ") : null,
            Started = run =>
            {
                if (metricsEndpoint is not null) exporter = RunMetrics.Start(metricsEndpoint, run);
                if (!quiet) Console.Error.WriteLine($"softnet run: {string.Join(", ", options.Bindings)} ({(options.Port == LivePortKind.Xdp ? "AF_XDP" : "AF_PACKET")}); Ctrl-C stops"
                    + (metricsEndpoint is null ? "" : $"; metrics on http://{metricsEndpoint}/metrics"));
            },
        };
        ScenarioReport report;
        try
        {
            report = ScenarioRun.Run(scenarioDir, options, dump, cts.Token);
        }
        catch (ScenarioFormatException e)
        {
            Console.Error.WriteLine($"softnet run: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or LivePortException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"softnet run: {e.Message}");
            return e is ArgumentException ? 2 : 1;
        }
        finally
        {
            exporter?.Dispose();
            Console.CancelKeyPress -= onCancel;
        }
        if (progress) Console.Error.WriteLine();
        using (report)
        {
            if (json is not null) report.Replay.WriteJson(json);
            if (!ReportFiles.Write(report.Replay, files, "run")) return 1;
            if (!quiet)
            {
                ScenarioCli.Print(report, "run");
                var t = new Table().Border(TableBorder.Simple).Title("live ports");
                foreach (var c in new[] { "bind", "port", "rx", "kernel dropped", "tx", "tx ring full", "link down" }) t.AddColumn(new TableColumn(c).RightAligned());
                foreach (var r in report.Replay.Sections.OfType<LivePortsSection>().SelectMany(x => x.Rows))
                    t.AddRow(Markup.Escape(r.Binding.ToString()), r.Kind == LivePortKind.Xdp ? "xdp" : "packet", r.Stats.RxPackets.ToString("N0"), r.Stats.KernelRxDropped.ToString("N0"),
                        r.Stats.TxPackets.ToString("N0"), r.Stats.TxRingFull.ToString("N0"), r.Stats.LinkDownEvents.ToString("N0"));
                AnsiConsole.Console.Write(t);
            }
        }
        return 0;
    }
}
