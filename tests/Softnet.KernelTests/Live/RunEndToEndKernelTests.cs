using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Softnet.Capture.Live;
using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Live;

/// <summary>
/// `softnet run` between real namespaces: a client namespace (curl, iperf3 -c) ↔ veth ↔ Softnet's namespace, where the
/// live ports bind the veth ends to the scenario's host:eth0 and host:vethc1 ↔ veth ↔ a server namespace playing the
/// container 172.17.0.2 (python3 http.server on :80, iperf3 -s on :5201). Softnet is the Docker host of
/// Scenarios/live-docker: ARP, bridge, Docker's DNAT and MASQUERADE, conntrack, forwarding. Real TCP from Debian's
/// curl and iperf3 must complete byte-exact through it, on AF_PACKET and on AF_XDP.
/// </summary>
[Collection("live")]
public class RunEndToEndKernelTests
{
    private static string ScenarioDir => Path.Combine(AppContext.BaseDirectory, "Scenarios", "live-docker");

    [SkippableTheory]
    [InlineData(LivePortKind.Packet)]
    [InlineData(LivePortKind.Xdp)]
    public void Curl_and_iperf3_cross_softnet_byte_exact_with_conntrack_and_counters(LivePortKind kind)
    {
        string? why = Netns.Unavailable("curl", "iperf3", "ethtool", "python3");
        Skip.If(why != null, why);
        using var rig = new LiveRig();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var run = rig.StartSoftnet(kind, stop.Token);

        // HTTP through DNAT 192.0.2.10:8080 -> 172.17.0.2:80: the file arrives whole.
        var body = rig.Http("blob", 3 << 20);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(rig.ServedFile("blob"))), SHA256.HashData(body));

        // iperf3 through DNAT 5201. Its server stops counting when the control connection says the test ended, so
        // what was still in flight (about a window) is sent but not counted received: equal within a few MB, not exactly
        // (the byte-exact proof is curl's file above).
        var (sent, received) = rig.Iperf3(seconds: 2);
        Assert.True(sent > 1_000_000, $"iperf3 sent only {sent} bytes");
        Assert.InRange(received, sent - Math.Max(8L << 20, sent / 20), sent);

        // The connections' last segments (FIN, final ACKs) cross before Softnet stops, so the counters compare whole.
        rig.WaitQuiet();
        stop.Cancel();
        using var report = run.Result;
        var host = report.Scenario.Namespace("host")!;
        string ct = host.Netfilter.Conntrack.List(report.EndNs);
        Assert.Contains("src=192.0.2.100 dst=192.0.2.10 sport=", ct);
        Assert.Contains("dport=8080 src=172.17.0.2 dst=192.0.2.100 sport=80", ct);
        Assert.Contains("dport=5201 src=172.17.0.2 dst=192.0.2.100 sport=5201", ct);
        Assert.True(report.Replay.Conserved, "packets in = delivered + dropped");

        // Every frame the client's and the server's veths sent reached a port (or the kernel counted it dropped), and
        // every frame the ports sent reached them.
        var rows = report.Replay.Sections.OfType<LivePortsSection>().Single().Rows;
        var client = rows.Single(r => r.Binding.Device == "eth0").Stats;
        var server = rows.Single(r => r.Binding.Device == "vethc1").Stats;
        Assert.Equal(rig.Counter(rig.Client, "cl0", "tx_packets") - rig.SentBefore["cl0"], client.RxPackets + client.KernelRxDropped);
        Assert.Equal(rig.Counter(rig.Server, "srv0", "tx_packets") - rig.SentBefore["srv0"], server.RxPackets + server.KernelRxDropped);
        // What the ports sent reached the peers, or veth counted it dropped (its peer's backlog full: sender tx_dropped).
        string Diag(string sn, Netns peerNs, string peer) => $"{sn} tx_packets {rig.Counter(rig.Softnet, sn, "tx_packets")} tx_dropped {rig.Counter(rig.Softnet, sn, "tx_dropped")}, "
            + $"{peer} rx_packets {rig.Counter(peerNs, peer, "rx_packets")} rx_dropped {rig.Counter(peerNs, peer, "rx_dropped")}";
        Assert.True(client.TxPackets - client.TxErrors == rig.Counter(rig.Client, "cl0", "rx_packets") + rig.Counter(rig.Softnet, "sn0", "tx_dropped"),
            $"port sent {client.TxPackets} (errors {client.TxErrors}); {Diag("sn0", rig.Client, "cl0")}");
        Assert.True(server.TxPackets - server.TxErrors == rig.Counter(rig.Server, "srv0", "rx_packets") + rig.Counter(rig.Softnet, "sn1", "tx_dropped"),
            $"port sent {server.TxPackets} (errors {server.TxErrors}); {Diag("sn1", rig.Server, "srv0")}");
        Assert.Equal(0, client.KernelRxDropped + server.KernelRxDropped);
    }

    /// <summary>`softnet run --queues 2 --cpus 0,1`: two workers, each reading its own queue of both ports (fanout
    /// members, or AF_XDP sockets on the veths' two queues) and sending on its own, sharing the scenario's conntrack and
    /// NAT. Many flows spread over both; the file still arrives byte-exact and iperf3's streams complete.</summary>
    [SkippableTheory]
    [InlineData(LivePortKind.Packet)]
    [InlineData(LivePortKind.Xdp)]
    public void Two_workers_carry_curl_and_iperf3_streams_byte_exact(LivePortKind kind)
    {
        string? why = Netns.Unavailable("curl", "iperf3", "ethtool", "python3");
        Skip.If(why != null, why);
        using var rig = new LiveRig(queues: 2);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var run = rig.StartSoftnet(kind, stop.Token, queues: 2, cpus: [0, 1]);
        var body = rig.Http("blob", 3 << 20);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(rig.ServedFile("blob"))), SHA256.HashData(body));
        var (sent, received) = rig.Iperf3(seconds: 2, streams: 8);
        Assert.True(sent > 1_000_000, $"iperf3 sent only {sent} bytes");
        // As above, what was in flight when the test ended is not counted: about a window per stream.
        Assert.InRange(received, sent - Math.Max(8 * (4L << 20), sent / 20), sent);
        rig.WaitQuiet();
        stop.Cancel();
        using var report = run.Result;
        Assert.True(report.Replay.Conserved, "packets in = delivered + dropped");
        string ct = report.Scenario.Namespace("host")!.Netfilter.Conntrack.List(report.EndNs);
        Assert.Contains("dport=8080 src=172.17.0.2 dst=192.0.2.100 sport=80", ct);
        Assert.Contains("dport=5201 src=172.17.0.2 dst=192.0.2.100 sport=5201", ct);
        var workers = report.Replay.Sections.OfType<LiveWorkersSection>().Single().Rows;
        Assert.Equal([0, 1], workers.Select(w => w.Cpu));
        // About twenty flow directions hashed over two queues: both workers had frames.
        Assert.All(workers, w => Assert.True(w.RxPackets > 0, $"worker {w.Worker} received nothing"));
        Assert.Equal(report.Replay.PacketsIn, workers.Sum(w => w.RxPackets));
        var rows = report.Replay.Sections.OfType<LivePortsSection>().Single().Rows;
        Assert.Equal(report.Replay.PacketsIn, rows.Sum(r => r.Stats.RxPackets));
    }

    /// <summary>With GRO in front of the scenario (`softnet run --gro linux`) the forwarded TCP is merged, then cut
    /// again in software at the bound egress device (no TSO on a live port): the kernels at both ends verify every
    /// segment's checksum, so a byte-exact file proves the segmentation.</summary>
    [SkippableFact]
    public void Curl_crosses_softnet_with_gro_on_segmented_again_at_egress()
    {
        string? why = Netns.Unavailable("curl", "ethtool", "python3");
        Skip.If(why != null, why);
        using var rig = new LiveRig();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var run = rig.StartSoftnet(LivePortKind.Packet, stop.Token, gro: true);
        var body = rig.Http("blob", 3 << 20);
        Assert.Equal(SHA256.HashData(File.ReadAllBytes(rig.ServedFile("blob"))), SHA256.HashData(body));
        stop.Cancel();
        using var report = run.Result;
        var gro = report.Replay.Sections.OfType<Softnet.Gro.GroStats>().Single();
        Assert.True(gro.Merged > 0, "GRO merged segments of the transfer");
        Assert.True(report.Replay.Conserved);
    }

    [SkippableTheory]
    [InlineData(LivePortKind.Packet)]
    [InlineData(LivePortKind.Xdp)]
    public void A_bound_interface_going_down_and_up_mid_run_recovers(LivePortKind kind)
    {
        string? why = Netns.Unavailable("curl", "ethtool", "python3");
        Skip.If(why != null, why);
        using var rig = new LiveRig();
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var run = rig.StartSoftnet(kind, stop.Token);
        Assert.Equal(64 << 10, rig.Http("small", 64 << 10).Length);

        rig.Softnet.Check("ip", "link", "set", "sn0", "down");
        Thread.Sleep(300);
        rig.Softnet.Check("ip", "link", "set", "sn0", "up");
        Thread.Sleep(300);
        Assert.Equal(64 << 10, rig.Http("small", 64 << 10).Length);

        stop.Cancel();
        using var report = run.Result;
        var eth0 = report.Replay.Sections.OfType<LivePortsSection>().Single().Rows.Single(r => r.Binding.Device == "eth0");
        Assert.True(eth0.Stats.LinkDownEvents >= 1, "the port saw the interface go down");
    }

    [SkippableFact]
    public void Sigint_mid_transfer_leaves_a_complete_report()
    {
        string? why = Netns.Unavailable("iperf3", "ethtool");
        Skip.If(why != null, why);
        using var rig = new LiveRig();
        string json = Path.Combine(rig.Temp, "report.json");
        string dump = Path.Combine(rig.Temp, "dump");
        int metricsPort = 19100 + Environment.ProcessId % 800;
        string capture = Path.Combine(rig.Temp, "eth0.pcapng");
        string html = Path.Combine(rig.Temp, "report.html"), folded = Path.Combine(rig.Temp, "cpu.folded");
        using var softnet = rig.StartCli("--json", json, "--dump", dump, "--metrics", $"127.0.0.1:{metricsPort}", "--capture", $"host:eth0={capture}",
            "--report", html, "--folded", folded);
        var iperf = rig.Client.Start("iperf3", "-c", "192.0.2.10", "-p", "5201", "-t", "4");
        Thread.Sleep(1500);
        // Prometheus scrapes the running path: the ports, the rules, conntrack.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            string metrics = http.GetStringAsync($"http://127.0.0.1:{metricsPort}/metrics").Result;
            Assert.Contains("softnet_port_rx_packets_total{bind=\"host:eth0=sn0@", metrics);
            Assert.Contains("softnet_iptables_rule_packets_total{namespace=\"host\",family=\"ipv4\",table=\"nat\",chain=\"DOCKER\",rule=\"3\"}", metrics);
            Assert.Matches("softnet_conntrack_entries\\{namespace=\"host\"\\} [1-9]", metrics);
            Assert.Contains("softnet_stat_processed_total{cpu=\"0\"}", metrics);
        }
        Proc.Check("kill", "-INT", softnet.Id.ToString());
        Assert.True(softnet.WaitForExit(30_000), "softnet run stops on SIGINT");
        Assert.Equal(0, softnet.ExitCode);
        iperf.WaitForExit(20_000);
        if (!iperf.HasExited) iperf.Kill(true);

        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.True(root.GetProperty("packets_in").GetInt64() > 100);
        Assert.Equal(2, root.GetProperty("live_ports").GetArrayLength());
        Assert.True(File.Exists(Path.Combine(dump, "host", "conntrack.txt")));
        Assert.Contains("dport=5201", File.ReadAllText(Path.Combine(dump, "host", "conntrack.txt")));
        Assert.True(File.Exists(Path.Combine(dump, "host", "iptables-save.txt")));
        // --report and --folded, written at the end as --json is: the connection in the report's conntrack table, the
        // NAPI poll's stacks with the stack's stages under it.
        string page = File.ReadAllText(html);
        Assert.Contains("<section id=\"flamegraph\">", page);
        Assert.Contains("dport=5201", page);
        Assert.Contains(File.ReadAllLines(folded), l => l.StartsWith("net_rx_action;__napi_poll;ice_napi_poll;ice_clean_rx_irq;", StringComparison.Ordinal) && l.Contains(";ip_rcv", StringComparison.Ordinal));

        // --capture: tshark reads the pcapng, with what eth0 received (to 192.0.2.10:5201) and sent (from it).
        if (Proc.Exists("tshark"))
        {
            // The first frames hold the connection's opening both ways; the whole transfer can be hundreds of MB, which
            // tshark took more than a minute to print on a loaded machine.
            var (exit, stdout, err) = Proc.Run("tshark", "-r", capture, "-c", "2000", "-T", "fields", "-e", "frame.interface_name", "-e", "tcp.dstport", "-e", "tcp.srcport");
            Assert.True(exit == 0, $"tshark: {err}");
            var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t')).ToList();
            Assert.Contains(rows, r => r[0] == "eth0 rx" && r[1] == "5201");
            Assert.Contains(rows, r => r[0] == "eth0 tx" && r[2] == "5201");
        }
    }

    [SkippableFact]
    public void A_second_softnet_on_the_same_interface_is_refused()
    {
        string? why = Netns.Unavailable();
        Skip.If(why != null, why);
        using var rig = new LiveRig();
        using var first = LivePorts.Open(LivePortKind.Packet, new LivePortOptions { Interface = "sn0", Netns = rig.Softnet.Name });
        var e = Assert.Throws<LivePortException>(() => LivePorts.Open(LivePortKind.Packet, new LivePortOptions { Interface = "sn0", Netns = rig.Softnet.Name }));
        Assert.Contains("sn0", e.Message);
    }

    /// <summary>The three namespaces, their veths (offloads off on the kernel ends: a frame a port takes must be whole,
    /// checksummed and no longer than the MTU), the servers, and Softnet.</summary>
    private sealed class LiveRig : IDisposable
    {
        public Netns Client { get; } = Netns.Create("snc");
        public Netns Softnet { get; } = Netns.Create("sns");
        public Netns Server { get; } = Netns.Create("sss");
        public string Temp { get; } = Directory.CreateTempSubdirectory("softnet-live-").FullName;
        private readonly List<Process> _servers = [];
        private readonly string _www;

        /// <param name="queues">RX and TX queues of every veth (one per Softnet worker: AF_XDP binds each).</param>
        public LiveRig(int queues = 1)
        {
            foreach (var ns in new[] { Client, Softnet, Server }) ns.DisableIpv6();
            Netns.CreateVeth(Client, "cl0", Softnet, "sn0", queues);
            Netns.CreateVeth(Server, "srv0", Softnet, "sn1", queues);
            // The Softnet-side ends carry the scenario devices' MACs, as a NIC carries its own.
            Softnet.Check("ip", "link", "set", "sn0", "address", "02:00:c0:00:02:0a");
            Softnet.Check("ip", "link", "set", "sn1", "address", "02:42:ac:11:ff:02");
            Client.Check("ip", "addr", "add", "192.0.2.100/24", "dev", "cl0");
            Server.Check("ip", "addr", "add", "172.17.0.2/16", "dev", "srv0");
            Server.Check("ip", "route", "add", "default", "via", "172.17.0.1");
            foreach (var (ns, dev) in new[] { (Client, "cl0"), (Server, "srv0"), (Softnet, "sn0"), (Softnet, "sn1") })
                ns.Exec("ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off");
            _www = Path.Combine(Temp, "www");
            Directory.CreateDirectory(_www);
            _servers.Add(Server.Start("python3", "-m", "http.server", "80", "--bind", "172.17.0.2", "--directory", _www));
            _servers.Add(Server.Start("iperf3", "-s", "-p", "5201", "-B", "172.17.0.2"));
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (Server.Exec("curl", "-s", "-o", "/dev/null", "http://172.17.0.2/").Exit != 0)
            {
                if (DateTime.UtcNow > deadline) throw new TimeoutException("the HTTP server in the server namespace did not start");
                Thread.Sleep(100);
            }
        }

        public string ServedFile(string name) => Path.Combine(_www, name);

        /// <summary>Runs the scenario with the two veth ends bound, on a thread of its own, until the token.</summary>
        /// <summary>What the client's and server's veths had sent before Softnet's ports opened (nobody received it).</summary>
        public Dictionary<string, long> SentBefore { get; } = [];

        public Task<ScenarioReport> StartSoftnet(LivePortKind kind, CancellationToken token, bool gro = false, int queues = 1, int[]? cpus = null)
        {
            SentBefore["cl0"] = Counter(Client, "cl0", "tx_packets");
            SentBefore["srv0"] = Counter(Server, "srv0", "tx_packets");
            var options = new ScenarioRunOptions
            {
                Bindings = [LiveBinding.Parse($"host:eth0=sn0@{Softnet.Name}"), LiveBinding.Parse($"host:vethc1=sn1@{Softnet.Name}")],
                Port = kind,
                PortQueues = queues,
                OpenPort = LivePorts.Open,
                Replay = new Softnet.Pipeline.ReplayOptions
                {
                    Gro = gro ? new Softnet.Gro.GroOptions() : null,
                    Nic = new Softnet.Nic.NicOptions { Queues = queues },
                    Cpus = cpus ?? [0],
                },
            };
            var started = new ManualResetEventSlim();
            options = options with { Started = _ => started.Set() };
            var task = Task.Factory.StartNew(() => ScenarioRun.Run(ScenarioDir, options, null, token), TaskCreationOptions.LongRunning);
            if (!started.Wait(TimeSpan.FromSeconds(20)) && task.IsFaulted) throw task.Exception!.InnerException!;
            return task;
        }

        /// <summary>`softnet run` as a user starts it (the CLI in its own process), the two veth ends bound.</summary>
        public Process StartCli(params string[] extra)
        {
            string cli = Path.Combine(AppContext.BaseDirectory, "Softnet.Cli.dll");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in new[] { cli, "run", "--scenario", ScenarioDir, "--bind", $"host:eth0=sn0@{Softnet.Name}", "--bind", $"host:vethc1=sn1@{Softnet.Name}", "--no-progress" }.Concat(extra))
                psi.ArgumentList.Add(a);
            var p = Process.Start(psi)!;
            _ = p.StandardOutput.ReadToEndAsync();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                string? line = p.StandardError.ReadLine();
                if (line is null) throw new InvalidOperationException($"softnet run exited {(p.WaitForExit(5000) ? p.ExitCode : -1)} before it started");
                if (line.Contains("Ctrl-C stops")) break;
                if (DateTime.UtcNow > deadline) throw new TimeoutException("softnet run did not start");
            }
            _ = p.StandardError.ReadToEndAsync();
            return p;
        }

        /// <summary>curl from the client through the published port: a served file of <paramref name="size"/> random bytes.</summary>
        public byte[] Http(string name, int size)
        {
            string path = ServedFile(name);
            if (!File.Exists(path)) File.WriteAllBytes(path, RandomNumberGenerator.GetBytes(size));
            string outFile = Path.Combine(Temp, name + ".got");
            var (exit, _, err) = Client.ExecTimed(60_000, "curl", "-s", "--max-time", "50", "-o", outFile, $"http://192.0.2.10:8080/{name}");
            Assert.True(exit == 0, $"curl exited {exit}: {err}");
            return File.ReadAllBytes(outFile);
        }

        /// <summary>iperf3 -c through the published port 5201 for <paramref name="seconds"/>: bytes sent and received.</summary>
        public (long Sent, long Received) Iperf3(int seconds, int streams = 1)
        {
            var (exit, stdout, err) = Client.ExecTimed(60_000, "iperf3", "-c", "192.0.2.10", "-p", "5201", "-t", seconds.ToString(), "-P", streams.ToString(), "-J");
            Assert.True(exit == 0, $"iperf3 exited {exit}: {err} {stdout}");
            using var doc = JsonDocument.Parse(stdout);
            var end = doc.RootElement.GetProperty("end");
            return (end.GetProperty("sum_sent").GetProperty("bytes").GetInt64(), end.GetProperty("sum_received").GetProperty("bytes").GetInt64());
        }

        /// <summary>Waits until neither the client's nor the server's veth has sent anything for a second (at most 15 s).</summary>
        public void WaitQuiet()
        {
            long Sent() => Counter(Client, "cl0", "tx_packets") + Counter(Server, "srv0", "tx_packets");
            long last = Sent();
            var quietSince = DateTime.UtcNow;
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (DateTime.UtcNow < deadline && DateTime.UtcNow - quietSince < TimeSpan.FromSeconds(1))
            {
                Thread.Sleep(100);
                long now = Sent();
                if (now != last) (last, quietSince) = (now, DateTime.UtcNow);
            }
        }

        public long Counter(Netns ns, string dev, string name) => long.Parse(ns.ReadFile($"/sys/class/net/{dev}/statistics/{name}"));

        public void Dispose()
        {
            foreach (var p in _servers)
            {
                try { if (!p.HasExited) p.Kill(true); } catch (InvalidOperationException) { }
                p.Dispose();
            }
            Client.Dispose();
            Softnet.Dispose();
            Server.Dispose();
            try { Directory.Delete(Temp, true); } catch (IOException) { }
        }
    }
}

/// <summary>The live tests move real traffic through Softnet on a 2-core machine: they run alone.</summary>
[CollectionDefinition("live", DisableParallelization = true)]
public sealed class LiveCollection;
