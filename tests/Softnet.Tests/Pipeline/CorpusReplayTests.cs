using Softnet.Capture;
using Softnet.Nic;
using Softnet.Pipeline;
using Softnet.Tests.Capture;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>Every capture of the tcpdump corpus replays through the whole path: no crash, hang or stray exception.</summary>
public class CorpusReplayTests
{
    [SkippableFact]
    public void Every_corpus_capture_replays_with_every_frame_accounted_for()
    {
        Skip.IfNot(Directory.Exists(CaptureTestKit.CorpusDir), $"corpus not found at {CaptureTestKit.CorpusDir}");
        var files = Directory.GetFiles(CaptureTestKit.CorpusDir).OrderBy(f => f, StringComparer.Ordinal).ToArray();
        Assert.True(files.Length > 800);
        long frames = 0, delivered = 0, brokenFiles = 0;
        foreach (var file in files)
        {
            ICaptureReader reader;
            try { reader = CaptureReader.Open(file); }
            catch (CaptureFormatException) { brokenFiles++; continue; } // not a capture (LICENSE): a clear error
            using (reader)
            {
                // Two queues and construct_skb exercise RSS and the copying path on odd frames too.
                var options = new ReplayOptions { Nic = new NicOptions { Queues = 2, SkbMode = SkbBuildMode.Construct }, Cpus = [0, 1] };
                var r = new ReplayPipeline(options).Run(reader, file);
                Assert.True(r.Conserved, $"{Path.GetFileName(file)}: {r.PacketsIn} in, {r.Delivered} delivered, {r.Drops.Total} dropped");
                if (r.CaptureError is not null) brokenFiles++;
                frames += r.PacketsIn;
                delivered += r.Delivered;
            }
        }
        Assert.True(frames > 9000, $"only {frames} frames replayed");
        Assert.True(delivered > frames / 3, $"{delivered} of {frames} delivered");
    }
}
