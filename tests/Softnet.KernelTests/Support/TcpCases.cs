using Softnet.Transport;

namespace Softnet.KernelTests.Support;

/// <summary>
/// The client traffic of each TCP receive case against Scenarios/tcp-host (server 10.77.0.1, listeners :5001 default
/// and :5002 with SO_RCVBUF 65536; client 10.77.0.2 with a port per case). Segments are 1448 bytes (mss 1460 less
/// the timestamp option). Every case ends with the client's FIN, the server's FIN|ACK (its reader closes on EOF) and
/// the client's ACK of it 100 ms later, after a pause of 150 ms before the FIN so that delayed-ACK timers (40 ms)
/// have fired in both the kernel and Softnet, and nothing is pending when the capture ends.
/// <see cref="For(string, bool)"/> with v6 runs the same case over IPv6 against Scenarios/tcp6-host (server
/// 2001:db8:4d::1, client ::2): segments of 1428 bytes (mss 1440 less the timestamp option), the same geometry.
/// </summary>
public static class TcpCases
{
    public const string Client4 = "10.77.0.2", Server4 = "10.77.0.1";
    /// <summary>Scenarios/tcp6-host's addresses, the IPv6 cases'.</summary>
    public const string Client6 = "2001:db8:4d::2", Server6 = "2001:db8:4d::1";

    /// <summary>The cases also run over IPv6 (Scenarios/tcp6-host).</summary>
    public static readonly string[] Names6 = ["inorder", "reorder", "loss", "duplicate", "fin-data", "rst", "rcvbuf", "thirdack", "delack", "closed-port", "synack-rtx", "fin-rtx", "syncookies", "dual-stack", "icmp6-err", "small-nopsh", "ooo-mss"];

    [ThreadStatic] private static bool t_v6;
    private static string Client => t_v6 ? Client6 : Client4;
    private static string Server => t_v6 ? Server6 : Server4;
    /// <summary>The full-sized segment: the MSS less the timestamp option (1460 or, over IPv6, 1440).</summary>
    private static int Mss => t_v6 ? 1428 : 1448;

    /// <summary>Case <paramref name="name"/> over IPv6 (tcp6-host) or IPv4 (tcp-host).</summary>
    public static TcpCapture For(string name, bool v6)
    {
        bool was = t_v6;
        t_v6 = v6;
        try { return For(name); }
        finally { t_v6 = was; }
    }

    public static readonly string[] Names = ["inorder", "reorder", "loss", "duplicate", "fin-data", "rst", "rcvbuf", "thirdack", "delack", "closed-port", "synack-rtx", "fin-rtx", "syncookies", "small-segs", "mid-segs", "small-nopsh", "ooo-mss"];

    public static TcpCapture For(string name) => name switch
    {
        "small-segs" => SmallSegments(),
        "mid-segs" => MidSegments(),
        "small-nopsh" => SmallSegmentsWithoutPsh(),
        "ooo-mss" => OutOfOrderMss(),
        "inorder" => InOrder(),
        "reorder" => Reorder(),
        "loss" => Loss(),
        "duplicate" => Duplicate(),
        "fin-data" => FinWithData(),
        "rst" => ClientReset(),
        "rcvbuf" => RcvBuf(),
        "thirdack" => ThirdAckData(),
        "delack" => DelayedAcks(),
        "closed-port" => ClosedPort(),
        "synack-rtx" => SynAckRetransmit(),
        "fin-rtx" => FinRetransmit(),
        "syncookies" => Syncookies(),
        "synflood" => SynFlood(),
        "syn-data" => SynData(),
        "tfo-cookies" => FastOpenCookies(),
        "tcp-redirect" => TcpRedirect(),
        "tfo-overflow" => FastOpenOverflow(),
        "dual-stack" => DualStack(),
        "icmp6-err" => Icmp6Errors(),
        _ => throw new ArgumentException($"no TCP case '{name}'"),
    };

    private static (TcpCapture Cap, TcpFlow Flow) Open(ushort clientPort, ushort serverPort = 5001, int thirdAckData = 0)
    {
        var cap = new TcpCapture();
        var f = cap.Flow(Client, clientPort, Server, serverPort);
        f.SendSyn().SendAck(thirdAckData);
        cap.Pause(48);
        return (cap, f);
    }

    private static TcpCapture Close(TcpCapture cap, TcpFlow f, int finData = 0)
    {
        cap.Pause(150);
        f.SendFin(finData, gapMs: 100);
        f.AckServerFin();
        return cap;
    }

