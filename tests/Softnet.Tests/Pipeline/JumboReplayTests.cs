using System.Text.Json;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Gro;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>Replays with a jumbo MTU (multi-buffer receive) and of captures holding 64 KB GRO/TSO frames.</summary>
public class JumboReplayTests
{
    /// <summary>iperf3-style streams with a 9000-byte MTU's MSS (8948 with timestamps).</summary>
    private static readonly GeneratorOptions Jumbo = new() { Streams = 4, Bytes = 4 << 20, Seed = 11, Mss = 8948 };

    private static ReplayReport Replay(ReplayOptions o, GeneratorOptions g)
    {
        using var reader = new GeneratorCaptureReader(g);
        return new ReplayPipeline(o).Run(reader, "jumbo");
    }

    private static List<(long, byte[])> Frames(GeneratorOptions g)
    {
        using var r = new GeneratorCaptureReader(g);
        return MemoryCaptureReader.Load(r);
    }

    private static string Json(ReplayReport r)
    {
        var ms = new MemoryStream();
        r.WriteJson(ms);
        var doc = JsonDocument.Parse(ms.ToArray());
        return string.Join("\n", doc.RootElement.EnumerateObject()
            .Where(p => p.Name is not ("elapsed_seconds" or "packets_per_second" or "cpu_time"))
            .Select(p => p.Name + "=" + p.Value.GetRawText()));
    }

    [Fact]
    public void Mtu_9000_replay_receives_every_jumbo_frame_multi_buffer_and_gro_merges_seven_per_skb()
    {
        // Arrivals at 1 Mpps: a 50 µs moderation interval gathers enough frames of each flow for GRO to merge.
        var options = new ReplayOptions { Nic = new NicOptions { Mtu = 9000 }, Gro = new GroOptions(), Rate = Rate.FromPackets(1e6) };
        var pipeline = new ReplayPipeline(options);
        ReplayReport r;
        using (var reader = new GeneratorCaptureReader(Jumbo)) r = pipeline.Run(reader, "jumbo");
        Assert.True(r.Conserved);
        Assert.Equal(r.PacketsIn, r.Delivered);
        Assert.Equal(0, r.Drops.Total);
        var s = pipeline.Nic!.Queues[0].Ring.Stats;
        Assert.True(s.NonEopDescs >= 5 * (r.PacketsIn / 2), $"{s.NonEopDescs} non-EOP descriptors for {r.PacketsIn} frames");
        var gro = pipeline.Gro!.TotalStats();
        // The generator's TCP timestamps tick every few jumbo segments (options differ: flush), so runs are short
        // here; the 7-segment limit itself is GroJumboTests' and the kernel comparison's.
        Assert.True(gro.Merged > 50, $"{gro.Merged} merges");
        Assert.True(gro.MergeRatio <= 7, $"merge ratio {gro.MergeRatio}");
    }

    [Fact]
    public void The_same_capture_at_mtu_1500_drops_jumbo_frames_as_oversize_when_aggregates_are_refused()
    {
        var r = Replay(new ReplayOptions { Nic = new NicOptions { TcpAggregates = false } }, Jumbo);
        Assert.True(r.Conserved);
        Assert.True(r.Drops[DropReason.FrameTooLong] > r.PacketsIn / 3);
        Assert.Equal(r.PacketsIn, r.Delivered + r.Drops[DropReason.FrameTooLong]);
    }

    [Fact]
    public void Tcp_frames_past_the_mtu_replay_as_gso_skbs_and_never_as_frame_too_long()
    {
        // A capture from a host doing GRO: 64 KB TCP frames. At MTU 1500 each is a 45-segment aggregate.
        var g = new GeneratorOptions { Streams = 2, Bytes = 4 << 20, Seed = 2, Mss = 65535 - 20 - 32 };
        var r = Replay(new ReplayOptions { Gro = new GroOptions() }, g);
        Assert.Equal(0, r.Drops[DropReason.FrameTooLong]);
        Assert.True(r.Conserved, $"{r.PacketsIn} in + {r.AggregateSegments} segments, {r.Delivered} delivered, {r.Drops.Total} dropped");
        Assert.True(r.AggregateSegments > 40 * (r.PacketsIn / 3));
        Assert.Equal(r.PacketsIn + r.AggregateSegments, r.Delivered);
    }

    [Fact]
    public void Jumbo_replay_is_deterministic()
    {
        var o = new ReplayOptions
        {
            Nic = new NicOptions { Mtu = 9000, Queues = 2, RingSize = 128 },
            Cpus = [0, 1],
            Rate = Rate.FromPackets(3e6),
            PollCostNs = 200,
            Gro = new GroOptions(),
        };
        var a = Replay(o, Jumbo);
        var b = Replay(o, Jumbo);
        Assert.True(a.Drops[DropReason.RingFull] > 0, "the set-up should overflow the rings mid-frame too");
        Assert.True(a.Conserved);
        Assert.Equal(Json(a), Json(b));
    }

    [Fact]
    public void Jumbo_replay_allocates_nothing_per_packet()
    {
        var options = new ReplayOptions { Nic = new NicOptions { Mtu = 9000, Queues = 2 }, Cpus = [0, 1], Gro = new GroOptions { PerFlowStats = false } };
        long Allocated(long bytes)
        {
            using var reader = new MemoryCaptureReader(Frames(Jumbo with { Bytes = bytes }));
            var pipeline = new ReplayPipeline(options);
            long before = GC.GetAllocatedBytesForCurrentThread();
            pipeline.Run(reader, "alloc");
            return GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Allocated(32 << 20);
        Allocated(32 << 20);
        // The least of three runs each: a one-off allocation in a run (a lazily built table, the runtime's own work on
        // this thread while methods tier up under a loaded machine) is not per packet.
        long small = Enumerable.Range(0, 3).Min(_ => Allocated(2 << 20)), large = Enumerable.Range(0, 3).Min(_ => Allocated(32 << 20));
        long extraPackets = (32 << 20) / 8948 - (2 << 20) / 8948;
        Assert.True((large - small) / (double)extraPackets < 2.0, $"{large - small} bytes more for {extraPackets} more packets");
    }
}
