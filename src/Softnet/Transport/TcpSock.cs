using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>TCP states a passive connection goes through here (the listener's own state is its class).</summary>
public enum TcpState : byte { SynRecv, Established, CloseWait, LastAck, Closed }

/// <summary>
/// One passively opened TCP connection, from its request (SYN_RECV: the kernel's request sock) to its end, with the
/// receive side of struct tcp_sock: the receive and out-of-order queues, SACK and D-SACK state, the ACK scheduling of
/// inet_connection_sock (quick-ACK, delayed ACK on the replay clock, pushed flags) and the advertised window
/// (tcp_select_window, tcp_grow_window), charged by skb truesize against sk_rcvbuf as Linux 6.18 charges it.
/// The sending side is only what a server that never writes needs: SYN-ACK, ACKs and its FIN.
/// A connection is IPv4 or IPv6 (<see cref="V6"/>): the family decides the addresses, the headers its segments carry
/// (<see cref="WriteHeaders"/>), its MSS and keyed ISN; everything between is one code path.
/// </summary>
public sealed partial class TcpSock : Sock
{
    // ---- constants (include/net/tcp.h) ----
    private const int MaxQuickAcks = 16;          // TCP_MAX_QUICKACKS
    private const long AtoMinNs = 40_000_000;     // TCP_ATO_MIN = TCP_DELACK_MIN (HZ/25)
    private const long DelackMaxNs = 200_000_000; // TCP_DELACK_MAX
    private const long InvalidRateLimitNs = 500_000_000; // net.ipv4.tcp_invalid_ratelimit
    private const int MssDefault = 536;           // TCP_MSS_DEFAULT
    private const int MinMss = 88;                // TCP_MIN_MSS
    private const int NumSacks = 4;               // TCP_NUM_SACKS
    /// <summary>net.ipv4.tcp_rmem[2] (the larger of it and rmem_max sets the scale).</summary>
    private int RmemMax2 => Namespace.TcpRmemMax;
    private const int PageSize = 4096;

    // ACK pending bits (inet_connection_sock.icsk_ack.pending)
    private const byte AckSched = 1, AckTimer = 2, AckPushed = 4, AckPushed2 = 8, AckNow = 16;

    internal TcpSock(TcpListenSock listener, uint local, ushort lport, uint remote, ushort rport)
        : base(listener.Namespace, listener.Line, SockAddr.FromV4(local, lport), null, listener.Cpu)
    {
        Listener = listener;
        RcvBuf = listener.RcvBuf;
        RcvBufLocked = listener.RcvBufLocked;
        LocalAddr = local;
        LocalPort = lport;
        RemoteAddr = remote;
        RemotePort = rport;
    }

    /// <summary>An IPv6 connection (tcp_v6_syn_recv_sock's child, struct ipv6_pinfo's addresses) to local
    /// <paramref name="local"/>:<paramref name="lport"/>; <paramref name="outDev"/> is the device its route leaves by
    /// (the hop limit's source, and the output device of a link-local peer).</summary>
    internal TcpSock(TcpListenSock listener, UInt128 local, ushort lport, UInt128 remote, ushort rport, Link.Device? outDev)
        : base(listener.Namespace, listener.Line, new SockAddr(true, local, lport), null, listener.Cpu)
    {
        Listener = listener;
        RcvBuf = listener.RcvBuf;
        RcvBufLocked = listener.RcvBufLocked;
        V6 = true;
        LocalAddr6 = local;
        LocalPort = lport;
        RemoteAddr6 = remote;
        RemotePort = rport;
        OutDev6 = outDev;
    }

    public TcpListenSock Listener { get; }
    /// <summary>AF_INET6 on the wire: the addresses are <see cref="LocalAddr6"/> and <see cref="RemoteAddr6"/>; else
    /// AF_INET with <see cref="LocalAddr"/> and <see cref="RemoteAddr"/> (on a dual-stack listener too).</summary>
    public bool V6 { get; }
    public UInt128 LocalAddr6 { get; private set; }
    public UInt128 RemoteAddr6 { get; private set; }
    /// <summary>The device an IPv6 connection's route leaves by.</summary>
    internal Link.Device? OutDev6 { get; private set; }
    public uint LocalAddr { get; private set; }
    public uint RemoteAddr { get; private set; }
    public ushort LocalPort { get; private set; }
    public ushort RemotePort { get; private set; }

    /// <summary>The listener's IPv6 cookie scratch request takes the next SYN's four-tuple.</summary>
    internal void RetargetCookie6(UInt128 local, ushort lport, UInt128 remote, ushort rport, Link.Device? outDev)
    {
        LocalAddr6 = local;
        RemoteAddr6 = remote;
        OutDev6 = outDev;
        RetargetCookie(0, lport, 0, rport);
    }

    /// <summary>The listener's cookie scratch request takes the next SYN's four-tuple (InitCookieRequest sets the rest).</summary>
    internal void RetargetCookie(uint local, ushort lport, uint remote, ushort rport)
    {
        LocalAddr = local;
        LocalPort = lport;
        RemoteAddr = remote;
        RemotePort = rport;
        CookieTsVal = null;
        IpOpt = default;
        _ipOptData = null;
    }
    /// <summary>The peer as accept() reports it: an IPv4 peer of a dual-stack IPv6 listener as ::ffff:a.b.c.d.</summary>
    public SockAddr Peer => V6 ? new SockAddr(true, RemoteAddr6, RemotePort)
        : Listener.Local.V6 ? SockAddr.FromV4(RemoteAddr, RemotePort).AsV4Mapped() : SockAddr.FromV4(RemoteAddr, RemotePort);
    public TcpState State { get; internal set; }
    internal TcpSock? NextInHash;

    // ---- send side (what a receiver sends) ----
    public uint SndIsn, SndNxt, SndUna;
    internal uint SndWndRaw;      // the peer's last window field, for header prediction
    internal byte SndWscale;
    private ushort _ipId;         // inet_id
    private long _lastOowAckNs = long.MinValue;

    // ---- receive side ----
    public uint RcvIsn, RcvNxt, RcvWup, RcvWnd, RcvSsthresh, WindowClamp, CopiedSeq;
    public byte RcvWscale;
    public bool WscaleOk, SackOk, TstampOk;
    internal uint TsRecent, TsOffset;
    public int AdvMss, MssClamp, RcvMss, LastSegSize;
    public int ScalingRatio = 128; // TCP_DEFAULT_SCALING_RATIO
    public int ForwardAlloc;
    private bool _rcvShutdown;     // RCV_SHUTDOWN: the peer's FIN is in
    internal bool Accepted;        // taken from the accept queue by the reader

    // ---- ACK scheduling (icsk_ack) ----
    private byte _pending;
    private int _quick;
    private bool _pingpong;
    private long _atoNs;
    private long _lrcvNs;
    internal long DelackDueNs = long.MaxValue;
    private long _srttNs;          // the SYN-ACK's round trip (tcp_synack_rtt_meas), bounds the delayed ACK
    private bool _noRttSample;     // the handshake gave no RTT sample: icsk_rto stays TCP_TIMEOUT_INIT

    // ---- retransmission: the request's SYN-ACK (reqsk_timer_handler), the FIN in LAST_ACK (tcp_retransmit_timer) ----
    internal long RtxDueNs = long.MaxValue;
    private int _numTimeout;       // req->num_timeout, then icsk_retransmits
    private int _numRetrans;       // req->num_retrans: SYN-ACKs sent again (timer or retransmitted SYN)
    private long _rtxRtoNs;        // the FIN's current timeout (icsk_rto with backoff)
    private bool _probe;           // the FIN's timer is the tail loss probe (ICSK_TIME_LOSS_PROBE)
    internal bool InRequestQueue;
    /// <summary>The request's SYN-ACK has not timed out yet.</summary>
    internal bool Young => _numTimeout == 0;
    /// <summary>The SYN's TOS, which the request's SYN-ACKs carry.</summary>
    internal byte SynTos;
    private const long TimeoutInitNs = 1_000_000_000;  // TCP_TIMEOUT_INIT
    private const long RtoMaxNs = 120_000_000_000;     // TCP_RTO_MAX
    private const int OrphanRetries = 8;               // tcp_orphan_retries with net.ipv4.tcp_orphan_retries = 0

    /// <summary>The earliest of this socket's timers.</summary>
    internal long NextTimerNs => Math.Min(DelackDueNs, RtxDueNs);

    // ---- receive-buffer autotuning (DRS: rcv_rtt_est, rcvq_space) ----
    private long _rcvRttUs8;       // rcv_rtt_est.rtt_us, the receiver's RTT estimate × 8
    private uint _rcvRttSeq;       // rcv_rtt_est.seq: the window-based sample ends when rcv_nxt passes it
    private long _rcvRttTimeNs;    // rcv_rtt_est.time (0: no sample running)
    private uint _rcvRttLastTsecr;
    private int _rcvqSpace;        // rcvq_space.space: bytes read per RTT so far at most
    private uint _rcvqSeq;         // rcvq_space.seq
    private long _rcvqTimeNs;      // rcvq_space.time
    private long _mstampNs;        // tcp_mstamp: when the latest segment was processed

    // ---- queues ----
    private readonly Queue<Segment> _receive = new();
    private readonly List<Segment> _ofo = new();   // ordered by seq (the kernel's rb-tree)
    /// <summary>A queued segment; <see cref="Segment.DataOffset"/> is its payload's offset from the network header.</summary>
    private readonly record struct Segment(Skb Skb, uint Seq, uint EndSeq, int DataOffset, int Truesize, bool Fin);
    private int _rxL4Off;

    // ---- SACK (tcp_sock.selective_acks, duplicate_sack) ----
    private readonly uint[] _sackStart = new uint[NumSacks], _sackEnd = new uint[NumSacks];
    private int _numSacks;
    private bool _dsack;
    private uint _dsackStart, _dsackEnd;

    // ---- the reader's record ----
    private IncrementalHash? _sha;
    private long _bytesRead;
    public ConnectionRecord? Record { get; private set; }

    internal static bool Before(uint a, uint b) => (int)(a - b) < 0;
    internal static bool After(uint a, uint b) => (int)(b - a) < 0;

    /// <summary>tcp_win_from_space: the window a buffer of <paramref name="space"/> bytes of truesize holds.</summary>
    private int WinFromSpace(long space) => (int)((space * ScalingRatio) >> 8);

    /// <summary>tcp_space: what the receive buffer still takes, as window.</summary>
    private int Space() => WinFromSpace((long)RcvBuf - RmemAlloc);

    /// <summary>tcp_full_space.</summary>
    private int FullSpace() => WinFromSpace(RcvBuf);

    /// <summary>tcp_receive_window: what is left of the window last advertised.</summary>
    private uint ReceiveWindow()
    {
        int w = (int)(RcvWup + RcvWnd - RcvNxt);
        return w < 0 ? 0 : (uint)w;
    }

    // ================= passive open =================

    /// <summary>tcp_openreq_init + tcp_openreq_init_rwin + tcp_select_initial_window: the request's state from the SYN
    /// and the listener's buffer and route.</summary>
    /// <param name="windowMss">The MSS the initial window is rounded to (a cookie's child uses the cookie's MSS);
    /// 0: the route's advmss less the timestamp option.</param>
    internal void InitRequest(in TcpOptions opt, uint synSeq, int routeMtu, ulong secret, long nowNs, int windowMss = 0)
    {
        State = TcpState.SynRecv;
        RcvIsn = synSeq;
        RcvNxt = RcvWup = CopiedSeq = synSeq + 1;
        // tcp_parse_options on a SYN reads timestamps, SACK-permitted and window scale only where tcp_timestamps,
        // tcp_sack and tcp_window_scaling allow them.
        var ns = Namespace;
        TstampOk = opt.HasTimestamps && ns.TcpTimestamps != 0;
        SackOk = opt.SackPermitted && ns.TcpSack;
        WscaleOk = opt.HasWindowScale && ns.TcpWindowScaling;
        SndWscale = WscaleOk ? Math.Min(opt.WindowScale, (byte)14) : (byte)0;
        if (TstampOk) TsRecent = opt.TsVal;
        MssClamp = opt.HasMss && opt.Mss != 0 ? opt.Mss : MssDefault;
        // dst_metric_advmss: the route MTU less the IP and TCP headers (ip6_default_advmss: at least
        // ip6_rt_min_advmss, IPV6_MIN_MTU less 60).
        AdvMss = V6 ? Math.Max(routeMtu - 60, 1220) : routeMtu - 40;
        (SndIsn, TsOffset) = SeqAndTsOff(secret, nowNs);
        SndNxt = SndIsn + 1;
        SndUna = SndIsn;
        _ipId = (ushort)(TsOffset ^ (TsOffset >> 16));
        // secure_tcp_ts_off: tcp_timestamps 2 keeps timestamps without the per-connection random offset.
        if (ns.TcpTimestamps != 1) TsOffset = 0;
        // tcp_select_initial_window over tcp_full_space(listener) with the MSS less the timestamp option.
        int mss = windowMss != 0 ? windowMss : AdvMss - (TstampOk ? 12 : 0);
        int space = FullSpace();
        long clamp = RcvBufLocked ? space : 0;
        if (clamp == 0) clamp = 65535L << 14;
        space = (int)Math.Min(clamp, space);
        if (space > mss) space = space / mss * mss;
        RcvWnd = (uint)space;
        RcvWscale = 0;
        if (WscaleOk)
        {
            long s = Math.Max(space, Math.Max(RmemMax2, Namespace.RmemMax));
            s = Math.Min(s, clamp);
            int log = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)s);
            RcvWscale = (byte)Math.Clamp(log - 15, 0, 14);
        }
        WindowClamp = (uint)Math.Min(65535L << RcvWscale, clamp);
        RcvSsthresh = RcvWnd;
        _srttNs = nowNs; // the SYN-ACK's send time, until the third ACK measures it
    }

    /// <summary>secure_tcp_seq_and_ts_off or secure_tcpv6_seq/secure_tcpv6_ts_off, by family.</summary>
    private (uint Isn, uint TsOffset) SeqAndTsOff(ulong secret, long nowNs)
        => V6 ? TcpSecure.SeqAndTsOff6(secret, LocalAddr6, RemoteAddr6, LocalPort, RemotePort, nowNs)
            : TcpSecure.SeqAndTsOff(secret, LocalAddr, RemoteAddr, LocalPort, RemotePort, nowNs);

    /// <summary>The TSval of a cookie SYN-ACK (the options in its low bits), null for a normal one.</summary>
    internal uint? CookieTsVal;
    private bool _noSynAckTime;    // a cookie's child: no SYN-ACK send time to measure from

    /// <summary>tcp_conn_request with want_cookie: the SYN-ACK's state as for a request, but without timestamps the
    /// SYN's options are dropped (tcp_clear_options), the ISN is the cookie and the MSS the cookie's table value;
    /// with timestamps the TSval carries window scale and SACK (cookie_init_timestamp). Nothing is kept.</summary>
    internal void InitCookieRequest(in TcpOptions opt, uint synSeq, int routeMtu, ulong secret, long nowNs)
    {
        var o = opt;
        if (Namespace.TcpTimestamps == 0) o.HasTimestamps = false;
        if (!o.HasTimestamps) { o.SackPermitted = false; o.HasWindowScale = false; o.WindowScale = 0; }
        InitRequest(o, synSeq, routeMtu, secret, nowNs);
        int mss = MssClamp;
        SndIsn = V6 ? TcpSyncookies.InitSequence6(secret, RemoteAddr6, LocalAddr6, RemotePort, LocalPort, synSeq, ref mss, nowNs)
            : TcpSyncookies.InitSequence(secret, RemoteAddr, LocalAddr, RemotePort, LocalPort, synSeq, ref mss, nowNs);
        SndNxt = SndIsn + 1;
        SndUna = SndIsn;
        MssClamp = mss;
        if (TstampOk) CookieTsVal = TcpSyncookies.InitTimestamp(nowNs, WscaleOk, SndWscale, SackOk) + TsOffset;
    }

    /// <summary>cookie_v4_check's child for an ACK whose cookie holds <paramref name="mss"/>: ISNs from the segment,
    /// timestamps if the ACK has them, window scale and SACK from its echo (cookie_timestamp_decode), the initial
    /// window rounded to the cookie's MSS (tcp_select_initial_window over req->mss).</summary>
    internal void InitCookieChild(in TcpOptions ackOpt, uint seq, uint ack, int mss, int routeMtu, ulong secret, long nowNs)
    {
        var o = default(TcpOptions);
        o.HasMss = true;
        o.Mss = (ushort)mss;
        if (ackOpt.HasTimestamps)
        {
            o.HasTimestamps = true;
            o.TsVal = ackOpt.TsVal;
            uint tsOff = SeqAndTsOff(secret, nowNs).TsOffset;
            var (wsOk, ws, sack) = TcpSyncookies.DecodeTimestamp(ackOpt.TsEcr - (ackOpt.TsEcr != 0 ? tsOff : 0));
            o.HasWindowScale = wsOk;
            o.WindowScale = ws;
            o.SackPermitted = sack;
        }
        InitRequest(o, seq - 1, routeMtu, secret, nowNs, windowMss: mss);
        SndIsn = ack - 1;
        SndNxt = ack;
        SndUna = SndIsn;
        _noSynAckTime = true;
    }

    /// <summary>tcp_create_openreq_child + the SYN_RECV step of tcp_rcv_state_process: the third ACK made the child
    /// ESTABLISHED (tcp_init_transfer: tcp_init_buffer_space, tcp_initialize_rcv_mss).</summary>
    internal void Establish(uint ackedWindowRaw, long nowNs, uint tsEcr)
    {
        FastOpenRemove();
        State = TcpState.Established;
        SndUna = SndNxt;
        SndWndRaw = ackedWindowRaw;
        RtxDueNs = long.MaxValue;
        Listener.RequestDone(this);
        // tcp_synack_rtt_meas: the SYN-ACK's time to its ACK, unless a SYN-ACK went twice; then the echoed timestamp
        // (tcp_rtt_tsopt_us, whole milliseconds, at least one); else no sample.
        if (_numRetrans == 0 && !_noSynAckTime) _srttNs = Math.Max(0, nowNs - _srttNs);
        else if (TstampOk && tsEcr != 0)
            _srttNs = Math.Max(1, (long)(uint)(TcpSecure.ClockMs(nowNs) - (tsEcr - TsOffset))) * 1_000_000;
        else { _srttNs = 0; _noRttSample = true; }
        // A Fast Open child ran tcp_init_transfer when it was made; the others run it now, before the timestamp option
        // comes off advmss (tcp_rcv_state_process's order).
        if (!FastOpenChild) InitBufferSpace(nowNs);
        if (TstampOk) AdvMss -= 12;
        _mstampNs = nowNs;
        int hint = Math.Min(Math.Min(AdvMss, MssClamp - (TstampOk ? 12 : 0)), (int)(RcvWnd / 2));
        RcvMss = Math.Max(Math.Min(hint, MssDefault), MinMss);
    }

    /// <summary>tcp_init_buffer_space (from tcp_init_transfer): the window clamp within the full space less one
    /// segment (tcp_app_win's reservation; its default 31 reserves nothing more), DRS starting from ten segments' worth
    /// at the sequence the reader has reached, now.</summary>
    private void InitBufferSpace(long nowNs)
    {
        const int tcpAppWin = 31;
        int maxwin = FullSpace();
        if (WindowClamp >= maxwin)
        {
            WindowClamp = (uint)maxwin;
            if (maxwin > 4 * AdvMss) WindowClamp = (uint)Math.Max(maxwin - (maxwin >> tcpAppWin), 4 * AdvMss);
        }
        if (WindowClamp > 2 * AdvMss && WindowClamp + AdvMss > maxwin) WindowClamp = (uint)Math.Max(2 * AdvMss, maxwin - AdvMss);
        RcvSsthresh = Math.Min(RcvSsthresh, WindowClamp);
        _rcvqSpace = (int)Math.Min(Math.Min(RcvSsthresh, RcvWnd), 10u * (uint)AdvMss);
        _rcvqSeq = CopiedSeq;
        _rcvqTimeNs = nowNs;
    }

    /// <summary>A Fast Open child (tcp_fastopen_create_child): accepted before its handshake completes.</summary>
    internal bool FastOpenChild;

    /// <summary>reqsk_fastopen_remove: a Fast Open child leaving SYN_RECV (its third ACK, or its end) frees its slot in
    /// the listener's Fast Open queue.</summary>
    private void FastOpenRemove()
    {
        if (FastOpenChild && State == TcpState.SynRecv) Listener.FastOpenQlen--;
    }

    /// <summary>tcp_fastopen_create_child for the request this sock was made as, from its SYN (<paramref name="tcp"/>,
    /// data after the header): the peer's window as sent (unscaled), tcp_init_transfer, then tcp_fastopen_add_skb:
    /// the data goes on the receive queue with its memory forced in (sk_forced_mem_schedule), past the SYN's sequence,
    /// without the receive events of ordinary data; rcv_nxt and rcv_wup move past it. Takes <paramref name="skb"/>.</summary>
    internal void InitFastOpenChild(NetStack stack, Skb skb, ReadOnlySpan<byte> tcp, int truesize)
    {
        FastOpenChild = true;
        SndWndRaw = BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]);
        InitBufferSpace(stack.Now);
        int doff = (tcp[12] >> 4) * 4;
        int len = tcp.Length - doff;
        uint seq = RcvIsn + 1;
        _rxL4Off = skb.Len - tcp.Length;
        bool fin = (tcp[13] & 0x01) != 0;
        // tcp_fastopen_add_skb: a SYN with a valid cookie and nothing after it queues nothing.
        if (len == 0 && !fin)
        {
            RcvNxt = RcvWup = seq;
            skb.Free();
            stack.WakeReader(this);
            return;
        }
        if (truesize > ForwardAlloc) ForwardAlloc += (truesize - ForwardAlloc + PageSize - 1) / PageSize * PageSize;
        ForwardAlloc -= truesize;
        RmemAlloc += truesize;
        _receive.Enqueue(new Segment(skb, seq, seq + (uint)len, _rxL4Off + doff, truesize, fin));
        RcvNxt = RcvWup = seq + (uint)len;
        if (fin) Fin();
        stack.WakeReader(this);
    }

    // ================= receive =================

    /// <summary>Header length of our established segments as the peer sends them (tcp_header_len).</summary>
    private int TcpHeaderLen => 20 + (TstampOk ? 12 : 0);

    /// <summary>tcp_rcv_established / tcp_rcv_state_process for a segment on this connection. <paramref name="tcp"/>
    /// is the segment (header and payload), <paramref name="truesize"/> what it charges.</summary>
    internal void Receive(NetStack stack, Skb skb, ReadOnlySpan<byte> tcp, in TcpOptions opt, int truesize)
    {
        if (skb.Hash != 0) RxHash = skb.Hash; // tcp_v4_do_rcv: sock_rps_save_rxhash
        var ns = Namespace;
        var mib = ns.Mib;
        byte flags = tcp[13];
        bool syn = (flags & 0x02) != 0, rst = (flags & 0x04) != 0, ack = (flags & 0x10) != 0, fin = (flags & 0x01) != 0;
        int doff = (tcp[12] >> 4) * 4;
        int len = tcp.Length - doff;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        uint ackSeq = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        uint endSeq = seq + (uint)len + (syn ? 1u : 0u) + (fin ? 1u : 0u);
        ushort win = BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]);
        long now = stack.Now;
        _mstampNs = now;
        // The segment's TCP header within the packet (IPv4 options, IPv6 extension headers): queued data is read there.
        _rxL4Off = skb.Len - tcp.Length;

        if (State == TcpState.Established && !_thirdAck && FastPath(stack, skb, tcp, opt, flags, doff, len, seq, ackSeq, win, truesize)) return;

        // Slow path (tcp_rcv_established step 1 on / tcp_rcv_state_process).
        if (!ack && !rst && !syn) { Free(skb, DropReason.TcpFlags); return; }
        // tcp_validate_incoming: PAWS.
        if (TstampOk && opt.HasTimestamps && (int)(TsRecent - opt.TsVal) > 1 && !rst)
        {
            if (syn) { SynChallenge(stack, now); Free(skb, DropReason.TcpRfc7323Paws); return; }
            mib[SnmpCounter.TcpExtPAWSEstab]++;
            if (len > 0 || !OowRateLimited(now)) SendDupAck(stack, seq, endSeq, len);
            Free(skb, DropReason.TcpRfc7323Paws);
            return;
        }
        // tcp_sequence.
        if (Before(endSeq, RcvWup) || After(seq, RcvNxt + ReceiveWindow()))
        {
            if (!rst)
            {
                if (syn) { SynChallenge(stack, now); Free(skb, DropReason.TcpInvalidSequence); return; }
                // Data segments are never rate limited (an ACK loop has no data).
                if (len > 0 || !OowRateLimited(now)) SendDupAck(stack, seq, endSeq, len);
                else mib[SnmpCounter.TcpExtTCPACKSkippedSeq]++;
            }
            Free(skb, Before(endSeq, RcvWup) ? DropReason.TcpOldSequence : DropReason.TcpInvalidSequence);
            return;
        }
        if (rst)
        {
            if (seq == RcvNxt || (_rcvShutdown && seq == RcvNxt - 1) || (SackOk && _numSacks > 0 && seq == MaxSackEnd()))
            {
                Reset(stack);
                Free(skb, DropReason.TcpReset);
                return;
            }
            SendChallengeAck(stack, now);
            Free(skb, DropReason.TcpReset);
            return;
        }
        if (syn) { SynChallenge(stack, now); Free(skb, DropReason.TcpInvalidSyn); return; }
        if (!ack) { Free(skb, DropReason.TcpFlags); return; }

        // step 5: tcp_ack.
        if (After(ackSeq, SndNxt)) { Free(skb, DropReason.TcpAckUnsentData); return; }
        // tcp_ack with FLAG_SLOWPATH: a segment without data is a pure ACK.
        if (len == 0 && !fin) mib[SnmpCounter.TcpExtTCPPureAcks]++;
        if (After(ackSeq, SndUna)) SndUna = ackSeq;
        SndWndRaw = win;
        // FLAG_UPDATE_TS_RECENT: tcp_replace_ts_recent.
        if (TstampOk && opt.HasTimestamps && !After(seq, RcvWup) && (int)(opt.TsVal - TsRecent) >= 0) TsRecent = opt.TsVal;
        if (TstampOk && opt.HasTimestamps) RcvRttMeasureTs(opt.TsEcr, len);

        switch (State)
        {
            case TcpState.LastAck:
                if (SndUna == SndNxt)
                {
                    // tcp_done: our FIN is acknowledged; the socket goes away.
                    Close(TcpState.Closed);
                    Free(skb, DropReason.None);
                    return;
                }
                if (!Before(seq, RcvNxt)) { Free(skb, DropReason.None); AckSndCheck(stack, true); return; }
                break;
            case TcpState.CloseWait:
                // Data after the peer's FIN is ignored.
                if (!Before(seq, RcvNxt)) { Free(skb, DropReason.None); AckSndCheck(stack, true); return; }
                break;
        }
        DataQueue(stack, skb, seq, endSeq, doff, len, flags, truesize);
        if (State != TcpState.Closed) AckSndCheck(stack, true);
    }

    private bool _thirdAck;

    /// <summary>The child's own processing of the ACK that completed it (tcp_child_process → tcp_rcv_state_process in
    /// SYN_RECV): the slow path, never header prediction.</summary>
    internal void ReceiveThirdAck(NetStack stack, Skb skb, ReadOnlySpan<byte> tcp, in TcpOptions opt, int truesize)
    {
        _thirdAck = true;
        Receive(stack, skb, tcp, opt, truesize);
        _thirdAck = false;
    }

    /// <summary>Header prediction (tcp_rcv_established's fast path): an in-sequence segment with only ACK (and PSH),
    /// the usual header length and the window the peer last sent, while nothing is out of order.</summary>
    private bool FastPath(NetStack stack, Skb skb, ReadOnlySpan<byte> tcp, in TcpOptions opt, byte flags, int doff, int len,
        uint seq, uint ackSeq, ushort win, int truesize)
    {
        if ((flags & ~0x08) != 0x10 || doff != TcpHeaderLen || win != SndWndRaw || _ofo.Count > 0 || RcvWnd == 0) return false;
        if (seq != RcvNxt || After(ackSeq, SndNxt)) return false;
        if (TstampOk)
        {
            // Only the aligned layout (NOP, NOP, TS) takes the fast path, and the timestamp must not be old.
            if (BinaryPrimitives.ReadUInt32BigEndian(tcp[20..]) != 0x0101080Au) return false;
            if ((int)(opt.TsVal - TsRecent) < 0) return false;
        }
        var mib = Namespace.Mib;
        if (len == 0)
        {
            if (TstampOk && RcvNxt == RcvWup) TsRecent = opt.TsVal;
            // tcp_ack without FLAG_SLOWPATH: a forward-moving ACK is an HP ack, anything else a pure ACK.
            if (After(ackSeq, SndUna)) SndUna = ackSeq;
            else mib[SnmpCounter.TcpExtTCPPureAcks]++;
            Free(skb, DropReason.None);
            return true;
        }
        // The memory already reserved must cover the segment (sk_forward_alloc), else the slow path charges it.
        if (truesize > ForwardAlloc) return false;
        if ((int)ReceiveWindow() < len) return false;
        if (TstampOk && RcvNxt == RcvWup) TsRecent = opt.TsVal;
        if (TstampOk) RcvRttMeasureTs(opt.TsEcr, len);
        mib[SnmpCounter.TcpExtTCPHPHits]++;
        if (After(ackSeq, SndUna)) SndUna = ackSeq;
        ForwardAlloc -= truesize;
        RmemAlloc += truesize;
        _receive.Enqueue(new Segment(skb, seq, seq + (uint)len, _rxL4Off + doff, truesize, false));
        RcvNxt = seq + (uint)len;
        EventDataRecv(len, doff, flags, truesize, stack.Now);
        AckSndCheck(stack, false);
        stack.WakeReader(this);
        return true;
    }

    /// <summary>tcp_data_queue.</summary>
    private void DataQueue(NetStack stack, Skb skb, uint seq, uint endSeq, int doff, int len, byte flags, int truesize)
    {
        bool fin = (flags & 0x01) != 0;
        var mib = Namespace.Mib;
        if (seq == endSeq) { Free(skb, DropReason.None); return; }
        _dsack = false;
        if (seq == RcvNxt)
        {
            if (ReceiveWindow() == 0 && !(len == 0 && fin))
            {
                mib[SnmpCounter.TcpExtTCPZeroWindowDrop]++;
                EnterQuickAck();
                _pending |= AckSched;
                Free(skb, DropReason.TcpZeroWindow);
                return;
            }
            QueueAndOut(stack, skb, seq, endSeq, doff, len, flags, truesize);
            return;
        }
        if (!After(endSeq, RcvNxt))
        {
            // A retransmission of what we have: D-SACK it and ACK at once.
            mib[SnmpCounter.TcpExtDelayedACKLost]++;
            DsackSet(seq, endSeq);
            EnterQuickAck();
            _pending |= AckSched;
            Free(skb, DropReason.TcpOldData);
            return;
        }
        if (!Before(seq, RcvNxt + ReceiveWindow()))
        {
            EnterQuickAck();
            _pending |= AckSched;
            Free(skb, DropReason.TcpOverWindow);
            return;
        }
        if (Before(seq, RcvNxt))
        {
            // Partly old: D-SACK the old part, queue the segment (the reader skips what it already has).
            DsackSet(seq, RcvNxt);
            if (ReceiveWindow() == 0) { EnterQuickAck(); _pending |= AckSched; Free(skb, DropReason.TcpZeroWindow); return; }
            QueueAndOut(stack, skb, seq, endSeq, doff, len, flags, truesize);
            return;
        }
        DataQueueOfo(skb, seq, endSeq, doff, len, flags, truesize);
    }

    private void QueueAndOut(NetStack stack, Skb skb, uint seq, uint endSeq, int doff, int len, byte flags, int truesize)
    {
        bool fin = (flags & 0x01) != 0;
        var mib = Namespace.Mib;
        if (!RmemSchedule(truesize))
        {
            _pending |= AckNow | AckSched;
            if (_receive.Count > 0 && len > 0) { mib[SnmpCounter.TcpExtTCPRcvQDrop]++; Free(skb, DropReason.ProtoMem); return; }
            ForwardAlloc += truesize; // sk_forced_mem_schedule
        }
        ForwardAlloc -= truesize;
        RmemAlloc += truesize;
        _receive.Enqueue(new Segment(skb, seq, endSeq, _rxL4Off + doff, truesize, fin));
        RcvNxt = endSeq;
        if (len > 0) EventDataRecv(len, doff, flags, truesize, stack.Now);
        if (fin) Fin();
        if (_ofo.Count > 0)
        {
            OfoQueue();
            if (_ofo.Count == 0) _pending |= AckNow;
        }
        if (_numSacks > 0) SackRemove();
        stack.WakeReader(this);
    }

    /// <summary>tcp_data_queue_ofo: into the out-of-order queue (no coalescing: kmalloc'd heads of veth frames cannot be
    /// merged), with the overlap rules and the SACK block update.</summary>
    private void DataQueueOfo(Skb skb, uint seq, uint endSeq, int doff, int len, byte flags, int truesize)
    {
        var mib = Namespace.Mib;
        bool fin = (flags & 0x01) != 0;
        if (!RmemSchedule(truesize)) { mib[SnmpCounter.TcpExtTCPOFODrop]++; Free(skb, DropReason.TcpOfoDrop); return; }
        // Since 6.17 an out-of-order segment that is kept feeds tcp_measure_rcv_mss too (rcv_mss, the scaling ratio,
        // ICSK_ACK_PUSHED), before the ACK is scheduled.
        MeasureRcvMss(len, doff, flags, truesize);
        _pending |= AckSched;
        mib[SnmpCounter.TcpExtTCPOFOQueue]++;
        var seg = new Segment(skb, seq, endSeq, _rxL4Off + doff, truesize, fin);
        bool queued = true;
        int at;
        if (_ofo.Count == 0)
        {
            if (SackOk) { _numSacks = 1; _sackStart[0] = seq; _sackEnd[0] = endSeq; }
            _ofo.Add(seg);
            goto End;
        }
        if (!Before(seq, _ofo[^1].EndSeq)) { _ofo.Add(seg); at = _ofo.Count - 1; goto MergeRight; }
        at = 0;
        while (at < _ofo.Count)
        {
            var s1 = _ofo[at];
            if (Before(seq, s1.Seq)) break;
            if (Before(seq, s1.EndSeq))
            {
                if (!After(endSeq, s1.EndSeq))
                {
                    // Everything is here already.
                    mib[SnmpCounter.TcpExtTCPOFOMerge]++;
                    Free(skb, DropReason.TcpOfoMerge);
                    queued = false;
                    DsackSet(seq, endSeq);
                    goto AddSack;
                }
                if (After(seq, s1.Seq)) DsackSet(seq, s1.EndSeq);
                else
                {
                    // Same start, longer: it replaces the queued one.
                    _ofo[at] = seg;
                    DsackExtend(s1.Seq, s1.EndSeq);
                    mib[SnmpCounter.TcpExtTCPOFOMerge]++;
                    ReleaseQueued(s1, DropReason.TcpOfoMerge);
                    goto MergeRight;
                }
            }
            at++;
        }
        _ofo.Insert(at, seg);
    MergeRight:
        while (at + 1 < _ofo.Count)
        {
            var s1 = _ofo[at + 1];
            if (!After(endSeq, s1.Seq)) break;
            if (Before(endSeq, s1.EndSeq)) { DsackExtend(s1.Seq, endSeq); break; }
            _ofo.RemoveAt(at + 1);
            DsackExtend(s1.Seq, s1.EndSeq);
            mib[SnmpCounter.TcpExtTCPOFOMerge]++;
            ReleaseQueued(s1, DropReason.TcpOfoMerge);
        }
    AddSack:
        if (SackOk) SackNewOfo(seq, endSeq);
    End:
        if (queued)
        {
            if (SackOk) GrowWindow(len, truesize);
            ForwardAlloc -= truesize;
            RmemAlloc += truesize;
        }
    }

    /// <summary>tcp_ofo_queue: segments the in-order data now reaches move to the receive queue.</summary>
    private void OfoQueue()
    {
        uint dsackHigh = RcvNxt;
        while (_ofo.Count > 0)
        {
            var s = _ofo[0];
            if (After(s.Seq, RcvNxt)) break;
            if (Before(s.Seq, dsackHigh))
            {
                uint d = dsackHigh;
                if (Before(s.EndSeq, dsackHigh)) dsackHigh = s.EndSeq;
                DsackExtend(s.Seq, d);
            }
            _ofo.RemoveAt(0);
            if (!After(s.EndSeq, RcvNxt)) { ReleaseQueued(s, DropReason.TcpOfoDrop); continue; }
            _receive.Enqueue(s);
            RcvNxt = s.EndSeq;
            if (s.Fin) { Fin(); break; }
        }
    }

    /// <summary>tcp_fin: the peer is done sending; ESTABLISHED becomes CLOSE_WAIT in pingpong mode, and what is out of
    /// order beyond the FIN is dropped.</summary>
    private void Fin()
    {
        _pending |= AckSched;
        _rcvShutdown = true;
        if (State == TcpState.Established) { State = TcpState.CloseWait; _pingpong = true; }
        foreach (var s in _ofo) ReleaseQueued(s, DropReason.TcpOfoDrop);
        _ofo.Clear();
        _numSacks = 0;
    }

    /// <summary>tcp_event_data_recv: schedule an ACK, measure the peer's segment size, adapt the delayed-ACK timeout
    /// to the arrival interval, and grow the window.</summary>
    private void EventDataRecv(int len, int doff, byte flags, int truesize, long now)
    {
        _pending |= AckSched;
        MeasureRcvMss(len, doff, flags, truesize);
        RcvRttMeasure();
        if (_atoNs == 0)
        {
            IncrQuickAck(MaxQuickAcks);
            _atoNs = AtoMinNs;
        }
        else
        {
            long m = (now - _lrcvNs) / 1_000_000 * 1_000_000; // jiffies at HZ=1000
            long rto = RtoNs;
            if (m <= AtoMinNs / 2) _atoNs = (_atoNs >> 1) + AtoMinNs / 2;
            else if (m < _atoNs) { _atoNs = (_atoNs >> 1) + m; if (_atoNs > rto) _atoNs = rto; }
            else if (m > rto) IncrQuickAck(MaxQuickAcks);
        }
        _lrcvNs = now;
        if (len >= 128) GrowWindow(len, truesize);
    }

    /// <summary>icsk_rto after the handshake's one RTT sample (tcp_rtt_estimator, tcp_set_rto): srtt + 4·rttvar
    /// with rttvar at least TCP_RTO_MIN.</summary>
    private long RtoNs => _noRttSample ? TimeoutInitNs : _srttNs + Math.Max(_srttNs * 2, 200_000_000);

    /// <summary>tcp_measure_rcv_mss.</summary>
    private void MeasureRcvMss(int len, int doff, byte flags, int truesize)
    {
        int lss = LastSegSize;
        LastSegSize = 0;
        if (len >= RcvMss)
        {
            if (len != RcvMss)
            {
                int ratio = (int)(((long)len << 8) / truesize);
                int old = ScalingRatio;
                ScalingRatio = Math.Clamp(ratio, 1, 255);
                if (old != ScalingRatio) SetWindowClamp(WinFromSpace(RcvBuf));
            }
            RcvMss = Math.Min(len, AdvMss);
            if ((flags & 0x08) != 0) _pending |= AckPushed;
        }
        else
        {
            int withHeader = len + doff;
            if (withHeader >= MssDefault + 20 || (withHeader >= MinMss + 20 && (flags & 0x2B) == 0))
            {
                int l = withHeader - TcpHeaderLen;
                LastSegSize = l;
                if (l == lss) { RcvMss = l; return; }
            }
            if ((_pending & AckPushed) != 0) _pending |= AckPushed2;
            _pending |= AckPushed;
        }
    }

    /// <summary>tcp_rcv_rtt_update: the lowest sample, or (timestamps, receive queue empty) a 7/8 average.</summary>
    private void RcvRttUpdate(long sampleUs, bool windowBased)
    {
        long m = sampleUs << 3;
        if (_rcvRttUs8 == 0 || m < _rcvRttUs8) _rcvRttUs8 = m;
        else
        {
            if (windowBased || RcvNxt != CopiedSeq) return;
            _rcvRttUs8 = _rcvRttUs8 - (_rcvRttUs8 >> 3) + sampleUs;
        }
    }

    /// <summary>tcp_rcv_rtt_measure: without timestamps, the time one window of data takes to arrive.</summary>
    private void RcvRttMeasure()
    {
        if (_rcvRttTimeNs != 0)
        {
            if (Before(RcvNxt, _rcvRttSeq)) return;
            RcvRttUpdate(Math.Max(1, (_mstampNs - _rcvRttTimeNs) / 1000), true);
        }
        _rcvRttSeq = RcvNxt + RcvWnd;
        _rcvRttTimeNs = _mstampNs;
    }

    /// <summary>tcp_rcv_rtt_measure_ts: the echo of our timestamp on a full-sized segment, in whole milliseconds.</summary>
    private void RcvRttMeasureTs(uint tsEcr, int len)
    {
        if (tsEcr == _rcvRttLastTsecr) return;
        _rcvRttLastTsecr = tsEcr;
        if (len < RcvMss) return;
        uint delta = TcpSecure.TsVal(_mstampNs, TsOffset) - tsEcr;
        if (delta == 0 || delta >= int.MaxValue / 1000) return;
        RcvRttUpdate(delta * 1000L, false);
    }

    /// <summary>tcp_rcv_space_adjust after the reader copied a segment: once per receiver RTT, a reader that took more
    /// than rcvq_space.space grows the buffer (tcp_rcvbuf_grow: twice what it read, doubled again for slow start, plus
    /// the out-of-order span, up to tcp_rmem[2]) and the window clamp with it, unless SO_RCVBUF locked it.</summary>
    private void RcvSpaceAdjust()
    {
        if (_rcvRttUs8 == 0) return;
        long timeUs = (_mstampNs - _rcvqTimeNs) / 1000;
        if (timeUs < _rcvRttUs8 >> 3) return;
        int copied = (int)(CopiedSeq - _rcvqSeq) - (int)(RcvNxt - CopiedSeq);
        if (copied > _rcvqSpace)
        {
            int old = _rcvqSpace;
            _rcvqSpace = copied;
            if (!RcvBufLocked)
            {
                long rcvwin = (long)copied << 1;
                rcvwin += (rcvwin << 1) * (copied - old) / old;
                if (_ofo.Count > 0) rcvwin += _ofo[^1].EndSeq - RcvNxt;
                long rcvbuf = Math.Min((rcvwin << 8) / ScalingRatio, RmemMax2);
                if (rcvbuf > RcvBuf)
                {
                    RcvBuf = (int)rcvbuf;
                    WindowClamp = (uint)WinFromSpace(rcvbuf);
                }
            }
        }
        _rcvqSeq = CopiedSeq;
        _rcvqTimeNs = _mstampNs;
    }

    /// <summary>tcp_set_window_clamp for a new scaling ratio.</summary>
    private void SetWindowClamp(int val)
    {
        uint n = (uint)Math.Max(SockMinRcvbuf / 2, val);
        if (n == WindowClamp) return;
        uint old = WindowClamp;
        WindowClamp = n;
        if (n < old) RcvSsthresh = Math.Min(RcvSsthresh, n);
        else RcvSsthresh = Math.Max(Math.Min(RcvWnd, WindowClamp), RcvSsthresh);
    }

    /// <summary>tcp_grow_window: raise rcv_ssthresh by two segments while the buffer has room for segments this size.</summary>
    private void GrowWindow(int len, int truesize)
    {
        int room = Math.Min((int)WindowClamp, Space()) - (int)RcvSsthresh;
        if (room <= 0) return;
        int incr;
        if (WinFromSpace(truesize) <= len) incr = 2 * AdvMss;
        else
        {
            incr = 0;
            int t = WinFromSpace(truesize) >> 1;
            int window = WinFromSpace(RmemMax2) >> 1;
            while (RcvSsthresh <= window)
            {
                if (t <= len) { incr = 2 * RcvMss; break; }
                t >>= 1;
                window >>= 1;
            }
        }
        if (incr == 0) return;
        incr = Math.Max(incr, 2 * len);
        RcvSsthresh += (uint)Math.Min(room, incr);
        _quick |= 1;
    }

    private void IncrQuickAck(int max)
    {
        int q = (int)(RcvWnd / (uint)(2 * RcvMss));
        if (q == 0) q = 2;
        q = Math.Min(q, max);
        if (q > _quick) _quick = q;
    }

    /// <summary>tcp_enter_quickack_mode.</summary>
    private void EnterQuickAck()
    {
        IncrQuickAck(MaxQuickAcks);
        _pingpong = false;
        _atoNs = AtoMinNs;
    }

    /// <summary>sk_rmem_schedule under tcp_try_rmem_schedule: room in sk_rcvbuf, then whole pages of forward
    /// allocation for the segment.</summary>
    private bool RmemSchedule(int truesize)
    {
        if (RmemAlloc > RcvBuf) return false;
        if (truesize > ForwardAlloc)
        {
            int pages = (truesize - ForwardAlloc + PageSize - 1) / PageSize;
            ForwardAlloc += pages * PageSize;
        }
        return true;
    }

    // ================= ACKs =================

    /// <summary>__tcp_ack_snd_check.</summary>
    private void AckSndCheck(NetStack stack, bool ofoPossible)
    {
        if ((_pending & AckSched) == 0 || _ackHeld) return;
        bool quick = _quick > 0 && !_pingpong;
        if ((RcvNxt - RcvWup > (uint)RcvMss && (RcvNxt - CopiedSeq < 1 || SelectWindowRaw() >= RcvWnd)) || quick || (_pending & AckNow) != 0)
        {
            SendAck(stack);
            return;
        }
        if (!ofoPossible || _ofo.Count == 0) { SendDelayedAck(stack); return; }
        // Out-of-order data: the first few duplicate ACKs go at once (SACK compression comes later).
        if (_compressedAckRcvNxt != RcvNxt) { _compressedAckRcvNxt = RcvNxt; _dupAckCounter = 0; }
        if (_dupAckCounter < 3) { _dupAckCounter++; SendAck(stack); return; }
        // tcp_comp_sack_delay_ns bounds the compressed ACK to 1 ms: modelled as a delayed ACK at that delay.
        ArmDelack(stack, stack.Now + 1_000_000);
    }

    private uint _compressedAckRcvNxt;
    private int _dupAckCounter;

    /// <summary>tcp_send_delayed_ack.</summary>
    private void SendDelayedAck(NetStack stack)
    {
        long ato = _atoNs;
        if (ato > AtoMinNs)
        {
            long maxAto = 500_000_000;
            if (_pingpong || (_pending & AckPushed) != 0) maxAto = DelackMaxNs;
            long rtt = Math.Max(_srttNs / 1_000_000 * 1_000_000, AtoMinNs);
            if (rtt < maxAto) maxAto = rtt;
            ato = Math.Min(ato, maxAto);
        }
        ato = Math.Min(ato, DelackMaxNs);
        long now = stack.Now / 1_000_000 * 1_000_000;
        long timeout = now + ato;
        if ((_pending & AckTimer) != 0)
        {
            if (DelackDueNs <= now + (ato >> 2)) { SendAck(stack); return; }
            if (timeout >= DelackDueNs) timeout = DelackDueNs;
        }
        _pending |= AckSched | AckTimer;
        ArmDelack(stack, timeout);
    }

    private void ArmDelack(NetStack stack, long due)
    {
        _pending |= AckTimer;
        DelackDueNs = due;
        stack.ArmTcpTimer(this);
    }

    private void ArmRtx(NetStack stack, long due)
    {
        RtxDueNs = due;
        stack.ArmTcpTimer(this);
    }

    /// <summary>The timers due at the stack's clock.</summary>
    internal void RunTimers(NetStack stack)
    {
        if (DelackDueNs <= stack.Now) DelackTimer(stack);
        if (RtxDueNs <= stack.Now) RetransmitTimer(stack);
    }

    /// <summary>tcp_v4_err for an ICMP error quoting a segment of this connection (sequence <paramref name="seq"/>):
    /// a request checks it is its SYN-ACK (tcp_req_err: else OutOfWindowIcmps; unreachable network or host, time
    /// exceeded or a parameter problem drop the request, ListenDrops); a connection ignores what it did not send
    /// unacknowledged (OutOfWindowIcmps) and otherwise keeps the error as a soft one (no IP_RECVERR), which its reader
    /// never sees. True when the error got past those checks to tcp_v4_err's switch, where a redirect is acted on
    /// (do_redirect): a connection's (a Fast Open child's too), with the quoted sequence in the window.</summary>
    internal bool IcmpError(byte type, byte code, uint seq)
        => IcmpError(type is 11 or 12 || (type == 3 && code is 0 or 1), seq);

    /// <summary>tcp_v6_err for an ICMPv6 error quoting this connection's segment: as <see cref="IcmpError(byte, byte,
    /// uint)"/>, with icmpv6_err_convert's fatal errors killing a request (destination unreachable but for no route,
    /// beyond scope and address unreachable; parameter problem). A packet too big would lower the MSS a sender uses
    /// (tcp_v6_mtu_reduced): nothing here sends data, so it is the soft error it is for IPv4's fragmentation needed.</summary>
    internal void IcmpError6(byte type, byte code, uint seq)
        => IcmpError(type == 4 || (type == 1 && code is not (0 or 2 or 3)), seq);

    private bool IcmpError(bool fatal, uint seq)
    {
        var mib = Namespace.Mib;
        if (State == TcpState.SynRecv && !FastOpenChild)
        {
            if (seq != SndIsn) { mib[SnmpCounter.TcpExtOutOfWindowIcmps]++; return false; }
            if (fatal)
            {
                DropRequest();
                mib[SnmpCounter.TcpExtListenDrops]++;
            }
            return false;
        }
        if (State == TcpState.Closed) return false;
        // !between(seq, snd_una, snd_nxt); a Fast Open child still in SYN_RECV counts from its ISN (its fastopen_rsk's
        // snt_isn).
        uint una = State == TcpState.SynRecv ? SndIsn : SndUna;
        if (SndNxt - una < seq - una) { mib[SnmpCounter.TcpExtOutOfWindowIcmps]++; return false; }
        return true;
    }

    /// <summary>tcp_v4_reqsk_send_ack / tcp_v6_reqsk_send_ack, tcp_check_req's answer to an out-of-window segment:
    /// an ACK of the request's state (seq ISN + 1, its window scaled down, its timestamps) from the control socket
    /// (the segment's TOS or traffic class less ECN; IPv4 DF, IP ID 0; IPv6 flow label 0), at most one per tcp_invalid_ratelimit unless the segment carried data without a SYN.</summary>
    internal void SendRequestAck(NetStack stack, bool dataWithoutSyn, byte tos)
    {
        var ns = Namespace;
        if (!dataWithoutSyn && OowRateLimited(stack.Now)) { ns.Mib[SnmpCounter.TcpExtTCPACKSkippedSynRecv]++; return; }
        var skb = stack.NewFrame(IpHeaderLength + 20 + (TstampOk ? 12 : 0));
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = skb.LinearData;
        uint win = Math.Min(RcvWnd, 65535u << RcvWscale) >> RcvWscale;
        var t = WriteHeaders(p, 0, SndIsn + 1, 0x10, (ushort)win, stack.Now, (byte)(tos & ~0x03));
        if (TstampOk)
        {
            BinaryPrimitives.WriteUInt32BigEndian(t[20..], 0x0101080Au);
            BinaryPrimitives.WriteUInt32BigEndian(t[24..], TcpSecure.TsVal(stack.Now, TsOffset));
            BinaryPrimitives.WriteUInt32BigEndian(t[28..], TsRecent);
        }
        if (!V6)
        {
            p[1] = (byte)(tos & ~0x03);
            p[10] = p[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(p[10..], Checksum.Compute(p[..IpHeaderLength]));
        }
        FinishChecksum(p);
        ns.Mib[SnmpCounter.TcpOutSegs]++;
        LocalOut(stack, skb);
    }

    /// <summary>inet_csk_reqsk_queue_drop: the request leaves the listener's queue and the hash, its timer with it.</summary>
    internal void DropRequest()
    {
        Listener.RequestDone(this);
        Namespace.Sockets.Unhash(this);
        RtxDueNs = long.MaxValue;
        State = TcpState.Closed;
    }

    /// <summary>A request's SYN-ACK went out (tcp_conn_request: the request timer starts at TCP_TIMEOUT_INIT).</summary>
    internal void ArmRequestTimer(NetStack stack) => ArmRtx(stack, stack.Now + TimeoutInitNs);

    /// <summary>inet_rtx_syn_ack for a retransmitted SYN: the SYN-ACK again, counted as a retransmission.</summary>
    internal void RetransmitSynAck(NetStack stack)
    {
        var mib = Namespace.Mib;
        mib[SnmpCounter.TcpRetransSegs]++;
        mib[SnmpCounter.TcpExtTCPSynRetrans]++;
        _numRetrans++;
        TcpReceive.SendSynAck(stack, this);
    }

    /// <summary>reqsk_timer_handler for a request (SYN-ACK again, backing off from TCP_TIMEOUT_INIT, until
    /// tcp_synack_retries; fewer for old requests when the listener's queue is over half full), tcp_retransmit_timer
    /// for the FIN of LAST_ACK (again, backing off, until the orphan retries run out).</summary>
    private void RetransmitTimer(NetStack stack)
    {
        RtxDueNs = long.MaxValue;
        var mib = Namespace.Mib;
        if (State == TcpState.SynRecv)
        {
            var l = Listener;
            // net.ipv4.tcp_synack_retries (the listener sets no TCP_SYNCNT of its own); a Fast Open child's timer
            // (tcp_fastopen_synack_timer) allows one more and does not look at the request queue.
            int max = Namespace.TcpSynackRetries + (FastOpenChild ? 1 : 0);
            int qlen = l.RequestCount;
            if (!FastOpenChild && qlen << 1 > Math.Max(8, l.Backlog))
            {
                int young = l.YoungCount << 1;
                while (max > 2 && qlen >= young) { max--; young <<= 1; }
            }
            // tcp_syn_ack_timeout.
            mib[SnmpCounter.TcpExtTCPTimeouts]++;
            if (_numTimeout >= max)
            {
                // tcp_write_err for a Fast Open child.
                if (FastOpenChild) Close(TcpState.Closed);
                else DropRequest();
                return;
            }
            RetransmitSynAck(stack);
            if (_numTimeout++ == 0 && !FastOpenChild) l.YoungCount--;
            ArmRtx(stack, stack.Now + Math.Min(TimeoutInitNs << _numTimeout, RtoMaxNs));
            return;
        }
        if (State != TcpState.LastAck || SndUna == SndNxt) return;
        if (_probe)
        {
            // tcp_send_loss_probe: the FIN again (TCPLossProbes), then the RTO armed from now (tcp_rearm_rto).
            _probe = false;
            mib[SnmpCounter.TcpExtTCPLossProbes]++;
            mib[SnmpCounter.TcpRetransSegs]++;
            Transmit(stack, 0x11, retransmit: true);
            ArmRtx(stack, stack.Now + _rtxRtoNs);
            return;
        }
        if (_numTimeout >= OrphanRetries)
        {
            // tcp_write_timeout → tcp_write_err: the orphan gives up.
            mib[SnmpCounter.TcpExtTCPAbortOnTimeout]++;
            Close(TcpState.Closed);
            return;
        }
        if (_numTimeout == 0) mib[SnmpCounter.TcpExtTCPTimeouts]++;
        mib[SnmpCounter.TcpRetransSegs]++;
        Transmit(stack, 0x11, retransmit: true);
        _numTimeout++;
        _rtxRtoNs = Math.Min(_rtxRtoNs << 1, RtoMaxNs);
        ArmRtx(stack, stack.Now + _rtxRtoNs);
    }

    /// <summary>tcp_delack_timer_handler at <see cref="DelackDueNs"/>.</summary>
    internal void DelackTimer(NetStack stack)
    {
        DelackDueNs = long.MaxValue;
        if ((_pending & AckTimer) == 0 || State == TcpState.Closed) return;
        _pending = (byte)(_pending & ~AckTimer);
        if ((_pending & AckSched) == 0) return;
        if (!_pingpong) _atoNs = Math.Min(_atoNs << 1, RtoNs);
        else { _pingpong = false; _atoNs = AtoMinNs; }
        SendAck(stack);
        Namespace.Mib[SnmpCounter.TcpExtDelayedACKs]++;
    }

    /// <summary>tcp_cleanup_rbuf after the reader copied <paramref name="copied"/> bytes.</summary>
    private void CleanupRbuf(NetStack stack, int copied)
    {
        bool timeToAck = false;
        if ((_pending & AckSched) != 0)
        {
            if (RcvNxt - RcvWup > (uint)RcvMss
                || (copied > 0 && ((_pending & AckPushed2) != 0 || ((_pending & AckPushed) != 0 && !_pingpong)) && RmemAlloc == 0))
                timeToAck = true;
        }
        if (copied > 0 && !timeToAck && !_rcvShutdown)
        {
            uint now = ReceiveWindow();
            if (2 * now <= WindowClamp)
            {
                uint nw = SelectWindowRaw();
                if (nw != 0 && nw >= 2 * now) timeToAck = true;
            }
        }
        if (timeToAck) SendAck(stack);
    }

    /// <summary>__tcp_select_window (window scaling in use, or not).</summary>
    private uint SelectWindowRaw()
    {
        int mss = RcvMss;
        int free = Space();
        int allowed = FullSpace();
        int full = Math.Min((int)WindowClamp, allowed);
        if (mss > full) { mss = full; if (mss <= 0) return 0; }
        if (free < (full >> 1))
        {
            _quick = 0;
            free = free >> RcvWscale << RcvWscale;
            if (free < (allowed >> 4) || free < mss) return 0;
        }
        if (free > (int)RcvSsthresh) free = (int)RcvSsthresh;
        if (RcvWscale != 0)
        {
            int unit = 1 << RcvWscale;
            return (uint)((free + unit - 1) & ~(unit - 1));
        }
        uint window = RcvWnd;
        if (window + mss <= (uint)free || window > (uint)free) window = (uint)(free / mss * mss);
        else if (mss == full && free > window + (full >> 1)) window = (uint)free;
        return window;
    }

    /// <summary>tcp_select_window: never moves the right edge left; records what is offered.</summary>
    private ushort SelectWindow()
    {
        var mib = Namespace.Mib;
        uint oldWin = RcvWnd;
        uint cur = ReceiveWindow();
        uint nw = SelectWindowRaw();
        if (nw < cur)
        {
            if (nw == 0) mib[SnmpCounter.TcpExtTCPWantZeroWindowAdv]++;
            uint unit = 1u << RcvWscale;
            nw = (cur + unit - 1) & ~(unit - 1);
        }
        RcvWnd = nw;
        RcvWup = RcvNxt;
        nw = Math.Min(nw, 65535u << RcvWscale);
        nw >>= RcvWscale;
        if (nw == 0 && oldWin != 0) mib[SnmpCounter.TcpExtTCPToZeroWindowAdv]++;
        else if (nw != 0 && oldWin == 0) mib[SnmpCounter.TcpExtTCPFromZeroWindowAdv]++;
        return (ushort)nw;
    }

    /// <summary>tcp_send_ack.</summary>
    internal void SendAck(NetStack stack) => Transmit(stack, 0x10);

    /// <summary>tcp_send_dupack: a segment outside the window (or old data) is answered with an ACK, old data with a
    /// D-SACK and quick-ACK mode.</summary>
    private void SendDupAck(NetStack stack, uint seq, uint endSeq, int len)
    {
        if (endSeq != seq && Before(seq, RcvNxt))
        {
            Namespace.Mib[SnmpCounter.TcpExtDelayedACKLost]++;
            EnterQuickAck();
            if (SackOk && Namespace.TcpDsack) DsackSet(seq, After(endSeq, RcvNxt) ? RcvNxt : endSeq);
        }
        SendAck(stack);
    }

    /// <summary>__tcp_oow_rate_limited with tcp_invalid_ratelimit (500 ms per socket).</summary>
    private bool OowRateLimited(long now)
    {
        long ms = now / 1_000_000 * 1_000_000;
        if (_lastOowAckNs != long.MinValue && ms - _lastOowAckNs >= 0 && ms - _lastOowAckNs < InvalidRateLimitNs) return true;
        _lastOowAckNs = ms;
        return false;
    }

    /// <summary>tcp_send_challenge_ack (RFC 5961): per-socket rate limited; the per-namespace limit is off by default.</summary>
    private void SendChallengeAck(NetStack stack, long now)
    {
        if (OowRateLimited(now)) { Namespace.Mib[SnmpCounter.TcpExtTCPACKSkippedChallenge]++; return; }
        Namespace.Mib[SnmpCounter.TcpExtTCPChallengeACK]++;
        SendAck(stack);
    }

    private void SynChallenge(NetStack stack, long now)
    {
        var mib = Namespace.Mib;
        if (State == TcpState.Established) mib[SnmpCounter.TcpInErrs]++;
        mib[SnmpCounter.TcpExtTCPSYNChallenge]++;
        SendChallengeAck(stack, now);
    }

    /// <summary>tcp_reset: the connection is reset by the peer; the reader sees ECONNRESET.</summary>
    private void Reset(NetStack stack)
    {
        if (State is TcpState.Established or TcpState.CloseWait) Namespace.Mib[SnmpCounter.TcpEstabResets]++;
        _reset = true;
        Close(TcpState.Closed);
        stack.WakeReader(this);
    }

    private bool _reset;

    /// <summary>tcp_done: out of the tables; queued data stays for the reader.</summary>
    private void Close(TcpState to)
    {
        FastOpenRemove();
        State = to;
        _pending = 0;
        DelackDueNs = long.MaxValue;
        RtxDueNs = long.MaxValue;
        Namespace.Sockets.Unhash(this);
        foreach (var s in _ofo) ReleaseQueued(s, DropReason.TcpClose);
        _ofo.Clear();
    }

    // ================= SACK =================

    private uint MaxSackEnd()
    {
        uint m = _sackEnd[0];
        for (int i = 1; i < _numSacks; i++) if (After(_sackEnd[i], m)) m = _sackEnd[i];
        return m;
    }

    /// <summary>tcp_dsack_set: only on a SACK connection, and only while net.ipv4.tcp_dsack is on.</summary>
    private void DsackSet(uint seq, uint end)
    {
        if (!SackOk || !Namespace.TcpDsack) return;
        Namespace.Mib[Before(seq, RcvNxt) ? SnmpCounter.TcpExtTCPDSACKOldSent : SnmpCounter.TcpExtTCPDSACKOfoSent]++;
        _dsack = true;
        _dsackStart = seq;
        _dsackEnd = end;
    }

    private void DsackExtend(uint seq, uint end)
    {
        if (!_dsack) { DsackSet(seq, end); return; }
        if (!After(seq, _dsackEnd) && !After(_dsackStart, end))
        {
            if (Before(seq, _dsackStart)) _dsackStart = seq;
            if (After(end, _dsackEnd)) _dsackEnd = end;
        }
    }

    private bool SackExtend(int i, uint seq, uint end)
    {
        if (!After(seq, _sackEnd[i]) && !After(_sackStart[i], end))
        {
            if (Before(seq, _sackStart[i])) _sackStart[i] = seq;
            if (After(end, _sackEnd[i])) _sackEnd[i] = end;
            return true;
        }
        return false;
    }

    /// <summary>tcp_sack_new_ofo_skb: the block the segment touches (or a new one) moves to the front.</summary>
    private void SackNewOfo(uint seq, uint end)
    {
        int cur = _numSacks;
        if (cur == 0) { _sackStart[0] = seq; _sackEnd[0] = end; _numSacks = 1; return; }
        for (int i = 0; i < cur; i++)
        {
            if (!SackExtend(i, seq, end)) continue;
            for (; i > 0; i--) Swap(i, i - 1);
            if (cur > 1) SackMaybeCoalesce();
            return;
        }
        int n = cur;
        if (n >= NumSacks) { n--; _numSacks--; }
        for (int i = n; i > 0; i--) { _sackStart[i] = _sackStart[i - 1]; _sackEnd[i] = _sackEnd[i - 1]; }
        _sackStart[0] = seq;
        _sackEnd[0] = end;
        _numSacks++;
    }

    private void Swap(int a, int b)
    {
        (_sackStart[a], _sackStart[b]) = (_sackStart[b], _sackStart[a]);
        (_sackEnd[a], _sackEnd[b]) = (_sackEnd[b], _sackEnd[a]);
    }

    /// <summary>tcp_sack_maybe_coalesce: the front block swallows the blocks it now reaches.</summary>
    private void SackMaybeCoalesce()
    {
        for (int i = 1; i < _numSacks;)
        {
            if (SackExtend(0, _sackStart[i], _sackEnd[i]))
            {
                _numSacks--;
                for (int j = i; j < _numSacks; j++) { _sackStart[j] = _sackStart[j + 1]; _sackEnd[j] = _sackEnd[j + 1]; }
                continue;
            }
            i++;
        }
    }

    /// <summary>tcp_sack_remove: blocks rcv_nxt has passed go.</summary>
    private void SackRemove()
    {
        if (_ofo.Count == 0) { _numSacks = 0; return; }
        for (int i = 0; i < _numSacks;)
        {
            if (!Before(RcvNxt, _sackStart[i]))
            {
                for (int j = i + 1; j < _numSacks; j++) { _sackStart[j - 1] = _sackStart[j]; _sackEnd[j - 1] = _sackEnd[j]; }
                _numSacks--;
                continue;
            }
            i++;
        }
    }

    // ================= output =================

    /// <summary>tcp_transmit_skb for a segment without data: the window (tcp_select_window), timestamps, the D-SACK
    /// and SACK blocks that fit; IP with DF, TOS 0, the default TTL and the socket's IP ID counter. Sending an ACK
    /// ends a pending delayed ACK and uses up a quick ACK (tcp_event_ack_sent).</summary>
    private void Transmit(NetStack stack, byte flags, bool retransmit = false)
    {
        var ns = Namespace;
        int optLen = TstampOk ? 12 : 0;
        int blocks = 0;
        if (SackOk && (_dsack || _numSacks > 0))
        {
            blocks = Math.Min((_dsack ? 1 : 0) + _numSacks, TstampOk ? 3 : 4);
            optLen += 4 + 8 * blocks;
        }
        var skb = stack.NewFrame(IpHeaderLength + 20 + optLen);
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = skb.LinearData;
        bool wasScheduled = (_pending & AckSched) != 0;
        var t = WriteHeaders(p, _ipId++, retransmit ? SndUna : SndNxt, flags, SelectWindow(), stack.Now);
        int o = 20;
        if (TstampOk)
        {
            BinaryPrimitives.WriteUInt32BigEndian(t[o..], 0x0101080Au);
            BinaryPrimitives.WriteUInt32BigEndian(t[(o + 4)..], TcpSecure.TsVal(stack.Now, TsOffset));
            BinaryPrimitives.WriteUInt32BigEndian(t[(o + 8)..], TsRecent);
            o += 12;
        }
        if (blocks > 0)
        {
            t[o] = 1; t[o + 1] = 1; t[o + 2] = TcpOptionKinds.Sack; t[o + 3] = (byte)(2 + 8 * blocks);
            o += 4;
            int k = 0;
            if (_dsack)
            {
                BinaryPrimitives.WriteUInt32BigEndian(t[o..], _dsackStart);
                BinaryPrimitives.WriteUInt32BigEndian(t[(o + 4)..], _dsackEnd);
                o += 8;
                k++;
                _dsack = false;
            }
            for (int i = 0; k < blocks; i++, k++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(t[o..], _sackStart[i]);
                BinaryPrimitives.WriteUInt32BigEndian(t[(o + 4)..], _sackEnd[i]);
                o += 8;
            }
        }
        if ((flags & 0x01) != 0 && !retransmit)
        {
            SndNxt++;
            // tcp_write_xmit sent the FIN, the only segment out: tcp_schedule_loss_probe arms the tail loss probe at
            // 2·srtt + TCP_RTO_MIN, or sooner where the RTO would fire first.
            _rtxRtoNs = RtoNs;
            _probe = !_noRttSample;
            ArmRtx(stack, stack.Now + (_probe ? Math.Min(2 * _srttNs + 200_000_000, _rtxRtoNs) : _rtxRtoNs));
        }
        FinishChecksum(p);
        // tcp_event_ack_sent: a quick ACK used (if one was due), the delayed-ACK timer and pending state cleared.
        if (_quick > 0 && wasScheduled)
        {
            if (_quick <= 1) { _quick = 0; _atoNs = AtoMinNs; }
            else _quick--;
        }
        _pending = 0;
        DelackDueNs = long.MaxValue;
        // tcp_transmit_skb: OutSegs counts segments that carry something new or nothing at all.
        if (!retransmit) ns.Mib[SnmpCounter.TcpOutSegs]++;
        LocalOut(stack, skb);
    }

    /// <summary>The segment leaves: ip_queue_xmit → ip_local_out, or inet6_csk_xmit / ip6_xmit (Ip6OutRequests) →
    /// ip6_local_out, a link-local peer by the device its SYN came in on.</summary>
    internal void LocalOut(NetStack stack, Skb skb)
    {
        skb.ResetNetworkHeader();
        if (!V6)
        {
            Ipv4Output.LocalOut(stack, Namespace, skb, null, CtInfo.None);
            return;
        }
        Namespace.Mib[SnmpCounter.Ip6OutRequests]++;
        Ipv6Output.LocalOut(stack, Namespace, skb, OutDev6, sendSkb: false);
    }

    /// <summary>inet_opt: the IP options this connection's segments carry, echoed from the SYN (tcp_v4_save_options);
    /// their bytes are allocated once per connection, only when there are any.</summary>
    internal IpOptions IpOpt;
    private byte[]? _ipOptData;

    /// <summary>The IPv4 header's length on this connection's segments (ip_options_build adds inet_opt's).</summary>
    internal int IpHeaderLength => V6 ? 40 : 20 + IpOpt.OptLen;

    /// <summary>tcp_v4_save_options: the options an answer to the SYN <paramref name="header"/> takes (none when
    /// __ip_options_echo refuses them).</summary>
    internal void SaveIpOptions(ReadOnlySpan<byte> header, in IpOptions received)
    {
        var data = new byte[Ipv4Options.MaxLength];
        if (!Ipv4Options.Echo(header, received, Namespace, data, out var opt) || opt.OptLen == 0) return;
        IpOpt = opt;
        _ipOptData = data;
    }

    /// <summary>The IPv4 header (TOS 0, DF, the default TTL, inet_opt built by ip_options_build: to a reversed source
    /// route's first hop) and the fixed TCP header of a segment this connection sends, sized by <paramref name="p"/>
    /// (the options follow at offset 20 of the returned TCP header).</summary>
    /// <remarks>IPv6 (ip6_xmit from inet6_csk_xmit or tcp_v6_send_synack): traffic class <paramref name="tclass"/>
    /// (np->tclass, 0, for the socket's own segments), the automatic flow label (np->flow_label unset, no
    /// flowlabel_reflect: ip6_make_flowlabel, 0 with net.ipv6.auto_flowlabels 0 as the scenarios set it), the hop limit
    /// of the route's device (ip6_dst_hoplimit).</remarks>
    internal Span<byte> WriteHeaders(Span<byte> p, ushort ipId, uint seq, byte flags, ushort window, long nowNs, byte tclass = 0)
    {
        if (V6)
        {
            Span<byte> a = stackalloc byte[32];
            BinaryPrimitives.WriteUInt128BigEndian(a, LocalAddr6);
            BinaryPrimitives.WriteUInt128BigEndian(a[16..], RemoteAddr6);
            int hop = OutDev6 != null ? Namespace.HopLimit6(OutDev6) : 64;
            Ipv6View.Write(p, p.Length - 40, IpProtocols.Tcp, (byte)hop, a[..16], a[16..], tclass,
                Ip.Ipv6FlowLabel.Make(Namespace, LocalAddr6, RemoteAddr6, IpProtocols.Tcp, (uint)LocalPort << 16 | RemotePort));
        }
        else
            PacketFactory.Ipv4HeaderWithOptions(p, 0, p.Length, ipId, true, (byte)Namespace.DefaultTtl, IpProtocols.Tcp, LocalAddr,
                IpOpt.Srr != 0 ? IpOpt.Faddr : RemoteAddr, IpOpt, _ipOptData, RemoteAddr, Ipv4Options.Timestamp32(nowNs));
        var t = p[IpHeaderLength..];
        t.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(t, LocalPort);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], RemotePort);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], RcvNxt);
        t[12] = (byte)(t.Length / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], window);
        return t;
    }

    /// <summary>The complete TCP checksum of the datagram <paramref name="p"/> (no offload on this path), over the
    /// connection's addresses (__tcp_v4_send_check: the real peer, not a source route's first hop).</summary>
    internal void FinishChecksum(Span<byte> p)
    {
        var t = p[IpHeaderLength..];
        if (V6)
        {
            // __tcp_v6_send_check over the IPv6 pseudo-header.
            BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV6(p.Slice(8, 16), p.Slice(24, 16), IpProtocols.Tcp, t.Length)));
            return;
        }
        Span<byte> remote = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(remote, RemoteAddr);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(p.Slice(12, 4), remote, IpProtocols.Tcp, t.Length)));
    }

    // ================= the reader =================

    /// <summary>The reader of an accepted connection: tcp_recvmsg copies everything queued (skipping what a partial
    /// retransmission repeated), then tcp_cleanup_rbuf may ACK; on EOF the reader closes, which sends the FIN
    /// (CLOSE_WAIT → LAST_ACK); on a reset it stops.</summary>
    /// <summary>In-order bytes not yet copied (rcv_nxt - copied_seq).</summary>
    public override long ReadableBytes => Accepted ? (uint)(RcvNxt - CopiedSeq) : 0;

    public override void Read(NetStack stack)
    {
        if (!Accepted) return;
        int copied = 0;
        bool eof = false;
        while (_receive.TryDequeue(out var s))
        {
            var pkt = stack.Linearize(s.Skb);
            int dataLen = (int)(s.EndSeq - s.Seq) - (s.Fin ? 1 : 0);
            int skip = Before(s.Seq, CopiedSeq) ? (int)(CopiedSeq - s.Seq) : 0;
            if (skip < dataLen)
            {
                var data = pkt.Slice(s.DataOffset + skip, dataLen - skip);
                if (Namespace.Sockets.Recording) (_sha ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256)).AppendData(data);
                copied += data.Length;
                _bytesRead += data.Length;
                CopiedSeq += (uint)data.Length;
                RcvSpaceAdjust();
            }
            if (s.Fin) { CopiedSeq++; eof = true; }
            RmemAlloc -= s.Truesize;
            ForwardAlloc += s.Truesize;
            s.Skb.Free();
        }
        // sk_mem_reclaim: whole pages of the reserve go back.
        if (ForwardAlloc >= PageSize) ForwardAlloc &= PageSize - 1;
        if (copied > 0) NoteRead(0, copied, stack.Now);
        if (copied > 0 && State != TcpState.Closed) CleanupRbuf(stack, copied);
        if (eof && State == TcpState.CloseWait)
        {
            Finish("fin");
            // tcp_close → tcp_send_fin: FIN|ACK, LAST_ACK.
            State = TcpState.LastAck;
            Transmit(stack, 0x11);
        }
        else if (_reset) Finish("rst");
    }

    private string _end = "open";

    /// <summary>The stream is over for the reader (EOF or reset).</summary>
    private void Finish(string end)
    {
        if (_end != "open") return;
        _end = end;
        UpdateRecord();
    }

    /// <summary>The connection's line in sockets.txt.</summary>
    internal void UpdateRecord()
    {
        ulong sha = 0;
        Span<byte> h = stackalloc byte[32];
        if (_sha != null)
        {
            _sha.GetCurrentHash(h);
            sha = BinaryPrimitives.ReadUInt64BigEndian(h);
        }
        else
        {
            SHA256.HashData(ReadOnlySpan<byte>.Empty, h);
            sha = BinaryPrimitives.ReadUInt64BigEndian(h);
        }
        Record = new ConnectionRecord(Peer, _bytesRead, sha, _end);
    }

    public override void WriteDump(StringBuilder sb) { }

    // ================= helpers =================

    private void Free(Skb skb, DropReason reason)
    {
        if (reason == DropReason.None) skb.Free();
        else InetProtocol.DropDelivered(Namespace, skb, reason);
    }

    private void ReleaseQueued(Segment s, DropReason reason)
    {
        RmemAlloc -= s.Truesize;
        ForwardAlloc += s.Truesize;
        Free(s.Skb, reason);
    }
}
