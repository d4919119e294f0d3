using Softnet.Napi;
using Softnet.Nic;

namespace Softnet.Steering;

/// <summary>One rps_dev_flow of an RX queue's rps_dev_flow_table.</summary>
internal struct RpsDevFlow
{
    public int Cpu;          // RPS_NO_CPU when unset
    public long LastQtail;   // the target backlog's input_queue_tail when the flow's last skb went in
}

/// <summary>
/// The per-CPU side of RPS/RFS (net/core/dev.c) for one kind of backlog entry: each engine CPU's backlog, the
/// enqueuing CPUs' flow limits, get_rps_cpu over an RX queue's map and flow table, enqueue_to_backlog with
/// netdev_max_backlog and the flow limit, and the IPIs a round queued (sent when it ends). Deterministic mode only.
/// </summary>
internal sealed class RpsBacklogs<T>
{
    private readonly NapiEngine _engine;
    private readonly RpsOptions _options;
    private readonly CpuBacklog<T>?[] _backlogs;   // by CPU id
    private readonly FlowLimit?[] _flowLimit;       // by CPU id: flow_limit_cpu_bitmap
    private readonly List<CpuBacklog<T>> _ipis = new();

    public const int NoCpu = (int)RpsSockFlowTable.RpsNoCpu;

    public RpsBacklogs(NapiEngine engine, RpsOptions options, IBacklogSink<T> sink, int napiIdBase)
    {
        if (engine.Mode != NapiMode.Deterministic)
            throw new ArgumentException("RPS/RFS is modelled in deterministic mode only (the stack above it is single-threaded)");
        _engine = engine;
        _options = options;
        var cpus = engine.Cpus;
        NrCpuIds = cpus.Max(c => c.Id) + 1;
        RpsCpuMask = System.Numerics.BitOperations.RoundUpToPowerOf2((uint)NrCpuIds) - 1;
        _backlogs = new CpuBacklog<T>?[NrCpuIds];
        _flowLimit = new FlowLimit?[NrCpuIds];
        engine.RoundEnded += SendIpis;
        int id = napiIdBase;
        foreach (var c in cpus)
        {
            _backlogs[c.Id] = new CpuBacklog<T>(c, options.NetdevMaxBacklog, options.BacklogWeight, sink, id++);
            if (options.FlowLimitCpus?.Contains(c.Id) == true) _flowLimit[c.Id] = new FlowLimit(c, options.FlowLimitTableLen);
        }
    }

    /// <summary>nr_cpu_ids of the engine (its highest CPU id + 1).</summary>
    public int NrCpuIds { get; }
    /// <summary>rps_cpu_mask: roundup_pow_of_two(nr_cpu_ids) - 1.</summary>
    public uint RpsCpuMask { get; }

    public bool Online(int cpu) => (uint)cpu < (uint)NrCpuIds && _backlogs[cpu] is not null;

    public CpuBacklog<T>? Backlog(int cpu) => (uint)cpu < (uint)_backlogs.Length ? _backlogs[cpu] : null;

    /// <summary>Some backlog holds entries.</summary>
    public bool AnyQueued
    {
        get
        {
            foreach (var b in _backlogs)
                if (b is { Length: > 0 }) return true;
            return false;
        }
    }

    /// <summary>rps_map->cpus of an rps_cpus mask: its CPUs the engine runs, ascending.</summary>
    public int[] Map(CpuMask? rpsCpus) => rpsCpus is { } m ? m.ToArray().Where(Online).Order().ToArray() : [];