    /// <summary>12 PSH segments then 12 without PSH, 1 ms apart, reader draining: the quick-ACK phase, the window
    /// growing 65160 → 67, 70, 73, 75, 78, 79 (×1024), then ACKs every second full segment, and a delayed ACK for
    /// the odd last one.</summary>
    public static TcpCapture InOrder()
    {
        var (cap, f) = Open(40001);
        for (int i = 0; i < 12; i++) f.Data(Mss);
        for (int i = 0; i < 12; i++) f.Data(Mss, psh: false);
        return Close(cap, f);
    }

    /// <summary>Segments 0, 2, 4, 5, 1, 3, 6 (5 ms apart): OFO queue, SACK blocks newest first, coalescing of the
    /// adjacent 4-5 island, each hole filled (the last one empties the OFO queue: immediate ACK).</summary>
    public static TcpCapture Reorder()
    {
        var (cap, f) = Open(40002);
        long b = f.Lose(7 * Mss);
        foreach (int k in new[] { 0, 2, 4, 5, 1, 3, 6 }) f.Segment(b + k * Mss, Mss, gapMs: 5);
        return Close(cap, f);
    }

    /// <summary>Segment 2 of 8 is lost; 3..5 arrive (dup ACKs with a growing SACK block); 20 ms later segment 2 is
    /// retransmitted (one ACK covering everything), then 6 and 7 in order.</summary>
    public static TcpCapture Loss()
    {
        var (cap, f) = Open(40003);
        f.Data(Mss).Data(Mss);
        long lost = f.Lose(Mss);
        f.Data(Mss).Data(Mss).Data(Mss);
        cap.Pause(20);
        f.Segment(lost, Mss, gapMs: 5);
        f.Data(Mss).Data(Mss);
        return Close(cap, f);
    }

    /// <summary>Network duplicates: an in-order segment twice (entirely old: D-SACK, DelayedACKLost), an out-of-order
    /// one twice (D-SACK of the OFO duplicate), the hole filled, then a retransmission overlapping 500 old bytes
    /// (D-SACK of the old part, the new part queued).</summary>
    public static TcpCapture Duplicate()
    {
        var (cap, f) = Open(40004);
        f.Data(Mss, gapMs: 5).Data(Mss, gapMs: 5).Duplicate(5);
        long hole = f.Lose(Mss);
        f.Data(Mss, gapMs: 5).Duplicate(5);
        f.Segment(hole, Mss, gapMs: 5);
        long end = f.Sent;
        f.Lose(Mss - 500);
        f.Segment(end - 500, Mss, gapMs: 5);
        return Close(cap, f);
    }

    /// <summary>Two segments, then 500 bytes carried by the FIN itself (FIN|PSH|ACK).</summary>
    public static TcpCapture FinWithData()
    {
        var (cap, f) = Open(40005);
        f.Data(Mss).Data(1000);
        return Close(cap, f, finData: 500);
    }

    /// <summary>Three segments; an in-window RST that is not at rcv_nxt (challenge ACK); the exact RST (connection
    /// reset: the reader sees ECONNRESET); then data on the dead four-tuple (RST from the no-socket path).</summary>
    public static TcpCapture ClientReset()
    {
        var (cap, f) = Open(40006);
        f.Data(Mss).Data(Mss).Data(Mss);
        cap.Pause(50);
        long at = f.Lose(1000);
        f.SendRst(gapMs: 50);
        f.Rewind(at);
        f.SendRst(gapMs: 50);
        f.Data(100, gapMs: 100);
        return cap;
    }

    /// <summary>The SO_RCVBUF 65536 listener: window scale 1 and the locked buffer's windows (34028, 35476, 36924,
    /// 38372, 39820, then 40240 raw with a draining reader).</summary>
    public static TcpCapture RcvBuf()
    {
        var (cap, f) = Open(40007, 5002);
        // 5 ms apart: the kernel's reader (the injector's select loop) has read each segment before the next, as
        // Softnet's does; 1 ms gaps left it behind now and then, and the locked buffer's windows showed it.
        for (int i = 0; i < 12; i++) f.Data(Mss, gapMs: 5);
        return Close(cap, f);
    }

    /// <summary>The third ACK carries 100 bytes with PSH (queued after the state change, ACKed at once), then two
    /// segments.</summary>
    public static TcpCapture ThirdAckData()
    {
        var (cap, f) = Open(40008, thirdAckData: 100);
        f.Data(Mss).Data(Mss);
        return Close(cap, f);
    }

