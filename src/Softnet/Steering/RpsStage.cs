using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;

namespace Softnet.Steering;

/// <summary>
/// RPS and RFS on the receive path (net/core/dev.c): between GRO and the stack, as netif_receive_skb_list_internal
/// runs them, each skb's CPU is chosen by get_rps_cpu from its flow hash (the NIC's RSS hash) and the RX queue's
/// rps_cpus map, or by RFS from the CPU where the flow's reader last ran; the skb then waits in that CPU's backlog
/// (enqueue_to_backlog: netdev_max_backlog and the flow limit, counted in softnet_stat's dropped and
/// flow_limit_count), whose NAPI is scheduled there (an IPI from another CPU: received_rps). With no map and no
/// flow table, or a hash of 0, the skb goes up at once on the polling CPU.
/// Deterministic mode only: the CPUs' rounds interleave on the virtual clock and the stack stays single-threaded.
/// </summary>
public sealed class RpsStage : IRxHandler
{
    private readonly NapiEngine _engine;
    private readonly IRxHandler _next;
    private readonly RpsOptions _options;
    private readonly int[] _map;                    // rps_map->cpus: the online CPUs of rps_cpus, ascending
    private readonly DevFlow[][] _flows;            // per RX queue: rps_dev_flow_table (empty: RFS off)
    private readonly CpuBacklog?[] _backlogs;       // by CPU id
    private readonly FlowLimit?[] _flowLimit;       // by CPU id: flow_limit_cpu_bitmap
    private readonly int _nrCpuIds;

    private struct DevFlow
    {
        public int Cpu;          // RPS_NO_CPU when unset
        public long LastQtail;   // the target backlog's input_queue_tail when the flow's last skb went in
    }

