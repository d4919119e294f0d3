using Softnet.Napi;
using Softnet.Packets;

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
/// No lock: one atomic word holds the mask bit and the frames counted since the last interrupt, and whoever
/// moves it from armed to masked (the port's notification, the moderation timer, the driver's re-arm) is the one
/// that raises the interrupt, exactly once, as NAPI_STATE_SCHED decides who puts a NAPI on the poll list. The
/// lost-wakeup race (a frame that lands between the last poll and the re-arm) is closed by two full fences: the
/// port publishes the descriptor and then reads the word; the re-arm clears the mask and then reads
/// <see cref="INapiPoller.HasWork"/>. Either the port sees the vector armed, or the re-arm sees the frame.
/// </remarks>
public sealed class IrqVector
{
    // _state: Masked, or the frames counted while armed (they are reset to 0 when the interrupt fires).
    private const long Masked = 1L << 62;

    private readonly NapiEngine _engine;
    private readonly bool _serial; // deterministic mode: one thread does everything, no fences needed
    private volatile SoftnetCpu _target;
    private volatile CpuMask _affinity;
    private long _moderation;       // InterruptModeration packed (rx-usecs high, rx-frames low): read per notification

    private PaddedLong _state;
    // Written by whoever took _state from 0 frames to some (the port), reset to long.MaxValue by whoever fires.
    private long _firstPendingNs;
    private PaddedLong _deadlineNs;

    // The port's counters, apart from what the NAPI worker reads between rounds (the deadline).
    private PaddedLong _frames;
    private long _suppressed, _coalesced;
    private long _fired;

    internal IrqVector(NapiEngine engine, int index, NapiStruct napi, CpuMask affinity, InterruptModeration moderation)
    {
        _engine = engine;
        _serial = engine.Mode == NapiMode.Deterministic;
        Index = index;
        Napi = napi;
        _affinity = affinity;
        _moderation = Pack(moderation);
        _target = engine.ResolveCpu(affinity);
        _deadlineNs.Value = long.MaxValue;
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
        get => Unpack(Volatile.Read(ref _moderation));
        set => Volatile.Write(ref _moderation, Pack(value));
    }

    private static long Pack(InterruptModeration m) => ((long)m.RxUsecs << 32) | (uint)m.RxFrames;
    private static InterruptModeration Unpack(long bits) => new((int)(bits >> 32), (int)bits);

    /// <summary>True while the queue's NAPI owns the queue (interrupt disabled).</summary>
    public bool IsMasked => (Volatile.Read(ref _state.Value) & Masked) != 0;

    /// <summary>Moderation deadline of frames waiting for an interrupt, or long.MaxValue.</summary>
    public long NextDeadlineNs => Volatile.Read(ref _deadlineNs.Value);

    /// <summary>Frames signalled by the port side.</summary>
    public long FramesNotified => Volatile.Read(ref _frames.Value);
    /// <summary>Interrupts raised (each schedules NAPI once).</summary>
    public long InterruptsFired => Volatile.Read(ref _fired);
    /// <summary>Frames that arrived while masked: NAPI was already polling, so no interrupt was needed.</summary>
    public long SuppressedWhileMasked => Volatile.Read(ref _suppressed);
    /// <summary>Frames that arrived armed but were held back by moderation instead of interrupting.</summary>
    public long Coalesced => Volatile.Read(ref _coalesced);

