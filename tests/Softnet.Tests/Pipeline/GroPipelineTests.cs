using Softnet.Capture;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Pipeline;
using Softnet.Tests.Gro;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>GRO inside `replay`: bursts of one capture timestamp reach GRO within one poll, the tap shows the result.</summary>
public class GroPipelineTests
{
    /// <summary>Writes bursts to a pcap: every frame of a burst shares one timestamp, bursts 1 ms apart.</summary>
    private static string WriteBursts(IEnumerable<IReadOnlyList<byte[]>> bursts)
    {
        var path = Path.Combine(Path.GetTempPath(), $"softnet-gro-{Guid.NewGuid():N}.pcap");
        using var w = PcapWriter.Create(path, LinkType.Ethernet);
        long ts = 1_700_000_000_000_000_000;
        foreach (var burst in bursts)
        {
            foreach (var f in burst) w.Write(ts, f);
            ts += 1_000_000;
        }
        return path;
    }

    private static (Softnet.Telemetry.ReplayReport Report, List<byte[]> Tap) Replay(string capture, GroOptions? gro)
    {
        var tap = Path.ChangeExtension(capture, ".tap.pcap");
        try
        {
            using (var reader = CaptureReader.Open(capture))
            {
                var r = new ReplayPipeline(new ReplayOptions { Gro = gro, TapPath = tap }).Run(reader, capture);
                var frames = new List<byte[]>();
                using var tr = CaptureReader.Open(tap);
                while (tr.TryRead(out _, out var f)) frames.Add(f.ToArray());
                return (r, frames);
            }
        }
        finally { File.Delete(tap); }
    }

    [Fact]
    public void Frames_sharing_a_capture_timestamp_are_merged_as_one_poll_and_the_tap_shows_the_kernel_result()
    {
        var a = GroRun.Train(new TcpSeg(), 8);
        var b = GroRun.Train(new TcpSeg { Sport = 40001, SrcIp = 2 }, 4);
        var bursts = new List<IReadOnlyList<byte[]>>
        {
            a.Take(4).Concat(b.Take(2)).Select(s => s.Build()).ToList(),
            a.Skip(4).Concat(b.Skip(2)).Select(s => s.Build()).ToList(),
        };
        var path = WriteBursts(bursts);
        try
        {
            var (report, tap) = Replay(path, new GroOptions());
            var expected = GroReplay.Run(bursts, new GroOptions(), 0);
            Assert.Equal(expected.Count, tap.Count);
            for (int i = 0; i < tap.Count; i++) Assert.Equal(expected[i], tap[i]);
            Assert.Equal(12, report.PacketsIn);
            Assert.Equal(12, report.Delivered); // counted in segments
            Assert.True(report.Conserved);
            Assert.Equal([200, 200, 400, 400], Delivered.Payloads(tap).Order().ToArray());
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Gro_off_taps_every_frame_unchanged()
    {
        var frames = GroRun.Train(new TcpSeg(), 6).Select(s => s.Build()).ToList();
        var path = WriteBursts([frames]);
        try
        {
            var (report, tap) = Replay(path, null);
            Assert.Equal(frames, tap);
            Assert.Equal(6, report.Delivered);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Frames_with_distinct_timestamps_each_get_their_own_poll_so_nothing_merges()
    {
        var frames = GroRun.Train(new TcpSeg(), 6).Select(s => (IReadOnlyList<byte[]>)[s.Build()]).ToList();
        var path = WriteBursts(frames);
        try
        {
            var (report, tap) = Replay(path, new GroOptions());
            Assert.Equal(6, tap.Count);
            Assert.Equal(6, report.Delivered);
        }
        finally { File.Delete(path); }
    }

    [SkippableFact]
    public void Tshark_reads_the_tap_of_a_gro_replay()
    {
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        var bursts = new List<IReadOnlyList<byte[]>> { GroRun.Train(new TcpSeg(), 10).Select(s => s.Build()).ToList() };
        var path = WriteBursts(bursts);
        var tap = Path.ChangeExtension(path, ".tap.pcapng");
        try
        {
            using (var reader = CaptureReader.Open(path))
                new ReplayPipeline(new ReplayOptions { TapPath = tap }).Run(reader, path);
            var (exit, stdout, stderr) = ExternalTool.Run("tshark", "-r", tap, "-T", "fields", "-e", "ip.len", "-e", "tcp.len", "-e", "_ws.malformed");
            Assert.True(exit == 0, stderr);
            var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(rows);
            Assert.StartsWith("1052\t1000", rows[0]); // 10 x 100 bytes + 20 IP + 32 TCP, one merged skb
        }
        finally { File.Delete(path); File.Delete(tap); }
    }
}
