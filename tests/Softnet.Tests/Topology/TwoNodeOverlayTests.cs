using Softnet.Capture;
using Softnet.Pipeline;
using Softnet.Topology;
using Softnet.Topology.Default;
using Xunit;

namespace Softnet.Tests.Topology;

/// <summary>The embedded default scenario: two Kubernetes nodes joined by a wire, flannel VXLAN between them.</summary>
public class TwoNodeOverlayTests
{
    [Fact]
    public void Flannel_rules_join_the_generated_tables_in_place()
    {
        const string rules = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j KUBE-POSTROUTING\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
        const string extra = "*nat\n:FLANNEL-POSTRTG - [0:0]\n-A POSTROUTING -j FLANNEL-POSTRTG\nCOMMIT\n";
        string merged = TwoNodeOverlay.MergeRules(rules, extra);
        Assert.Equal("*nat\n:FLANNEL-POSTRTG - [0:0]\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j KUBE-POSTROUTING\n" +
                     "-A POSTROUTING -j FLANNEL-POSTRTG\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", merged);
        Assert.Throws<InvalidOperationException>(() => TwoNodeOverlay.MergeRules(rules, "*mangle\n:X - [0:0]\nCOMMIT\n"));
    }

    [Fact]
    public void The_extracted_scenario_loads_with_kube_proxy_and_flannel_rules()
    {
        string dir = TwoNodeOverlay.Extract();
        Assert.Equal(dir, TwoNodeOverlay.Extract()); // the same contents, the same folder
        string rules = File.ReadAllText(Path.Combine(dir, "ns", "nodeB", "iptables.save"));
        Assert.Contains(":KUBE-SERVICES - [0:0]", rules);
        Assert.Contains("-j FLANNEL-POSTRTG", rules);
        var s = ScenarioLoader.Load(dir);
        Assert.NotNull(s.Namespace("nodeA"));
        Assert.NotNull(s.Namespace("podB"));
        Assert.Contains(s.Namespace("nodeB")!.Devices, d => d.Name == "flannel.1");
    }

    [Fact]
    public void Pod_frames_enter_node_A_on_the_pods_veth_and_host_frames_node_B_on_the_wire()
    {
        using var reader = TwoNodeOverlay.Traffic(TwoNodeOverlay.AllPaths, 256 << 10, 1e9);
        Assert.Equal([TwoNodeOverlay.WireDevice, TwoNodeOverlay.PodDevice], reader.Interfaces.Select(i => i.Name ?? "").ToArray());
        int wire = 0, pod = 0;
        while (reader.TryRead(out var meta, out var d))
        {
            string src = $"{d[26]}.{d[27]}.{d[28]}.{d[29]}";
            if (meta.InterfaceId == 1) { pod++; Assert.Equal("10.244.0.2", src); }
            else { wire++; Assert.Equal("10.0.0.11", src); } // node A's host client binds its second address
        }
        Assert.True(wire > 100 && pod > 200);
    }

    [Fact]
    public void Every_path_delivers_every_byte_and_the_overlay_crosses_the_stacks_twice()
    {
        using var run = TwoNodeOverlay.Run(new ReplayOptions(), bytesPerPath: 2 << 20);
        Assert.True(run.Combined.Replay.Conserved);
        var native = run.Paths.Single(p => p.Path == TwoNodePath.Native);
        var podNative = run.Paths.Single(p => p.Path == TwoNodePath.PodToNative);
        var podPod = run.Paths.Single(p => p.Path == TwoNodePath.PodToPod);
        foreach (var p in run.Paths)
        {
            Assert.Equal(2 << 20, p.BytesRead);
            Assert.Equal(0, p.Drops);
        }
        // MASQUERADE on node A: node B's listener answered node A's address, and node A tracks the pod's flows too.
        Assert.True(podNative.ConntrackEntries > native.ConntrackEntries);
        Assert.True(podNative.IpRcvPerSegment > native.IpRcvPerSegment);
        Assert.True(podPod.IpRcvPerSegment > podNative.IpRcvPerSegment);
        var nodeA = run.Combined.Scenario.Namespace("nodeA")!;
        Assert.True(nodeA.Device("flannel.1")!.TxPackets > 0); // node A's own VXLAN device wrapped the pod's frames
        Assert.Contains("pod->native", run.Verdict());
    }

    /// <summary>The default scenario in a temporary folder with node B's iperf3 server pinned to <paramref name="readerCpu"/>;
    /// the native path replayed in it on CPUs 0 and 1 with <paramref name="options"/>.</summary>
    private static TwoNodePathFigures NativeWithReaderOn(int readerCpu, long bytes, Func<ReplayOptions, ReplayOptions>? options = null)
    {
        var dir = Directory.CreateTempSubdirectory("softnet-reader-");
        try
        {
            ScenarioFiles.Copy(TwoNodeOverlay.Extract(), dir.FullName);
            string sockets = Path.Combine(dir.FullName, "ns", "nodeB", "sockets");
            File.WriteAllText(sockets, File.ReadAllText(sockets).Replace("tcp listen 10.0.0.2:5201", $"tcp listen 10.0.0.2:5201 cpu {readerCpu}", StringComparison.Ordinal));
            var replay = new ReplayOptions { Cpus = [0, 1] };
            return TwoNodeOverlay.MeasurePath(dir.FullName, TwoNodePath.Native, new ScenarioOptions { Replay = options?.Invoke(replay) ?? replay }, bytes, 2e9, 1);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    /// <summary>The iperf3 server's wake-ups (sk_data_ready) on node B, as schedstat's ttwu_local tells them apart:
    /// issued on its own CPU when it shares the softirq CPU, from the other CPU when it is pinned apart.</summary>
    [Theory]
    [InlineData(0, 1.0)]
    [InlineData(1, 0.0)]
    public void The_readers_wake_ups_are_local_only_on_the_softirq_cpu(int readerCpu, double localShare)
    {
        var f = NativeWithReaderOn(readerCpu, 256 << 10);
        Assert.Equal(256 << 10, f.BytesRead);
        Assert.Equal(localShare, f.LocalWakeShare, 6);
    }

    /// <summary>A reader that reads once per softirq round reads every byte, no more often than one that reads after
    /// every frame, and TCP sends as many ACKs.</summary>
    [Fact]
    public void Readers_per_round_send_the_acks_from_the_readers_cpu()
    {
        var perFrame = NativeWithReaderOn(1, 1 << 20);
        var perRound = NativeWithReaderOn(1, 1 << 20, r => r with { ReadersPerRound = true });
        Assert.Equal(1 << 20, perFrame.BytesRead);
        Assert.Equal(1 << 20, perRound.BytesRead);
        Assert.Equal(0, perRound.Drops);
        // Reads of what a round queued: no more of them than after every frame, and as many ACKs, which TCP now leaves
        // to the reads (tcp_cleanup_rbuf, on the reader's CPU: the experiment's CPU 1 share shows it).
        Assert.True(perRound.WakeupsPerSegment <= perFrame.WakeupsPerSegment, $"{perRound.WakeupsPerSegment:F3} > {perFrame.WakeupsPerSegment:F3}");
        Assert.InRange(perRound.AcksPerSegment, 0.8 * perFrame.AcksPerSegment, 1.2 * perFrame.AcksPerSegment);
    }
}
