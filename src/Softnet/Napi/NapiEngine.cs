using System.Diagnostics;
using Softnet.Nic;

namespace Softnet.Napi;

/// <summary>How the engine runs net_rx_action.</summary>
public enum NapiMode
{
    /// <summary>One thread, virtual clock, fixed order: same input, same counters.</summary>
    Deterministic,
    /// <summary>One worker thread per CPU, pinned where allowed, woken by interrupts; wall clock.</summary>
    Threaded,
}

/// <summary>Engine settings; the sysctl names are the kernel's.</summary>
public sealed record NapiEngineOptions
{
    public NapiMode Mode { get; init; } = NapiMode.Deterministic;

    /// <summary>CPU ids to run softnet on (--cpus 0,1).</summary>
    public IReadOnlyList<int> Cpus { get; init; } = [0];

    /// <summary>net.core.netdev_budget: frames per net_rx_action round.</summary>
    public int NetdevBudget { get; init; } = 300;

    /// <summary>net.core.netdev_budget_usecs: time per round.</summary>
    public int NetdevBudgetUsecs { get; init; } = 2000;

    /// <summary>Deterministic cost model: virtual ns charged per frame polled.</summary>
    public long NsPerPacket { get; init; }

    /// <summary>Deterministic cost model: virtual ns charged per NAPI poll call.</summary>
    public long NsPerPoll { get; init; }

    /// <summary>Threaded mode: pin each worker to its CPU with sched_setaffinity.</summary>
    public bool PinThreads { get; init; } = true;

    /// <summary>Threaded mode: spin instead of sleeping when idle (lower latency, burns the CPU).</summary>
    public bool BusyPoll { get; init; }
}

/// <summary>Sums of the per-CPU and per-vector counters.</summary>
internal readonly record struct SoftnetTotals(
    long Processed, long Dropped, long TimeSqueeze, long Rounds, long KsoftirqdRounds, long Polls,
    long InterruptsFired, long SuppressedWhileMasked, long Coalesced);

/// <summary>
/// The NAPI / NET_RX runtime: per-CPU <see cref="SoftnetCpu"/>s, one <see cref="IrqVector"/> + <see cref="NapiStruct"/>
/// per RX queue. Register queues with <see cref="AddQueue"/>, then either drive it on a virtual clock
/// (<see cref="Step"/>, <see cref="RunUntilIdle"/>) or run worker threads (<see cref="Start"/>, <see cref="Stop"/>).
/// </summary>
/// <remarks>
/// Deterministic use: for each frame with timestamp ts, call <c>Step(ts)</c> (rounds and moderation timers due
/// before ts run first), write the frame into the ring, then <c>irq.NotifyFrames(1, ts)</c>; at the end call
/// <see cref="RunUntilIdle"/>. A round sees the ring as it is when the round runs; rounds are charged
/// <see cref="NapiEngineOptions.NsPerPoll"/> + frames × <see cref="NapiEngineOptions.NsPerPacket"/> of virtual time,
/// which both drives netdev_budget_usecs and keeps the CPU busy (later rounds start when it is free).
/// </remarks>
public sealed class NapiEngine : IDisposable
{
    private readonly SoftnetCpu[] _cpus;
    private readonly List<IrqVector> _vectorList = [];
    private IrqVector[] _vectors = [];
    private readonly long _t0 = Stopwatch.GetTimestamp();
    private long _now;
    private long _lastEventNs;
    // Deterministic mode: no timer, task or round is due before this instant (long.MinValue: not known). RunEvents
    // sets it when it finds nothing left to run, and anything that can bring an event forward (an interrupt
    // scheduling NAPI, an armed moderation timer, a task starting) clears it, so the per-frame Step of a replay
    // costs one compare while the CPUs are busy or idle.
    private long _quietUntil = long.MinValue;

    private Thread[]? _threads;
    private SemaphoreSlim[]? _parks;
    private volatile bool _stopping;

    /// <summary>Threaded mode: how long an idle worker keeps looking for work before it parks. Under load the next
    /// interrupt is microseconds away, and parking and waking cost a system call on each side.</summary>
    internal const long IdleSpinNs = 20_000;

