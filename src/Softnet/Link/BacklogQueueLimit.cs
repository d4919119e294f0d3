namespace Softnet.Link;

/// <summary>
/// netdev_max_backlog over a backlog's two queues (enqueue_to_backlog, process_backlog): netif_rx counts what waits in
/// input_pkt_queue, which process_backlog splices onto its process queue whenever that runs empty; frames on the
/// process queue no longer count. One per backlog.
/// </summary>
internal struct BacklogQueueLimit
{
    private int _input, _process;

    /// <summary>enqueue_to_backlog: true when the frame may join input_pkt_queue (qlen at most
    /// <paramref name="max"/>), and counts it.</summary>
    public bool Admit(int max)
    {
        if (_input > max) return false;
        _input++;
        return true;
    }

    /// <summary>process_backlog takes the next frame of <paramref name="waiting"/> (both queues together): false when
    /// there is none.</summary>
    public bool Next(int waiting)
    {
        if (_process == 0)
        {
            _process = waiting;
            _input = 0;
            if (_process == 0) return false;
        }
        _process--;
        return true;
    }
}
