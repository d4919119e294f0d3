using System.Buffers.Binary;
using System.Net;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;
using Softnet.Topology;
using Softnet.Transport;
using Softnet.Tests.Topology;
using Xunit;

namespace Softnet.Tests.Transport;

/// <summary>
/// TCP over IPv6 (tcp_v6_rcv and the IPv6 output of a passive connection) in the dual-stack test scenario tcp6-host:
/// srv has 2001:db8:77::1 and 10.77.0.1 on vs, listeners [2001:db8:77::1]:5001 and the dual-stack [::]:5003; the
/// clients (2001:db8:77::2, 10.77.0.2) send as Linux does (SYN: mss, sackOK, TS, nop, wscale 7).
/// </summary>
public class Tcp6ReceiveTests
{
    private const string Vs = "02:00:00:77:00:01", Vc = "02:00:00:77:00:02";
    private const string Server = "2001:db8:77::1", Client = "2001:db8:77::2";
    private const uint ClientIsn = 0x10000000;

    private static byte[] A6(string s) => IPAddress.Parse(s).GetAddressBytes();
    private static UInt128 U6(string s) => BinaryPrimitives.ReadUInt128BigEndian(A6(s));
    private static byte[] SynOptions(uint ts) => [2, 4, 0x05, 0xa0, 4, 2, 8, 10, .. Be(ts), 0, 0, 0, 0, 1, 3, 3, 7];
    private static byte[] Be(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return b; }

