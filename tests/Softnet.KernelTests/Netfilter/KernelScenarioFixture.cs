using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Netfilter;

/// <summary>Scenario folders, their traffic captures and the kernel's dumps, each made once per test run.</summary>
public sealed class KernelScenarioFixture
{
    private readonly Dictionary<string, Lazy<(string? Dir, string? Error)>> _runs = [];

    public static readonly string[] Names = ["docker-host", "kube-node", "router-fw", "edge-fw", "mangle-router", "frag-router", "frag-ct-router", "v6-fw", "v6-frag-ct-router", "v6-bridge", "flannel-vxlan", "default-two-node"];

    /// <summary>Why kernel tests skip here, or null.</summary>
    public string? SkipReason { get; } = KernelScenario.Unavailable();

    /// <summary>Where results go: beside the test assembly, kept for inspection.</summary>
    public static string OutRoot => Path.Combine(AppContext.BaseDirectory, "scenario-runs");

    public KernelScenarioFixture()
    {
        foreach (var n in Names)
            _runs[n] = new Lazy<(string?, string?)>(() => RunKernel(n, "kernel"));
    }

    /// <summary>The scenario folder as copied beside the test assembly.</summary>
    public static string ScenarioDir(string name) => name == "default-two-node"
        ? Softnet.Topology.Default.TwoNodeOverlay.Extract() // `softnet replay`'s embedded default, as it writes it out
        : Path.Combine(AppContext.BaseDirectory, "Scenarios", name);

    /// <summary>Writes the scenario's generated traffic (pcapng, if_name = arrival device) and returns its path.</summary>
    public static string Capture(string name)
    {
        Directory.CreateDirectory(OutRoot);
        string path = Path.Combine(OutRoot, $"{name}.pcapng");
        ScenarioTraffic.For(name).Write(path);
        return path;
    }

    /// <summary>Runs the kernel side into OutRoot/&lt;name&gt;/&lt;tag&gt;; returns the dump folder or the error.</summary>
    public (string? Dir, string? Error) RunKernel(string name, string tag)
    {
        if (SkipReason != null) return (null, null);
        string dir = Path.Combine(OutRoot, name, tag);
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            KernelScenario.Run(ScenarioDir(name), Capture(name), ScenarioTraffic.InjectNamespace(name), dir);
            return (dir, null);
        }
        catch (Exception e)
        {
            return (null, e.ToString());
        }
    }

    /// <summary>The kernel's dump of a scenario (run once); skips when not root, fails when the run broke.</summary>
    public string Kernel(string name)
    {
        Skip.If(SkipReason != null, SkipReason);
        var (dir, err) = _runs[name].Value;
        Assert.True(err == null, $"kernel run of {name} failed: {err}");
        return dir!;
    }
}

/// <summary>One fixture for every class that needs the kernel's scenario dumps: they write to the same folders,
/// so they share the runs and never run at the same time.</summary>
[CollectionDefinition(Name)]
public sealed class KernelScenarioCollection : ICollectionFixture<KernelScenarioFixture>
{
    public const string Name = "KernelScenarios";
}
