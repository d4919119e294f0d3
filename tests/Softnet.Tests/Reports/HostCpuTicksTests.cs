using Softnet.Telemetry;
using Xunit;

namespace Softnet.Tests.Reports;

/// <summary>/proc/stat as the kernel-comparison benches read it: a line per online CPU, the machine-wide line their sum.</summary>
public class HostCpuTicksTests
{
    [SkippableFact]
    public void Every_cpu_has_its_columns_and_the_machine_line_is_at_least_any_one_of_them()
    {
        Skip.IfNot(File.Exists("/proc/stat"), "no /proc/stat (not Linux)");
        var total = HostCpuTicks.Total();
        var cpus = HostCpuTicks.PerCpu();
        Assert.True(cpus.Length >= Environment.ProcessorCount);
        Assert.All(cpus, c => Assert.True(c.Length > HostCpuTicks.Steal));
        Assert.True(cpus[0][HostCpuTicks.User] + cpus[0][HostCpuTicks.System] + cpus[0][HostCpuTicks.Idle] > 0);
        Assert.True(total[HostCpuTicks.Idle] >= cpus[0][HostCpuTicks.Idle]);
        Assert.True(HostCpuTicks.Of(0, HostCpuTicks.Softirq) >= cpus[0][HostCpuTicks.Softirq]);
        Assert.Throws<InvalidOperationException>(() => HostCpuTicks.Of(cpus.Length, HostCpuTicks.Softirq));
    }
}
