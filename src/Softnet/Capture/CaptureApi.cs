namespace Softnet.Capture;

/// <summary>Per-frame metadata as a capture file records it.</summary>
/// <param name="TimestampNs">Arrival time, nanoseconds since the Unix epoch.</param>
/// <param name="OriginalLength">Length on the wire (may exceed the captured length when snapped).</param>
/// <param name="LinkType">Link type of the interface the frame was captured on.</param>
/// <param name="InterfaceId">pcapng interface index (0 for pcap).</param>
public readonly record struct FrameMeta(long TimestampNs, int OriginalLength, LinkType LinkType, int InterfaceId);

/// <summary>An interface described by a capture (the single pcap header, or a pcapng IDB).</summary>
public sealed record CaptureInterface(LinkType LinkType, int SnapLength, string? Name = null, long TicksPerSecond = 1_000_000);

/// <summary>
/// Streaming reader: one frame at a time, the span valid until the next call. A corrupt or truncated
/// file throws <see cref="CaptureFormatException"/> only after every frame before the damage was returned.
/// </summary>
public interface ICaptureReader : IDisposable
{
    /// <summary>Interfaces seen so far (pcapng may add more as it goes).</summary>
    IReadOnlyList<CaptureInterface> Interfaces { get; }

    /// <summary>Byte offset in the file of the next record.</summary>
    long Position { get; }

    /// <summary>Reads the next frame; false at a clean end of file.</summary>
    bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data);
}

/// <summary>Writes frames to pcap or pcapng.</summary>
public interface ICaptureWriter : IDisposable
{
    /// <summary>Writes one frame. <paramref name="originalLength"/> below zero means the frame length.</summary>
    void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0);

    void Flush();
}

/// <summary>A capture file that cannot be read further, naming where it broke.</summary>
public sealed class CaptureFormatException(string message, long offset, string block)
    : Exception($"{message} (at byte offset {offset}, {block})")
{
    /// <summary>Byte offset in the file where the bad record or block starts.</summary>
    public long Offset { get; } = offset;

    /// <summary>What was being read there, e.g. "pcap record header #12" or "pcapng EPB".</summary>
    public string Block { get; } = block;
}
