using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>
/// IPv4 options through the kernel and through Softnet, compared whole (captures frame by frame and the Ip/Icmp
/// nstat counters): record route and timestamps (each flag, full with the overflow counter, overflow 15) to the router
/// (echo replies as icmp_reply echoes them) and through it (ip_forward_options), malformed options (parameter problem
/// pointers, InHdrErrors), router alert, CIPSO without a DOI, loose and strict source routes with accept_source_route
/// 1 on eth0 and 0 on eth1 (walked to the next hop, exhausted and answered reversed, a strict hop behind a gateway:
/// source route failed), ICMP errors echoing options, and fragmentation of a datagram with options.
/// <para>Timestamps hold each side's clock (the kernel's real time, Softnet's replay clock): the comparison zeroes the
/// 32-bit time values of every filled timestamp entry (in the header and in an ICMP error's quoted header) and redoes
/// the checksums covering them where they were right, so everything else, pointers and overflow included, is compared
/// exactly (<see cref="ScenarioCompare.Mask"/>).</para>
/// </summary>
[Trait("Category", "Kernel")]
public sealed class IpOptionsKernelTests
{
    private const string WireMac0 = "02:00:0a:09:00:01", RMac0 = "02:00:0a:09:00:02", WireMac1 = "02:00:0a:0a:00:01", RMac1 = "02:00:0a:0a:00:02";
    private const string R = "10.9.0.2", R1 = "10.10.0.2", Far = "10.77.0.5";


    private static void BuildScenario(string scn, bool conntrack = false)
    {
        if (conntrack)
            ScenarioPair.Write(scn, "ns/r/iptables.save", "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n" +
                "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n-A FORWARD -p udp -m udp --dport 7777 -j REJECT --reject-with icmp-port-unreachable\n" +
                "-A INPUT -p udp -m udp --dport 7778 -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n");
        ScenarioPair.Write(scn, "links.batch", "netns add wire\nnetns add r\n" +
            "link add name eth0 netns r type veth peer name wire0 netns wire\nlink add name eth1 netns r type veth peer name wire1 netns wire\n");
        ScenarioPair.Write(scn, "ns/wire/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n");
        ScenarioPair.Write(scn, "ns/wire/ip.batch", "link set lo up\n" +
            $"link set wire0 address {WireMac0}\naddr add 10.9.0.1/24 dev wire0\nlink set wire0 up\n" +
            $"link set wire1 address {WireMac1}\nlink set wire1 mtu 1000\naddr add 10.10.0.1/24 dev wire1\nlink set wire1 up\n" +
            $"neigh add {R} lladdr {RMac0} dev wire0 nud permanent\nneigh add {R1} lladdr {RMac1} dev wire1 nud permanent\n");
        ScenarioPair.Write(scn, "ns/wire/iptables.save", "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n");
        // Source routes accepted on eth0 only (conf.all and the device must both allow them).
        ScenarioPair.Write(scn, "ns/r/sysctl.conf", "net.ipv6.conf.all.disable_ipv6 = 1\nnet.ipv6.conf.default.disable_ipv6 = 1\n" +
            "net.ipv4.ip_forward = 1\n" +
            "net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\nnet.ipv4.conf.eth0.send_redirects = 0\nnet.ipv4.conf.eth1.send_redirects = 0\n" +
            "net.ipv4.conf.all.rp_filter = 0\nnet.ipv4.conf.default.rp_filter = 0\nnet.ipv4.conf.eth0.rp_filter = 0\nnet.ipv4.conf.eth1.rp_filter = 0\n" +
            "net.ipv4.conf.all.accept_source_route = 1\nnet.ipv4.conf.default.accept_source_route = 1\n" +
            "net.ipv4.conf.eth0.accept_source_route = 1\nnet.ipv4.conf.eth1.accept_source_route = 0\n");
        var neigh = string.Concat(Enumerable.Range(10, 40).Select(h => $"neigh add 10.9.0.{h} lladdr {WireMac0} dev eth0 nud permanent\n"));
        ScenarioPair.Write(scn, "ns/r/ip.batch", "link set lo up\n" +
            $"link set eth0 address {RMac0}\naddr add {R}/24 dev eth0\nlink set eth0 up\n" +
            $"link set eth1 address {RMac1}\nlink set eth1 mtu 1000\naddr add {R1}/24 dev eth1\nlink set eth1 up\n" +
            neigh + $"neigh add 10.10.0.1 lladdr {WireMac1} dev eth1 nud permanent\n" +
            "route add 10.77.0.0/16 via 10.10.0.1 dev eth1\n");
    }

