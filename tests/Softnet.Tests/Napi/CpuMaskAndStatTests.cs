using CsCheck;
using Softnet.Napi;
using Softnet.Nic;
using Xunit;

namespace Softnet.Tests.Napi;

/// <summary>smp_affinity mask text and /proc/net/softnet_stat lines.</summary>
public class CpuMaskAndStatTests
{
    [Theory]
    [InlineData("3", new[] { 0, 1 })]
    [InlineData("00000001", new[] { 0 })]
    [InlineData("0x10", new[] { 4 })]
    [InlineData("ff,00000000", new[] { 32, 33, 34, 35, 36, 37, 38, 39 })]
    [InlineData("1,00000000,00000001", new[] { 0, 64 })]
    [InlineData("100000000", new[] { 32 })]
    [InlineData(" 0 ", new int[0])]
    public void Parse_KernelForms(string text, int[] cpus)
        => Assert.Equal(cpus, CpuMask.Parse(text).ToArray());

    [Theory]
    [InlineData("")]
    [InlineData("xyz")]
    [InlineData("123456789,0")] // a comma group holds at most 8 digits
    [InlineData("3,,1")]
    [InlineData("0x")]
    public void Parse_RejectsMalformed(string text) => Assert.False(CpuMask.TryParse(text, out _));

    [Theory]
    [InlineData(new[] { 0, 1 }, 2, "3")]
    [InlineData(new[] { 0 }, 32, "00000001")]
    [InlineData(new[] { 0 }, 40, "00,00000001")]
    [InlineData(new[] { 0, 1 }, 64, "00000000,00000003")]
    [InlineData(new[] { 2 }, 8, "04")]
    public void Format_KernelWidths(int[] cpus, int nrCpus, string expected)
        => Assert.Equal(expected, CpuMask.Of(cpus).Format(nrCpus));

    [Fact]
    public void Format_WidensToHighestCpu()
    {
        string text = CpuMask.Of(0, 4095).Format(2);
        var groups = text.Split(',');
        Assert.Equal(128, groups.Length);
        Assert.Equal("80000000", groups[0]);
        Assert.Equal("00000001", groups[^1]);
        Assert.Equal(CpuMask.Of(0, 4095), CpuMask.Parse(text));
    }

    [Fact]
    public void FormatParse_RoundTrips()
        => Gen.Int[0, 255].Array[0, 12].Sample(cpus =>
        {
            var mask = CpuMask.Of(cpus);
            Assert.Equal(mask, CpuMask.Parse(mask.Format(256)));
            Assert.Equal(mask, CpuMask.Parse(mask.ToString()));
            Assert.Equal(cpus.Distinct().Order().ToArray(), mask.ToArray());
            Assert.Equal(cpus.Length == 0 ? -1 : cpus.Min(), mask.Lowest);
            Assert.Equal(cpus.Length == 0 ? -1 : cpus.Max(), mask.Highest);
        });

    [Fact]
    public void SoftnetStat_LineLayout()
    {
        string line = SoftnetStat.FormatLine(processed: 0x280, dropped: 5, timeSqueeze: 2, receivedRps: 0, flowLimit: 0,
            backlogLen: 0, cpu: 1);
        Assert.Equal("00000280 00000005 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000", line);
        // The kernel prints u32 values: large counts wrap.
        Assert.StartsWith("00000001 ", SoftnetStat.FormatLine(0x1_0000_0001, 0, 0, 0, 0, 0, 0));
    }

    [Fact]
    public void SoftnetStat_FromEngineRun()
    {
        var engine = new NapiEngine(new NapiEngineOptions { Cpus = [0, 1] });
        for (int i = 0; i < 5; i++)
        {
            var irq = engine.AddQueue(new FakePoller(128), CpuMask.Of(0));
            irq.NotifyFrames(128, 0);
        }
        engine.RunUntilIdle();
        Assert.Equal(
            "00000280 00000000 00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n" +
            "00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000\n",
            engine.FormatSoftnetStat());
    }

    [SkippableFact]
    public void SoftnetStat_ColumnCountMatchesThisKernel()
    {
        Skip.IfNot(File.Exists("/proc/net/softnet_stat"), "no /proc/net/softnet_stat");
        var first = File.ReadLines("/proc/net/softnet_stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Skip.If(first.Length != 15, $"kernel prints {first.Length} columns; the engine follows the 15-column 6.x layout");
        Assert.Equal(first.Length, SoftnetStat.FormatLine(0, 0, 0, 0, 0, 0, 0).Split(' ').Length);
        Assert.All(first, col => Assert.Equal(8, col.Length));
    }
}
