using Softnet.Nic;

namespace Softnet.Steering;

/// <summary>
/// Receive packet steering and receive flow steering settings (Documentation/networking/scaling.rst):
/// /sys/class/net/DEV/queues/rx-N/rps_cpus and rps_flow_cnt, net.core.rps_sock_flow_entries,
/// net.core.netdev_max_backlog, net.core.flow_limit_cpu_bitmap and flow_limit_table_len.
/// </summary>
public sealed record RpsOptions
{
    /// <summary>rps_cpus of every RX queue: the CPUs packets are steered to by their flow hash (empty: RPS off).</summary>
    public CpuMask? RpsCpus { get; init; }
    /// <summary>rps_flow_cnt of every RX queue: the queue's rps_dev_flow_table entries (0: RFS off on the queue).</summary>
    public int RpsFlowCnt { get; init; }
    /// <summary>net.core.rps_sock_flow_entries: the global table of the CPUs where flows' readers last ran (0: RFS off).</summary>
    public int SockFlowEntries { get; init; }
    /// <summary>net.core.netdev_max_backlog: packets a CPU's backlog takes (one more, as enqueue_to_backlog compares).</summary>
    public int NetdevMaxBacklog { get; init; } = 1000;
    /// <summary>net.core.flow_limit_cpu_bitmap: CPUs whose backlog limits single flows once it is half full.</summary>
    public CpuMask? FlowLimitCpus { get; init; }
    /// <summary>net.core.flow_limit_table_len: buckets of each CPU's flow limit table.</summary>
    public int FlowLimitTableLen { get; init; } = 4096;
    /// <summary>dev_rx_weight (weight_p × dev_weight_rx_bias): a backlog poll's quota.</summary>
    public int BacklogWeight { get; init; } = 64;

    public bool Enabled => RpsCpus is { } m && m.ToArray().Length > 0 || RpsFlowCnt > 0 && SockFlowEntries > 0;
}

/// <summary>
/// rps_sock_flow_table: per flow hash, the CPU where the flow's reader last ran (sock_rps_record_flow on recvmsg),
/// the hash's upper bits kept beside the CPU so another flow in the slot is told apart.
/// </summary>
public sealed class RpsSockFlowTable
{
    private readonly uint[] _ents;
    private readonly uint _mask;

    /// <param name="entries">rps_sock_flow_entries, rounded up to a power of two as the sysctl handler does</param>
    /// <param name="cpuMask">rps_cpu_mask: roundup_pow_of_two(nr_cpu_ids) - 1</param>
    public RpsSockFlowTable(int entries, uint cpuMask)
    {
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, entries));
        _ents = new uint[size];
        Array.Fill(_ents, RpsNoCpu);
        _mask = (uint)size - 1;
        CpuMask = cpuMask;
    }

    /// <summary>RPS_NO_CPU: an empty entry.</summary>
    public const uint RpsNoCpu = 0xffff;

    public uint CpuMask { get; }

    /// <summary>rps_record_sock_flow: the reader of the flow with <paramref name="hash"/> ran on <paramref name="cpu"/>.</summary>
    public void Record(uint hash, int cpu)
    {
        if (hash == 0) return;
        uint val = (hash & ~CpuMask) | (uint)cpu;
        ref uint e = ref _ents[hash & _mask];
        if (e != val) e = val;
    }

    internal uint Entry(uint hash) => _ents[hash & _mask];
}

/// <summary>A stack whose socket readers record their flows for RFS (rps_sock_flow_table).</summary>
public interface IRfsReader
{
    RpsSockFlowTable? RpsSockFlows { get; set; }
}