    /// <summary>A copy of <paramref name="ip"/> (20-byte header) with <paramref name="options"/> (END-padded to a word)
    /// after its header: IHL, total length and checksum redone; DF cleared when <paramref name="df"/> is false.</summary>
    public static byte[] WithOptions(byte[] ip, byte[] options, bool df = true)
    {
        int optlen = (options.Length + 3) & ~3;
        var p = new byte[ip.Length + optlen];
        ip.AsSpan(0, 20).CopyTo(p);
        options.CopyTo(p, 20);
        ip.AsSpan(20).CopyTo(p.AsSpan(20 + optlen));
        p[0] = (byte)(0x40 | ((20 + optlen) >> 2));
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(2), (ushort)p.Length);
        if (!df) p[6] &= 0xBF;
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, 20 + optlen)));
        return p;
    }

    private static byte[] A(string s) => Frames.Ip4(s);

    /// <summary>An option: type, length (2 + body), body.</summary>
    private static byte[] Opt(byte type, params byte[] body) => [type, (byte)(2 + body.Length), .. body];

    /// <summary>Record route with <paramref name="slots"/> empty slots, pointer 4.</summary>
    private static byte[] RecordRoute(int slots) => Opt(7, [4, .. new byte[4 * slots]]);

    /// <summary>A source route (LSRR 131 / SSRR 137) listing <paramref name="hops"/>, pointer <paramref name="ptr"/>.</summary>
    private static byte[] SourceRoute(byte type, int ptr, params string[] hops) => Opt(type, [(byte)ptr, .. hops.SelectMany(A)]);

    private static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Frames.Eth(RMac0, WireMac0, ip), note);
        void In1(byte[] ip, string note) => c.Add("eth1", Frames.Eth(RMac1, WireMac1, ip), note);
        byte[] Echo(string src, string dst, ushort seq, byte[] opts, int payload = 32)
            => WithOptions(Frames.Echo(src, dst, 8, 0x77, seq, payload), opts);
        const string S = "10.9.0.10";
        ushort seq = 1;

        // Record route and timestamps to the router: the reply echoes them with our address and time.
        In(Echo(S, R, seq++, RecordRoute(9)), "ping -R to the router");
        In(Echo(S, R, seq++, Opt(68, [5, 0x00, .. new byte[36]])), "timestamp only (9 slots)");
        In(Echo(S, R, seq++, Opt(68, [5, 0x01, .. new byte[32]])), "timestamp and address (4 pairs)");
        In(Echo(S, R, seq++, Opt(68, [5, 0x03, .. A(R), 0, 0, 0, 0, .. A(R1), 0, 0, 0, 0])), "prespecified: both our addresses");
        In(Echo(S, R, seq++, Opt(68, [5, 0x03, .. A("10.9.9.9"), 0, 0, 0, 0, .. A(R), 0, 0, 0, 0])), "prespecified: another address first");
        In(Echo(S, R, seq++, Opt(68, [13, 0x20, 1, 2, 3, 4, 5, 6, 7, 8])), "timestamp full, overflow 2 counted up");
        In(Echo(S, R, seq++, Opt(68, [9, 0x01, 1, 2, 3, 4])), "timestamp and address full (no room for a pair)");
        In(Echo(S, R, seq++, Opt(7, [4, .. new byte[7]])), "record route of 10 bytes: filled, but the echo cannot answer");
        In(Echo(S, R, seq++, Opt(148, 0, 0)), "router alert: answered without options");
        In(Echo(S, R, seq++, Opt(136, 0x12, 0x34)), "stream id: carried, not echoed");
        In(Echo(S, R, seq++, [.. RecordRoute(2), 0, 7, 3, 1]), "record route, END, bytes after it zeroed");
        In(Echo(S, R, seq++, [1, 1, .. RecordRoute(1), .. Opt(68, [5, 0x00, 0, 0, 0, 0])]), "NOPs, record route, timestamp");
        In(Echo(S, R, seq++, Opt(68, [5, 0x02, .. new byte[8]])), "timestamp with flag 2 (unknown): carried, not stamped");
        In(Echo(S, R, seq++, [0, 0, 0, 0]), "options of END only");
        In(Echo(S, R, seq++, [1, 1, 1, 1, 1, 1, 1, 1]), "options of NOP only");
        In(Echo(S, R, seq++, Opt(7, [200, 1, 2, 3, 4])), "record route pointer far past its end: full");
        In(Echo(S, R, seq++, SourceRoute(131, 4, R1, R)), "LSRR through both of our addresses: delivered");
        In(Echo("10.9.0.39", R, seq++, SourceRoute(131, 5, R1)), "LSRR pointer 5 (unaligned): problem at its pointer");
        // Malformed: parameter problem pointing at the fault, InHdrErrors (each from its own source: ICMP rate limit).
        In(Echo("10.9.0.11", R, seq++, Opt(68, [9, 0xF1, 1, 2, 3, 4])), "timestamp full with overflow 15: problem at its flags");
        In(Echo("10.9.0.12", R, seq++, [7, 2, 0, 0]), "record route of length 2: problem at its length");
        In(Echo("10.9.0.13", R, seq++, [1, 0x44, 0, 0]), "option length 0: problem at the option");
        In(Echo("10.9.0.14", R, seq++, [7, 11, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "record route pointer 3: problem at the pointer");
        In(Echo("10.9.0.15", R, seq++, [1, 1, 1, 7]), "record route cut off by the header's end: problem at the option");
        In(Echo("10.9.0.16", R, seq++, [.. RecordRoute(1), .. RecordRoute(1)]), "two record routes: problem at the second, the error echoes the first");
        In(Echo("10.9.0.17", R, seq++, [.. Opt(68, [5, 0x00, 0, 0, 0, 0]), 68, 4, 5, 0]), "second timestamp: problem, the error echoes the first");
        In(Echo("10.9.0.18", R, seq++, Opt(134, 0, 0, 0, 1, 1, 4, 0, 0)), "CIPSO without a DOI: problem at the DOI");
        In(Echo("10.9.0.19", R, seq++, Opt(134, 0, 0, 0, 1)), "CIPSO shorter than 8: problem at its length");
        In(Echo("10.9.0.20", R, seq++, Opt(68, [4, 0x00, 0, 0, 0, 0])), "timestamp pointer 4: problem at the pointer");
        In(Echo("10.9.0.21", R, seq++, Opt(68, [5, 0x01, 0, 0, 0, 0])), "timestamp and address with room for half a pair: problem at the pointer");

        // Source routes to the router (accept_source_route 1 on eth0).
        In(Echo(S, R, seq++, SourceRoute(131, 8, "10.9.0.30")), "LSRR exhausted at the router: answered by the reversed route via 10.9.0.30");
        In(Echo(S, R, seq++, SourceRoute(137, 12, "10.9.0.31", "10.9.0.32")), "SSRR exhausted: reversed route of two hops");
        In(Echo(S, R, seq++, SourceRoute(131, 12, S, "10.9.0.33")), "LSRR through the sender itself: cut short (RFC 1812)");
        In(Echo(S, R, seq++, SourceRoute(131, 4, R1)), "LSRR whose only hop is our other address: delivered to it");
        In(WithOptions(Frames.Udp(S, 4000, R, 9), SourceRoute(131, 4, Far)), "LSRR to the router, next hop behind the gateway: forwarded to it");
        In(WithOptions(Frames.Udp(S, 4001, R, 9), [.. SourceRoute(131, 4, R1, Far), .. RecordRoute(2)]), "LSRR with our other address first, then the far host; record route");
        In(WithOptions(Frames.Udp(S, 4002, R, 9), SourceRoute(137, 4, "10.10.0.1")), "SSRR to a directly connected hop: forwarded");
        In(WithOptions(Frames.Udp("10.9.0.22", 4003, R, 9), SourceRoute(137, 4, Far)), "SSRR to a hop behind a gateway: source route failed");
        In(WithOptions(Frames.Udp("10.9.0.23", 4004, Far, 9), SourceRoute(137, 4, "10.77.0.6")), "SSRR passing by (not to us): problem at 16");
        In(WithOptions(Frames.Udp(S, 4005, Far, 9), SourceRoute(131, 4, "10.77.0.6")), "LSRR passing by: forwarded as it is");
        In(WithOptions(Frames.Udp("10.9.0.24", 4006, R, 9), [131, 7, 3, 10, 77, 0, 5, 0]), "LSRR pointer 3: problem at the pointer");
        In(WithOptions(Frames.Udp("10.9.0.25", 4007, R, 9), [131, 6, 4, 10, 77, 0, 1, 0, 0, 0]), "LSRR with half an address left: problem at its pointer");
        In(WithOptions(Frames.Udp(S, 4008, R, 9), SourceRoute(131, 4, "10.66.0.1")), "LSRR hop without a route: dropped");
        In(WithOptions(Frames.Udp(S, 4009, R, 9), [.. SourceRoute(131, 4, Far), .. SourceRoute(131, 4, Far)]), "two source routes: problem at the second");
        // accept_source_route 0 on eth1: dropped silently.
        In1(WithOptions(Frames.Echo("10.10.0.1", R1, 8, 0x77, 100), SourceRoute(131, 8, "10.10.0.9")), "LSRR on eth1 (accept_source_route 0): dropped");
        In1(WithOptions(Frames.Udp("10.10.0.1", 4010, "10.9.0.10", 9), SourceRoute(131, 4, "10.9.0.11")), "LSRR passing by on eth1: dropped");

        // Through the router: ip_forward_options.
        In(WithOptions(Frames.Udp(S, 5000, Far, 9), RecordRoute(3)), "forwarded with record route: the outgoing address");
        In(WithOptions(Frames.Udp(S, 5001, Far, 9), Opt(68, [5, 0x00, .. new byte[12]])), "forwarded with timestamp only");
        In(WithOptions(Frames.Udp(S, 5002, Far, 9), Opt(68, [5, 0x01, .. new byte[16]])), "forwarded with timestamp and address: the address facing the sender");
        In(WithOptions(Frames.Udp(S, 5003, Far, 9), Opt(68, [5, 0x03, .. A(R1), 0, 0, 0, 0])), "forwarded, prespecified our eth1 address");
        In(WithOptions(Frames.Udp(S, 5004, Far, 9), Opt(148, 0, 0)), "forwarded with router alert (no RA socket)");
        // ping -R through the router: the request takes our eth1 address, the far host's reply our eth0 address.
        In(WithOptions(Frames.Echo(S, Far, 8, 0x78, 1), RecordRoute(9)), "ping -R through the router: request");
        In1(WithOptions(Frames.Echo(Far, S, 0, 0x78, 1), Opt(7, [16, .. A(R1), .. A(Far), .. A(Far), .. new byte[24]])), "ping -R through the router: reply");
        In1(WithOptions(Frames.Echo("10.10.0.1", R1, 8, 0x78, 2), RecordRoute(2)), "ping -R to the router's eth1 address from eth1");
        // Broadcasts with options: compiled (spec_dst from the route back), then as any broadcast; a source route dies.
        c.Add("eth0", Frames.Eth("ff:ff:ff:ff:ff:ff", WireMac0, WithOptions(Frames.Udp(S, 5011, "10.9.0.255", 9), RecordRoute(2))), "subnet broadcast with record route");
        c.Add("eth0", Frames.Eth("ff:ff:ff:ff:ff:ff", WireMac0, WithOptions(Frames.Udp(S, 5012, "10.9.0.255", 9), SourceRoute(131, 4, Far))), "subnet broadcast with a source route: dropped");
        In(WithOptions(Frames.Udp(S, 5005, Far, 9), Opt(7, [12, 1, 1, 1, 1, 2, 2, 2, 2])), "forwarded with a full record route: left alone");
        In(WithOptions(Frames.Udp("10.9.0.26", 5006, Far, 9, ttl: 1), RecordRoute(3)), "TTL 1 with record route: time exceeded echoes it");
        In(WithOptions(Frames.Udp("10.9.0.27", 5007, Far, 9, payload: 1200), RecordRoute(2)), "DF over eth1's MTU with record route: fragmentation needed");
        In(WithOptions(Frames.Udp("10.9.0.28", 5008, "10.66.0.9", 9), [.. RecordRoute(1), .. Opt(68, [5, 0x00, 0, 0, 0, 0])]), "no route, with options: net unreachable echoes them");
        // Fragmented on eth1: the first fragment keeps every option, the rest only the copied ones.
        In(WithOptions(Frames.Udp(S, 5009, Far, 9, payload: 1400), [.. RecordRoute(2), .. Opt(148, 0, 0), .. Opt(136, 0, 1), .. Opt(130, 0, 0, 0, 0, 0, 0, 0, 0, 0)], df: false),
            "forwarded and fragmented: record route becomes NOPs after the first fragment, RA, SID and SEC (copied) stay");
        In(WithOptions(Frames.Udp(S, 5010, Far, 9, payload: 1400), [.. SourceRoute(131, 8, "10.9.0.30"), .. Opt(68, [5, 0x00, .. new byte[8]])], df: false),
            "forwarded LSRR passing by (pointer past the end), fragmented");
        // Answers from the transport: a TCP reset (ip_send_unicast_reply echoes the options) and a port unreachable.
        In(WithOptions(Frames.Tcp("10.9.0.30", 40000, R, 80, TcpFlags.Syn, 1000), RecordRoute(2)), "SYN to a closed port with record route: the reset echoes it");
        In(WithOptions(Frames.Tcp(S, 40001, R, 80, TcpFlags.Syn, 2000), SourceRoute(131, 8, "10.9.0.31")), "SYN with an exhausted LSRR: the reset goes back by the reversed route");
        In(WithOptions(Frames.Tcp(S, 40002, R, 80, TcpFlags.Syn, 3000), Opt(7, [4, .. new byte[7]])), "SYN whose record route cannot be answered: no reset, but counted");
        In(WithOptions(Frames.Tcp(S, 40003, R, 80, TcpFlags.Ack, 4000, 77), Opt(68, [5, 0x01, .. new byte[16]])), "ACK to no socket with timestamps: reset with our entry");
        In(WithOptions(Frames.Udp("10.9.0.34", 6000, R, 9), RecordRoute(2)), "UDP to a closed port with record route: port unreachable echoes it");
        // An unknown protocol to the router with options: the protocol unreachable quotes the changed header.
        In(WithOptions(Frames.Ipv4("10.9.0.29", R, 253, new byte[16]), RecordRoute(2)), "protocol 253 with record route");
        return c;
    }

    /// <summary>The fragments a sender cuts <paramref name="ip"/> (with options) into, <paramref name="dataPer"/> data bytes
    /// each: the first with every option, the others with the options lacking the copied bit overwritten by NOPs.</summary>
    private static List<byte[]> FragmentsWithOptions(byte[] ip, int dataPer)
    {
        int hl = (ip[0] & 0xF) * 4, data = ip.Length - hl;
        var later = ip[..hl];
        for (int i = 20; i < hl;)
        {
            if (later[i] == 0) break;
            if (later[i] == 1) { i++; continue; }
            int len = later[i + 1];
            if ((later[i] & 0x80) == 0) Array.Fill(later, (byte)1, i, len);
            i += len;
        }
        var list = new List<byte[]>();
        for (int off = 0; off < data; off += dataPer)
        {
            int len = Math.Min(dataPer, data - off);
            var f = new byte[hl + len];
            (off == 0 ? ip : later).AsSpan(0, hl).CopyTo(f);
            ip.AsSpan(hl + off, len).CopyTo(f.AsSpan(hl));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)((off >> 3) | (off + dataPer < data ? 0x2000 : 0)));
            f[10] = f[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(10), Checksum.Compute(f.AsSpan(0, hl)));
            list.Add(f);
        }
        return list;
    }

    /// <summary>Fragments with options: gathered by ip_local_deliver (an echo to the router, answered with the first
    /// fragment's record route) or, with conntrack on, by nf_defrag_ipv4 and cut again on eth1 (the frag_list path for
    /// pieces that fit, the copying path for larger ones), the later pieces' options as ip_options_fragment leaves them.</summary>
    private static ScenarioCapture FragmentTraffic()
    {
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Frames.Eth(RMac0, WireMac0, ip), note);
        const string S = "10.9.0.10";
        byte[] opts = [.. RecordRoute(3), .. Opt(148, 0, 0), .. Opt(68, [5, 0x00, 0, 0, 0, 0])];
        var echo = WithOptions(Frames.WithId(Frames.Echo(S, R, 8, 0x79, 1, payload: 1600), 0x7001), opts, df: false);
        foreach (var f in FragmentsWithOptions(echo, 800)) In(f, "fragment of an echo request with options to the router");
        var small = WithOptions(Frames.WithId(Frames.Udp(S, 7000, Far, 9, payload: 1500), 0x7002), opts, df: false);
        // The first fragment last: with conntrack the frag_list path writes the header into each later piece in place,
        // and a piece completing the datagram still shares its data with the packet socket's copy, so the kernel's own
        // rx capture would show it rewritten (the head is unshared by ip_forward's skb_cow and is safe).
        var smallFrags = FragmentsWithOptions(small, 800);
        smallFrags.Reverse();
        foreach (var f in smallFrags) In(f, "800-byte fragment with options, forwarded (frag_list path under conntrack), last to first");
        var big = WithOptions(Frames.WithId(Frames.Udp(S, 7001, Far, 9, payload: 2600), 0x7003), [.. SourceRoute(131, 8, "10.9.0.30"), .. RecordRoute(2)], df: false);
        foreach (var f in FragmentsWithOptions(big, 1400)) In(f, "1400-byte fragment with LSRR and RR, cut again for eth1");
        // With conntrack's rules, REJECT answers (nf_send_unreach is icmp_send: the options are echoed).
        In(WithOptions(Frames.Udp("10.9.0.40", 7100, Far, 7777), [.. RecordRoute(2), .. Opt(68, [5, 0x01, .. new byte[8]])]), "UDP to 7777 with options: REJECT in FORWARD (conntrack run)");
        In(WithOptions(Frames.Udp("10.9.0.41", 7101, R, 7778), [.. RecordRoute(2), .. SourceRoute(131, 8, "10.9.0.30")]), "UDP to the router's 7778 with options: REJECT in INPUT (conntrack run)");
        return c;
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fragments_with_options_are_handled_as_the_kernel_handles_them(bool conntrack)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", conntrack ? "ip-options-frag-ct" : "ip-options-frag");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        BuildScenario(scn, conntrack);
        FragmentTraffic().Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel);
        ScenarioReplay.Run(scn, capture, "r", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
        var n = Softnet.Telemetry.SnmpMib.ParseNstat(File.ReadAllText(Path.Combine(kernel, "r", "nstat.txt")));
        foreach (var name in new[] { "IpReasmOKs", "IpFragCreates", "IcmpOutEchoReps" })
            Assert.True(n.GetValueOrDefault(name) > 0, $"the kernel's {name} is 0: the traffic misses its path");
    }

    [SkippableFact]
    public void Ip_options_are_handled_as_the_kernel_handles_them()
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "ip-options");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario"), capture = Path.Combine(root, "in.pcapng");
        BuildScenario(scn);
        Traffic().Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel);
        ScenarioReplay.Run(scn, capture, "r", softnet);
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions { IgnoreFiles = new HashSet<string> { "wire/wire0.tx.pcap", "wire/wire1.tx.pcap" } });
        var n = Softnet.Telemetry.SnmpMib.ParseNstat(File.ReadAllText(Path.Combine(kernel, "r", "nstat.txt")));
        foreach (var name in new[] { "IpInHdrErrors", "IcmpOutParmProbs", "IcmpOutEchoReps", "IpForwDatagrams", "IpFragCreates", "IcmpOutDestUnreachs", "IpExtInBcastPkts", "TcpOutRsts" })
            Assert.True(n.GetValueOrDefault(name) > 0, $"the kernel's {name} is 0: the traffic misses its path");
    }
}