    /// <summary>30 segments without PSH, 20 ms apart, reader draining (TV-7): the quick-ACK credit runs out, then an ACK
    /// for every second full segment; the odd last one waits for the 40 ms delayed-ACK timer (DelayedACKs).</summary>
    public static TcpCapture DelayedAcks()
    {
        var (cap, f) = Open(40009);
        for (int i = 0; i < 29; i++) f.Data(Mss, psh: false, gapMs: 20);
        return Close(cap, f);
    }

    /// <summary>70 PSH segments of 500 bytes, 1 ms apart, reader draining: below TCP_MSS_DEFAULT with PSH, so rcv_mss
    /// stays at tcp_initialize_rcv_mss's 536; the quick-ACK phase ends and every second segment is ACKed (two exceed
    /// rcv_mss), the fast path taking segments once the window stops growing.</summary>
    public static TcpCapture SmallSegments()
    {
        var (cap, f) = Open(40050);
        for (int i = 0; i < 70; i++) f.Data(500);
        return Close(cap, f);
    }

    /// <summary>70 segments of 500 bytes without PSH, 1 ms apart, reader draining: two alike in a row set rcv_mss to
    /// 500 (tcp_measure_rcv_mss trusts a PSH-less segment as full-sized), so the quick-ACK phase ends and every second
    /// segment is ACKed.</summary>
    public static TcpCapture SmallSegmentsWithoutPsh()
    {
        var (cap, f) = Open(40052);
        for (int i = 0; i < 70; i++) f.Data(500, psh: false);
        return Close(cap, f);
    }

    /// <summary>The first segment is lost; three full-sized segments arrive out of order before any in-order data
    /// (tcp_data_queue_ofo measures them since 6.17: rcv_mss, and the scaling ratio from their truesize, which lets
    /// tcp_grow_window open the SACKing duplicate ACKs' window), then the hole is filled and two more follow.</summary>
    public static TcpCapture OutOfOrderMss()
    {
        var (cap, f) = Open(40053);
        long hole = f.Lose(Mss);
        f.Data(Mss, gapMs: 5).Data(Mss, gapMs: 5).Data(Mss, gapMs: 5);
        f.Segment(hole, Mss, gapMs: 5);
        f.Data(Mss, gapMs: 5).Data(Mss, gapMs: 5);
        return Close(cap, f);
    }

    /// <summary>40 PSH segments of 1000 bytes (between 536 and the MSS), 1 ms apart, reader draining: rcv_mss follows
    /// the segment size (tcp_measure_rcv_mss), so each segment alone exceeds it.</summary>
    public static TcpCapture MidSegments()
    {
        var (cap, f) = Open(40051);
        for (int i = 0; i < 40; i++) f.Data(1000);
        return Close(cap, f);
    }

    /// <summary>Segments to a port nobody listens on (TV-11's closed port): a SYN (RST|ACK, ack = seq + 1), a stray
    /// ACK with data (RST, seq = SEG.ACK), a bare FIN|ACK (RST) and a RST (no answer).</summary>
    public static TcpCapture ClosedPort()
    {
        var cap = new TcpCapture();
        cap.Flow(Client, 40010, Server, 5999).SendSyn(gapMs: 10);
        // Never synchronised: its ACK field is whatever the capture says (ServerIsn 0), sent unchanged to the kernel.
        var stray = cap.Flow(Client, 40011, Server, 5999, clientIsn: 0x20000000);
        stray.Data(20, gapMs: 10).SendFin(gapMs: 10).SendRst(gapMs: 10);
        return cap;
    }

    /// <summary>The third ACK comes 1.3 s after the SYN: the request timer sends the SYN-ACK again at 1 s
    /// (TCPSynRetrans, TCPTimeouts); the retransmission leaves no RTT sample (the TS echo gives it), then data.</summary>
    public static TcpCapture SynAckRetransmit()
    {
        var cap = new TcpCapture();
        var f = cap.Flow(Client, 40012, Server, 5001);
        f.SendSyn(gapMs: 1300).SendAck();
        cap.Pause(48);
        for (int i = 0; i < 4; i++) f.Data(Mss);
        return Close(cap, f);
    }

    /// <summary>The client takes 400 ms to ACK the server's FIN: LAST_ACK's retransmission timer sends the FIN again
    /// after the RTO (the handshake's 1 ms RTT + TCP_RTO_MIN: about 201 ms).</summary>
    public static TcpCapture FinRetransmit()
    {
        var (cap, f) = Open(40013);
        f.Data(Mss).Data(Mss);
        cap.Pause(150);
        f.SendFin(gapMs: 400);
        f.AckServerFin();
        return cap;
    }

