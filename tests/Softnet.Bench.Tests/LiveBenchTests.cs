using System.Buffers.Binary;
using System.Text.Json;
using Softnet.Bench;
using Softnet.Packets;
using Xunit;

namespace Softnet.Bench.Tests;

/// <summary>`bench live` for a second per side between real namespaces (root): every headline key is there with a
/// figure, and each side forwarded what it was sent through the Docker DNAT.</summary>
public class LiveBenchTests
{
    [SkippableFact]
    public void A_one_second_run_writes_both_ports_and_the_kernel()
    {
        string? why = LiveBench.Unavailable();
        Skip.If(why != null, $"bench live needs root, network namespaces and its tools: {why}");
        string json = Path.Combine(Directory.CreateTempSubdirectory("softnet-livebench-test-").FullName, "live.json");
        try
        {
            Assert.Equal(0, LiveBench.Run(BenchArgs.Parse(["--seconds", "1", "--warmup", "0.5", "--json", json]), secondsGiven: true));
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var root = doc.RootElement;
            foreach (var port in new[] { "packet", "xdp" })
            {
                Assert.True(root.GetProperty("softnet_pps_per_core").GetProperty(port).GetDouble() > 0, $"softnet_pps_per_core.{port}");
                Assert.True(root.GetProperty("ratio").GetProperty(port).GetDouble() > 0, $"ratio.{port}");
                var side = root.GetProperty("sides").GetProperty(port);
                Assert.True(side.GetProperty("forwarded").GetInt64() > 0, $"{port} forwarded nothing");
                Assert.True(side.GetProperty("cpu_seconds").GetDouble() > 0);
                Assert.True(side.GetProperty("softirq_seconds_by_cpu").GetArrayLength() >= 1);
            }
            Assert.True(root.GetProperty("kernel_pps_per_core").GetDouble() > 0, "kernel_pps_per_core");
            Assert.True(root.GetProperty("sides").GetProperty("kernel").GetProperty("forwarded").GetInt64() > 0);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    /// <summary>The generator's frames: 64 bytes on the wire, mid-stream ACKs to the published port, one flow per
    /// source port, valid checksums (conntrack checks the TCP one in PREROUTING).</summary>
    [Fact]
    public void Frames_are_minimum_size_acks_to_the_published_port_with_valid_checksums()
    {
        var frames = LiveBench.BuildFrames();
        Assert.Equal(LiveBench.Flows, frames.Length);
        var ports = new HashSet<ushort>();
        foreach (var f in frames)
        {
            Assert.Equal(60, f.Length);
            Assert.Equal(0x0800, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)));
            var ip = f.AsSpan(14, 20);
            Assert.Equal(40, BinaryPrimitives.ReadUInt16BigEndian(ip[2..]));
            Assert.Equal(0, Checksum.Compute(ip));
            var tcp = f.AsSpan(34, 20);
            Assert.Equal(5201, BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]));
            Assert.Equal(0x10, tcp[13]);
            Assert.Equal(0, Checksum.Compute(tcp, Checksum.PseudoHeaderV4(ip[12..16], ip[16..20], 6, 20)));
            Assert.True(ports.Add(BinaryPrimitives.ReadUInt16BigEndian(tcp)));
        }
    }
}
