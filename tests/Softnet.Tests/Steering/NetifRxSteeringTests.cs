using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Napi;
using Softnet.Pipeline;
using Softnet.Steering;
using Softnet.Tests.Support;
using Softnet.Tests.Topology;
using Softnet.Topology;
using Softnet.Transport;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Steering;

/// <summary>RPS/RFS on the scenario stack's netif_rx: a device's rx-0 rps_cpus / rps_flow_cnt (ns/NAME/sysfs), the
/// per-CPU backlogs the engine's CPUs poll, and their softnet_stat columns.</summary>
public class NetifRxSteeringTests
{
    private const string R0 = "02:00:00:01:00:02", L0 = "02:00:00:01:00:01";

    /// <summary>The router scenario with <paramref name="sysfs"/> lines for namespace <paramref name="ns"/>.</summary>
    private static string Scenario(string dir, string source, string? ns = null, string? sysfs = null, Func<string, string>? sockets = null)
    {
        string sc = Path.Combine(dir, "scenario");
        ScenarioFiles.Copy(TopologyTestData.PathOf(source), sc);
        if (sysfs is not null) File.WriteAllText(Path.Combine(sc, "ns", ns!, "sysfs"), sysfs);
        if (sockets is not null)
        {
            string p = Path.Combine(sc, "ns", "srv", "sockets");
            File.WriteAllText(p, sockets(File.ReadAllText(p)));
        }
        return sc;
    }

    /// <summary><paramref name="n"/> UDP datagrams of <paramref name="flows"/> flows, left → 10.3.0.5 (routed by r to
    /// right, which does not forward: a silent drop there), 1 ms apart, or all at once.</summary>
    private static string Capture(string dir, int n, int flows, bool burst = false)
    {
        string path = Path.Combine(dir, "in.pcapng");
        using var w = new PcapngWriter(File.Create(path), [new CaptureInterface(LinkType.Ethernet, 262144, "r0", 1_000_000_000)]);
        long ts = 1_700_000_000_000_000_000;
        for (int i = 0; i < n; i++)
            w.Write(ts += burst ? 0 : 1_000_000, Eth(R0, L0, Udp("10.1.0.2", (ushort)(40000 + i % flows), "10.3.0.5", 9000)));
        return path;
    }

    /// <summary>One iperf3-style TCP stream of <paramref name="bytes"/> at 1 Gbit/s, written to DIR/gen.pcap.</summary>
    private static string IperfCapture(string dir, long bytes)
    {
        string pcap = Path.Combine(dir, "gen.pcap");
        using var w = CaptureWriter.Create(pcap);
        new TrafficGenerator([new GeneratorOptions { Bytes = bytes, Rate = Rate.FromBits(1e9), ServerKey = 0 }]).WriteTo(w);
        return pcap;
    }

    /// <summary>The iperf-server scenario in DIR/SUB, srv's <paramref name="sysfs"/> lines, its listener's
    /// <paramref name="cpu"/> appended (" cpu 1", or "" for none).</summary>
    private static string IperfServer(string dir, string sub, string? sysfs, string cpu = " cpu 1")
    {
        string d = Path.Combine(dir, sub);
        Directory.CreateDirectory(d);
        return Scenario(d, "iperf-server", "srv", sysfs, s => s.Replace("tcp listen 10.0.0.2:5201", "tcp listen 10.0.0.2:5201" + cpu));
    }

    private static (ScenarioReport Report, NapiEngine Engine) Replay(string scenario, string capture, string inject, ReplayOptions? replay = null)
    {
        NapiEngine? engine = null;
        var o = (replay ?? new ReplayOptions { Gro = null, Cpus = [0, 1] }) with { EngineCreated = e => engine = e };
        var report = ScenarioReplay.Run(scenario, capture, inject, "", new ScenarioOptions { Replay = o });
        return (report, engine!);
    }

