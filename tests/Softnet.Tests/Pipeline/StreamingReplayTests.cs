using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Pipeline;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>
/// A capture larger than memory still streams: the replay holds one mapping window of the file at a time (or one small
/// copy buffer), so what the file adds to the process's resident set stays near the window however long the file is.
/// Checked on a generated capture many times the window, by the reader's own accounting and by the kernel's (RssFile in
/// /proc/self/status: the file pages mapped into the process).
/// </summary>
public class StreamingReplayTests
{
    private const int Window = 1 << 20;

    private static long RssFileBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("RssFile:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(8).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
        return -1;
    }

    [Theory]
    [InlineData(".pcap", CaptureFileAccess.Map)]
    [InlineData(".pcapng", CaptureFileAccess.Map)]
    [InlineData(".pcap", CaptureFileAccess.Copy)]
    [InlineData(".pcapng", CaptureFileAccess.Auto)]
    public void Replay_through_a_small_window_keeps_the_file_out_of_memory(string ext, CaptureFileAccess access)
    {
        string path = Path.Combine(Path.GetTempPath(), $"softnet-stream-{Guid.NewGuid():N}{ext}");
        try
        {
            GeneratorStats gen;
            using (var w = CaptureWriter.Create(path))
                gen = new TrafficGenerator(new GeneratorOptions { Streams = 4, Bytes = 48L << 20, Seed = 3, Rate = Rate.FromBits(40e9) }).WriteTo(w);
            long fileBytes = new FileInfo(path).Length;
            Assert.True(fileBytes > 40 * Window);

            bool linux = OperatingSystem.IsLinux();
            long baseline = linux ? RssFileBytes() : 0, peak = baseline;
            var pipeline = new ReplayPipeline(new ReplayOptions
            {
                ProgressEvery = 2048,
                Progress = (_, _) =>
                {
                    if (linux) peak = Math.Max(peak, RssFileBytes());
                },
            });
            using var reader = CaptureReader.Open(path, Window, access);
            var report = pipeline.Run(reader, path);

            Assert.Null(report.CaptureError);
            Assert.Equal(gen.Frames, report.PacketsIn);
            Assert.True(report.Conserved);
            var info = reader is PcapReader p ? p.Input : ((PcapngReader)reader).Input;
            if (access != CaptureFileAccess.Auto) Assert.Equal(access == CaptureFileAccess.Map, info.Mapped);
            // The reader never held more than one window (a record longer than the window would widen it; none is), or
            // than its 256 KiB copy buffer.
            Assert.InRange(info.PeakHeldBytes, 1, Window);
            if (linux)
            {
                // Mapping the whole file would add ~48 MB here; a window adds about one window (plus what the runtime
                // maps meanwhile: a few MB at most).
                Assert.True(peak - baseline < 12 * Window, $"RssFile grew by {(peak - baseline) >> 10} KB while replaying a {fileBytes >> 20} MB file");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
