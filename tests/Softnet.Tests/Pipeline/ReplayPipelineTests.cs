using System.Text.Json;
using CsCheck;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Tests.Support;
using Softnet.Xdp;
using Xunit;

namespace Softnet.Tests.Pipeline;

public class ReplayPipelineTests
{
    private static readonly GeneratorOptions Small = new() { Streams = 4, Bytes = 2 * 1024 * 1024, Seed = 7 };

    private static ReplayReport Replay(ReplayOptions o, GeneratorOptions? g = null)
    {
        using var reader = new GeneratorCaptureReader(g ?? Small);
        return new ReplayPipeline(o).Run(reader, "test");
    }

    private static long GeneratedFrames(GeneratorOptions g)
    {
        using var r = new GeneratorCaptureReader(g);
        long n = 0;
        while (r.TryRead(out _, out _)) n++;
        return n;
    }

    private static string Json(ReplayReport r)
    {
        var ms = new MemoryStream();
        r.WriteJson(ms);
        var doc = JsonDocument.Parse(ms.ToArray());
        // Wall-clock fields differ run to run; everything else must not.
        var filtered = doc.RootElement.EnumerateObject()
            .Where(p => p.Name is not ("elapsed_seconds" or "packets_per_second" or "cpu_time"))
            .Select(p => p.Name + "=" + p.Value.GetRawText());
        return string.Join("\n", filtered);
    }

    [Fact]
    public void Default_deterministic_replay_delivers_every_generated_frame()
    {
        var r = Replay(new ReplayOptions());
        Assert.Equal(GeneratedFrames(Small), r.PacketsIn);
        Assert.Equal(r.PacketsIn, r.Delivered);
        Assert.True(r.Conserved);
        Assert.Equal(r.PacketsIn, r.Protocols.Tcp);
    }

    [Fact]
    public void Deterministic_mode_is_reproducible_even_when_rings_overflow()
    {
        var o = new ReplayOptions
        {
            Nic = new NicOptions { Queues = 3, RingSize = 128 },
            Cpus = [0, 1],
            Rate = Rate.FromPackets(20e6),
            PollCostNs = 150,
        };
        var a = Replay(o);
        var b = Replay(o);
        Assert.True(a.Drops[DropReason.RingFull] > 0, "the set-up should overflow the rings");
        Assert.Equal(Json(a), Json(b));
    }

    [Fact]
    public void Conservation_holds_for_any_ring_rate_and_budget()
    {
        var g = new GeneratorOptions { Streams = 2, Bytes = 300_000, Seed = 3 };
        long frames = GeneratedFrames(g);
        Gen.Select(Gen.Int[6, 10], Gen.Double[0.2, 40], Gen.Int[0, 300], Gen.Int[1, 4], Gen.Int[1, 400], Gen.Int[1, 128])
            .Sample((ringLog, mpps, cost, queues, budget, weight) =>
            {
                var o = new ReplayOptions
                {
                    Nic = new NicOptions { Queues = queues, RingSize = 1 << ringLog, Weight = weight },
                    Cpus = queues > 1 ? [0, 1] : [0],
                    NetdevBudget = budget,
                    Rate = Rate.FromPackets(mpps * 1e6),
                    PollCostNs = cost,
                };
                var r = Replay(o, g);
                Assert.Equal(frames, r.PacketsIn);
                Assert.True(r.Conserved, $"offered {r.PacketsIn} != delivered {r.Delivered} + drops {r.Drops.Total}");
                Assert.Equal(r.Drops[DropReason.RingFull], SumMissed(r));
            }, iter: 40);
    }

    private static long SumMissed(ReplayReport r)
    {
        var ms = new MemoryStream();
        r.WriteJson(ms);
        var doc = JsonDocument.Parse(ms.ToArray());
        return doc.RootElement.GetProperty("nic").GetProperty("queues").EnumerateArray().Sum(q => q.GetProperty("rx_missed").GetInt64());
    }

    [Fact]
    public void Threaded_mode_loses_nothing_it_does_not_count()
    {
        var o = new ReplayOptions
        {
            Mode = ReplayMode.Threaded,
            Nic = new NicOptions { Queues = 4, RingSize = 256 },
            Cpus = [0, 1],
            Rate = Rate.Max,
        };
        for (int i = 0; i < 3; i++)
        {
            var r = Replay(o);
            Assert.True(r.Conserved, $"offered {r.PacketsIn} != delivered {r.Delivered} + drops {r.Drops.Total}");
            Assert.Equal(r.Drops[DropReason.RingFull], SumMissed(r));
        }
    }

    [Fact]
    public void Threaded_mode_falls_back_cleanly_when_a_cpu_cannot_be_pinned()
    {
        var o = new ReplayOptions { Mode = ReplayMode.Threaded, Cpus = [4000], Rate = Rate.FromPackets(2e6) };
        var r = Replay(o, new GeneratorOptions { Bytes = 100_000 });
        Assert.True(r.Conserved);
        var ms = new MemoryStream();
        r.WriteJson(ms);
        var cpu = JsonDocument.Parse(ms.ToArray()).RootElement.GetProperty("softnet")[0];
        Assert.False(cpu.GetProperty("pinned").GetBoolean());
    }

