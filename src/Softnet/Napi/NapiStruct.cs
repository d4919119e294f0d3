using Softnet.Nic;

namespace Softnet.Napi;

/// <summary>Where a NAPI instance is in its life cycle.</summary>
public enum NapiState
{
    /// <summary>Not on any poll list; its interrupt is armed.</summary>
    Idle,
    /// <summary>On a CPU's poll list (NAPI_STATE_SCHED), waiting for net_rx_action.</summary>
    Scheduled,
    /// <summary>Its driver poll is running right now.</summary>
    InPoll,
}

/// <summary>
/// One NAPI context (struct napi_struct): a driver poller, its weight, its SCHED/MISSED state and the CPU it was
/// scheduled on. Scheduling is safe from any thread; polling happens only on the owning CPU's worker.
/// </summary>
public sealed class NapiStruct
{
    /// <summary>NAPI_POLL_WEIGHT.</summary>
    public const int DefaultWeight = 64;

    private const int Sched = 1;   // NAPI_STATE_SCHED: owned by a poll list / a poll
    private const int Missed = 2;  // NAPI_STATE_MISSED: schedule attempted while already scheduled

    private int _state;
    private volatile bool _inPoll;

    /// <summary>The link of a CPU's lock-free schedule list (<see cref="SoftnetCpu"/>); owned by whoever holds SCHED.</summary>
    internal NapiStruct? NextScheduled;
    private volatile SoftnetCpu? _cpu;

    internal NapiStruct(INapiPoller poller, int weight, int id)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(weight, 1);
        Poller = poller;
        Weight = weight;
        Id = id;
    }

    public INapiPoller Poller { get; }

    /// <summary>Frames one poll may process (n->weight); also the driver's completion threshold.</summary>
    public int Weight { get; }

    /// <summary>Queue index (same as its <see cref="IrqVector.Index"/>).</summary>
    public int Id { get; }

    /// <summary>The interrupt vector re-armed at completion; null for a NAPI without an interrupt.</summary>
    public IrqVector? Vector { get; internal set; }

    /// <summary>The CPU this instance was last scheduled on.</summary>
    public SoftnetCpu? Cpu => _cpu;

    internal NapiState State => _inPoll ? NapiState.InPoll
        : (Volatile.Read(ref _state) & Sched) != 0 ? NapiState.Scheduled : NapiState.Idle;

    // Plain longs written only by the polling worker; the properties read them with Volatile for progress.
    private long _polls, _frames, _fullPolls, _completions, _missed;

    /// <summary>Driver polls run.</summary>
    public long Polls => Volatile.Read(ref _polls);
    /// <summary>Frames the polls returned.</summary>
    internal long Frames => Volatile.Read(ref _frames);
    /// <summary>Polls that used the whole weight (the instance stayed on the poll list).</summary>
    internal long FullPolls => Volatile.Read(ref _fullPolls);
    /// <summary>napi_complete_done calls that took the instance off the list and re-armed its interrupt.</summary>
    internal long Completions => Volatile.Read(ref _completions);
    /// <summary>Completions turned into a re-schedule because a schedule was missed during the poll (NAPI_STATE_MISSED).</summary>
    internal long MissedReschedules => Volatile.Read(ref _missed);

    /// <summary>
    /// napi_schedule: if not already scheduled, put this instance at the tail of <paramref name="cpu"/>'s poll list
    /// and raise NET_RX there; otherwise record a missed schedule (the completion will reschedule). Any thread.
    /// </summary>
    public bool Schedule(SoftnetCpu cpu, long nowNs)
    {
        if (cpu.Serial)
        {
            // Deterministic mode: one thread, so the test-and-set is plain (a locked instruction each per frame
            // otherwise, in a replay that schedules NAPI for most frames).
            if ((_state & Sched) != 0)
            {
                _state |= Missed;
                return false;
            }
            _state = Sched;
            _cpu = cpu;
            cpu.Enqueue(this, nowNs);
            return true;
        }
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & Sched) != 0)
            {
                if ((s & Missed) != 0 || Interlocked.CompareExchange(ref _state, s | Missed, s) == s) return false;
                continue;
            }
            if (Interlocked.CompareExchange(ref _state, Sched, s) != s) continue;
            _cpu = cpu;
            cpu.Enqueue(this, nowNs);
            return true;
        }
    }

    /// <summary>
    /// The driver poll plus napi_poll's bookkeeping: runs the poller with the full weight (the kernel never passes
    /// less, whatever is left of netdev_budget) and completes the instance when it returns less.
    /// Returns the work done; <paramref name="repoll"/> is true when the weight was used up.
    /// </summary>
    internal int Poll(long nowNs, out bool repoll)
    {
        int work;
        _inPoll = true;
        try { work = Poller.Poll(Weight); }
        finally { _inPoll = false; }
        if ((uint)work > (uint)Weight)
            throw new InvalidOperationException($"NAPI poller {Id} returned {work}, more than its budget {Weight}");
        _polls++;
        _frames += work;
        if (work < Weight)
        {
            // What the driver does after cleaning less than its budget: napi_complete_done, then re-enable the IRQ.
            repoll = false;
            if (CompleteDone(nowNs))
            {
                _completions++;
                Vector?.Rearm(nowNs);
            }
            return work;
        }
        _fullPolls++;
        repoll = true;
        return work;
    }

    /// <summary>napi_complete_done: clear SCHED unless a schedule was missed, in which case stay scheduled and requeue.</summary>
    private bool CompleteDone(long nowNs)
    {
        if (_cpu is { Serial: true } cpu)
        {
            if ((_state & Missed) != 0)
            {
                _state = Sched;
                _missed++;
                cpu.Enqueue(this, nowNs);
                return false;
            }
            _state = 0;
            return true;
        }
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if ((s & Missed) != 0)
            {
                if (Interlocked.CompareExchange(ref _state, Sched, s) != s) continue;
                _missed++;
                _cpu!.Enqueue(this, nowNs);
                return false;
            }
            if (Interlocked.CompareExchange(ref _state, 0, s) == s) return true;
        }
    }
}
