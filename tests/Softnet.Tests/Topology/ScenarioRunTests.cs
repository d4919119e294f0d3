using Softnet.Capture.Live;
using Softnet.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Topology;

/// <summary>
/// `softnet run`'s loop over ports that live in memory (the kernel-backed ports are tested against real interfaces in
/// Softnet.KernelTests/Live): frames received on a bound device cross the scenario and leave through the port the
/// egress device is bound to; the run stops on its token and reports every port.
/// </summary>
public class ScenarioRunTests
{
    private const string Eth0 = "02:00:00:00:00:02", Wire0 = "02:00:00:00:00:01", C1 = "02:00:00:00:01:02", Docker0 = "02:42:ac:11:00:01";

    /// <summary>A port whose wire is lists: frames queued for each of its queues to receive, frames it sent (and on
    /// which queue).</summary>
    private sealed class MemoryPort(string name, int queues = 1) : ILivePort
    {
        private readonly Queue<byte[]>[] _in = [.. Enumerable.Range(0, queues).Select(_ => new Queue<byte[]>())];
        private readonly List<byte[]>[] _taken = [.. Enumerable.Range(0, queues).Select(_ => new List<byte[]>())];
        private long _rx, _tx;
        public List<byte[]> Sent { get; } = [];
        public List<int> SentOnQueue { get; } = [];
        public bool Disposed { get; private set; }
        public Action? OnSend;

        public void Feed(byte[] frame, int queue = 0)
        {
            lock (_in[queue]) _in[queue].Enqueue(frame);
        }

        public LivePortKind Kind => LivePortKind.Packet;
        public string Interface => name;
        public int Ifindex => 7;
        public int Queues => queues;
        public bool LinkUp { get; set; } = true;

        public int Receive(int queue, Span<LiveFrame> batch)
        {
            int n = 0;
            var q = _in[queue];
            lock (q)
                while (n < batch.Length && q.TryDequeue(out var f))
                {
                    batch[n++] = new LiveFrame(_taken[queue].Count, f.Length, 0);
                    _taken[queue].Add(f);
                    Interlocked.Increment(ref _rx);
                }
            return n;
        }

        public ReadOnlySpan<byte> Bytes(int queue, in LiveFrame frame) => _taken[queue][(int)frame.Offset];
        public void Release(int queue) => _taken[queue].Clear();

        public IReadOnlyList<int> ReadinessFds => [];

        public bool WaitReceive(int timeoutMs)
        {
            Thread.Sleep(1);
            foreach (var q in _in)
                lock (q) if (q.Count > 0) return true;
            return false;
        }

        public bool Transmit(int queue, ReadOnlySpan<byte> frame)
        {
            lock (Sent)
            {
                Sent.Add(frame.ToArray());
                SentOnQueue.Add(queue);
            }
            Interlocked.Increment(ref _tx);
            OnSend?.Invoke();
            return true;
        }

        public void FlushTransmit(int queue) { }
        public LivePortStats ReadStats() => new() { RxPackets = Interlocked.Read(ref _rx), TxPackets = Interlocked.Read(ref _tx) };
        public void Dispose() => Disposed = true;
    }

