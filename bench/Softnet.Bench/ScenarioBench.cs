using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Softnet.Capture;
using Softnet.KernelTests.Support;
using Softnet.Netfilter;
using Softnet.Topology;
using Softnet.Packets;

namespace Softnet.Bench;

/// <summary>
/// `bench scenario`: the whole path a user runs (capture → port → ring → NAPI → IP → conntrack + nat + filter →
/// forward → egress veth → the peer namespace's receive) on one core, for the docker-host scenario and a kube-node
/// scenario holding a kube-proxy ruleset of 100 or 10,000 services, against the kernel on the same frames in the same
/// run. Each case is a capture of setup frames (handshakes, bridge learning) then the measured frames, 1 µs apart,
/// with a 1 ms gap between the two. Softnet replays it with <see cref="ScenarioReplay"/> pinned to one CPU and times
/// only the measured frames (process CPU time). The kernel builds the same scenario in namespaces (KernelScenario),
/// takes the setup frames, then an AF_PACKET sender pinned to the same CPU injects the measured frames over veth
/// in passes; the cost is that CPU's softirq time (/proc/stat) per packet received on the ingress device.
/// </summary>
public static class ScenarioBench
{
    public static readonly string[] CaseNames = ["docker", "kube_100_est", "kube_100_new", "kube_10000_est", "kube_10000_new"];

    private const int Flows = 8192, Segments = 16, Payload = 100, Rounds = 5;
    /// <summary>Default warm-up time per case before the measured rounds (--warmup).</summary>
    private const double WarmupSeconds = 4;
    private const string SetupDescription = "setup frames (bridge learning, handshakes) go first; the measured frames follow 1 ms later";

    /// <summary>A frame as it arrives on <paramref name="Dev"/> of the injected namespace.</summary>
    public readonly record struct Frame(string Dev, byte[] Bytes);

    /// <summary>One benchmark case: a scenario folder, where frames enter, and the devices that carry them out.</summary>
    public sealed class Case
    {
        public required string Name { get; init; }
        public required string ScenarioDir { get; init; }
        public required string InjectNs { get; init; }
        public required string Ingress { get; init; }
        /// <summary>Devices of the injected namespace the forwarded frames leave by (toward the peer namespaces).</summary>
        public required string[] Egress { get; init; }
        public required List<Frame> Setup { get; init; }
        public required List<Frame> Measured { get; init; }
        /// <summary>Every measured frame opens a connection: the kernel's conntrack table is flushed between passes.</summary>
        public bool NewConnections { get; init; }
        public required string Description { get; init; }
        public string? CapturePath { get; set; }
        /// <summary>What a measured frame's success is counted by, in the injected namespace after the replay (default:
        /// packets sent by <see cref="Egress"/>; `bench local` counts datagrams and segments the sockets took).</summary>
        public Func<Link.Namespace, long>? Outcome { get; init; }
    }

    /// <summary>Kernel injection time per case without --seconds: the softirq column is sampled at CONFIG_HZ, so a
    /// case needs about a second of softirq time for a few per cent.</summary>
    public const double DefaultKernelSeconds = 3;

    public static int Run(BenchArgs args, bool secondsGiven = false)
    {
        // --keep DIR: the generated scenarios and captures stay, for `softnet replay --scenario` (per-stage CPU time).
        using var run = args.Forwarding("scenario", CaseNames, secondsGiven, Rounds, WarmupSeconds, "softnet-scbench-");
        var (names, kernelSeconds, rounds, warmup, work, kept) = run;
        var cases = names.Select(n => Build(n, work)).ToList();
        var r = MeasureCases("scenario", cases, kept, rounds, warmup, kernelSeconds, 16);
        if (args.Json is not null) WriteJson(args.Json, cases, r.Softnet, r.Kernel, r.Why, r.Cpu, kernelSeconds, r.Idle, rounds, warmup);
        return 0;
    }

    /// <summary>Both halves of a forwarding bench's cases: Softnet first, pinned, then the kernel on the same CPU.</summary>
    public sealed record CaseResults(Dictionary<string, SoftnetResult> Softnet, Dictionary<string, KernelResult?> Kernel, string? Why, double Idle, int Cpu);

