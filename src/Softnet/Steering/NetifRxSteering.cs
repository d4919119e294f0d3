using System.Diagnostics;
using Softnet.Link;
using Softnet.Napi;
using Softnet.Nic;
using Softnet.Packets;

namespace Softnet.Steering;

/// <summary>
/// /sys/class/net/DEV/queues/rx-0/{rps_cpus,rps_flow_cnt} of a scenario device (veth, vxlan, bridge: one RX queue).
/// </summary>
public sealed class RxQueueRps
{
    /// <summary>rps_cpus (null or empty: no RPS map).</summary>
    public CpuMask? RpsCpus { get; internal set; }
    /// <summary>rps_flow_cnt (0: no rps_dev_flow_table, RFS off on the queue).</summary>
    public int RpsFlowCnt { get; internal set; }

    // Resolved against the engine's CPUs when the steering is made.
    internal int[] Map = [];
    internal RpsDevFlow[] Flows = [];
}

/// <summary>
/// RPS/RFS for the scenario stack's netif_rx (net/core/dev.c netif_rx_internal, and the same get_rps_cpu that
/// netif_receive_skb_internal runs for what a bridge passes up or a VXLAN device's gro cell delivers): the receiving
/// device's rx-0 map and flow table pick a CPU from the skb's hash (skb_get_hash: the hash the skb carries, else the
/// flow dissector's), enqueue_to_backlog puts the frame in that CPU's backlog (netdev_max_backlog, the enqueuing CPU's
/// flow limit, softnet_stat dropped and flow_limit_count), and the backlog's NAPI runs in that CPU's net_rx_action
/// rounds: at once when it is the current CPU, after an IPI at the end of the current round otherwise
/// (received_rps). Its work is charged to that CPU as any NAPI's is, and a reader task there shares the CPU with it.
/// A device without settings, or a frame with no CPU chosen, stays on the stack's own queue, processed at once on the
/// current CPU as before.
/// </summary>
public sealed class NetifRxSteering : IBacklogSink<NetifRxSteering.Entry>
{
    private readonly NapiEngine _engine;
    private readonly NetStack _stack;
    private readonly RpsBacklogs<Entry> _cpus;

    /// <summary>A steered frame and the stack's clock when netif_rx queued it.</summary>
    public readonly record struct Entry(Device Dev, Skb Skb, int NfSlot, long StackNs);

    /// <param name="options">the global settings read: netdev_max_backlog, flow_limit_cpu_bitmap and table length,
    /// the backlog weight (its rps_cpus and rps_flow_cnt are the NIC's, not used here)</param>
    public NetifRxSteering(NapiEngine engine, NetStack stack, RpsOptions options)
    {
        _engine = engine;
        _stack = stack;
        _cpus = new RpsBacklogs<Entry>(engine, options, this, 2_000_000);
        foreach (var ns in stack.Namespaces)
            foreach (var d in ns.Devices)
                if (d.RpsRx is { } q)
                {
                    q.Map = _cpus.Map(q.RpsCpus);
                    q.Flows = RpsBacklogs<Entry>.FlowTable(q.RpsFlowCnt);
                }
        // rps_sock_flow_table is global: one table, shared with the NIC's steering when it has one.
        if (options.SockFlowEntries > 0 && stack.RpsSockFlows is null)
            stack.RpsSockFlows = new RpsSockFlowTable(options.SockFlowEntries, _cpus.RpsCpuMask);
    }

    /// <summary>Frames steered to a backlog, and frames dropped there (backlog full or flow limit).</summary>
    public long Steered { get; private set; }
    public long BacklogDrops { get; private set; }

    /// <summary>Frames waiting in backlogs (no conntrack entry may go back to the slab while one holds a reference).</summary>
    public bool AnyQueued => _cpus.AnyQueued;

    /// <summary>The CPU the stack's work runs on now (null outside the engine's rounds and tasks).</summary>
    public SoftnetCpu? Current => _engine.Current;

