using Softnet.Pipeline;
using Xunit;

namespace Softnet.Tests.Pipeline;

public class RingVsPollExperimentTests
{
    [Fact]
    public void Deterministic_sweep_drops_more_as_the_rate_passes_the_poll_capacity_and_less_with_bigger_rings()
    {
        // 100 ns per packet polled = 10 Mpps of capacity.
        var e = new RingVsPollExperiment
        {
            Mode = ReplayMode.Deterministic,
            Frames = 20_000,
            RatesMpps = [2, 8, 20, 40],
            RingSizes = [64, 1024],
            Budgets = [300],
            PollCostNs = 100,
            Moderation = Softnet.Nic.InterruptModeration.Immediate,
        };
        var points = e.Run();
        Assert.Equal(8, points.Count);
        foreach (var ring in new[] { 64, 1024 })
        {
            var byRate = points.Where(p => p.RingSize == ring).OrderBy(p => p.OfferedMpps).ToArray();
            Assert.Equal(0, byRate[0].RxMissed);
            Assert.True(byRate[^1].DropPercent > 40, $"ring {ring}: 4x the capacity should drop most frames");
            for (int i = 1; i < byRate.Length; i++) Assert.True(byRate[i].RxMissed >= byRate[i - 1].RxMissed);
            Assert.All(byRate, p => Assert.Equal(p.Offered, p.Delivered + p.RxMissed));
        }
        var csv = RingVsPollExperiment.ToCsv(points).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(9, csv.Length);
        Assert.StartsWith("offered_mpps,", csv[0]);
    }

    [Fact]
    public void Interrupt_moderation_needs_ring_room_for_a_whole_moderation_interval()
    {
        // 50 us at 2 Mpps holds 100 frames back before NAPI runs: a 64-entry ring overflows, a 1024 one does not.
        var e = new RingVsPollExperiment
        {
            Mode = ReplayMode.Deterministic, Frames = 20_000, RatesMpps = [2], RingSizes = [64, 1024], Budgets = [300],
            PollCostNs = 100, Moderation = new Softnet.Nic.InterruptModeration(50, 0),
        };
        var points = e.Run();
        Assert.True(points[0].DropPercent > 10);
        Assert.Equal(0, points[1].RxMissed);
        Assert.InRange(points[1].OccupancyMax, 95, 105);
    }

    [Fact]
    public void Deterministic_sweep_is_reproducible()
    {
        var e = new RingVsPollExperiment { Mode = ReplayMode.Deterministic, Frames = 5000, RatesMpps = [15], RingSizes = [128], Budgets = [64] };
        Assert.Equal(RingVsPollExperiment.ToCsv(e.Run()).Split('\n')[1].Split(',')[..12], RingVsPollExperiment.ToCsv(e.Run()).Split('\n')[1].Split(',')[..12]);
    }
}