    /// <summary>Signals <paramref name="frames"/> descriptors written at <paramref name="nowNs"/> (capture time in
    /// deterministic mode). A port that writes a burst of descriptors signals them once, at the end of the burst.</summary>
    public void NotifyFrames(int frames, long nowNs)
    {
        if (frames <= 0) return;
        if (_serial)
        {
            // One thread runs the port and NAPI: plain counts, and the masked case (NAPI scheduled) is all of it.
            _frames.Value += frames;
            if ((_state.Value & Masked) != 0)
            {
                _suppressed += frames;
                return;
            }
            NotifySerial(frames, nowNs);
            return;
        }
        // The interlocked add is the port's full fence: the descriptors written before this call are visible to a
        // Rearm that unmasks after our read of _state below (see the remarks).
        else Interlocked.Add(ref _frames.Value, frames);
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s & Masked) != 0)
            {
                // The common case under load: NAPI is polling, the interrupt is masked, nothing to do but count.
                Interlocked.Add(ref _suppressed, frames);
                return;
            }
            bool first = s == 0;
            long firstNs = first ? nowNs : Volatile.Read(ref _firstPendingNs);
            long pending = s + frames;
            var m = Unpack(Volatile.Read(ref _moderation));
            if (Due(m, pending, firstNs, nowNs))
            {
                if (Interlocked.CompareExchange(ref _state.Value, Masked, s) != s) continue;
                Fire(nowNs);
                return;
            }
            if (Interlocked.CompareExchange(ref _state.Value, pending, s) != s) continue;
            if (first) Volatile.Write(ref _firstPendingNs, nowNs);
            Interlocked.Add(ref _coalesced, frames);
            if (m.RxUsecs > 0 && Volatile.Read(ref _deadlineNs.Value) == long.MaxValue)
            {
                // The moderation timer starts (the NIC's ITR countdown). The exchange orders the deadline before
                // the read of the worker's sleeping flag in OnTimerArmed, so a parked worker recomputes its wait.
                Interlocked.Exchange(ref _deadlineNs.Value, firstNs + m.RxUsecs * 1000L);
                _engine.OnTimerArmed(this);
            }
            return;
        }
    }

    /// <summary>Deterministic mode's <see cref="NotifyFrames"/> past the masked case: the same decisions as the
    /// lock-free loop, with plain stores (one thread, nothing to race; the compare-and-swaps cost a locked
    /// instruction per frame otherwise).</summary>
    private void NotifySerial(int frames, long nowNs)
    {
        long s = _state.Value;
        bool first = s == 0;
        long firstNs = first ? nowNs : _firstPendingNs;
        long pending = s + frames;
        var m = Unpack(_moderation);
        if (Due(m, pending, firstNs, nowNs))
        {
            _state.Value = Masked;
            Fire(nowNs);
            return;
        }
        _state.Value = pending;
        if (first) _firstPendingNs = nowNs;
        _coalesced += frames;
        if (m.RxUsecs > 0 && _deadlineNs.Value == long.MaxValue)
        {
            _deadlineNs.Value = firstNs + m.RxUsecs * 1000L;
            _engine.OnTimerArmed(this);
        }
    }

    /// <summary>Moderation's verdict on <paramref name="pending"/> frames, the first of them at <paramref name="firstNs"/>:
    /// interrupt now (no moderation, rx-frames reached, or rx-usecs passed).</summary>
    private static bool Due(InterruptModeration m, long pending, long firstNs, long nowNs)
        => m.IsImmediate
            || (m.RxFrames > 0 && pending >= m.RxFrames)
            || (m.RxUsecs > 0 && nowNs - firstNs >= m.RxUsecs * 1000L);

    /// <summary>Raises the interrupt now unless masked (a software-triggered interrupt, or a flush at end of input).</summary>
    public bool Raise(long nowNs)
    {
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s & Masked) != 0) return false;
            if (Interlocked.CompareExchange(ref _state.Value, Masked, s) == s) break;
        }
        Fire(nowNs);
        return true;
    }

    /// <summary>Fires if the rx-usecs deadline has passed at <paramref name="nowNs"/>.</summary>
    internal bool CheckTimer(long nowNs)
    {
        if (Volatile.Read(ref _deadlineNs.Value) > nowNs) return false; // the common case: one read
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s & Masked) != 0 || s == 0 || Volatile.Read(ref _deadlineNs.Value) > nowNs) return false;
            if (Interlocked.CompareExchange(ref _state.Value, Masked, s) == s) break;
        }
        Fire(nowNs);
        return true;
    }

    /// <summary>Fires if armed and anything is waiting, moderation or not (used to drain at the end of a run).</summary>
    internal bool Flush(long nowNs)
    {
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s & Masked) != 0 || (s == 0 && !Napi.Poller.HasWork)) return false;
            if (Interlocked.CompareExchange(ref _state.Value, Masked, s) == s) break;
        }
        Fire(nowNs);
        return true;
    }

    /// <summary>
    /// The driver's re-enable after napi_complete_done. Descriptors written while masked raised no interrupt,
    /// so if the ring is not empty the vector fires again at once (what a pending interrupt cause does in hardware).
    /// </summary>
    internal void Rearm(long nowNs)
    {
        // Full fence: the unmask is visible before we look at the ring (the port's side of the handshake is in
        // NotifyFrames). Deterministic mode runs the port on this thread: nothing to order against.
        if (_serial) _state.Value &= ~Masked;
        else Interlocked.And(ref _state.Value, ~Masked);
        if (!Napi.Poller.HasWork) return;
        while (true)
        {
            long s = Volatile.Read(ref _state.Value);
            if ((s & Masked) != 0) return; // the port's notification fired first
            if (Interlocked.CompareExchange(ref _state.Value, Masked, s) == s) break;
        }
        Fire(nowNs);
    }

    // The caller has just moved _state to Masked: the moderation window closes and NAPI is scheduled.
    private void Fire(long nowNs)
    {
        Volatile.Write(ref _deadlineNs.Value, long.MaxValue);
        if (_serial) _fired++;
        else Interlocked.Increment(ref _fired);
        Napi.Schedule(_target, nowNs);
    }
}
