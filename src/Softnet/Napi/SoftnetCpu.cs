using System.Diagnostics;

namespace Softnet.Napi;

/// <summary>
/// One CPU's softnet_data and its NET_RX softirq (net_rx_action). The poll list belongs to the CPU's worker alone;
/// interrupt delivery on other threads schedules NAPIs through a lock-free list (an llist: push with one
/// compare-and-swap, taken whole by the worker), which each round splices onto the tail of the poll list, in the
/// order the NAPIs were scheduled. Counters are plain longs written only by the thread running the rounds.
/// </summary>
/// <remarks>
/// Threaded mode parks the worker (ksoftirqd sleeping in TASK_INTERRUPTIBLE) only after it has announced it in a
/// sleeping flag; a waker reads the flag after publishing its work and signals only a worker that sleeps, so a busy
/// worker is never signalled and an interrupt costs no system call while NAPI is running.
/// </remarks>
public sealed class SoftnetCpu
{
    private readonly NapiList _pollList;     // sd->poll_list: worker only
    private readonly NapiList _repoll;       // instances that used their whole weight this round
    private readonly NapiEngineOptions _options;
    private readonly bool _virtual;
    private IrqSide _irq;                    // what other threads write: the schedule list and the sleeping flag
    private SemaphoreSlim? _park;

    private long _processed, _dropped, _timeSqueeze, _rounds, _ksoftirqdRounds, _ksoftirqdWakeups, _polls;
    private long _raisedAtNs = long.MaxValue; // deterministic mode: when NET_RX was raised with nothing running
    private long _idleWakeups;
    private long _signals;
    private long _busyCpuNs;

    /// <summary>The fields interrupt delivery writes, on their own cache lines away from the worker's counters.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 192)]
    private struct IrqSide
    {
        /// <summary>Newest scheduled NAPI first, linked through <see cref="NapiStruct.NextScheduled"/>.</summary>
        [System.Runtime.InteropServices.FieldOffset(64)] public NapiStruct? Scheduled;
        /// <summary>1 while the worker is parked or about to park.</summary>
        [System.Runtime.InteropServices.FieldOffset(72)] public int Sleeping;
    }

    /// <summary>Threaded mode: times the worker woke from sleep (to check it sleeps rather than spins).</summary>
    internal long IdleWakeups => Volatile.Read(ref _idleWakeups);

    /// <summary>Threaded mode: the worker's CPU time while NET_RX had work (its rounds and the timer checks between
    /// them), its idle spinning and sleeping left out: the softirq time a kernel counts for the CPU.</summary>
    public long BusyCpuNs => Volatile.Read(ref _busyCpuNs);

    internal void AddBusyCpu(long ns) => Volatile.Write(ref _busyCpuNs, _busyCpuNs + ns);

    /// <summary>Threaded mode: times a waker (an interrupt, an armed timer, Stop) signalled the parked worker; a
    /// worker that is running is never signalled.</summary>
    internal long Signals => Volatile.Read(ref _signals);

    /// <summary>The engine whose next-event time this CPU's raises and task starts invalidate.</summary>
    internal NapiEngine? Engine { get; init; }

    internal SoftnetCpu(int id, NapiEngineOptions options, int capacity)
    {
        Id = id;
        _options = options;
        _virtual = options.Mode == NapiMode.Deterministic;
        _pollList = new NapiList(capacity);
        _repoll = new NapiList(capacity);
    }

    /// <summary>CPU number (as in /proc/net/softnet_stat's cpu column and the pinning mask).</summary>
    public int Id { get; }

    /// <summary>Whether the worker thread was pinned to <see cref="Id"/>; false in deterministic mode.</summary>
    public bool Pinned { get; internal set; }

    /// <summary>How pinning went, e.g. "pinned to CPU 0" or "unpinned: sched_setaffinity errno 22 (EINVAL)".</summary>
    public string PinStatus { get; internal set; } = "not started";

    /// <summary>True when NAPI instances wait on the poll list or were scheduled since the last round (NET_RX pending).</summary>
    public bool HasWork => _pollList.Count > 0 || Volatile.Read(ref _irq.Scheduled) is not null;

    /// <summary>True after a round that ended with work left, until a round empties the list (ksoftirqd running).</summary>
    public bool InKsoftirqd { get; private set; }