    public RpsStage(NapiEngine engine, int queues, RpsOptions options, IRxHandler next, RpsSockFlowTable? sockFlows = null)
    {
        if (engine.Mode != NapiMode.Deterministic)
            throw new ArgumentException("RPS/RFS is modelled in deterministic mode only (the stack above it is single-threaded)");
        _engine = engine;
        _next = next;
        _options = options;
        var cpus = engine.Cpus;
        _nrCpuIds = cpus.Max(c => c.Id) + 1;
        _map = options.RpsCpus is { } m ? m.ToArray().Where(id => cpus.Any(c => c.Id == id)).Order().ToArray() : [];
        _flows = new DevFlow[queues][];
        for (int q = 0; q < queues; q++)
        {
            int n = options.RpsFlowCnt <= 0 ? 0 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)options.RpsFlowCnt);
            _flows[q] = new DevFlow[n];
            for (int i = 0; i < n; i++) _flows[q][i].Cpu = NoCpu;
        }
        uint cpuMask = System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_nrCpuIds) - 1;
        SockFlows = sockFlows ?? (options.SockFlowEntries > 0 ? new RpsSockFlowTable(options.SockFlowEntries, cpuMask) : null);
        _backlogs = new CpuBacklog?[_nrCpuIds];
        _flowLimit = new FlowLimit?[_nrCpuIds];
        engine.RoundEnded += SendIpis;
        int id = 1_000_000; // backlog NAPI ids, apart from the RX queues'
        foreach (var c in cpus)
        {
            _backlogs[c.Id] = new CpuBacklog(c, options.NetdevMaxBacklog, options.BacklogWeight, next, id++);
            if (options.FlowLimitCpus?.Contains(c.Id) == true) _flowLimit[c.Id] = new FlowLimit(c, options.FlowLimitTableLen);
        }
    }

    private const int NoCpu = (int)RpsSockFlowTable.RpsNoCpu;

    /// <summary>The global rps_sock_flow_table readers record into (null: RFS off).</summary>
    public RpsSockFlowTable? SockFlows { get; }

    /// <summary>Skbs steered to a backlog, and skbs dropped there (backlog full or flow limit).</summary>
    public long Steered { get; private set; }
    public long BacklogDrops { get; private set; }

    /// <summary>The backlog of CPU <paramref name="cpu"/> (null for a CPU the engine does not run).</summary>
    public int BacklogLength(int cpu) => (uint)cpu < (uint)_backlogs.Length ? _backlogs[cpu]?.Length ?? 0 : 0;

    // skb_get_hash: with no hash from the NIC the flow dissector computes one (and keeps it in the skb).
    private static uint Hash(Skb skb)
    {
        if (skb.Hash != 0) return skb.Hash;
        uint h = Gro.FlowHash.Compute(skb);
        if (h != 0) skb.SetHash(h, PktHashType.L4);
        return h;
    }

    public void Receive(Skb skb, RxQueue queue)
    {
        int cpu = GetRpsCpu(skb, queue.Id, out int slot);
        if (cpu < 0)
        {
            _next.Receive(skb, queue);
            return;
        }
        EnqueueToBacklog(skb, queue, cpu, slot);
    }

    public void PollEnd(RxQueue queue, int workDone, int budget) => _next.PollEnd(queue, workDone, budget);

    public void Lookahead(ReadOnlySpan<byte> frame, int ifindex) => _next.Lookahead(frame, ifindex);

    /// <summary>get_rps_cpu: RFS first (the reader's CPU, moved only once the flow's last skb left its old
    /// backlog, so the flow is not reordered), then the rps_cpus map by reciprocal_scale of the hash; -1: no
    /// steering. <paramref name="slot"/> is the flow's rps_dev_flow entry (-1 when none is used).</summary>
    internal int GetRpsCpu(Skb skb, int queue, out int slot)
    {
        slot = -1;
        var flows = _flows[queue];
        if (flows.Length == 0 && _map.Length == 0) return -1;
        uint hash = Hash(skb);
        if (hash == 0) return -1;
        if (flows.Length != 0 && SockFlows is { } sock)
        {
            uint ident = sock.Entry(hash);
            if (((ident ^ hash) & ~sock.CpuMask) == 0)
            {
                int nextCpu = (int)(ident & sock.CpuMask);
                int s = (int)(hash & (uint)(flows.Length - 1));
                ref DevFlow rflow = ref flows[s];
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
        if (_map.Length != 0)
        {
            int tcpu = _map[(int)(((ulong)hash * (uint)_map.Length) >> 32)];
            if (Online(tcpu)) return tcpu;
        }
        return -1;
    }

    private bool Online(int cpu) => (uint)cpu < (uint)_nrCpuIds && _backlogs[cpu] is not null;

    /// <summary>enqueue_to_backlog onto <paramref name="cpu"/>'s queue.</summary>
    private void EnqueueToBacklog(Skb skb, RxQueue queue, int cpu, int slot)
    {
        var b = _backlogs[cpu]!;
        int max = _options.NetdevMaxBacklog;
        var current = queue.Vector.TargetCpu;
        var limit = _flowLimit[current.Id]; // the enqueuing CPU's table
        int qlen = b.InputLength;
        if (qlen > max || (limit is not null && limit.Limited(skb.Hash, qlen, max)))
        {
            // sd->dropped on the target, the device's rx_dropped, SKB_DROP_REASON_CPU_BACKLOG.
            b.Cpu.AddDropped(1);
            BacklogDrops++;
            queue.Drops.Add(DropReason.CpuBacklog);
            skb.Free();
            return;
        }
        b.Enqueue(skb, queue);
        if (slot >= 0) _flows[queue.Id][slot].LastQtail = b.InputQueueTail;
        Steered++;
        // The input queue was empty and the backlog NAPI not scheduled (test_and_set of NAPI_STATE_SCHED): on this
        // CPU it joins the poll list now; another CPU's is raised by an IPI sent when this round ends
        // (rps_ipi_queued, then net_rps_send_ipi at the end of net_rx_action).
        if (qlen != 0 || b.IpiPending || b.Napi.State != NapiState.Idle) return;
        if (b.Cpu == current)
        {
            b.Napi.Schedule(b.Cpu, _engine.RoundNs);
            return;
        }
        b.IpiPending = true;
        _ipis.Add(b);
    }

    private readonly List<CpuBacklog> _ipis = new();

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
