using Softnet.Gro;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Gro;

/// <summary>Every <see cref="GroCases"/> case through the kernel (veth + GRO) and through Softnet's GRO replay;
/// the outputs must match flow by flow, byte for byte.</summary>
[Collection("KernelGro")]
[Trait("Category", "Kernel")]
public sealed class GroKernelComparisonTests(KernelGroFixture fx)
{
    public static IEnumerable<object[]> Cases => GroCases.Names();

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Softnet_gro_matches_the_kernel(string name)
    {
        var kernel = fx.Kernel(name);
        var c = GroCases.ByName(name);
        var softnet = GroReplay.Run(c.Bursts, new GroOptions { VlanGro = KernelGro.HasVlanGro }, 0);
        string? diff = GroCompare.Diff(kernel, softnet);
        Assert.True(diff == null, $"{name}: {diff}");
    }
}