    /// <summary>tcp6-host only: an IPv4 client to the `[::]:5003` listener (dual-stack, bindv6only 0): the connection
    /// is IPv4 on the wire and accept() reports its peer as ::ffff:10.77.0.2; then an IPv6 one to the same listener.</summary>
    public static TcpCapture DualStack()
    {
        var cap = new TcpCapture();
        var f = cap.Flow(Client4, 40016, Server4, 5003);
        f.SendSyn().SendAck();
        cap.Pause(48);
        f.Data(1448).Data(1000);
        cap.Pause(150);
        f.SendFin(gapMs: 100);
        f.AckServerFin(gapMs: 10);
        var g = cap.Flow(Client6, 40017, Server6, 5003);
        g.SendSyn().SendAck();
        cap.Pause(48);
        g.Data(1428).Data(500);
        return Close(cap, g);
    }

    /// <summary>tcp6-host only, tcp_v6_err: a port unreachable (fatal for icmpv6_err_convert) about a request's SYN-ACK
    /// drops the request (ListenDrops), so its third ACK finds only the listener (RST); an address unreachable (not
    /// fatal) leaves the other request, which completes and carries data; an error about a connection that does not
    /// exist counts Icmp6InErrors.</summary>
    public static TcpCapture Icmp6Errors()
    {
        var cap = new TcpCapture();
        var dead = cap.Flow(Client6, 40020, Server6, 5001);
        dead.SendSyn(gapMs: 5).SendIcmp6Error(1, 4, gapMs: 5).SendAck(gapMs: 5);
        var stray = cap.Flow(Client6, 40022, Server6, 5001);
        stray.SendIcmp6Error(1, 4, gapMs: 5);
        var f = cap.Flow(Client6, 40021, Server6, 5001);
        f.SendSyn(gapMs: 5).SendIcmp6Error(1, 3, gapMs: 5).SendAck();
        cap.Pause(48);
        f.Data(1428).Data(300);
        return Close(cap, f);
    }

    /// <summary>129 SYNs nobody completes fill :5001's request queue past its backlog (128); the next SYN (no
    /// timestamps) is answered with a cookie (SyncookiesSent, TCPReqQFullDoCookies; only the MSS option), a stray ACK
    /// fails the check (SyncookiesFailed, RST) and the right ACK makes the connection (SyncookiesRecv,
    /// PassiveOpens), which then carries data and closes. All within 1 s, before the first requests' SYN-ACKs go
    /// again.</summary>
    /// <summary>A SYN carrying 300 bytes (TCP Fast Open without a cookie option), the third ACK, more data, the close:
    /// under tcp_fastopen's server flags the SYN's data is the reader's before the handshake completes; otherwise the
    /// SYN-ACK leaves it unacknowledged and the client sends it again after the handshake.</summary>
    public static TcpCapture SynData()
    {
        var cap = new TcpCapture();
        var f = cap.Flow(Client, 40020, Server, 5001);
        f.SendSyn(data: 300).SendAck();
        cap.Pause(48);
        // What the server did not acknowledge goes again (a no-op for a Fast Open server: old data, D-SACKed).
        f.Segment(0, 300);
        f.Data(Mss).Data(1000);
        return Close(cap, f);
    }

    /// <summary>The net.ipv4.tcp_fastopen_key the Fast Open cookie cases set (<see cref="FastOpenCookies"/>).</summary>
    public const string FastOpenKey = "01234567-89abcdef-fedcba98-76543210";

    /// <summary>The cookie a server keyed by <see cref="FastOpenKey"/> gives this case's client (its SYN's source and
    /// destination addresses, as they stand in the header), as the option carries it.</summary>
    public static byte[] FastOpenCookie(bool v6)
    {
        var key = TcpFastOpen.ParseKey(FastOpenKey)!.Value;
        byte[] addrs = v6 ? [.. Frames6.Addr(Client6), .. Frames6.Addr(Server6)] : [.. Frames.Ip4(Client4), .. Frames.Ip4(Server4)];
        var c = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(c, TcpFastOpen.Cookie(addrs, key.K0, key.K1));
        return c;
    }