    /// <summary>Measures <paramref name="cases"/> on both sides, printing a line per case and side (with the checks of
    /// <see cref="Check"/>), then the closing table.</summary>
    public static CaseResults MeasureCases(string bench, List<Case> cases, bool kept, int rounds, double warmup, double kernelSeconds, int nameWidth)
    {
        if (kept)
            foreach (var c in cases)
                Console.WriteLine($"kept {c.Name}: dotnet run -c Release --project src/Softnet.Cli -- replay {c.CapturePath} --scenario {c.ScenarioDir} --inject {c.InjectNs}");
        int cpu = PickCpu();
        string pin = PinProcess(cpu) ? $"pinned to CPU {cpu}" : $"NOT pinned (sched_setaffinity failed), {Environment.ProcessorCount} CPUs";
        Console.WriteLine($"softnet: {pin}; warm-up runs for {warmup:0.#} s (until the JIT's tiers settle), then best of {rounds}; {SetupDescription}");
        var softnet = new Dictionary<string, SoftnetResult>();
        foreach (var c in cases)
        {
            var r = MeasureSoftnet(c, rounds, warmup);
            softnet[c.Name] = r;
            Console.WriteLine($"softnet {c.Name.PadRight(nameWidth - 1)} {r.Pps / 1e6,7:F3} Mpps/core (CPU time; wall {r.WallPps / 1e6:F3})  {r.AllocPerPacket,6:F1} B/packet  forwarded {r.Forwarded:P1}  nat walks {r.NatWalks:P0}  ({c.Description})");
            Check(bench, "softnet", c, r.Forwarded, r.NatWalks);
        }

        string? why = KernelScenario.Unavailable() ?? (Proc.Exists("taskset") ? null : "taskset is not installed");
        var kernel = new Dictionary<string, KernelResult?>();
        double idle = double.NaN;
        if (why is null)
        {
            idle = IdleSoftirqRate(cpu);
            foreach (var c in cases)
            {
                KernelResult? k;
                try { k = MeasureKernel(c, cpu, kernelSeconds, idle); }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or JsonException or KeyNotFoundException)
                {
                    Console.Error.WriteLine($"bench {bench}: kernel {c.Name}: {e.Message}");
                    k = null;
                }
                kernel[c.Name] = k;
                if (k is null) continue;
                Console.WriteLine($"kernel  {c.Name.PadRight(nameWidth - 1)} {k.Pps / 1e6,7:F3} Mpps/core (softirq on CPU {cpu}: {k.SoftirqSeconds:F2} s for {k.Received:N0} packets, {k.Passes} passes)  forwarded {k.Forwarded:P1}  nat walks {k.NatWalks:P0}");
                Check(bench, "kernel", c, k.Forwarded, k.NatWalks);
            }
        }
        else Console.Error.WriteLine($"bench {bench}: kernel column not measured: {why}");

