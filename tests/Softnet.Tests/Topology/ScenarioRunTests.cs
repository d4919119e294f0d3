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

    /// <summary>A port whose wire is two lists: frames queued for it to receive, frames it sent.</summary>
    private sealed class MemoryPort(string name) : ILivePort
    {
        private readonly Queue<byte[]> _in = new();
        private readonly List<byte[]> _taken = [];
        private LivePortStats _stats;
        public List<byte[]> Sent { get; } = [];
        public bool Disposed { get; private set; }
        public Action? OnSend;

        public void Feed(byte[] frame)
        {
            lock (_in) _in.Enqueue(frame);
        }

        public LivePortKind Kind => LivePortKind.Packet;
        public string Interface => name;
        public int Ifindex => 7;
        public int Queues => 1;
        public bool LinkUp { get; set; } = true;

        public int Receive(int queue, Span<LiveFrame> batch)
        {
            int n = 0;
            lock (_in)
                while (n < batch.Length && _in.TryDequeue(out var f))
                {
                    batch[n++] = new LiveFrame(_taken.Count, f.Length, 0);
                    _taken.Add(f);
                    _stats.RxPackets++;
                }
            return n;
        }

        public ReadOnlySpan<byte> Bytes(int queue, in LiveFrame frame) => _taken[(int)frame.Offset];
        public void Release(int queue) => _taken.Clear();

        public IReadOnlyList<int> ReadinessFds => [];

        public bool WaitReceive(int timeoutMs)
        {
            Thread.Sleep(1);
            lock (_in) return _in.Count > 0;
        }

        public bool Transmit(int queue, ReadOnlySpan<byte> frame)
        {
            Sent.Add(frame.ToArray());
            _stats.TxPackets++;
            OnSend?.Invoke();
            return true;
        }

        public void FlushTransmit(int queue) { }
        public LivePortStats ReadStats() => _stats;
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
