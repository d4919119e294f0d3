using System.Buffers.Binary;
using System.Text;
using Softnet.Capture;
using Xunit;

namespace Softnet.Tests.Capture;

/// <summary>A frame as read back, owned (copied out of the reader's buffer).</summary>
public sealed record ReadFrame(FrameMeta Meta, byte[] Data)
{
    public bool Same(ReadFrame o) => Meta == o.Meta && Data.AsSpan().SequenceEqual(o.Data);
}

/// <summary>A frame to write.</summary>
public sealed record TestFrame(long TimestampNs, byte[] Data, int OriginalLength, int InterfaceId);

public static class CaptureTestKit
{
    /// <summary>Reads every frame; the exception, if any, comes back instead of being thrown.</summary>
    public static (List<ReadFrame> Frames, CaptureFormatException? Error) ReadAll(ICaptureReader r)
    {
        var list = new List<ReadFrame>();
        try
        {
            while (r.TryRead(out var meta, out var data)) list.Add(new ReadFrame(meta, data.ToArray()));
            return (list, null);
        }
        catch (CaptureFormatException e)
        {
            return (list, e);
        }
    }

    public static (List<ReadFrame> Frames, CaptureFormatException? Error) ReadAll(byte[] file)
    {
        try
        {
            using var r = CaptureReader.Open(new MemoryStream(file));
            return ReadAll(r);
        }
        catch (CaptureFormatException e)
        {
            return ([], e);
        }
    }

    /// <summary>
    /// tcpdump's test captures: $SOFTNET_CORPUS, else shared/corpus/tcpdump-tests beside any folder above
    /// the test binaries (CI puts shared/ next to its clone), else /work/shared/corpus/tcpdump-tests.
    /// </summary>
    public static string CorpusDir { get; } = FindCorpus();

    private static string FindCorpus()
    {
        const string rel = "shared/corpus/tcpdump-tests";
        if (Environment.GetEnvironmentVariable("SOFTNET_CORPUS") is { Length: > 0 } env) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, rel);
            if (Directory.Exists(candidate)) return candidate;
        }
        return "/work/" + rel;
    }

    public static string TempFile(string ext)
        => Path.Combine(Path.GetTempPath(), $"softnet-capture-{Guid.NewGuid():N}{ext}");
}

/// <summary>Builds capture files byte by byte in either byte order, for tests that need odd files.</summary>
public sealed class FileBuilder(bool bigEndian)
{
    private readonly MemoryStream _ms = new();
    public bool BigEndian { get; set; } = bigEndian;
    public long Length => _ms.Length;

    public FileBuilder U8(byte v) { _ms.WriteByte(v); return this; }
    public FileBuilder U16(ushort v) { Span<byte> b = stackalloc byte[2]; if (BigEndian) BinaryPrimitives.WriteUInt16BigEndian(b, v); else BinaryPrimitives.WriteUInt16LittleEndian(b, v); _ms.Write(b); return this; }
    public FileBuilder U32(uint v) { Span<byte> b = stackalloc byte[4]; if (BigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v); else BinaryPrimitives.WriteUInt32LittleEndian(b, v); _ms.Write(b); return this; }
    public FileBuilder U64(ulong v) => U32((uint)(v >> 32)).U32((uint)v);
    public FileBuilder I64(long v) { Span<byte> b = stackalloc byte[8]; if (BigEndian) BinaryPrimitives.WriteInt64BigEndian(b, v); else BinaryPrimitives.WriteInt64LittleEndian(b, v); _ms.Write(b); return this; }
    public FileBuilder Bytes(ReadOnlySpan<byte> b) { _ms.Write(b); return this; }
    public FileBuilder Pad4() { while (_ms.Length % 4 != 0) _ms.WriteByte(0); return this; }
    public byte[] ToArray() => _ms.ToArray();

    // ---- classic pcap ----
    public FileBuilder PcapHeader(uint magic, uint linkType, uint snap = 65535)
        => U32(magic).U16(2).U16(4).U32(0).U32(0).U32(snap).U32(linkType);

    public FileBuilder PcapRecord(uint sec, uint frac, ReadOnlySpan<byte> data, uint? orig = null)
        => U32(sec).U32(frac).U32((uint)data.Length).U32(orig ?? (uint)data.Length).Bytes(data);

    // ---- pcapng ----
    /// <summary>A block: type, length, body padded, length. The body is built by <paramref name="body"/>.</summary>
    public FileBuilder Block(uint type, Action<FileBuilder> body)
    {
        var inner = new FileBuilder(BigEndian);
        body(inner);
        inner.Pad4();
        uint len = (uint)(inner.Length + 12);
        return U32(type).U32(len).Bytes(inner.ToArray()).U32(len);
    }

    public FileBuilder Shb() => Block(0x0A0D0D0A, b => b.U32(0x1A2B3C4D).U16(1).U16(0).I64(-1));

    public FileBuilder Idb(ushort linkType, uint snap, string? name = null, byte? tsresol = null, long? tsoffset = null)
        => Block(1, b =>
        {
            b.U16(linkType).U16(0).U32(snap);
            if (name is not null) { var n = Encoding.UTF8.GetBytes(name); b.U16(2).U16((ushort)n.Length).Bytes(n).Pad4(); }
            if (tsresol is byte r) b.U16(9).U16(1).U8(r).Pad4();
            if (tsoffset is long o) b.U16(14).U16(8).I64(o);
            if (name is not null || tsresol is not null || tsoffset is not null) b.U32(0);
        });

    public FileBuilder Epb(uint iface, ulong ticks, ReadOnlySpan<byte> data, uint? orig = null)
    {
        var copy = data.ToArray();
        return Block(6, b => b.U32(iface).U64(ticks).U32((uint)copy.Length).U32(orig ?? (uint)copy.Length).Bytes(copy));
    }

    public FileBuilder Spb(uint orig, ReadOnlySpan<byte> data)
    {
        var copy = data.ToArray();
        return Block(3, b => b.U32(orig).Bytes(copy));
    }

    public FileBuilder Opb(ushort iface, ulong ticks, ReadOnlySpan<byte> data)
    {
        var copy = data.ToArray();
        return Block(2, b => b.U16(iface).U16(0).U64(ticks).U32((uint)copy.Length).U32((uint)copy.Length).Bytes(copy));
    }
}
