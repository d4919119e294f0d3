using System.Buffers.Binary;
using CsCheck;
using Softnet.Capture;
using Xunit;
using static Softnet.Tests.Capture.CaptureTestKit;

namespace Softnet.Tests.Capture;

/// <summary>Truncated and corrupted files: only CaptureFormatException escapes, after every good frame.</summary>
public class CorruptionTests
{
    /// <summary>A file and where each of its records/blocks ends; Packet says whether it holds a frame.</summary>
    private sealed record Layout(byte[] File, List<(long End, bool Packet)> Blocks, long HeaderEnd);

    private static byte[] Frame(int n, int seed) => Enumerable.Range(0, n).Select(i => (byte)(i * 7 + seed)).ToArray();

    private static Layout PcapLayout(bool bigEndian, bool nanos)
    {
        var b = new FileBuilder(bigEndian).PcapHeader(nanos ? 0xa1b23c4du : 0xa1b2c3d4u, 1);
        long header = b.Length;
        var blocks = new List<(long, bool)>();
        for (int i = 0; i < 12; i++)
        {
            b.PcapRecord((uint)(1_700_000_000 + i), (uint)i, Frame(i * 5 % 23, i));
            blocks.Add((b.Length, true));
        }
        return new Layout(b.ToArray(), blocks, header);
    }

    private static Layout PcapngLayout(bool bigEndian)
    {
        var b = new FileBuilder(bigEndian);
        var blocks = new List<(long, bool)>();
        void Add(Func<FileBuilder, FileBuilder> f, bool packet) { f(b); blocks.Add((b.Length, packet)); }
        Add(x => x.Shb(), false);
        long header = b.Length;
        Add(x => x.Idb(1, 0, "eth0", 9), false);
        Add(x => x.Idb(101, 64, "raw0"), false);
        Add(x => x.Epb(0, 1, Frame(13, 1)), true);
        Add(x => x.Block(5, y => y.U32(0).U64(5)), false);                 // ISB
        Add(x => x.Epb(1, 2, Frame(0, 2)), true);
        Add(x => x.Spb(60, Frame(60, 3)), true);
        Add(x => x.Opb(1, 3, Frame(9, 4)), true);
        b.BigEndian = !bigEndian;                                          // second section, other byte order
        Add(x => x.Shb(), false);
        Add(x => x.Idb(113, 0, "any"), false);
        Add(x => x.Epb(0, 4, Frame(31, 5)), true);
        Add(x => x.Block(0x00000BAD, y => y.U32(1).Bytes(Frame(10, 6))), false);
        Add(x => x.Epb(0, 5, Frame(4, 7)), true);
        return new Layout(b.ToArray(), blocks, header);
    }

    private static readonly string[] LayoutNames = ["pcap-le-micro", "pcap-be-nano", "pcapng-le", "pcapng-be"];

    public static TheoryData<string> Layouts() => new(LayoutNames);