    /// <summary>Threaded mode: a moderation deadline closer than this is waited for by spinning. A timed sleep
    /// wakes on the scheduler's timer, late by its slack and rounded to whole milliseconds, while rx-usecs is
    /// typically tens of microseconds.</summary>
    internal const long TimerSpinNs = 1_000_000;
    private Exception? _fault;

    public NapiEngine(NapiEngineOptions? options = null)
    {
        Options = options ?? new NapiEngineOptions();
        if (Options.Cpus.Count == 0) throw new ArgumentException("at least one CPU is needed", nameof(options));
        if (Options.Cpus.Distinct().Count() != Options.Cpus.Count) throw new ArgumentException("CPU ids repeat", nameof(options));
        if (Options.Cpus.Any(c => c < 0 || c >= CpuMask.MaxCpus)) throw new ArgumentException("CPU id out of range", nameof(options));
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.NetdevBudget, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.NetdevBudgetUsecs, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(Options.NsPerPacket);
        ArgumentOutOfRangeException.ThrowIfNegative(Options.NsPerPoll);
        _cpus = Options.Cpus.Select(id => new SoftnetCpu(id, Options, 16) { Engine = this }).ToArray();
        _hostTiming = _cpus.Length > 1;
        foreach (var c in _cpus)
            c.PinStatus = Options.Mode == NapiMode.Deterministic ? "unpinned: deterministic mode (one thread)" : "not started";
    }

    public NapiEngineOptions Options { get; }

    public NapiMode Mode => Options.Mode;

    public IReadOnlyList<SoftnetCpu> Cpus => _cpus;

    internal IReadOnlyList<IrqVector> Vectors => _vectors;

    public bool IsRunning => _threads is not null;

    /// <summary>Deterministic mode: the virtual time the running net_rx_action round started (what a NAPI scheduled
    /// from inside it, e.g. a backlog on another CPU, is raised at).</summary>
    public long RoundNs { get; private set; }

    /// <summary>Deterministic mode: the CPU whose net_rx_action round or task is running (smp_processor_id() of the
    /// work being done), null between them. Setting it sets the calling thread's <see cref="ProcessorId"/> (the
    /// engine's first CPU when null: work between rounds, timers, is charged there as well).</summary>
    public SoftnetCpu? Current
    {
        get => _current;
        internal set
        {
            _current = value;
            t_processorId = value?.Id ?? _cpus[0].Id;
        }
    }
    private SoftnetCpu? _current;

    [ThreadStatic] private static int t_processorId;

    /// <summary>smp_processor_id() for what runs on the calling thread (xt_cpu's cpu_mt): the CPU of the deterministic
    /// round or task running (<see cref="Current"/>), a threaded worker's own CPU, 0 on a thread no engine ran on.
    /// Per thread, so live workers sharing the stack under its lock each see their own; a read, no allocation.</summary>
    public static int ProcessorId => t_processorId;

    /// <summary>Deterministic mode: a net_rx_action round is running (on <see cref="Current"/>).</summary>
    public bool InRound { get; private set; }

    /// <summary>Deterministic mode: a CPU's net_rx_action round ended at the given time (where RPS sends its IPIs).</summary>
    internal event Action<SoftnetCpu, long>? RoundEnded;

    /// <summary>Deterministic mode: a CPU's net_rx_action round is done with its NAPI instances but still the running
    /// work (<see cref="Current"/>, its host time): readers that read per round read here.</summary>
    internal event Action<SoftnetCpu>? RoundClosing;

    /// <summary>Current time in ns: the virtual clock (deterministic) or wall time since the engine was made.</summary>
    public long NowNs => Mode == NapiMode.Deterministic ? _now : Stopwatch.GetElapsedTime(_t0).Ticks * 100;

    /// <summary>
    /// Registers an RX queue: its poller becomes a NAPI instance of <paramref name="weight"/> behind a new vector
    /// whose interrupts go to the lowest engine CPU in <paramref name="affinity"/> (all engine CPUs when null;
    /// the lowest engine CPU when the mask allows none of them). Not allowed while threads run.
    /// </summary>
    public IrqVector AddQueue(INapiPoller poller, CpuMask? affinity = null, InterruptModeration moderation = default,
        int weight = NapiStruct.DefaultWeight)
    {
        ArgumentNullException.ThrowIfNull(poller);
        if (IsRunning) throw new InvalidOperationException("add queues before Start()");
        int index = _vectorList.Count;
        var napi = new NapiStruct(poller, weight, index);
        var vector = new IrqVector(this, index, napi, affinity ?? CpuMask.Of(Options.Cpus.ToArray()), moderation);
        napi.Vector = vector;
        _vectorList.Add(vector);
        _vectors = [.. _vectorList];
        _quietUntil = long.MinValue;
        return vector;
    }

