using System.Diagnostics;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Pipeline;

/// <summary>Options of a replay run; later stages add theirs.</summary>
public sealed record ReplayOptions
{
    /// <summary>Called now and then with (frames so far, reader position in bytes).</summary>
    public Action<long, long>? Progress { get; init; }

    /// <summary>How many frames between progress callbacks.</summary>
    public int ProgressEvery { get; init; } = 16384;
}

/// <summary>
/// Runs frames from a capture (or the generator) through the stages that exist: for now decode
/// and per-protocol accounting. Bad frames become counted drops; a broken file ends the run with
/// <see cref="ReplayReport.CaptureError"/> set and every frame before the damage counted.
/// </summary>
public sealed class ReplayPipeline(ReplayOptions options)
{
    public ReplayReport Run(ICaptureReader reader, string sourceName)
    {
        var report = new ReplayReport { Source = sourceName };
        var sw = Stopwatch.StartNew();
        long packets = 0, bytes = 0, delivered = 0;
        var protocols = report.Protocols;
        var drops = report.Drops;
        int every = Math.Max(1, options.ProgressEvery);
        try
        {
            while (reader.TryRead(out var meta, out var frame))
            {
                if (packets == 0) report.FirstTimestampNs = meta.TimestampNs;
                report.LastTimestampNs = meta.TimestampNs;
                packets++;
                bytes += frame.Length;
                var reason = PacketDecoder.Decode(frame, meta.LinkType, out var decoded);
                if (reason == DropReason.None)
                {
                    protocols.Count(decoded.Protocols);
                    delivered++;
                }
                else
                {
                    drops.Add(reason);
                }
                if (options.Progress is not null && packets % every == 0)
                    options.Progress(packets, reader.Position);
            }
        }
        catch (CaptureFormatException e)
        {
            report.CaptureError = e.Message;
        }
        sw.Stop();
        report.PacketsIn = packets;
        report.BytesIn = bytes;
        report.Delivered = delivered;
        report.Elapsed = sw.Elapsed;
        options.Progress?.Invoke(packets, reader.Position);
        return report;
    }
}
