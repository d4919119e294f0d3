using System.Text.Json;
using Softnet.Napi;
using Softnet.Nic;

namespace Softnet.Telemetry;

/// <summary>The `nic` section: per-queue counters as ethtool -S shows them (and its text, `ethtool_s`), plus ring
/// occupancy, NAPI and XDP verdicts.</summary>
public sealed class NicReportSection(VirtualNic nic) : IReportSection
{
    public string Key => "nic";
    public VirtualNic Nic => nic;

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("ring_size", nic.Options.RingSize);
        w.WriteNumber("mtu", nic.Options.Mtu);
        w.WriteNumber("buffer_size", nic.Options.BufferSize);
        w.WriteString("skb", nic.Options.SkbMode == SkbBuildMode.Build ? "build" : "construct");
        w.WriteNumber("weight", nic.Options.Weight);
        w.WriteString("moderation", nic.Options.Moderation.ToString());
        w.WriteStartArray("queues");
        foreach (var q in nic.Queues)
        {
            var s = q.Ring.Stats;
            w.WriteStartObject();
            w.WriteNumber("queue", q.Id);
            w.WriteNumber("offered", q.Offered);
            w.WriteNumber("rx_packets", s.RxPackets);
            w.WriteNumber("rx_bytes", s.RxBytes);
            w.WriteNumber("rx_missed", s.RxMissed);
            w.WriteNumber("rx_oversize", s.RxOversize);
            w.WriteNumber("rx_length_errors", s.RxLengthErrors);
            w.WriteNumber("non_eop_descs", s.NonEopDescs);
            w.WriteNumber("rx_gro_skbs", s.RxGroSkbs);
            w.WriteNumber("rx_gro_packets", s.RxGroPackets);
            w.WriteNumber("alloc_failed", s.AllocFailed + q.SkbAllocFailed);
            w.WriteNumber("occupancy_max", q.MaxOccupancy);
            w.WriteNumber("occupancy_mean", q.OccupancySamples > 0 ? Math.Round((double)q.OccupancySum / q.OccupancySamples, 2) : 0);
            w.WriteNumber("interrupts", q.Vector.InterruptsFired);
            w.WriteNumber("irq_cpu", q.Vector.TargetCpu.Id);
            w.WriteNumber("napi_polls", q.Vector.Napi.Polls);
            // Polls that used the whole weight (stayed on the poll list), and completions turned into a re-schedule
            // because an interrupt came during the poll (NAPI_STATE_MISSED).
            w.WriteNumber("napi_full_polls", q.Vector.Napi.FullPolls);
            w.WriteNumber("napi_missed", q.Vector.Napi.MissedReschedules);
            w.WriteStartObject("xdp");
            w.WriteNumber("pass", q.Xdp.Pass);
            w.WriteNumber("drop", q.Xdp.Drop);
            w.WriteNumber("tx", q.Xdp.Tx);
            w.WriteNumber("redirect", q.Xdp.Redirect);
            w.WriteNumber("aborted", q.Xdp.Aborted + q.Xdp.Invalid);
            w.WriteNumber("tx_errors", q.Xdp.TxErrors);
            w.WriteNumber("redirect_errors", q.Xdp.RedirectErrors);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("ethtool_s", EthtoolText(nic));
        w.WriteEndObject();
    }

    /// <summary>`ethtool -S DEV` as the driver prints it: a header line, then one indented "name: value" per counter.</summary>
    public static string EthtoolText(VirtualNic nic)
    {
        var sb = new System.Text.StringBuilder("NIC statistics:\n");
        foreach (var q in nic.Queues)
            foreach (var (name, value) in q.Ring.EthtoolStats())
                sb.Append("     ").Append(name).Append(": ").Append(value).Append('\n');
        if (nic.Queues.Count > 0 && nic.Queues[0].XdpHook is not null)
        {
            // The port's XDP verdict totals, in the rx_xdp_* names drivers print (mlx5, veth, virtio_net alike).
            long pass = 0, drop = 0, tx = 0, txErr = 0, redirect = 0, redirectErr = 0, aborted = 0;
            foreach (var q in nic.Queues)
            {
                pass += q.Xdp.Pass; drop += q.Xdp.Drop; tx += q.Xdp.Tx; txErr += q.Xdp.TxErrors;
                redirect += q.Xdp.Redirect; redirectErr += q.Xdp.RedirectErrors; aborted += q.Xdp.Aborted + q.Xdp.Invalid;
            }
            foreach (var (name, value) in new[] { ("rx_xdp_pass", pass), ("rx_xdp_drop", drop), ("rx_xdp_tx", tx), ("rx_xdp_tx_errors", txErr),
                         ("rx_xdp_redirect", redirect), ("rx_xdp_redirect_fail", redirectErr), ("rx_xdp_aborted", aborted) })
                sb.Append("     ").Append(name).Append(": ").Append(value).Append('\n');
        }
        return sb.ToString();
    }
}

