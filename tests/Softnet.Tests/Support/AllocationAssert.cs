using Xunit;

namespace Softnet.Tests.Support;

/// <summary>
/// Allocation checks that mean "nothing per operation". An allocation per operation costs at least 24 bytes
/// each, so a total under one byte per operation proves there is none; a total of exactly zero is not
/// asserted, because tiered compilation (OSR, PGO) may allocate a few runtime objects once on the test thread
/// when it swaps in optimised code mid-loop, which under a loaded machine lands inside the measured window.
/// </summary>
public static class AllocationAssert
{
    /// <summary>
    /// Runs <paramref name="round"/> (of <paramref name="operations"/> operations each) until one round allocates less
    /// than a byte per operation, at most <paramref name="maxRounds"/> times, and fails with the least seen. Tiered
    /// compilation's one-off allocations land in one round at most; a real allocation per operation shows in every round.
    /// Returns how many rounds ran (for tests that count what the rounds did).
    /// </summary>
    public static int NothingPerOperation(Action round, long operations, string what = "operations", int maxRounds = 3)
    {
        long least = long.MaxValue;
        for (int r = 1; r <= maxRounds; r++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            round();
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
            if (least < operations) return r;
        }
        NothingPerOperation(least, operations, what);
        return maxRounds;
    }

    public static void NothingPerOperation(long allocatedBytes, long operations, string what = "operations")
        => Assert.True(allocatedBytes < operations,
            $"{allocatedBytes} bytes allocated over {operations} {what} (one allocation per operation would be >= {24 * operations})");
}
