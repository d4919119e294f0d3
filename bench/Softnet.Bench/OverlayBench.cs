using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Topology;
using Softnet.Topology.Default;

namespace Softnet.Bench;

/// <summary>
/// `bench overlay`: pod traffic over flannel's VXLAN through conntrack and a kube-proxy ruleset (100 services, flanneld's
/// masquerade and forward rules), the two halves of the overlay path, each against the kernel on the same frames in the
/// same run (the scenario machinery of <see cref="ScenarioBench"/>: Softnet pinned to one CPU, process CPU time; the
/// kernel's softirq time on that CPU while an AF_PACKET sender pinned there injects the frames over veth).
/// <para>encap: the sending node (node1 of flannel-vxlan): TCP segments from pod1 enter at its veth, are forwarded
/// through conntrack and the rules to flannel.1, encapsulated (vxlan_xmit) and sent by ip_local_out out of eth1, the
/// outer datagram crossing the node's OUTPUT and POSTROUTING hooks: the stack twice on the way out.</para>
/// <para>decap: the receiving node (node2): the same segments arrive on eth1 as VXLAN datagrams, go up to the UDP
/// socket on port 8472, are decapsulated and received again on flannel.1 (the second traversal), then forwarded through
/// conntrack and the rules into pod2's veth.</para>
/// <para>Connections are established in the setup (SYN, the SYN-ACK the other way, ACK); the measured segments are
/// round robin over the flows, so no two consecutive segments of a flow meet in GRO.</para>
/// </summary>
public static class OverlayBench
{
    public static readonly string[] CaseNames = ["encap", "decap"];

    private const int Flows = 4096, Segments = 16, Payload = 100, Services = 100, Rounds = 5;
    private const double WarmupSeconds = 3;
    private const string Pod1 = "10.244.0.2", Pod2 = "10.244.1.2", Node1 = "10.0.0.1", Node2 = "10.0.0.2";
    private const string Pod1Mac = "02:00:0a:f4:00:02", Vethp1 = "02:00:0a:f4:00:01", Pod2Mac = "02:00:0a:f4:01:02", Vethp2 = "02:00:0a:f4:01:01";
    private const string Eth1Node1 = "02:00:0a:00:00:01", Eth1Node2 = "02:00:0a:00:00:02";
    private const string Flannel1 = "02:00:0f:00:00:01", Flannel2 = "02:00:0f:00:00:02";
    private const ushort ServerPort = 5201;

    public static int Run(BenchArgs args, bool secondsGiven = false)
    {
        using var run = args.Forwarding("overlay", CaseNames, secondsGiven, Rounds, WarmupSeconds, "softnet-overlay-");
        var (names, kernelSeconds, rounds, warmup, work, kept) = run;
        string scenario = BuildScenario(work);
        var cases = names.Select(n => Build(n, scenario, work)).ToList();
        var r = ScenarioBench.MeasureCases("overlay", cases, kept, rounds, warmup, kernelSeconds, 8);
        if (args.Json is not null) WriteJson(args.Json, cases, r.Softnet, r.Kernel, r.Why, r.Cpu, kernelSeconds, r.Idle, rounds, warmup);
        return 0;
    }

