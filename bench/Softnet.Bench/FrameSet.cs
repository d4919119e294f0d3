using Softnet.Capture;
using Softnet.Capture.Generator;

namespace Softnet.Bench;

/// <summary>A capture loaded into memory once, so a benchmark times decoding and not the disk.</summary>
public sealed class FrameSet
{
    public required byte[] Data { get; init; }
    public required int[] Offsets { get; init; }
    public required int[] Lengths { get; init; }
    public required LinkType LinkType { get; init; }
    public required string Source { get; init; }
    public int Count => Offsets.Length;

    public ReadOnlySpan<byte> this[int i] => Data.AsSpan(Offsets[i], Lengths[i]);

    /// <summary>The capture of the file, or the generated one the issues name (`gen --streams 4 --bytes 20M`).</summary>
    public static FrameSet Load(string? path, long generatedBytes = 20L * 1024 * 1024)
    {
        using ICaptureReader reader = path is null
            ? new GeneratorCaptureReader(new GeneratorOptions { Streams = 4, Bytes = generatedBytes, Seed = 1 })
            : CaptureReader.Open(path);
        var data = new MemoryStream();
        var offsets = new List<int>();
        var lengths = new List<int>();
        LinkType? link = null;
        while (reader.TryRead(out var meta, out var frame))
        {
            link ??= meta.LinkType;
            offsets.Add((int)data.Length);
            lengths.Add(frame.Length);
            data.Write(frame);
        }
        return new FrameSet
        {
            Data = data.ToArray(),
            Offsets = [.. offsets],
            Lengths = [.. lengths],
            LinkType = link ?? LinkType.Ethernet,
            Source = path ?? $"generated: gen --streams 4 --bytes {generatedBytes >> 20}M --seed 1",
        };
    }
}
