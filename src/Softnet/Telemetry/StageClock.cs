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
/// path pays one load and branch per switch. The same time is also charged to the call path the stage ran on (the
/// stages open around it, each with its detail), which <see cref="CpuStacks"/> turns into collapsed stacks.
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
    // Call paths: a path is a stage entered under a parent path with a detail (which hook, which family: see
    // StageFrames), numbered on first use into fixed arrays, so the sampled path records true nesting without
    // allocating. Path 0 is the root; paths 1..Stage.Count are each stage at the root with detail 0, also where a
    // stage is charged once the table is full (it keeps its stage, loses its place).
    /// <summary>Distinct call paths kept (root included).</summary>
    public const int MaxPaths = 256;
    /// <summary>Details a stage may carry (0..Details-1).</summary>
    public const int Details = 16;
    private readonly ushort[] _child = new ushort[MaxPaths * (int)Stage.Count * Details];
    private readonly Stage[] _pathStage = new Stage[MaxPaths];
    private readonly byte[] _pathDetail = new byte[MaxPaths];
    private readonly ushort[] _pathParent = new ushort[MaxPaths];
    private int _paths;
    /// <summary>Ticks charged to each path (exclusive), before the read-cost correction.</summary>
    public readonly long[] PathTicks = new long[MaxPaths];
    /// <summary>How often each path was charged.</summary>
    public readonly long[] PathCharges = new long[MaxPaths];

    public StageClock()
    {
        _paths = 1;
        for (int s = 0; s < (int)Stage.Count; s++) NewPath(0, (Stage)s, 0);
    }

    private int NewPath(int parent, Stage s, int detail)
    {
        int id = _paths++;
        _pathStage[id] = s;
        _pathDetail[id] = (byte)detail;
        _pathParent[id] = (ushort)parent;
        _child[(parent * (int)Stage.Count + (int)s) * Details + detail] = (ushort)id;
        return id;
    }

    private int Child(int parent, Stage s, int detail)
    {
        if ((uint)detail >= Details) detail = 0;
        int id = _child[(parent * (int)Stage.Count + (int)s) * Details + detail];
        if (id != 0) return id;
        return _paths < MaxPaths ? NewPath(parent, s, detail) : 1 + (int)s;
    }

    /// <summary>Paths numbered so far (ids 0..PathCount-1; 0 is the root).</summary>
    public int PathCount => _paths;
    public Stage PathStage(int path) => _pathStage[path];
    public int PathDetail(int path) => _pathDetail[path];
    public int PathParent(int path) => _pathParent[path];
    /// <summary>Ticks charged to a path, less the clock reads its charging cost.</summary>
    public long PathTicksCorrected(int path) => Math.Max(0, PathTicks[path] - (long)(PathCharges[path] * ReadCost));

    private readonly ushort[] _stack = new ushort[64];
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
        if (On) Switch(s, 0);
    }

    /// <summary>Enters <paramref name="s"/> with a detail that tells its call path apart (see <see cref="StageFrames"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Begin(Stage s, int detail)
    {
        if (On) Switch(s, detail);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void End()
    {
        if (On) Pop();
    }

    private void Switch(Stage s, int detail)
    {
        long now = Stopwatch.GetTimestamp();
        int parent = 0;
        if (_depth > 0) Charge(parent = _stack[_depth - 1], now);
        if (_depth < _stack.Length) _stack[_depth++] = (ushort)Child(parent, s, detail);
        _last = now;
    }

    private void Pop()
    {
        long now = Stopwatch.GetTimestamp();
        if (_depth > 0) Charge(_stack[--_depth], now);
        _last = now;
    }

    private void Charge(int path, long now)
    {
        long dt = now - _last;
        int s = (int)_pathStage[path];
        Ticks[s] += dt;
        Charges[s]++;
        PathTicks[path] += dt;
        PathCharges[path]++;
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
            Array.Clear(PathTicks);
            Array.Clear(PathCharges);
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
