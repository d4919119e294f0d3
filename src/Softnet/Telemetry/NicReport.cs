using System.Text.Json;
using Softnet.Napi;
using Softnet.Nic;

namespace Softnet.Telemetry;

/// <summary>The `nic` section: per-queue counters as ethtool -S shows them (and its text, `ethtool_s`), plus ring
/// occupancy, NAPI and XDP verdicts.</summary>
public sealed class NicReportSection(IReadOnlyList<VirtualNic> nics) : IReportSection
{
    public NicReportSection(VirtualNic nic) : this([nic]) { }

    public string Key => "nic";
    /// <summary>The first NIC (the only one but in a multi-worker `softnet run`, where each worker has its own).</summary>
    public VirtualNic Nic => nics[0];

    public void WriteJson(Utf8JsonWriter w)
    {
        var nic = nics[0];
        w.WriteStartObject();
        w.WriteNumber("ring_size", nic.Options.RingSize);
        w.WriteNumber("mtu", nic.Options.Mtu);
        w.WriteNumber("buffer_size", nic.Options.BufferSize);
        w.WriteString("skb", nic.Options.SkbMode == SkbBuildMode.Build ? "build" : "construct");
        w.WriteNumber("weight", nic.Options.Weight);
        w.WriteString("rx_checksumming", nic.Options.RxChecksum ? "on" : "off");
        w.WriteString("moderation", nic.Options.Moderation.ToString());
        w.WriteStartArray("queues");
        int index = 0;
        foreach (var q in nics.SelectMany(n => n.Queues))
        {
            var s = q.Ring.Stats;
            w.WriteStartObject();
            // Several NICs (one per worker) number their queues on from each other's, as one device's would be.
            w.WriteNumber("queue", index++);
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
            w.WriteNumber("rx_csum_bad", q.ChecksumErrors);
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
        w.WriteString("ethtool_s", EthtoolText(nics));
        w.WriteEndObject();
    }

    /// <summary>`ethtool -S DEV` as the driver prints it: a header line, then one indented "name: value" per counter.</summary>
    public static string EthtoolText(VirtualNic nic) => EthtoolText([nic]);

    /// <summary><see cref="EthtoolText(VirtualNic)"/> for NICs whose queues make one device's (numbered on in order).</summary>
    public static string EthtoolText(IReadOnlyList<VirtualNic> nics)
    {
        var sb = new System.Text.StringBuilder("NIC statistics:\n");
        var queues = nics.SelectMany(n => n.Queues).ToList();
        for (int i = 0; i < queues.Count; i++)
            foreach (var (name, value) in queues[i].Ring.EthtoolStats())
            {
                string shown = nics.Count == 1 ? name : name.Replace($"rx_queue_{queues[i].Id}_", $"rx_queue_{i}_", StringComparison.Ordinal);
                sb.Append("     ").Append(shown).Append(": ").Append(value).Append('\n');
            }
        // ice counts checksum failures for the whole device (a PF statistic, hence the .nic suffix), offload on or off.
        sb.Append("     rx_csum_bad.nic: ").Append(queues.Sum(q => q.ChecksumErrors)).Append('\n');
        if (queues.Count > 0 && queues[0].XdpHook is not null)
        {
            // The port's XDP verdict totals, in the rx_xdp_* names drivers print (mlx5, veth, virtio_net alike).
            long pass = 0, drop = 0, tx = 0, txErr = 0, redirect = 0, redirectErr = 0, aborted = 0;
            foreach (var q in queues)
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
public sealed class SoftnetReportSection(IReadOnlyList<NapiEngine> engines) : IReportSection
{
    public SoftnetReportSection(NapiEngine engine) : this([engine]) { }

    public string Key => "softnet";

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartArray();
        foreach (var c in engines.SelectMany(e => e.Cpus))
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
public sealed class StageTimeSection(IReadOnlyList<VirtualNic> nics, IReadOnlyList<Softnet.Pipeline.GroStage?> gros) : IReportSection
{
    /// <summary>One NIC and its GRO (several only in a multi-worker `softnet run`: one pair per worker).</summary>
    public StageTimeSection(VirtualNic nic, Softnet.Pipeline.GroStage? gro) : this([nic], [gro]) { }

    public string Key => "cpu_time";
    public VirtualNic Nic => nics[0];
    public Softnet.Pipeline.GroStage? Gro => gros[0];

    /// <summary>The stack's own stages (scenario replay): "stack" is split into them, the rest as stack_other.</summary>
    public StageClock? StackStages { get; set; }

    /// <summary>Sampled nanoseconds per packet by stage name, in path order: driver, gro, the stack's stages, total.</summary>
    public List<(string Stage, double NsPerPacket)> PerPacket()
    {
        long poll = 0, above = 0, groTicks = 0, sampled = 0;
        for (int n = 0; n < nics.Count; n++)
            foreach (var q in nics[n].Queues)
            {
                poll += q.PollTicks;
                above += q.StackTicks;
                sampled += q.SampledPackets;
                if (gros[n] is { } gro) groTicks += gro.GroTicks[q.Id];
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
        long packets = nics.Sum(n => n.Queues.Sum(q => q.Ring.RxPackets));
        w.WriteStartObject();
        w.WriteNumber("sampled_packets", nics.Sum(n => n.Queues.Sum(q => q.SampledPackets)));
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