    /// <summary>An IPv6 TCP segment from <paramref name="src"/>:<paramref name="sport"/> (payload byte i = seq + i).</summary>
    private static byte[] Segment6(string src, string dst, ushort sport, ushort dport, byte flags, uint seq, uint ack, int payload = 0,
        byte[]? options = null, bool badChecksum = false, byte tclass = 0)
    {
        options ??= [];
        int hl = 20 + ((options.Length + 3) & ~3);
        var t = new byte[hl + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = (byte)(hl / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), 502);
        options.CopyTo(t, 20);
        for (int i = 0; i < payload; i++) t[hl + i] = (byte)(seq + i);
        ushort c = Checksum.Compute(t, Checksum.PseudoHeaderV6(A6(src), A6(dst), 6, t.Length));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), (ushort)(badChecksum ? c ^ 0x5555 : c));
        var ip = new byte[40 + t.Length];
        Ipv6View.Write(ip, t.Length, 6, 64, A6(src), A6(dst), tclass);
        t.CopyTo(ip, 40);
        return ip;
    }

    private static void Inject6(ScenarioRig rig, byte[] ip) => rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, ip, 0x86DD));

    private static List<byte[]> Sent6(ScenarioRig rig) => rig.Tx("srv", "vs").Where(f => f[12] == 0x86 && f[13] == 0xDD && f[14 + 6] == 6).ToList();

    private static ReadOnlySpan<byte> Tcp(byte[] f) => f.AsSpan(14 + 40);
    private static uint Seq(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(Tcp(f)[4..]);
    private static uint Ack(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(Tcp(f)[8..]);
    private static byte Flags(byte[] f) => Tcp(f)[13];

    private static ScenarioRig Rig(IReadOnlyDictionary<string, string>? extra = null)
    {
        var rig = new ScenarioRig("tcp6-host", extra);
        rig.Ns("srv").Sockets.StartRecording();
        return rig;
    }

    /// <summary>SYN from <paramref name="src"/>:<paramref name="sport"/> to the server's :<paramref name="dport"/>; the SYN-ACK.</summary>
    private static byte[] Syn(ScenarioRig rig, string src, ushort sport, ushort dport = 5001)
    {
        int before = Sent6(rig).Count;
        Inject6(rig, Segment6(src, Server, sport, dport, 0x02, ClientIsn, 0, options: SynOptions(1_000_000)));
        var sent = Sent6(rig);
        Assert.Equal(before + 1, sent.Count);
        return sent[^1];
    }

    [Fact]
    public void The_syn_ack_goes_out_over_ipv6_with_the_route_mss()
    {
        var rig = Rig();
        var sa = Syn(rig, Client, 41000);
        var ip = sa.AsSpan(14);
        // Version 6, traffic class 0, flow label 0 (np->tclass, auto_flowlabels 0), 40 bytes of TCP, hop limit 64.
        Assert.Equal(0x60000000u, BinaryPrimitives.ReadUInt32BigEndian(ip));
        Assert.Equal(40, BinaryPrimitives.ReadUInt16BigEndian(ip[4..]));
        Assert.Equal(6, ip[6]);
        Assert.Equal(64, ip[7]);
        Assert.Equal(A6(Server), ip.Slice(8, 16).ToArray());
        Assert.Equal(A6(Client), ip.Slice(24, 16).ToArray());
        Assert.Equal(0x12, Flags(sa));
        Assert.Equal(ClientIsn + 1, Ack(sa));
        // MSS: the device MTU less 60 (IPv6 40 + TCP 20); the window rounded to 1440 - 12.
        Assert.Equal(1440, BinaryPrimitives.ReadUInt16BigEndian(Tcp(sa)[22..]));
        Assert.Equal(45 * 1428, BinaryPrimitives.ReadUInt16BigEndian(Tcp(sa)[14..]));
        // The checksum is over the IPv6 pseudo-header.
        Assert.True(Checksum.Verify(Tcp(sa), Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), 6, 40)));
        // The ISN is the IPv6 keyed one.
        Assert.Equal(TcpSecure.SeqAndTsOff6(0, U6(Server), U6(Client), 5001, 41000, rig.Now).Isn, Seq(sa));
        var m = rig.Ns("srv").Mib;
        Assert.Equal(1, m[SnmpCounter.TcpOutSegs]);
        Assert.Equal(1, m[SnmpCounter.Ip6OutRequests]);
    }

    [Fact]
    public void A_smaller_mtu_gives_a_smaller_mss_never_below_1220()
    {
        string ipBatch = File.ReadAllText(Path.Combine(TopologyTestData.PathOf("tcp6-host"), "ns", "srv", "ip.batch"));
        foreach (var (mtu, mss) in new[] { (1400, 1340), (1280, 1220) })
        {
            var rig = Rig(new Dictionary<string, string> { ["ns/srv/ip.batch"] = ipBatch + $"link set vs mtu {mtu}\n" });
            var sa = Syn(rig, Client, 41000);
            Assert.Equal(mss, BinaryPrimitives.ReadUInt16BigEndian(Tcp(sa)[22..]));
        }
    }

    [Fact]
    public void A_connection_receives_closes_and_shows_its_peer_in_brackets()
    {
        var rig = Rig();
        var sa = Syn(rig, Client, 41000);
        uint isn = Seq(sa);
        Inject6(rig, Segment6(Client, Server, 41000, 5001, 0x10, ClientIsn + 1, isn + 1));
        Inject6(rig, Segment6(Client, Server, 41000, 5001, 0x18, ClientIsn + 1, isn + 1, payload: 1000));
        var ack = Sent6(rig)[^1];
        Assert.Equal(0x10, Flags(ack));
        Assert.Equal(ClientIsn + 1001, Ack(ack));
        Inject6(rig, Segment6(Client, Server, 41000, 5001, 0x11, ClientIsn + 1001, isn + 1));
        var fin = Sent6(rig)[^1];
        Assert.Equal(0x11, Flags(fin));
        Assert.Equal(isn + 1, Seq(fin));
        Assert.Equal(ClientIsn + 1002, Ack(fin));
        Assert.True(Checksum.Verify(Tcp(fin), Checksum.PseudoHeaderV6(A6(Server), A6(Client), 6, Tcp(fin).Length)));
        Inject6(rig, Segment6(Client, Server, 41000, 5001, 0x10, ClientIsn + 1002, isn + 2));
        string dump = ScenarioDump.SocketsText(rig.Ns("srv"));
        Assert.Contains("tcp listen [2001:db8:77::1]:5001\n  connection [2001:db8:77::2]:41000 bytes 1000 sha256 ", dump);
        Assert.Contains(" end fin\n", dump);
        var sock = ((TcpListenSock)rig.Ns("srv").Sockets.All[0]).Accepted.Single();
        Assert.True(sock.V6);
        Assert.Equal(TcpState.Closed, sock.State);
    }

    [Fact]
    public void Connections_are_told_apart_by_their_ipv6_four_tuple()
    {
        var rig = Rig();
        var sockets = rig.Ns("srv").Sockets;
        var a = Syn(rig, Client, 41000);
        var b = Syn(rig, "2001:db8:77::9", 41000);
        Assert.NotEqual(Seq(a), Seq(b));
        var ra = sockets.LookupEstablished6(U6(Server), 5001, U6(Client), 41000);
        var rb = sockets.LookupEstablished6(U6(Server), 5001, U6("2001:db8:77::9"), 41000);
        Assert.NotNull(ra);
        Assert.NotNull(rb);
        Assert.NotSame(ra, rb);
        Assert.Equal(Seq(a), ra!.SndIsn);
        Assert.Null(sockets.LookupEstablished6(U6(Server), 5001, U6(Client), 41001));
        // An IPv4 lookup never finds an IPv6 connection.
        Assert.Null(sockets.LookupEstablished(0, 5001, 0, 41000));
        // The listener lookup: the bound address beats the wildcard; another address of ours finds the wildcard only.
        Assert.Equal("tcp listen [2001:db8:77::1]:5001", sockets.LookupListener6(U6(Server), 5001)!.Line);
        Assert.Equal("tcp listen [::]:5003", sockets.LookupListener6(U6(Server), 5003)!.Line);
        Assert.Null(sockets.LookupListener6(U6("2001:db8:77::5"), 5001));
    }

    [Fact]
    public void A_bad_checksum_is_counted_and_unanswered()
    {
        var rig = Rig();
        Inject6(rig, Segment6(Client, Server, 41000, 5001, 0x02, ClientIsn, 0, options: SynOptions(1), badChecksum: true));
        Assert.Empty(Sent6(rig));
        var m = rig.Ns("srv").Mib;
        Assert.Equal(1, m[SnmpCounter.TcpInCsumErrors]);
        Assert.Equal(1, m[SnmpCounter.TcpInErrs]);
    }

    [Fact]
    public void A_closed_port_answers_with_an_ipv6_reset_and_an_ack_to_a_listener_too()
    {
        var rig = Rig();
        Inject6(rig, Segment6(Client, Server, 41000, 5999, 0x02, ClientIsn, 0, tclass: 0x2b));
        var rst = Assert.Single(Sent6(rig));
        Assert.Equal(0x14, Flags(rst));
        Assert.Equal(ClientIsn + 1, Ack(rst));
        // The traffic class of the segment less its ECN bits.
        Assert.Equal(0x28, (BinaryPrimitives.ReadUInt16BigEndian(rst.AsSpan(14)) >> 4) & 0xFF);
        Inject6(rig, Segment6(Client, Server, 41001, 5001, 0x10, ClientIsn, 0x12345678));
        var rst2 = Sent6(rig)[^1];
        Assert.Equal(0x04, Flags(rst2));
        Assert.Equal(0x12345678u, Seq(rst2));
        Assert.Equal(2, rig.Ns("srv").Mib[SnmpCounter.TcpOutRsts]);
    }

    [Fact]
    public void A_dual_stack_listener_takes_ipv4_and_reports_the_peer_v4_mapped()
    {
        var rig = Rig();
        // An IPv4 SYN to :5003 (only [::] listens there): the connection is IPv4 on the wire.
        var syn = new byte[20 + 20 + 20];
        syn[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(syn.AsSpan(2), (ushort)syn.Length);
        syn[6] = 0x40; syn[8] = 64; syn[9] = 6;
        new byte[] { 10, 77, 0, 2 }.CopyTo(syn, 12);
        new byte[] { 10, 77, 0, 1 }.CopyTo(syn, 16);
        BinaryPrimitives.WriteUInt16BigEndian(syn.AsSpan(10), Checksum.Compute(syn.AsSpan(0, 20)));
        var t = syn.AsSpan(20);
        BinaryPrimitives.WriteUInt16BigEndian(t, 42000);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], 5003);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], ClientIsn);
        t[12] = 10 << 4; t[13] = 0x02;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 64240);
        SynOptions(1).CopyTo(t[20..]);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t, Checksum.PseudoHeaderV4(syn.AsSpan(12, 4), syn.AsSpan(16, 4), 6, t.Length)));
        rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, syn));
        var sa = rig.Tx("srv", "vs").Last(f => f[12] == 8 && f[13] == 0);
        Assert.Equal(0x12, sa[14 + 20 + 13]);
        uint isn = BinaryPrimitives.ReadUInt32BigEndian(sa.AsSpan(14 + 24));
        // The third ACK.
        var ack = syn.AsSpan(0, 40).ToArray();
        BinaryPrimitives.WriteUInt16BigEndian(ack.AsSpan(2), 40);
        ack[10] = ack[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ack.AsSpan(10), Checksum.Compute(ack.AsSpan(0, 20)));
        var at = ack.AsSpan(20);
        BinaryPrimitives.WriteUInt32BigEndian(at[4..], ClientIsn + 1);
        BinaryPrimitives.WriteUInt32BigEndian(at[8..], isn + 1);
        at[12] = 5 << 4; at[13] = 0x10;
        at[16] = at[17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(at[16..], Checksum.Compute(at, Checksum.PseudoHeaderV4(ack.AsSpan(12, 4), ack.AsSpan(16, 4), 6, 20)));
        rig.Inject("srv", "vs", ScenarioRig.Eth(Vs, Vc, ack));
        var conn = ((TcpListenSock)rig.Ns("srv").Sockets.All[1]).Accepted.Single();
        Assert.False(conn.V6);
        Assert.Equal("[::ffff:10.77.0.2]:42000", conn.Peer.ToString());
    }

    [Fact]
    public void A_fatal_icmpv6_error_drops_the_request_a_soft_one_does_not()
    {
        foreach (var (type, code, dropped) in new (byte, byte, bool)[] { (1, 4, true), (1, 3, false), (2, 0, false), (4, 0, true), (3, 0, false) })
        {
            var rig = Rig();
            var sa = Syn(rig, Client, 41000);
            // The error quotes our SYN-ACK: IPv6 header and the first 8 bytes of TCP.
            var quoted = sa.AsSpan(14, 48).ToArray();
            var icmp = new byte[8 + quoted.Length];
            icmp[0] = type; icmp[1] = code;
            if (type == 2) BinaryPrimitives.WriteUInt32BigEndian(icmp.AsSpan(4), 1280);
            quoted.CopyTo(icmp, 8);
            BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp, Checksum.PseudoHeaderV6(A6(Client), A6(Server), 58, icmp.Length)));
            var ip = new byte[40 + icmp.Length];
            Ipv6View.Write(ip, icmp.Length, 58, 64, A6(Client), A6(Server));
            icmp.CopyTo(ip, 40);
            Inject6(rig, ip);
            var sockets = rig.Ns("srv").Sockets;
            var req = sockets.LookupEstablished6(U6(Server), 5001, U6(Client), 41000);
            Assert.Equal(dropped, req == null);
            Assert.Equal(dropped ? 1 : 0, rig.Ns("srv").Mib[SnmpCounter.TcpExtListenDrops]);
            Assert.Equal(0, rig.Ns("srv").Mib[SnmpCounter.Icmp6InErrors]);
        }
    }

    [Fact]
    public void An_icmpv6_error_for_no_connection_counts_in_errors()
    {
        var rig = Rig();
        var quoted = Segment6(Server, Client, 5001, 41000, 0x12, 1, 1).AsSpan(0, 48).ToArray();
        var icmp = new byte[8 + quoted.Length];
        icmp[0] = 1; icmp[1] = 4;
        quoted.CopyTo(icmp, 8);
        BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Checksum.Compute(icmp, Checksum.PseudoHeaderV6(A6(Client), A6(Server), 58, icmp.Length)));
        var ip = new byte[40 + icmp.Length];
        Ipv6View.Write(ip, icmp.Length, 58, 64, A6(Client), A6(Server));
        icmp.CopyTo(ip, 40);
        Inject6(rig, ip);
        Assert.Equal(1, rig.Ns("srv").Mib[SnmpCounter.Icmp6InErrors]);
    }

    [Fact]
    public void Ipv6_syn_cookies_round_trip_with_their_own_mss_table()
    {
        UInt128 s = U6(Client), d = U6(Server);
        long now = 1_700_000_000_000_000_000;
        foreach (var (peerMss, table) in new[] { (1460, 1440), (1440, 1440), (1300, 1220), (9000, 8940), (1420, 1420) })
        {
            int mss = peerMss;
            uint cookie = TcpSyncookies.InitSequence6(7, s, d, 41000, 5001, ClientIsn, ref mss, now);
            Assert.Equal(table, mss);
            Assert.Equal(table, TcpSyncookies.Check6(7, s, d, 41000, 5001, ClientIsn + 1, cookie + 1, now + 30_000_000_000));
            Assert.Equal(0, TcpSyncookies.Check6(7, s, d, 41001, 5001, ClientIsn + 1, cookie + 1, now));
        }
        // The IPv6 hash takes all 128 bits: addresses differing only in their high half give other ISNs.
        Assert.NotEqual(TcpSecure.SeqAndTsOff6(0, d, s, 5001, 41000, now), TcpSecure.SeqAndTsOff6(0, d, s ^ ((UInt128)1 << 100), 5001, 41000, now));
    }

    [Fact]
    public void Sockaddr_formats_ipv6_endpoints_in_brackets()
    {
        Assert.Equal("[2001:db8:77::2]:41000", new SockAddr(true, U6(Client), 41000).ToString());
        Assert.Equal("[::ffff:10.77.0.2]:5001", SockAddr.FromV4(0x0a4d0002, 5001).AsV4Mapped().ToString());
        Assert.True(SockAddr.TryParse("[2001:db8:77::1]:5001", out var a, out _));
        Assert.Equal("[2001:db8:77::1]:5001", a.ToString());
    }
}
