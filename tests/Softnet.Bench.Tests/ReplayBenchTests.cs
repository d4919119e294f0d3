using System.Text.Json;
using Softnet.Bench;
using Xunit;

namespace Softnet.Bench.Tests;

/// <summary>`bench replay` on small captures: every key the issue names is written, per frame size where it says so, and
/// the files it generated are gone afterwards.</summary>
public class ReplayBenchTests
{
    [Fact]
    public void Json_has_the_issue_keys_for_both_frame_sizes()
    {
        string dir = Directory.CreateTempSubdirectory("softnet-replay-bench-test-").FullName;
        try
        {
            var r = ReplayBench.Measure(fileBytes: 2 << 20, seconds: 0.2, dir);
            Assert.Empty(Directory.GetFiles(dir));
            var ms = new MemoryStream();
            r.WriteJson(ms, 32 << 20, "test");
            using var doc = JsonDocument.Parse(ms.ToArray());
            var root = doc.RootElement;
            foreach (var key in new[] { "softnet_pps", "tcpdump_pps", "packets", "file_bytes", "reader_pps", "softnet_streamed_pps" })
            {
                var o = root.GetProperty(key);
                foreach (var size in new[] { "frames_64", "frames_1514" })
                {
                    var v = o.GetProperty(size);
                    // tcpdump's figure is null on a machine without tcpdump; everything else is a positive number.
                    if (key == "tcpdump_pps" && v.ValueKind == JsonValueKind.Null) continue;
                    Assert.True(v.GetDouble() > 0, $"{key}.{size} = {v}");
                }
            }
            Assert.True(root.GetProperty("softnet_gbytes_per_s").GetDouble() > 0);
            Assert.True(root.GetProperty("memcpy_gbytes_per_s").GetDouble() > 0);
            Assert.True(root.GetProperty("alloc_bytes_per_packet").GetDouble() >= 0);
            // A 2 MiB capture of 1514-byte frames (and 16 bytes of pcap record header each) holds about 1370 frames.
            Assert.InRange(root.GetProperty("packets").GetProperty("frames_1514").GetInt64(), 1300, 1450);
            // Every frame went the whole way: nothing was dropped on the capture clock.
            Assert.Equal(1.0, root.GetProperty("delivered_fraction").GetProperty("frames_64").GetDouble());
            Assert.Equal(1.0, root.GetProperty("delivered_fraction").GetProperty("frames_1514").GetDouble());
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [SkippableFact]
    public void Kernel_peer_counts_softirq_time_over_the_frames_the_veth_received()
    {
        string? why = ReplayKernelPeer.Unavailable();
        Skip.If(why != null, $"bench replay's kernel peer needs root, network namespaces and its tools: {why}");
        string path = Path.Combine(Path.GetTempPath(), $"softnet-replay-k-test-{Guid.NewGuid():N}.pcap");
        try
        {
            ReplayBench.Generate(path, 64, 1 << 20);
            int cpu = ScenarioBench.PickCpu();
            var k = ReplayKernelPeer.Measure(path, cpu, seconds: 1, idleTicksPerSecond: 0);
            Assert.NotNull(k);
            // A python sender passes at least tens of thousands of frames a second; the kernel spends between tens of
            // nanoseconds and tens of microseconds of softirq on each.
            Assert.True(k.Value.Received > 10_000, $"received {k.Value.Received}");
            Assert.InRange(k.Value.NsPerPacket, 20, 50_000);
            // What the JSON says of it.
            var size = new ReplayBench.SizeResult(64, 1, 1, 64, 1e7, 1, 1, double.NaN, 0, 0, 0, 1, 1, 1, 1, 1, 1, "map", 1);
            var r = new ReplayBench.Result([size], 1, new ReplayBench.KernelFigures(new Dictionary<int, ReplayKernelPeer.Result?> { [64] = k }, null));
            var ms = new MemoryStream();
            r.WriteJson(ms, 32 << 20, "test");
            using var doc = JsonDocument.Parse(ms.ToArray());
            var root = doc.RootElement;
            Assert.Equal(Math.Round(k.Value.NsPerPacket, 1), root.GetProperty("kernel_softirq_ns_per_packet").GetProperty("frames_64").GetDouble());
            Assert.Equal(100.0, root.GetProperty("softnet_ns_per_packet").GetProperty("frames_64").GetDouble());
            Assert.Equal(Math.Round(k.Value.NsPerPacket / 100, 2), root.GetProperty("kernel_over_softnet").GetProperty("frames_64").GetDouble());
            Assert.Contains("PACKET_OTHERHOST", root.GetProperty("kernel_method").GetString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Generated_frames_have_the_named_length_but_for_the_udp_handshake()
    {
        string path = Path.Combine(Path.GetTempPath(), $"softnet-replay-gen-{Guid.NewGuid():N}.pcap");
        try
        {
            foreach (int len in ReplayBench.FrameSizes)
            {
                ReplayBench.Generate(path, len, 1 << 20);
                using var reader = Softnet.Capture.CaptureReader.Open(path);
                long n = 0, handshake = 0;
                while (reader.TryRead(out _, out var frame))
                {
                    // iperf3's UDP start: a 4-byte datagram each way per stream (a 60-byte frame).
                    if (frame.Length != len)
                    {
                        Assert.Equal(60, frame.Length);
                        handshake++;
                    }
                    n++;
                }
                Assert.InRange(handshake, 0, 16);
                Assert.True((n - handshake) * (len + 16) >= 1 << 20);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
