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
/// Node B of the embedded default scenario receiving pod A's iperf3 to pod B as VXLAN on its NIC (the frames as node A's
/// flannel.1 sends them, <see cref="OverlayEncapReader"/>), GRO on and off: flannel.1's port is registered on the NIC's
/// GRO, so the datagrams merge like plain TCP (udp_tunnel GRO), the aggregate crosses the stack a second time as one skb
/// and reaches pod B through cni0 and the veth still in one piece, and every byte arrives as without GRO.
/// </summary>
[Collection(TwoNodeOverlayAlone.Name)]
public class TwoNodeOverlayGroTests
{
    private const long Bytes = 3 << 20;

    /// <summary>What node B's NIC receives of pod A → pod B: the inner frames between the flannel.1 devices, wrapped as
    /// node A's sends them.</summary>
    private static ICaptureReader NicView() =>
        new OverlayEncapReader(new Softnet.Capture.Generator.GeneratorCaptureReader([new Softnet.Capture.Generator.GeneratorOptions
        {
            Streams = 2, Bytes = Bytes, Rate = Softnet.Capture.Rate.FromBits(2e9), ServerKey = 0, Seed = 2, Mss = 1398,
            Client = System.Net.IPAddress.Parse("10.244.0.2"), Server = System.Net.IPAddress.Parse("10.244.1.2"),
            ClientMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0f-00-00-01"),
            ServerMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0f-00-00-02"),
        }]), Softnet.Packets.Ipv4.Parse("10.244.0.0"), 16, "02:00:0a:00:00:01", "02:00:0a:00:00:02", Softnet.Packets.Ipv4.Parse("10.0.0.1"), Softnet.Packets.Ipv4.Parse("10.0.0.2"));

    private static ScenarioReport Replay(bool gro, string dump = "")
        => ScenarioReplay.Run(TwoNodeOverlay.Extract(), NicView, TwoNodeOverlay.SourceName, TwoNodeOverlay.WireDevice, dump,
            new ScenarioOptions { Replay = new ReplayOptions { Gro = gro ? new GroOptions() : null } });

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
        double merge, ipRcvOn, ipRcvOff;
        string withGro, without;
        long flannelRx, segments, bytesRead;
        using (var on = Replay(gro: true))
        {
            merge = on.Replay.Sections.OfType<GroStats>().Single().MergeRatio;
            segments = on.Replay.PacketsIn;
            ipRcvOn = on.Scenario.Namespace("nodeB")!.Mib[Softnet.Telemetry.SnmpCounter.IpInReceives];
            withGro = Connections(on);
            flannelRx = on.Scenario.Namespace("nodeB")!.Device("flannel.1")!.RxPackets;
            bytesRead = on.Scenario.Namespace("podB")!.Sockets.All.OfType<TcpListenSock>().Single().Stats.Bytes;
        }
        using (var off = Replay(gro: false))
        {
            ipRcvOff = off.Scenario.Namespace("nodeB")!.Mib[Softnet.Telemetry.SnmpCounter.IpInReceives];
            without = Connections(off);
        }
        Assert.True(merge > 1.5, $"the NIC's GRO merges {merge:F2} segments per skb");
        Assert.Equal(Bytes, bytesRead);
        // The second traversal (flannel.1, forwarding, cni0, the veth) is paid per aggregate, not per segment.
        Assert.True(ipRcvOn < ipRcvOff / 1.5, $"node B's ip_rcv {ipRcvOn} with GRO, {ipRcvOff} without");
        // Byte-exact: each connection read the same bytes (count and SHA-256) with GRO as without.
        Assert.Contains("sha256", withGro);
        Assert.Equal(without, withGro);
        Assert.True(flannelRx < segments / 1.5, $"flannel.1 received {flannelRx} skbs for {segments} segments");
    }

    [Fact]
    public void The_aggregate_enters_the_pod_whole_through_bridge_and_veth()
    {
        string dump = Path.Combine(Path.GetTempPath(), "softnet-vxlangro-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            using var r = Replay(gro: true, dump);
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
/// 5 MiB, once in a few runs). Run on their own, after the parallel tests; so does that measurement
/// (<see cref="ScenarioAllocationTests"/>), which any other parallel replay's pools can disturb the same way.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TwoNodeOverlayAlone
{
    public const string Name = "Default scenario replays (alone)";
}