    /// <summary>The CPU an interrupt with this affinity lands on.</summary>
    internal SoftnetCpu ResolveCpu(CpuMask mask)
    {
        SoftnetCpu? best = null, lowest = null;
        foreach (var c in _cpus)
        {
            if (lowest is null || c.Id < lowest.Id) lowest = c;
            if (mask.Contains(c.Id) && (best is null || c.Id < best.Id)) best = c;
        }
        return best ?? lowest!;
    }

    /// <summary>A sleeping worker must recompute its wait so the rx-usecs deadline is honoured; a running one
    /// sees the deadline between rounds and is left alone.</summary>
    internal void OnTimerArmed(IrqVector vector)
    {
        _quietUntil = long.MinValue;
        vector.TargetCpu.Wake();
    }

    /// <summary>Deterministic mode: an event may now be due earlier than <see cref="RunEvents"/> last found.</summary>
    internal void EventsChanged() => _quietUntil = long.MinValue;

    // ---------------------------------------------------------------- deterministic mode

    /// <summary>
    /// Advances the virtual clock to <paramref name="nowNs"/>, running in time order every moderation timer and
    /// every net_rx_action round due by then (ties: timers before rounds, lower index first).
    /// </summary>
    public void Step(long nowNs)
    {
        RequireMode(NapiMode.Deterministic);
        if (nowNs < _now) nowNs = _now;
        if (nowNs >= _quietUntil) RunEvents(nowNs);
        _now = nowNs;
    }

    /// <summary>
    /// Runs until nothing is left: due timers fire at their deadlines, rounds run back to back, and frames held only
    /// by an rx-frames threshold are flushed by a forced interrupt. The clock ends at the last event.
    /// </summary>
    public void RunUntilIdle()
    {
        RequireMode(NapiMode.Deterministic);
        while (true)
        {
            RunEvents(long.MaxValue);
            long now = Math.Max(_now, _lastEventNs);
            bool fired = false;
            foreach (var v in _vectors) fired |= v.Flush(now);
            if (!fired) break;
        }
        _now = Math.Max(_now, _lastEventNs);
    }

    /// <summary>Whether rounds and tasks are timed for <see cref="SoftnetCpu.HostNs"/>: only with more than one CPU, where
    /// each one's share is the point (two clock reads a round, ~1 ns a packet at 64 bytes, for nothing on one CPU).</summary>
    private readonly bool _hostTiming;

    private void RunEvents(long limitNs)
    {
        while (true)
        {
            long best = long.MaxValue;
            int kind = -1, index = -1;
            for (int i = 0; i < _vectors.Length; i++)
            {
                long d = _vectors[i].NextDeadlineNs;
                if (d <= limitNs && d < best) { best = d; kind = 0; index = i; }
            }
            // A task whose time is up completes before a round due at the same instant.
            for (int i = 0; i < _cpus.Length; i++)
            {
                long t = _cpus[i].TaskDoneAt;
                if (t <= limitNs && t < best) { best = t; kind = 2; index = i; }
            }
            for (int i = 0; i < _cpus.Length; i++)
            {
                var c = _cpus[i];
                if (!c.HasWork) continue;
                long t = Math.Max(c.FreeAtNs, c.RaisedAtNs);
                if (t <= limitNs && t < best) { best = t; kind = 1; index = i; }
            }
            if (kind < 0)
            {
                _quietUntil = NextEventNs();
                return;
            }
            _quietUntil = long.MinValue;
            if (best > _lastEventNs) _lastEventNs = best;
            if (kind == 0)
            {
                _vectors[index].CheckTimer(best);
            }
            else if (kind == 2)
            {
                Current = _cpus[index];
                long h0 = _hostTiming ? Stopwatch.GetTimestamp() : 0;
                _cpus[index].CompleteTask(best);
                if (_hostTiming) _cpus[index].HostNs += Stopwatch.GetElapsedTime(h0).Ticks * 100;
                Current = null;
            }
            else
            {
                var c = _cpus[index];
                RoundNs = best;
                bool ksoftirqd = c.InKsoftirqd;
                Current = c;
                InRound = true;
                long h0 = _hostTiming ? Stopwatch.GetTimestamp() : 0;
                long took = c.NetRxAction(best, virtualTime: true);
                RoundClosing?.Invoke(c);
                if (_hostTiming) c.HostNs += Stopwatch.GetElapsedTime(h0).Ticks * 100;
                InRound = false;
                Current = null;
                c.FreeAtNs = best + c.ShareWithTask(best, took, ksoftirqd);
                RoundEnded?.Invoke(c, c.FreeAtNs);
                if (c.FreeAtNs > _lastEventNs) _lastEventNs = c.FreeAtNs;
            }
        }
    }

