using CsCheck;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Xunit;
using static Softnet.Tests.Capture.CaptureTestKit;

namespace Softnet.Tests.Capture;

/// <summary>
/// A file read through the sliding mapping (<see cref="MappedCaptureInput"/>), or copied out of it by pread, gives exactly
/// what the same bytes give streamed: the same frames, and on damage the same error at the same offset. A window of a
/// few pages (and the 256 KiB copy buffer) makes records and blocks straddle window ends all the time.
/// </summary>
public class MappedInputTests
{
    private const int TinyWindow = 16384;

    private static (List<ReadFrame> Frames, string? Error, long Offset) Streamed(byte[] file)
    {
        var (frames, err) = ReadAll(file);
        return (frames, err?.Message, err?.Offset ?? -1);
    }

    private static (List<ReadFrame> Frames, string? Error, long Offset) Mapped(string path, int window = TinyWindow,
        CaptureFileAccess access = CaptureFileAccess.Map)
    {
        try
        {
            using var r = CaptureReader.Open(path, window, access);
            var (frames, err) = ReadAll(r);
            return (frames, err?.Message, err?.Offset ?? -1);
        }
        catch (CaptureFormatException e)
        {
            return ([], e.Message, e.Offset);
        }
    }

    private static void AssertSame((List<ReadFrame> Frames, string? Error, long Offset) expected,
        (List<ReadFrame> Frames, string? Error, long Offset) actual, string what)
    {
        Assert.True(expected.Frames.Count == actual.Frames.Count, $"{what}: {actual.Frames.Count} frames mapped, {expected.Frames.Count} streamed");
        for (int i = 0; i < expected.Frames.Count; i++)
            Assert.True(expected.Frames[i].Same(actual.Frames[i]), $"{what}: frame {i} differs");
        Assert.True(expected.Error == actual.Error, $"{what}: mapped error '{actual.Error}', streamed '{expected.Error}'");
        Assert.Equal(expected.Offset, actual.Offset);
    }

