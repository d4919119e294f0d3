using Softnet.Napi;

namespace Softnet.Tests.Napi;

/// <summary>A ring stand-in for one thread: a count of pending frames, consumed up to the budget per poll.</summary>
internal sealed class FakePoller : INapiPoller
{
    public long Pending;
    public long Consumed;
    public int Calls;

    /// <summary>Runs after each poll (e.g. to land frames between the poll and the re-arm).</summary>
    public Action<FakePoller>? AfterPoll;

    public FakePoller(long pending = 0) => Pending = pending;

    public int Poll(int budget)
    {
        int n = (int)Math.Min(budget, Pending);
        Pending -= n;
        Consumed += n;
        Calls++;
        AfterPoll?.Invoke(this);
        return n;
    }

    public bool HasWork => Pending > 0;
}

/// <summary>
/// A ring stand-in shared by a producer thread and the NAPI worker: the producer publishes a count, the poller
/// consumes it; it also records any overlapping polls (NAPI must never run one instance on two CPUs at once).
/// </summary>
internal sealed class ConcurrentFakePoller : INapiPoller
{
    private long _produced;
    private long _consumed;
    private int _inPoll;
    public int OverlapViolations;

    public long Produced => Volatile.Read(ref _produced);
    public long Consumed => Volatile.Read(ref _consumed);

    public void Produce(int n) => Interlocked.Add(ref _produced, n);

    public int Poll(int budget)
    {
        if (Interlocked.Increment(ref _inPoll) != 1) Interlocked.Increment(ref OverlapViolations);
        long avail = Volatile.Read(ref _produced) - _consumed;
        int n = (int)Math.Min(budget, avail);
        Volatile.Write(ref _consumed, _consumed + n);
        Interlocked.Decrement(ref _inPoll);
        return n;
    }

    public bool HasWork => Volatile.Read(ref _produced) > Volatile.Read(ref _consumed);
}