    [Fact]
    public void Frames_cross_the_scenario_between_bound_ports_with_dnat_and_back()
    {
        var outside = new MemoryPort("sn-out");
        var container = new MemoryPort("sn-c1");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // The client's SYN to the published port; the container's SYN-ACK once the SYN reached it; stop on the answer.
        outside.Feed(Eth(Eth0, Wire0, Tcp("192.0.2.100", 40000, "192.0.2.1", 8080, 0x02, seq: 1000)));
        container.OnSend = () =>
        {
            container.Feed(Eth(Docker0, C1, Tcp("172.17.0.2", 80, "192.0.2.100", 40000, 0x12, seq: 5000, ack: 1001)));
            container.OnSend = null;
        };
        // The host asks for the client's MAC first (the scenario's wire0 no longer answers: the wire is the port's).
        outside.OnSend = () =>
        {
            var f = outside.Sent[^1];
            if (f[12] == 0x08 && f[13] == 0x06)
                outside.Feed(Softnet.Ip.PacketFactory.Arp(2, Mac(Eth0), Mac(Wire0), Mac(Wire0), A("192.0.2.100"), Mac(Eth0), A("192.0.2.1")));
            else stop.Cancel();
        };
        var ports = new Dictionary<string, MemoryPort> { ["sn-out"] = outside, ["sn-c1"] = container };
        var options = new ScenarioRunOptions
        {
            Bindings = [LiveBinding.Parse("host:eth0=sn-out@x"), LiveBinding.Parse("host:veth1=sn-c1@x")],
            OpenPort = (_, o) => ports[o.Interface],
        };
        using var report = ScenarioRun.Run(TopologyTestData.PathOf("docker"), options, null, stop.Token);

        var syn = Assert.Single(container.Sent);
        Assert.Equal(A("172.17.0.2"), Dst(syn));
        Assert.Equal(80, DstPort(syn));
        Assert.Equal(63, syn[14 + 8]);
        Assert.Equal(2, outside.Sent.Count);
        Assert.Equal(0x06, outside.Sent[0][13]); // the ARP request
        var synAck = outside.Sent[1];
        Assert.Equal(A("192.0.2.1"), Src(synAck));
        Assert.Equal(8080, SrcPort(synAck));
        Assert.True(outside.Disposed && container.Disposed);
        var ct = report.Scenario.Namespace("host")!.Netfilter.Conntrack.List(report.EndNs);
        Assert.Contains("src=192.0.2.100 dst=192.0.2.1 sport=40000 dport=8080 src=172.17.0.2 dst=192.0.2.100 sport=80 dport=40000", ct);
        Assert.Equal(3, report.Replay.PacketsIn);
        Assert.True(report.Replay.Conserved);
        var rows = report.Replay.Sections.OfType<LivePortsSection>().Single().Rows;
        Assert.Equal([2L, 1L], rows.Select(r => r.Stats.TxPackets));
        // What `softnet run --report` writes: the rules that counted the SYN (DNAT first of all) and the entry made.
        var busiest = Softnet.Telemetry.Report.HtmlReport.BusiestRules(report.Scenario, 50);
        Assert.Contains(busiest, r => r.Table == "nat" && r.Chain == "DOCKER" && r.Number == 2 && r.Packets == 1 && r.Text.Contains("--to-destination 172.17.0.2:80"));
        Assert.Contains(busiest, r => r.Table == "filter" && r.Chain == "FORWARD" && r.Number == 3 && r.Packets == 1);
        string html = Softnet.Telemetry.Report.HtmlReport.Render(report.Replay);
        Assert.Contains("sport=40000 dport=8080 src=172.17.0.2", html);
        Assert.Contains("<section id=\"rings\">", html);
    }

    /// <summary>GRO merges a flow's segments in front of the scenario; the bound egress device has no TSO, so the merged
    /// skb leaves as the segments it was made of (skb_gso_segment): same payloads, consecutive sequence numbers and IP
    /// IDs, valid checksums, PSH only on the last.</summary>
    [Fact]
    public void Gro_merged_segments_leave_a_bound_device_segmented_again()
    {
        var outside = new MemoryPort("sn-out");
        var container = new MemoryPort("sn-c1");
        const int Segments = 8, Mss = 1000;
        var sent = new List<byte[]>();
        for (int k = 0; k < Segments; k++)
        {
            var ip = Tcp("192.0.2.100", 40000, "192.0.2.1", 8080, (byte)(k == Segments - 1 ? 0x18 : 0x10), seq: 1000 + (uint)(k * Mss), ack: 77, payload: Mss);
            for (int i = 0; i < Mss; i++) ip[40 + i] = (byte)(k * 31 + i);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(4), (ushort)(100 + k));
            Fix(ip);
            sent.Add(ip);
            outside.Feed(Eth(Eth0, Wire0, ip));
        }
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        container.OnSend = () =>
        {
            if (container.Sent.Count == Segments) stop.Cancel();
        };
        var options = new ScenarioRunOptions
        {
            Bindings = [LiveBinding.Parse("host:eth0=sn-out@x"), LiveBinding.Parse("host:veth1=sn-c1@x")],
            OpenPort = (_, o) => o.Interface == "sn-out" ? outside : container,
            Replay = new Softnet.Pipeline.ReplayOptions { Gro = new Softnet.Gro.GroOptions() },
        };
        using var report = ScenarioRun.Run(TopologyTestData.PathOf("docker"), options, null, stop.Token);