    /// <summary>A generated capture of <paramref name="frames"/>-ish frames of mixed sizes (TCP data, ACKs, handshakes).</summary>
    private static byte[] Generated(string ext, long bytes)
    {
        string path = TempFile(ext);
        try
        {
            using (var w = CaptureWriter.Create(path))
                new TrafficGenerator(new GeneratorOptions { Streams = 3, Bytes = bytes, Seed = 7 }).WriteTo(w);
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static T WithFile<T>(byte[] bytes, Func<string, T> f)
    {
        string path = TempFile(".cap");
        try
        {
            File.WriteAllBytes(path, bytes);
            return f(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static TheoryData<string, CaptureFileAccess> Formats() => new()
    {
        { ".pcap", CaptureFileAccess.Map }, { ".pcapng", CaptureFileAccess.Map },
        { ".pcap", CaptureFileAccess.Copy }, { ".pcapng", CaptureFileAccess.Copy },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Whole_file_reads_to_the_same_frames(string ext, CaptureFileAccess access)
    {
        var file = Generated(ext, 200_000);
        var expected = Streamed(file);
        Assert.Null(expected.Error);
        Assert.True(expected.Frames.Count > 100);
        foreach (int window in new[] { TinyWindow, 65536, CaptureInput.DefaultWindowBytes })
            AssertSame(expected, WithFile(file, p => Mapped(p, window, access)), $"{ext} {access} window {window}");
        WithFile(file, p =>
        {
            using var r = CaptureReader.Open(p, TinyWindow, access);
            while (r.TryRead(out _, out _)) { }
            var info = ext == ".pcap" ? ((PcapReader)r).Input : ((PcapngReader)r).Input;
            Assert.Equal(access == CaptureFileAccess.Map, info.Mapped);
            Assert.InRange(info.PeakHeldBytes, 1, access == CaptureFileAccess.Map ? TinyWindow : 256 << 10);
            return 0;
        });
    }

    [Fact]
    public void Auto_reads_a_large_file_to_the_same_frames_whichever_way_it_chose()
    {
        var file = Generated(".pcap", 6 << 20);
        Assert.True(file.Length > 4 << 20); // large enough to be probed
        AssertSame(Streamed(file), WithFile(file, p => Mapped(p, 1 << 20, CaptureFileAccess.Auto)), "auto");
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Truncated_anywhere_gives_the_streamed_error(string ext, CaptureFileAccess access)
    {
        var file = Generated(ext, 60_000);
        // Every cut in the headers and around window ends, and a spread of cuts elsewhere.
        var cuts = Enumerable.Range(0, 200)
            .Concat(Enumerable.Range(1, file.Length / TinyWindow).SelectMany(k => Enumerable.Range(k * TinyWindow - 40, 80)))
            .Concat(Enumerable.Range(0, 300).Select(i => (int)((long)file.Length * i / 300)))
            .Append(file.Length)
            .Where(c => c >= 0 && c <= file.Length)
            .Distinct();
        foreach (int cut in cuts)
        {
            var bytes = file[..cut];
            AssertSame(Streamed(bytes), WithFile(bytes, p => Mapped(p, TinyWindow, access)), $"{ext} {access} cut at {cut}");
        }
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Damaged_bytes_give_the_streamed_result(string ext, CaptureFileAccess access)
    {
        var file = Generated(ext, 60_000);
        Gen.Select(Gen.Int[0, file.Length - 1], Gen.Byte).Array[1, 6].Sample(edits =>
        {
            var bad = (byte[])file.Clone();
            foreach (var (pos, value) in edits) bad[pos] = value;
            AssertSame(Streamed(bad), WithFile(bad, p => Mapped(p, TinyWindow, access)), $"{ext} {access} damaged at {string.Join(',', edits.Select(e => e.Item1))}");
        }, iter: 150);
    }

    [SkippableFact]
    public void Corpus_files_read_the_same_mapped_and_streamed()
    {
        Skip.IfNot(Directory.Exists(CorpusDir), $"{CorpusDir} is not present");
        int files = 0;
        foreach (var path in Directory.GetFiles(CorpusDir).Order(StringComparer.Ordinal))
        {
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length == 0) continue; // an empty file cannot be mapped and is streamed
            AssertSame(Streamed(bytes), Mapped(path), Path.GetFileName(path));
            AssertSame(Streamed(bytes), Mapped(path, TinyWindow, CaptureFileAccess.Copy), Path.GetFileName(path) + " (pread)");
            files++;
        }
        Assert.True(files > 0);
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, uint mode);

    [SkippableFact]
    public void A_fifo_is_streamed_to_the_same_frames()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "mkfifo is Linux's");
        var file = Generated(".pcapng", 100_000);
        string path = TempFile(".fifo");
        Assert.Equal(0, mkfifo(path, Convert.ToUInt32("600", 8)));
        try
        {
            // The writer blocks in open until the reader opens the other end.
            var writer = Task.Run(() => File.WriteAllBytes(path, file));
            (List<ReadFrame> Frames, CaptureFormatException? Error) got;
            CaptureInputInfo info;
            using (var r = CaptureReader.Open(path))
            {
                got = ReadAll(r);
                info = ((PcapngReader)r).Input;
            }
            writer.Wait(TimeSpan.FromSeconds(30));
            Assert.False(info.Mapped);
            AssertSame(Streamed(file), (got.Frames, got.Error?.Message, got.Error?.Offset ?? -1), "fifo");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Empty_file_and_pipes_are_streamed()
    {
        string path = TempFile(".pcap");
        try
        {
            File.WriteAllBytes(path, []);
            var e = Assert.Throws<CaptureFormatException>(() => CaptureReader.Open(path));
            Assert.Contains("only 0 bytes", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
        using var input = CaptureInput.OpenFile("/dev/null");
        Assert.False(input.Mapped);
    }
}
