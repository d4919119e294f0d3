using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Xunit;

namespace Softnet.Tests.Capture.Generator;

public class TrafficGeneratorTests
{
    /// <summary>The byte iperf3 puts at <paramref name="streamOffset"/> of a TCP stream written in blocks of <paramref name="blockSize"/>.</summary>
    private static byte ExpectedStreamByte(long streamOffset, int blockSize) => (byte)('0' + streamOffset % blockSize % 10);

    private static readonly GeneratorOptions Small = new() { Streams = 3, Bytes = 100_000, Seed = 7 };

    [Fact]
    public void Same_seed_gives_identical_bytes_and_times()
    {
        var a = GenFrames.All(Small);
        var b = GenFrames.All(Small with { });
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].TimestampNs, b[i].TimestampNs);
            Assert.Equal(a[i].Bytes, b[i].Bytes);
        }
    }

    [Fact]
    public void Different_seed_gives_different_ports()
    {
        var a = GenFrames.All(Small).Select(f => f.ClientPort).Distinct().ToArray();
        var b = GenFrames.All(Small with { Seed = 8 }).Select(f => f.ClientPort).Distinct().ToArray();
        Assert.NotEqual(a, b);
        Assert.All(a, p => Assert.InRange(p, 32768, 60999));
        Assert.Equal(new TrafficGenerator(Small).Stats.Streams, a.Length); // one port per stream, none shared
    }

    [Fact]
    public void Pull_api_matches_push_api()
    {
        var pushed = GenFrames.All(Small);
        var g = new TrafficGenerator(Small);
        var buf = new byte[g.MaxFrameLength];
        int i = 0;
        while (g.TryNext(buf, out int len, out long ts))
        {
            Assert.Equal(pushed[i].TimestampNs, ts);
            Assert.Equal(pushed[i].Bytes, buf.AsSpan(0, len).ToArray());
            i++;
        }
        Assert.Equal(pushed.Count, i);
        Assert.False(g.TryNext(buf, out _, out _));
    }

    [Fact]
    public void Buffer_smaller_than_max_frame_is_rejected()
    {
        var g = new TrafficGenerator(Small);
        Assert.Throws<ArgumentException>(() => g.TryNext(new byte[100], out _, out _));
    }

    [Theory]
    [InlineData(1, 1_000_000L)]
    [InlineData(3, 1_000_000L)]
    [InlineData(4, 1L)]
    [InlineData(2, 1448L * 10)]
    public void Tcp_payload_sums_to_bytes_split_across_streams(int streams, long bytes)
    {
        var o = new GeneratorOptions { Streams = streams, Bytes = bytes };
        var g = new TrafficGenerator(o);
        var frames = GenFrames.All(g);
        Assert.Equal(bytes, frames.Where(f => f.FromClient).Sum(f => (long)f.Payload.Length));
        Assert.Equal(bytes, g.Stats.PayloadBytes);
        var perStream = frames.Where(f => f.FromClient).GroupBy(f => f.ClientPort).Select(gr => gr.Sum(f => (long)f.Payload.Length)).ToList();
        Assert.Equal(streams, frames.Select(f => f.ClientPort).Distinct().Count());
        Assert.True(perStream.Max() - perStream.Min() <= 1, "bytes split evenly");
        Assert.All(frames.Where(f => !f.FromClient), f => Assert.Equal(0, f.Payload.Length));
    }

    [Fact]
    public void Udp_payload_sums_to_bytes()
    {
        var o = new GeneratorOptions { Streams = 2, Bytes = 100_001, Protocol = TrafficProtocol.Udp };
        var g = new TrafficGenerator(o);
        var data = GenFrames.All(g).Where(f => f.FromClient && f.Payload.Length != 4).ToList();
        Assert.Equal(100_001, data.Sum(f => (long)f.Payload.Length));
        Assert.Equal(100_001, g.Stats.PayloadBytes);
        Assert.All(data.GroupBy(f => f.ClientPort), s => Assert.Equal(1448, s.First().Payload.Length));
    }

    [Fact]
    public void Tcp_handshake_and_teardown_per_stream()
    {
        var frames = GenFrames.All(Small);
        foreach (var s in frames.GroupBy(f => f.ClientPort))
        {
            var f = s.ToList();
            Assert.True(f[0].FromClient && f[0].Syn && !f[0].IsAck);
            Assert.True(!f[1].FromClient && f[1].Syn && f[1].IsAck && f[1].AckNo == f[0].Seq + 1);
            Assert.True(f[2].FromClient && !f[2].Syn && f[2].IsAck && f[2].AckNo == f[1].Seq + 1 && f[2].Seq == f[0].Seq + 1);
            foreach (var syn in f.Take(2))
            {
                Assert.Equal(40, syn.TcpHeaderLength);
                var opt = syn.Bytes.AsSpan(syn.L4 + 20, 20);
                Assert.Equal(new byte[] { 2, 4, 0x05, 0xb4, 4, 2, 8, 10 }, opt[..8].ToArray()); // MSS 1460, SACK-permitted, TS
                Assert.Equal(new byte[] { 1, 3, 3, 7 }, opt[16..].ToArray());                  // NOP, window scale 7
            }
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(f[0].Bytes.AsSpan(f[0].L4 + 32)));  // SYN TSecr
            Assert.All(f.Skip(2), x => Assert.Equal(32, x.TcpHeaderLength));

            var n = f.Count;
            var (cfin, sfin, last) = (f[n - 3], f[n - 2], f[n - 1]);
            uint end = f[0].Seq + 1 + (uint)f.Where(x => x.FromClient).Sum(x => x.Payload.Length);
            Assert.True(cfin.FromClient && cfin.Fin && cfin.IsAck && cfin.Seq == end);
            Assert.True(!sfin.FromClient && sfin.Fin && sfin.IsAck && sfin.AckNo == end + 1 && sfin.Seq == f[1].Seq + 1);
            Assert.True(last.FromClient && !last.Fin && last.IsAck && last.AckNo == sfin.Seq + 1 && last.Seq == end + 1);
            Assert.Equal(2, f.Count(x => x.Fin));
            Assert.Equal(2, f.Count(x => x.Syn));
        }
    }

    [Theory]
    [InlineData(5)]
    [InlineData(6)]
    public void Receiver_acks_every_second_segment_and_a_trailing_odd_one(int segments)
    {
        var frames = GenFrames.All(new GeneratorOptions { Bytes = 1448L * segments });
        var isn = frames[0].Seq;
        var acks = frames.Skip(2).Where(f => !f.FromClient && !f.Fin).Select(f => f.AckNo - isn - 1).ToList();
        var expected = Enumerable.Range(1, segments / 2).Select(i => (uint)(2 * i * 1448)).ToList();
        if (segments % 2 == 1) expected.Add((uint)(segments * 1448));
        Assert.Equal(expected, acks);

        // An ACK never acknowledges data that has not yet crossed the capture point.
        uint highest = 0;
        foreach (var f in frames.Skip(3))
        {
            if (f.FromClient) highest = Math.Max(highest, f.Seq - isn - 1 + (uint)f.Payload.Length);
            else if (!f.Fin) Assert.True(f.AckNo - isn - 1 <= highest);
        }
    }

    [Theory]
    [InlineData(null, 1000)]
    [InlineData(131072, 1448)]
    [InlineData(1000, 1448)]
    [InlineData(999, 536)]
    public void Payload_is_iperf3_pattern_restarting_at_each_write(int? block, int mss)
    {
        var o = new GeneratorOptions { Streams = 2, Bytes = 600_000, BlockSize = block, Mss = mss };
        int blk = o.EffectiveBlockSize;
        foreach (var s in GenFrames.All(o).Where(f => f.FromClient).GroupBy(f => f.ClientPort))
        {
            var list = s.ToList();
            uint isn = list[0].Seq;
            long next = 0;
            foreach (var f in list.Where(f => f.Payload.Length > 0))
            {
                long off = f.Seq - isn - 1;
                Assert.Equal(next, off);
                var p = f.Payload;
                for (int i = 0; i < p.Length; i++)
                    Assert.Equal(ExpectedStreamByte(off + i, blk), p[i]);
                bool endsWrite = (off + p.Length) / blk > off / blk;
                next = off + p.Length;
                Assert.Equal(endsWrite || next == 300_000, f.Psh);
                Assert.True(p.Length == mss || next == 300_000, "only the last segment is short");
            }
            Assert.Equal(300_000, next);
        }
    }

    [Fact]
    public void Checksums_ttl_df_and_ip_ids()
    {
        var frames = GenFrames.All(Small);
        Assert.All(frames, f =>
        {
            Assert.True(f.IpChecksumOk);
            Assert.True(f.L4ChecksumOk);
            Assert.Equal(64, f.Bytes[f.L3 + 8]);
            Assert.Equal(0x40, f.Bytes[f.L3 + 6]); // DF, no fragment offset
            Assert.True(f.Bytes.Length >= 60);
        });
        foreach (var dir in frames.GroupBy(f => (f.ClientPort, f.FromClient)))
        {
            var ids = dir.Select(f => f.IpId).ToList();
            for (int i = 1; i < ids.Count; i++) Assert.Equal((ushort)(ids[i - 1] + 1), ids[i]);
        }
        Assert.Equal(1514, frames.Max(f => f.Bytes.Length));
        Assert.Equal(66, frames.Where(f => !f.FromClient && !f.Syn).Min(f => f.Bytes.Length)); // pure ACK with timestamps
    }

    [Fact]
    public void Ipv6_with_vlan()
    {
        var o = new GeneratorOptions { Streams = 2, Bytes = 50_000, Ipv6 = true, Vlan = 42 };
        var frames = GenFrames.All(o);
        Assert.All(frames, f =>
        {
            Assert.Equal(42, f.Vlan);
            Assert.True(f.V6);
            Assert.Equal(64, f.Bytes[f.L3 + 7]);
            Assert.True(f.L4ChecksumOk);
            Assert.NotEqual(0u, f.FlowLabel);
        });
        Assert.Equal(1518, frames.Max(f => f.Bytes.Length)); // 1428 + 32 + 40 + 14 + 4
        Assert.Equal(0x05a0, BinaryPrimitives.ReadUInt16BigEndian(frames[0].Bytes.AsSpan(frames[0].L4 + 22))); // MSS 1440
        foreach (var dir in frames.GroupBy(f => (f.ClientPort, f.FromClient)))
            Assert.Single(dir.Select(f => f.FlowLabel).Distinct());
        Assert.Equal(new byte[] { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, frames[0].Src.ToArray());
    }

    [Fact]
    public void Udp_has_connect_exchange_then_iperf3_header_and_pattern()
    {
        var frames = GenFrames.All(new GeneratorOptions { Protocol = TrafficProtocol.Udp, Bytes = 14480, Rate = Rate.FromBits(100e6) });
        Assert.Equal(2 + 10, frames.Count);
        Assert.True(frames[0].FromClient && frames[0].Payload.SequenceEqual("9876"u8)); // UDP_CONNECT_MSG in x86 byte order
        Assert.True(!frames[1].FromClient && frames[1].Payload.SequenceEqual("6789"u8));
        Assert.Equal(60, frames[0].Bytes.Length); // padded to the Ethernet minimum
        Assert.All(frames[0].Bytes.AsSpan(46).ToArray(), b => Assert.Equal(0, b));
        uint count = 0;
        foreach (var f in frames.Skip(2))
        {
            Assert.True(f.L4ChecksumOk && f.IpChecksumOk);
            var p = f.Payload;
            Assert.Equal(f.TimestampNs / 1_000_000_000, BinaryPrimitives.ReadUInt32BigEndian(p));
            Assert.Equal(f.TimestampNs % 1_000_000_000 / 1000, BinaryPrimitives.ReadUInt32BigEndian(p[4..]));
            Assert.Equal(++count, BinaryPrimitives.ReadUInt32BigEndian(p[8..]));
            for (int i = 12; i < p.Length; i++) Assert.Equal((byte)('0' + i % 10), p[i]);
        }
        // 100 Mbit/s of 1490-byte frames (+24 bytes of wire overhead) is one every 121.12 us.
        var gaps = frames.Skip(2).Zip(frames.Skip(3), (a, b) => b.TimestampNs - a.TimestampNs).ToList();
        Assert.All(gaps, g => Assert.InRange(g, 121_119, 121_121));
    }

    [Fact]
    public void Parallel_streams_interleave_and_timestamps_never_go_back()
    {
        var o = new GeneratorOptions { Streams = 4, Bytes = 4_000_000, Rate = Rate.Max };
        var frames = GenFrames.All(o);
        for (int i = 1; i < frames.Count; i++) Assert.True(frames[i].TimestampNs >= frames[i - 1].TimestampNs);
        var data = frames.Where(f => f.FromClient && f.Payload.Length > 0).Select(f => f.ClientPort).ToList();
        Assert.Equal(4, data.Take(4).Distinct().Count());
        Assert.Equal(data.Take(4), data.Skip(4).Take(4));
        // Line rate: back-to-back 1514-byte frames at 10 Gbit/s are 1.2304 us apart.
        var ts = frames.Where(f => f.FromClient && f.Payload.Length > 0).Select(f => f.TimestampNs).Take(2000).ToList();
        double mean = (ts[^1] - ts[0]) / (double)(ts.Count - 1);
        Assert.InRange(mean, 1230.3, 1230.5);
    }

    [Fact]
    public void Duration_bounds_the_data_phase()
    {
        var o = new GeneratorOptions { Duration = TimeSpan.FromMilliseconds(10), Rate = Rate.FromBits(1e9) };
        var frames = GenFrames.All(o);
        var data = frames.Where(f => f.FromClient && f.Payload.Length > 0).ToList();
        double span = (data[^1].TimestampNs - data[0].TimestampNs) / 1e6;
        Assert.InRange(span, 9.9, 10.0);
        Assert.InRange(data.Count, 812, 814); // 10 ms / (1538 B * 8 ns)
        Assert.True(data[^1].Psh);
    }

    [Fact]
    public void Packet_rate_paces_frames()
    {
        var o = new GeneratorOptions { Streams = 2, Bytes = 1448 * 100, Rate = Rate.FromPackets(100_000) };
        var data = GenFrames.All(o).Where(f => f.FromClient && f.Payload.Length > 0).Select(f => f.TimestampNs).ToList();
        var gaps = data.Zip(data.Skip(1), (a, b) => b - a).ToList();
        Assert.All(gaps, g => Assert.InRange(g, 9_999, 10_001)); // staggered streams: evenly spaced overall
    }

    [Fact]
    public void Default_scenario_mixes_tcp_and_udp()
    {
        var g = new TrafficGenerator(GeneratorOptions.DefaultScenario);
        var frames = GenFrames.All(g);
        Assert.Equal(5, g.Stats.Streams);
        Assert.Equal(9L * 1024 * 1024, g.Stats.PayloadBytes);
        Assert.Equal(4, frames.Where(f => f.Tcp).Select(f => f.ClientPort).Distinct().Count());
        Assert.Single(frames.Where(f => !f.Tcp).Select(f => f.ClientPort).Distinct());
        Assert.Equal(frames.Count, g.Stats.Frames);
    }

    [Fact]
    public void Invalid_options_are_rejected_with_the_option_named()
    {
        Assert.Contains("streams", Assert.Throws<ArgumentException>(() => new TrafficGenerator(new GeneratorOptions { Streams = 0 })).Message);
        Assert.Contains("VLAN", Assert.Throws<ArgumentException>(() => new TrafficGenerator(new GeneratorOptions { Vlan = 5000 })).Message);
        Assert.Contains("mss", Assert.Throws<ArgumentException>(() => new TrafficGenerator(new GeneratorOptions { Mss = 70000 })).Message);
    }
}
