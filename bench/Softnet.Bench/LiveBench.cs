using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Softnet.Capture.Live;
using Softnet.KernelTests.Support;
using Softnet.Napi;
using Softnet.Packets;
using Softnet.Topology;

namespace Softnet.Bench;

/// <summary>
/// `bench live`: forwarded packets per second per core through the Docker ruleset of Scenarios/live-docker, with real
/// traffic between real namespaces. A generator namespace blasts 64-byte TCP ACK segments (mid-stream, so conntrack
/// picks them up loosely as ESTABLISHED; 192.0.2.100 over a few hundred source ports to 192.0.2.10:5201, which Docker's
/// rules DNAT to 172.17.0.2:5201) over a veth into the middle namespace; a sink namespace playing 172.17.0.2 takes the
/// forwarded frames on its veth (counted by its rx_packets) and drops them in raw PREROUTING, so nothing comes back.
/// The middle is, in turn: Softnet (`softnet run`'s ScenarioRun on a thread pinned to one CPU, the two veth ends bound
/// to host:eth0 and host:vethc1) over each live port type, and the kernel itself configured from the same scenario
/// (KernelScenario). The generator is a PacketPort with PACKET_QDISC_BYPASS on a thread pinned to the other CPU.
/// Softnet's cost is its loop thread's CPU time; the kernel's, the softirq time of all CPUs (/proc/stat, idle rate
/// subtracted). Beside Softnet's figure stands the softirq time the kernel spent on its behalf (the port's receive on
/// the generator's CPU, the sink's delivery), which is where a port's own cost lies.
/// </summary>
public static class LiveBench
{
    public static readonly string[] Sides = ["packet", "xdp", "kernel"];

    /// <summary>Source ports of the generated flows (one conntrack entry each).</summary>
    public const int Flows = 256;
    /// <summary>A minimum Ethernet frame: 64 bytes on the wire with the FCS the veth does not carry.</summary>
    public const int FrameBytes = 60;
    private const double DefaultSeconds = 5, DefaultWarmup = 2;

    private const string GenMac = "02:00:c0:00:02:64", HostEth0Mac = "02:00:c0:00:02:0a", HostVethc1Mac = "02:42:ac:11:ff:02";
    private const string Client = "192.0.2.100", Published = "192.0.2.10", Container = "172.17.0.2";
    private const ushort Port = 5201;

