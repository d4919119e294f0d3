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
    public void Pod_frames_leave_node_A_wrapped_as_flannel_1_wraps_them()
    {
        using var reader = TwoNodeOverlay.Traffic([TwoNodePath.Pod], 256 << 10, 1e9);
        int frames = 0;
        while (reader.TryRead(out _, out var d))
        {
            frames++;
            Assert.Equal(0x0800, d[12] << 8 | d[13]);
            Assert.Equal(17, d[23]);                                  // outer UDP
            Assert.Equal(0, d[20] & 0x40);                            // no DF: vxlan_xmit leaves df unset by default
            Assert.Equal(64, d[22]);                                  // TTL 64
            int sport = d[34] << 8 | d[35], dport = d[36] << 8 | d[37];
            Assert.Equal(8472, dport);
            Assert.InRange(sport, 32768, 60999);                      // udp_flow_src_port over the local port range
            Assert.Equal(0x08, d[42]);                                // VXLAN I flag
            Assert.Equal(1, d[46] << 16 | d[47] << 8 | d[48]);        // VNI 1
            Assert.Equal(0x0800, d[62] << 8 | d[63]);                 // the inner frame is IPv4
        }
        Assert.True(frames > 100);
    }

    [Fact]
    public void Both_paths_deliver_every_byte_and_the_pod_path_crosses_the_stack_twice()
    {
        using var run = TwoNodeOverlay.Run(new ReplayOptions(), bytesPerPath: 2 << 20);
        Assert.Equal(run.Combined.Replay.PacketsIn, run.Combined.Replay.PacketsIn - run.Combined.Replay.Drops.Total);
        var native = run.Paths.Single(p => p.Path == TwoNodePath.Native);
        var pod = run.Paths.Single(p => p.Path == TwoNodePath.Pod);
        Assert.Equal(2 << 20, native.BytesRead);
        Assert.Equal(2 << 20, pod.BytesRead);
        Assert.Equal(0, native.Drops);
        Assert.Equal(0, pod.Drops);
        Assert.True(native.IpRcvPerSegment < 1, $"native ip_rcv per segment {native.IpRcvPerSegment}");
        Assert.True(pod.IpRcvPerSegment >= 2, $"pod ip_rcv per segment {pod.IpRcvPerSegment}");
        Assert.True(pod.ConntrackEntries > native.ConntrackEntries);
        Assert.Contains("segment", run.Verdict());
    }
}