    /// <summary>Deterministic mode: the replay thread's wall time spent running this CPU's rounds and tasks (what the
    /// virtual CPU's work cost here: its share of a replay's CPU time), and the work another CPU's round ran on this
    /// CPU's behalf (a reader's read and the ACK it sends, NetifRxSteering.RunOn). Kept only when the engine has more
    /// than one CPU (0 on one: all of the replay's time is that CPU's).</summary>
    public long HostNs { get; internal set; }

    /// <summary>Virtual time this CPU is busy until (deterministic mode).</summary>
    public long FreeAtNs { get; internal set; }

    /// <summary>softnet_stat column 1: frames handled by polls on this CPU.</summary>
    public long Processed => Volatile.Read(ref _processed);
    /// <summary>softnet_stat column 2: backlog drops (netdev_max_backlog); fed by the steering stage via <see cref="AddDropped"/>.</summary>
    public long Dropped => Volatile.Read(ref _dropped);
    /// <summary>softnet_stat column 3: rounds cut short by netdev_budget or netdev_budget_usecs.</summary>
    public long TimeSqueeze => Volatile.Read(ref _timeSqueeze);
    /// <summary>softnet_stat received_rps: IPIs received to run the backlog of packets other CPUs steered here.</summary>
    public long ReceivedRps => Volatile.Read(ref _receivedRps);
    /// <summary>softnet_stat flow_limit_count (set by the steering stage).</summary>
    public long FlowLimitCount => Volatile.Read(ref _flowLimitCount);
    private long _receivedRps, _flowLimitCount;

    /// <summary>rps_trigger_softirq ran here. Owning thread only.</summary>
    internal void CountReceivedRps() => _receivedRps++;
    /// <summary>A packet the flow limit refused. Owning thread only.</summary>
    internal void CountFlowLimit() => _flowLimitCount++;
    /// <summary>net_rx_action rounds run.</summary>
    public long Rounds => Volatile.Read(ref _rounds);
    /// <summary>Rounds run in ksoftirqd mode (the previous round left work behind).</summary>
    public long KsoftirqdRounds => Volatile.Read(ref _ksoftirqdRounds);
    /// <summary>Times the CPU went from softirq to ksoftirqd mode.</summary>
    internal long KsoftirqdWakeups => Volatile.Read(ref _ksoftirqdWakeups);
    /// <summary>NAPI polls run.</summary>
    public long Polls => Volatile.Read(ref _polls);

    /// <summary>Counts skbs a stack's backlog handed to __netif_receive_skb on this CPU outside a NAPI poll's work (the
    /// scenario stack's netif_rx queue). Owning thread only.</summary>
    internal void AddProcessed(long n) => _processed += n;

    /// <summary>Counts backlog drops (enqueue_to_backlog over netdev_max_backlog). Owning thread only.</summary>
    public void AddDropped(long n) => _dropped += n;

    // ---------------------------------------------------------------- tasks (deterministic mode)

    private readonly Queue<CpuTask> _runnable = new();
    private CpuTask? _task;
    private long _taskLeft, _taskAt;

    /// <summary>When the running task's CPU time is used up (long.MaxValue: no task runs).</summary>
    internal long TaskDoneAt => _task is null ? long.MaxValue : _taskAt + _taskLeft;
    /// <summary>CPU time tasks asked for on this CPU.</summary>
    public long TaskCpuNs { get; private set; }
    /// <summary>Time a running task lost to softirq rounds (preempted, or sharing the CPU with ksoftirqd).</summary>
    public long TaskPreemptedNs { get; private set; }
    /// <summary>Tasks run to completion.</summary>
    public long TasksRun { get; private set; }

    /// <summary>Makes <paramref name="task"/> runnable here (a wake-up); it runs after the tasks before it.</summary>
    public void WakeTask(CpuTask task, long nowNs)
    {
        if (task.Runnable) return;
        task.Runnable = true;
        _runnable.Enqueue(task);
        if (_task is null) StartNext(nowNs);
    }

    private void StartNext(long nowNs)
    {
        while (_task is null && _runnable.TryDequeue(out var t))
        {
            // Woken while a round runs, the task waits for the round's end.
            t.Runnable = false;
            long start = Math.Max(nowNs, FreeAtNs);
            long cost = Math.Max(0, t.Start(start));
            _task = t;
            _taskLeft = cost;
            _taskAt = start;
            TaskCpuNs += cost;
            if (_virtual) Engine?.EventsChanged();
        }
    }

    /// <summary>The running task's time is up at <paramref name="nowNs"/>: it completes, the next one starts.</summary>
    internal void CompleteTask(long nowNs)
    {
        var t = _task!;
        long more = t.More(nowNs);
        if (more > 0)
        {
            _taskLeft = more;
            _taskAt = nowNs;
            TaskCpuNs += more;
            return;
        }
        _task = null;
        _taskLeft = 0;
        TasksRun++;
        t.Complete(nowNs);
        StartNext(nowNs);
    }

