using Softnet.Packets;
using Softnet.Tests.Support;
using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// Sysctls that change the IPv4 receive path, each setting through the kernel and through Softnet on the same capture,
/// compared whole (what r sends, its nstat counters, its socket's datagrams): accept_local with rp_filter off, strict
/// and loose (the loose one from conf.default, which a device never written follows), icmp_echo_ignore_all and
/// icmp_echo_ignore_broadcasts, icmp_ratelimit and icmp_ratemask on a burst of port unreachables, icmp_msgs_per_sec and
/// icmp_msgs_burst (the namespace bucket, set where its random credits cannot change the count).
/// </summary>
[Trait("Category", "Kernel")]
public sealed class SysctlBehaviourKernelTests
{
    private const string WireMac0 = SysctlRouterScenario.WireMac0, RMac0 = SysctlRouterScenario.RMac0;

    private static void BuildScenario(string scn, string sysctls)
    {
        SysctlRouterScenario.Write(scn,
            "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\n" + sysctls,
            $"neigh add 10.9.0.10 lladdr {WireMac0} dev eth0 nud permanent\n");
        // Conntrack's keys need a table that tracks: r's INPUT asks for the state of everything it accepts.
        if (sysctls.Contains("nf_conntrack", StringComparison.Ordinal))
            ScenarioPair.Write(scn, "ns/r/iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
                "-A INPUT -m conntrack --ctstate NEW,ESTABLISHED,RELATED -j ACCEPT\nCOMMIT\n" +
                (sysctls.Contains("sctp-nat", StringComparison.Ordinal)
                    ? "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth1 -j MASQUERADE\nCOMMIT\n"
                    : ""));
    }

