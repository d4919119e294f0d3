using Softnet.KernelTests.Support;
using Softnet.Napi;
using Softnet.Pipeline;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Steering;

/// <summary>
/// Where the kernel runs a veth's receive with RPS, against Softnet's per-CPU softnet_stat for the same frames: a
/// router forwards UDP from its eth0 (the frames' veth peer transmits them from CPU 0, so eth0's backlog runs there)
/// out of eth1, whose peer dst0 has rps_cpus 2 (CPU 1) or nothing. The kernel's /proc/net/softnet_stat is read by the
/// injector just before the first frame and after the settling time. received_rps is compared exactly (nothing else on
/// the machine uses RPS); processed is global, so the kernel's figure may carry other traffic the host receives
/// meanwhile (loopback, other tests' namespaces): it must be at least Softnet's and at most a little more.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(RpsKernelCollection.Name)]
public sealed class RpsPlacementKernelTests
{
    private const string WireMac = "02:00:0a:09:00:01", RMac0 = "02:00:0a:09:00:02", RMac1 = "02:00:0a:0a:00:02", DstMac = "02:00:0a:0a:00:01";
    private const int Frames = 64;


    /// <summary>wire --veth-- r --veth-- dst; dst drops in raw PREROUTING (silent, no conntrack).</summary>
    internal static void BuildScenario(string scn, string? dstSysfs)
    {
        const string v6off = "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n";
        const string rawDrop = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n";
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\nnetns add dst\n" +
            "link add name eth0 netns r type veth peer name wire0 netns wire\nlink add name eth1 netns r type veth peer name dst0 netns dst\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", v6off);
        ScenarioPair.Write(scn, "ns/wire/ip.batch", $"link set lo up\nlink set wire0 address {WireMac}\naddr add 10.9.0.1/24 dev wire0\nlink set wire0 up\n");
        ScenarioPair.Write(scn, "ns/wire/iptables.save", rawDrop);
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", v6off + "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\n");
        ScenarioPair.Write(scn, "ns/r/ip.batch", "link set lo up\n" +
            $"link set eth0 address {RMac0}\naddr add 10.9.0.2/24 dev eth0\nlink set eth0 up\n" +
            $"link set eth1 address {RMac1}\naddr add 10.10.0.2/24 dev eth1\nlink set eth1 up\n" +
            $"neigh add 10.9.0.1 lladdr {WireMac} dev eth0 nud permanent\nneigh add 10.10.0.1 lladdr {DstMac} dev eth1 nud permanent\n" +
            "route add 10.77.0.0/16 via 10.10.0.1 dev eth1\n");
        ScenarioPair.Write(scn, "ns/dst/sysctl.conf", v6off);
        ScenarioPair.Write(scn, "ns/dst/ip.batch", $"link set lo up\nlink set dst0 address {DstMac}\naddr add 10.10.0.1/24 dev dst0\nlink set dst0 up\n");
        ScenarioPair.Write(scn, "ns/dst/iptables.save", rawDrop);
        if (dstSysfs is not null) ScenarioPair.Write(scn, "ns/dst/sysfs", dstSysfs);
    }

    /// <summary>UDP datagrams of four flows from the wire through r to 10.77.0.5.</summary>
    private static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        for (int i = 0; i < Frames; i++)
            c.Add("eth0", Support.Frames.Eth(RMac0, WireMac, Support.Frames.Udp("10.9.0.10", (ushort)(4000 + i % 4), "10.77.0.5", 53)), "forwarded");
        return c;
    }

    /// <summary>Per CPU: processed, received_rps (softnet_stat columns 1 and 10), from the kernel's two snapshots.</summary>
    internal static Dictionary<int, (long Processed, long ReceivedRps)> KernelDelta(string outDir)
    {
        static Dictionary<int, (long, long)> Read(string path)
        {
            var d = new Dictionary<int, (long, long)>();
            foreach (var line in File.ReadAllLines(path))
            {
                var t = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (t.Length < 13) continue;
                d[Convert.ToInt32(t[12], 16)] = (Convert.ToInt64(t[0], 16), Convert.ToInt64(t[9], 16));
            }
            return d;
        }
        var before = Read(Path.Combine(outDir, "softnet_stat.before"));
        var after = Read(Path.Combine(outDir, "softnet_stat.after"));
        return after.ToDictionary(kv => kv.Key, kv => (kv.Value.Item1 - before[kv.Key].Item1, kv.Value.Item2 - before[kv.Key].Item2));
    }

    internal static string? Unavailable()
    {
        if (KernelScenario.Unavailable() is { } why) return why;
        if (Environment.ProcessorCount < 2) return "RPS placement needs CPUs 0 and 1 (this process may run on one CPU)";
        return null;
    }

    /// <summary>How much more the kernel's processed may be than Softnet's: the host's other receive work meanwhile.</summary>
    internal const long HostNoise = Frames / 2;

    /// <summary>The replay's engine (null until <see cref="Replay"/> ran) and its per-CPU softnet_stat beside the kernel's
    /// deltas, asserted per CPU: received_rps within <paramref name="rpsSlack"/>, processed at least Softnet's less
    /// <paramref name="below"/> and at most <see cref="HostNoise"/> more. Returns the table (also printed).</summary>
    internal static string AssertPlacement(string kernelDir, NapiEngine engine, long rpsSlack = 0, long below = 0)
    {
        var k = KernelDelta(kernelDir);
        var sb = new System.Text.StringBuilder();
        foreach (var (side, rows) in new[] { ("kernel", k.Where(kv => kv.Key < 2).OrderBy(kv => kv.Key).Select(kv => (kv.Key, kv.Value.Processed, kv.Value.ReceivedRps))),
                     ("softnet", engine.Cpus.Select(c => (c.Id, c.Processed, c.ReceivedRps))) })
        {
            sb.Append(side);
            foreach (var (cpu, p, r) in rows) sb.Append($" cpu{cpu} processed {p} received_rps {r}");
            sb.Append("; ");
        }
        string table = sb.ToString();
        Console.WriteLine(table);
        foreach (var c in engine.Cpus)
        {
            Assert.True(Math.Abs(k[c.Id].ReceivedRps - c.ReceivedRps) <= rpsSlack, table);
            Assert.True(k[c.Id].Processed >= c.Processed - below && k[c.Id].Processed <= c.Processed + HostNoise, table);
        }
        return table;
    }

    /// <summary>Softnet's replay of the scenario on CPUs 0 and 1 (GRO off, as the kernel's veths), dumped to
    /// <paramref name="outDir"/>; returns its engine.</summary>
    internal static NapiEngine Replay(string scn, string capture, string inject, string outDir, Softnet.Steering.RpsOptions? rps = null)
    {
        NapiEngine? engine = null;
        var options = new ScenarioOptions { Replay = new ReplayOptions { Gro = null, Cpus = [0, 1], Rps = rps, EngineCreated = e => engine = e } };
        using (ScenarioReplay.Run(scn, capture, inject, outDir, options)) { }
        return engine!;
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rps_on_a_veth_runs_its_receive_where_the_kernel_does(bool rps)
    {
        string? skip = Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", rps ? "rps-veth" : "rps-veth-off");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        BuildScenario(scn, rps ? "class/net/dst0/queues/rx-0/rps_cpus = 2\n" : null);
        Traffic().Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel, injectCpu: 0);

        var engine = Replay(scn, capture, "r", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap" } });
        // The frames 3 ms apart: each finds CPU 1's backlog empty, one IPI each.
        AssertPlacement(kernel, engine);
        var s0 = engine.Cpus[0];
        var s1 = engine.Cpus[1];
        Assert.Equal(rps ? Frames : 0, s1.Processed);
        Assert.Equal(rps ? Frames : 2 * Frames, s0.Processed);
    }
}

