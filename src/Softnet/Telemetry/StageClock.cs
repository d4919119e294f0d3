using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace Softnet.Telemetry;

/// <summary>Stages of the path above GRO that <see cref="StageClock"/> charges time to.</summary>
public enum Stage : byte
{
    /// <summary>Device receive and transmit core, bridge, veth, taps (net/core, net/bridge).</summary>
    Link,
    /// <summary>ARP and neighbour resolution.</summary>
    Neigh,
    /// <summary>IPv4 input, routing, forward, output, ICMP.</summary>
    Ip,
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
    Conntrack,
    /// <summary>After POSTROUTING: neighbour output and dev_queue_xmit.</summary>
    Egress,
    Count,
}

/// <summary>
/// Exclusive CPU time per stage for sampled packets: entering a stage charges the time since the last switch to
/// the stage that was running, so nested stages (netfilter inside IP) are not counted twice. Off unless the
/// current packet is sampled (one NAPI poll in <see cref="Nic.RxQueue.TimingSampleEvery"/>), so the unsampled
/// path pays one load and branch per switch.
/// </summary>
public sealed class StageClock
{
    /// <summary>Ticks charged to each stage, less the clock reads the charging itself cost.</summary>
    public long this[Stage s] => Math.Max(0, Ticks[(int)s] - (long)(Charges[(int)s] * ReadCost));
    public readonly long[] Ticks = new long[(int)Stage.Count];
    /// <summary>How often each stage was charged (each charge includes one clock read).</summary>
    public readonly long[] Charges = new long[(int)Stage.Count];

    /// <summary>The cost of one Stopwatch.GetTimestamp in ticks, measured once (the median of a few batches).</summary>
    public static readonly double ReadCost = MeasureReadCost();

    private static double MeasureReadCost()
    {
        var runs = new double[9];
        for (int r = 0; r < runs.Length; r++)
        {
            long t0 = Stopwatch.GetTimestamp(), t = t0;
            for (int i = 0; i < 1000; i++) t = Stopwatch.GetTimestamp();
            runs[r] = (t - t0) / 1000.0;
        }
        Array.Sort(runs);
        return runs[runs.Length / 2];
    }
    private readonly Stage[] _stack = new Stage[64];
    private int _depth;
    private long _last;

    /// <summary>The current packet is sampled.</summary>
    public bool On;

    private bool _warm;

    /// <summary>Packets (GRO segments counted) broken down by stage.</summary>
    public long SampledPackets;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Begin(Stage s)
    {
        if (On) Switch(s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void End()
    {
        if (On) Pop();
    }

    private void Switch(Stage s)
    {
        long now = Stopwatch.GetTimestamp();
        if (_depth > 0) Charge(_stack[_depth - 1], now);
        if (_depth < _stack.Length) _stack[_depth++] = s;
        _last = now;
    }

    private void Pop()
    {
        long now = Stopwatch.GetTimestamp();
        if (_depth > 0) Charge(_stack[--_depth], now);
        _last = now;
    }

    private void Charge(Stage s, long now)
    {
        Ticks[(int)s] += now - _last;
        Charges[(int)s]++;
    }

    /// <summary>Starts a sampled packet (or not); stages left open by an early return are closed.</summary>
    /// <summary>Of the packets the NIC samples, one in this many is broken down by stage: a breakdown reads the
    /// clock a few dozen times, which would otherwise show up in the figures it produces.</summary>
    public const int SampleEvery = 8;
    private long _offered;

    /// <summary>Starts a packet of <paramref name="segments"/> segments; <paramref name="sampled"/>: its NAPI poll is
    /// timed, so it may be broken down (one in <see cref="SampleEvery"/> of those is).</summary>
    public void StartPacket(bool sampled, bool warm = false, int segments = 1)
    {
        if (sampled && _offered++ % SampleEvery != 0) sampled = false;
        _depth = 0;
        if (warm && !_warm)
        {
            // The NIC's samples just turned warm (see RxQueue.TimingWarm): drop the start-up ones, as it does.
            _warm = true;
            Array.Clear(Ticks);
            Array.Clear(Charges);
            SampledPackets = 0;
        }
        On = sampled;
        if (sampled) SampledPackets += segments;
    }

    public void EndPacket()
    {
        while (On && _depth > 0) Pop();
        On = false;
    }

    public static string Name(Stage s) => s switch
    {
        Stage.Raw => "netfilter_raw",
        Stage.Mangle => "netfilter_mangle",
        Stage.Nat => "netfilter_nat",
        Stage.Filter => "netfilter_filter",
        Stage.Security => "netfilter_security",
        _ => s.ToString().ToLowerInvariant(),
    };
}