    /// <summary>Null when the bench can run here; otherwise why not (root, namespaces, tools).</summary>
    public static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "bench live needs Linux";
        return KernelScenario.Unavailable() ?? Netns.Unavailable("ethtool", "iptables");
    }

    private static string ScenarioDir => Path.Combine(ScenarioBench.ScenariosRoot(), "live-docker");

    public static int Run(BenchArgs args, bool secondsGiven = false)
    {
        if (args.Capture is not null) throw new ArgumentException("live generates its own traffic (--capture is not used)");
        if (args.Case is not null && !Sides.Contains(args.Case))
            throw new ArgumentException($"--case {args.Case}: one of {string.Join(", ", Sides)}");
        double seconds = secondsGiven ? Math.Max(0.5, args.Seconds) : DefaultSeconds;
        double warmup = args.Warmup >= 0 ? args.Warmup : DefaultWarmup;
        var sides = args.Case is null ? Sides : [args.Case];
        var (genCpu, netCpu) = PickCpus();
        var results = new Dictionary<string, SideResult?>();
        string? why = Unavailable();
        double[] idle = [];
        if (why is null)
        {
            Console.WriteLine($"bench live: generator on CPU {genCpu}, Softnet's loop on CPU {netCpu}; {Flows} flows of {FrameBytes}-byte TCP ACKs; " +
                $"warm-up until the loop has had {warmup:0.#} s of CPU (the kernel's: 0.5 s), measured {seconds:0.#} s per side");
            idle = IdleSoftirqRates();
            foreach (var side in sides)
            {
                SideResult? r;
                try
                {
                    r = side == "kernel" ? MeasureKernel(genCpu, seconds, warmup, idle) : MeasureSoftnet(side == "xdp" ? LivePortKind.Xdp : LivePortKind.Packet, genCpu, netCpu, seconds, warmup, idle);
                }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or LivePortException or JsonException or KeyNotFoundException)
                {
                    Console.Error.WriteLine($"bench live: {side}: {e.Message}");
                    r = null;
                }
                results[side] = r;
                if (r is not null) PrintSide(side, r);
            }
        }
        else Console.Error.WriteLine($"bench live: not measured: {why}");

        PrintTable(sides, results);
        if (args.Json is not null) WriteJson(args.Json, results, why, genCpu, netCpu, seconds, warmup, idle);
        return 0;
    }

    // ---------------------------------------------------------------- results

    /// <summary>One side's window: what the generator sent, what reached the sink, the CPU it cost.</summary>
    public sealed record SideResult
    {
        public double WindowSeconds { get; init; }
        public long Generated { get; init; }
        public long Forwarded { get; init; }
        /// <summary>Softnet: its loop thread's user and system time (sys includes the softirq work that ran inside its
        /// syscalls, which the tick also counts as softirq in /proc/stat). Kernel: 0.</summary>
        public double UserSeconds { get; init; }
        public double SysSeconds { get; init; }
        /// <summary>Softirq time per CPU over the window, each CPU's idle rate subtracted.</summary>
        public required double[] SoftirqSecondsByCpu { get; init; }
        public double SoftirqSeconds => SoftirqSecondsByCpu.Sum();
        /// <summary>Frames the ingress port handed to Softnet, and those the kernel dropped for want of ring room
        /// (Softnet's loop was the bottleneck when these are not zero).</summary>
        public long PortRx { get; init; }
        public long PortKernelDropped { get; init; }
        public long SoftnetPacketsIn { get; init; }
        public long SoftnetDrops { get; init; }
        public string Drops { get; init; } = "";
        public bool IsKernel { get; init; }

        public double CpuSeconds => IsKernel ? SoftirqSeconds : UserSeconds + SysSeconds;
        /// <summary>Softnet's loop was the bottleneck: the port's ring overflowed in the window. Otherwise the loop also
        /// spent time polling empty rings, and its pps/core is a lower bound.</summary>
        public bool Saturated => !IsKernel && PortKernelDropped > 0;
        public double ForwardedPps => Forwarded / WindowSeconds;
        public double PpsPerCore => CpuSeconds > 0 ? Forwarded / CpuSeconds : double.NaN;
        /// <summary>Softnet's CPU (-1 for the kernel's side).</summary>
        public int SoftnetCpu { get; init; } = -1;
        /// <summary>Softnet with the kernel's softirq on its behalf added: its loop's time and the softirq of the other
        /// CPUs (the port's receive, on the generator's CPU). The softirq on Softnet's own CPU is left out: it is mostly the
        /// sink's delivery run inside the loop's own sends (at local_bh_enable), already in its sys time. With one CPU for
        /// both, all of it is added (and that part counted twice).</summary>
        public double PpsPerCoreWithSoftirq
        {
            get
            {
                if (IsKernel) return PpsPerCore;
                double other = SoftirqSecondsByCpu.Where((_, i) => i != SoftnetCpu).Sum();
                return Forwarded / (CpuSeconds + other);
            }
        }
    }

    private static void PrintSide(string side, SideResult r)
    {
        string soft = string.Join(", ", r.SoftirqSecondsByCpu.Select((s, i) => $"cpu{i} {s:F2}"));
        // Per-frame costs: the loop's per forwarded frame; softirq per generated frame (the kernel does its part of the
        // receive for every frame the generator sends, also those the port's ring had no room for).
        double loopNs = r.Forwarded > 0 ? r.CpuSeconds * 1e9 / r.Forwarded : double.NaN;
        double softNs = r.Generated > 0 ? r.SoftirqSeconds * 1e9 / r.Generated : double.NaN;
        if (r.IsKernel)
            Console.WriteLine($"kernel  forwarded {r.Forwarded:N0} of {r.Generated:N0} in {r.WindowSeconds:F2} s; softirq {r.SoftirqSeconds:F2} s ({soft}), {softNs:F0} ns per generated frame");
        else
            Console.WriteLine($"{side,-7} forwarded {r.Forwarded:N0} of {r.Generated:N0} in {r.WindowSeconds:F2} s; loop user {r.UserSeconds:F2} s sys {r.SysSeconds:F2} s ({loopNs:F0} ns per forwarded frame); " +
                $"softirq {r.SoftirqSeconds:F2} s ({soft}), {softNs:F0} ns per generated frame; port rx {r.PortRx:N0}, kernel dropped {r.PortKernelDropped:N0}; Softnet in {r.SoftnetPacketsIn:N0} dropped {r.SoftnetDrops:N0}{r.Drops}" +
                (r.Saturated ? "" : "; NOT saturated (no ring drops): the loop also polled empty rings, pps/core is a lower bound"));
    }

    private static void PrintTable(string[] sides, Dictionary<string, SideResult?> results)
    {
        double? kernel = results.GetValueOrDefault("kernel")?.PpsPerCore;
        Console.WriteLine();
        Console.WriteLine($"{"port",-8}{"fwd Mpps",10}{"CPU s",8}{"user s",8}{"sys s",8}{"pps/core",12}{"softirq s",11}{"pps/core+si",13}{"vs kernel",11}");
        foreach (var side in sides)
        {
            var r = results.GetValueOrDefault(side);
            if (r is null)
            {
                Console.WriteLine($"{side,-8}{"-",10}");
                continue;
            }
            string ratio = kernel is > 0 && !r.IsKernel ? (r.PpsPerCore / kernel.Value).ToString("F2", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"{side,-8}{r.ForwardedPps / 1e6,10:F3}{r.CpuSeconds,8:F2}{r.UserSeconds,8:F2}{r.SysSeconds,8:F2}{r.PpsPerCore,12:N0}{r.SoftirqSeconds,11:F2}{r.PpsPerCoreWithSoftirq,13:N0}{ratio,11}");
        }
    }

    private static void WriteJson(string path, Dictionary<string, SideResult?> results, string? why, int genCpu, int netCpu, double seconds, double warmup, double[] idle)
    {
        using var f = File.Create(path);
        using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
        var kernel = results.GetValueOrDefault("kernel");
        void Num(string name, double? v, int digits = 0)
        {
            if (v is null || double.IsNaN(v.Value) || double.IsInfinity(v.Value)) w.WriteNull(name);
            else w.WriteNumber(name, Math.Round(v.Value, digits));
        }
        void PerPort(string name, Func<SideResult, double> value, int digits = 0)
        {
            w.WriteStartObject(name);
            foreach (var p in new[] { "packet", "xdp" }) Num(p, results.GetValueOrDefault(p) is { } r ? value(r) : null, digits);
            w.WriteEndObject();
        }
        w.WriteStartObject();
        PerPort("softnet_pps_per_core", r => r.PpsPerCore);
        Num("kernel_pps_per_core", kernel?.PpsPerCore);
        PerPort("ratio", r => kernel is { PpsPerCore: > 0 } ? r.PpsPerCore / kernel.PpsPerCore : double.NaN, 3);
        PerPort("softnet_pps_per_core_with_softirq", r => r.PpsPerCoreWithSoftirq);
        w.WriteStartObject("sides");
        foreach (var (side, r) in results)
        {
            if (r is null)
            {
                w.WriteNull(side);
                continue;
            }
            w.WriteStartObject(side);
            Num("window_seconds", r.WindowSeconds, 3);
            w.WriteNumber("generated", r.Generated);
            w.WriteNumber("forwarded", r.Forwarded);
            Num("forwarded_pps", r.ForwardedPps);
            Num("cpu_seconds", r.CpuSeconds, 3);
            Num("user_seconds", r.UserSeconds, 3);
            Num("sys_seconds", r.SysSeconds, 3);
            Num("softirq_seconds", r.SoftirqSeconds, 3);
            w.WriteStartArray("softirq_seconds_by_cpu");
            foreach (var s in r.SoftirqSecondsByCpu) w.WriteNumberValue(Math.Round(s, 3));
            w.WriteEndArray();
            Num("pps_per_core", r.PpsPerCore);
            Num("cpu_ns_per_forwarded", r.Forwarded > 0 ? r.CpuSeconds * 1e9 / r.Forwarded : null, 1);
            Num("softirq_ns_per_generated", r.Generated > 0 ? r.SoftirqSeconds * 1e9 / r.Generated : null, 1);
            if (!r.IsKernel)
            {
                Num("pps_per_core_with_softirq", r.PpsPerCoreWithSoftirq);
                w.WriteBoolean("saturated", r.Saturated);
                Num("loop_cpu_share", r.CpuSeconds / r.WindowSeconds, 3);
                w.WriteNumber("port_rx", r.PortRx);
                w.WriteNumber("port_kernel_rx_dropped", r.PortKernelDropped);
                w.WriteNumber("softnet_packets_in", r.SoftnetPacketsIn);
                w.WriteNumber("softnet_drops", r.SoftnetDrops);
            }
            w.WriteEndObject();
        }
        w.WriteEndObject();
        w.WriteNumber("generator_cpu", genCpu);
        w.WriteNumber("softnet_cpu", netCpu);
        Num("seconds", seconds, 2);
        Num("warmup_seconds", warmup, 2);
        w.WriteStartArray("idle_softirq_ticks_per_second_by_cpu");
        foreach (var v in idle) w.WriteNumberValue(Math.Round(v, 2));
        w.WriteEndArray();
        w.WriteNumber("flows", Flows);
        w.WriteNumber("frame_bytes", FrameBytes);
        if (why is not null) w.WriteString("unavailable", why);
        w.WriteString("traffic", $"{FrameBytes}-byte TCP ACK segments (mid-stream, picked up by conntrack's tcp_loose) from {Client}:40000-{40000 + Flows - 1} to {Published}:{Port}, " +
            $"DNAT to {Container}:{Port} by Docker's rules and forwarded over the docker0 bridge; the generator (a PacketPort with PACKET_QDISC_BYPASS in its own namespace, " +
            $"pinned to CPU {genCpu}) sends as fast as it can; the sink namespace counts them in its veth's rx_packets and drops them in raw PREROUTING");
        w.WriteString("softnet_method", $"ScenarioRun (softnet run) in-process on a thread pinned to CPU {netCpu}, host:eth0 and host:vethc1 bound to the middle namespace's veth ends; the window opens once the loop has had the warm-up's CPU time (or four times that on the wall); " +
            "pps/core = sink rx_packets delta / the loop thread's CPU time (/proc/self/task/TID/schedstat, split into user and sys by the task's stat ticks) over the window; " +
            "softirq = both CPUs' softirq column of /proc/stat over the window, idle rates subtracted (tick-sampled; the part that ran inside the loop's syscalls is also in its sys time); " +
            "pps_per_core_with_softirq = forwarded / (the loop's CPU time + the softirq of the CPUs other than Softnet's: the port's receive on the generator's CPU)");
        w.WriteString("kernel_method", "the same three namespaces with the middle configured by the kernel from Scenarios/live-docker (KernelScenario), the same generator; " +
            "pps/core = sink rx_packets delta / softirq time of all CPUs over the window (/proc/stat, idle rates subtracted)");
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- the three namespaces

    /// <summary>Where the generator sends from and where the sink counts, and the namespaces to delete afterwards.</summary>
    private sealed class Rig : IDisposable
    {
        public required string GenNs { get; init; }
        public required string GenDev { get; init; }
        public required string MidNs { get; init; }
        public required string SinkNs { get; init; }
        public required string SinkDev { get; init; }
        public List<string> Created { get; } = [];
        public string? Work { get; init; }

        /// <summary>The interfaces ports were opened on: a port leaves its lock file behind (so that a second Softnet
        /// finds it), and the bench's namespace names are used once.</summary>
        public List<(string Ns, string Dev)> Locked { get; } = [];

        public void Dispose()
        {
            foreach (var ns in Created) Proc.Run("ip", "netns", "del", ns);
            foreach (var (ns, dev) in Locked)
                try { File.Delete(PacketPort.LockPath(ns, dev)); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (Work is not null)
                try { Directory.Delete(Work, true); } catch (IOException) { }
        }
    }

    private static void Ip(string ns, params string[] args)
    {
        var (exit, _, err) = Proc.Run("ip", new[] { "-n", ns }.Concat(args));
        if (exit != 0) throw new InvalidOperationException($"ip -n {ns} {string.Join(' ', args)}: {err.Trim()}");
    }

    private static void Exec(string ns, params string[] command)
    {
        var (exit, _, err) = Proc.Run("ip", new[] { "netns", "exec", ns }.Concat(command));
        if (exit != 0) throw new InvalidOperationException($"[{ns}] {string.Join(' ', command)}: {err.Trim()}");
    }

    /// <summary>The generator's and the sink's ends, alike for both middles: IPv6 off (no stray frames), the sink
    /// answering ARP as 172.17.0.2 and dropping the TCP before it could answer with a RST.</summary>
    private static void SetUpEnds(Rig rig)
    {
        foreach (var ns in new[] { rig.GenNs, rig.SinkNs })
        {
            Exec(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1");
            Exec(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1");
        }
        Ip(rig.GenNs, "link", "set", rig.GenDev, "address", GenMac);
        Ip(rig.GenNs, "link", "set", rig.GenDev, "up");
        Ip(rig.SinkNs, "link", "set", rig.SinkDev, "up");
        Ip(rig.SinkNs, "addr", "add", $"{Container}/16", "dev", rig.SinkDev);
        Ip(rig.SinkNs, "route", "add", "default", "via", "172.17.0.1");
        Exec(rig.SinkNs, "iptables", "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "-j", "DROP");
    }

    /// <summary>A frame a port or the kernel takes must be whole and checksummed: no offloads on the veths.</summary>
    private static void OffloadsOff(string ns, string dev) => Exec(ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off");

    /// <summary>generator:gen0 ↔ middle:sn0 (Softnet's host:eth0), sink:srv0 ↔ middle:sn1 (Softnet's host:vethc1); the
    /// middle's ends carry the scenario devices' MACs, as in the end-to-end test.</summary>
    private static Rig SoftnetRig()
    {
        string id = $"{Environment.ProcessId}-{Interlocked.Increment(ref s_rigs)}";
        var rig = new Rig { GenNs = $"slg-{id}", GenDev = "gen0", MidNs = $"sls-{id}", SinkNs = $"slk-{id}", SinkDev = "srv0" };
        try
        {
            foreach (var ns in new[] { rig.GenNs, rig.MidNs, rig.SinkNs })
            {
                rig.Created.Add(ns);
                Proc.Check("ip", "netns", "add", ns);
                Ip(ns, "link", "set", "lo", "up");
            }
            Exec(rig.MidNs, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1");
            Exec(rig.MidNs, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1");
            Proc.Check("ip", "link", "add", "name", "gen0", "netns", rig.GenNs, "type", "veth", "peer", "name", "sn0", "netns", rig.MidNs);
            Proc.Check("ip", "link", "add", "name", "srv0", "netns", rig.SinkNs, "type", "veth", "peer", "name", "sn1", "netns", rig.MidNs);
            Ip(rig.MidNs, "link", "set", "sn0", "address", HostEth0Mac);
            Ip(rig.MidNs, "link", "set", "sn1", "address", HostVethc1Mac);
            Ip(rig.MidNs, "link", "set", "sn0", "up");
            Ip(rig.MidNs, "link", "set", "sn1", "up");
            SetUpEnds(rig);
            OffloadsOff(rig.GenNs, "gen0");
            OffloadsOff(rig.MidNs, "sn0");
            OffloadsOff(rig.MidNs, "sn1");
            OffloadsOff(rig.SinkNs, "srv0");
            rig.Locked.AddRange([(rig.GenNs, "gen0"), (rig.MidNs, "sn0"), (rig.MidNs, "sn1")]);
            return rig;
        }
        catch
        {
            rig.Dispose();
            throw;
        }
    }

    /// <summary>The scenario's own namespaces built by the kernel: outside:wire0 generates, host forwards, c1:eth0 sinks.</summary>
    private static Rig KernelRig()
    {
        string prefix = $"slb{Environment.ProcessId}x{Interlocked.Increment(ref s_rigs)}";
        var rig = new Rig
        {
            GenNs = KernelScenario.KernelName(prefix, "outside"), GenDev = "wire0",
            MidNs = KernelScenario.KernelName(prefix, "host"),
            SinkNs = KernelScenario.KernelName(prefix, "c1"), SinkDev = "eth0",
            Work = Directory.CreateTempSubdirectory("softnet-livebench-k-").FullName,
        };
        try
        {
            KernelScenario.Build(ScenarioFolder.Load(ScenarioDir), prefix, rig.Work, rig.Created);
            SetUpEnds(rig);
            OffloadsOff(rig.GenNs, "wire0");
            OffloadsOff(rig.MidNs, "eth0");
            OffloadsOff(rig.MidNs, "vethc1");
            OffloadsOff(rig.SinkNs, "eth0");
            rig.Locked.Add((rig.GenNs, "wire0"));
            return rig;
        }
        catch
        {
            rig.Dispose();
            throw;
        }
    }

    private static int s_rigs;

    // ---------------------------------------------------------------- the generator

    /// <summary>The frames: one mid-stream ACK per flow, padded to the minimum frame.</summary>
    public static byte[][] BuildFrames()
    {
        var frames = new byte[Flows][];
        for (int k = 0; k < Flows; k++)
        {
            var ip = Frames.Tcp(Client, (ushort)(40000 + k), Published, Port, TcpFlags.Ack, 1_000_000u + (uint)k * 7919u, 500_000u + (uint)k * 104_729u);
            var eth = Frames.Eth(HostEth0Mac, GenMac, ip);
            var f = new byte[FrameBytes];
            eth.CopyTo(f, 0);
            frames[k] = f;
        }
        return frames;
    }

    /// <summary>A PacketPort on the generator's veth (PACKET_QDISC_BYPASS: straight to the driver) filled round robin
    /// with the frames and kicked, on a thread pinned to its CPU, until stopped.</summary>
    private sealed class Generator : IDisposable
    {
        private readonly PacketPort _port;
        private readonly Thread _thread;
        private readonly byte[][] _frames = BuildFrames();
        private volatile bool _stop;

        public Generator(string ns, string dev, int cpu)
        {
            _port = PacketPort.Open(new LivePortOptions { Interface = dev, Netns = ns, RingFrames = 4096 });
            _thread = new Thread(() => Loop(cpu)) { IsBackground = true, Name = "live-generator" };
            _thread.Start();
        }

        private void Loop(int cpu)
        {
            CpuAffinity.TryPinCurrentThread(cpu, out _);
            int i = 0;
            while (!_stop)
            {
                for (int n = 0; n < 512 && _port.Transmit(0, _frames[i]); n++) i = (i + 1) % _frames.Length;
                _port.FlushTransmit(0);
            }
        }

        public void Dispose()
        {
            _stop = true;
            _thread.Join();
            _port.Dispose();
        }
    }

    // ---------------------------------------------------------------- the two middles

    private static SideResult MeasureSoftnet(LivePortKind kind, int genCpu, int netCpu, double seconds, double warmup, double[] idle)
    {
        using var rig = SoftnetRig();
        using var stop = new CancellationTokenSource();
        var started = new ManualResetEventSlim();
        int tid = 0;
        LiveRun? live = null;
        ScenarioReport? report = null;
        Exception? error = null;
        var options = new ScenarioRunOptions
        {
            Bindings = [LiveBinding.Parse($"host:eth0=sn0@{rig.MidNs}"), LiveBinding.Parse($"host:vethc1=sn1@{rig.MidNs}")],
            Port = kind,
            OpenPort = LivePorts.Open,
            Started = run =>
            {
                live = run;
                started.Set();
            },
        };
        var loop = new Thread(() =>
        {
            tid = gettid();
            CpuAffinity.TryPinCurrentThread(netCpu, out _);
            try { report = ScenarioRun.Run(ScenarioDir, options, null, stop.Token); }
            catch (Exception e) { error = e; }
            finally { started.Set(); }
        }) { IsBackground = true, Name = "softnet-live" };
        loop.Start();
        Snapshot s0, s1;
        try
        {
            if (!started.Wait(TimeSpan.FromSeconds(30))) throw new TimeoutException("softnet run did not start in 30 s");
            if (error is not null) throw new InvalidOperationException($"softnet run ({kind}): {error.Message}", error);
            using (new Generator(rig.GenNs, rig.GenDev, genCpu))
            {
                WarmUp(tid, warmup);
                s0 = Snapshot.Take(rig, tid, live);
                Thread.Sleep(TimeSpan.FromSeconds(seconds));
                s1 = Snapshot.Take(rig, tid, live);
            }
        }
        finally
        {
            stop.Cancel();
            loop.Join();
        }
        if (error is not null) throw new InvalidOperationException($"softnet run ({kind}): {error.Message}", error);
        using var rep = report!;
        var reasons = rep.Replay.Drops.NonZero().Concat(rep.Scenario.Namespaces.SelectMany(n => n.Counters.Drops.NonZero()))
            .Where(x => x.Count > 0).OrderByDescending(x => x.Count).Take(3).Select(x => $"{x.Reason} {x.Count:N0}").ToList();
        var (user, sys) = s1.ThreadCpu(s0);
        return new SideResult
        {
            WindowSeconds = s1.WallSeconds - s0.WallSeconds,
            Generated = s1.GenTx - s0.GenTx,
            Forwarded = s1.SinkRx - s0.SinkRx,
            UserSeconds = user,
            SysSeconds = sys,
            SoftirqSecondsByCpu = s1.Softirq(s0, idle),
            SoftnetCpu = genCpu == netCpu ? -1 : netCpu,
            PortRx = s1.PortRx - s0.PortRx,
            PortKernelDropped = s1.PortKernelDropped - s0.PortKernelDropped,
            SoftnetPacketsIn = s1.SoftnetIn - s0.SoftnetIn,
            SoftnetDrops = s1.SoftnetDrops - s0.SoftnetDrops,
            Drops = reasons.Count == 0 ? "" : $" (whole run: {string.Join(", ", reasons)})",
        };
    }

    /// <summary>Until the loop thread has had <paramref name="seconds"/> of CPU (the runtime tiers its hot methods up by
    /// calls and time; on a busy machine the wall clock says little about either), or four times that on the wall.</summary>
    private static void WarmUp(int tid, double seconds)
    {
        long start = ThreadTimes(tid).Ns;
        var wall = Stopwatch.StartNew();
        while (wall.Elapsed.TotalSeconds < 4 * seconds && (ThreadTimes(tid).Ns - start) / 1e9 < seconds)
            Thread.Sleep(100);
    }

    private static SideResult MeasureKernel(int genCpu, double seconds, double warmup, double[] idle)
    {
        using var rig = KernelRig();
        Snapshot s0, s1;
        using (new Generator(rig.GenNs, rig.GenDev, genCpu))
        {
            Thread.Sleep(TimeSpan.FromSeconds(Math.Min(warmup, 0.5)));
            s0 = Snapshot.Take(rig, 0);
            Thread.Sleep(TimeSpan.FromSeconds(seconds));
            s1 = Snapshot.Take(rig, 0);
        }
        return new SideResult
        {
            WindowSeconds = s1.WallSeconds - s0.WallSeconds,
            Generated = s1.GenTx - s0.GenTx,
            Forwarded = s1.SinkRx - s0.SinkRx,
            SoftirqSecondsByCpu = s1.Softirq(s0, idle),
            IsKernel = true,
        };
    }

    // ---------------------------------------------------------------- counters

    /// <summary>The counters at one moment: the veths' (read first, by `ip -s -j link`), then the CPU times (both ends
    /// of a window are read in the same order, so the two windows line up).</summary>
    private readonly record struct Snapshot(long GenTx, long SinkRx, long[] SoftirqTicks, long ThreadNs, long UTicks, long STicks, double WallSeconds)
    {
        public long PortRx { get; init; }
        public long PortKernelDropped { get; init; }
        public long SoftnetIn { get; init; }
        public long SoftnetDrops { get; init; }

        public static Snapshot Take(Rig rig, int tid, LiveRun? live = null)
        {
            // Softnet's counters are its loop thread's, read from here without a lock: they only grow, and a read a
            // frame late is noise next to a window's hundreds of thousands. The ports' counters are the copy the loop
            // refreshes ten times a second (only the loop may read a port: PACKET_STATISTICS resets on read).
            long portRx = 0, portDropped = 0, softnetIn = 0, softnetDrops = 0;
            if (live is not null)
            {
                foreach (var (binding, _, ps) in live.Ports)
                    if (binding.Device == "eth0")
                    {
                        portRx += ps.RxPackets;
                        portDropped += ps.KernelRxDropped;
                    }
                softnetIn = live.Report?.PacketsIn ?? 0;
                softnetDrops = (live.Report?.Drops.Total ?? 0) + live.Scenario.Namespaces.Sum(n => n.Counters.Drops.Total);
            }
            long genTx = ScenarioBench.LinkStats(rig.GenNs)[rig.GenDev].Tx;
            long sinkRx = ScenarioBench.LinkStats(rig.SinkNs)[rig.SinkDev].Rx;
            double wall = Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
            var soft = SoftirqTicksByCpu();
            long ns = 0, ut = 0, st = 0;
            if (tid != 0) (ns, ut, st) = ThreadTimes(tid);
            return new Snapshot(genTx, sinkRx, soft, ns, ut, st, wall)
            {
                PortRx = portRx, PortKernelDropped = portDropped, SoftnetIn = softnetIn, SoftnetDrops = softnetDrops,
            };
        }

        /// <summary>The thread's CPU time over the window (schedstat's nanoseconds), split into user and sys in the
        /// proportion of the tick counts, as getrusage splits it (cputime_adjust).</summary>
        public (double User, double Sys) ThreadCpu(Snapshot before)
        {
            double total = (ThreadNs - before.ThreadNs) / 1e9;
            long u = UTicks - before.UTicks, s = STicks - before.STicks;
            double userShare = u + s > 0 ? (double)u / (u + s) : 1;
            return (total * userShare, total * (1 - userShare));
        }

        public double[] Softirq(Snapshot before, double[] idleTicksPerSecond)
        {
            double dt = WallSeconds - before.WallSeconds;
            var r = new double[SoftirqTicks.Length];
            for (int i = 0; i < r.Length; i++)
            {
                double idle = i < idleTicksPerSecond.Length ? idleTicksPerSecond[i] : 0;
                r[i] = Math.Max(0, (SoftirqTicks[i] - before.SoftirqTicks[i] - idle * dt) / ScenarioBench.UserHz);
            }
            return r;
        }
    }

    /// <summary>The softirq column of every cpuN line of /proc/stat (USER_HZ ticks), by CPU number.</summary>
    internal static long[] SoftirqTicksByCpu() => [.. Softnet.Telemetry.HostCpuTicks.PerCpu().Select(c => c[Softnet.Telemetry.HostCpuTicks.Softirq])];

    /// <summary>Each CPU's softirq ticks per second with nothing of ours running (other tenants of the machine).</summary>
    private static double[] IdleSoftirqRates()
    {
        var t0 = SoftirqTicksByCpu();
        var sw = Stopwatch.StartNew();
        Thread.Sleep(1000);
        var t1 = SoftirqTicksByCpu();
        return t1.Select((v, i) => (v - (i < t0.Length ? t0[i] : v)) / sw.Elapsed.TotalSeconds).ToArray();
    }

    /// <summary>A thread's time on the CPU in nanoseconds (schedstat) and its utime/stime ticks (stat fields 14, 15).</summary>
    private static (long Ns, long UTicks, long STicks) ThreadTimes(int tid)
    {
        string dir = $"/proc/self/task/{tid.ToString(CultureInfo.InvariantCulture)}";
        long ns = long.Parse(File.ReadAllText(dir + "/schedstat").Split(' ')[0], CultureInfo.InvariantCulture);
        string stat = File.ReadAllText(dir + "/stat");
        // The command name may hold spaces: fields are counted after its closing parenthesis (field 3 first).
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (ns, long.Parse(f[11], CultureInfo.InvariantCulture), long.Parse(f[12], CultureInfo.InvariantCulture));
    }

    /// <summary>The generator's CPU and Softnet's: the first two this process may use (one CPU: both on it).</summary>
    private static (int Gen, int Softnet) PickCpus()
    {
        var cpus = CpuAffinity.CurrentThreadAffinity()?.ToArray() ?? [];
        return cpus.Length switch
        {
            0 => (0, 0),
            1 => (cpus[0], cpus[0]),
            _ => (cpus[0], cpus[1]),
        };
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int gettid();
}
