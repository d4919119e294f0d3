using System.Globalization;
using System.Text;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Nic;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Pipeline;

/// <summary>One measured point of the ring-vs-poll sweep.</summary>
public sealed record RingVsPollPoint(
    double OfferedMpps, double AchievedOfferedMpps, int RingSize, int Budget, long Offered, long Delivered, long RxMissed,
    double DropPercent, double OccupancyMean, int OccupancyMax, long TimeSqueeze, long Interrupts, double Seconds);

/// <summary>
/// The first question of the study notes (seed 000): what happens when frames land in the ring faster than
/// NAPI polls them. Sweeps offered rate against ring size and netdev_budget, replaying the same 64-byte frames
/// through the real path, and records drops (rx_missed) and ring occupancy at each point.
/// </summary>
public sealed record RingVsPollExperiment
{
    public IReadOnlyList<double> RatesMpps { get; init; } = [0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 0];
    public IReadOnlyList<int> RingSizes { get; init; } = [256, 1024, 4096];
    public IReadOnlyList<int> Budgets { get; init; } = [64, 300];
    public int Frames { get; init; } = 200_000;
    public ReplayMode Mode { get; init; } = ReplayMode.Threaded;
    public IReadOnlyList<int> Cpus { get; init; } = [0];

    /// <summary>Deterministic mode's CPU model (virtual ns per packet polled).</summary>
    public long PollCostNs { get; init; } = 100;

    /// <summary>Interrupt moderation of the queue (ice's adaptive moderation settles near 50 µs under load).</summary>
    public InterruptModeration Moderation { get; init; } = new(50, 0);

    public List<RingVsPollPoint> Run(Action<RingVsPollPoint>? progress = null)
    {
        // 64-byte frames (60 on the capture, plus FCS on the wire): the hardest case for a receive path.
        var gen = new GeneratorOptions { Protocol = TrafficProtocol.Udp, Mss = 18, Streams = 4, Bytes = 18L * Frames, Seed = 1 };
        List<(long, byte[])> frames;
        using (var r = new GeneratorCaptureReader(gen)) frames = MemoryCaptureReader.Load(r);

        var points = new List<RingVsPollPoint>();
        foreach (int budget in Budgets)
        foreach (int ring in RingSizes)
        foreach (double mpps in RatesMpps)
        {
            var options = new ReplayOptions
            {
                Mode = Mode,
                Cpus = Cpus,
                Nic = new NicOptions { RingSize = ring, Moderation = Moderation },
                NetdevBudget = budget,
                Rate = mpps > 0 ? Rate.FromPackets(mpps * 1e6) : Rate.Max,
                PollCostNs = PollCostNs,
            };
            var pipeline = new ReplayPipeline(options);
            using var reader = new MemoryCaptureReader(frames);
            var report = pipeline.Run(reader, "ring-vs-poll");
            var q = pipeline.Nic!.Queues[0];
            long missed = q.Ring.RxMissed;
            double seconds = Mode == ReplayMode.Threaded
                ? report.Elapsed.TotalSeconds
                : Math.Max(1e-9, frames.Count / (mpps > 0 ? mpps * 1e6 : double.PositiveInfinity));
            var point = new RingVsPollPoint(
                mpps, Mode == ReplayMode.Threaded ? frames.Count / report.Elapsed.TotalSeconds / 1e6 : mpps,
                ring, budget, report.PacketsIn, report.Delivered, missed,
                100.0 * missed / Math.Max(1, report.PacketsIn),
                q.OccupancySamples > 0 ? (double)q.OccupancySum / q.OccupancySamples : 0, q.MaxOccupancy,
                pipeline.Engine!.Cpus.Sum(c => c.TimeSqueeze), q.Vector.InterruptsFired, seconds);
            points.Add(point);
            progress?.Invoke(point);
        }
        return points;
    }

    public static string ToCsv(IEnumerable<RingVsPollPoint> points)
    {
        var sb = new StringBuilder("offered_mpps,achieved_offered_mpps,ring_size,budget,offered,delivered,rx_missed,drop_percent,occupancy_mean,occupancy_max,time_squeeze,interrupts,seconds\n");
        foreach (var p in points)
            sb.AppendLine(string.Join(',',
                p.OfferedMpps == 0 ? "max" : p.OfferedMpps.ToString(CultureInfo.InvariantCulture),
                p.AchievedOfferedMpps.ToString("F3", CultureInfo.InvariantCulture), p.RingSize, p.Budget, p.Offered, p.Delivered,
                p.RxMissed, p.DropPercent.ToString("F3", CultureInfo.InvariantCulture),
                p.OccupancyMean.ToString("F1", CultureInfo.InvariantCulture), p.OccupancyMax, p.TimeSqueeze, p.Interrupts,
                p.Seconds.ToString("F4", CultureInfo.InvariantCulture)));
        return sb.ToString();
    }
}