    private static ScenarioCapture Traffic(bool gre, bool sctp = false, bool sctpNat = false, bool tcpIgnored = false)
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note, string dstMac = RMac0) => c.Add("eth0", Frames.Eth(dstMac, WireMac0, ip), note);
        In(Frames.Echo("10.9.0.10", "10.9.0.2", 8, 7, 1), "echo");
        In(Frames.Echo("10.9.0.10", "10.9.0.255", 8, 7, 2), "broadcast echo", "ff:ff:ff:ff:ff:ff");
        // Sources that are r's own addresses: eth0's (the arrival device), eth1's (another device).
        In(Frames.Udp("10.9.0.2", 5555, "10.9.0.2", 7000), "own source, this device");
        In(Frames.Udp("10.10.0.2", 5556, "10.9.0.2", 7000), "own source, another device");
        // A burst of port unreachables: icmp_ratelimit / icmp_ratemask decide how many go.
        for (int i = 0; i < 8; i++) In(Frames.Udp("10.9.0.10", (ushort)(6000 + i), "10.9.0.2", 9), "closed port");
        if (gre)
        {
            // Forwarded GRE (version 0: no keys, one flow per address pair): A answered twice from behind eth1, U never;
            // then, past the 3 s timeouts, one more of each. With nf_conntrack_acct the entries' packets= tell a flow kept
            // (counts on) from one that expired and was made again.
            static byte[] Gre(string src, string dst) => Frames.Ipv4(src, dst, 47, [0x00, 0x00, 0x08, 0x00, .. new byte[20]]);
            In(Gre("10.9.0.10", "10.10.0.1"), "gre A");
            c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01", Gre("10.10.0.1", "10.9.0.10")), "gre A reply");
            c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01", Gre("10.10.0.1", "10.9.0.10")), "gre A reply");
            In(Gre("10.9.0.20", "10.10.0.1"), "gre U");
            // 3 s timeouts, not 1: the entries made after the pause must outlive the moment between Softnet's dump (at
            // its last frame) and the kernel's (after the capture ends), which a loaded machine stretched past 1 s.
            c.Pause(4100);
            In(Gre("10.9.0.10", "10.10.0.1"), "gre A again");
            In(Gre("10.9.0.20", "10.10.0.1"), "gre U again");
        }
        if (tcpIgnored)
        {
            // A forwarded TCP connection, then its SYN again: in ESTABLISHED the tracker ignores it (TCP_CONNTRACK_IGNORE)
            // and lets it through with NF_ACCEPT before nf_ct_refresh_acct, so packets= does not count it.
            const string Client = "10.9.0.10", Server = "10.10.0.1";
            In(Frames.Tcp(Client, 40000, Server, 80, 0x02, 1000), "tcp SYN");
            c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01", Frames.Tcp(Server, 80, Client, 40000, 0x12, 5000, 1001)), "tcp SYN-ACK");
            In(Frames.Tcp(Client, 40000, Server, 80, 0x10, 1001, 5001), "tcp ACK");
            In(Frames.Tcp(Client, 40000, Server, 80, 0x18, 1001, 5001, payload: 100), "tcp data");
            In(Frames.Tcp(Client, 40000, Server, 80, 0x02, 1000), "tcp SYN again (ignored)");
        }
        if (sctp) SctpTraffic(c, In);
        if (sctpNat)
        {
            // Two INITs MASQUERADEd out of eth1, the second with a wrong CRC32c: sctp_manip_pkt sums every NATed packet
            // again, so with nf_conntrack_checksum 0 both leave with a right one; with it on, the second is INVALID,
            // untouched by NAT, and leaves as it came.
            In(Frames.Ipv4("10.9.0.10", "10.10.0.1", IpProtocols.Sctp, SctpPackets.Packet(6001, 36412, 0, SctpPackets.InitChunk(SctpPackets.Init, 0x61))), "sctp INIT");
            In(Frames.Ipv4("10.9.0.10", "10.10.0.1", IpProtocols.Sctp,
                SctpPackets.Packet(6002, 36412, 0, [SctpPackets.InitChunk(SctpPackets.Init, 0x62)], badCrc: true)), "sctp INIT, wrong CRC32c");
        }
        return c;
    }

    /// <summary>
    /// Forwarded SCTP from 10.9.0.10 behind eth0 to 10.10.0.1 behind eth1, answered from there, one association per
    /// client port. Before a 2.1 s pause: A's handshake (INIT, INIT_ACK, COOKIE_ECHO, COOKIE_ACK), DATA and SACK,
    /// HEARTBEAT and its ACK, with a DATA carrying a wrong tag, one with a wrong CRC32c and one with a zero chunk length
    /// among them (invalid: not counted in packets=); B established; C an INIT never answered; D a HEARTBEAT out of the
    /// blue; E left in COOKIE_WAIT, F in COOKIE_ECHOED, G in SHUTDOWN_SENT, H in SHUTDOWN_RECD, I in SHUTDOWN_ACK_SENT.
    /// After it: A's SHUTDOWN, SHUTDOWN_ACK, SHUTDOWN_COMPLETE (CLOSED), B's HEARTBEAT, C's INIT again; then, past
    /// 3.5 s, an out-of-the-blue DATA (no entry), so that both dumps come after the 1 s and 3 s timeouts of what the
    /// second part left (the kernel's dump runs a moment after the capture ends, Softnet's at its last frame). An entry
    /// that expired and is made again shows packets=1 where a kept one counts on.
    /// </summary>
    private static void SctpTraffic(ScenarioCapture c, Action<byte[], string, string> fromEth0)
    {
        const string Client = "10.9.0.10", Server = "10.10.0.1";
        const ushort Port = 36412;
        void Out(ushort port, uint vtag, string note, params SctpPackets.Chunk[] chunks)
            => fromEth0(Frames.Ipv4(Client, Server, IpProtocols.Sctp, SctpPackets.Packet(port, Port, vtag, chunks)), note, RMac0);
        void OutRaw(byte[] sctp, string note) => fromEth0(Frames.Ipv4(Client, Server, IpProtocols.Sctp, sctp), note, RMac0);
        void Back(ushort port, uint vtag, string note, params SctpPackets.Chunk[] chunks)
            => c.Add("eth1", Frames.Eth("02:00:0a:0a:00:02", "02:00:0a:0a:00:01",
                Frames.Ipv4(Server, Client, IpProtocols.Sctp, SctpPackets.Packet(Port, port, vtag, chunks))), note);
        // Client tags 0x0Nxx, server tags 0x5Nxx for the association on port 5000 + N.
        static uint CTag(ushort port) => 0x0A000000u + port;
        static uint STag(ushort port) => 0x5A000000u + port;
        void Handshake(ushort port, int steps)
        {
            string n = $"sctp :{port}";
            Out(port, 0, n + " INIT", SctpPackets.InitChunk(SctpPackets.Init, CTag(port)));
            if (steps > 1) Back(port, CTag(port), n + " INIT_ACK", SctpPackets.InitChunk(SctpPackets.InitAck, STag(port)));
            if (steps > 2) Out(port, STag(port), n + " COOKIE_ECHO", SctpPackets.CookieEchoChunk());
            if (steps > 3) Back(port, CTag(port), n + " COOKIE_ACK", SctpPackets.Plain(SctpPackets.CookieAck));
        }
        const ushort A = 5000, B = 5001, C = 5002, D = 5003, E = 5004, F = 5005, G = 5006, H = 5007, I = 5008;
        Handshake(A, 4);
        Out(A, STag(A), "sctp A DATA", SctpPackets.DataChunk(1));
        Back(A, CTag(A), "sctp A SACK", SctpPackets.Plain(SctpPackets.Sack, body: 12));
        Out(A, 0xBADBAD, "sctp A DATA, wrong tag", SctpPackets.DataChunk(2));
        OutRaw(SctpPackets.Packet(A, Port, STag(A), [SctpPackets.DataChunk(2)], badCrc: true), "sctp A DATA, wrong CRC32c");
        var zero = SctpPackets.Packet(A, Port, STag(A), SctpPackets.DataChunk(2));
        zero[14] = zero[15] = 0;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(zero.AsSpan(8), Softnet.Netfilter.Conntrack.SctpTracker.Crc32c(zero));
        OutRaw(zero, "sctp A DATA, zero chunk length");
        Out(A, STag(A), "sctp A HEARTBEAT", SctpPackets.HeartbeatChunk(SctpPackets.Heartbeat));
        Back(A, CTag(A), "sctp A HEARTBEAT_ACK", SctpPackets.HeartbeatChunk(SctpPackets.HeartbeatAck));
        Handshake(B, 4);
        Out(B, STag(B), "sctp B DATA", SctpPackets.DataChunk(1));
        Handshake(C, 1);
        Out(D, 0x0D0D0D0D, "sctp D HEARTBEAT", SctpPackets.HeartbeatChunk(SctpPackets.Heartbeat));
        Handshake(E, 2);
        Handshake(F, 3);
        Handshake(G, 4);
        Out(G, STag(G), "sctp G SHUTDOWN", SctpPackets.ShutdownChunk(0));
        Handshake(H, 4);
        Back(H, CTag(H), "sctp H SHUTDOWN", SctpPackets.ShutdownChunk(0));
        Handshake(I, 4);
        Out(I, STag(I), "sctp I SHUTDOWN", SctpPackets.ShutdownChunk(0));
        Back(I, CTag(I), "sctp I SHUTDOWN_ACK", SctpPackets.Plain(SctpPackets.ShutdownAck));
        c.Pause(2100);
        Out(A, STag(A), "sctp A SHUTDOWN", SctpPackets.ShutdownChunk(1));
        Back(A, CTag(A), "sctp A SHUTDOWN_ACK", SctpPackets.Plain(SctpPackets.ShutdownAck));
        Out(A, STag(A), "sctp A SHUTDOWN_COMPLETE", SctpPackets.Plain(SctpPackets.ShutdownComplete));
        Out(B, STag(B), "sctp B HEARTBEAT again", SctpPackets.HeartbeatChunk(SctpPackets.Heartbeat));
        Out(C, 0, "sctp C INIT again", SctpPackets.InitChunk(SctpPackets.Init, CTag(C)));
        c.Pause(3500);
        Out(5009, 0x0F0F0F0F, "sctp DATA out of the blue", SctpPackets.DataChunk(1));
    }

    public static TheoryData<string, string> Settings() => new()
    {
        { "defaults", "" },
        { "accept-local", "net.ipv4.conf.all.accept_local = 1\n" },
        { "accept-local-strict", "net.ipv4.conf.all.accept_local = 1\nnet.ipv4.conf.all.rp_filter = 1\n" },
        { "accept-local-dev-loose-default", "net.ipv4.conf.eth0.accept_local = 1\nnet.ipv4.conf.default.rp_filter = 2\n" },
        { "echo-ignore-all", "net.ipv4.icmp_echo_ignore_all = 1\nnet.ipv4.icmp_echo_ignore_broadcasts = 0\n" },
        { "echo-broadcasts", "net.ipv4.icmp_echo_ignore_broadcasts = 0\n" },
        { "ratelimit-0", "net.ipv4.icmp_ratelimit = 0\n" },
        { "ratemask-0", "net.ipv4.icmp_ratemask = 0\n" },
        // The namespace bucket: a second's refill of one credit, no burst: the first limited error goes (a refill
        // always lets its message go), the others within the second do not, whatever credits it consumed.
        { "msgs-per-sec-1", "net.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
        { "msgs-per-sec-0", "net.ipv4.icmp_msgs_per_sec = 0\n" },
        // A ratemask naming echo replies puts them in front of the bucket too: the echo's reply takes the refill.
        { "msgs-ratemask-echo", "net.ipv4.icmp_ratemask = 6169\nnet.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
        // Conntrack accounting: `conntrack -L` shows packets= bytes= on both directions of every entry.
        { "conntrack-acct", "net.netfilter.nf_conntrack_acct = 1\n" },
        { "conntrack-no-acct", "net.netfilter.nf_conntrack_acct = 0\n" },
        // Conntrack timestamps: `conntrack -L` shows each entry's delta-time= (its value, wall-clock seconds, is masked).
        // GRE's timeouts: an unreplied flow past nf_conntrack_gre_timeout is made again; a replied one lives on the
        // stream timeout, unless that is short too.
        { "conntrack-gre-timeout", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_gre_timeout = 3\n" },
        { "conntrack-gre-stream", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_gre_timeout = 3\nnet.netfilter.nf_conntrack_gre_timeout_stream = 3\n" },
        { "conntrack-gre-default", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\n# gre_timeout defaults\n" },
        // SCTP's per-state timeouts: every key at 1 s leaves no SCTP entry by the dump; at 100 s every state's entry
        // stays (the COOKIE_WAIT, COOKIE_ECHOED and SHUTDOWN ones too, gone past their 3 s with the defaults); the
        // established key alone at 1 s has B made again by its HEARTBEAT (HEARTBEAT_SENT, packets=1).
        { "conntrack-sctp-short", SctpTimeouts(1) },
        { "conntrack-sctp-long", SctpTimeouts(100) },
        { "conntrack-sctp-established", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\nnet.netfilter.nf_conntrack_sctp_timeout_established = 1\n" },
        { "conntrack-sctp-nat", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_checksum = 0\n# sctp-nat\n" },
        { "conntrack-sctp-nat-checksum", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_checksum = 1\n# sctp-nat\n" },
        { "conntrack-sctp-default", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\n# sctp_timeout defaults\n" },
        // A packet the TCP tracker ignores is accepted without being counted (acct) or refreshing the entry.
        { "conntrack-tcp-ignored", "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\n# tcp-ignored\n" },
        { "conntrack-timestamp", "net.netfilter.nf_conntrack_timestamp = 1\nnet.netfilter.nf_conntrack_acct = 1\n" },
    };

    private static string SctpTimeouts(int seconds) => "net.ipv4.ip_forward = 1\nnet.netfilter.nf_conntrack_acct = 1\n" + string.Concat(
        new[] { "closed", "cookie_wait", "cookie_echoed", "established", "shutdown_sent", "shutdown_recd", "shutdown_ack_sent", "heartbeat_sent" }
            .Select(k => $"net.netfilter.nf_conntrack_sctp_timeout_{k} = {seconds}\n"));

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void A_sysctl_changes_the_path_as_in_the_kernel(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var traffic = Traffic(sysctls.Contains("gre_timeout", StringComparison.Ordinal), sysctls.Contains("sctp_timeout", StringComparison.Ordinal),
            sysctls.Contains("sctp-nat", StringComparison.Ordinal), sysctls.Contains("tcp-ignored", StringComparison.Ordinal));
        var (kernel, softnet) = ScenarioPair.Run("sysctl-" + name, scn => BuildScenario(scn, sysctls), traffic, "r");
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
    }
}
