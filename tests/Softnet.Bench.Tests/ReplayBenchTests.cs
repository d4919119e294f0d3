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
