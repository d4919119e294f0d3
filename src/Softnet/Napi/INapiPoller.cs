namespace Softnet.Napi;

/// <summary>
/// The driver side of one NAPI instance: what a driver's poll callback (e.g. ice_napi_poll) does with its RX ring.
/// </summary>
/// <remarks>
/// How an RX queue plugs into the engine:
/// <list type="number">
/// <item>The ring's consumer side implements this interface: <see cref="Poll"/> cleans up to <c>budget</c>
/// descriptors (hands the frames on to XDP / skb build / GRO) and returns how many it consumed;
/// <see cref="HasWork"/> says whether written descriptors are waiting (must be safe to read from another
/// thread, e.g. a Volatile read of the producer index).</item>
/// <item>Register it: <c>var irq = engine.AddQueue(ring, CpuMask.Of(0), new InterruptModeration(50, 0));</c></item>
/// <item>The port side (the "hardware" that writes descriptors) calls <c>irq.NotifyFrames(n, tsNs)</c> after
/// writing <c>n</c> descriptors; the vector applies rx-usecs / rx-frames moderation and, when it fires, schedules
/// the queue's NAPI on the CPU chosen from its affinity mask. While NAPI is scheduled the vector stays masked;
/// <see cref="NapiStruct"/> re-arms it at napi_complete_done.</item>
/// </list>
/// The poller does not complete NAPI itself: returning less than the budget means "ring drained, complete me";
/// returning exactly the budget means "more work, keep me on the poll list". Never return more than the budget.
/// </remarks>
public interface INapiPoller
{
    /// <summary>Process up to <paramref name="budget"/> frames; return how many were processed.</summary>
    int Poll(int budget);

    /// <summary>True when frames are waiting in the ring. Read from other threads; keep it cheap and lock-free.</summary>
    bool HasWork { get; }
}
