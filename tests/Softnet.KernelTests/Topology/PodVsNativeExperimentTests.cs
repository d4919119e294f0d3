using System.CommandLine;
using System.Text.Json;
using Softnet.Cli;
using Xunit;

namespace Softnet.KernelTests.Topology;

/// <summary>`softnet experiment pod-vs-native --quick`: the kernel's iperf3 runs in the default scenario's topology
/// and Softnet's prediction stand side by side for each setting, in the JSON, the CSV and the plot.</summary>
[Trait("Category", "Kernel")]
public sealed class PodVsNativeExperimentTests
{
    [SkippableFact]
    public void Quick_run_reports_the_kernel_ratio_beside_softnets_for_each_setting()
    {
        string? why = PodVsNativeExperiment.KernelUnavailable();
        Skip.If(why != null, $"the kernel half of pod-vs-native needs root, namespaces and iperf3: {why}");
        var dir = Directory.CreateTempSubdirectory("softnet-pvn-test-");
        try
        {
            string json = Path.Combine(dir.FullName, "pvn.json");
            int rc = new RootCommand { ExperimentCommand.Create() }.Parse(["experiment", "pod-vs-native", "--quick", "--out", dir.FullName, "--json", json]).Invoke();
            Assert.Equal(0, rc);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var settings = doc.RootElement.GetProperty("settings").EnumerateArray().ToList();
            Assert.Equal(PodVsNativeExperiment.QuickSettings, settings.Select(s => s.GetProperty("name").GetString()!).ToArray());
            foreach (var s in settings)
            {
                // Both are throughput ratios of the same two paths (noise on a shared machine can put either above 1).
                double k = s.GetProperty("kernel_ratio").GetDouble(), p = s.GetProperty("softnet_ratio").GetDouble();
                Assert.InRange(k, 0.05, 1.5);
                Assert.InRange(p, 0.05, 1.5);
            }
            Assert.True(File.Exists(Path.Combine(dir.FullName, "pod-vs-native.csv")));
            Assert.True(new FileInfo(Path.Combine(dir.FullName, "pod-vs-native.png")).Length > 1000);
        }
        finally
        {
            dir.Delete(true);
        }
    }
}
