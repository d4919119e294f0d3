namespace Softnet.Napi;

/// <summary>
/// A process that runs on one CPU in deterministic mode: an application's reader pinned there. It runs in the time
/// softirq leaves: a net_rx_action round preempts it (softirq runs on interrupt exit, before any task), except when
/// the CPU is in ksoftirqd mode, where ksoftirqd is a thread like the task and the scheduler gives each half the CPU
/// (<see cref="SoftnetCpu"/>'s task timeline). How much it needs comes from <see cref="Start"/>; what it does happens
/// in <see cref="Complete"/>, at the virtual time its CPU time is used up.
/// </summary>
public abstract class CpuTask
{
    internal bool Runnable;

    /// <summary>Picked to run at <paramref name="nowNs"/>: the CPU time (ns) what it has to do takes.</summary>
    public abstract long Start(long nowNs);

    /// <summary>Its CPU time is up at <paramref name="nowNs"/>: more work that came meanwhile (bytes that arrived while
    /// a read was copying) in ns, or 0 to complete now.</summary>
    public virtual long More(long nowNs) => 0;

    /// <summary>Its CPU time is used up at <paramref name="nowNs"/>: it does its work (a read, what the read sends).</summary>
    public abstract void Complete(long nowNs);
}
