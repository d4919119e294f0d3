using Softnet.Napi;

namespace Softnet.Nic;

/// <summary>
/// Interrupt moderation as `ethtool -C` sets it: an interrupt fires once <see cref="RxFrames"/> frames have arrived
/// since the last one, or <see cref="RxUsecs"/> after the first frame still waiting, whichever comes first.
/// 0 disables that trigger; both 0 (or rx-frames 1) means every frame interrupts at once.
/// </summary>
public readonly record struct InterruptModeration(int RxUsecs, int RxFrames)
{
    /// <summary>No moderation: every notification interrupts.</summary>
    internal static InterruptModeration Immediate => default;

    public bool IsImmediate => (RxUsecs <= 0 && RxFrames <= 1) || RxFrames == 1;

    /// <summary>Parses "rx-usecs=50,rx-frames=16" style text (either part optional), e.g. from a CLI flag.</summary>
    internal static InterruptModeration Parse(string text)
    {
        int usecs = 0, frames = 0;
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (kv.Length != 2 || !int.TryParse(kv[1], out int v) || v < 0)
                throw new FormatException($"bad moderation setting '{part}'");
            switch (kv[0])
            {
                case "rx-usecs": usecs = v; break;
                case "rx-frames": frames = v; break;
                default: throw new FormatException($"unknown moderation setting '{kv[0]}'");
            }
        }
        return new InterruptModeration(usecs, frames);
    }

    public override string ToString() => $"rx-usecs={RxUsecs},rx-frames={RxFrames}";
}

/// <summary>
/// One MSI-X vector serving one RX queue: an affinity mask (/proc/irq/N/smp_affinity), rx-usecs / rx-frames
/// moderation, and the mask the driver sets while the queue's NAPI is scheduled. Firing schedules the queue's
/// NAPI on the lowest engine CPU the mask allows. The port side calls <see cref="NotifyFrames(int, long)"/>
/// from any thread after writing descriptors; completion re-arms through <see cref="Rearm"/>.
/// </summary>
/// <remarks>
/// A small lock serialises the port thread against the worker's re-arm; it is taken once per notification batch,
/// and this ordering is what prevents the lost-wakeup race (a frame that lands between the last poll and the
/// re-arm is seen by the re-arm's <see cref="INapiPoller.HasWork"/> check).
/// </remarks>
public sealed class IrqVector
{
    private readonly Lock _lock = new();
    private readonly NapiEngine _engine;
    private volatile SoftnetCpu _target;
    private volatile CpuMask _affinity;
    private InterruptModeration _moderation;

    private bool _masked;
    private long _pending;          // frames since the last interrupt, counted while armed
    private long _firstPendingNs;
    private long _deadlineNs = long.MaxValue;

    private long _frames, _fired, _suppressed, _coalesced;

    internal IrqVector(NapiEngine engine, int index, NapiStruct napi, CpuMask affinity, InterruptModeration moderation)
    {
        _engine = engine;
        Index = index;
        Napi = napi;
        _affinity = affinity;
        _moderation = moderation;
        _target = engine.ResolveCpu(affinity);
    }

    /// <summary>Queue / vector number.</summary>
    public int Index { get; }

    public NapiStruct Napi { get; }

    /// <summary>CPUs allowed to take this interrupt; setting it retargets the next interrupt.</summary>
    internal CpuMask Affinity
    {
        get => _affinity;
        set
        {
            _affinity = value;
            _target = _engine.ResolveCpu(value);
        }
    }

    /// <summary>The CPU the next interrupt schedules NAPI on: lowest engine CPU in <see cref="Affinity"/>.</summary>
    public SoftnetCpu TargetCpu => _target;

    public InterruptModeration Moderation
    {
        get { lock (_lock) return _moderation; }
        set { lock (_lock) _moderation = value; }
    }

    /// <summary>True while the queue's NAPI owns the queue (interrupt disabled).</summary>
    public bool IsMasked { get { lock (_lock) return _masked; } }

    /// <summary>Moderation deadline of frames waiting for an interrupt, or long.MaxValue.</summary>
    public long NextDeadlineNs => Volatile.Read(ref _deadlineNs);

