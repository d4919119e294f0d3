using Softnet.Napi;

namespace Softnet.Steering;

/// <summary>What a backlog hands its entries to when its NAPI polls them (__netif_receive_skb on that CPU).</summary>
internal interface IBacklogSink<T>
{
    void Process(T entry);
}

/// <summary>
/// One CPU's input_pkt_queue and its backlog NAPI (softnet_data.backlog, process_backlog): skbs steered here wait in
/// a bounded queue; the NAPI, scheduled on this CPU when the queue goes from empty to not empty, takes up to its quota
/// per poll and hands each to the stack.
/// </summary>
internal sealed class CpuBacklog<T> : INapiPoller
{
    private readonly T[] _ring;
    private readonly IBacklogSink<T> _sink;
    private int _head, _process, _input; // the ring holds process_queue, then input_pkt_queue

    public CpuBacklog(SoftnetCpu cpu, int maxBacklog, int weight, IBacklogSink<T> sink, int id)
    {
        Cpu = cpu;
        // enqueue_to_backlog takes a packet while input_pkt_queue holds at most netdev_max_backlog, and
        // process_backlog moves the whole input queue to its process queue: two full queues at most.
        _ring = new T[2 * (maxBacklog + 1)];
        _sink = sink;
        Napi = new NapiStruct(this, weight, id);
    }

    public SoftnetCpu Cpu { get; }
    public NapiStruct Napi { get; }
    /// <summary>input_queue_head: skbs taken off the queues so far (RFS compares a flow's last tail with it).</summary>
    public long InputQueueHead { get; private set; }
    /// <summary>input_queue_tail: skbs queued so far.</summary>
    public long InputQueueTail { get; private set; }
    /// <summary>skb_queue_len(&amp;sd->input_pkt_queue): what enqueue_to_backlog and the flow limit look at.</summary>
    public int InputLength => _input;
    /// <summary>Both queues.</summary>
    public int Length => _input + _process;
    public bool HasWork => Length > 0;
    /// <summary>An IPI to schedule this backlog is queued on another CPU (its NAPI is as good as scheduled).</summary>
    internal bool IpiPending;

    internal void Enqueue(T entry)
    {
        _ring[(_head + _process + _input) % _ring.Length] = entry;
        _input++;
        InputQueueTail++;
    }

    /// <summary>process_backlog: the process queue first; when it is empty the input queue is spliced onto it,
    /// until the quota is used or both are empty.</summary>
    public int Poll(int budget)
    {
        int work = 0;
        while (work < budget)
        {
            if (_process == 0)
            {
                if (_input == 0) break;
                _process = _input;
                _input = 0;
            }
            var entry = _ring[_head];
            _ring[_head] = default!;
            _head = (_head + 1) % _ring.Length;
            _process--;
            InputQueueHead++;
            _sink.Process(entry);
            work++;
        }
        return work;
    }
}

/// <summary>
/// One CPU's sd_flow_limit (net.core.flow_limit_cpu_bitmap): the enqueuing CPU's history of the last 128 packets'
/// flow buckets. skb_flow_limit consults the CPU that runs enqueue_to_backlog, whatever backlog the packet goes to.
/// </summary>
internal sealed class FlowLimit(SoftnetCpu cpu, int tableLen)
{
    private const int History = 128;
    private readonly ushort[] _history = new ushort[History];
    private readonly int[] _buckets = new int[System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, tableLen))];
    private int _head;

    /// <summary>skb_flow_limit: with the target backlog at least half full, a flow holding more than half of the
    /// history is refused (counted in this CPU's flow_limit_count).</summary>
    public bool Limited(uint hash, int qlen, int maxBacklog)
    {
        if (qlen < maxBacklog >> 1) return false;
        int newFlow = (int)(hash & (uint)(_buckets.Length - 1));
        int oldFlow = _history[_head];
        _history[_head] = (ushort)newFlow;
        _head = (_head + 1) & (History - 1);
        if (_buckets[oldFlow] > 0) _buckets[oldFlow]--;
        if (++_buckets[newFlow] > History >> 1)
        {
            cpu.CountFlowLimit();
            return true;
        }
        return false;
    }
}