/// <summary>The `softnet` section: one entry per CPU, the columns of /proc/net/softnet_stat and a little more.</summary>
public sealed class SoftnetReportSection(NapiEngine engine) : IReportSection
{
    public string Key => "softnet";

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartArray();
        foreach (var c in engine.Cpus)
        {
            w.WriteStartObject();
            w.WriteNumber("cpu", c.Id);
            w.WriteNumber("processed", c.Processed);
            w.WriteNumber("dropped", c.Dropped);
            w.WriteNumber("time_squeeze", c.TimeSqueeze);
            w.WriteNumber("received_rps", c.ReceivedRps);
            w.WriteNumber("flow_limit_count", c.FlowLimitCount);
            w.WriteNumber("rounds", c.Rounds);
            w.WriteNumber("ksoftirqd_rounds", c.KsoftirqdRounds);
            w.WriteNumber("ksoftirqd_wakeups", c.KsoftirqdWakeups);
            w.WriteNumber("idle_wakeups", c.IdleWakeups);
            w.WriteNumber("polls", c.Polls);
            w.WriteNumber("task_cpu_ns", c.TaskCpuNs);
            w.WriteNumber("task_preempted_ns", c.TaskPreemptedNs);
            w.WriteNumber("tasks_run", c.TasksRun);
            w.WriteBoolean("pinned", c.Pinned);
            w.WriteString("pin_status", c.PinStatus);
            w.WriteString("softnet_stat", c.FormatSoftnetStat());
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}

/// <summary>
/// The `cpu_time` section: where the NAPI CPUs spend their time per packet, per stage (driver: ring poll, XDP,
/// skb build; gro; stack: everything above GRO). One poll in <see cref="RxQueue.TimingSampleEvery"/> is timed
/// with the timestamp counter; seconds are the sampled cost per packet times all packets.
/// </summary>
public sealed class StageTimeSection(VirtualNic nic, Softnet.Pipeline.GroStage? gro) : IReportSection
{
    public string Key => "cpu_time";
    public VirtualNic Nic => nic;
    public Softnet.Pipeline.GroStage? Gro => gro;

    /// <summary>The stack's own stages (scenario replay): "stack" is split into them, the rest as stack_other.</summary>
    public StageClock? StackStages { get; set; }

    /// <summary>Sampled nanoseconds per packet by stage name, in path order: driver, gro, the stack's stages, total.</summary>
    public List<(string Stage, double NsPerPacket)> PerPacket()
    {
        long poll = 0, above = 0, groTicks = 0, sampled = 0;
        foreach (var q in nic.Queues)
        {
            poll += q.PollTicks;
            above += q.StackTicks;
            sampled += q.SampledPackets;
            if (gro is not null) groTicks += gro.GroTicks[q.Id];
        }
        double ns = 1e9 / System.Diagnostics.Stopwatch.Frequency;
        double Per(double ticks) => sampled > 0 ? ticks * ns / sampled : 0;
        var list = new List<(string, double)> { ("driver", Per(poll - above)), ("gro", Per(groTicks)) };
        if (StackStages is { } st)
        {
            // The stages are sampled on their own packets (a subset of the NIC's): per packet from their own count.
            double inStages = 0;
            for (int i = 0; i < (int)Softnet.Telemetry.Stage.Count; i++)
            {
                double v = st.SampledPackets > 0 ? st[(Softnet.Telemetry.Stage)i] * ns / st.SampledPackets : 0;
                list.Add((StageClock.Name((Softnet.Telemetry.Stage)i), v));
                inStages += v;
            }
            list.Add(("stack_other", Math.Max(0, Per(above - groTicks) - inStages)));
        }
        else list.Add(("stack", Per(above - groTicks)));
        list.Add(("total", Per(poll)));
        return list;
    }

    public void WriteJson(Utf8JsonWriter w)
    {
        long packets = nic.Queues.Sum(q => q.Ring.RxPackets);
        w.WriteStartObject();
        w.WriteNumber("sampled_packets", nic.Queues.Sum(q => q.SampledPackets));
        if (StackStages is { } st) w.WriteNumber("stage_sampled_packets", st.SampledPackets);
        var list = PerPacket();
        foreach (var (stage, ns) in list)
        {
            if (stage == "total" && StackStages is not null)
                WriteStage(w, "stack", list.Where(x => x.Stage is not ("driver" or "gro" or "total")).Sum(x => x.NsPerPacket), packets);
            WriteStage(w, stage, ns, packets);
        }
        w.WriteEndObject();
    }

    private static void WriteStage(Utf8JsonWriter w, string name, double perPacket, long packets)
    {
        w.WriteStartObject(name);
        w.WriteNumber("ns_per_packet", Math.Round(perPacket, 1));
        w.WriteNumber("seconds", Math.Round(perPacket * packets / 1e9, 6));
        w.WriteEndObject();
    }
}
