using Softnet.Telemetry;
using System.Globalization;

namespace Softnet.Cli;

/// <summary>
/// One kernel iperf3 run of one path: the receiver's throughput and where the CPU time went, per payload byte. Over
/// veth the receive work runs in softirq on the CPU that transmitted (veth_xmit → netif_rx → the local backlog, then
/// net_rx_action when the sender re-enables bottom halves), so the client's own CPU time holds its syscalls and the
/// whole receive path; ksoftirqd's is the softirq work deferred past its budget. This kernel accounts time at the tick
/// (no IRQ_TIME_ACCOUNTING): a tick in softirq lands in the task it interrupted and in /proc/stat's softirq column, so
/// the sender's own part is CPU 0's work less CPU 0's softirq time.
/// </summary>
public sealed record KernelSample(double Bps, double ClientNsPerByte, double ServerNsPerByte, double Ksoftirqd0NsPerByte, double Ksoftirqd1NsPerByte,
    double Softirq0NsPerByte, CpuSplit Cpu0, CpuSplit Cpu1)
{
    /// <summary>The sender's own work (tcp_sendmsg down to the first veth_xmit): CPU 0's work but its softirq time.</summary>
    public double SenderNsPerByte => Math.Max(0, ClientNsPerByte + Ksoftirqd0NsPerByte - Softirq0NsPerByte);

    /// <summary>CPU 0's work per byte: the client (with the softirq run in its context), ksoftirqd/0, and the server
    /// where it shares CPU 0.</summary>
    public double Cpu0NsPerByte(bool readerOnCpu0) => ClientNsPerByte + Ksoftirqd0NsPerByte + (readerOnCpu0 ? ServerNsPerByte : 0);

    /// <summary>CPU 1's: the server (its copy to user, the socket backlog it processes on release_sock, the ACKs it
    /// sends and their receive in its context) and ksoftirqd/1. Softirq work an IPI raises on CPU 1 while another
    /// machine task runs there (RFS) is charged to that task and not counted.</summary>
    public double Cpu1NsPerByte(bool readerOnCpu0) => Ksoftirqd1NsPerByte + (readerOnCpu0 ? 0 : ServerNsPerByte);

    /// <summary>The busier CPU's work per byte: what bounds the throughput on an otherwise idle machine.</summary>
    public double BusiestNsPerByte(bool readerOnCpu0) => Math.Max(Cpu0NsPerByte(readerOnCpu0), Cpu1NsPerByte(readerOnCpu0));

    public string Describe(bool readerOnCpu0)
        => string.Create(CultureInfo.InvariantCulture, $"{Bps / 1e9:F2} Gbit/s, cpu0 {Cpu0NsPerByte(readerOnCpu0):F2} ns/B (sender {SenderNsPerByte:F2}) cpu1 {Cpu1NsPerByte(readerOnCpu0):F2} ns/B; machine cpu0 [{Cpu0}] cpu1 [{Cpu1}]");
}

/// <summary>A setting's kernel runs, native and pod taking turns (pair i ran back to back).</summary>
public sealed record KernelRuns(PodVsNativeSetting Setting, IReadOnlyList<KernelSample> Native, IReadOnlyList<KernelSample> Pod)
{
    /// <summary>Pod/native throughput of each back-to-back pair: a load that comes and goes hits both of a pair alike.</summary>
    public IReadOnlyList<double> Ratios => [.. Native.Zip(Pod, (n, p) => n.Bps > 0 ? p.Bps / n.Bps : 0)];

    /// <summary>The measured ratio: the median pair's.</summary>
    public double Ratio => Median(Ratios);

    /// <summary>The ratio the kernel's own CPU time per byte gives (busier CPU, native over pod): what the throughput
    /// ratio is where the transfer has its CPUs to itself, and steadier than it on a loaded machine.</summary>
    public IReadOnlyList<double> CpuRatios => [.. Native.Zip(Pod, (n, p) => p.BusiestNsPerByte(Setting.ReaderWithSoftirq) is > 0 and var b ? n.BusiestNsPerByte(Setting.ReaderWithSoftirq) / b : 0)];

    public double CpuRatio => Median(CpuRatios);

    /// <summary>The same from both CPUs' time together: what the throughput ratio follows where the two CPUs' work cannot
    /// overlap (on a loaded machine the transfer's two halves seldom run at once; RFS's ratio followed this one there).</summary>
    public double TotalCpuRatio => Median([.. Native.Zip(Pod, (n, p) => Total(p) is > 0 and var t ? Total(n) / t : 0)]);

    private double Total(KernelSample x) => x.Cpu0NsPerByte(Setting.ReaderWithSoftirq) + x.Cpu1NsPerByte(Setting.ReaderWithSoftirq);

    public double NativeBps => Median([.. Native.Select(x => x.Bps)]);
    public double PodBps => Median([.. Pod.Select(x => x.Bps)]);

    /// <summary>The median over a path's runs of one figure.</summary>
    public double Of(bool pod, Func<KernelSample, double> figure) => Median([.. (pod ? Pod : Native).Select(figure)]);

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return 0;
        var v = values.Order().ToArray();
        return v.Length % 2 == 1 ? v[v.Length / 2] : (v[v.Length / 2 - 1] + v[v.Length / 2]) / 2;
    }
}

/// <summary>A CPU's time over a run, as fractions of it, from /proc/stat (every task on the machine, for the log).</summary>
public readonly record struct CpuSplit(double User, double System, double Softirq, double Idle, double Steal)
{
    public static CpuSplit Between(long[] a, long[] b)
    {
        double d(int i) => b[i] - a[i];
        double total = Enumerable.Range(0, HostCpuTicks.Steal + 1).Sum(d);
        if (total <= 0) return default;
        return new CpuSplit((d(HostCpuTicks.User) + d(HostCpuTicks.Nice)) / total, (d(HostCpuTicks.System) + d(HostCpuTicks.Irq)) / total,
            d(HostCpuTicks.Softirq) / total, (d(HostCpuTicks.Idle) + d(HostCpuTicks.IoWait)) / total, d(HostCpuTicks.Steal) / total);
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"usr {User:P0} sys {System:P0} si {Softirq:P0} idle {Idle:P0} st {Steal:P0}");
}

/// <summary>Tick counters: /proc/stat's per CPU and ksoftirqd's per CPU (USER_HZ ticks).</summary>
internal static class KernelTicks
{
    public const double TickNs = Telemetry.HostCpuTicks.TickNs;

    /// <summary>CPUs 0 and 1's /proc/stat columns (zeros for a CPU the machine lacks).</summary>
    public static long[][] Cpus()
    {
        var all = Telemetry.HostCpuTicks.PerCpu();
        return [.. Enumerable.Range(0, 2).Select(i => i < all.Length ? all[i] : new long[Telemetry.HostCpuTicks.Steal + 1])];
    }

    /// <summary>ksoftirqd/0's and ksoftirqd/1's utime + stime.</summary>
    public static long[] Ksoftirqd()
    {
        var t = new long[2];
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            string name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsDigit(name[0])) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
                string comm = stat[(open + 1)..close];
                if (comm is not ("ksoftirqd/0" or "ksoftirqd/1")) continue;
                var f = stat[(close + 2)..].Split(' ');
                // After the comm: state is field 3, utime and stime fields 14 and 15.
                t[comm[^1] - '0'] = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
            }
            catch (IOException) { }
        }
        return t;
    }
}
