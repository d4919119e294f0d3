using System.Runtime.InteropServices;

namespace Softnet.Napi;

/// <summary>Thread pinning through sched_setaffinity(2) on the calling thread (pid 0), Linux only.</summary>
public static class CpuAffinity
{
    private const int EINVAL = 22;

    [DllImport("libc", SetLastError = true)]
    private static extern unsafe int sched_setaffinity(int pid, nuint cpusetsize, ulong* mask);

    [DllImport("libc", SetLastError = true)]
    private static extern unsafe int sched_getaffinity(int pid, nuint cpusetsize, ulong* mask);

    /// <summary>
    /// Pins the calling thread to <paramref name="cpu"/>. Returns false with the errno (or -1 off Linux) when the
    /// kernel refuses: EINVAL for a CPU that does not exist or is outside the cpuset, EPERM without permission.
    /// </summary>
    public static unsafe bool TryPinCurrentThread(int cpu, out int errno)
    {
        errno = 0;
        if (!OperatingSystem.IsLinux())
        {
            errno = -1;
            return false;
        }
        if (cpu < 0 || cpu >= Nic.CpuMask.MaxCpus)
        {
            errno = EINVAL;
            return false;
        }
        int words = cpu / 64 + 1;
        ulong* mask = stackalloc ulong[words];
        for (int i = 0; i < words; i++) mask[i] = 0;
        mask[cpu / 64] = 1UL << (cpu % 64);
        try
        {
            if (sched_setaffinity(0, (nuint)(words * sizeof(ulong)), mask) == 0) return true;
            errno = Marshal.GetLastPInvokeError();
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            errno = -1;
        }
        return false;
    }

    /// <summary>Lets the calling thread run on any of <paramref name="cpus"/> (restores a saved affinity).</summary>
    public static unsafe bool TrySetCurrentThreadAffinity(IReadOnlyList<int> cpus)
    {
        if (!OperatingSystem.IsLinux() || cpus.Count == 0) return false;
        const int words = Nic.CpuMask.MaxCpus / 64;
        ulong* mask = stackalloc ulong[words];
        for (int i = 0; i < words; i++) mask[i] = 0;
        foreach (int c in cpus)
            if (c >= 0 && c < Nic.CpuMask.MaxCpus) mask[c / 64] |= 1UL << (c % 64);
        try
        {
            return sched_setaffinity(0, words * sizeof(ulong), mask) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    /// <summary>The CPUs the calling thread may run on, or null when that cannot be read (non-Linux).</summary>
    public static unsafe Nic.CpuMask? CurrentThreadAffinity()
    {
        if (!OperatingSystem.IsLinux()) return null;
        const int words = Nic.CpuMask.MaxCpus / 64;
        ulong* mask = stackalloc ulong[words];
        for (int i = 0; i < words; i++) mask[i] = 0;
        try
        {
            if (sched_getaffinity(0, words * sizeof(ulong), mask) != 0) return null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
        var cpus = new List<int>();
        for (int i = 0; i < words; i++)
            for (ulong w = mask[i]; w != 0; w &= w - 1)
                cpus.Add(i * 64 + System.Numerics.BitOperations.TrailingZeroCount(w));
        return Nic.CpuMask.Of(cpus.ToArray());
    }

    /// <summary>Text for a pinning result, used as <see cref="SoftnetCpu.PinStatus"/>.</summary>
    public static string Describe(int cpu, bool pinned, int errno) => pinned
        ? $"pinned to CPU {cpu}"
        : errno == -1
            ? "unpinned: sched_setaffinity unavailable (not Linux)"
            : $"unpinned: sched_setaffinity errno {errno} ({ErrnoName(errno)})";

    private static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM",
        3 => "ESRCH",
        14 => "EFAULT",
        22 => "EINVAL",
        _ => "E?",
    };
}
