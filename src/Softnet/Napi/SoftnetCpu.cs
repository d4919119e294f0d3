using System.Diagnostics;

namespace Softnet.Napi;

/// <summary>
/// One CPU's softnet_data and its NET_RX softirq (net_rx_action). The poll list is shared with interrupt
/// delivery (other threads schedule onto it under a short lock, as the kernel does with IRQs off); a round
/// splices it into a worker-owned list and polls from there. Counters are plain longs written only by the
/// thread running the rounds.
/// </summary>
public sealed class SoftnetCpu
{
    private readonly Lock _lock = new();
    private NapiList _pollList;              // sd->poll_list, guarded by _lock
    private NapiList _list;                  // the round's local list (worker only)
    private readonly NapiList _repoll;       // instances that used their whole weight this round
    private readonly NapiEngineOptions _options;
    private volatile int _pendingCount;
    private ManualResetEventSlim? _wake;

    private long _processed, _dropped, _timeSqueeze, _rounds, _ksoftirqdRounds, _ksoftirqdWakeups, _polls;
    private long _raisedAtNs = long.MaxValue;
    private long _idleWakeups;

    /// <summary>Threaded mode: times the worker woke from sleep (to check it sleeps rather than spins).</summary>
    internal long IdleWakeups => Volatile.Read(ref _idleWakeups);

    internal void CountIdleWakeup() => _idleWakeups++;

    internal SoftnetCpu(int id, NapiEngineOptions options, int capacity)
    {
        Id = id;
        _options = options;
        _pollList = new NapiList(capacity);
        _list = new NapiList(capacity);
        _repoll = new NapiList(capacity);
    }

    /// <summary>CPU number (as in /proc/net/softnet_stat's cpu column and the pinning mask).</summary>
    public int Id { get; }

    /// <summary>Whether the worker thread was pinned to <see cref="Id"/>; false in deterministic mode.</summary>
    public bool Pinned { get; internal set; }

    /// <summary>How pinning went, e.g. "pinned to CPU 0" or "unpinned: sched_setaffinity errno 22 (EINVAL)".</summary>
    public string PinStatus { get; internal set; } = "not started";

    /// <summary>True when NAPI instances wait on the poll list (NET_RX pending).</summary>
    public bool HasWork => _pendingCount > 0;

    /// <summary>True after a round that ended with work left, until a round empties the list (ksoftirqd running).</summary>
    public bool InKsoftirqd { get; private set; }

    /// <summary>Virtual time this CPU is busy until (deterministic mode).</summary>
    public long FreeAtNs { get; internal set; }

    /// <summary>softnet_stat column 1: frames handled by polls on this CPU.</summary>
    public long Processed => Volatile.Read(ref _processed);
    /// <summary>softnet_stat column 2: backlog drops (netdev_max_backlog); fed by the steering stage via <see cref="AddDropped"/>.</summary>
    public long Dropped => Volatile.Read(ref _dropped);
    /// <summary>softnet_stat column 3: rounds cut short by netdev_budget or netdev_budget_usecs.</summary>
    public long TimeSqueeze => Volatile.Read(ref _timeSqueeze);
    /// <summary>softnet_stat received_rps (IPIs received for RPS); 0 until steering exists.</summary>
    public long ReceivedRps => 0;
    /// <summary>softnet_stat flow_limit_count; 0 until steering exists.</summary>
    public long FlowLimitCount => 0;
    /// <summary>net_rx_action rounds run.</summary>
    public long Rounds => Volatile.Read(ref _rounds);
    /// <summary>Rounds run in ksoftirqd mode (the previous round left work behind).</summary>
    public long KsoftirqdRounds => Volatile.Read(ref _ksoftirqdRounds);
    /// <summary>Times the CPU went from softirq to ksoftirqd mode.</summary>
    internal long KsoftirqdWakeups => Volatile.Read(ref _ksoftirqdWakeups);
    /// <summary>NAPI polls run.</summary>
    public long Polls => Volatile.Read(ref _polls);

    /// <summary>Counts backlog drops (enqueue_to_backlog over netdev_max_backlog). Owning thread only.</summary>
    public void AddDropped(long n) => _dropped += n;

    /// <summary>One /proc/net/softnet_stat line for this CPU (15 hex columns, kernel 6.x layout).</summary>
    public string FormatSoftnetStat() => SoftnetStat.FormatLine(Processed, Dropped, TimeSqueeze, ReceivedRps, FlowLimitCount, backlogLen: 0, Id);

    internal long RaisedAtNs { get { lock (_lock) return _raisedAtNs; } }

    internal void AttachWakeEvent(ManualResetEventSlim wake) => _wake = wake;

    /// <summary>Puts a scheduled NAPI at the tail of the poll list and raises NET_RX (____napi_schedule).</summary>
    internal void Enqueue(NapiStruct napi, long nowNs)
    {
        lock (_lock)
        {
            if (_pollList.Count == 0 && _raisedAtNs == long.MaxValue) _raisedAtNs = nowNs;
            _pollList.AddTail(napi);
            _pendingCount = _pollList.Count;
        }
        _wake?.Set();
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

        lock (_lock)
        {
            _list.SpliceTailFrom(_pollList);
            _raisedAtNs = long.MaxValue;
        }

        while (true)
        {
            if (_list.Count == 0)
            {
                if (_repoll.Count != 0) break;
                // Catch instances scheduled while we were polling (the kernel's in_net_rx_action re-check).
                lock (_lock)
                {
                    if (_pollList.Count == 0) break;
                    _list.SpliceTailFrom(_pollList);
                    _raisedAtNs = long.MaxValue;
                }
                continue;
            }

            var n = _list.PopFront();
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

        bool more;
        lock (_lock)
        {
            // Leftovers of this round first, then what was scheduled meanwhile, then the repoll list.
            _list.SpliceTailFrom(_pollList);
            _list.SpliceTailFrom(_repoll);
            (_pollList, _list) = (_list, _pollList);
            _pendingCount = _pollList.Count;
            more = _pollList.Count > 0;
            if (more) _raisedAtNs = startNs + elapsed;
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