    /// <summary>Frames signalled by the port side.</summary>
    public long FramesNotified => Volatile.Read(ref _frames);
    /// <summary>Interrupts raised (each schedules NAPI once).</summary>
    public long InterruptsFired => Volatile.Read(ref _fired);
    /// <summary>Frames that arrived while masked: NAPI was already polling, so no interrupt was needed.</summary>
    public long SuppressedWhileMasked => Volatile.Read(ref _suppressed);
    /// <summary>Frames that arrived armed but were held back by moderation instead of interrupting.</summary>
    public long Coalesced => Volatile.Read(ref _coalesced);

    /// <summary>Signals <paramref name="frames"/> descriptors written at <paramref name="nowNs"/> (capture time in deterministic mode).</summary>
    public void NotifyFrames(int frames, long nowNs)
    {
        if (frames <= 0) return;
        // The common case under load: NAPI is polling, the interrupt is masked, nothing to do but count.
        // The interlocked add is a full fence, so the descriptor written before this call is visible to a
        // Rearm that unmasks after our read of _masked: either we see it unmasked, or it sees the frame.
        Interlocked.Add(ref _frames, frames);
        if (Volatile.Read(ref _masked))
        {
            Interlocked.Add(ref _suppressed, frames);
            return;
        }
        bool fire = false, armed = false;
        lock (_lock)
        {
            if (_masked)
            {
                Interlocked.Add(ref _suppressed, frames);
                return;
            }
            if (_pending == 0) _firstPendingNs = nowNs;
            _pending += frames;
            var m = _moderation;
            if (m.IsImmediate
                || (m.RxFrames > 0 && _pending >= m.RxFrames)
                || (m.RxUsecs > 0 && nowNs - _firstPendingNs >= m.RxUsecs * 1000L))
            {
                fire = MaskForFire();
            }
            else
            {
                _coalesced += frames;
                if (m.RxUsecs > 0 && _deadlineNs == long.MaxValue)
                {
                    _deadlineNs = _firstPendingNs + m.RxUsecs * 1000L;
                    armed = true;
                }
            }
        }
        if (fire) Deliver(nowNs);
        else if (armed) _engine.OnTimerArmed(this);
    }

    /// <summary>Raises the interrupt now unless masked (a software-triggered interrupt, or a flush at end of input).</summary>
    public bool Raise(long nowNs)
    {
        bool fire;
        lock (_lock) fire = !_masked && MaskForFire();
        if (fire) Deliver(nowNs);
        return fire;
    }

    /// <summary>Fires if the rx-usecs deadline has passed at <paramref name="nowNs"/>.</summary>
    internal bool CheckTimer(long nowNs)
    {
        if (Volatile.Read(ref _deadlineNs) > nowNs) return false; // the common case, without the lock
        bool fire;
        lock (_lock) fire = !_masked && _pending > 0 && _deadlineNs <= nowNs && MaskForFire();
        if (fire) Deliver(nowNs);
        return fire;
    }

    /// <summary>Fires if armed and anything is waiting, moderation or not (used to drain at the end of a run).</summary>
    internal bool Flush(long nowNs)
    {
        bool fire;
        lock (_lock) fire = !_masked && (_pending > 0 || Napi.Poller.HasWork) && MaskForFire();
        if (fire) Deliver(nowNs);
        return fire;
    }

    /// <summary>
    /// The driver's re-enable after napi_complete_done. Descriptors written while masked raised no interrupt,
    /// so if the ring is not empty the vector fires again at once (what a pending interrupt cause does in hardware).
    /// </summary>
    internal void Rearm(long nowNs)
    {
        bool fire;
        lock (_lock)
        {
            _masked = false;
            fire = Napi.Poller.HasWork && MaskForFire();
        }
        if (fire) Deliver(nowNs);
    }

    // Caller holds _lock.
    private bool MaskForFire()
    {
        _masked = true;
        _pending = 0;
        _deadlineNs = long.MaxValue;
        _fired++;
        return true;
    }

    // _deadlineNs is written under _lock and read lock-free (an aligned long): a stale read only delays a check.
    private void Deliver(long nowNs) => Napi.Schedule(_target, nowNs);
}
