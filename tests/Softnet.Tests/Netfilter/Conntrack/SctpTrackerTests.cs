using System.Buffers.Binary;
using CsCheck;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Tests.Support;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Support.SctpPackets;

namespace Softnet.Tests.Netfilter.Conntrack;

/// <summary>nf_conntrack_proto_sctp as SctpTracker mirrors it: the state table over a whole association, the
/// verification-tag rules, what may start an entry, the chunk walk's refusals and the per-state timeouts.</summary>
public class SctpTrackerTests
{
    private const long S = 1_000_000_000L;
    private const string C = "10.0.0.1", Sv = "10.0.0.2";
    private const ushort Cp = 5000, Sp = 36412;
    private const uint CTag = 0x11111111, STag = 0x22222222;

    private static byte[] FromClient(uint vtag, params Chunk[] chunks) => Ipv4Of(C, Sv, Packet(Cp, Sp, vtag, chunks));
    private static byte[] FromServer(uint vtag, params Chunk[] chunks) => Ipv4Of(Sv, C, Packet(Sp, Cp, vtag, chunks));

    private static byte[] Ipv4Of(string src, string dst, byte[] sctp)
    {
        var b = PacketBuilder.Ip(A(src), A(dst), IpProtocols.Sctp, sctp.Length);
        sctp.CopyTo(b, 20);
        return b;
    }

    /// <summary>conntrack in at PREROUTING (nothing verified the CRC) and confirm; the context after.</summary>
    private static PacketContext Pass(ConntrackTable ct, byte[] pkt, long t, CsumState summed = CsumState.None)
    {
        var ctx = Ctx(pkt, t);
        ctx.IpSummed = summed;
        Assert.Equal(Verdict.Accept, ct.In(ref ctx, HookPoint.PreRouting, pkt));
        ct.Confirm(ref ctx);
        return ctx;
    }

    /// <summary>The four-way handshake, ending ESTABLISHED: the entry.</summary>
    private static Connection Associate(ConntrackTable ct)
    {
        var conn = Pass(ct, FromClient(0, InitChunk(Init, CTag)), 0).Ct!;
        Pass(ct, FromServer(CTag, InitChunk(InitAck, STag)), 0);
        Pass(ct, FromClient(STag, CookieEchoChunk()), 0);
        Pass(ct, FromServer(CTag, Plain(CookieAck)), 0);
        return conn;
    }

