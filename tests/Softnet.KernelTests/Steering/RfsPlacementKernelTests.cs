using Softnet.KernelTests.Support;
using Softnet.Steering;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Steering;

/// <summary>
/// RFS against the kernel: a TCP flow into tcp-host's server, whose reader runs on CPU 1 (taskset) while the client's
/// segments are injected from CPU 0; eth0's rx-0 has rps_flow_cnt 256 and net.core.rps_sock_flow_entries is 4096 (a
/// global setting: saved and put back, and the collection runs alone). Once the reader has read (recvmsg records the
/// flow's CPU), the flow's segments go up on CPU 1 in both. The kernel's processed is counted per CPU and flow inside
/// the two namespaces (<see cref="KernelPlacement"/>), so the machine's other receive work does not count; its
/// received_rps (softnet_stat, read around the injection) is machine-wide and only printed.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(RpsKernelCollection.Name)]
public sealed class RfsPlacementKernelTests
{
    private const int Segments = 64;

    /// <summary>The client's segments, as the server's namespace counts them per CPU.</summary>
    private const string ServerFlow = "-p tcp --dport 5001";

    /// <summary>The flows counted per CPU: the client's segments (in the server) and the server's (in the client).</summary>
    private static readonly string[] Flows = [ServerFlow, "-p tcp --sport 5001"];

    private static string Scenario(string root, bool rfs)
    {
        string scn = Path.Combine(root, "scenario");
        ScenarioFiles.Copy(Path.Combine(AppContext.BaseDirectory, "Scenarios", "tcp-host"), scn);
        File.WriteAllText(Path.Combine(scn, "ns", "server", "sockets"), "tcp listen 10.77.0.1:5001 cpu 1\n");
        if (rfs) File.WriteAllText(Path.Combine(scn, "ns", "server", "sysfs"), "class/net/eth0/queues/rx-0/rps_flow_cnt = 256\n");
        return scn;
    }

    private static string Capture(string root)
    {
        var cap = new TcpCapture();
        var f = cap.Flow("10.77.0.2", 40100, "10.77.0.1", 5001);
        f.SendSyn().SendAck();
        cap.Pause(48);
        for (int i = 0; i < Segments; i++) f.Data(1448);
        cap.Pause(150);
        f.SendFin(0, gapMs: 100);
        f.AckServerFin();
        string path = Path.Combine(root, "in.pcapng");
        cap.Write(path);
        return path;
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Rfs_runs_a_flows_receive_on_its_readers_cpu_as_the_kernel_does(bool rfs)
    {
        string? skip = TcpKernelRun.Unavailable() ?? (Environment.ProcessorCount < 2 ? "RFS placement needs CPUs 0 and 1" : null)
            ?? (Proc.Exists("taskset") ? null : "taskset is missing");
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", rfs ? "rfs-tcp" : "rfs-tcp-off");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        Directory.CreateDirectory(root);
        string scn = Scenario(root, rfs), capture = Capture(root);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        const string Entries = "/proc/sys/net/core/rps_sock_flow_entries";
        string saved = File.ReadAllText(Entries).Trim();
        try
        {
            File.WriteAllText(Entries, rfs ? "4096" : "0");
            TcpKernelRun.Run(scn, capture, "server", kernel, promptReader: true, injectCpu: 0,
                placementFlows: Flows);
        }
        finally
        {
            File.WriteAllText(Entries, saved);
        }

        var engine = RpsPlacementKernelTests.Replay(scn, capture, "server", softnet, new RpsOptions { SockFlowEntries = rfs ? 4096 : 0 });
        Assert.Equal(File.ReadAllText(Path.Combine(kernel, "server", "sockets.txt")), File.ReadAllText(Path.Combine(softnet, "server", "sockets.txt")));
        // Each CPU's processed within a segment or two of Softnet's (segments the kernel's reader, whose wake-up is not
        // instant, had not read when the next came go up on CPU 0 instead of CPU 1), plus what TCP's timing moves: the
        // client receives the server's ACKs on the CPU that sent them, and how many and from where is not placement.
        // The kernel's reader now and then reads several segments at once and sends one ACK from recvmsg for them (the
        // client's count less or more than Softnet's); without RFS, Softnet's CPU 1 receives only the reader's ACKs
        // (the server's receive is all on CPU 0, asserted below) and the kernel's reader, woken later on a loaded
        // machine, leaves more of them to the softirq on CPU 0 (__tcp_ack_snd_check). With RFS both run on CPU 1.
        var placement = KernelPlacement.Read(kernel);
        long Client(int? cpu) => placement.Where(c => c.Ns == "client" && c.Flow is null && (cpu is null || c.Cpu == cpu)).Sum(c => c.Packets);
        long clientAcks = Math.Abs(Client(null) - ScenarioCompare.ReadFrames(Path.Combine(softnet, "client", "eth0.rx.pcap")).Count);
        long ackShift = rfs ? 0 : Math.Abs(Client(1) - engine.Cpus[1].Processed);
        string table = RpsPlacementKernelTests.AssertPlacement(kernel, engine, slack: 3 + clientAcks + ackShift);
        // The same counting rules in Softnet's namespaces: each count within the same allowance of the kernel's.
        table += "; " + RpsPlacementKernelTests.AssertSameCounts(scn, capture, "server", kernel, Flows, engine,
            new RpsOptions { SockFlowEntries = rfs ? 4096 : 0 }, slack: 3 + clientAcks + ackShift);
        // The steered flow itself, in the server's namespace: on the reader's CPU from its first read on, or all on the
        // injector's CPU without RFS.
        long onReaderCpu = placement.Single(c => c.Ns == "server" && c.Cpu == 1 && c.Flow == ServerFlow).Packets;
        long all = placement.Where(c => c.Ns == "server" && c.Flow == ServerFlow).Sum(c => c.Packets);
        Assert.True(rfs ? onReaderCpu >= Segments - 2 : onReaderCpu == 0, table);
        Assert.Equal(Segments + 4, all);
        File.WriteAllText(Path.Combine(root, "placement.txt"), table + "\n");
        // With RFS the data segments after the reader's first read, the FIN and the last ACK: an IPI to CPU 1 each.
        if (rfs) Assert.True(engine.Cpus[1].ReceivedRps >= Segments - 2, table);
        else Assert.Equal(0, engine.Cpus[1].ReceivedRps);
    }
}