    // The earliest instant any timer, task or round becomes due, as RunEvents looks for them.
    private long NextEventNs()
    {
        long next = long.MaxValue;
        foreach (var v in _vectors) next = Math.Min(next, v.NextDeadlineNs);
        foreach (var c in _cpus)
        {
            next = Math.Min(next, c.TaskDoneAt);
            if (c.HasWork) next = Math.Min(next, Math.Max(c.FreeAtNs, c.RaisedAtNs));
        }
        return next;
    }

    // ---------------------------------------------------------------- threaded mode

    /// <summary>Starts one worker per CPU; each pins itself (when allowed) and sleeps until an interrupt.</summary>
    public void Start()
    {
        RequireMode(NapiMode.Threaded);
        if (IsRunning) throw new InvalidOperationException("already running");
        _stopping = false;
        _parks = _cpus.Select(_ => new SemaphoreSlim(0)).ToArray();
        for (int i = 0; i < _cpus.Length; i++) _cpus[i].AttachParking(_parks[i]);
        using var ready = new CountdownEvent(_cpus.Length);
        _threads = new Thread[_cpus.Length];
        for (int i = 0; i < _cpus.Length; i++)
        {
            int k = i;
            _threads[i] = new Thread(() => Worker(_cpus[k], ready))
            {
                IsBackground = true,
                Name = $"softnet/{_cpus[k].Id}",
            };
            _threads[i].Start();
        }
        ready.Wait(); // pin status is known once Start returns
    }

    /// <summary>
    /// Drains and stops: workers flush moderated frames, poll until every ring and poll list is empty, then exit and
    /// are joined. Call after the port side has stopped notifying. Rethrows a poller exception if a worker hit one.
    /// </summary>
    public void Stop()
    {
        if (_threads is null) return;
        _stopping = true;
        Interlocked.MemoryBarrier(); // the flag before the looks at the sleeping flags (the worker checks it after announcing)
        foreach (var c in _cpus) c.Wake();
        foreach (var t in _threads) t.Join();
        _threads = null;
        foreach (var p in _parks!) p.Dispose();
        _parks = null;
        if (_fault is not null) throw new InvalidOperationException("a softnet worker failed", _fault);
    }

    /// <summary>Stops the workers if running; a worker failure is only reported by an explicit <see cref="Stop"/>.</summary>
    public void Dispose()
    {
        try { Stop(); }
        catch (InvalidOperationException) { }
    }