    private static Layout Get(string name) => name switch
    {
        "pcap-le-micro" => PcapLayout(false, false),
        "pcap-be-nano" => PcapLayout(true, true),
        "pcapng-le" => PcapngLayout(false),
        _ => PcapngLayout(true),
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Truncated_at_every_offset_delivers_whole_records_then_throws(string name)
    {
        var layout = Get(name);
        var (full, fullErr) = ReadAll(layout.File);
        Assert.Null(fullErr);
        Assert.Equal(layout.Blocks.Count(b => b.Packet), full.Count);

        for (int cut = 0; cut <= layout.File.Length; cut++)
        {
            var (read, err) = ReadAll(layout.File[..cut]);
            int whole = layout.Blocks.Count(b => b.Packet && b.End <= cut);
            bool atBoundary = cut == layout.HeaderEnd || layout.Blocks.Any(b => b.End == cut);
            Assert.True(read.Count == whole, $"cut {cut}: {read.Count} frames, expected {whole}");
            for (int i = 0; i < read.Count; i++) Assert.True(read[i].Same(full[i]), $"cut {cut}: frame {i} differs");
            if (atBoundary)
            {
                Assert.True(err is null, $"cut {cut} at a record boundary: {err?.Message}");
            }
            else
            {
                Assert.True(err is not null, $"cut {cut}: no error");
                // The error names the start of the record the cut falls into.
                long start = cut < layout.HeaderEnd ? 0 : Math.Max(layout.HeaderEnd, layout.Blocks.Where(b => b.End < cut).Select(b => b.End).DefaultIfEmpty(0).Max());
                Assert.True(err.Offset == start, $"cut {cut}: offset {err.Offset}, expected {start} ({err.Message})");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Corrupt_length_fields_throw_after_the_good_frames(string name)
    {
        var layout = Get(name);
        bool pcap = name.StartsWith("pcap-");
        bool big = name.EndsWith("-be") || name.Contains("-be-");
        var (full, _) = ReadAll(layout.File);
        uint[] values = [0, 1, 3, 7, 11, 12, 13, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff, 262145, 16 << 20, (16 << 20) + 4];
        long start = layout.HeaderEnd;
        // Only the first section's blocks in pcapng, so the byte order is known.
        foreach (var (end, packet) in layout.Blocks.Where(b => b.End > layout.HeaderEnd).Take(pcap ? 12 : 7))
        {
            int framesBefore = layout.Blocks.Count(b => b.Packet && b.End <= start);
            // pcap: incl_len at +8. pcapng: total length at +4 (and, for an EPB, caplen at +20).
            int[] fields = pcap ? [8] : [4, 20];
            foreach (int field in fields)
            foreach (uint v in values.Append((uint)(end - start)).Append((uint)(end - start + 4)))
            {
                var bad = (byte[])layout.File.Clone();
                var span = bad.AsSpan((int)start + field, 4);
                if (big) BinaryPrimitives.WriteUInt32BigEndian(span, v); else BinaryPrimitives.WriteUInt32LittleEndian(span, v);
                var (read, err) = ReadAll(bad); // any other exception type fails the test here
                Assert.True(read.Count >= framesBefore, $"block at {start} field +{field} = {v}: only {read.Count} frames before it");
                for (int i = 0; i < framesBefore; i++) Assert.True(read[i].Same(full[i]));
                if (err is not null) Assert.InRange(err.Offset, 0, bad.Length);
            }
            start = end;
        }
    }

    [Fact]
    public void Random_byte_damage_only_ever_gives_format_errors()
    {
        var files = LayoutNames.Select(n => Get(n).File).ToArray();
        Gen.Select(Gen.Int[0, files.Length - 1], Gen.Select(Gen.Int[0, 1 << 20], Gen.Byte).Array[1, 8]).Sample((which, edits) =>
        {
            var bad = (byte[])files[which].Clone();
            foreach (var (pos, value) in edits) bad[pos % bad.Length] = value;
            var (_, err) = ReadAll(bad);
            if (err is not null) Assert.InRange(err.Offset, 0, bad.Length);
        }, iter: 3000);
    }

    [Fact]
    public void Window_fast_path_reads_damaged_files_as_the_checked_path_does()
    {
        // The readers take a record or EPB that lies whole in the window straight off it; every file, damaged or not,
        // must give the same frames and the same error (offset and message) as when each record takes the checked path.
        var files = LayoutNames.Select(n => Get(n).File).ToArray();
        Gen.Select(Gen.Int[0, files.Length - 1], Gen.Select(Gen.Int[0, 1 << 20], Gen.Byte).Array[0, 6], Gen.Int[0, 64]).Sample((which, edits, cut) =>
        {
            var bad = (byte[])files[which].Clone();
            foreach (var (pos, value) in edits) bad[pos % bad.Length] = value;
            bad = bad[..Math.Max(0, bad.Length - cut)];
            var fast = Read(bad, checkedPath: false);
            var slow = Read(bad, checkedPath: true);
            Assert.Equal(slow.Frames.Count, fast.Frames.Count);
            for (int i = 0; i < fast.Frames.Count; i++) Assert.True(fast.Frames[i].Same(slow.Frames[i]), $"frame {i} differs");
            Assert.Equal(slow.Error?.Offset, fast.Error?.Offset);
            Assert.Equal(slow.Error?.Message, fast.Error?.Message);
        }, iter: 3000);

        static (List<ReadFrame> Frames, CaptureFormatException? Error) Read(byte[] file, bool checkedPath)
        {
            try
            {
                using var r = CaptureReader.Open(new MemoryStream(file));
                if (checkedPath)
                {
                    if (r is PcapReader p) p.UseCheckedPath();
                    else ((PcapngReader)r).UseCheckedPath();
                }
                return ReadAll(r);
            }
            catch (CaptureFormatException e)
            {
                return ([], e);
            }
        }
    }

    [Fact]
    public void Error_is_sticky()
    {
        var file = PcapLayout(false, false).File;
        using var r = CaptureReader.Open(new MemoryStream(file[..^3]));
        var (read, err) = ReadAll(r);
        Assert.Equal(11, read.Count);
        Assert.NotNull(err);
        var again = Assert.Throws<CaptureFormatException>(() => r.TryRead(out _, out _));
        Assert.Equal(err.Offset, again.Offset);
    }
}
