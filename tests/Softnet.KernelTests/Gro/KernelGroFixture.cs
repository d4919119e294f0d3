using System.Text.Json;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Gro;

/// <summary>
/// One kernel topology for the whole "KernelGro" collection: it runs every <see cref="GroCases"/> case through the
/// kernel once (one injector process, about 50 ms per burst), keeps the results by case name, writes a summary to
/// kernel-gro.json beside the test assembly, and deletes the namespaces when the collection is done.
/// </summary>
public sealed class KernelGroFixture : IDisposable
{
    private readonly Dictionary<string, List<byte[]>> _results = [];
    private readonly string? _setupError;

    /// <summary>Why the kernel tests skip here (not root, no `ip netns`, missing tools), or null.</summary>
    public string? SkipReason { get; }

    public KernelGroTopology? Topology { get; }

    /// <summary>Where the per-case summary was written.</summary>
    public string JsonPath { get; } = Path.Combine(AppContext.BaseDirectory, "kernel-gro.json");

    public KernelGroFixture()
    {
        SkipReason = KernelGro.Unavailable();
        if (SkipReason != null) return;
        try
        {
            Topology = KernelGroTopology.Create();
            // The 1500-byte cases and the jumbo ones share the topology (both veth ends have MTU 9000).
            var cases = GroCases.All().Concat(GroCases.Jumbo()).ToList();
            var outputs = Topology.RunMany(cases.Select(c => c.Bursts).ToList());
            for (int i = 0; i < cases.Count; i++)
                _results[cases[i].Name] = outputs[i];
            WriteJson(cases, outputs);
        }
        catch (Exception e)
        {
            _setupError = e.ToString();
        }
    }

    /// <summary>Skips when the machine cannot run kernel tests; fails when it can but the set-up broke.</summary>
    public void Require()
    {
        Skip.If(SkipReason != null, SkipReason);
        Assert.True(_setupError == null, $"kernel GRO set-up failed: {_setupError}");
    }

    /// <summary>What the kernel delivered for a case of <see cref="GroCases"/>.</summary>
    public List<byte[]> Kernel(string caseName)
    {
        Require();
        return _results[caseName];
    }

    private void WriteJson(List<GroCase> cases, List<List<byte[]>> outputs)
    {
        var rows = cases.Select((c, i) => new
        {
            name = c.Name,
            burstSizes = c.Bursts.Select(b => b.Count).ToArray(),
            framesIn = c.Bursts.Sum(b => b.Count),
            framesOut = outputs[i].Count,
            sizesOut = outputs[i].Select(f => f.Length).ToArray(),
            out_ = outputs[i].Select(f => new FrameInfo(f).ToString()).ToArray(),
        });
        File.WriteAllText(JsonPath, JsonSerializer.Serialize(rows, new JsonSerializerOptions { WriteIndented = true }));
    }

    public void Dispose() => Topology?.Dispose();
}

[CollectionDefinition("KernelGro")]
public sealed class KernelGroCollection : ICollectionFixture<KernelGroFixture>
{
}