/// <summary>
/// RPS on flannel's VXLAN device against the kernel: VXLAN datagrams from node2 arrive on node1's eth1 (its veth peer
/// transmits them from CPU 0), node1's flannel.1 (rps_cpus 2, or nothing) takes the inner frames — in the kernel
/// through its gro cell, whose netif_receive_skb_list_internal runs get_rps_cpu — and node1 forwards them to pod1, whose
/// veth receive runs on the CPU that forwarded them.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(RpsKernelCollection.Name)]
public sealed class RpsVxlanPlacementKernelTests
{
    private const int Frames = 64;

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rps_on_flannel_1_runs_the_second_traversal_where_the_kernel_does(bool rps)
    {
        string? skip = RpsPlacementKernelTests.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", rps ? "rps-vxlan" : "rps-vxlan-off");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        ScenarioFiles.Copy(Path.Combine(AppContext.BaseDirectory, "Scenarios", "flannel-vxlan"), scn);
        if (rps) File.WriteAllText(Path.Combine(scn, "ns", "node1", "sysfs"), "class/net/flannel.1/queues/rx-0/rps_cpus = 2\n");
        var c = new ScenarioCapture();
        for (int i = 0; i < Frames; i++)
            c.Add("eth1", Support.Frames.Eth("02:00:0a:00:00:01", "02:00:0a:00:00:02", ScenarioTrafficVxlan.Vxlan(1,
                Support.Frames.Eth("02:00:0f:00:00:01", "02:00:0f:00:00:02", Support.Frames.Udp("10.244.1.2", 53, "10.244.0.2", (ushort)(40000 + i % 4))),
                sport: (ushort)(45000 + i % 4))), "VXLAN from node2 to pod1");
        c.Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "node1", kernel, injectCpu: 0);

        var engine = RpsPlacementKernelTests.Replay(scn, capture, "node1", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "node2/eth1.tx.pcap" } });
        RpsPlacementKernelTests.AssertPlacement(kernel, engine);
        // eth1 on CPU 0; flannel.1 and pod1's eth0 where RPS puts flannel.1.
        Assert.Equal(rps ? Frames : 3 * Frames, engine.Cpus[0].Processed);
        Assert.Equal(rps ? 2 * Frames : 0, engine.Cpus[1].Processed);
    }
}

/// <summary>Kernel tests that read the global softnet_stat or write global RPS settings run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RpsKernelCollection
{
    public const string Name = "rps-kernel";
}