    /// <summary>tests/.../Scenarios/flannel-vxlan with each node holding a kube-proxy ruleset and flanneld's rules
    /// (conntrack on in both nodes).</summary>
    public static string BuildScenario(string work)
    {
        string src = Path.Combine(ScenarioBench.ScenariosRoot(), "flannel-vxlan"), dir = Path.Combine(work, "flannel-kube");
        ScenarioFiles.Copy(src, dir);
        // MASQUERADE without --random-fully, as in the default scenario (the rules a new connection walks are the same).
        File.WriteAllText(Path.Combine(dir, "ns", "node1", "iptables.save"), TwoNodeOverlay.NodeRules("10.244.0.0/24", Services).Replace(" --random-fully", "", StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(dir, "ns", "node2", "iptables.save"), TwoNodeOverlay.NodeRules("10.244.1.0/24", Services).Replace(" --random-fully", "", StringComparison.Ordinal));
        return dir;
    }

    public static ScenarioBench.Case Build(string name, string scenario, string work, int flows = Flows, int segments = Segments)
    {
        static uint Isn(int k) => 1000u + (uint)k * 7919u;
        static uint ServerIsn(int k) => 500_000u + (uint)k * 104_729u;
        static ushort Port(int k) => (ushort)(20_000 + k);
        static byte[] Client(int k, byte flags, uint seq, uint ack, int payload) => Frames.Tcp(Pod1, Port(k), Pod2, ServerPort, flags, seq, ack, payload);
        static byte[] Server(int k) => Frames.Tcp(Pod2, ServerPort, Pod1, Port(k), TcpFlags.Syn | TcpFlags.Ack, ServerIsn(k), Isn(k) + 1);
        bool encap = name == "encap";
        // encap: pod1's frames on node1's vethp1; the SYN-ACK comes back from node2 as VXLAN on eth1.
        // decap: pod1's frames arrive on node2's eth1 as node1 wraps them; the SYN-ACK leaves pod2 on vethp2.
        ScenarioBench.Frame FromClient(int k, byte[] ip) => encap
            ? new("vethp1", Frames.Eth(Vethp1, Pod1Mac, ip))
            : new("eth1", Frames.Eth(Eth1Node2, Eth1Node1, Vxlan(Node1, Node2, OuterPort(k), Frames.Eth(Flannel2, Flannel1, ip))));
        ScenarioBench.Frame FromServer(int k, byte[] ip) => encap
            ? new("eth1", Frames.Eth(Eth1Node1, Eth1Node2, Vxlan(Node2, Node1, OuterPort(k), Frames.Eth(Flannel1, Flannel2, ip))))
            : new("vethp2", Frames.Eth(Vethp2, Pod2Mac, ip));
        var setup = new List<ScenarioBench.Frame>();
        var measured = new List<ScenarioBench.Frame>();
        for (int k = 0; k < flows; k++) setup.Add(FromClient(k, Client(k, TcpFlags.Syn, Isn(k), 0, 0)));
        for (int k = 0; k < flows; k++) setup.Add(FromServer(k, Server(k)));
        for (int k = 0; k < flows; k++) setup.Add(FromClient(k, Client(k, TcpFlags.Ack, Isn(k) + 1, ServerIsn(k) + 1, 0)));
        // Unacknowledged data stays inside the SYN-ACK's window, so conntrack keeps it valid on every pass.
        for (int d = 0; d < segments; d++)
            for (int k = 0; k < flows; k++)
                measured.Add(FromClient(k, Client(k, TcpFlags.Psh | TcpFlags.Ack, Isn(k) + 1 + (uint)(d * Payload), ServerIsn(k) + 1, Payload)));
        var c = new ScenarioBench.Case
        {
            Name = name,
            ScenarioDir = scenario,
            InjectNs = encap ? "node1" : "node2",
            Ingress = encap ? "vethp1" : "eth1",
            Egress = [encap ? "eth1" : "vethp2"],
            Setup = setup,
            Measured = measured,
            Description = encap
                ? $"node1: {flows} established pod1->pod2 flows in at vethp1, out of eth1 in VXLAN, {Services} kube-proxy services"
                : $"node2: {flows} established pod1->pod2 flows in at eth1 in VXLAN, decapsulated, out to pod2, {Services} kube-proxy services",
        };
        c.CapturePath = Path.Combine(work, name + ".pcapng");
        ScenarioBench.WriteCapture(c, c.CapturePath);
        return c;
    }

    /// <summary>A node's outer source port for flow <paramref name="k"/> (any port in the kernel's range: the receiver
    /// does not look at it).</summary>
    private static ushort OuterPort(int k) => (ushort)(32768 + k * 7 % 28000);

    /// <summary>An outer IPv4/UDP/VXLAN datagram (VNI 1, no outer UDP checksum, no DF) around <paramref name="inner"/>.</summary>
    private static byte[] Vxlan(string src, string dst, ushort sport, byte[] inner)
        => ScenarioTrafficVxlan.Vxlan(1, inner, src: src, dst: dst, sport: sport, id: 0x1234);

    private static void WriteJson(string path, List<ScenarioBench.Case> cases, Dictionary<string, ScenarioBench.SoftnetResult> softnet,
        Dictionary<string, ScenarioBench.KernelResult?> kernel, string? why, int cpu, double kernelSeconds, double idle, int rounds, double warmup)
    {
        using var f = File.Create(path);
        using var w = new Utf8JsonWriter(f, new JsonWriterOptions { Indented = true });
        ScenarioBench.KernelResult? K(ScenarioBench.Case c) => kernel.TryGetValue(c.Name, out var k) ? k : null;
        void PerCase(string name, Func<ScenarioBench.Case, double?> value, int digits = 0) => ScenarioBench.PerCase(w, cases, name, value, digits);
        w.WriteStartObject();
        ScenarioBench.WriteHeadline(w, cases, softnet, name => kernel.TryGetValue(name, out var k) ? k?.Pps : null);
        PerCase("softnet_forwarded", c => softnet[c.Name].Forwarded, 4);
        PerCase("kernel_forwarded", c => K(c)?.Forwarded, 4);
        PerCase("softnet_pps_wall", c => softnet[c.Name].WallPps);
        PerCase("kernel_packets", c => K(c)?.Received);
        PerCase("kernel_softirq_seconds", c => K(c)?.SoftirqSeconds, 3);
        w.WriteNumber("kernel_send_seconds_per_case", kernelSeconds);
        if (!double.IsNaN(idle)) w.WriteNumber("kernel_idle_softirq_ticks_per_second", Math.Round(idle, 2));
        if (why is not null) w.WriteString("kernel_unavailable", why);
        w.WriteNumber("cpu", cpu);
        w.WriteString("softnet_method", $"ScenarioReplay.Run on the capture pinned to CPU {cpu}; warm-up {warmup:0.#} s, best of {rounds}; pps = measured frames / process CPU time");
        w.WriteString("kernel_method", $"the flannel-vxlan namespaces with the same rules; an AF_PACKET sender on CPU {cpu} injects the frames over veth in passes; " +
            $"pps = rx_packets of the ingress device / softirq time of CPU {cpu} (/proc/stat, idle rate subtracted)");
        w.WriteString("traffic", string.Join("; ", cases.Select(c => $"{c.Name}: {c.Description}")) +
            $"; {Segments} segments of {Payload} B per flow, round robin; connections set up before the measured frames");
        w.WriteEndObject();
    }
}
