using System.Text;
using Softnet.Link;

namespace Softnet.Transport;

/// <summary>One connection a listener's reader accepted: its peer, the bytes read, the start of their SHA-256, and
/// how the stream ended (fin: read returned 0; rst: ECONNRESET; open: neither when the replay ended).</summary>
public sealed record ConnectionRecord(SockAddr Peer, long Bytes, ulong Sha, string End);

/// <summary>
/// A listening TCP socket (`tcp listen ADDR:PORT` in a sockets file) and its reader, which accepts every connection
/// (the accept queue, sk_ack_backlog against the listen backlog) and reads each until EOF or reset, closing on EOF.
/// </summary>
public sealed class TcpListenSock : Sock
{
    /// <summary>The backlog a reader's listen() passes (Python's default, min(SOMAXCONN, 128)).</summary>
    public const int DefaultBacklog = 128;

    private readonly Queue<TcpSock> _acceptQueue = new();
    private readonly List<TcpSock> _accepted = new();

    public TcpListenSock(Namespace ns, string line, SockAddr local, int? rcvbuf, int cpu) : base(ns, line, local, rcvbuf, cpu) { }

    /// <summary>net.ipv4.tcp_rmem[1]: a TCP socket's initial sk_rcvbuf unless SO_RCVBUF set it.</summary>
    protected override int DefaultRcvBuf => Namespace.TcpRmemDefault;

    /// <summary>sk_max_ack_backlog.</summary>
    public int Backlog { get; init; } = DefaultBacklog;

    /// <summary>reqsk_queue_len: requests (SYN_RECV) waiting for their third ACK.</summary>
    public int RequestCount { get; private set; }
    /// <summary>reqsk_queue_len_young: requests whose SYN-ACK has not timed out yet.</summary>
    public int YoungCount { get; internal set; }

    /// <summary>fastopenq.qlen: Fast Open children whose handshake has not completed (tcp_fastopen_create_child adds
    /// one, reqsk_fastopen_remove takes it off when the third ACK comes or the child dies). The queue's limit is the
    /// backlog (fastopen_queue_tune); the 60 s a reset child's slot is held (rskq_rst_head) is not modelled.</summary>
    internal int FastOpenQlen;

    internal void RequestAdded(TcpSock req)
    {
        req.InRequestQueue = true;
        RequestCount++;
        YoungCount++;
    }

    /// <summary>The request left the queue (established, reset or expired).</summary>
    internal void RequestDone(TcpSock req)
    {
        if (!req.InRequestQueue) return;
        req.InRequestQueue = false;
        RequestCount--;
        if (req.Young) YoungCount--;
    }

    private TcpSock? _cookieScratch;

    /// <summary>The request a cookie SYN-ACK is built from (reused: a flood of cookies allocates nothing).</summary>
    internal TcpSock CookieScratch(uint local, ushort lport, uint remote, ushort rport)
    {
        if (_cookieScratch == null) return _cookieScratch = new TcpSock(this, local, lport, remote, rport);
        _cookieScratch.RetargetCookie(local, lport, remote, rport);
        return _cookieScratch;
    }

    private TcpSock? _cookieScratch6;

    /// <summary>The IPv6 request a cookie SYN-ACK is built from (reused as the IPv4 one).</summary>
    internal TcpSock CookieScratch6(UInt128 local, ushort lport, UInt128 remote, ushort rport, Device? outDev)
    {
        if (_cookieScratch6 == null) return _cookieScratch6 = new TcpSock(this, local, lport, remote, rport, outDev);
        _cookieScratch6.RetargetCookie6(local, lport, remote, rport, outDev);
        return _cookieScratch6;
    }

    /// <summary>When the listener last answered a SYN with a cookie (tcp_synq_overflow's stamp).</summary>
    internal long LastCookieNs = long.MinValue;

    /// <summary>!tcp_synq_no_recent_overflow: ACKs are checked for cookies within TCP_SYNCOOKIE_VALID of the last one.</summary>
    internal bool CookiesRecent(long nowNs) => LastCookieNs != long.MinValue && nowNs - LastCookieNs <= TcpSyncookies.ValidNs;

    /// <summary>sk_acceptq_is_full: the queue admits one more than the backlog.</summary>
    internal bool AcceptQueueFull => _acceptQueue.Count > Backlog;

    /// <summary>Connections in accept order.</summary>
    public IReadOnlyList<TcpSock> Accepted => _accepted;

    /// <summary>inet_csk_reqsk_queue_add: the child waits for accept().</summary>
    internal void QueueForAccept(NetStack stack, TcpSock child)
    {
        _acceptQueue.Enqueue(child);
        stack.WakeReader(this);
    }

    /// <summary>accept() for everything queued; each connection's reader then reads what it already has.</summary>
    public override void Read(NetStack stack)
    {
        while (_acceptQueue.TryDequeue(out var c))
        {
            c.Accepted = true;
            _accepted.Add(c);
            c.Read(stack);
        }
    }

    /// <summary>Connections accepted, and the bytes read from all of them between the first and the last read.</summary>
    public override ReadStats Stats
    {
        get
        {
            long bytes = 0, first = long.MaxValue, last = 0;
            foreach (var c in _accepted)
            {
                var s = c.Stats;
                if (s.Bytes == 0) continue;
                bytes += s.Bytes;
                first = Math.Min(first, s.FirstNs);
                last = Math.Max(last, s.LastNs);
            }
            return new ReadStats(_accepted.Count, bytes, bytes == 0 ? 0 : first, last);
        }
    }

    public override WakeStats Wakes
    {
        get
        {
            var w = base.Wakes;
            foreach (var c in _accepted) w += c.Wakes;
            return w;
        }
    }

    public override void WriteDump(StringBuilder sb)
    {
        sb.Append(Line).Append('\n');
        foreach (var c in _accepted)
        {
            if (c.Record == null || c.Record.End == "open") c.UpdateRecord();
            var r = c.Record!;
            sb.Append("  connection ").Append(r.Peer).Append(" bytes ").Append(r.Bytes).Append(" sha256 ").Append(Hex16(r.Sha))
              .Append(" end ").Append(r.End).Append('\n');
        }
    }
}
