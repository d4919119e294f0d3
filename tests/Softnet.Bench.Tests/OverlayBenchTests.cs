using Softnet.Bench;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.Bench.Tests;

/// <summary>`bench overlay` on tiny cases: both halves forward every measured segment, in Softnet and in the kernel
/// (the same scenario built in namespaces), so the pps they compare count the same work.</summary>
public class OverlayBenchTests
{
    [Theory]
    [InlineData("encap")]
    [InlineData("decap")]
    public void Softnet_half_forwards_every_segment(string name)
    {
        string work = Directory.CreateTempSubdirectory("softnet-overlay-test-").FullName;
        try
        {
            var c = OverlayBench.Build(name, OverlayBench.BuildScenario(work), work, flows: 32, segments: 4);
            Assert.Equal(128, c.Measured.Count);
            var r = ScenarioBench.MeasureSoftnet(c, rounds: 1);
            Assert.True(r.Pps > 0, $"pps {r.Pps}");
            Assert.Equal(1.0, r.Forwarded);
            Assert.Equal(0.0, r.NatWalks); // established: the nat table is not walked
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }

    [SkippableTheory]
    [InlineData("encap")]
    [InlineData("decap")]
    public void Kernel_half_forwards_every_segment(string name)
    {
        string? why = KernelScenario.Unavailable() ?? (Proc.Exists("taskset") ? null : "taskset is not installed");
        Skip.If(why != null, $"bench overlay's kernel half needs root and network namespaces: {why}");
        string work = Directory.CreateTempSubdirectory("softnet-overlay-test-").FullName;
        try
        {
            var c = OverlayBench.Build(name, OverlayBench.BuildScenario(work), work, flows: 64, segments: 4);
            var k = ScenarioBench.MeasureKernel(c, ScenarioBench.PickCpu(), 0.5, 0);
            Assert.NotNull(k);
            Assert.True(k.Forwarded >= 0.99, $"the kernel forwarded {k.Forwarded:P1} of the measured frames");
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
