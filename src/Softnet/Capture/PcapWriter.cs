using System.Buffers.Binary;

namespace Softnet.Capture;

/// <summary>Classic libpcap file writer (little-endian, nanosecond magic 0xa1b23c4d by default, or microsecond).</summary>
public sealed class PcapWriter : ICaptureWriter
{
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly bool _nanos;
    private readonly int _snapLength;
    private readonly byte[] _hdr = new byte[16];

    public PcapWriter(Stream stream, LinkType linkType, int snapLength = 262144, bool nanosecond = true, bool ownsStream = true)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        _nanos = nanosecond;
        _snapLength = snapLength;
        Span<byte> h = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, nanosecond ? 0xa1b23c4du : 0xa1b2c3d4u);
        BinaryPrimitives.WriteUInt16LittleEndian(h[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(h[8..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(h[12..], 0);
        BinaryPrimitives.WriteInt32LittleEndian(h[16..], snapLength);
        BinaryPrimitives.WriteUInt32LittleEndian(h[20..], (uint)linkType);
        _stream.Write(h);
    }

    public static PcapWriter Create(string path, LinkType linkType, bool nanosecond = true)
        => new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), linkType, nanosecond: nanosecond);

    public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0)
    {
        int orig = originalLength < 0 ? frame.Length : originalLength;
        // Frames longer than the snapshot are cut, as a capture with that snaplen would have them.
        if (_snapLength > 0 && frame.Length > _snapLength) frame = frame[.._snapLength];
        long sec = timestampNs / 1_000_000_000;
        long frac = timestampNs % 1_000_000_000;
        if (!_nanos) frac /= 1000;
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr, (uint)sec);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(4), (uint)frac);
        BinaryPrimitives.WriteInt32LittleEndian(_hdr.AsSpan(8), frame.Length);
        BinaryPrimitives.WriteInt32LittleEndian(_hdr.AsSpan(12), orig);
        _stream.Write(_hdr);
        _stream.Write(frame);
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (_ownsStream) _stream.Dispose();
    }
}
