using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Gro;
using Softnet.Pipeline;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>The replay path allocates per run (pools, rings, engines), never per packet.</summary>
public class ReplayAllocationTests
{
    private static long AllocatedFor(long bytes, ReplayOptions options)
    {
        // Frames are generated up front so only the path itself is measured.
        List<(long, byte[])> frames;
        using (var g = new GeneratorCaptureReader(new GeneratorOptions { Streams = 4, Bytes = bytes, Seed = 5, Rate = Rate.FromBits(40e9) }))
            frames = MemoryCaptureReader.Load(g);
        using var reader = new MemoryCaptureReader(frames);
        var pipeline = new ReplayPipeline(options);
        long before = GC.GetAllocatedBytesForCurrentThread();
        pipeline.Run(reader, "alloc");
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Replay_allocates_nothing_per_packet(bool gro)
    {
        var options = new ReplayOptions { Gro = gro ? new GroOptions { PerFlowStats = false } : null, Nic = new() { Queues = 2 }, Cpus = [0, 1] };
        // Warm up at the large size so tiered compilation has swapped in its final code before measuring.
        AllocatedFor(16 << 20, options);
        AllocatedFor(16 << 20, options);
        long small = AllocatedFor(1 << 20, options);
        long large = AllocatedFor(16 << 20, options);
        long extraPackets = (16 << 20) / 1448 - (1 << 20) / 1448;
        // One object per packet would be >= 24 bytes each; allow a little runtime noise below that.
        Assert.True((large - small) / (double)extraPackets < 2.0,
            $"{large - small} bytes more for {extraPackets} more packets");
    }
}