    /// <summary>Fast Open with cookies: a SYN asking for a cookie (empty option, no data) gets it in the SYN-ACK
    /// (TCPFastOpenCookieReqd); a SYN with that cookie and 1000 bytes makes a child that has the data at once
    /// (TCPFastOpenPassive); a SYN with a wrong cookie and 1000 bytes is an ordinary request whose SYN-ACK leaves the
    /// data unacknowledged and carries the right cookie (TCPFastOpenPassiveFail), so the client sends the data again.
    /// Each connection then carries a little more (a segment short of the MSS: the window keeps tcp_init_buffer_space's
    /// clamp, one untrimmed advmss below the full space) and closes.</summary>
    public static TcpCapture FastOpenCookies()
    {
        var cap = new TcpCapture();
        var ask = cap.Flow(Client, 40030, Server, 5001);
        ask.SendSyn(fastOpen: []).SendAck();
        var good = cap.Flow(Client, 40031, Server, 5001);
        good.SendSyn(data: 1000, fastOpen: FastOpenCookie(t_v6)).SendAck();
        var bad = cap.Flow(Client, 40032, Server, 5001);
        byte[] wrong = FastOpenCookie(t_v6);
        wrong[0] ^= 0x5A;
        bad.SendSyn(data: 1000, fastOpen: wrong).SendAck();
        cap.Pause(48);
        bad.Segment(0, 1000);
        ask.Data(700);
        good.Data(500);
        cap.Pause(150);
        foreach (var f in new[] { ask, good, bad }) f.SendFin(gapMs: 100).AckServerFin();
        return cap;
    }

    /// <summary>129 SYNs with 100 bytes each from as many ports, none completed: under tcp_fastopen's server flags
    /// without cookies the first 128 make Fast Open children (the reader has their data), which fill the listener's
    /// Fast Open queue (its backlog); the last is an ordinary request (TCPFastOpenListenOverflow), its data
    /// unacknowledged.</summary>
    public static TcpCapture FastOpenOverflow()
    {
        var cap = new TcpCapture();
        for (int k = 0; k < 129; k++) cap.Flow(Client, (ushort)(43000 + k), Server, 5001).SendSyn(gapMs: 0.5, data: 100);
        cap.Pause(10);
        return cap;
    }

    /// <summary>The counters a case compares (names starting with these). The Fast Open overflow case leaves its 128
    /// children open, and the kernel's reader, exiting before the counters are read, closes them: their FINs go after
    /// the capture but count in the Tcp MIB (OutSegs), so it compares TcpExt alone.</summary>
    public static string[] ComparedCounters(string name) => name == "tfo-overflow" ? ["TcpExt"] : ["Tcp"];

    /// <summary>The server's routes a case needs beyond the scenario's (ip.batch lines for its eth0).</summary>
    public static string ServerRoutes(string name) => name == "tcp-redirect" ? "route add 10.88.0.0/24 via 10.77.0.2 dev eth0\n" : "";

    /// <summary>A client behind the gateway 10.77.0.2 (<see cref="ServerRoutes"/>): after the handshake the gateway
    /// redirects the server to 10.77.0.9 (unresolved) quoting a sequence outside the connection's window (tcp_v4_err:
    /// OutOfWindowIcmps, ignored), then the next one it would send (between snd_una and snd_nxt: do_redirect →
    /// __ip_do_redirect, which asks for the new gateway's address, neigh_event_send, while accept_redirects allows).
    /// Data and the close follow, still by the old gateway.</summary>
    public static TcpCapture TcpRedirect()
    {
        var cap = new TcpCapture();
        var f = cap.Flow("10.88.0.5", 40040, Server4, 5001);
        f.SendSyn().SendAck();
        f.SendIcmpRedirect("10.77.0.2", "10.77.0.9", 100_000, gapMs: 5);
        f.SendIcmpRedirect("10.77.0.2", "10.77.0.9", 1, gapMs: 5);
        cap.Pause(20);
        f.Data(1000);
        return Close(cap, f);
    }

    /// <summary>20 SYNs from as many ports, none completed: the request queue as tcp_max_syn_backlog bounds it without
    /// syncookies.</summary>
    public static TcpCapture SynFlood()
    {
        var cap = new TcpCapture();
        for (int k = 0; k < 20; k++) cap.Flow(Client, (ushort)(42000 + k), Server, 5001).SendSyn(gapMs: 0.5);
        cap.Pause(10);
        return cap;
    }

    public static TcpCapture Syncookies()
    {
        var cap = new TcpCapture();
        for (int k = 0; k < 129; k++) cap.Flow(Client, (ushort)(41000 + k), Server, 5001).SendSyn(gapMs: 0.5);
        cap.Pause(10);
        // A stray ACK (no SYN of its own: sent unchanged to the kernel) is checked as a cookie and fails.
        cap.Flow(Client, 40015, Server, 5001, clientIsn: 0x30000000, timestamps: false).SendAck(gapMs: 5);
        var f = cap.Flow(Client, 40014, Server, 5001, timestamps: false);
        f.SendSyn(gapMs: 5, cookie: true).SendAck();
        cap.Pause(48);
        int full = t_v6 ? 1440 : 1460;
        f.Data(full).Data(full).Data(500);
        return Close(cap, f);
    }
}