        PrintTable(cases, softnet, name => kernel.TryGetValue(name, out var k) ? k?.Pps : null, nameWidth);
        return new CaseResults(softnet, kernel, why, idle, cpu);
    }

    /// <summary>Says on stderr when a side did not forward the frames or did not treat them as the case means to.</summary>
    private static void Check(string bench, string side, Case c, double forwarded, double natWalks)
    {
        if (forwarded < 0.99)
            Console.Error.WriteLine($"bench {bench}: {side} {c.Name}: only {forwarded:P1} of the measured frames left by {string.Join('/', c.Egress)}");
        double expected = c.NewConnections ? 1 : 0;
        if (Math.Abs(natWalks - expected) > 0.01)
            Console.Error.WriteLine($"bench {bench}: {side} {c.Name}: {natWalks:P1} of the measured frames walked nat PREROUTING (expected {expected:P0}: " +
                (c.NewConnections ? "every frame a new connection)" : "established connections skip the nat table)"));
    }

    /// <summary>The closing table: per case the frames, both pps per core, their ratio and Softnet's allocation.</summary>
    internal static void PrintTable(List<Case> cases, Dictionary<string, SoftnetResult> softnet, Func<string, double?> kernelPps, int nameWidth)
    {
        Console.WriteLine();
        Console.WriteLine($"{"case".PadRight(nameWidth)}{"frames",9}{"softnet pps/core",18}{"kernel pps/core",17}{"softnet/kernel",16}{"alloc B/pkt",13}");
        foreach (var c in cases)
        {
            var s = softnet[c.Name];
            double? k = kernelPps(c.Name);
            string ratio = k is > 0 ? (s.Pps / k.Value).ToString("F2", CultureInfo.InvariantCulture) : "-";
            string kp = k is null ? "-" : k.Value.ToString("N0", CultureInfo.InvariantCulture);
            Console.WriteLine($"{c.Name.PadRight(nameWidth)}{c.Measured.Count,9:N0}{s.Pps,18:N0}{kp,17}{ratio,16}{s.AllocPerPacket,13:F1}");
        }
    }

    /// <summary>The keys every whole-path bench reports first: both pps per core, their ratio, the allocation, the frames.</summary>
    internal static void WriteHeadline(Utf8JsonWriter w, List<Case> cases, Dictionary<string, SoftnetResult> softnet, Func<string, double?> kernelPps)
    {
        PerCase(w, cases, "softnet_pps_per_core", c => softnet[c.Name].Pps);
        PerCase(w, cases, "kernel_pps_per_core", c => kernelPps(c.Name));
        PerCase(w, cases, "ratio", c => kernelPps(c.Name) is > 0 and var k ? softnet[c.Name].Pps / k : null, 3);
        PerCase(w, cases, "alloc_bytes_per_packet", c => softnet[c.Name].AllocPerPacket, 1);
        PerCase(w, cases, "frames", c => c.Measured.Count);
    }

    /// <summary>One JSON object keyed by case name (null where a value is missing).</summary>
    internal static void PerCase(Utf8JsonWriter w, List<Case> cases, string name, Func<Case, double?> value, int digits = 0)
    {
        w.WriteStartObject(name);
        foreach (var c in cases)
        {
            var v = value(c);
            if (v is null || double.IsNaN(v.Value)) w.WriteNull(c.Name);
            else w.WriteNumber(c.Name, Math.Round(v.Value, digits));
        }
        w.WriteEndObject();
    }

    private static void WriteJson(string path, List<Case> cases, Dictionary<string, SoftnetResult> softnet, Dictionary<string, KernelResult?> kernel,
        string? why, int cpu, double kernelSeconds, double idleTicksPerSecond, int rounds, double warmup)
    {
        using var f = File.Create(path);
        using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        void PerCase(string name, Func<Case, double?> value, int digits = 0) => ScenarioBench.PerCase(w, cases, name, value, digits);
        KernelResult? K(Case c) => kernel.TryGetValue(c.Name, out var k) ? k : null;
        w.WriteStartObject();
        WriteHeadline(w, cases, softnet, name => kernel.TryGetValue(name, out var k) ? k?.Pps : null);
        PerCase("setup_frames", c => c.Setup.Count);
        PerCase("kernel_packets", c => K(c)?.Received);
        PerCase("softnet_forwarded", c => softnet[c.Name].Forwarded, 4);
        PerCase("kernel_forwarded", c => K(c)?.Forwarded, 4);
        PerCase("softnet_pps_wall", c => softnet[c.Name].WallPps);
        PerCase("softnet_nat_walks", c => softnet[c.Name].NatWalks, 4);
        PerCase("kernel_nat_walks", c => K(c)?.NatWalks, 4);
        PerCase("kernel_softirq_seconds", c => K(c)?.SoftirqSeconds, 3);
        w.WriteNumber("kernel_send_seconds_per_case", kernelSeconds);
        if (!double.IsNaN(idleTicksPerSecond)) w.WriteNumber("kernel_idle_softirq_ticks_per_second", Math.Round(idleTicksPerSecond, 2));
        if (why is not null) w.WriteString("kernel_unavailable", why);
        w.WriteNumber("cpu", cpu);
        w.WriteString("softnet_method", $"ScenarioReplay.Run on the capture, all threads pinned to CPU {cpu}; warm-up replays for {warmup:0.#} s, then best of {rounds}; " +
            "pps = measured frames / process CPU time (getrusage) from the first measured frame's arrival (all setup frames processed, and the setup's garbage collected before the clocks start) to the end of the replay; " +
            "alloc = GC.GetAllocatedBytesForCurrentThread over the same window / measured frames");
        w.WriteString("kernel_method", $"the scenario in network namespaces (KernelScenario), setup frames injected once, then an AF_PACKET sender pinned to CPU {cpu} " +
            "injects the measured frames over veth in passes (conntrack -F between passes of _new cases); pps = rx_packets of the ingress device / " +
            $"softirq time of CPU {cpu} from /proc/stat (tick-sampled, idle rate subtracted); forwarded = tx_packets of the egress devices / rx_packets");
        w.WriteString("traffic", $"_est and docker: {Flows} TCP flows (handshake in the setup), {Segments} data segments of {Payload} B each, round robin over the flows; " +
            $"_new: {Flows * Segments} SYNs with distinct source address/port; kube: 3 of 4 to ClusterIPs from pod-CIDR clients on another node, 1 of 4 to NodePorts (MASQUERADE)");
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- cases and frames

    /// <summary>The scenarios folder of the kernel tests, found from the build output or the working directory upward.</summary>
    internal static string ScenariosRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            {
                string p = Path.Combine(d.FullName, "tests", "Softnet.KernelTests", "Scenarios");
                if (Directory.Exists(p)) return p;
            }
        throw new InvalidOperationException("tests/Softnet.KernelTests/Scenarios not found above the build output or the working directory");
    }

    /// <summary>Builds a case's frames and capture (pcapng, if_name = arrival device) under <paramref name="work"/>.</summary>
    public static Case Build(string name, string work, int flows = Flows, int segments = Segments)
    {
        var c = name switch
        {
            "docker" => Docker(flows, segments),
            _ when name.StartsWith("kube_", StringComparison.Ordinal) => Kube(name, work, flows, segments),
            _ => throw new ArgumentException($"no case '{name}'"),
        };
        c.CapturePath = Path.Combine(work, name + ".pcapng");
        WriteCapture(c, c.CapturePath);
        return c;
    }

    public static void WriteCapture(Case c, string path)
    {
        var devs = c.Setup.Concat(c.Measured).Select(f => f.Dev).Distinct().ToList();
        using var w = PcapngWriter.Create(path, devs.Select(d => new CaptureInterface(LinkType.Ethernet, 262144, d, 1_000_000_000)).ToList());
        long t = 1_700_000_000_000_000_000;
        foreach (var f in c.Setup) { w.Write(t, f.Bytes, interfaceId: devs.IndexOf(f.Dev)); t += 1000; }
        t += 1_000_000;
        foreach (var f in c.Measured) { w.Write(t, f.Bytes, interfaceId: devs.IndexOf(f.Dev)); t += 1000; }
    }

    private const byte Syn = TcpFlags.Syn, Ack = TcpFlags.Ack, Psh = TcpFlags.Psh;

    /// <summary>A TCP flow as the client sees it (to Dst:DstPort) and where the server's replies come from and go to.</summary>
    private readonly record struct Flow(uint Client, ushort Port, uint Dst, ushort DstPort, uint Server, ushort ServerPort, uint ReplyTo,
        string ServerDev, string ServerMac);

    /// <summary>SYN, SYN-ACK, ACK of every flow into <paramref name="setup"/>; <paramref name="segments"/> data segments per flow,
    /// round robin over the flows, into <paramref name="measured"/>.</summary>
    private static void TcpFlows(List<Flow> flows, int segments, string inDev, string inMac, string wireMac, string bridgeMac,
        List<Frame> setup, List<Frame> measured)
    {
        static uint Isn(int k) => 1000u + (uint)k * 7919u;
        static uint ServerIsn(int k) => 500_000u + (uint)k * 104_729u;
        Frame In(Flow f, byte flags, uint seq, uint ack, int payload)
            => new(inDev, Frames.Eth(inMac, wireMac, Frames.Tcp(Ipv4.Format(f.Client), f.Port, Ipv4.Format(f.Dst), f.DstPort, flags, seq, ack, payload)));
        for (int k = 0; k < flows.Count; k++) setup.Add(In(flows[k], Syn, Isn(k), 0, 0));
        for (int k = 0; k < flows.Count; k++)
        {
            var f = flows[k];
            setup.Add(new(f.ServerDev, Frames.Eth(bridgeMac, f.ServerMac,
                Frames.Tcp(Ipv4.Format(f.Server), f.ServerPort, Ipv4.Format(f.ReplyTo), f.Port, (byte)(Syn | Ack), ServerIsn(k), Isn(k) + 1))));
        }
        for (int k = 0; k < flows.Count; k++) setup.Add(In(flows[k], Ack, Isn(k) + 1, ServerIsn(k) + 1, 0));
        // Unacknowledged data stays inside the SYN-ACK's window (64240): conntrack's tcp_in_window keeps it valid on every pass.
        for (int d = 0; d < segments; d++)
            for (int k = 0; k < flows.Count; k++)
                measured.Add(In(flows[k], (byte)(Psh | Ack), Isn(k) + 1 + (uint)(d * Payload), ServerIsn(k) + 1, Payload));
    }

    /// <summary>docker-host: clients on the wire open connections to the published port 8080 (DNAT to 172.17.0.2:80 behind docker0).</summary>
    private static Case Docker(int flowCount, int segments)
    {
        const string wire = "02:00:c0:00:02:64", eth0 = "02:00:c0:00:02:0a", docker0 = "02:42:ac:11:00:01", c1Mac = "02:42:ac:11:00:02";
        uint host = Ipv4.Parse("192.0.2.10"), c1 = Ipv4.Parse("172.17.0.2"), clients = Ipv4.Parse("100.64.0.0");
        var flows = new List<Flow>();
        for (int k = 0; k < flowCount; k++)
        {
            uint client = clients + 1 + (uint)(k / 16);
            flows.Add(new Flow(client, (ushort)(40000 + k % 16), host, 8080, c1, 80, client, "vethc1", c1Mac));
        }
        var setup = new List<Frame>();
        var measured = new List<Frame>();
        TcpFlows(flows, segments, "eth0", eth0, wire, docker0, setup, measured);
        return new Case
        {
            Name = "docker",
            ScenarioDir = Path.Combine(ScenariosRoot(), "docker-host"),
            InjectNs = "host",
            Ingress = "eth0",
            Egress = ["vethc1"],
            Setup = setup,
            Measured = measured,
            Description = $"docker-host, {flowCount} established flows to the published port",
        };
    }

    /// <summary>
    /// kube-node with a generated kube-proxy ruleset: clients on the wire (eth0) reach ClusterIPs (from pod-CIDR addresses
    /// on another node: not masqueraded) and NodePorts (masqueraded to cni0's address); endpoints behind cni0.
    /// </summary>
    private static Case Kube(string name, string work, int flowCount, int segments)
    {
        var parts = name.Split('_');
        if (parts.Length != 3 || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out int services) || parts[2] is not ("est" or "new"))
            throw new ArgumentException($"no case '{name}' (kube_N_est or kube_N_new)");
        bool fresh = parts[2] == "new";
        var k = KubeProxyRules.Generate(new KubeProxyOptions { Services = services });
        string dir = KubeScenario(work, $"kube-node-{services}", k);

        const string wire = "02:00:c0:a8:01:64", eth0 = "02:00:c0:a8:01:0a", cni0 = "02:00:0a:f4:00:01";
        string[] podMac = ["02:00:0a:f4:00:0b", "02:00:0a:f4:00:0c", "02:00:0a:f4:00:0d"];
        uint node = Ipv4.Parse("192.168.1.10"), cni0Ip = Ipv4.Parse("10.244.0.1"), podClients = Ipv4.Parse("10.244.128.0"),
            outsideClients = Ipv4.Parse("172.16.0.0"), pod1 = Ipv4.Parse("10.244.0.11");
        // Endpoints 10.244.0.12/.13 are pods 2 and 3; every other endpoint is reached through pod1 (route and neighbours).
        int PodOf(uint ep) => ep - pod1 is 1 or 2 ? (int)(ep - pod1) : 0;

        // A known reply tuple needs a known endpoint: _est flows use single-endpoint services (kube-proxy's random choice
        // differs between the kernel and Softnet); _new flows hit every TCP service with endpoints.
        var tcp = k.Services.Where(s => s.Protocol == 6 && s.Endpoints.Count >= 1 && (fresh || s.Endpoints.Count == 1)).ToList();
        var nodePorts = tcp.Where(s => s.NodePort != 0).ToList();
        var rng = new Random(services * 2 + (fresh ? 1 : 0));
        int count = fresh ? flowCount * segments : flowCount;
        var flows = new List<Flow>(count);
        int np = 0;
        for (int i = 0; i < count; i++)
        {
            if (i % 4 == 0 && nodePorts.Count > 0)
            {
                // NodePort: unique source ports, so MASQUERADE keeps each one (no clash) and the reply tuple is known.
                var s = nodePorts[rng.Next(nodePorts.Count)];
                var (ep, epPort) = s.Endpoints[0];
                uint client = outsideClients + 1 + (uint)(np / 50_000);
                flows.Add(new Flow(client, (ushort)(10_000 + np % 50_000), node, s.NodePort, ep, epPort, cni0Ip, $"vethp{PodOf(ep) + 1}", podMac[PodOf(ep)]));
                np++;
            }
            else
            {
                var s = tcp[rng.Next(tcp.Count)];
                var (ep, epPort) = s.Endpoints[0];
                uint client = podClients + 1 + (uint)(i % 30_000);
                flows.Add(new Flow(client, (ushort)(20_000 + i / 30_000), s.ClusterIp, s.Port, ep, epPort, client, $"vethp{PodOf(ep) + 1}", podMac[PodOf(ep)]));
            }
        }

        var setup = new List<Frame>();
        var measured = new List<Frame>();
        // Each pod speaks first, so the cni0 bridge has learned its MAC (no flooding to every port).
        for (int p = 0; p < 3; p++)
            setup.Add(new($"vethp{p + 1}", Frames.Eth(cni0, podMac[p], Frames.Udp(Ipv4.Format(pod1 + (uint)p), 7000, "192.168.1.100", 9))));
        if (fresh)
        {
            for (int i = 0; i < flows.Count; i++)
            {
                var f = flows[i];
                measured.Add(new("eth0", Frames.Eth(eth0, wire, Frames.Tcp(Ipv4.Format(f.Client), f.Port, Ipv4.Format(f.Dst), f.DstPort, Syn, 1000u + (uint)i * 7919u))));
            }
        }
        else TcpFlows(flows, segments, "eth0", eth0, wire, cni0, setup, measured);
        return new Case
        {
            Name = name,
            ScenarioDir = dir,
            InjectNs = "node",
            Ingress = "eth0",
            Egress = ["vethp1", "vethp2", "vethp3"],
            Setup = setup,
            Measured = measured,
            NewConnections = fresh,
            Description = $"kube-node, {services} services ({k.RuleCount} rules), " + (fresh ? $"{count} new connections (SYNs)" : $"{count} established flows"),
        };
    }

    /// <summary>tests/.../Scenarios/kube-node with the node's ruleset replaced by <paramref name="k"/> and a route plus
    /// neighbours to its endpoints (10.244.0.0/17) through the pods.</summary>
    private static string KubeScenario(string work, string name, KubeProxyRuleset k)
    {
        string src = Path.Combine(ScenariosRoot(), "kube-node"), dir = Path.Combine(work, name);
        if (Directory.Exists(dir)) return dir; // the _est and _new cases of one ruleset share it
        ScenarioFiles.Copy(src, dir);
        // MASQUERADE without --random-fully keeps the client's port (as in kube-node/iptables.save): the reply tuple is known.
        File.WriteAllText(Path.Combine(dir, "ns", "node", "iptables.save"), k.Text.Replace(" --random-fully", "", StringComparison.Ordinal));
        var ip = new StringBuilder(File.ReadAllText(Path.Combine(dir, "ns", "node", "ip.batch")).TrimEnd('\n')).Append('\n');
        ip.Append("route add 10.244.0.0/17 via 10.244.0.11 dev cni0\n");
        for (int h = 2; h <= 251; h++)
            if (h is not (11 or 12 or 13))
                ip.Append(CultureInfo.InvariantCulture, $"neigh add 10.244.0.{h} lladdr 02:00:0a:f4:00:0b dev cni0 nud permanent\n");
        File.WriteAllText(Path.Combine(dir, "ns", "node", "ip.batch"), ip.ToString());
        return dir;
    }

    // ---------------------------------------------------------------- Softnet

    /// <summary>NatWalks: share of the measured packets that traversed nat PREROUTING (its first rule's counter): 0 when
    /// every packet belongs to an established connection, 1 when each opens one.</summary>
    public sealed record SoftnetResult(double Pps, double WallPps, double AllocPerPacket, double Forwarded, double NatWalks);

    /// <summary>What one replay gives the bench: the measured window and the packets that left by the egress devices.</summary>
    public readonly record struct ReplayWindow(double CpuSeconds, double WallSeconds, long AllocBytes, long Egress, long NatWalks);

    /// <summary>
    /// The one call into the scenario replay (re-point it here when that API moves). The window opens when the frame
    /// after the setup has been offered to the NIC (the 1 ms gap before it let NAPI finish every setup frame) and closes at
    /// the replay's last progress call (the NIC drained); Progress runs on this thread in deterministic mode.
    /// </summary>
    public static ReplayWindow ReplayScenario(Case c, string capturePath, int setupFrames, long totalFrames, bool counters = false)
    {
        long open = setupFrames + 1;
        TimeSpan cpu0 = default, cpu1 = default;
        long wall0 = 0, wall1 = 0, alloc0 = 0, alloc1 = 0;
        bool opened = false;
        var defaults = new ScenarioOptions();
        var options = defaults with
        {
            Replay = defaults.Replay with
            {
                ProgressEvery = (int)open,
                Progress = (n, _) =>
                {
                    if (n == open && !opened)
                    {
                        opened = true;
                        // Loading the scenario (a 10,000-service ruleset is megabytes of parse garbage) must not be
                        // collected inside the window: collect it now, before the clocks start. The datapath itself
                        // allocates nothing per packet, so nothing else is left for the GC to do in the window.
                        GC.Collect();
                        GC.WaitForPendingFinalizers();
                        alloc0 = GC.GetAllocatedBytesForCurrentThread();
                        cpu0 = Environment.CpuUsage.TotalTime;
                        wall0 = Stopwatch.GetTimestamp();
                    }
                    else if (n == totalFrames)
                    {
                        wall1 = Stopwatch.GetTimestamp();
                        cpu1 = Environment.CpuUsage.TotalTime;
                        alloc1 = GC.GetAllocatedBytesForCurrentThread();
                    }
                },
            },
        };
        // Disposed at the end, as `ip netns del` would: the namespaces' conntrack entries go back to the slab.
        using var report = ScenarioReplay.Run(c.ScenarioDir, capturePath, c.InjectNs, outDir: "", options);
        var ns = report.Scenario.Namespace(c.InjectNs)!;
        long egress = c.Outcome?.Invoke(ns) ?? c.Egress.Sum(d => ns.Device(d)?.TxPackets ?? 0);
        long nat = counters ? NatPreroutingPackets(ScenarioDump.IptablesSaveText(ns, DateTimeOffset.UnixEpoch)) : 0;
        if (!opened || wall1 == 0)
            return new ReplayWindow(double.NaN, double.NaN, 0, egress, nat);
        return new ReplayWindow((cpu1 - cpu0).TotalSeconds, Stopwatch.GetElapsedTime(wall0, wall1).TotalSeconds, alloc1 - alloc0, egress, nat);
    }

    /// <summary>Warm-up replays (at least one, for <paramref name="warmupSeconds"/>), then the best of
    /// <paramref name="rounds"/>; a setup-only replay gives the egress the setup caused.</summary>
    public static SoftnetResult MeasureSoftnet(Case c, int rounds = Rounds, double warmupSeconds = 0)
    {
        string setupOnly = c.CapturePath + ".setup.pcapng";
        WriteCapture(new Case { Name = c.Name, ScenarioDir = c.ScenarioDir, InjectNs = c.InjectNs, Ingress = c.Ingress, Egress = c.Egress, Setup = c.Setup, Measured = [], Description = "", Outcome = c.Outcome }, setupOnly);
        var setup = ReplayScenario(c, setupOnly, c.Setup.Count, c.Setup.Count, counters: true);
        File.Delete(setupOnly);

        long total = c.Setup.Count + c.Measured.Count;
        var warm = ReplayScenario(c, c.CapturePath!, c.Setup.Count, total, counters: true);
        // More warm-up replays until warmupSeconds have passed: the runtime moves hot methods from tier 0 through an
        // instrumented tier to tier 1 over the first seconds (PGO counting helpers showed up in the first rounds'
        // profiles at a tenth of the time), and a user's replay of a real capture runs in that steady state.
        var warmClock = Stopwatch.StartNew();
        while (warmClock.Elapsed.TotalSeconds < warmupSeconds)
            ReplayScenario(c, c.CapturePath!, c.Setup.Count, total);
        ReplayWindow best = default;
        for (int r = 0; r < rounds; r++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var w = ReplayScenario(c, c.CapturePath!, c.Setup.Count, total);
            if (double.IsNaN(w.CpuSeconds))
                throw new InvalidOperationException("the replay's progress callback never opened or closed the measured window: re-point ScenarioBench.ReplayScenario at the new API");
            if (r == 0 || w.CpuSeconds < best.CpuSeconds) best = w;
        }
        // The frame after the setup opens the window, so it is measured with n - 1 of the others: count all n.
        double n = c.Measured.Count;
        return new SoftnetResult(n / best.CpuSeconds, n / best.WallSeconds, best.AllocBytes / n, (best.Egress - setup.Egress) / n,
            (warm.NatWalks - setup.NatWalks) / n);
    }

    // ---------------------------------------------------------------- CPU pinning

    /// <summary>The last CPU this process may run on (the kernel sender and Softnet share it).</summary>
    public static int PickCpu()
    {
        var mask = Softnet.Napi.CpuAffinity.CurrentThreadAffinity();
        var cpus = mask?.ToArray();
        return cpus is { Length: > 0 } ? cpus[^1] : 0;
    }

    /// <summary>sched_setaffinity on every thread of the process (threads started later inherit the mask).</summary>
    internal static unsafe bool PinProcess(int cpu)
    {
        if (!OperatingSystem.IsLinux()) return false;
        var mask = new ulong[16];
        mask[cpu / 64] = 1UL << (cpu % 64);
        bool all = true;
        fixed (ulong* m = mask)
            foreach (var task in Directory.GetDirectories("/proc/self/task"))
                if (int.TryParse(Path.GetFileName(task), out int tid) && sched_setaffinity(tid, mask.Length * 8, m) != 0)
                    all &= !Directory.Exists(task); // a thread that ended meanwhile is not a failure
        return all;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern unsafe int sched_setaffinity(int pid, nint cpusetsize, ulong* mask);

    // ---------------------------------------------------------------- kernel

    public sealed record KernelResult(double Pps, long Received, double Forwarded, double SoftirqSeconds, int Passes, double NatWalks);

    /// <summary>Packets counted by the first rule of nat PREROUTING in an `iptables-save -c` text (every packet that
    /// walks the nat table: a connection's first).</summary>
    public static long NatPreroutingPackets(string save)
    {
        bool nat = false;
        foreach (var raw in save.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith('*')) nat = line == "*nat";
            else if (nat && line.StartsWith('[') && line.Contains("] -A PREROUTING ", StringComparison.Ordinal))
                return long.Parse(line[1..line.IndexOf(':')], CultureInfo.InvariantCulture);
        }
        return 0;
    }

    private static long KernelNatPrerouting(string ns) => NatPreroutingPackets(Proc.Check("ip", "netns", "exec", ns, "iptables-save", "-c", "-t", "nat"));

    private static int s_kernelRuns;

    internal const double UserHz = Softnet.Telemetry.HostCpuTicks.UserHz;

    /// <summary>softirq column of CPU <paramref name="cpu"/> in /proc/stat (USER_HZ ticks).</summary>
    internal static long SoftirqTicks(int cpu) => Softnet.Telemetry.HostCpuTicks.Of(cpu, Softnet.Telemetry.HostCpuTicks.Softirq);

    internal static double IdleSoftirqRate(int cpu)
    {
        long t0 = SoftirqTicks(cpu);
        var sw = Stopwatch.StartNew();
        Thread.Sleep(1000);
        return (SoftirqTicks(cpu) - t0) / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Packets counters of the devices of a kernel namespace (`ip -s -j link show`).</summary>
    internal static Dictionary<string, (long Rx, long Tx)> LinkStats(string ns)
    {
        using var doc = JsonDocument.Parse(Proc.Check("ip", "-n", ns, "-s", "-j", "link", "show"));
        var d = new Dictionary<string, (long, long)>();
        foreach (var l in doc.RootElement.EnumerateArray())
        {
            var s = l.GetProperty("stats64");
            d[l.GetProperty("ifname").GetString()!] = (s.GetProperty("rx").GetProperty("packets").GetInt64(), s.GetProperty("tx").GetProperty("packets").GetInt64());
        }
        return d;
    }

    public static KernelResult? MeasureKernel(Case c, int cpu, double seconds, double idleTicksPerSecond)
    {
        var folder = ScenarioFolder.Load(c.ScenarioDir);
        string prefix = $"snb{Environment.ProcessId}x{Interlocked.Increment(ref s_kernelRuns)}";
        string work = Directory.CreateTempSubdirectory("softnet-scbench-k-").FullName;
        var created = new List<string>();
        try
        {
            KernelScenario.Build(folder, prefix, work, created);
            // Frames are sent by the veth peer of their arrival device.
            var devs = c.Setup.Concat(c.Measured).Select(f => f.Dev).Distinct().ToList();
            var targets = devs.Select(d => KernelScenario.Peer(folder, prefix, c.InjectNs, d)).ToList();
            void WriteFrames(string path, List<Frame> frames)
            {
                using var w = new BinaryWriter(File.Create(path));
                foreach (var f in frames)
                {
                    w.Write((byte)devs.IndexOf(f.Dev));
                    w.Write((ushort)f.Bytes.Length);
                    w.Write(f.Bytes);
                }
            }
            WriteFrames(Path.Combine(work, "setup.bin"), c.Setup);
            WriteFrames(Path.Combine(work, "measured.bin"), c.Measured);
            File.WriteAllText(Path.Combine(work, "send.py"), SenderScript);
            string node = KernelScenario.KernelName(prefix, c.InjectNs);
            var cfg = new Dictionary<string, object>
            {
                ["targets"] = targets.Select(t => new[] { $"/run/netns/{KernelScenario.KernelName(prefix, t.Ns)}", t.Dev }).ToArray(),
                ["cpu"] = cpu,
                ["flush"] = c.NewConnections ? new[] { "ip", "netns", "exec", node, "conntrack", "-F" } : Array.Empty<string>(),
            };
            File.WriteAllText(Path.Combine(work, "cfg.json"), JsonSerializer.Serialize(cfg));
            string S(double v) => v.ToString(CultureInfo.InvariantCulture);

            var setup = Proc.Run("taskset", ["-c", S(cpu), "python3", Path.Combine(work, "send.py"), Path.Combine(work, "cfg.json"), Path.Combine(work, "setup.bin"), "0"], 120_000);
            if (setup.Exit != 0) throw new InvalidOperationException($"setup sender failed: {setup.Stderr.Trim()}");
            Thread.Sleep(200);

            var before = LinkStats(node);
            long nat0 = KernelNatPrerouting(node);
            var run = Proc.Run("taskset", ["-c", S(cpu), "python3", Path.Combine(work, "send.py"), Path.Combine(work, "cfg.json"), Path.Combine(work, "measured.bin"), S(seconds)],
                (int)(seconds * 1000) + 120_000);
            if (run.Exit != 0) throw new InvalidOperationException($"sender failed: {run.Stderr.Trim()}");
            var after = LinkStats(node);
            long nat1 = KernelNatPrerouting(node);
            using var outJson = JsonDocument.Parse(run.Stdout);
            var o = outJson.RootElement;
            long ticks = o.GetProperty("ticks").GetInt64();
            double sendSeconds = o.GetProperty("seconds").GetDouble();
            int passes = o.GetProperty("passes").GetInt32();

            long rx = after[c.Ingress].Rx - before[c.Ingress].Rx;
            long tx = c.Egress.Sum(d => after[d].Tx - before[d].Tx);
            double soft = (ticks - idleTicksPerSecond * sendSeconds) / UserHz;
            if (rx == 0 || soft <= 0)
            {
                Console.Error.WriteLine($"bench scenario: kernel {c.Name}: no softirq time or no packets measured (rx {rx}, softirq ticks {ticks})");
                return null;
            }
            return new KernelResult(rx / soft, rx, (double)tx / rx, soft, passes, (double)(nat1 - nat0) / rx);
        }
        finally
        {
            foreach (var ns in created) Proc.Run("ip", "netns", "del", ns);
            try { Directory.Delete(work, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// AF_PACKET sender: a socket bound to each target device inside its namespace (setns), then the frames once
    /// (seconds = 0) or in passes until `seconds` of sending, summing this CPU's softirq ticks over the passes only
    /// (the conntrack flush between passes is outside). Prints {"sent","ticks","seconds","passes"}.
    /// </summary>
    private const string SenderScript = """
import ctypes, json, os, socket, struct, subprocess, sys, time
cfg = json.load(open(sys.argv[1])); data = open(sys.argv[2], 'rb').read(); seconds = float(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
home = os.open('/proc/self/ns/net', os.O_RDONLY)
def enter(fd):
    if libc.setns(fd, 0x40000000) != 0:
        raise OSError(ctypes.get_errno(), 'setns')
sends = []
for path, dev in cfg['targets']:
    fd = os.open(path, os.O_RDONLY); enter(fd); os.close(fd)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((dev, 0))
    sends.append(s.send)
enter(home)
frames = []
i = 0
while i < len(data):
    t, n = struct.unpack_from('<BH', data, i)
    frames.append((sends[t], data[i + 3:i + 3 + n])); i += 3 + n
chunks = [frames[j:j + 512] for j in range(0, len(frames), 512)]
cpu = 'cpu%d ' % cfg['cpu']
def ticks():
    with open('/proc/stat') as f:
        for line in f:
            if line.startswith(cpu):
                return int(line.split()[7])
sent = 0; tick_sum = 0; busy = 0.0; passes = 0
if seconds <= 0:
    for send, f in frames:
        send(f)
    sent = len(frames)
else:
    while busy < seconds:
        if passes > 0 and cfg['flush']:
            subprocess.run(cfg['flush'], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = ticks(); w0 = time.monotonic()
        for chunk in chunks:
            for send, f in chunk:
                send(f)
            sent += len(chunk)
            if busy + time.monotonic() - w0 >= seconds:
                break
        busy += time.monotonic() - w0; tick_sum += ticks() - t0; passes += 1
print(json.dumps({'sent': sent, 'ticks': tick_sum, 'seconds': busy, 'passes': passes}))
""";
}
