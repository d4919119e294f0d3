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
public sealed class RpsStage : IRxHandler, IBacklogSink<(Skb Skb, RxQueue Queue)>
{
    private readonly IRxHandler _next;
    private readonly int[] _map;                    // rps_map->cpus: the online CPUs of rps_cpus, ascending
    private readonly RpsDevFlow[][] _flows;         // per RX queue: rps_dev_flow_table (empty: RFS off)
    private readonly RpsBacklogs<(Skb Skb, RxQueue Queue)> _cpus;

    public RpsStage(NapiEngine engine, int queues, RpsOptions options, IRxHandler next, RpsSockFlowTable? sockFlows = null)
    {
        _next = next;
        _cpus = new RpsBacklogs<(Skb, RxQueue)>(engine, options, this, 1_000_000); // backlog NAPI ids, apart from the RX queues'
        _map = _cpus.Map(options.RpsCpus);
        _flows = new RpsDevFlow[queues][];
        for (int q = 0; q < queues; q++) _flows[q] = RpsBacklogs<(Skb, RxQueue)>.FlowTable(options.RpsFlowCnt);
        SockFlows = sockFlows ?? (options.SockFlowEntries > 0 ? new RpsSockFlowTable(options.SockFlowEntries, _cpus.RpsCpuMask) : null);
    }

    /// <summary>The global rps_sock_flow_table readers record into (null: RFS off).</summary>
    public RpsSockFlowTable? SockFlows { get; }

    /// <summary>Skbs steered to a backlog, and skbs dropped there (backlog full or flow limit).</summary>
    public long Steered { get; private set; }
    public long BacklogDrops { get; private set; }

    /// <summary>The backlog of CPU <paramref name="cpu"/> (null for a CPU the engine does not run).</summary>
    public int BacklogLength(int cpu) => _cpus.Backlog(cpu)?.Length ?? 0;

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
        // softnet_stat processed counts __netif_receive_skb_core runs, which for a steered skb happen only on the
        // target CPU: the poll's work counted it on the NIC's CPU.
        queue.Vector.TargetCpu.AddProcessed(-1);
        if (!_cpus.Enqueue((skb, queue), skb.Hash, cpu, queue.Vector.TargetCpu, _flows[queue.Id], slot))
        {
            // sd->dropped on the target (counted there), the device's rx_dropped, SKB_DROP_REASON_CPU_BACKLOG.
            BacklogDrops++;
            queue.Drops.Add(DropReason.CpuBacklog);
            skb.Free();
            return;
        }
        Steered++;
    }

    void IBacklogSink<(Skb Skb, RxQueue Queue)>.Process((Skb Skb, RxQueue Queue) e) => _next.Receive(e.Skb, e.Queue);

    public void PollEnd(RxQueue queue, int workDone, int budget) => _next.PollEnd(queue, workDone, budget);

    public void Lookahead(ReadOnlySpan<byte> frame, int ifindex) => _next.Lookahead(frame, ifindex);

    /// <summary>get_rps_cpu for RX queue <paramref name="queue"/>; -1: no steering. <paramref name="slot"/> is the
    /// flow's rps_dev_flow entry (-1 when none is used).</summary>
    internal int GetRpsCpu(Skb skb, int queue, out int slot)
    {
        slot = -1;
        var flows = _flows[queue];
        if (flows.Length == 0 && _map.Length == 0) return -1;
        uint hash = Hash(skb);
        if (hash == 0) return -1;
        return _cpus.GetRpsCpu(hash, _map, flows, SockFlows, out slot);
    }
}
