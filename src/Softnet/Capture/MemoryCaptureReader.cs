namespace Softnet.Capture;

/// <summary>
/// Ethernet frames held in memory, presented as a capture: replays and experiments that time the path, not
/// the disk, read from it. <see cref="Load"/> fills one from any other capture.
/// </summary>
public sealed class MemoryCaptureReader(IReadOnlyList<(long TimestampNs, byte[] Frame)> frames) : ICaptureReader
{
    private int _next;

    public IReadOnlyList<CaptureInterface> Interfaces { get; } = [new CaptureInterface(LinkType.Ethernet, 65535)];

    /// <summary>Index of the next frame.</summary>
    public long Position => _next;

    public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (_next == frames.Count)
        {
            meta = default;
            data = default;
            return false;
        }
        var (ts, frame) = frames[_next++];
        data = frame;
        meta = new FrameMeta(ts, frame.Length, LinkType.Ethernet, 0);
        return true;
    }

    /// <summary>Copies every frame of <paramref name="source"/> (assumed Ethernet) into memory.</summary>
    public static List<(long TimestampNs, byte[] Frame)> Load(ICaptureReader source)
    {
        var list = new List<(long, byte[])>();
        while (source.TryRead(out var meta, out var frame)) list.Add((meta.TimestampNs, frame.ToArray()));
        return list;
    }

    public void Dispose() { }
}