    [Fact]
    public void Xdp_drop_recycles_every_buffer_and_counts_each_frame()
    {
        var r = Replay(new ReplayOptions { Nic = new NicOptions { Xdp = XdpPrograms.DropAll, Queues = 2 } });
        Assert.Equal(0, r.Delivered);
        Assert.Equal(r.PacketsIn, r.Drops[DropReason.XdpDrop]);
        Assert.True(r.Conserved);
    }

    [Fact]
    public void Construct_skb_gives_the_same_counts_as_build_skb()
    {
        var build = Replay(new ReplayOptions());
        var construct = Replay(new ReplayOptions { Nic = new NicOptions { SkbMode = SkbBuildMode.Construct } });
        Assert.Equal(build.Delivered, construct.Delivered);
        Assert.Equal(build.Protocols.Items(), construct.Protocols.Items());
    }

    [Fact]
    public void Rss_spreads_flows_over_queues_and_keeps_each_flow_on_one_queue()
    {
        var r = Replay(new ReplayOptions { Nic = new NicOptions { Queues = 4 }, Cpus = [0, 1] });
        var ms = new MemoryStream();
        r.WriteJson(ms);
        var queues = JsonDocument.Parse(ms.ToArray()).RootElement.GetProperty("nic").GetProperty("queues")
            .EnumerateArray().Select(q => q.GetProperty("rx_packets").GetInt64()).ToArray();
        Assert.Equal(r.PacketsIn, queues.Sum());
        Assert.True(queues.Count(q => q > 0) >= 2, "4 TCP streams should land on more than one queue");
    }

    [Fact]
    public void Malformed_frames_are_counted_drops_not_exceptions()
    {
        var path = Path.GetTempFileName();
        try
        {
            using (var w = PcapWriter.Create(path, LinkType.Ethernet))
            {
                var good = new byte[60];
                good[12] = 0x08; good[14] = 0x45; good[17] = 46; good[23] = 17; // IPv4/UDP, total length 46
                good[34 + 5] = 26; // UDP length
                w.Write(1, good);
                var badIhl = (byte[])good.Clone(); badIhl[14] = 0x42;
                w.Write(2, badIhl);
                w.Write(3, good.AsSpan(0, 20)); // IPv4 header cut short
            }
            using var reader = CaptureReader.Open(path);
            var r = new ReplayPipeline(new ReplayOptions()).Run(reader, path);
            Assert.Equal(3, r.PacketsIn);
            Assert.Equal(1, r.Delivered);
            Assert.Equal(1, r.Drops[DropReason.IpBadIhl]);
            Assert.Equal(1, r.Drops[DropReason.IpHeaderTruncated]);
            Assert.True(r.Conserved);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Linux_cooked_and_raw_ip_captures_cross_the_nic_as_ethernet()
    {
        var ip = new byte[28];
        ip[0] = 0x45; ip[3] = 28; ip[8] = 64; ip[9] = 17; ip[20 + 5] = 8;
        var sll = new byte[16 + 28];
        sll[5] = 6; sll[14] = 0x08; ip.CopyTo(sll, 16);
        var scratch = new byte[128];
        Assert.Equal(DropReason.None, LinkAdapter.ToEthernet(LinkType.Raw, ip, scratch, out int len, out bool used));
        Assert.True(used);
        Assert.Equal(42, len);
        Assert.Equal(DropReason.None, PacketDecoder.Decode(scratch.AsSpan(0, len), LinkType.Ethernet, out var d));
        Assert.True(d.Protocols.Has(ProtocolFlags.Udp));
        Assert.Equal(DropReason.None, LinkAdapter.ToEthernet(LinkType.LinuxSll, sll, scratch, out len, out _));
        Assert.Equal(DropReason.None, PacketDecoder.Decode(scratch.AsSpan(0, len), LinkType.Ethernet, out d));
        Assert.True(d.Protocols.Has(ProtocolFlags.Udp));
        Assert.Equal(DropReason.UnsupportedLinkType, LinkAdapter.ToEthernet((LinkType)105, ip, scratch, out _, out _));
    }

    [Fact]
    public void Frames_cut_by_a_snap_length_are_replayed_at_their_wire_length()
    {
        var path = Path.GetTempFileName();
        try
        {
            var g = new GeneratorOptions { Bytes = 50_000, Seed = 2 };
            long frames = 0, bytes = 0;
            using (var w = PcapWriter.Create(path, LinkType.Ethernet))
            using (var r = new GeneratorCaptureReader(g))
                while (r.TryRead(out var meta, out var f))
                {
                    w.Write(meta.TimestampNs, f[..Math.Min(f.Length, 96)], f.Length); // tcpdump -s 96
                    frames++;
                    bytes += f.Length;
                }
            using var reader = CaptureReader.Open(path);
            var rep = new ReplayPipeline(new ReplayOptions()).Run(reader, path);
            Assert.Equal(frames, rep.PacketsIn);
            Assert.Equal(frames, rep.Delivered);
            Assert.True(rep.SnappedFrames > 0);
            Assert.Equal(frames, rep.Protocols.Tcp);
        }
        finally { File.Delete(path); }
    }
}
