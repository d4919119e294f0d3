using CsCheck;
using Softnet.Capture;
using Xunit;
using static Softnet.Tests.Capture.CaptureTestKit;

namespace Softnet.Tests.Capture;

public class RoundTripTests
{
    // pcap seconds are 32-bit unsigned: stay below 2^32 s.
    private static readonly Gen<long> GenTs = Gen.Long[0, 4_294_967_295L * 1_000_000_000L];

    private static Gen<List<TestFrame>> GenFrames(int interfaces) =>
        Gen.Select(GenTs, Gen.Byte.Array[0, 1600], Gen.Int[0, 200], Gen.Int[0, interfaces - 1],
                (ts, data, extra, ifc) => new TestFrame(ts, data, data.Length + extra, ifc))
            .List[0, 40];

    private static byte[] WritePcap(IEnumerable<TestFrame> frames, bool nanos, LinkType link = LinkType.Ethernet)
    {
        var ms = new MemoryStream();
        using (var w = new PcapWriter(ms, link, nanosecond: nanos, ownsStream: false))
            foreach (var f in frames) w.Write(f.TimestampNs, f.Data, f.OriginalLength);
        return ms.ToArray();
    }

    private static byte[] WritePcapng(IEnumerable<TestFrame> frames, IReadOnlyList<CaptureInterface> ifs)
    {
        var ms = new MemoryStream();
        using (var w = new PcapngWriter(ms, ifs, ownsStream: false))
            foreach (var f in frames) w.Write(f.TimestampNs, f.Data, f.OriginalLength, f.InterfaceId);
        return ms.ToArray();
    }