    /// <summary>A frame from the NIC (the device's own receive) is steered: the NIC's poll counted it in its CPU's
    /// processed, but the kernel counts processed in __netif_receive_skb_core, which for a steered frame runs only on
    /// the target CPU (and the kernel harness's injected device is a veth, whose transmit is no NAPI work).</summary>
    internal bool TrySteerWire(Device dev, Skb skb)
    {
        if (!TrySteer(dev, skb, -1)) return false;
        _engine.Current?.AddProcessed(-1);
        return true;
    }

    /// <summary>A reader that read at once (no reader tasks) runs on its own CPU: what its read sends (an ACK through a
    /// veth) is netif_rx'd there, as recvmsg's tcp_cleanup_rbuf does on the reader's CPU, and a frame of the queue goes
    /// up on the CPU that queued it (veth_xmit → netif_rx → enqueue_to_backlog on smp_processor_id()). Returns the CPU
    /// to go back to. The replay thread's time until <see cref="Return"/> is that CPU's, not the round's it ran inside
    /// (<see cref="SoftnetCpu.HostNs"/>): the ACK's whole way back is the reader's CPU's work, as in the kernel.</summary>
    internal SoftnetCpu? RunOn(int cpu)
    {
        var prev = _engine.Current;
        if (prev is null || cpu < 0 || cpu == prev.Id) return prev;
        foreach (var c in _engine.Cpus)
            if (c.Id == cpu)
            {
                _engine.Current = c;
                if (_switchDepth == _switchedAt.Length) Array.Resize(ref _switchedAt, _switchedAt.Length * 2);
                _switchedAt[_switchDepth++] = Stopwatch.GetTimestamp();
                break;
            }
        return prev;
    }

    internal void Return(SoftnetCpu? prev)
    {
        if (_engine.Current is { } on && on != prev && prev is not null && _switchDepth > 0)
        {
            // Moved from the CPU whose round (or task) this runs in, which counts the whole of it; nested switches
            // move their own part on from the CPU they switched from.
            long ns = Stopwatch.GetElapsedTime(_switchedAt[--_switchDepth]).Ticks * 100;
            on.HostNs += ns;
            prev.HostNs -= ns;
        }
        _engine.Current = prev;
    }

    /// <summary>When each open <see cref="RunOn"/> switch began (they nest: a reader's ACK draining the backlog).</summary>
    private long[] _switchedAt = new long[8];
    private int _switchDepth;

    /// <summary>netif_rx_internal's RPS branch: false when the frame stays on the stack's own queue.</summary>
    internal bool TrySteer(Device dev, Skb skb, int nfSlot)
    {
        if (dev.RpsRx is not { } q || _engine.Current is not { } current) return false;
        var flows = q.Flows;
        if (flows.Length == 0 && q.Map.Length == 0) return false;
        uint hash = skb.Hash;
        if (hash == 0)
        {
            // skb_get_hash → __skb_get_hash: the flow dissector over the frame, kept in the skb (a TCP socket saves it
            // as its rxhash, which RFS records).
            hash = Gro.FlowHash.ComputeFrame(skb.LinearData);
            if (hash == 0) return false;
            skb.SetHash(hash, PktHashType.L4);
        }
        int cpu = _cpus.GetRpsCpu(hash, q.Map, flows, _stack.RpsSockFlows, out int slot);
        if (cpu < 0) return false;
        if (!_cpus.Enqueue(new Entry(dev, skb, nfSlot, _stack.Now), hash, cpu, current, flows, slot))
        {
            // enqueue_to_backlog's drop: the device's rx_dropped, SKB_DROP_REASON_CPU_BACKLOG.
            BacklogDrops++;
            dev.RxDropped++;
            _stack.DropQueued(dev, skb, nfSlot, DropReason.CpuBacklog);
            return true;
        }
        Steered++;
        return true;
    }

    /// <summary>process_backlog on the CPU whose round polls it: the frame goes up the stack there. The stack's clock is
    /// the frame's, as for a frame the NIC hands up (the scenario stack runs on the frames' arrival times, not on when
    /// a poll got to them).</summary>
    void IBacklogSink<Entry>.Process(Entry e) => _stack.ReceiveQueued(e.Dev, e.Skb, e.NfSlot, e.StackNs);

}
