using System.Globalization;
using System.Text;

namespace Softnet.Telemetry;

/// <summary>
/// Where the NAPI CPUs' time went, as collapsed stacks (`a;b;c N`, the format flamegraph.pl, speedscope and inferno
/// read): one line per call path, frames named for the kernel functions each stage mirrors (<see cref="StageFrames"/>),
/// N the path's exclusive CPU time in nanoseconds over the whole run, estimated as <see cref="StageTimeSection"/>
/// does: the sampled cost per packet times all packets. The stack's stages nest as they ran (netfilter inside
/// ip_rcv, dev_queue_xmit inside ip_finish_output2).
/// </summary>
public sealed class CpuStacks
{
    /// <summary>What N counts.</summary>
    public const string Unit = "ns";

    /// <summary>Folded stacks, sorted, each with its exclusive nanoseconds (at least 1 for a path that ran).</summary>
    public IReadOnlyList<(string Stack, long Ns)> Lines { get; }

    /// <summary>The sum of <see cref="Lines"/>.</summary>
    public long TotalNs { get; }

    /// <summary>Packets the figures stand for.</summary>
    public long Packets { get; }

    public CpuStacks(IReadOnlyList<(string Stack, long Ns)> lines, long packets)
    {
        Lines = lines;
        Packets = packets;
        TotalNs = lines.Sum(l => l.Ns);
    }

    /// <summary>The stacks of a replay's `cpu_time` section (empty when nothing was sampled).</summary>
    public static CpuStacks From(StageTimeSection time)
    {
        var nic = time.Nic;
        var gro = time.Gro;
        long poll = 0, above = 0, groTicks = 0, sampled = 0, packets = 0;
        foreach (var q in nic.Queues)
        {
            poll += q.PollTicks;
            above += q.StackTicks;
            sampled += q.SampledPackets;
            packets += q.Ring.RxPackets;
            if (gro is not null) groTicks += gro.GroTicks[q.Id];
        }
        var acc = new Dictionary<string, long>(StringComparer.Ordinal);
        if (sampled == 0) return new CpuStacks([], packets);
        double Run(double ticks, long per) => RunNs(ticks, per, packets);
        void Add(string stack, double ns, bool ran) => AddLine(acc, stack, ns, ran);
        string driver = string.Join(';', StageFrames.DriverPoll);
        string toStack = driver + ";" + string.Join(';', StageFrames.GroToStack);
        Add(driver, Run(Math.Max(0, poll - above), sampled), false);
        Add(driver + ";" + string.Join(';', StageFrames.Gro), Run(groTicks, sampled), false);
        if (time.StackStages is { } clock)
        {
            double inStages = AddStages(acc, clock, packets);
            // The handler's own work outside any stage (pushing the MAC header back, the device lookup).
            Add(toStack, Math.Max(0, Run(above - groTicks, sampled) - inStages), false);
        }
        else Add(toStack + ";__netif_receive_skb_core", Run(Math.Max(0, above - groTicks), sampled), false);
        return Sorted(acc, packets);
    }

    /// <summary>The stacks of the stack's stages alone (no driver or GRO frames), for <paramref name="packets"/> packets.</summary>
    public static CpuStacks FromStages(StageClock clock, long packets)
    {
        var acc = new Dictionary<string, long>(StringComparer.Ordinal);
        AddStages(acc, clock, packets);
        return Sorted(acc, packets);
    }

    private static CpuStacks Sorted(Dictionary<string, long> acc, long packets)
        => new(acc.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value)).ToList(), packets);

    private static readonly double NsPerTick = 1e9 / System.Diagnostics.Stopwatch.Frequency;

    // Run totals: the sampled cost per packet, times every packet.
    private static double RunNs(double ticks, long per, long packets) => per > 0 ? ticks * NsPerTick / per * packets : 0;

    private static void AddLine(Dictionary<string, long> acc, string stack, double ns, bool ran)
    {
        long v = (long)Math.Round(ns);
        if (v <= 0)
        {
            if (!ran) return;
            v = 1; // a path that ran keeps its frame, however cheap
        }
        acc[stack] = acc.GetValueOrDefault(stack) + v;
    }

    private static double AddStages(Dictionary<string, long> acc, StageClock clock, long packets)
    {
        string wire = string.Join(';', StageFrames.DriverPoll) + ";" + string.Join(';', StageFrames.GroToStack);
        double inStages = 0;
        var names = new string?[clock.PathCount];
        for (int p = 1; p < clock.PathCount; p++)
        {
            if (clock.PathCharges[p] == 0) continue;
            double ns = RunNs(clock.PathTicksCorrected(p), clock.SampledPackets, packets);
            inStages += ns;
            AddLine(acc, PathName(clock, p, names, wire), ns, true);
        }
        return inStages;
    }

    // A path's frames: its parent's, then the stage's own. At the root, a wire frame sits under the driver's poll and
    // a backlog frame under process_backlog; a stage entered outside both (a timer, a reader) stands alone.
    private static string PathName(StageClock clock, int p, string?[] names, string wire)
    {
        if (names[p] is { } done) return done;
        int parent = clock.PathParent(p);
        var stage = clock.PathStage(p);
        int detail = clock.PathDetail(p);
        string own = string.Join(';', StageFrames.Of(stage, detail));
        string prefix = parent != 0 ? PathName(clock, parent, names, wire)
            : stage == Stage.Link && detail == StageFrames.LinkWire ? wire
            : stage == Stage.Link ? string.Join(';', StageFrames.Backlog)
            : "";
        return names[p] = prefix.Length == 0 ? own : prefix + ";" + own;
    }

    /// <summary>The folded text, one `frame;frame;... N` line per path.</summary>
    public string Folded()
    {
        var sb = new StringBuilder();
        foreach (var (stack, ns) in Lines) sb.Append(stack).Append(' ').Append(ns.ToString(CultureInfo.InvariantCulture)).Append('\n');
        return sb.ToString();
    }
}
