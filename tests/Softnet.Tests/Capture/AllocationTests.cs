using Softnet.Tests.Support;
using Softnet.Capture;
using Xunit;
using static Softnet.Tests.Capture.CaptureTestKit;

namespace Softnet.Tests.Capture;

public class AllocationTests
{
    private static long ReadAllFrames(ICaptureReader r)
    {
        long bytes = 0;
        while (r.TryRead(out var meta, out var data)) bytes += data.Length + meta.OriginalLength;
        return bytes;
    }

    private static void AssertNoAllocationPerFrame(string path, int frames)
    {
        using var r = CaptureReader.Open(path);
        // Warm up: the first frames size the buffer and JIT the loop.
        for (int i = 0; i < 100; i++) Assert.True(r.TryRead(out _, out _));
        long before = GC.GetAllocatedBytesForCurrentThread();
        long sum = ReadAllFrames(r);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(sum > 0);
        // Nothing per frame: a few hundred bytes of slack for the runtime, far below one byte per frame.
        AllocationAssert.NothingPerOperation(allocated, frames - 100, "frames read");
    }

    [Theory]
    [InlineData(".pcap")]
    [InlineData(".pcapng")]
    public void Reading_frames_allocates_nothing_per_frame(string ext)
    {
        const int frames = 50_000;
        var path = TempFile(ext);
        try
        {
            using (var w = ext == ".pcap"
                ? (ICaptureWriter)PcapWriter.Create(path, LinkType.Ethernet)
                : PcapngWriter.Create(path, [new CaptureInterface(LinkType.Ethernet, 0, "a", 1_000_000_000), new CaptureInterface(LinkType.Raw, 0, "b", 1_000_000)]))
            {
                var buf = new byte[1514];
                for (int i = 0; i < frames; i++) w.Write(i * 1000L, buf.AsSpan(0, 60 + i % 1400), -1, ext == ".pcap" ? 0 : i % 2);
            }
            AssertNoAllocationPerFrame(path, frames);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Writing_frames_allocates_nothing_per_frame()
    {
        var buf = new byte[1514];
        foreach (var w in new ICaptureWriter[]
        {
            new PcapWriter(Stream.Null, LinkType.Ethernet),
            new PcapngWriter(Stream.Null, [new CaptureInterface(LinkType.Ethernet, 0, "a", 1_000_000_000), new CaptureInterface(LinkType.Ethernet, 0, "b", 1 << 20)]),
        })
        {
            using (w)
            {
                for (int i = 0; i < 100; i++) w.Write(i, buf, -1, i % 2 * (w is PcapngWriter ? 1 : 0));
                long before = GC.GetAllocatedBytesForCurrentThread();
                for (int i = 0; i < 10_000; i++) w.Write(i, buf.AsSpan(0, 60 + i % 1400), -1, i % 2 * (w is PcapngWriter ? 1 : 0));
                AllocationAssert.NothingPerOperation(GC.GetAllocatedBytesForCurrentThread() - before, 10_000, "frames written");
            }
        }
    }
}