    /// <summary>
    /// One CPU's softirq thread (ksoftirqd with threaded NAPI): net_rx_action while NET_RX is pending; when idle,
    /// spin a little, spin through a near moderation deadline, else announce the sleep, look once more and park.
    /// </summary>
    private void Worker(SoftnetCpu cpu, CountdownEvent ready)
    {
        t_processorId = cpu.Id;
        if (Options.PinThreads)
        {
            bool ok = CpuAffinity.TryPinCurrentThread(cpu.Id, out int errno);
            cpu.Pinned = ok;
            cpu.PinStatus = CpuAffinity.Describe(cpu.Id, ok, errno);
        }
        else
        {
            cpu.PinStatus = "unpinned: pinning disabled";
        }
        ready.Signal();

        try
        {
            long idleSince = -1, busyFrom = -1;
            int spins = 0;
            while (true)
            {
                // Moderation timers of this CPU's vectors are checked between rounds too, so a moderated queue is
                // not starved while other queues keep the CPU in ksoftirqd mode. One read each when nothing is due.
                long now = NowNs;
                long next = CheckTimers(cpu, now);

                if (cpu.HasWork)
                {
                    if (busyFrom < 0) busyFrom = ThreadCpuClock.NowNs();
                    cpu.NetRxAction(now, virtualTime: false);
                    idleSince = -1;
                    continue;
                }
                if (busyFrom >= 0)
                {
                    // A stretch of work ends: its CPU time (read at the two ends only, a system call each).
                    cpu.AddBusyCpu(ThreadCpuClock.NowNs() - busyFrom);
                    busyFrom = -1;
                }

                if (_stopping)
                {
                    bool fired = false;
                    foreach (var v in _vectors)
                        if (v.TargetCpu == cpu) fired |= v.Flush(NowNs);
                    if (!fired && !cpu.HasWork) return;
                    continue;
                }

                if (idleSince < 0)
                {
                    idleSince = now;
                    spins = 0;
                }
                if (Options.BusyPoll || now - idleSince < IdleSpinNs || next - now <= TimerSpinNs)
                {
                    // Now and then give the CPU to whatever else may run on it (the port, when it has no CPU
                    // of its own): a spin that holds a shared CPU delays the very frames it waits for.
                    if ((++spins & 7) == 0) Thread.Yield();
                    else Thread.SpinWait(16);
                    continue;
                }

                // Announce the sleep, then the last looks: an interrupt, a newly armed timer or Stop from now on
                // sees the flag and signals.
                cpu.PrepareToPark();
                next = NextDeadline(cpu);
                now = NowNs;
                if (cpu.HasWork || _stopping || next - now <= TimerSpinNs)
                {
                    cpu.CancelPark();
                    continue;
                }
                // Wake a spin window before the deadline (the timed wait is late by the timer slack).
                cpu.Park(next == long.MaxValue
                    ? Timeout.Infinite
                    : (int)Math.Clamp((next - now - TimerSpinNs) / 1_000_000, 1, int.MaxValue));
                idleSince = -1;
            }
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref _fault, e, null);
            _stopping = true;
        }
    }

    /// <summary>Fires this CPU's due moderation timers; returns the earliest deadline still pending.</summary>
    private long CheckTimers(SoftnetCpu cpu, long now)
    {
        long next = long.MaxValue;
        foreach (var v in _vectors)
        {
            if (v.TargetCpu != cpu) continue;
            v.CheckTimer(now);
            next = Math.Min(next, v.NextDeadlineNs);
        }
        return next;
    }

    private long NextDeadline(SoftnetCpu cpu)
    {
        long next = long.MaxValue;
        foreach (var v in _vectors)
            if (v.TargetCpu == cpu) next = Math.Min(next, v.NextDeadlineNs);
        return next;
    }

    // ---------------------------------------------------------------- reporting

    /// <summary>Counters summed over CPUs and vectors (exact after Stop / in deterministic mode).</summary>
    internal SoftnetTotals Totals()
    {
        long p = 0, d = 0, ts = 0, r = 0, kr = 0, polls = 0, f = 0, s = 0, co = 0;
        foreach (var c in _cpus)
        {
            p += c.Processed; d += c.Dropped; ts += c.TimeSqueeze; r += c.Rounds; kr += c.KsoftirqdRounds; polls += c.Polls;
        }
        foreach (var v in _vectors)
        {
            f += v.InterruptsFired; s += v.SuppressedWhileMasked; co += v.Coalesced;
        }
        return new SoftnetTotals(p, d, ts, r, kr, polls, f, s, co);
    }

    /// <summary>/proc/net/softnet_stat for the engine's CPUs, one line each (newline-terminated), ascending CPU id.</summary>
    internal string FormatSoftnetStat()
    {
        var sb = new System.Text.StringBuilder();
        foreach (var c in _cpus.OrderBy(c => c.Id)) sb.Append(c.FormatSoftnetStat()).Append('\n');
        return sb.ToString();
    }

    // The check inlines into Step (called per frame); the throw with its message stays out of line.
    private void RequireMode(NapiMode mode)
    {
        if (Mode != mode) ThrowWrongMode(mode);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void ThrowWrongMode(NapiMode mode) => throw new InvalidOperationException($"only in {mode} mode");
}