        Assert.Equal(Segments, container.Sent.Count);
        Assert.True(report.Replay.Sections.OfType<Softnet.Gro.GroStats>().Single().Merged > 0, "GRO merged the segments");
        for (int k = 0; k < Segments; k++)
        {
            var f = container.Sent[k];
            var ip = f.AsSpan(14);
            Assert.Equal(A("172.17.0.2"), Dst(f));
            Assert.Equal(sent[k].AsSpan(40).ToArray(), ip[40..].ToArray());
            Assert.Equal(1000u + (uint)(k * Mss), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(ip[24..]));
            Assert.Equal(100 + k, System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(ip[4..]));
            Assert.Equal(k == Segments - 1 ? 0x18 : 0x10, ip[33]);
            Assert.True(Softnet.Packets.Checksum.Verify(ip[..20]), "IPv4 header checksum");
            Assert.True(Softnet.Packets.Checksum.Verify(ip[20..], Softnet.Packets.Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), 6, ip.Length - 20)), "TCP checksum");
        }
    }

    /// <summary>Recomputes an IPv4/TCP datagram's checksums after its bytes were changed.</summary>
    private static void Fix(byte[] ip)
    {
        ip[10] = ip[11] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Softnet.Packets.Checksum.Compute(ip.AsSpan(0, 20)));
        var t = ip.AsSpan(20);
        t[16] = t[17] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(t[16..], Softnet.Packets.Checksum.Compute(t, Softnet.Packets.Checksum.PseudoHeaderV4(ip.AsSpan(12, 4), ip.AsSpan(16, 4), 6, t.Length)));
    }

    /// <summary>`--queues 2 --cpus 0,1`: two workers, each reading its own queue of both ports with its own NIC queue,
    /// NAPI and GRO, sharing the scenario's stack (conntrack, NAT, the rules) under its lock; each sends on its own TX
    /// queue. Every SYN crosses the DNAT once, whichever worker took it, and the report adds both workers up.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Two_workers_share_the_scenario_and_each_use_their_own_queues(bool gro)
    {
        const int flows = 400;
        var outside = new MemoryPort("sn-out", queues: 2);
        var container = new MemoryPort("sn-c1", queues: 2);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        container.OnSend = () =>
        {
            lock (container.Sent) if (container.Sent.Count == flows) stop.Cancel();
        };
        for (int i = 0; i < flows; i++)
            outside.Feed(Eth(Eth0, Wire0, Tcp("192.0.2.100", (ushort)(20000 + i), "192.0.2.1", 8080, 0x02, seq: 1000)), queue: i % 2);
        var ports = new Dictionary<string, MemoryPort> { ["sn-out"] = outside, ["sn-c1"] = container };
        var options = new ScenarioRunOptions
        {
            Bindings = [LiveBinding.Parse("host:eth0=sn-out@x"), LiveBinding.Parse("host:veth1=sn-c1@x")],
            PortQueues = 2,
            Replay = new Softnet.Pipeline.ReplayOptions { Gro = gro ? new Softnet.Gro.GroOptions() : null, Nic = new Softnet.Nic.NicOptions { Queues = 2 }, Cpus = [0, 1] },
            OpenPort = (_, o) => ports[o.Interface],
        };
        using var report = ScenarioRun.Run(TopologyTestData.PathOf("docker"), options, null, stop.Token);

        Assert.Equal(flows, container.Sent.Count);
        Assert.All(container.Sent, syn => Assert.Equal(A("172.17.0.2"), Dst(syn)));
        Assert.Equal(Enumerable.Range(20000, flows), container.Sent.Select(f => (int)SrcPort(f)).Order());
        Assert.Equal([0, 1], container.SentOnQueue.Distinct().Order());
        Assert.Equal(flows, report.Scenario.Namespace("host")!.Netfilter.Conntrack.Count);
        Assert.Equal(flows, report.Replay.PacketsIn);
        Assert.True(report.Replay.Conserved);
        var workers = report.Replay.Sections.OfType<LiveWorkersSection>().Single().Rows;
        Assert.Equal([(0, 0, flows / 2L), (1, 1, flows / 2L)], workers.Select(w => (w.Worker, w.Cpu, w.RxPackets)));
        Assert.Equal(["0:0,1:0", "0:1,1:1"], workers.Select(w => w.PortQueues));
        var buffer = new MemoryStream();
        report.Replay.WriteJson(buffer);
        using var json = System.Text.Json.JsonDocument.Parse(buffer.ToArray());
        var nic = json.RootElement.GetProperty("nic").GetProperty("queues");
        Assert.Equal([0, 1], nic.EnumerateArray().Select(q => q.GetProperty("queue").GetInt32()));
        Assert.All(nic.EnumerateArray(), q => Assert.Equal(flows / 2, q.GetProperty("rx_packets").GetInt64()));
        Assert.Contains("rx_queue_1_packets: " + flows / 2, json.RootElement.GetProperty("nic").GetProperty("ethtool_s").GetString());
        Assert.Equal([0, 1], json.RootElement.GetProperty("softnet").EnumerateArray().Select(c => c.GetProperty("cpu").GetInt32()));
        var dnat = report.Scenario.Namespace("host")!.Netfilter.Tables.Single(t => t.Name == "nat").Chains.Single(c => c.Name == "DOCKER").Rules[1];
        Assert.Equal(flows, dnat.Packets);
    }

    [Fact]
    public void Tracing_needs_a_single_worker()
    {
        var options = new ScenarioRunOptions
        {
            Bindings = [LiveBinding.Parse("host:eth0=sn-out@x")],
            PortQueues = 2,
            Replay = new Softnet.Pipeline.ReplayOptions { Gro = null, Cpus = [0, 1], Tracer = new Softnet.Telemetry.PacketTracer("tcp") },
            OpenPort = (_, o) => new MemoryPort(o.Interface, 2),
        };
        var e = Assert.Throws<ArgumentException>(() => ScenarioRun.Run(TopologyTestData.PathOf("docker"), options, null, CancellationToken.None));
        Assert.Contains("--trace follows packets through one worker", e.Message);
    }

    [Fact]
    public void Bad_bindings_are_refused_with_what_is_wrong()
    {
        var options = new ScenarioRunOptions { Bindings = [LiveBinding.Parse("host:nope=x@y")], OpenPort = (_, _) => throw new InvalidOperationException() };
        var e = Assert.Throws<ArgumentException>(() => ScenarioRun.Run(TopologyTestData.PathOf("docker"), options, null, CancellationToken.None));
        Assert.Contains("no device 'nope' in namespace 'host'", e.Message);
        Assert.Throws<ArgumentException>(() => LiveBinding.Parse("host-eth0"));
        Assert.Equal(new LiveBinding("host", "eth0", "veth9", "sn"), LiveBinding.Parse("host:eth0=veth9@sn"));
        var bridge = new ScenarioRunOptions { Bindings = [LiveBinding.Parse("host:docker0=x@y")], OpenPort = (_, _) => throw new InvalidOperationException() };
        Assert.Contains("bridge", Assert.Throws<ArgumentException>(() => ScenarioRun.Run(TopologyTestData.PathOf("docker"), bridge, null, CancellationToken.None)).Message);
    }
}