    [Fact]
    public void Handshake_data_heartbeat_and_shutdown_walk_the_state_table()
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, FromClient(0, InitChunk(Init, CTag)), 0);
        var conn = p.Ct!;
        Assert.Equal(CtInfo.New, p.CtInfo);
        // INIT from NONE is CLOSED in 6.x's table, on CLOSED's 10 s; the reply must carry the INIT's initiate tag.
        Assert.Equal(SctpCtState.Closed, conn.Sctp.State);
        Assert.Equal(10 * S, conn.ExpiresNs);
        Assert.Equal(CTag, conn.Sctp.Vtag1);

        p = Pass(ct, FromServer(CTag, InitChunk(InitAck, STag)), 1 * S);
        Assert.Equal(CtInfo.EstablishedReply, p.CtInfo);
        Assert.Equal(SctpCtState.CookieWait, conn.Sctp.State);
        Assert.Equal(STag, conn.Sctp.Vtag0);
        Assert.Equal(4 * S, conn.ExpiresNs);

        Pass(ct, FromClient(STag, CookieEchoChunk()), 2 * S);
        Assert.Equal(SctpCtState.CookieEchoed, conn.Sctp.State);
        Assert.False(conn.Assured);
        Pass(ct, FromServer(CTag, Plain(CookieAck)), 3 * S);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
        Assert.True(conn.Assured);
        Assert.Equal(213 * S, conn.ExpiresNs);
        Assert.Equal("sctp     132 209 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=36412 src=10.0.0.2 dst=10.0.0.1 sport=36412 dport=5000 [ASSURED] mark=0 use=1",
            conn.Format(3 * S + S / 2));

        // DATA and SACK leave the state alone and refresh it.
        Pass(ct, FromClient(STag, DataChunk(1)), 4 * S);
        Pass(ct, FromServer(CTag, Plain(Sack, body: 12)), 5 * S);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
        Assert.Equal(215 * S, conn.ExpiresNs);
        Pass(ct, FromClient(STag, HeartbeatChunk(Heartbeat)), 6 * S);
        Pass(ct, FromServer(CTag, HeartbeatChunk(HeartbeatAck)), 6 * S);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);

        Pass(ct, FromClient(STag, ShutdownChunk(1)), 7 * S);
        Assert.Equal(SctpCtState.ShutdownSent, conn.Sctp.State);
        Assert.Equal(10 * S, conn.ExpiresNs);
        Pass(ct, FromServer(CTag, Plain(ShutdownAck)), 8 * S);
        Assert.Equal(SctpCtState.ShutdownAckSent, conn.Sctp.State);
        Pass(ct, FromClient(STag, Plain(ShutdownComplete)), 9 * S);
        Assert.Equal(SctpCtState.Closed, conn.Sctp.State);
        Assert.Equal(19 * S, conn.ExpiresNs);
        Assert.Equal(0, ct.Stats.Invalid);
        Assert.Null(ct.Find(conn.Original, 19 * S, out _));
    }

    [Fact]
    public void A_wrong_verification_tag_is_invalid_and_leaves_the_entry_alone()
    {
        var ct = new ConntrackTable();
        var conn = Associate(ct);
        long expires = conn.ExpiresNs;
        var p = Pass(ct, FromClient(0xBAD, DataChunk(1)), 1 * S);
        Assert.Null(p.Ct);
        Assert.Equal(CtInfo.None, p.CtInfo);
        Assert.Equal(1, ct.Stats.Invalid);
        Assert.Equal(expires, conn.ExpiresNs);
        // The server's tag in the client's direction is wrong too (each direction carries the other end's tag).
        Assert.Null(Pass(ct, FromClient(CTag, DataChunk(1)), 1 * S).Ct);
        // COOKIE_ECHO must carry the INIT_ACK's tag.
        Assert.Null(Pass(ct, FromClient(0xBAD, CookieEchoChunk()), 1 * S).Ct);
        Assert.Equal(3, ct.Stats.Invalid);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
    }

    [Fact]
    public void Abort_and_shutdown_complete_take_the_tag_their_T_bit_names()
    {
        var ct = new ConntrackTable();
        var conn = Associate(ct);
        // T set: the sender's own tag (the one the peer checks) — the server's tag sent by the server.
        Assert.Null(Pass(ct, FromServer(CTag, Plain(Abort, flags: 1)), S).Ct);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
        Assert.NotNull(Pass(ct, FromServer(STag, Plain(Abort, flags: 1)), S).Ct);
        Assert.Equal(SctpCtState.Closed, conn.Sctp.State);

        var ct2 = new ConntrackTable();
        conn = Associate(ct2);
        Assert.Null(Pass(ct2, FromServer(STag, Plain(Abort)), S).Ct);
        Assert.NotNull(Pass(ct2, FromServer(CTag, Plain(Abort)), S).Ct);
        Assert.Equal(SctpCtState.Closed, conn.Sctp.State);
    }

    [Theory]
    [InlineData(Data)]
    [InlineData(Abort)]
    [InlineData(CookieAck)]
    [InlineData(ShutdownComplete)]
    [InlineData(Sack)]
    public void These_chunks_cannot_start_an_entry(byte type)
    {
        var ct = new ConntrackTable();
        var chunk = type == Data ? DataChunk(1) : Plain(type, body: type == Sack ? 12 : 0);
        var p = Pass(ct, FromClient(0, chunk), 0);
        Assert.Null(p.Ct);
        Assert.Equal(1, ct.Stats.Invalid);
        Assert.Equal(0, ct.Count);
    }

    [Fact]
    public void An_init_with_a_nonzero_tag_starts_nothing()
    {
        var ct = new ConntrackTable();
        Assert.Null(Pass(ct, FromClient(7, InitChunk(Init, CTag)), 0).Ct);
        Assert.Equal(0, ct.Count);
    }

    [Fact]
    public void A_heartbeat_starts_a_heartbeat_sent_entry_its_ack_establishes()
    {
        var ct = new ConntrackTable();
        var conn = Pass(ct, FromClient(STag, HeartbeatChunk(Heartbeat)), 0).Ct!;
        Assert.Equal(SctpCtState.HeartbeatSent, conn.Sctp.State);
        Assert.Equal(30 * S, conn.ExpiresNs);
        Assert.Equal(STag, conn.Sctp.Vtag0);
        Pass(ct, FromServer(CTag, HeartbeatChunk(HeartbeatAck)), S);
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
        Assert.True(conn.Assured);
        Assert.Equal(CTag, conn.Sctp.Vtag1);
    }

    [Fact]
    public void A_heartbeat_with_new_tags_passes_unrefreshed_and_its_answer_teaches_them()
    {
        var ct = new ConntrackTable { Accounting = true };
        var conn = Associate(ct);
        long expires = conn.ExpiresNs;
        long packets = conn.PacketsOrig;
        // A restarted client: its heartbeat carries another tag; let through, neither refreshed nor counted.
        var p = Pass(ct, FromClient(0x33333333, HeartbeatChunk(Heartbeat)), 5 * S);
        Assert.NotNull(p.Ct);
        Assert.Equal(expires, conn.ExpiresNs);
        Assert.Equal(packets, conn.PacketsOrig);
        // The answer from the other side with its new tag is learnt; the client's is forgotten until it shows.
        Pass(ct, FromServer(0x44444444, HeartbeatChunk(HeartbeatAck)), 6 * S);
        Assert.Equal(0x44444444u, conn.Sctp.Vtag1);
        Assert.Equal(0u, conn.Sctp.Vtag0);
    }

    [Fact]
    public void An_init_retransmitted_into_a_closed_entry_does_not_renew_it()
    {
        var ct = new ConntrackTable();
        var conn = Pass(ct, FromClient(0, InitChunk(Init, CTag)), 0).Ct!;
        var p = Pass(ct, FromClient(0, InitChunk(Init, CTag)), 5 * S);
        Assert.Same(conn, p.Ct);
        Assert.Equal(10 * S, conn.ExpiresNs);
    }

    [Fact]
    public void An_init_ack_with_another_tag_than_the_init_saw_is_invalid_after_the_handshake()
    {
        var ct = new ConntrackTable();
        var conn = Associate(ct);
        // A stray INIT_ACK: the client's tag is known and no INIT is pending, so it must carry that tag.
        Assert.Null(Pass(ct, FromServer(CTag, InitChunk(InitAck, 0x55555555)), S).Ct);
        Assert.Equal(STag, conn.Sctp.Vtag0);
    }

    public static TheoryData<string, byte[]> BadChunks => new()
    {
        // A zero chunk length (the walk would never move on).
        { "zero length", Zeroed(Packet(Cp, Sp, 0, InitChunk(Init, CTag)), 14, 2) },
        // INIT, INIT_ACK and SHUTDOWN_COMPLETE must be alone.
        { "init and data", Packet(Cp, Sp, 0, InitChunk(Init, CTag), DataChunk(1)) },
        // COOKIE_ECHO must come first.
        { "data then cookie echo", Packet(Cp, Sp, STag, DataChunk(1), CookieEchoChunk()) },
        // No chunk at all.
        { "common header only", Packet(Cp, Sp, 0) },
        // Shorter than the common header.
        { "short", Packet(Cp, Sp, 0)[..8] },
        // An INIT whose init header does not fit.
        { "truncated init", Packet(Cp, Sp, 0, Plain(Init, body: 8)) },
    };

    private static byte[] Zeroed(byte[] b, int at, int count)
    {
        b.AsSpan(at, count).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), SctpTracker.Crc32c(b));
        return b;
    }

    [Theory]
    [MemberData(nameof(BadChunks))]
    public void Bad_chunks_are_counted_invalid_and_make_no_entry(string what, byte[] sctp)
    {
        var ct = new ConntrackTable();
        var p = Pass(ct, Ipv4Of(C, Sv, sctp), 0);
        Assert.True(p.Ct == null, what);
        Assert.Equal(1, ct.Stats.Invalid);
        Assert.Equal(0, ct.Count);
    }

    [Fact]
    public void The_crc32c_is_checked_in_prerouting_when_nothing_verified_it()
    {
        var bad = Ipv4Of(C, Sv, Packet(Cp, Sp, 0, [InitChunk(Init, CTag)], badCrc: true));
        var ct = new ConntrackTable();
        Assert.Null(Pass(ct, bad, 0).Ct);
        Assert.Equal(1, ct.Stats.Invalid);
        // Verified already (CHECKSUM_UNNECESSARY), or nf_conntrack_checksum off: not looked at.
        Assert.NotNull(Pass(new ConntrackTable(), bad, 0, CsumState.Unnecessary).Ct);
        Assert.NotNull(Pass(new ConntrackTable(new ConntrackOptions { Checksum = false }), bad, 0).Ct);
        // Not in OUTPUT.
        var ctx = Ctx(bad, 0);
        var table = new ConntrackTable();
        table.In(ref ctx, HookPoint.LocalOut, bad);
        Assert.NotNull(ctx.Ct);
    }

    [Fact]
    public void Crc32c_matches_the_rfc_3720_vector()
    {
        // RFC 3720 B.4: 32 bytes of zeros give 0x8A9136AA.
        Assert.Equal(0x8A9136AAu, SctpTracker.Crc32c(new byte[32]));
    }

    [Fact]
    public void Each_state_takes_its_sysctl_timeout()
    {
        var t = SctpTracker.DefaultTimeouts();
        t[(int)SctpCtState.Closed] = 2 * S;
        t[(int)SctpCtState.CookieWait] = 4 * S;
        t[(int)SctpCtState.Established] = 50 * S;
        var ct = new ConntrackTable(new ConntrackOptions { SctpTimeoutsNs = t });
        var conn = Pass(ct, FromClient(0, InitChunk(Init, CTag)), 0).Ct!;
        Assert.Equal(2 * S, conn.ExpiresNs);
        Pass(ct, FromServer(CTag, InitChunk(InitAck, STag)), 0);
        Assert.Equal(4 * S, conn.ExpiresNs);
        Pass(ct, FromClient(STag, CookieEchoChunk()), 0);
        Pass(ct, FromServer(CTag, Plain(CookieAck)), 0);
        Assert.Equal(50 * S, conn.ExpiresNs);
        Assert.Equal("established", SctpTracker.TimeoutKey((int)SctpCtState.Established));
        Assert.Equal("heartbeat_sent", SctpTracker.TimeoutKey((int)SctpCtState.HeartbeatSent));
    }

    [Fact]
    public void Any_bytes_as_sctp_give_a_verdict_and_never_throw()
    {
        Gen.Byte.Array[0, 80].Select(Gen.Bool).Sample((body, asReply) =>
        {
            var ct = new ConntrackTable();
            Associate(ct);
            var pkt = asReply ? Ipv4Of(Sv, C, body) : Ipv4Of(C, Sv, body);
            if (body.Length >= 12) BinaryPrimitives.WriteUInt32LittleEndian(pkt.AsSpan(28), SctpTracker.Crc32c(pkt.AsSpan(20)));
            var ctx = Ctx(pkt, S);
            Assert.Equal(Verdict.Accept, ct.In(ref ctx, HookPoint.PreRouting, pkt));
        });
    }

    [Fact]
    public void Tracking_an_association_allocates_nothing_per_packet()
    {
        var ct = new ConntrackTable();
        var conn = Associate(ct);
        var data = FromClient(STag, DataChunk(1, 64));
        var sack = FromServer(CTag, Plain(Sack, body: 12));
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 10_000; i++)
            {
                var a = Ctx(data, S);
                ct.In(ref a, HookPoint.PreRouting, data);
                var b = Ctx(sack, S);
                ct.In(ref b, HookPoint.PreRouting, sack);
            }
        }, 20_000, "packets");
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
    }

    [Fact]
    public void Over_ipv6_the_tracker_reads_the_chunks_past_the_extension_headers()
    {
        var ct6 = Ipv6.Ip6ConntrackNatTests.Load().Conntrack6;
        static byte[] V6(string src, string dst, byte[] sctp)
        {
            var b = Ipv6.PacketBuilder6.Ip(src, dst, IpProtocols.Sctp, sctp.Length);
            sctp.CopyTo(b, 40);
            return b;
        }
        PacketContext Pass6(byte[] pkt)
        {
            var ctx = Ipv6.PacketBuilder6.Ctx(pkt, S);
            Assert.Equal(Verdict.Accept, ct6.In(ref ctx, HookPoint.PreRouting, pkt));
            ct6.Confirm(ref ctx);
            return ctx;
        }
        const string C6 = "2001:db8:1::10", S6 = "2001:db8:ff::100";
        var conn = Pass6(V6(C6, S6, Packet(Cp, Sp, 0, InitChunk(Init, CTag)))).Ct!;
        Pass6(V6(S6, C6, Packet(Sp, Cp, CTag, InitChunk(InitAck, STag))));
        Pass6(V6(C6, S6, Packet(Cp, Sp, STag, CookieEchoChunk())));
        Pass6(V6(S6, C6, Packet(Sp, Cp, CTag, Plain(CookieAck))));
        Assert.Equal(SctpCtState.Established, conn.Sctp.State);
        Assert.StartsWith("sctp     132 210 ESTABLISHED src=2001:db8:1::10 dst=2001:db8:ff::100 sport=5000 dport=36412 ", conn.Format(S));
        Assert.Null(Pass6(V6(C6, S6, Packet(Cp, Sp, 0xBAD, DataChunk(1)))).Ct);
    }

    [Fact]
    public void Masquerade_moves_a_clashing_port_and_sums_the_packet_again()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("docker-host.rules"));
        t.Host = new SimpleHost().Add("eth0", "192.168.1.10/24").Add("docker0", "172.17.0.1/16");
        PacketContext Forward(byte[] pkt)
        {
            var ctx = Ctx(pkt, 0, "docker0");
            ctx.IpSummed = CsumState.None;
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, pkt));
            ctx.OutInterface = "eth0";
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.Forward, ref ctx, pkt));
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PostRouting, ref ctx, pkt));
            return ctx;
        }
        var a = Ipv4Of("172.17.0.2", "8.8.8.8", Packet(Cp, Sp, 0, InitChunk(Init, CTag)));
        var b = Ipv4Of("172.17.0.3", "8.8.8.8", Packet(Cp, Sp, 0, InitChunk(Init, STag)));
        var ca = Forward(a);
        var cb = Forward(b);
        Assert.Equal(Cp, ca.SrcPort);
        Assert.NotEqual(Cp, cb.SrcPort);
        // sctp_manip_pkt: the new port in the header and the CRC32c over the packet as it now is.
        Assert.Equal(cb.SrcPort, BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(20)));
        foreach (var pkt in new[] { a, b })
            Assert.Equal(SctpTracker.Crc32c(pkt.AsSpan(20)), BinaryPrimitives.ReadUInt32LittleEndian(pkt.AsSpan(28)));
        Assert.Equal(A("192.168.1.10"), BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(12)));
    }

    [Fact]
    public void An_icmp_error_quoting_an_association_is_related_to_it()
    {
        var ct = new ConntrackTable();
        var init = FromClient(0, InitChunk(Init, CTag));
        var conn = Pass(ct, init, 0).Ct!;
        var unreach = Icmp(Sv, C, 3, 3, 0, init.AsSpan(0, 28));
        var ctx = Ctx(unreach, S);
        Assert.Equal(Verdict.Accept, ct.In(ref ctx, HookPoint.PreRouting, unreach));
        Assert.Same(conn, ctx.Ct);
        Assert.Equal(CtInfo.RelatedReply, ctx.CtInfo);
    }
}