    /// <summary>
    /// A round of <paramref name="durationNs"/> starts at <paramref name="startNs"/>: returns the wall time it takes on
    /// this CPU. A running task is preempted for the round; in ksoftirqd mode the round and the task share the CPU
    /// (the task runs as much as the round, up to what it has left), so the round takes longer.
    /// </summary>
    internal long ShareWithTask(long startNs, long durationNs, bool ksoftirqd)
    {
        if (_task is null) return durationNs;
        if (startNs > _taskAt)
        {
            _taskLeft -= Math.Min(startNs - _taskAt, _taskLeft);
            _taskAt = startNs;
        }
        long give = ksoftirqd ? Math.Min(durationNs, _taskLeft) : 0;
        _taskLeft -= give;
        _taskAt = startNs + durationNs + give;
        TaskPreemptedNs += durationNs;
        return durationNs + give;
    }

    /// <summary>One /proc/net/softnet_stat line for this CPU (15 hex columns, kernel 6.x layout).</summary>
    public string FormatSoftnetStat() => SoftnetStat.FormatLine(Processed, Dropped, TimeSqueeze, ReceivedRps, FlowLimitCount, backlogLen: 0, Id);

    /// <summary>Deterministic mode (one thread runs the port, the interrupts and every CPU's rounds): the NAPI state
    /// words and the poll lists are changed with plain stores, not atomics.</summary>
    internal bool Serial => _virtual;

    /// <summary>Deterministic mode: when NET_RX was raised on an idle CPU (long.MaxValue when not raised).</summary>
    internal long RaisedAtNs => _raisedAtNs;

    /// <summary>
    /// Puts a scheduled NAPI on this CPU's list and raises NET_RX (____napi_schedule): any thread, lock-free. The
    /// NAPI's SCHED bit is the caller's, so an instance is on at most one list once.
    /// </summary>
    internal void Enqueue(NapiStruct napi, long nowNs)
    {
        if (_virtual)
        {
            // Deterministic mode: one thread schedules and polls, so the push needs no atomics (and nobody sleeps).
            if (_raisedAtNs == long.MaxValue) _raisedAtNs = nowNs;
            napi.NextScheduled = _irq.Scheduled;
            _irq.Scheduled = napi;
            Engine?.EventsChanged();
            return;
        }
        while (true)
        {
            var head = Volatile.Read(ref _irq.Scheduled);
            napi.NextScheduled = head;
            if (Interlocked.CompareExchange(ref _irq.Scheduled, napi, head) == head) break;
        }
        // wakeup_softirqd: the compare-and-swap above is a full fence, so the read of the flag comes after the push.
        if (Volatile.Read(ref _irq.Sleeping) != 0) Kick();
    }

    /// <summary>Moves the NAPIs scheduled since the last look to the tail of <paramref name="list"/>, oldest first
    /// (llist_del_all, then the reversal the kernel's llist users do). False when there were none.</summary>
    private bool TakeScheduled(NapiList list)
    {
        if (Volatile.Read(ref _irq.Scheduled) is null) return false;
        NapiStruct? n;
        if (_virtual)
        {
            n = _irq.Scheduled;
            _irq.Scheduled = null;
        }
        else n = Interlocked.Exchange(ref _irq.Scheduled, null);
        // Newest first as pushed: reverse the chain in place, then append.
        NapiStruct? oldest = null;
        while (n is not null)
        {
            var next = n.NextScheduled;
            n.NextScheduled = oldest;
            oldest = n;
            n = next;
        }
        for (n = oldest; n is not null;)
        {
            var next = n.NextScheduled;
            n.NextScheduled = null;
            list.AddTail(n);
            n = next;
        }
        return true;
    }

    // ---------------------------------------------------------------- parking (threaded mode)

    internal void AttachParking(SemaphoreSlim park) => _park = park;

    /// <summary>Wakes the worker if it sleeps (or is about to); a busy worker costs one read. Call after publishing
    /// the work with a full fence.</summary>
    internal void Wake()
    {
        if (Volatile.Read(ref _irq.Sleeping) != 0) Kick();
    }

    /// <summary>Wakes the worker if it announced it sleeps; only the waker that takes the flag signals.</summary>
    private void Kick()
    {
        if (Interlocked.Exchange(ref _irq.Sleeping, 0) == 0) return;
        Interlocked.Increment(ref _signals);
        _park!.Release();
    }

