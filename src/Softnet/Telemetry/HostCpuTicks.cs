using System.Globalization;

namespace Softnet.Telemetry;

/// <summary>
/// The host's CPU time as /proc/stat gives it (USER_HZ ticks): the machine-wide "cpu" line and each "cpuN" line, columns
/// in the kernel's order (user nice system idle iowait irq softirq steal ...). What the kernel-comparison benches and
/// pod-vs-native read the kernel's softirq and busy time from.
/// </summary>
public static class HostCpuTicks
{
    /// <summary>Column indices of a line's values.</summary>
    public const int User = 0, Nice = 1, System = 2, Idle = 3, IoWait = 4, Irq = 5, Softirq = 6, Steal = 7;

    /// <summary>Nanoseconds per USER_HZ tick (100 Hz on Linux).</summary>
    public const double TickNs = 1e7;

    /// <summary>USER_HZ.</summary>
    public const double UserHz = 1e9 / TickNs;

    /// <summary>Each CPU's columns, indexed by CPU number (a CPU without a line, offline, has zeros).</summary>
    public static long[][] PerCpu()
    {
        var cpus = new List<long[]?>();
        foreach (var line in File.ReadLines("/proc/stat"))
        {
            if (line.Length < 4 || !line.StartsWith("cpu", StringComparison.Ordinal) || !char.IsAsciiDigit(line[3])) continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            int id = int.Parse(f[0].AsSpan(3), CultureInfo.InvariantCulture);
            while (cpus.Count <= id) cpus.Add(null);
            cpus[id] = Values(f);
        }
        return [.. cpus.Select(c => c ?? new long[Steal + 1])];
    }

    /// <summary>The machine-wide line's columns (every CPU's summed).</summary>
    public static long[] Total()
    {
        foreach (var line in File.ReadLines("/proc/stat"))
            if (line.StartsWith("cpu ", StringComparison.Ordinal))
                return Values(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        throw new InvalidOperationException("no cpu line in /proc/stat");
    }

    /// <summary>One column of CPU <paramref name="cpu"/>'s line.</summary>
    public static long Of(int cpu, int column)
    {
        var cpus = PerCpu();
        return cpu < cpus.Length ? cpus[cpu][column] : throw new InvalidOperationException($"no cpu{cpu} line in /proc/stat");
    }

    private static long[] Values(string[] fields) => [.. fields.Skip(1).Select(x => long.Parse(x, CultureInfo.InvariantCulture))];
}
