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
    public static void NothingPerOperation(long allocatedBytes, long operations, string what = "operations")
        => Assert.True(allocatedBytes < operations,
            $"{allocatedBytes} bytes allocated over {operations} {what} (one allocation per operation would be >= {24 * operations})");
}
