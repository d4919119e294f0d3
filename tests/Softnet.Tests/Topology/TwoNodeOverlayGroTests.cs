using System.Text;
using Softnet.Capture;
using Softnet.Gro;
using Softnet.Pipeline;
using Softnet.Topology;
using Softnet.Topology.Default;
using Softnet.Transport;
using Xunit;

namespace Softnet.Tests.Topology;

/// <summary>
/// The embedded default scenario with GRO on node B's NIC: flannel.1's port is registered on the NIC's GRO, so the
/// pod path's VXLAN frames merge like the native path's TCP (udp_tunnel GRO), the aggregate crosses the stack twice
/// as one skb and reaches pod B through cni0 and the veth still in one piece, and every byte arrives as without GRO.
/// </summary>
[Collection(TwoNodeOverlayAlone.Name)]
public class TwoNodeOverlayGroTests
{
    private const long Bytes = 3 << 20;

    private static string Connections(ScenarioReport r)
    {
        var sb = new StringBuilder();
        foreach (var ns in r.Scenario.Namespaces)
            foreach (var l in ns.Sockets.All.OfType<TcpListenSock>())
            {
                sb.Append(ns.Name).Append(": ");
                l.WriteDump(sb);
            }
        return sb.ToString();
    }

    [Fact]
    public void Pod_path_merges_vxlan_and_delivers_the_same_bytes()
    {
        // One run alive at a time: what is needed of each is taken before the next starts.
        TwoNodePathFigures pod, native, podOff;
        string withGro, without;
        long flannelRx;
        using (var on = TwoNodeOverlay.Run(new ReplayOptions { Gro = new GroOptions() }, "", Bytes))
        {
            pod = on.Paths.Single(p => p.Path == TwoNodePath.Pod);
            native = on.Paths.Single(p => p.Path == TwoNodePath.Native);
            withGro = Connections(on.Combined);
            flannelRx = on.Combined.Scenario.Namespace("nodeB")!.Device("flannel.1")!.RxPackets;
        }
        using (var off = TwoNodeOverlay.Run(new ReplayOptions { Gro = null }, "", Bytes))
        {
            podOff = off.Paths.Single(p => p.Path == TwoNodePath.Pod);
            without = Connections(off.Combined);
        }
        Assert.True(pod.GroMergeRatio > 1.5, $"pod path merges {pod.GroMergeRatio:F2} segments per skb");
        Assert.True(native.GroMergeRatio > 1.5);
        Assert.Equal(Bytes, pod.BytesRead);
        Assert.Equal(Bytes, native.BytesRead);
        Assert.Equal(0, pod.Drops);
        // The second traversal (flannel.1, forwarding, cni0, the veth) is paid per aggregate, not per segment.
        Assert.True(pod.IpRcvPerSegment < podOff.IpRcvPerSegment / 1.5, $"ip_rcv per segment {pod.IpRcvPerSegment:F2} with GRO, {podOff.IpRcvPerSegment:F2} without");
        // Byte-exact: each connection read the same bytes (count and SHA-256) with GRO as without.
        Assert.Contains("sha256", withGro);
        Assert.Equal(without, withGro);
        Assert.True(flannelRx < pod.Segments / 1.5, $"flannel.1 received {flannelRx} skbs for {pod.Segments} segments");
    }

    [Fact]
    public void The_aggregate_enters_the_pod_whole_through_bridge_and_veth()
    {
        string dump = Path.Combine(Path.GetTempPath(), "softnet-vxlangro-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            string dir = TwoNodeOverlay.Extract();
            var options = new ScenarioOptions { Replay = new ReplayOptions { Gro = new GroOptions() } };
            using var r = ScenarioReplay.Run(dir, () => TwoNodeOverlay.Traffic([TwoNodePath.Pod], Bytes, 2e9),
                TwoNodeOverlay.SourceName, TwoNodeOverlay.Inject, dump, options);
            // veth and the bridge have GSO features: no segmentation on the way, so pod B's eth0 receives frames longer
            // than its MTU (what tcpdump in the pod shows with GRO on the node's NIC).
            int longest = 0, frames = 0;
            using (var reader = CaptureReader.Open(Path.Combine(dump, "podB", "eth0.rx.pcap")))
                while (reader.TryRead(out var meta, out var data))
                {
                    frames++;
                    longest = Math.Max(longest, meta.OriginalLength);
                }
            Assert.True(longest > 1450 + 14, $"longest frame into the pod {longest}");
            Assert.True(frames < r.Replay.PacketsIn, $"{frames} frames into the pod for {r.Replay.PacketsIn} on the wire");
            var sock = r.Scenario.Namespace("podB")!.Sockets.All.OfType<TcpListenSock>().Single();
            Assert.Equal(Bytes, sock.Stats.Bytes);
        }
        finally
        {
            if (Directory.Exists(dump)) Directory.Delete(dump, true);
        }
    }
}

/// <summary>These replays allocate large pinned pools while they run; beside another test's allocation measurement
/// (GC.GetAllocatedBytesForCurrentThread around a scenario replay) they made it miscount a replay's pools (about
/// 5 MiB, once in a few runs). Run on their own, after the parallel tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TwoNodeOverlayAlone
{
    public const string Name = "Default scenario replays (alone)";
}