    [Fact]
    public void Rps_cpus_on_a_veth_moves_its_receive_to_that_cpu_with_an_ipi_per_backlog_schedule()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsrx-").FullName;
        const int N = 40;
        var (report, engine) = Replay(Scenario(dir, "router", "right", "class/net/rt0/queues/rx-0/rps_cpus = 2\n"), Capture(dir, N, 4), "r:r0");
        using (report)
        {
            var c0 = engine.Cpus[0];
            var c1 = engine.Cpus[1];
            // CPU 0 polled r0's frames (the NIC, the kernel harness's veth backlog); rt0's receive ran on CPU 1 out of
            // its backlog, raised by an IPI each time (frames 1 ms apart: the backlog is empty between them).
            Assert.Equal(N, c0.Processed);
            Assert.Equal(N, c1.Processed);
            Assert.Equal(N, c1.ReceivedRps);
            Assert.Equal(0, c0.ReceivedRps);
            Assert.Equal(N, report.Scenario.Namespace("right")!.Device("rt0")!.RxPackets);
            Assert.Contains($"{N:x8} 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 {N:x8}", c1.FormatSoftnetStat());
        }
    }

    [Fact]
    public void Without_rps_the_backlog_runs_on_the_current_cpu_and_counts_there()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsrx-").FullName;
        const int N = 40;
        var (report, engine) = Replay(Scenario(dir, "router"), Capture(dir, N, 4), "r:r0");
        using (report)
        {
            // __netif_receive_skb_core twice per frame on CPU 0: r0 (the NIC's poll) and rt0 (netif_rx's backlog).
            Assert.Equal(2 * N, engine.Cpus[0].Processed);
            Assert.Equal(0, engine.Cpus[1].Processed);
            Assert.Equal(0, engine.Cpus[1].ReceivedRps);
        }
    }

    /// <summary>__iptunnel_pull_header keeps a hash over the outer UDP 4-tuple (skb_clear_hash_if_not_l4): the NIC's RSS
    /// hash of a VXLAN datagram stays with its inner frame, so RPS on flannel.1 steers one inner flow by the outer source
    /// port it came with. Sixteen outer ports around the same inner flow land on both CPUs; were the hash cleared, the
    /// inner flow's own hash would put them all on one.</summary>
    [Fact]
    public void Rps_on_a_vxlan_device_steers_by_the_outer_l4_hash_the_inner_frame_keeps()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsvx-").FullName;
        string sc = Path.Combine(dir, "scenario");
        ScenarioFiles.Copy(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "Softnet.KernelTests", "Scenarios", "flannel-vxlan"), sc);
        File.WriteAllText(Path.Combine(sc, "ns", "node2", "sysfs"), "class/net/flannel.1/queues/rx-0/rps_cpus = 3\n");
        const int N = 16;
        string capture = Path.Combine(dir, "in.pcapng");
        using (var w = new PcapngWriter(File.Create(capture), [new CaptureInterface(LinkType.Ethernet, 262144, "eth1", 1_000_000_000)]))
        {
            long ts = 1_700_000_000_000_000_000;
            var inner = Eth("02:00:0f:00:00:02", "02:00:0f:00:00:01", Udp("10.244.0.2", 40000, "10.244.1.2", 53, payload: 20));
            for (int i = 0; i < N; i++)
            {
                var ip = VxlanPackets.Datagram(inner, [10, 0, 0, 1], [10, 0, 0, 2], sport: (ushort)(40000 + 997 * i));
                w.Write(ts += 1_000_000, Eth("02:00:0a:00:00:02", "02:00:0a:00:00:01", ip));
            }
        }
        var (report, engine) = Replay(sc, capture, "node2:eth1");
        using (report)
        {
            Assert.Equal(N, report.Scenario.Namespace("node2")!.Device("flannel.1")!.RxPackets);
            Assert.Equal(N, report.Scenario.Namespace("pod2")!.Device("eth0")!.RxPackets);
            long rps0 = engine.Cpus[0].ReceivedRps, rps1 = engine.Cpus[1].ReceivedRps;
            // flannel.1's receive ran where each datagram's outer hash sent it: some on CPU 1 (an IPI each), some on CPU 0.
            Assert.InRange(rps1, 1, N - 1);
            Assert.True(engine.Cpus[0].Processed > N, $"CPU 0 processed {engine.Cpus[0].Processed} (eth1's {N} and some of flannel.1's); rps {rps0}/{rps1}");
        }
    }

    [Fact]
    public void A_two_cpu_map_spreads_flows_by_reciprocal_scale_and_every_frame_arrives()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsrx-").FullName;
        const int N = 160;
        var (report, engine) = Replay(Scenario(dir, "router", "right", "/sys/class/net/rt0/queues/rx-0/rps_cpus = 3\n"), Capture(dir, N, 16), "r:r0");
        using (report)
        {
            long onCpu0 = engine.Cpus[0].Processed - N, onCpu1 = engine.Cpus[1].Processed;
            Assert.Equal(N, onCpu0 + onCpu1);
            Assert.True(onCpu0 > 0 && onCpu1 > 0, $"16 flows over two CPUs: {onCpu0} and {onCpu1}");
            Assert.Equal(N, report.Scenario.Namespace("right")!.Device("rt0")!.RxPackets);
            // Each flow stays on one CPU: its frames' share is a multiple of the flow's frame count.
            Assert.Equal(0, onCpu1 % (N / 16));
        }
    }

    [Fact]
    public void A_burst_past_netdev_max_backlog_drops_on_the_target_cpu()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsrx-").FullName;
        const int N = 100;
        var replay = new ReplayOptions { Gro = null, Cpus = [0, 1], Rps = new RpsOptions { NetdevMaxBacklog = 10 } };
        var (report, engine) = Replay(Scenario(dir, "router", "right", "class/net/rt0/queues/rx-0/rps_cpus = 2\n"), Capture(dir, N, 1, burst: true), "r:r0", replay);
        using (report)
        {
            var c1 = engine.Cpus[1];
            var rt0 = report.Scenario.Namespace("right")!.Device("rt0")!;
            // One NIC round takes the whole burst (netdev_budget 300): the input queue takes 11 (qlen 0..10), then
            // every later frame finds it over netdev_max_backlog.
            Assert.Equal(11, c1.Processed);
            Assert.Equal(N - 11, c1.Dropped);
            Assert.Equal(N - 11, rt0.RxDropped);
            Assert.Equal(11, rt0.RxPackets);
            Assert.Equal(N - 11, report.Scenario.Namespace("right")!.Counters.Drops[Softnet.Packets.DropReason.CpuBacklog]);
        }
    }

    [Fact]
    public void Rps_changes_where_frames_go_up_not_what_the_scenario_does_with_them()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpsrx-").FullName;
        string capture = Capture(dir, 60, 8);
        string Dump(string sub, string? sysfs)
        {
            string d = Path.Combine(dir, sub);
            Directory.CreateDirectory(d);
            string outDir = Path.Combine(d, "out");
            string sc = Scenario(d, "router", "right", sysfs);
            if (sysfs is not null) File.WriteAllText(Path.Combine(sc, "ns", "r", "sysfs"), "class/net/r1/queues/rx-0/rps_cpus = 3\n");
            using var r = ScenarioReplay.Run(sc, capture, "r:r0", outDir,
                new ScenarioOptions { Replay = new ReplayOptions { Gro = null, Cpus = [0, 1] } });
            return string.Join("\n", Directory.GetFiles(outDir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
                .Select(f => Path.GetRelativePath(outDir, f) + ":" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(Content(f)))));
        }
        // A capture's frames without their times: a frame steered to another CPU goes up later.
        static byte[] Content(string f)
        {
            if (!f.EndsWith(".pcap", StringComparison.Ordinal)) return File.ReadAllBytes(f);
            var all = new MemoryStream();
            using var r = CaptureReader.Open(f);
            while (r.TryRead(out _, out var frame)) all.Write(frame);
            return all.ToArray();
        }
        Assert.Equal(Dump("off", null), Dump("on", "class/net/rt0/queues/rx-0/rps_cpus = 2\n"));
    }

    /// <summary>The steered backlog's rounds are CPU 1's time: a reader there that kept up with the stream beside the
    /// softirq CPU falls behind once RPS brings the softirq work to its CPU (as A_reader_on_the_softirq_cpu_gets_less_of_it
    /// with the reader moved instead).</summary>
    [Fact]
    public void Rps_onto_a_readers_cpu_takes_that_cpus_time_from_the_reader()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rpscpu-").FullName;
        const long Bytes = 4 * 1024 * 1024;
        string pcap = IperfCapture(dir, Bytes);
        (long Read, long Preempted) Run(string sub, bool rps)
        {
            string sc = IperfServer(dir, sub, rps ? "class/net/vs/queues/rx-0/rps_cpus = 2\n" : null);
            var replay = new ReplayOptions { Gro = null, Cpus = [0, 1], PollCostNs = 4000, ReaderNsPerByte = 6, ReaderNsPerRead = 3000 };
            var (report, engine) = Replay(sc, pcap, "srv:vs", replay);
            using (report)
                return (report.Scenario.Namespace("srv")!.Sockets.All.OfType<TcpListenSock>().Single().Stats.Bytes, engine.Cpus[1].TaskPreemptedNs);
        }
        var apart = Run("off", false);
        var together = Run("on", true);
        Assert.Equal(Bytes, apart.Read);
        Assert.Equal(0, apart.Preempted);
        Assert.True(together.Preempted > 0, $"preempted {together.Preempted}, read {together.Read}");
        Assert.True(together.Read < apart.Read / 2, $"with RPS onto its CPU the reader read {together.Read} bytes, without {apart.Read}");
    }

    /// <summary>A server reading on CPU 1 sends its ACKs from there: veth_xmit → netif_rx queues them on the sending
    /// CPU's backlog, so they and their way back to the client go up on CPU 1 (softnet_stat processed), and the replay
    /// thread's time for them is CPU 1's too (HostNs), though the read ran inside CPU 0's round. A server without a CPU
    /// reads where the softirq runs: nothing of it is CPU 1's.</summary>
    [Fact]
    public void A_readers_acks_go_up_on_its_cpu_and_their_time_is_that_cpus()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-ackcpu-").FullName;
        const long Bytes = 1_000_000;
        string pcap = IperfCapture(dir, Bytes);
        (long Host0, long Host1, long Processed1, long Read) Run(string sub, string cpu)
        {
            string sc = IperfServer(dir, sub, null, cpu);
            var (report, engine) = Replay(sc, pcap, "srv:vs");
            using (report)
                return (engine.Cpus[0].HostNs, engine.Cpus[1].HostNs, engine.Cpus[1].Processed,
                    report.Scenario.Namespace("srv")!.Sockets.All.OfType<TcpListenSock>().Single().Stats.Bytes);
        }
        var apart = Run("apart", " cpu 1");
        var none = Run("none", "");
        Assert.Equal(Bytes, apart.Read);
        Assert.Equal(Bytes, none.Read);
        Assert.Equal(0, none.Processed1);
        Assert.Equal(0, none.Host1);
        Assert.True(apart.Processed1 > 0, $"CPU 1 processed {apart.Processed1}");
        Assert.True(apart.Host1 > 0, $"CPU 1's host time {apart.Host1} ns");
        // Moved out of CPU 0's rounds, not counted twice: CPU 0 keeps a positive rest.
        Assert.True(apart.Host0 > 0, $"CPU 0's host time {apart.Host0} ns");
    }

    /// <summary>A reader whose reads take virtual time holds its socket while it copies: the segments meanwhile wait
    /// in the socket backlog and are acknowledged when the reader processes it (__release_sock), on its CPU, so most
    /// ACKs go up on CPU 1; a prompt reader's socket is never held and softirq on CPU 0 sends those ACKs.</summary>
    [Fact]
    public void A_slow_readers_backlog_acks_go_up_on_its_cpu()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-backlogcpu-").FullName;
        const long Bytes = 1_000_000;
        string pcap = IperfCapture(dir, Bytes);
        (long Processed1, long Acks, long Coalesced, long Read) Run(string sub, ReplayOptions replay)
        {
            var (report, engine) = Replay(IperfServer(dir, sub, null), pcap, "srv:vs", replay);
            using (report)
            {
                var srv = report.Scenario.Namespace("srv")!;
                return (engine.Cpus[1].Processed, srv.Mib[Telemetry.SnmpCounter.TcpOutSegs], srv.Mib[Telemetry.SnmpCounter.TcpExtTCPBacklogCoalesce],
                    srv.Sockets.All.OfType<TcpListenSock>().Single().Stats.Bytes);
            }
        }
        var prompt = Run("prompt", new ReplayOptions { Gro = null, Cpus = [0, 1] });
        var slow = Run("slow", new ReplayOptions { Gro = null, Cpus = [0, 1], ReaderNsPerByte = 2, ReaderNsPerRead = 20_000 });
        Assert.Equal(Bytes, prompt.Read);
        Assert.Equal(Bytes, slow.Read);
        Assert.True(slow.Coalesced > 0, $"coalesced {slow.Coalesced}");
        Assert.True(slow.Acks < prompt.Acks, $"ACKs: slow {slow.Acks}, prompt {prompt.Acks}");
        Assert.True(prompt.Processed1 < prompt.Acks / 2, $"prompt reader: CPU 1 processed {prompt.Processed1} of {prompt.Acks} ACKs");
        Assert.True(slow.Processed1 > slow.Acks / 2, $"slow reader: CPU 1 processed {slow.Processed1} of {slow.Acks} ACKs");
    }

    [Fact]
    public void Rfs_moves_a_tcp_flow_to_its_readers_cpu_without_reordering_it()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-rfsrx-").FullName;
        const long Bytes = 1_000_000;
        string pcap = IperfCapture(dir, Bytes);
        (long Cpu0, long Cpu1, long Rps, long Read) Run(string sub, bool rfs)
        {
            string sc = IperfServer(dir, sub, rfs ? "class/net/vs/queues/rx-0/rps_flow_cnt = 256\n" : null);
            var replay = new ReplayOptions { Gro = null, Cpus = [0, 1], Rps = new RpsOptions { SockFlowEntries = rfs ? 4096 : 0 } };
            var (report, engine) = Replay(sc, pcap, "srv:vs", replay);
            using (report)
            {
                var listener = report.Scenario.Namespace("srv")!.Sockets.All.OfType<TcpListenSock>().Single();
                var rec = listener.Accepted.Single().Record!;
                Assert.Equal("fin", rec.End);
                Assert.Equal(0, report.Scenario.Namespace("srv")!.Mib[Telemetry.SnmpCounter.TcpOutRsts]);
                return (engine.Cpus[0].Processed, engine.Cpus[1].Processed, engine.Cpus[1].ReceivedRps, rec.Bytes);
            }
        }
        var off = Run("off", false);
        var on = Run("on", true);
        Assert.Equal(Bytes, off.Read);
        Assert.Equal(Bytes, on.Read);
        // Without RFS only what the reader sends (its ACKs, received by the wire's veth) goes up on its CPU.
        Assert.Equal(0, off.Rps);
        Assert.True(off.Cpu1 < off.Cpu0, $"without RFS CPU 1 processed {off.Cpu1}, CPU 0 {off.Cpu0}");
        // The reader recorded its flow on CPU 1 at its first read; the flow's later segments went up there.
        Assert.True(on.Cpu1 > 0 && on.Rps > 0, $"CPU 1 processed {on.Cpu1}, received_rps {on.Rps}");
        Assert.True(on.Cpu1 > off.Cpu0 / 2, $"most segments on the reader's CPU: {on.Cpu1} of {off.Cpu0}");
    }
}
