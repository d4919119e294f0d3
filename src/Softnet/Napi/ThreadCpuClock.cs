using System.Runtime.InteropServices;

namespace Softnet.Napi;

/// <summary>The calling thread's CPU time (clock_gettime(CLOCK_THREAD_CPUTIME_ID)): what a worker spent on a CPU,
/// whatever preempted it. Linux only; 0 elsewhere.</summary>
internal static class ThreadCpuClock
{
    private const int ClockThreadCputimeId = 3;

    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Sec, Nsec;
    }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGettime(int clock, out Timespec ts);

    private static readonly bool Available = OperatingSystem.IsLinux();

    /// <summary>Nanoseconds of CPU time the calling thread has used (a system call: read it per stretch of work, not per packet).</summary>
    public static long NowNs()
    {
        if (!Available || ClockGettime(ClockThreadCputimeId, out var ts) != 0) return 0;
        return ts.Sec * 1_000_000_000 + ts.Nsec;
    }
}
