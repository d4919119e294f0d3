using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using CsCheck;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

public class ConntrackTests
{
    private const long S = 1_000_000_000L;
    private const byte SYN = 0x02, ACK = 0x10, FIN = 0x01, RST = 0x04, PSH = 0x08;

    /// <summary>Runs a packet through conntrack_in and confirm, as PREROUTING then INPUT would.</summary>
    private static PacketContext Pass(ConntrackTable ct, byte[] pkt, long t)
    {
        var ctx = Ctx(pkt, t);
        Assert.Equal(Verdict.Accept, ct.In(ref ctx, HookPoint.PreRouting, default));
        ct.Confirm(ref ctx);
        return ctx;
    }

    private const string C = "10.0.0.1", Sv = "10.0.0.2";

    [Fact]
    public void Tcp_handshake_data_and_close_walk_the_state_table()
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100), 0);
        Assert.Equal(CtInfo.New, p.CtInfo);
        var conn = p.Ct!;
        Assert.Equal(TcpCtState.SynSent, conn.TcpState);
        Assert.Equal(120 * S, conn.ExpiresNs);

        p = Pass(ct, Tcp(Sv, 80, C, 40000, SYN | ACK, seq: 5000, ack: 101), 1 * S);
        Assert.Equal(CtInfo.EstablishedReply, p.CtInfo);
        Assert.Equal(TcpCtState.SynRecv, conn.TcpState);

        p = Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5001), 2 * S);
        Assert.Equal(CtInfo.Established, p.CtInfo);
        Assert.Equal(TcpCtState.Established, conn.TcpState);
        Assert.True(conn.Assured);
        Assert.Equal(2 * S + 432000 * S, conn.ExpiresNs);
        Assert.Equal("tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 [ASSURED] mark=0 use=1",
            conn.Format(2 * S + S / 2));

        Pass(ct, Tcp(C, 40000, Sv, 80, ACK | PSH, seq: 101, ack: 5001, payload: 100), 3 * S);
        Pass(ct, Tcp(Sv, 80, C, 40000, ACK, seq: 5001, ack: 201), 3 * S);
        Pass(ct, Tcp(C, 40000, Sv, 80, FIN | ACK, seq: 201, ack: 5001), 4 * S);
        Assert.Equal(TcpCtState.FinWait, conn.TcpState);
        Pass(ct, Tcp(Sv, 80, C, 40000, ACK, seq: 5001, ack: 202), 4 * S);
        Assert.Equal(TcpCtState.CloseWait, conn.TcpState);
        Pass(ct, Tcp(Sv, 80, C, 40000, FIN | ACK, seq: 5001, ack: 202), 5 * S);
        Assert.Equal(TcpCtState.LastAck, conn.TcpState);
        Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 202, ack: 5002), 5 * S);
        Assert.Equal(TcpCtState.TimeWait, conn.TcpState);
        Assert.Equal(5 * S + 120 * S, conn.ExpiresNs);
        // Gone after TIME_WAIT expires.
        Assert.Null(ct.Find(conn.Original, 126 * S, out _));
    }

    [Fact]
    public void Rst_closes_with_ten_second_timeout()
    {
        var ct = new ConntrackTable();
        var conn = Pass(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100), 0).Ct!;
        Pass(ct, Tcp(Sv, 80, C, 40000, SYN | ACK, seq: 5000, ack: 101), 0);
        Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5001), 0);
        Pass(ct, Tcp(Sv, 80, C, 40000, RST | ACK, seq: 5001, ack: 101), S);
        Assert.Equal(TcpCtState.Close, conn.TcpState);
        Assert.Equal(11 * S, conn.ExpiresNs);
    }

    /// <summary>An RST whose sequence is below what the other side already acknowledged is invalid (nf_conntrack_tcp_packet's
    /// "invalid rst"), unless nf_conntrack_tcp_ignore_invalid_rst lets it through; then, not matching the acknowledged
    /// sequence exactly, it leaves an established entry established (room for the challenge ACK).</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Rst_below_the_acknowledged_sequence_is_invalid_unless_ignored(bool ignore)
    {
        var ct = new ConntrackTable(new ConntrackOptions { TcpIgnoreInvalidRst = ignore });
        var conn = Pass(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100), 0).Ct!;
        Pass(ct, Tcp(Sv, 80, C, 40000, SYN | ACK, seq: 5000, ack: 101), 0);
        Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5001), 0);
        Pass(ct, Tcp(Sv, 80, C, 40000, ACK | PSH, seq: 5001, ack: 101, payload: 100), 0);
        Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5101), 0);
        long invalid = ct.Stats.Invalid;
        Pass(ct, Tcp(Sv, 80, C, 40000, RST | ACK, seq: 5001, ack: 101), S);
        Assert.Equal(TcpCtState.Established, conn.TcpState);
        Assert.Equal(ignore ? invalid : invalid + 1, ct.Stats.Invalid);
        // The RST at exactly the acknowledged sequence closes it either way.
        Pass(ct, Tcp(Sv, 80, C, 40000, RST | ACK, seq: 5101, ack: 101), 2 * S);
        Assert.Equal(TcpCtState.Close, conn.TcpState);
    }

    [Fact]
    public void Rst_as_only_answer_kills_the_entry()
    {
        var ct = new ConntrackTable();
        var conn = Pass(ct, Tcp(C, 40000, Sv, 81, SYN, seq: 100), 0).Ct!;
        Pass(ct, Tcp(Sv, 81, C, 40000, RST | ACK, seq: 0, ack: 101), S);
        Assert.Equal(0, ct.Count);
        Assert.Null(ct.Find(conn.Original, S, out _));
    }

    [Fact]
    public void Invalid_tcp_packets_get_no_conntrack()
    {
        var ct = new ConntrackTable();
        // SYN/ACK out of nowhere cannot start a connection.
        var p = Pass(ct, Tcp(C, 40000, Sv, 80, SYN | ACK, seq: 1, ack: 1), 0);
        Assert.Equal(CtInfo.None, p.CtInfo);
        Assert.Equal(0, ct.Count);
        // Bad flag combination.
        p = Pass(ct, Tcp(C, 40001, Sv, 80, SYN | FIN), 0);
        Assert.Equal(CtInfo.None, p.CtInfo);
        // ACK from the client while still in SYN_SENT.
        Pass(ct, Tcp(C, 40002, Sv, 80, SYN, seq: 100), 0);
        p = Pass(ct, Tcp(C, 40002, Sv, 80, ACK, seq: 101, ack: 1), 0);
        Assert.Equal(CtInfo.None, p.CtInfo);
        Assert.True(ct.Stats.Invalid >= 3);
    }

    [Fact]
    public void Data_beyond_the_window_is_invalid()
    {
        var ct = new ConntrackTable();
        Pass(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100, window: 1000), 0);
        Pass(ct, Tcp(Sv, 80, C, 40000, SYN | ACK, seq: 5000, ack: 101, window: 1000), 0);
        Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5001, window: 1000), 0);
        var p = Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101 + 100000, ack: 5001, payload: 10), 0);
        Assert.Equal(CtInfo.None, p.CtInfo);
        // An ACK for data never sent is INVALID too.
        p = Pass(ct, Tcp(Sv, 80, C, 40000, ACK, seq: 5001, ack: 999999), 0);
        Assert.Equal(CtInfo.None, p.CtInfo);
        // In-window data is fine.
        p = Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 101, ack: 5001, payload: 10), 0);
        Assert.Equal(CtInfo.Established, p.CtInfo);
    }

    [Fact]
    public void Simultaneous_open_goes_through_syn_sent2()
    {
        var ct = new ConntrackTable();
        var conn = Pass(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100), 0).Ct!;
        Pass(ct, Tcp(Sv, 80, C, 40000, SYN, seq: 5000), 0);
        Assert.Equal(TcpCtState.SynSent2, conn.TcpState);
        Pass(ct, Tcp(C, 40000, Sv, 80, SYN | ACK, seq: 100, ack: 5001), 0);
        Assert.Equal(TcpCtState.SynRecv, conn.TcpState);
        Pass(ct, Tcp(Sv, 80, C, 40000, ACK, seq: 5001, ack: 101), 0);
        Assert.Equal(TcpCtState.Established, conn.TcpState);
    }

    [Fact]
    public void Loose_pickup_of_a_midstream_ack()
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, Tcp(C, 40000, Sv, 80, ACK, seq: 777, ack: 888, payload: 10), 0);
        Assert.Equal(CtInfo.New, p.CtInfo);
        Assert.Equal(TcpCtState.Established, p.Ct!.TcpState);
        Assert.Equal(300 * S, p.Ct.ExpiresNs); // UNACK cap until a reply is seen
        var strict = new ConntrackTable(new ConntrackOptions { TcpLoose = false });
        Assert.Equal(CtInfo.None, Pass(strict, Tcp(C, 40000, Sv, 80, ACK, seq: 777, ack: 888), 0).CtInfo);
    }

    [Fact]
    public void Udp_unreplied_replied_then_assured_stream()
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, Udp(C, 5000, Sv, 53), 0);
        var conn = p.Ct!;
        Assert.Equal(CtInfo.New, p.CtInfo);
        Assert.Equal("udp      17 30 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000 mark=0 use=1", conn.Format(0));
        p = Pass(ct, Udp(Sv, 53, C, 5000), S / 2);
        Assert.Equal(CtInfo.EstablishedReply, p.CtInfo);
        Assert.False(conn.Assured);
        Assert.Equal(S / 2 + 30 * S, conn.ExpiresNs);
        p = Pass(ct, Udp(C, 5000, Sv, 53), 3 * S);
        Assert.Equal(CtInfo.Established, p.CtInfo);
        Assert.True(conn.Assured);
        Assert.Equal(3 * S + 120 * S, conn.ExpiresNs);
        Assert.Equal("udp      17 120 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000 [ASSURED] mark=0 use=1", conn.Format(3 * S));
    }

    [Fact]
    public void Udp_entry_expires_and_the_next_packet_is_new()
    {
        var ct = new ConntrackTable();
        Pass(ct, Udp(C, 5000, Sv, 53), 0);
        Assert.Equal(CtInfo.New, Pass(ct, Udp(C, 5000, Sv, 53), 10 * S).CtInfo); // still unreplied: NEW
        var p = Pass(ct, Udp(C, 5000, Sv, 53), 41 * S);
        Assert.Equal(CtInfo.New, p.CtInfo);
        Assert.Single(ct.Entries(41 * S));
    }

    [Fact]
    public void Icmp_echo_and_related_error()
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, Icmp(C, Sv, 8, 0, 77), 0);
        Assert.Equal(CtInfo.New, p.CtInfo);
        Assert.Equal("icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=77 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=77 mark=0 use=1", p.Ct!.Format(0));
        Assert.Equal(CtInfo.EstablishedReply, Pass(ct, Icmp(Sv, C, 0, 0, 77), 0).CtInfo);
        // An echo reply nobody asked for is INVALID.
        Assert.Equal(CtInfo.None, Pass(ct, Icmp(Sv, C, 0, 0, 78), 0).CtInfo);

        // Port unreachable quoting a UDP datagram of a known flow: RELATED (reply direction).
        var udp = Udp(C, 5000, Sv, 53);
        Pass(ct, udp, 0);
        var err = Icmp(Sv, C, 3, 3, 0, udp.AsSpan(0, 28));
        p = Pass(ct, err, 0);
        Assert.Equal(CtInfo.RelatedReply, p.CtInfo);
        // Quoting an unknown flow: INVALID.
        var err2 = Icmp(Sv, C, 3, 3, 0, Udp(C, 5001, Sv, 53).AsSpan(0, 28));
        Assert.Equal(CtInfo.None, Pass(ct, err2, 0).CtInfo);
    }

    [Fact]
    public void Full_table_early_drops_unassured_entries()
    {
        var ct = new ConntrackTable(new ConntrackOptions { Max = 4, Buckets = 1 });
        for (ushort i = 0; i < 4; i++) Pass(ct, Udp(C, (ushort)(1000 + i), Sv, 53), 0);
        Assert.Equal(4, ct.Count);
        var p = Pass(ct, Udp(C, 2000, Sv, 53), 0);
        Assert.Equal(CtInfo.New, p.CtInfo);
        Assert.True(ct.Stats.EarlyDrop > 0);
        Assert.True(ct.Count <= 4);
    }

    [Fact]
    public void Full_table_of_assured_entries_drops_the_new_packet()
    {
        var ct = new ConntrackTable(new ConntrackOptions { Max = 2, Buckets = 1 });
        for (ushort i = 0; i < 2; i++)
        {
            ushort port = (ushort)(1000 + i);
            Pass(ct, Udp(C, port, Sv, 53), 0);
            Pass(ct, Udp(Sv, 53, C, port), 0);
            Pass(ct, Udp(C, port, Sv, 53), 3 * S);
        }
        Assert.All(ct.Entries(3 * S), c => Assert.True(c.Assured));
        var ctx = Ctx(Udp(C, 3000, Sv, 53), 3 * S);
        Assert.Equal(Verdict.Drop, ct.In(ref ctx, HookPoint.PreRouting, default));
        Assert.Equal(DropReason.ConntrackTableFull, ctx.DropReason);
        Assert.Equal(1, ct.Stats.Drop);
    }

    [Fact]
    public void Notrack_in_raw_makes_packets_untracked()
    {
        var t = IptablesSaveParser.Parse("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p udp -m udp --dport 53 -j CT --notrack\nCOMMIT\n*filter\n:INPUT DROP [0:0]\n-A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT\nCOMMIT\n");
        var ctx = Ctx(Udp(C, 5000, Sv, 53));
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx));
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalIn, ref ctx));
        Assert.Equal(0, t.Conntrack.Count);
    }

    // ---- nf_conntrack_checksum (tcp_error / udp_error / icmp_error)

    private static byte[] Corrupt(byte[] pkt, int offset)
    {
        var b = (byte[])pkt.Clone();
        b[offset] ^= 0x5a;
        return b;
    }

    private static PacketContext In(ConntrackTable ct, byte[] pkt, HookPoint hook, long t = 0)
    {
        var ctx = Ctx(pkt, t);
        Assert.Equal(Verdict.Accept, ct.In(ref ctx, hook, pkt));
        return ctx;
    }

    [Fact]
    public void Bad_tcp_checksum_is_invalid_in_prerouting_only()
    {
        var ct = new ConntrackTable();
        var bad = Corrupt(Tcp(C, 40000, Sv, 80, SYN, seq: 100), 20 + 16);
        var pre = In(ct, bad, HookPoint.PreRouting);
        Assert.Null(pre.Ct);
        Assert.Equal(CtInfo.None, pre.CtInfo);
        Assert.Equal(1, ct.Stats.Invalid);
        Assert.Equal(0, ct.Count);
        // The output path trusts its own checksums.
        var output = In(ct, bad, HookPoint.LocalOut);
        Assert.Equal(CtInfo.New, output.CtInfo);
        Assert.Equal(TcpCtState.SynSent, output.Ct!.TcpState);
        // A good checksum is tracked in PREROUTING, and so is a bad one with nf_conntrack_checksum=0.
        Assert.Equal(CtInfo.New, In(new ConntrackTable(), Tcp(C, 40000, Sv, 80, SYN, seq: 100), HookPoint.PreRouting).CtInfo);
        Assert.Equal(CtInfo.New, In(new ConntrackTable(new ConntrackOptions { Checksum = false }), bad, HookPoint.PreRouting).CtInfo);
    }

    [Fact]
    public void Bad_tcp_checksum_does_not_touch_an_existing_connection()
    {
        var ct = new ConntrackTable();
        var syn = In(ct, Tcp(C, 40000, Sv, 80, SYN, seq: 100), HookPoint.PreRouting);
        ct.Confirm(ref syn);
        var badAck = Corrupt(Tcp(Sv, 80, C, 40000, SYN | ACK, seq: 5000, ack: 101), 20 + 16);
        Assert.Equal(CtInfo.None, In(ct, badAck, HookPoint.PreRouting, S).CtInfo);
        Assert.Equal(TcpCtState.SynSent, syn.Ct!.TcpState);
        Assert.Equal(120 * S, syn.Ct.ExpiresNs);
    }

    [Fact]
    public void Udp_checksum_zero_is_accepted_bad_checksum_and_bad_length_are_invalid()
    {
        var ct = new ConntrackTable();
        var none = Udp(C, 5000, Sv, 53);
        none[20 + 6] = none[20 + 7] = 0;
        Assert.Equal(CtInfo.New, In(ct, none, HookPoint.PreRouting).CtInfo);

        Assert.Equal(CtInfo.None, In(ct, Corrupt(Udp(C, 5001, Sv, 53), 20 + 8), HookPoint.PreRouting).CtInfo);
        Assert.Equal(CtInfo.New, In(ct, Corrupt(Udp(C, 5001, Sv, 53), 20 + 8), HookPoint.LocalOut).CtInfo);

        // udp_error's length checks hold on every hook: beyond the datagram, or shorter than the header.
        var longLen = Udp(C, 5002, Sv, 53);
        longLen[20 + 5]++;
        Assert.Equal(CtInfo.None, In(ct, longLen, HookPoint.LocalOut).CtInfo);
        var shortLen = Udp(C, 5003, Sv, 53);
        shortLen[20 + 4] = 0;
        shortLen[20 + 5] = 7;
        Assert.Equal(CtInfo.None, In(ct, shortLen, HookPoint.LocalOut).CtInfo);
    }

    [Fact]
    public void Bad_icmp_checksum_is_invalid_in_prerouting_for_queries_and_errors()
    {
        var ct = new ConntrackTable();
        Assert.Equal(CtInfo.None, In(ct, Corrupt(Icmp(C, Sv, 8, 0, 77), 20 + 4), HookPoint.PreRouting).CtInfo);
        var echo = In(ct, Icmp(C, Sv, 8, 0, 77), HookPoint.PreRouting);
        Assert.Equal(CtInfo.New, echo.CtInfo);
        ct.Confirm(ref echo);

        var udp = Udp(C, 5000, Sv, 53);
        var q = In(ct, udp, HookPoint.PreRouting);
        ct.Confirm(ref q);
        var err = Icmp(Sv, C, 3, 3, 0, udp.AsSpan(0, 28));
        Assert.Equal(CtInfo.RelatedReply, In(ct, err, HookPoint.PreRouting).CtInfo);
        Assert.Equal(CtInfo.None, In(ct, Corrupt(err, 20 + 2), HookPoint.PreRouting).CtInfo);
    }

    /// <summary>The per-bucket summaries never hide an entry: after any mix of new flows and deletions, in a table
    /// of a few buckets (long chains, shared summary bits), each live entry is found by both its tuples and each
    /// deleted one by neither.</summary>
    [Fact]
    public void Lookups_find_exactly_the_live_entries_after_inserts_and_deletes()
    {
        Gen.Select(Gen.Int[1, 9], Gen.Select(Gen.Bool, Gen.Int[0, 40]).Array[1, 120]).Sample((buckets, ops) =>
        {
            var ct = new ConntrackTable(new ConntrackOptions { Buckets = buckets });
            var live = new Dictionary<int, Connection>();
            foreach (var (add, key) in ops)
            {
                if (add && !live.ContainsKey(key))
                    live[key] = Pass(ct, Udp("10.0.0." + (1 + key % 7), (ushort)(1000 + key), Sv, 53), 0).Ct!;
                else if (!add && live.Remove(key, out var gone))
                    ct.Delete(gone);
            }
            for (int key = 0; key <= 40; key++)
            {
                var orig = new ConnTuple(A("10.0.0." + (1 + key % 7)), A(Sv), 17, (ushort)(1000 + key), 53);
                orig.TryInvert(out var reply);
                var byOrig = ct.Find(orig, 0, out int d0);
                var byReply = ct.Find(reply, 0, out int d1);
                if (live.TryGetValue(key, out var c))
                {
                    Assert.Same(c, byOrig);
                    Assert.Same(c, byReply);
                    Assert.Equal((0, 1), (d0, d1));
                }
                else
                {
                    Assert.Null(byOrig);
                    Assert.Null(byReply);
                }
            }
        });
    }

    [Fact]
    public void Dccp_is_tracked_by_the_generic_tracker_without_ports()
    {
        // Linux 6.16 removed DCCP's tracker: on 6.18 a DCCP packet from port 1234 to 5678 is listed as
        // "dccp 33 599 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=0 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=0 dport=0".
        var pkt = PacketBuilder.Ip(A(C), A(Sv), 33, 16);
        pkt[20] = 0x04; pkt[21] = 0xD2; pkt[22] = 0x16; pkt[23] = 0x2E;
        var ct = new ConntrackTable();
        var p = Pass(ct, pkt, 0);
        Assert.Equal("dccp     33 600 src=10.0.0.1 dst=10.0.0.2 sport=0 dport=0 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=0 dport=0 mark=0 use=1", p.Ct!.Format(0));
    }
}
