namespace Softnet.Capture.Generator;

/// <summary>
/// Presents the generator as a capture, so every consumer of captures (replay, bench, NIC ports)
/// takes generated traffic without a file in between.
/// </summary>
public sealed class GeneratorCaptureReader : ICaptureReader
{
    private readonly TrafficGenerator _generator;
    private readonly byte[] _buffer;
    private long _position;

    public GeneratorCaptureReader(GeneratorOptions options) : this([options]) { }

    public GeneratorCaptureReader(IReadOnlyList<GeneratorOptions> streams)
    {
        _generator = new TrafficGenerator(streams);
        _buffer = new byte[_generator.MaxFrameLength];
        Interfaces = [new CaptureInterface(LinkType.Ethernet, _buffer.Length, "gen0", 1_000_000_000)];
    }

    public IReadOnlyList<CaptureInterface> Interfaces { get; }

    /// <summary>Bytes generated so far (the position of a file holding the same frames, less record headers).</summary>
    public long Position => _position;

    public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (!_generator.TryNext(_buffer, out int length, out long ts))
        {
            meta = default;
            data = default;
            return false;
        }
        _position += length;
        meta = new FrameMeta(ts, length, LinkType.Ethernet, 0);
        data = _buffer.AsSpan(0, length);
        return true;
    }

    public void Dispose() { }
}

/// <summary>The embedded default scenario of `softnet replay` with no capture.</summary>
public static class DefaultScenario
{
    public static ICaptureReader Open() => new GeneratorCaptureReader(GeneratorOptions.DefaultScenario);
}