    private static void AssertFrames(IReadOnlyList<TestFrame> written, List<ReadFrame> read, Func<TestFrame, long> expectTs, Func<TestFrame, LinkType> link)
    {
        Assert.Equal(written.Count, read.Count);
        for (int i = 0; i < written.Count; i++)
        {
            var w = written[i];
            var r = read[i];
            Assert.Equal(expectTs(w), r.Meta.TimestampNs);
            Assert.Equal(w.OriginalLength, r.Meta.OriginalLength);
            Assert.Equal(w.InterfaceId, r.Meta.InterfaceId);
            Assert.Equal(link(w), r.Meta.LinkType);
            Assert.True(w.Data.AsSpan().SequenceEqual(r.Data), $"frame {i} data differs");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Pcap_round_trip_property(bool nanos)
    {
        GenFrames(1).Sample(frames =>
        {
            var file = WritePcap(frames, nanos);
            var (read, err) = ReadAll(file);
            Assert.Null(err);
            AssertFrames(frames, read, f => nanos ? f.TimestampNs : f.TimestampNs - f.TimestampNs % 1000, _ => LinkType.Ethernet);
        }, iter: 200);
    }

    [Fact]
    public void Pcapng_round_trip_property_several_interfaces()
    {
        CaptureInterface[] ifs =
        [
            new(LinkType.Ethernet, 262144, "eth0", 1_000_000_000),
            new(LinkType.Raw, 65535, "tun0", 1_000_000_000),
            new(LinkType.LinuxSll2, 262144, "any", 1_000_000_000),
        ];
        GenFrames(ifs.Length).Sample(frames =>
        {
            var file = WritePcapng(frames, ifs);
            using var r = CaptureReader.Open(new MemoryStream(file));
            var (read, err) = ReadAll(r);
            Assert.Null(err);
            Assert.Equal(ifs, r.Interfaces);
            AssertFrames(frames, read, f => f.TimestampNs, f => ifs[f.InterfaceId].LinkType);
        }, iter: 200);
    }

    [Fact]
    public void Pcapng_interfaces_keep_their_clock()
    {
        CaptureInterface[] ifs =
        [
            new(LinkType.Ethernet, 0, "micro"),                        // default 10^-6, no option written
            new(LinkType.Ethernet, 0, "milli", 1000),
            new(LinkType.Ethernet, 0, "pico", 1_000_000_000_000),
            new(LinkType.Ethernet, 0, "bin20", 1 << 20),
        ];
        var frames = new List<TestFrame>();
        long ts = 1_700_000_000_123_456_789;
        // 64-bit picosecond ticks only reach 213 days past the epoch.
        long pico = 100 * 86_400_000_000_000L + 123_456_789;
        for (int i = 0; i < ifs.Length; i++) frames.Add(new TestFrame(i == 2 ? pico : ts, [1, 2, 3, (byte)i], 4, i));
        var (read, err) = ReadAll(WritePcapng(frames, ifs));
        Assert.Null(err);
        Assert.Equal(1_700_000_000_123_456_000, read[0].Meta.TimestampNs);
        Assert.Equal(1_700_000_000_123_000_000, read[1].Meta.TimestampNs);
        Assert.Equal(pico, read[2].Meta.TimestampNs);
        // 2^-20 s ticks are ~954 ns: the read-back time is within one tick, never after the original.
        Assert.InRange(ts - read[3].Meta.TimestampNs, 0, 954);
    }

    [Fact]
    public void Writers_cut_frames_at_snaplen_and_keep_original_length()
    {
        var big = new byte[3000];
        new Random(1).NextBytes(big);
        var pcap = new MemoryStream();
        using (var w = new PcapWriter(pcap, LinkType.Ethernet, snapLength: 100, ownsStream: false)) w.Write(5, big);
        var png = new MemoryStream();
        using (var w = new PcapngWriter(png, [new CaptureInterface(LinkType.Ethernet, 100, "x", 1_000_000_000)], ownsStream: false)) w.Write(5, big);
        foreach (var file in new[] { pcap.ToArray(), png.ToArray() })
        {
            var (read, err) = ReadAll(file);
            Assert.Null(err);
            var f = Assert.Single(read);
            Assert.Equal(3000, f.Meta.OriginalLength);
            Assert.Equal(big[..100], f.Data);
        }
    }

    [Theory]
    [InlineData(".pcap", typeof(PcapReader))]
    [InlineData(".cap", typeof(PcapReader))]
    [InlineData(".pcapng", typeof(PcapngReader))]
    [InlineData(".anything", typeof(PcapngReader))]
    public void CaptureWriter_picks_format_by_extension_and_CaptureReader_by_magic(string ext, Type readerType)
    {
        var path = TempFile(ext);
        try
        {
            using (var w = CaptureWriter.Create(path, LinkType.Raw))
            {
                w.Write(1_600_000_000_000_000_001, [0x45, 0, 0, 20]);
                w.Write(1_600_000_000_000_000_002, [0x60, 0, 0, 0], 1500);
            }
            using var r = CaptureReader.Open(path);
            Assert.IsType(readerType, r);
            var (read, err) = ReadAll(r);
            Assert.Null(err);
            Assert.Equal(2, read.Count);
            Assert.Equal(1_600_000_000_000_000_001, read[0].Meta.TimestampNs);
            Assert.Equal(1500, read[1].Meta.OriginalLength);
            Assert.All(read, f => Assert.Equal(LinkType.Raw, f.Meta.LinkType));
            Assert.Equal(LinkType.Raw, r.Interfaces[0].LinkType);
            Assert.Equal(new FileInfo(path).Length, r.Position);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void Large_capture_streams_through_a_small_buffer()
    {
        // More data than the initial buffer many times over, through a stream that only reads a few bytes a call.
        var frames = Enumerable.Range(0, 3000).Select(i => new TestFrame(i * 1000L, new byte[i % 1500 + 1], i % 1500 + 1, i % 2)).ToList();
        var ifs = new[] { new CaptureInterface(LinkType.Ethernet, 0, "a", 1_000_000_000), new CaptureInterface(LinkType.Ethernet, 0, "b", 1_000_000_000) };
        var file = WritePcapng(frames, ifs);
        using var r = CaptureReader.Open(new TrickleStream(file, 7));
        var (read, err) = ReadAll(r);
        Assert.Null(err);
        AssertFrames(frames, read, f => f.TimestampNs, _ => LinkType.Ethernet);
    }
}

/// <summary>A non-seekable stream that returns at most <c>chunk</c> bytes per read.</summary>
internal sealed class TrickleStream(byte[] data, int chunk) : Stream
{
    private int _pos;
    public override int Read(byte[] buffer, int offset, int count)
    {
        int n = Math.Min(Math.Min(count, chunk), data.Length - _pos);
        Array.Copy(data, _pos, buffer, offset, n);
        _pos += n;
        return n;
    }
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _pos; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
