using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Filter;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Pipeline;

/// <summary>`softnet replay FILE --trace EXPR` without a scenario: the filter picks exactly the frames tcpdump -r
/// would, and each picked frame is followed from the port through the driver and GRO to the decode stack.</summary>
public sealed class PacketTracerReplayTests
{
    private static byte[] Udp(ushort dport, int payload, ushort ipId)
    {
        var f = new byte[14 + 20 + 8 + payload];
        f[0] = 2; f[5] = 1; f[6] = 2; f[11] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + payload));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], ipId);
        ip[8] = 64;
        ip[9] = 17;
        ip[12] = 10; ip[15] = 1;
        ip[16] = 10; ip[19] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..20]));
        BinaryPrimitives.WriteUInt16BigEndian(ip[20..], 5000);
        BinaryPrimitives.WriteUInt16BigEndian(ip[22..], dport);
        BinaryPrimitives.WriteUInt16BigEndian(ip[24..], (ushort)(8 + payload));
        return f;
    }

    [Fact]
    public void A_merged_segment_names_the_traced_packet_it_joined_in_gro()
    {
        // One iperf3-style stream at line rate: GRO merges its segments into the flow's held skb.
        var tracer = new PacketTracer("tcp");
        using (var reader = new Softnet.Capture.Generator.GeneratorCaptureReader([new Softnet.Capture.Generator.GeneratorOptions { Streams = 1, Bytes = 256 << 10 }]))
            new ReplayPipeline(new ReplayOptions { Tracer = tracer }).Run(reader, "generated");
        var merges = tracer.Journeys.SelectMany(j => j.Events.Where(e => e.Stage == TraceStage.Gro && e.Text.StartsWith("merged into", StringComparison.Ordinal))
            .Select(e => (j.Id, e.Text))).ToList();
        Assert.NotEmpty(merges);
        // A journey's times never go back (the engine's clock can lag the port's arrival stamp).
        foreach (var j in tracer.Journeys)
            for (int i = 1; i < j.Events.Count; i++)
                Assert.True(j.Events[i].TimeNs >= j.Events[i - 1].TimeNs, $"#{j.Id}: event {i} at {j.Events[i].TimeNs} before {j.Events[i - 1].TimeNs}");
        foreach (var (id, text) in merges)
        {
            // Every packet is traced here, so the head it joined is too: an earlier one.
            Assert.Matches(@"^merged into #\d+'s skb", text);
            int head = int.Parse(text["merged into #".Length..text.IndexOf('\'')], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(head < id, $"#{id} merged into #{head}");
        }
    }

    [Fact]
    public void The_filter_selects_what_tcpdump_would_and_each_journey_reaches_the_stack()
    {
        var frames = Enumerable.Range(0, 200).Select(i => Udp((ushort)(i % 7 == 0 ? 53 : 9000 + i), 18 + i % 40, (ushort)i)).ToList();
        string path = Path.Combine(Path.GetTempPath(), $"softnet-trace-replay-{Environment.ProcessId}.pcap");
        try
        {
            using (var w = PcapWriter.Create(path, LinkType.Ethernet))
                for (int i = 0; i < frames.Count; i++) w.Write(1_000_000L * (i + 1), frames[i]);
            const string expr = "udp port 53 and ip[5] & 1 = 0";
            var filter = PcapFilter.Compile(expr, LinkType.Ethernet);
            var expected = frames.Select((f, i) => (f, i)).Where(x => filter.Matches(x.f, x.f.Length)).Select(x => (long)x.i + 1).ToList();
            Assert.NotEmpty(expected);

            var tracer = new PacketTracer(expr);
            using (var reader = CaptureReader.Open(path))
                new ReplayPipeline(new ReplayOptions { Tracer = tracer }).Run(reader, path);
            Assert.Null(PacketTracer.Current);
            Assert.Equal(expected, tracer.Journeys.Select(j => j.FrameNumber));
            Assert.Equal(200, tracer.Examined);
            foreach (var j in tracer.Journeys)
            {
                var stages = j.Events.Select(e => e.Stage).ToList();
                Assert.Equal(TraceStage.Arrival, stages[0]);
                Assert.Contains(TraceStage.Skb, stages);
                Assert.Contains(TraceStage.Gro, stages);
                Assert.Equal(TraceStage.Deliver, stages[^1]);
                Assert.All(j.Events, e => Assert.Equal(j.Id, e.Packet));
                Assert.Contains(":53 udp", j.Summary);
            }
            Assert.Equal(tracer.Events.Count, tracer.TextLines().Count);
            Assert.Equal(tracer.Journeys[0].Events.Count, tracer.TextLines(1).Count);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_frame_the_filter_does_not_select_allocates_nothing()
    {
        var tracer = new PacketTracer("udp port 53 and ip[5] & 1 = 0");
        var frame = Udp(9000, 40, 2);
        for (int i = 0; i < 100; i++) tracer.Select(frame, frame.Length, LinkType.Ethernet, i, 0);
        // Tiered compilation's one-off allocations (6 KB once in a CI run) land in one round at most.
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 10_000; i++) tracer.Select(frame, frame.Length, LinkType.Ethernet, i, 0);
        }, 10_000, "unselected frames");
        Assert.Empty(tracer.Journeys);
    }

    [Fact]
    public void A_bad_expression_is_refused_before_the_replay()
        => Assert.ThrowsAny<FilterException>(() => new PacketTracer("udp port"));
}