    /// <summary>rps_dev_flow_table of rps_flow_cnt entries (rounded up to a power of two), every flow unset.</summary>
    public static RpsDevFlow[] FlowTable(int flowCnt)
    {
        int n = flowCnt <= 0 ? 0 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)flowCnt);
        var t = new RpsDevFlow[n];
        for (int i = 0; i < n; i++) t[i].Cpu = NoCpu;
        return t;
    }

    /// <summary>get_rps_cpu for a non-zero <paramref name="hash"/>: RFS first (the reader's CPU, moved only once the
    /// flow's last skb left its old backlog, so the flow is not reordered), then the map by reciprocal_scale of the
    /// hash; -1: no steering. <paramref name="slot"/> is the flow's rps_dev_flow entry (-1 when none is used).</summary>
    public int GetRpsCpu(uint hash, int[] map, RpsDevFlow[] flows, RpsSockFlowTable? sock, out int slot)
    {
        slot = -1;
        if (flows.Length != 0 && sock is not null)
        {
            uint ident = sock.Entry(hash);
            if (((ident ^ hash) & ~sock.CpuMask) == 0)
            {
                int nextCpu = (int)(ident & sock.CpuMask);
                int s = RfsSlot(hash, flows.Length);
                ref RpsDevFlow rflow = ref flows[s];
                int tcpu = rflow.Cpu;
                if (tcpu != nextCpu && (!Online(tcpu) || _backlogs[tcpu]!.InputQueueHead - rflow.LastQtail >= 0))
                {
                    // set_rps_cpu: the flow moves; its last tail is where the new CPU's queue is now.
                    tcpu = nextCpu;
                    if (Online(nextCpu)) rflow.LastQtail = _backlogs[nextCpu]!.InputQueueHead;
                    rflow.Cpu = nextCpu;
                }
                if (Online(tcpu))
                {
                    slot = s;
                    return tcpu;
                }
            }
        }
        if (map.Length != 0)
        {
            int tcpu = map[(int)(((ulong)hash * (uint)map.Length) >> 32)];
            if (Online(tcpu)) return tcpu;
        }
        return -1;
    }

    /// <summary>rfs_slot: the flow's entry of a table of <paramref name="len"/> (a power of two) entries, hash_32 of the
    /// hash over the table's log2 bits (the multiplicative hash's top bits, not the hash's low ones).</summary>
    internal static int RfsSlot(uint hash, int len)
    {
        int log = System.Numerics.BitOperations.Log2((uint)len);
        return log == 0 ? 0 : (int)((hash * 0x61C88647u) >> (32 - log));
    }

    /// <summary>enqueue_to_backlog onto <paramref name="cpu"/>'s queue from <paramref name="current"/>. False: refused
    /// (the input queue is over netdev_max_backlog or the enqueuing CPU's flow limit took it), counted in the target's
    /// softnet_stat dropped; the caller counts the drop reason and frees the skb.</summary>
    public bool Enqueue(T entry, uint hash, int cpu, SoftnetCpu current, RpsDevFlow[] flows, int slot)
    {
        var b = _backlogs[cpu]!;
        int max = _options.NetdevMaxBacklog;
        var limit = (uint)current.Id < (uint)_flowLimit.Length ? _flowLimit[current.Id] : null; // the enqueuing CPU's table
        int qlen = b.InputLength;
        if (qlen > max || (limit is not null && limit.Limited(hash, qlen, max)))
        {
            b.Cpu.AddDropped(1);
            return false;
        }
        b.Enqueue(entry);
        if (slot >= 0) flows[slot].LastQtail = b.InputQueueTail;
        // The input queue was empty and the backlog NAPI not scheduled (test_and_set of NAPI_STATE_SCHED): on this
        // CPU it joins the poll list now; another CPU's is raised by an IPI sent when this round ends
        // (rps_ipi_queued, then net_rps_send_ipi at the end of net_rx_action).
        if (qlen != 0 || b.IpiPending || b.Napi.State != NapiState.Idle) return true;
        if (b.Cpu == current)
        {
            b.Napi.Schedule(b.Cpu, _engine.RoundNs);
            return true;
        }
        b.IpiPending = true;
        _ipis.Add(b);
        // Outside a net_rx_action round (a reader's send in process context) the IPI goes when bottom halves are
        // enabled again, at once.
        if (!_engine.InRound) SendIpis(current, _engine.NowNs);
        return true;
    }

    /// <summary>End of a net_rx_action round: the IPIs it queued are sent; each target schedules its backlog
    /// (rps_trigger_softirq) and counts received_rps.</summary>
    private void SendIpis(SoftnetCpu cpu, long endNs)
    {
        if (_ipis.Count == 0) return;
        foreach (var b in _ipis)
        {
            b.IpiPending = false;
            b.Cpu.CountReceivedRps();
            b.Napi.Schedule(b.Cpu, endNs);
        }
        _ipis.Clear();
    }
}
