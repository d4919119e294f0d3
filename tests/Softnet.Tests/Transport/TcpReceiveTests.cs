using System.Buffers.Binary;
using System.Security.Cryptography;
using Softnet.Packets;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Transport;

/// <summary>
/// TCP receive against the behaviour recorded on Linux 6.18 (the test vectors of the receive-side notes): a client at
/// 10.77.0.2 talks to listeners on srv 10.77.0.1 (5001: default buffer; 5002: SO_RCVBUF 65536), its segments built
/// as a Linux client sends them (SYN: mss 1460, sackOK, TS, nop, wscale 7; then NOP NOP TS on every segment).
/// </summary>
public class TcpReceiveTests
{
    private const string Vs = "02:00:00:77:00:01", Vc = "02:00:00:77:00:02";
    private const uint ClientIsn = 0x10000000;

    private sealed class Conn
    {
        public readonly ScenarioRig Rig = new("tcp-host");
        public ushort Sport = 41000, Dport = 5001;
        public uint Ts = 1_000_000;
        public uint ServerIsn;
        public int Seen;

        public Conn() => Rig.Ns("srv").Sockets.StartRecording();

        public void Send(byte flags, uint seq, uint ack, int payload = 0, byte[]? options = null, ushort win = 502, long gapNs = 1_000_000)
        {
            options ??= TsOption(Ts++, ServerTsVal);
            Rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, Segment(flags, seq, ack, payload, options, win, Sport, Dport)), gapNs);
        }

        public uint ServerTsVal;

        /// <summary>The server's segments sent since the last call.</summary>
        public List<byte[]> Replies()
        {
            var all = Rig.Tx("srv", "vs").Where(f => f.Length > 34 && f[12] == 8 && f[13] == 0 && f[14 + 9] == 6).ToList();
            var r = all.Skip(Seen).ToList();
            Seen = all.Count;
            foreach (var f in r)
                if (Options(f) is { Length: >= 12 } o && BinaryPrimitives.ReadUInt32BigEndian(o) == 0x0101080A) ServerTsVal = BinaryPrimitives.ReadUInt32BigEndian(o.AsSpan(4));
            return r;
        }

        /// <summary>SYN, the SYN-ACK, the third ACK.</summary>
        public void Handshake()
        {
            Send(0x02, ClientIsn, 0, options: SynOptions(Ts++), win: 64240);
            var sa = Assert.Single(Replies());
            ServerIsn = Seq(sa);
            ServerTsVal = BinaryPrimitives.ReadUInt32BigEndian(Options(sa).AsSpan(8));
            Send(0x10, ClientIsn + 1, ServerIsn + 1);
            Assert.Empty(Replies());
        }

        public TcpSock Sock => ((TcpListenSock)Rig.Ns("srv").Sockets.All[Dport == 5001 ? 0 : 1]).Accepted.Single();
        public SnmpMib Mib => Rig.Ns("srv").Mib;
    }

    private static byte[] SynOptions(uint ts) => [2, 4, 0x05, 0xb4, 4, 2, 8, 10, .. Be(ts), 0, 0, 0, 0, 1, 3, 3, 7];
    private static byte[] TsOption(uint ts, uint ecr) => [1, 1, 8, 10, .. Be(ts), .. Be(ecr)];
    private static byte[] Be(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return b; }

    private static byte[] Segment(byte flags, uint seq, uint ack, int payload, byte[] options, ushort win, ushort sport, ushort dport)
    {
        int hl = 20 + ((options.Length + 3) & ~3);
        var ip = new byte[20 + hl + payload];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        ip[5] = 1;
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(12), A("10.77.0.2"));
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(16), A("10.77.0.1"));
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum.Compute(ip.AsSpan(0, 20)));
        var t = ip.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], dport);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = (byte)(hl / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], win);
        options.CopyTo(t[20..]);
        for (int i = 0; i < payload; i++) t[hl + i] = (byte)(seq + i);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(ip.AsSpan(12, 4), ip.AsSpan(16, 4), 6, t.Length)));
        return ip;
    }

    private static ReadOnlySpan<byte> Tcp(byte[] f) => f.AsSpan(14 + 20);
    private static uint Seq(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(Tcp(f)[4..]);
    private static uint Ack(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(Tcp(f)[8..]);
    private static byte Flags(byte[] f) => Tcp(f)[13];
    private static ushort Win(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(Tcp(f)[14..]);
    private static ushort IpId(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 4));
    private static byte[] Options(byte[] f) => Tcp(f)[20..((Tcp(f)[12] >> 4) * 4)].ToArray();

    /// <summary>The SACK blocks of a server segment relative to the client's ISN: "l-r l-r".</summary>
    private static string Sacks(byte[] f)
    {
        var o = Options(f);
        for (int i = 0; i + 1 < o.Length;)
        {
            if (o[i] == 1) { i++; continue; }
            if (o[i] == 5)
            {
                var parts = new List<string>();
                for (int k = i + 2; k + 8 <= i + o[i + 1]; k += 8)
                    parts.Add($"{BinaryPrimitives.ReadUInt32BigEndian(o.AsSpan(k)) - ClientIsn}-{BinaryPrimitives.ReadUInt32BigEndian(o.AsSpan(k + 4)) - ClientIsn}");
                return string.Join(' ', parts);
            }
            i += o[i + 1];
        }
        return "";
    }

    [Fact]
    public void The_syn_ack_carries_the_options_linux_chooses()
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: SynOptions(1_000_000), win: 64240);
        var sa = Assert.Single(c.Replies());
        // IP: 60 bytes, TOS 0, ID 0, DF, TTL 64.
        Assert.Equal("4500003c00004000", Convert.ToHexString(sa.AsSpan(14, 8)).ToLowerInvariant());
        Assert.Equal(64, sa[14 + 8]);
        // TCP: doff 10, SYN|ACK, window 65160 (45 × 1448), MSS 1460, SACK_PERM packed with TS, NOP + WS 10.
        Assert.Equal(0xa0, Tcp(sa)[12]);
        Assert.Equal(0x12, Flags(sa));
        Assert.Equal(65160, Win(sa));
        Assert.Equal(ClientIsn + 1, Ack(sa));
        var (isn, tsOff) = TcpSecure.SeqAndTsOff(0, A("10.77.0.1"), A("10.77.0.2"), 5001, 41000, c.Rig.Now);
        Assert.Equal(isn, Seq(sa));
        Assert.Equal("020405b40402080a" + TcpSecure.TsVal(c.Rig.Now, tsOff).ToString("x8") + "000f42400103030a",
            Convert.ToHexString(Options(sa)).ToLowerInvariant());
        Assert.True(Checksum.Verify(Tcp(sa), Checksum.PseudoHeaderV4(sa.AsSpan(14 + 12, 4), sa.AsSpan(14 + 16, 4), 6, Tcp(sa).Length)));
        Assert.Equal(1, c.Mib[SnmpCounter.TcpOutSegs]);
        Assert.Equal(0, c.Mib[SnmpCounter.TcpPassiveOpens]);
    }

    [Fact]
    public void So_rcvbuf_65536_gives_window_scale_1_and_the_same_window()
    {
        var c = new Conn { Dport = 5002 };
        c.Send(0x02, ClientIsn, 0, options: SynOptions(1), win: 64240);
        var sa = Assert.Single(c.Replies());
        Assert.Equal(65160, Win(sa));
        Assert.Equal("01030301", Convert.ToHexString(Options(sa).AsSpan(16)).ToLowerInvariant());
    }

    [Theory]
    [InlineData(new byte[] { 2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0 }, "020405b40402080a", 65160)]
    [InlineData(new byte[] { 2, 4, 5, 0xb4, 1, 3, 3, 7 }, "020405b40103030a", 64240)]
    [InlineData(new byte[] { 2, 4, 5, 0xb4, 1, 1, 4, 2 }, "020405b401010402", 64240)]
    [InlineData(new byte[] { 2, 4, 2, 0x18 }, "020405b4", 64240)]
    public void The_syn_ack_options_follow_what_the_syn_offered(byte[] syn, string prefix, int window)
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: syn, win: 64240);
        var sa = Assert.Single(c.Replies());
        Assert.StartsWith(prefix, Convert.ToHexString(Options(sa)).ToLowerInvariant());
        Assert.Equal(window, Win(sa));
    }

    [Fact]
    public void In_order_data_with_a_reader_is_acked_segment_by_segment_as_the_window_opens()
    {
        var c = new Conn();
        c.Handshake();
        var windows = new List<int>();
        var ids = new List<int>();
        uint seq = ClientIsn + 1;
        for (int i = 0; i < 24; i++)
        {
            c.Send(0x18, seq, c.ServerIsn + 1, payload: 1448);
            seq += 1448;
            var a = Assert.Single(c.Replies());
            Assert.Equal(0x10, Flags(a));
            Assert.Equal(seq, Ack(a));
            windows.Add(Win(a));
            ids.Add(IpId(a));
        }
        Assert.Equal([67, 70, 73, 75, 78, 79, 79, 79], windows.Take(8));
        Assert.All(windows.Skip(5), w => Assert.Equal(79, w));
        // A full socket numbers its datagrams (inet_id), one up per segment.
        Assert.Equal(Enumerable.Range(ids[0], 24).Select(i => (int)(ushort)i), ids);
        // The client's FIN is answered by one FIN|ACK once the reader has closed.
        c.Send(0x11, seq, c.ServerIsn + 1);
        var fin = Assert.Single(c.Replies());
        Assert.Equal(0x11, Flags(fin));
        Assert.Equal(seq + 1, Ack(fin));
        Assert.Equal(c.ServerIsn + 1, Seq(fin));
        Assert.Equal(TcpState.LastAck, c.Sock.State);
        c.Send(0x10, seq + 1, c.ServerIsn + 2);
        Assert.Empty(c.Replies());
        Assert.Equal(TcpState.Closed, c.Sock.State);
        var m = c.Mib;
        Assert.Equal(1, m[SnmpCounter.TcpPassiveOpens]);
        Assert.Equal(28, m[SnmpCounter.TcpInSegs]);
        Assert.Equal(26, m[SnmpCounter.TcpOutSegs]);
        Assert.Equal(2, m[SnmpCounter.TcpExtTCPPureAcks]);
        Assert.Equal(0, m[SnmpCounter.TcpExtTCPHPHits]);
        Assert.Equal(0, m[SnmpCounter.TcpExtDelayedACKs]);
        // sockets.txt: the stream's bytes and hash, ended by FIN.
        var stream = new List<byte>();
        for (uint s = ClientIsn + 1; s < seq; s += 1448)
            for (int i = 0; i < 1448; i++) stream.Add((byte)(s + i));
        string sha = Convert.ToHexString(SHA256.HashData(stream.ToArray()))[..16].ToLowerInvariant();
        Assert.Equal($"tcp listen 10.77.0.1:5001\n  connection 10.77.0.2:41000 bytes {24 * 1448} sha256 {sha} end fin\ntcp listen 10.77.0.1:5002 rcvbuf 65536\n",
            ScenarioDump.SocketsText(c.Rig.Ns("srv")));
    }

    [Fact]
    public void Without_a_reader_twenty_quick_acks_then_the_delayed_ack_timer()
    {
        var c = new Conn();
        c.Handshake();
        c.Rig.Stack.DeferReaders = true;
        uint seq = ClientIsn + 1;
        var windows = new List<int>();
        for (int i = 0; i < 40; i++)
        {
            c.Send(0x10, seq, c.ServerIsn + 1, payload: 1448);
            seq += 1448;
            windows.AddRange(c.Replies().Select(Win).Select(w => (int)w));
        }
        Assert.Equal([67, 70, 73, 75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64, 63, 62, 61, 60, 59], windows);
        // The timer (40 ms after the first unacknowledged segment) ACKs everything, the right edge kept.
        c.Send(0x10, seq, c.ServerIsn + 1, gapNs: 100_000_000);
        var late = c.Replies();
        Assert.Equal(seq, Ack(late[0]));
        Assert.Equal(31, Win(late[0]));
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtDelayedACKs]);
    }

    /// <summary>The kernel cases small-segs and small-nopsh: 500-byte segments stay below tcp_initialize_rcv_mss's 536.
    /// With PSH they never count as full-sized (tcp_measure_rcv_mss): rcv_mss stays 536 and each is ACKed, by a quick
    /// ACK or (ICSK_ACK_PUSHED) by the reader draining the queue. Without PSH a segment of at least TCP_MIN_MSS is
    /// taken as full-sized and the second alike (last_seg_size) makes rcv_mss 500; after the 16 quick ACKs
    /// __tcp_ack_snd_check waits for more than rcv_mss unacknowledged: every second segment. Neither takes the fast
    /// path (each read leaves nothing in sk_forward_alloc).</summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Small_segments_measure_rcv_mss_by_psh_and_are_acked_accordingly(bool psh)
    {
        var c = new Conn();
        c.Handshake();
        uint seq = ClientIsn + 1;
        var acked = new List<int>();
        for (int i = 1; i <= 40; i++)
        {
            c.Send(psh ? (byte)0x18 : (byte)0x10, seq, c.ServerIsn + 1, payload: 500);
            seq += 500;
            var r = c.Replies();
            if (r.Count > 0) { Assert.Equal(seq, Ack(Assert.Single(r))); acked.Add(i); }
            Assert.Equal(psh || i == 1 ? 536 : 500, c.Sock.RcvMss);
        }
        Assert.Equal(psh ? Enumerable.Range(1, 40) : [.. Enumerable.Range(1, 16), .. Enumerable.Range(9, 12).Select(k => 2 * k)], acked);
        Assert.Equal(0, c.Mib[SnmpCounter.TcpExtTCPHPHits]);
        Assert.Equal(0, c.Mib[SnmpCounter.TcpExtDelayedACKs]);
    }

    /// <summary>The kernel case ooo-mss: with the first segment lost, full-sized segments out of order are measured by
    /// tcp_data_queue_ofo (since 6.17): rcv_mss 1448 and a scaling ratio from their truesize, so tcp_grow_window opens
    /// the window of each SACKing duplicate ACK as in-order data would (67, 70, 73 × 1024).</summary>
    [Fact]
    public void Out_of_order_segments_measure_rcv_mss_and_the_scaling_ratio()
    {
        var c = new Conn();
        c.Handshake();
        uint S(int k) => ClientIsn + 1 + 1448u * (uint)k;
        var windows = new List<int>();
        for (int k = 1; k <= 3; k++)
        {
            c.Send(0x18, S(k), c.ServerIsn + 1, payload: 1448, gapNs: 5_000_000);
            var a = Assert.Single(c.Replies());
            Assert.Equal(S(0), Ack(a));
            windows.Add(Win(a));
            Assert.Equal(1448, c.Sock.RcvMss);
        }
        Assert.Equal([67, 70, 73], windows);
        Assert.NotEqual(128, c.Sock.ScalingRatio);
    }

    [Fact]
    public void Out_of_order_segments_get_sack_blocks_and_duplicates_d_sacks()
    {
        var c = new Conn();
        c.Handshake();
        uint S(int k) => ClientIsn + 1 + 1448u * (uint)k;
        string Step(int k)
        {
            c.Send(0x18, S(k), c.ServerIsn + 1, payload: 1448, gapNs: 60_000_000);
            var a = Assert.Single(c.Replies());
            return $"{Ack(a) - ClientIsn}/{Win(a)}/{Sacks(a)}";
        }
        Assert.Equal("1449/67/", Step(0));
        Assert.Equal("1449/70/2897-4345", Step(2));
        Assert.Equal("1449/73/5793-7241 2897-4345", Step(4));
        Assert.Equal("1449/73/2897-4345 2897-4345 5793-7241", Step(2));
        Assert.Equal("1449/73/1-1449 2897-4345 5793-7241", Step(0));
        Assert.Equal("1449/75/5793-8689 2897-4345", Step(5));
        Assert.Equal("4345/75/5793-8689", Step(1));
        Assert.Equal("8689/76/", Step(3));
        var m = c.Mib;
        Assert.Equal(4, m[SnmpCounter.TcpExtTCPOFOQueue]);
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPOFOMerge]);
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPDSACKOldSent]);
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPDSACKOfoSent]);
        Assert.Equal(1, m[SnmpCounter.TcpExtDelayedACKLost]);
        Assert.Equal(6 * 1448u, c.Sock.CopiedSeq - (ClientIsn + 1));
    }

    [Fact]
    public void A_fifth_island_evicts_the_oldest_sack_block()
    {
        var c = new Conn();
        c.Handshake();
        uint S(int k) => ClientIsn + 1 + 1000u * (uint)k;
        string Step(int k)
        {
            c.Send(0x18, S(k), c.ServerIsn + 1, payload: 1000, gapNs: 60_000_000);
            return Sacks(Assert.Single(c.Replies()));
        }
        c.Send(0x18, S(0), c.ServerIsn + 1, payload: 1000);
        c.Replies();
        Assert.Equal("2001-3001", Step(2));
        Assert.Equal("4001-5001 2001-3001", Step(4));
        Assert.Equal("6001-7001 4001-5001 2001-3001", Step(6));
        Assert.Equal("8001-9001 6001-7001 4001-5001", Step(8));
        Assert.Equal("10001-11001 8001-9001 6001-7001", Step(10));
        Assert.Equal("6001-9001 10001-11001 4001-5001", Step(7));
        Assert.Equal("3001-5001 6001-9001 10001-11001", Step(3));
    }

    [Fact]
    public void Resets_follow_rfc_5961_and_a_closed_port_answers_as_tcp_v4_send_reset()
    {
        var c = new Conn();
        c.Handshake();
        uint nxt = ClientIsn + 1;
        // In the window but not at rcv_nxt: a challenge ACK.
        c.Send(0x04, nxt + 1000, 0);
        var ch = Assert.Single(c.Replies());
        Assert.Equal(0x10, Flags(ch));
        Assert.Equal(nxt, Ack(ch));
        // A SYN 50 ms later: challenged too, but the per-socket limit (500 ms) holds the ACK back.
        c.Send(0x02, nxt + 5, 0, options: SynOptions(9), gapNs: 50_000_000);
        Assert.Empty(c.Replies());
        // Far outside the window: dropped silently. At rcv_nxt: the connection is reset.
        c.Send(0x04, nxt + 10_000_000, 0);
        Assert.Empty(c.Replies());
        c.Send(0x04, nxt, 0);
        Assert.Empty(c.Replies());
        Assert.Equal(TcpState.Closed, c.Sock.State);
        var m = c.Mib;
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPChallengeACK]);
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPSYNChallenge]);
        Assert.Equal(1, m[SnmpCounter.TcpExtTCPACKSkippedChallenge]);
        Assert.Equal(1, m[SnmpCounter.TcpEstabResets]);
        Assert.Equal(1, m[SnmpCounter.TcpInErrs]);
        Assert.EndsWith(" end rst\n", ScenarioDump.SocketsText(c.Rig.Ns("srv")).Split("5002")[0].Replace("tcp listen 10.77.0.1:", ""));
        // Data now finds no socket: RST with seq = its ACK.
        c.Send(0x18, nxt, c.ServerIsn + 1, payload: 10);
        var r = Assert.Single(c.Replies());
        Assert.Equal(0x04, Flags(r));
        Assert.Equal(c.ServerIsn + 1, Seq(r));
        Assert.Equal(0, IpId(r));
        // A closed port: SYN → RST|ACK ack = seq + 1; bare data without ACK → ack = seq + length; RST → nothing.
        var d = new Conn { Dport = 5999 };
        d.Send(0x02, 100, 0, options: SynOptions(1));
        var r1 = Assert.Single(d.Replies());
        Assert.Equal((0x14, 0u, 101u), (Flags(r1), Seq(r1), Ack(r1)));
        d.Send(0x08, 200, 0, payload: 20);
        var r2 = Assert.Single(d.Replies());
        Assert.Equal((0x14, 220u), (Flags(r2), Ack(r2)));
        d.Send(0x04, 300, 0);
        Assert.Empty(d.Replies());
        Assert.Equal(2, d.Mib[SnmpCounter.TcpOutRsts]);
    }

    [Fact]
    public void An_ack_to_a_listener_is_reset_and_a_wrong_third_ack_leaves_the_request()
    {
        var c = new Conn();
        c.Send(0x10, 5, 77);
        var r = Assert.Single(c.Replies());
        Assert.Equal((0x04, 77u), (Flags(r), Seq(r)));
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        uint isn = Seq(sa);
        c.Send(0x10, ClientIsn + 1, isn + 6);
        var r2 = Assert.Single(c.Replies());
        Assert.Equal((0x04, isn + 6), (Flags(r2), Seq(r2)));
        // The right ACK still completes it; the third ACK's data is queued and acknowledged at once.
        c.Send(0x18, ClientIsn + 1, isn + 1, payload: 100);
        var a = Assert.Single(c.Replies());
        Assert.Equal(ClientIsn + 101, Ack(a));
        Assert.Equal(64, Win(a));
        Assert.Equal(1, c.Mib[SnmpCounter.TcpPassiveOpens]);
    }

    [Fact]
    public void An_unanswered_syn_ack_is_sent_again_at_1_3_7_15_31_s_and_the_request_expires_at_63_s()
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        long t0 = c.Rig.Now;
        var times = new List<long>();
        for (int s = 1; s <= 70; s++)
        {
            c.Rig.Advance(1_000_000_000);
            foreach (var f in c.Replies())
            {
                Assert.Equal(0x12, Flags(f));
                Assert.Equal(Seq(sa), Seq(f));
                times.Add((c.Rig.Now - t0) / 1_000_000_000);
            }
        }
        Assert.Equal([1, 3, 7, 15, 31], times);
        Assert.Equal(5, c.Mib[SnmpCounter.TcpRetransSegs]);
        Assert.Equal(5, c.Mib[SnmpCounter.TcpExtTCPSynRetrans]);
        Assert.Equal(6, c.Mib[SnmpCounter.TcpExtTCPTimeouts]);
        var listener = (TcpListenSock)c.Rig.Ns("srv").Sockets.All[0];
        Assert.Equal(0, listener.RequestCount);
        // The request is gone: the third ACK now reaches the listener, which resets it.
        c.Send(0x10, ClientIsn + 1, Seq(sa) + 1);
        Assert.Equal(0x04, Flags(Assert.Single(c.Replies())));
        Assert.Empty(listener.Accepted);
    }

    [Fact]
    public void A_retransmitted_syn_ack_leaves_no_rtt_sample_and_the_third_ack_still_establishes()
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        c.Rig.Advance(1_200_000_000);
        Assert.Single(c.Replies());
        c.Send(0x10, ClientIsn + 1, Seq(sa) + 1);
        Assert.Empty(c.Replies());
        Assert.Equal(TcpState.Established, c.Sock.State);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpPassiveOpens]);
        // No more SYN-ACKs once established.
        c.Rig.Advance(5_000_000_000);
        Assert.Empty(c.Replies());
    }

    [Fact]
    public void An_out_of_window_segment_to_a_request_gets_a_rate_limited_ack()
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        // A pure ACK below the window (seq ISN - 1000), then another within 500 ms: one ACK, the second skipped.
        c.Send(0x10, ClientIsn - 1000, Seq(sa) + 1);
        var a = Assert.Single(c.Replies());
        Assert.Equal(0x10, Flags(a));
        Assert.Equal(Seq(sa) + 1, Seq(a));
        Assert.Equal(ClientIsn + 1, Ack(a));
        Assert.Equal(65160 >> 10, Win(a));
        Assert.Equal(0, IpId(a));
        c.Send(0x10, ClientIsn - 1000, Seq(sa) + 1);
        Assert.Empty(c.Replies());
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtTCPACKSkippedSynRecv]);
    }

    [Fact]
    public void An_unacknowledged_fin_gets_a_loss_probe_then_the_rto()
    {
        var c = new Conn();
        c.Handshake();
        c.Send(0x11, ClientIsn + 1, c.ServerIsn + 1);
        var fin = c.Replies().Single(f => (Flags(f) & 0x01) != 0);
        long t0 = c.Rig.Now;
        var times = new List<long>();
        for (int ms = 10; ms <= 700; ms += 10)
        {
            c.Rig.Advance(10_000_000);
            foreach (var f in c.Replies())
            {
                Assert.Equal(0x11, Flags(f));
                Assert.Equal(Seq(fin), Seq(f));
                times.Add((c.Rig.Now - t0) / 10_000_000 * 10);
            }
        }
        // The handshake's RTT is 1 ms: the tail loss probe at min(2 ms + 200 ms, RTO 201 ms), then the RTO 201 ms later.
        Assert.Equal([210, 410], times);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtTCPLossProbes]);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtTCPTimeouts]);
        Assert.Equal(2, c.Mib[SnmpCounter.TcpRetransSegs]);
        // The ACK of the FIN ends it.
        c.Send(0x10, ClientIsn + 2, c.ServerIsn + 2);
        c.Rig.Advance(2_000_000_000);
        Assert.Empty(c.Replies());
        Assert.Equal(TcpState.Closed, c.Sock.State);
    }

    /// <summary>A bulk sender (full segments 50 µs apart, each echoing the server's latest TSval) and a reader that
    /// keeps up: the receiver's RTT comes from the window-based sample (tcp_rcv_rtt_measure), the reader copies more
    /// than rcvq_space (14480) per RTT, so DRS grows sk_rcvbuf and the window clamp and the advertised window climbs
    /// past the 79 × 1024 the initial buffer allows; a socket with SO_RCVBUF set keeps its buffer.</summary>
    [Theory]
    [InlineData(5001, true)]
    [InlineData(5002, false)]
    public void Drs_grows_the_buffer_of_a_fast_reader_unless_so_rcvbuf_locked_it(ushort port, bool grows)
    {
        var c = new Conn { Dport = port };
        c.Handshake();
        int before = c.Sock.RcvBuf;
        uint seq = ClientIsn + 1;
        int maxWin = 0;
        for (int i = 0; i < 400; i++)
        {
            c.Send(0x10, seq, c.ServerIsn + 1, payload: 1448, gapNs: 50_000);
            seq += 1448;
            foreach (var a in c.Replies())
            {
                Assert.Equal(0x10, Flags(a));
                maxWin = Math.Max(maxWin, Win(a) << c.Sock.RcvWscale);
            }
        }
        if (grows)
        {
            Assert.True(c.Sock.RcvBuf > before, $"rcvbuf {c.Sock.RcvBuf}");
            Assert.True(maxWin > 79 * 1024, $"largest window {maxWin}");
        }
        else
        {
            Assert.Equal(before, c.Sock.RcvBuf);
            Assert.True(maxWin <= 2 * 40240, $"largest window {maxWin}");
        }
        Assert.Equal(0, c.Rig.Ns("srv").Counters.Drops.Total);
    }

    /// <summary>129 SYNs fill the request queue past the backlog (128): the next SYN is answered with a cookie.</summary>
    private static Conn Flood(Conn c, int syns = 129)
    {
        for (int k = 0; k < syns; k++)
        {
            c.Sport = (ushort)(30000 + k);
            c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240, gapNs: 100_000);
        }
        c.Replies();
        c.Sport = 41000;
        return c;
    }

    [Fact]
    public void Past_the_backlog_a_syn_without_timestamps_gets_a_cookie_and_its_ack_a_connection()
    {
        var c = Flood(new Conn());
        var listener = (TcpListenSock)c.Rig.Ns("srv").Sockets.All[0];
        Assert.Equal(129, listener.RequestCount);
        // SYN with MSS 1460, SACK-permitted and window scale but no timestamps: the cookie drops the options.
        c.Send(0x02, ClientIsn, 0, options: [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7], win: 64240);
        var sa = Assert.Single(c.Replies());
        Assert.Equal(0x12, Flags(sa));
        Assert.Equal("020405b4", Convert.ToHexString(Options(sa)).ToLowerInvariant());
        Assert.Equal(64240, Win(sa)); // 65483 rounded down to whole 1460-byte segments, unscaled
        Assert.Equal(129, listener.RequestCount);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtSyncookiesSent]);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtTCPReqQFullDoCookies]);
        uint cookie = Seq(sa);
        // A wrong cookie: SyncookiesFailed, and the listener resets the ACK.
        c.Send(0x10, ClientIsn + 1, cookie + 2, options: []);
        Assert.Equal(0x04, Flags(Assert.Single(c.Replies())));
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtSyncookiesFailed]);
        // The right one: the connection, with data on it.
        c.Send(0x10, ClientIsn + 1, cookie + 1, options: []);
        Assert.Empty(c.Replies());
        c.Send(0x18, ClientIsn + 1, cookie + 1, payload: 1000, options: []);
        var a = Assert.Single(c.Replies());
        Assert.Equal(ClientIsn + 1001, Ack(a));
        Assert.Equal(cookie + 1, Seq(a));
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtSyncookiesRecv]);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpPassiveOpens]);
        var conn = listener.Accepted.Single();
        Assert.False(conn.TstampOk || conn.SackOk || conn.WscaleOk);
        Assert.Equal(1460, conn.MssClamp);
    }

    [Fact]
    public void A_cookie_with_timestamps_carries_window_scale_and_sack_in_the_tsval()
    {
        var c = Flood(new Conn());
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        var o = Options(sa);
        Assert.Equal(0x04, o[4]); // SACK-permitted packed with the timestamps, as for a request
        uint tsval = BinaryPrimitives.ReadUInt32BigEndian(o.AsSpan(8));
        var (isn, tsOff) = TcpSecure.SeqAndTsOff(0, A("10.77.0.1"), A("10.77.0.2"), 5001, 41000, c.Rig.Now);
        Assert.NotEqual(isn, Seq(sa));
        // Low six bits: SACK (bit 4) and the client's window scale 7; never ahead of the clock.
        Assert.Equal(0x17u, (tsval - tsOff) & 0x3F);
        Assert.True((int)(TcpSecure.TsVal(c.Rig.Now, tsOff) - tsval) is >= 0 and < 64);
        c.Send(0x10, ClientIsn + 1, Seq(sa) + 1, options: TsOption(c.Ts++, tsval));
        var conn = ((TcpListenSock)c.Rig.Ns("srv").Sockets.All[0]).Accepted.Single();
        Assert.True(conn.TstampOk && conn.SackOk && conn.WscaleOk);
        Assert.Equal(TcpState.Established, conn.State);
    }

    [Theory]
    [InlineData(null, 5)]
    [InlineData("67108864", 11)]
    public void Rmem_max_above_tcp_rmem_max_raises_the_window_scale(string? rmemMax, int wscale)
    {
        // tcp_select_initial_window: the scale covers the larger of tcp_rmem[2] (1 MB here) and net.core.rmem_max
        // (the kernel's default 212992, or 64 MB).
        var c = new Conn();
        var srv = c.Rig.Ns("srv");
        srv.Sysctls["net.ipv4.tcp_rmem"] = "4096\t131072\t1048576";
        if (rmemMax != null) srv.Sysctls["net.core.rmem_max"] = rmemMax;
        c.Handshake();
        Assert.Equal(wscale, c.Sock.RcvWscale);
    }

    [Theory]
    [InlineData("2", 1, 0)]
    [InlineData("0", 0, 1)]
    public void Tcp_syncookies_2_always_sends_cookies_and_0_drops_past_the_backlog(string value, int cookies, int drops)
    {
        var c = new Conn();
        c.Rig.Ns("srv").Sysctls["net.ipv4.tcp_syncookies"] = value;
        Flood(c, value == "2" ? 0 : 129);
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        Assert.Equal(1 - drops, c.Replies().Count);
        Assert.Equal(cookies, c.Mib[SnmpCounter.TcpExtSyncookiesSent]);
        Assert.Equal(drops, c.Mib[SnmpCounter.TcpExtTCPReqQFullDrop]);
        Assert.Equal(drops, c.Mib[SnmpCounter.TcpExtListenDrops]);
    }

    /// <summary>An ICMP error from the client's side quoting one of the server's segments (seq
    /// <paramref name="seq"/>), as a router on the way back would send it.</summary>
    private static void IcmpAbout(Conn c, byte type, byte code, uint seq)
    {
        var quoted = Segment(0x10, seq, 0, 0, [], 502, 5001, c.Sport);
        // The quoted datagram goes from the server to the client.
        BinaryPrimitives.WriteUInt32BigEndian(quoted.AsSpan(12), A("10.77.0.1"));
        BinaryPrimitives.WriteUInt32BigEndian(quoted.AsSpan(16), A("10.77.0.2"));
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(20), 5001);
        BinaryPrimitives.WriteUInt16BigEndian(quoted.AsSpan(22), c.Sport);
        var icmp = new byte[8 + 28];
        icmp[0] = type;
        icmp[1] = code;
        quoted.AsSpan(0, 28).CopyTo(icmp.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp));
        var ip = new byte[20 + icmp.Length];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        ip[8] = 64;
        ip[9] = 1;
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(12), A("10.77.0.2"));
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(16), A("10.77.0.1"));
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum.Compute(ip.AsSpan(0, 20)));
        icmp.CopyTo(ip, 20);
        c.Rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, ip));
    }

    [Fact]
    public void Icmp_errors_reach_the_connection_or_request_they_quote()
    {
        var c = new Conn();
        c.Handshake();
        // About the server's unacknowledged edge (snd_una = snd_nxt): in window, a soft error.
        IcmpAbout(c, 3, 3, c.ServerIsn + 1);
        Assert.Equal(0, c.Mib[SnmpCounter.TcpExtOutOfWindowIcmps]);
        Assert.Equal(0, c.Mib[SnmpCounter.IcmpInErrors]);
        // About something it never sent.
        IcmpAbout(c, 3, 3, c.ServerIsn + 100_000);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtOutOfWindowIcmps]);
        Assert.Equal(TcpState.Established, c.Sock.State);
        // About no connection at all (another port): InErrors.
        c.Sport = 41999;
        IcmpAbout(c, 3, 3, 1);
        Assert.Equal(1, c.Mib[SnmpCounter.IcmpInErrors]);

        // A request: a host unreachable about its SYN-ACK drops it (ListenDrops); about another seq, OutOfWindowIcmps.
        c.Sport = 42000;
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        var sa = Assert.Single(c.Replies());
        var listener = (TcpListenSock)c.Rig.Ns("srv").Sockets.All[0];
        IcmpAbout(c, 3, 1, Seq(sa) + 5);
        Assert.Equal(2, c.Mib[SnmpCounter.TcpExtOutOfWindowIcmps]);
        Assert.Equal(1, listener.RequestCount);
        IcmpAbout(c, 3, 1, Seq(sa));
        Assert.Equal(0, listener.RequestCount);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtListenDrops]);
        Assert.True(c.Rig.Ns("srv").Counters.Conserved);
    }

    [Fact]
    public void A_request_reset_in_window_is_gone_and_sends_no_more_syn_acks()
    {
        var c = new Conn();
        c.Send(0x02, ClientIsn, 0, options: SynOptions(c.Ts++), win: 64240);
        Assert.Single(c.Replies());
        c.Send(0x04, ClientIsn + 1, 0, options: []);
        Assert.Equal(1, c.Mib[SnmpCounter.TcpExtEmbryonicRsts]);
        Assert.Equal(0, ((TcpListenSock)c.Rig.Ns("srv").Sockets.All[0]).RequestCount);
        // inet_csk_reqsk_queue_drop took its timer too: nothing at 1 s.
        c.Rig.Advance(2_000_000_000);
        Assert.Empty(c.Replies());
    }
}