    /// <summary>The worker announces it is about to sleep; it must look for work once more afterwards (the exchange
    /// orders that look after the announcement, as set_current_state does before the last check).</summary>
    internal void PrepareToPark() => Interlocked.Exchange(ref _irq.Sleeping, 1);

    /// <summary>The worker found work after <see cref="PrepareToPark"/>: takes the flag back, or, if a waker took it
    /// first, consumes the signal that waker gives so the next park does not return at once.</summary>
    internal void CancelPark()
    {
        if (Interlocked.Exchange(ref _irq.Sleeping, 0) == 0) _park!.Wait();
    }

    /// <summary>Sleeps until kicked or <paramref name="timeoutMs"/> passes (after <see cref="PrepareToPark"/>).</summary>
    internal void Park(int timeoutMs)
    {
        if (!_park!.Wait(timeoutMs)) CancelPark();
        _idleWakeups++;
    }

    /// <summary>
    /// One net_rx_action round starting at <paramref name="startNs"/>. Each NAPI is polled with its full weight;
    /// the budget drops by the work done; after any poll that leaves the budget at or below zero, or the clock at or
    /// past the time limit, the round stops and counts a time_squeeze. Instances that used their weight go to the
    /// repoll list, which is appended after anything newly scheduled; a round that leaves work raises NET_RX again.
    /// Returns the round's duration (virtual cost, or wall time in threaded mode).
    /// </summary>
    internal long NetRxAction(long startNs, bool virtualTime)
    {
        int budget = _options.NetdevBudget;
        long limitNs = _options.NetdevBudgetUsecs * 1000L;
        long elapsed = 0;
        long wallStart = virtualTime ? 0 : Stopwatch.GetTimestamp();
        _rounds++;
        if (InKsoftirqd) _ksoftirqdRounds++;

        // The poll list: what the last round left, then what interrupts scheduled since.
        TakeScheduled(_pollList);
        _raisedAtNs = long.MaxValue;

        while (true)
        {
            if (_pollList.Count == 0)
            {
                if (_repoll.Count != 0) break;
                // Catch instances scheduled while we were polling (the kernel's in_net_rx_action re-check).
                if (!TakeScheduled(_pollList)) break;
                _raisedAtNs = long.MaxValue;
                continue;
            }

            var n = _pollList.PopFront();
            int work = n.Poll(startNs + elapsed, out bool repoll);
            if (repoll) _repoll.AddTail(n);
            _polls++;
            _processed += work;
            budget -= work;
            elapsed = virtualTime
                ? elapsed + _options.NsPerPoll + work * _options.NsPerPacket
                : Stopwatch.GetElapsedTime(wallStart).Ticks * 100;

            if (budget <= 0 || elapsed >= limitNs)
            {
                _timeSqueeze++;
                break;
            }
        }

        // Leftovers of this round first, then what was scheduled meanwhile, then the repoll list.
        TakeScheduled(_pollList);
        _pollList.SpliceTailFrom(_repoll);
        bool more = _pollList.Count > 0;
        if (more)
        {
            _raisedAtNs = startNs + elapsed;
            if (_virtual) Engine?.EventsChanged();
        }

        if (more && !InKsoftirqd) _ksoftirqdWakeups++;
        InKsoftirqd = more;
        return elapsed;
    }
}

/// <summary>/proc/net/softnet_stat text (net/core/net-procfs.c, softnet_seq_show).</summary>
public static class SoftnetStat
{
    /// <summary>
    /// processed, dropped, time_squeeze, five retired zero columns, cpu_collision (always 0), received_rps,
    /// flow_limit_count, backlog length, cpu index, input queue length, process queue length: each "%08x" of a u32.
    /// </summary>
    public static string FormatLine(long processed, long dropped, long timeSqueeze, long receivedRps, long flowLimit,
        long backlogLen, int cpu)
    {
        Span<uint> cols = [(uint)processed, (uint)dropped, (uint)timeSqueeze, 0, 0, 0, 0, 0, 0,
            (uint)receivedRps, (uint)flowLimit, (uint)backlogLen, (uint)cpu, 0, (uint)backlogLen];
        var sb = new System.Text.StringBuilder(15 * 9);
        for (int i = 0; i < cols.Length; i++)
        {
            if (i > 0) sb.Append(' ');
            sb.Append(cols[i].ToString("x8"));
        }
        return sb.ToString();
    }
}
