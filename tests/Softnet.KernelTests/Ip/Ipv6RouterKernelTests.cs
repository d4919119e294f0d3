using System.Buffers.Binary;
using System.Net;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Ip;

/// <summary>Ethernet + IPv6 frames for the IPv6 scenarios: datagrams with extension headers, UDP, TCP, ICMPv6 echo,
/// errors and neighbour discovery, fragments; checksums valid unless asked otherwise.</summary>
public static class Frames6
{
    public static byte[] Addr(string s) => IPAddress.Parse(s).GetAddressBytes();

    /// <summary>The IPv6 header over <paramref name="payload"/> (extension headers and upper layer, as given).</summary>
    public static byte[] Ipv6(string src, string dst, byte nextHeader, ReadOnlySpan<byte> payload, byte hop = 64, byte tclass = 0,
        uint flow = 0, int? payloadLength = null)
    {
        var b = new byte[40 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, 6u << 28 | (uint)tclass << 20 | flow);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), (ushort)(payloadLength ?? payload.Length));
        b[6] = nextHeader;
        b[7] = hop;
        Addr(src).CopyTo(b, 8);
        Addr(dst).CopyTo(b, 24);
        payload.CopyTo(b.AsSpan(40));
        return b;
    }

    /// <summary>An upper-layer message with its checksum filled (at <paramref name="csumAt"/>) over the pseudo-header.</summary>
    public static byte[] WithChecksum(string src, string dst, byte proto, byte[] l4, int csumAt, bool bad = false)
    {
        ushort c = Checksum.Compute(l4, Checksum.PseudoHeaderV6(Addr(src), Addr(dst), proto, l4.Length));
        if (proto == 17 && c == 0) c = 0xFFFF;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(csumAt), bad ? (ushort)(c ^ 0x5a5a) : c);
        return l4;
    }

    public static byte[] UdpL4(string src, ushort sport, string dst, ushort dport, int payload = 32, bool zeroChecksum = false)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 0; i < payload; i++) u[8 + i] = (byte)('a' + i % 26);
        return zeroChecksum ? u : WithChecksum(src, dst, 17, u, 6);
    }

    public static byte[] Udp(string src, ushort sport, string dst, ushort dport, int payload = 32, byte hop = 64)
        => Ipv6(src, dst, 17, UdpL4(src, sport, dst, dport, payload), hop);

    public static byte[] TcpL4(string src, ushort sport, string dst, ushort dport, byte flags, uint seq, uint ack = 0, int payload = 0)
    {
        var t = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), 64240);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)('0' + i % 10);
        return WithChecksum(src, dst, 6, t, 16);
    }

    public static byte[] IcmpL4(string src, string dst, byte type, byte code, uint word, ReadOnlySpan<byte> body, bool bad = false)
    {
        var m = new byte[8 + body.Length];
        m[0] = type;
        m[1] = code;
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), word);
        body.CopyTo(m.AsSpan(8));
        return WithChecksum(src, dst, 58, m, 2, bad);
    }

    public static byte[] EchoL4(string src, string dst, ushort id, ushort seq, int payload = 32, bool bad = false)
    {
        var body = new byte[payload];
        for (int i = 0; i < payload; i++) body[i] = (byte)i;
        return IcmpL4(src, dst, 128, 0, (uint)id << 16 | seq, body, bad);
    }

    public static byte[] Echo(string src, string dst, ushort id, ushort seq, int payload = 32, byte hop = 64, byte tclass = 0, bool bad = false)
        => Ipv6(src, dst, 58, EchoL4(src, dst, id, seq, payload, bad), hop, tclass);

    /// <summary>A hop-by-hop or destination options header naming <paramref name="next"/>, its options padded to 8n.</summary>
    public static byte[] Options(byte next, params byte[] options)
    {
        int len = (2 + options.Length + 7) & ~7;
        var h = new byte[len];
        h[0] = next;
        h[1] = (byte)(len / 8 - 1);
        options.CopyTo(h, 2);
        int pad = len - 2 - options.Length;
        if (pad == 1) h[len - 1] = 0;
        else if (pad > 1) { h[2 + options.Length] = 1; h[3 + options.Length] = (byte)(pad - 2); }
        return h;
    }

    /// <summary>A routing header of <paramref name="type"/> with one address.</summary>
    public static byte[] Routing(byte next, byte type, byte segmentsLeft, string address)
    {
        var h = new byte[24];
        h[0] = next;
        h[1] = 2;
        h[2] = type;
        h[3] = segmentsLeft;
        Addr(address).CopyTo(h, 8);
        return h;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>Neighbour solicitation for <paramref name="target"/> (to its solicited-node group unless
    /// <paramref name="dst"/>), with the source link-layer option when <paramref name="sll"/> is given.</summary>
    public static byte[] Ns(string src, string? dst, string target, string? sll, byte hop = 255)
    {
        var t = Addr(target);
        dst ??= $"ff02::1:ff{t[13]:x2}:{t[14]:x2}{t[15]:x2}";
        var body = new byte[16 + (sll != null ? 8 : 0)];
        t.CopyTo(body, 0);
        if (sll != null) { body[16] = 1; body[17] = 1; Frames.Mac(sll).CopyTo(body, 18); }
        return Ipv6(src, dst, 58, IcmpL4(src, dst, 135, 0, 0, body), hop);
    }

    public static byte[] Na(string src, string dst, string target, string? tll, bool solicited, bool over)
    {
        var body = new byte[16 + (tll != null ? 8 : 0)];
        Addr(target).CopyTo(body, 0);
        if (tll != null) { body[16] = 2; body[17] = 1; Frames.Mac(tll).CopyTo(body, 18); }
        uint flags = (solicited ? 0x4000_0000u : 0) | (over ? 0x2000_0000u : 0);
        return Ipv6(src, dst, 58, IcmpL4(src, dst, 136, 0, flags, body), 255);
    }

    /// <summary>Fragment <paramref name="offset"/>..+<paramref name="len"/> of an upper-layer message (the fragmentable
    /// part), with a fragment header of <paramref name="id"/>.</summary>
    public static byte[] Fragment(string src, string dst, byte proto, byte[] l4, int offset, int len, bool more, uint id, byte hop = 64)
    {
        var h = new byte[8 + len];
        h[0] = proto;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), id);
        l4.AsSpan(offset, len).CopyTo(h.AsSpan(8));
        return Ipv6(src, dst, 44, h, hop);
    }

    public static byte[] Eth(string dstMac, string srcMac, byte[] ip)
    {
        var f = new byte[14 + ip.Length];
        Frames.Mac(dstMac).CopyTo(f, 0);
        Frames.Mac(srcMac).CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x86DD);
        ip.CopyTo(f, 14);
        return f;
    }
}

/// <summary>
/// Scenarios/v6-router (host a — router r — host b, the hosts silent with IPv6 off) through the kernel and through
/// Softnet, compared whole: r's captures, its sockets.txt and its Ip6/Icmp6/Udp6 (and Tcp) counters. The capture
/// exercises echo to the router and through it, hop limit 1, packet too big, no route and the reject routes, UDP to a
/// socket and to a closed port, TCP to a closed port, header errors, extension headers (hop-by-hop, destination
/// options, routing, unknown next header), neighbour discovery (a solicitation answered, a next hop resolved by an
/// advertisement, one that never answers), and fragments.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class Ipv6RouterKernelTests
{
    private const string AMac = "02:00:0a:00:00:02", R0 = "02:00:0a:00:00:01", BMac = "02:00:0b:00:00:02", R1 = "02:00:0b:00:00:01";
    private const string RA = "2001:db8:a::1", RB = "2001:db8:b::1";
    /// <summary>r's link-local addresses, EUI-64 from its MACs.</summary>
    private const string RLl0 = "fe80::aff:fe00:1", RLl1 = "fe80::bff:fe00:1";

    public static ScenarioCapture Traffic()
    {
        var c = new ScenarioCapture();
        void A(byte[] ip, string note, string dst = R0) => c.Add("eth0", Frames6.Eth(dst, AMac, ip), note);
        void B(byte[] ip, string note) => c.Add("eth1", Frames6.Eth(R1, BMac, ip), note);
        const string H0 = "2001:db8:a::10", H1 = "2001:db8:a::11", H2 = "2001:db8:a::12", H3 = "2001:db8:a::13", H4 = "2001:db8:a::14",
            H5 = "2001:db8:a::15", H6 = "2001:db8:a::16", H7 = "2001:db8:a::17", Far = "2001:db8:77::5";
        // Echo to the router's addresses (the reply takes the request's traffic class) and through it.
        A(Frames6.Echo(H0, RA, 1, 1, tclass: 0x28), "echo to r eth0");
        A(Frames6.Echo(H0, RB, 1, 2), "echo to r eth1's address");
        A(Frames6.Echo(H0, RLl0, 1, 3), "echo to r's link-local");
        A(Frames6.Echo(H0, Far, 1, 4), "echo forwarded");
        B(Frames6.Echo(Far, H0, 1, 4).Select((b, i) => i == 40 ? (byte)129 : b).ToArray(), "echo reply forwarded back (bad checksum: forwarded as is)");
        A(Frames6.Udp(H0, 4000, Far, 53), "udp forwarded");
        // Hop limit, size, routes: errors from r (each source few enough for the rate limit's burst).
        A(Frames6.Udp(H1, 4001, Far, 53, hop: 1), "hop limit 1: time exceeded");
        A(Frames6.Udp(H1, 4002, Far, 53, payload: 1300), "over eth1's MTU 1280: packet too big");
        A(Frames6.Udp(H1, 4003, "2001:db8:99::1", 53), "no route: unreachable 0");
        A(Frames6.Udp(H2, 4004, "2001:db8:66:2::5", 53), "unreachable route");
        A(Frames6.Udp(H2, 4005, "2001:db8:66:3::5", 53), "prohibit route");
        A(Frames6.Udp(H2, 4006, "2001:db8:66:1::5", 53), "blackhole route");
        A(Frames6.Udp("fe80::2", 4007, Far, 53), "link-local source forwarded: beyond scope");
        // A burst of errors to one source: icmpv6_xrlim_allow's bucket (ratelimit 100 ms, a quarter for a /64 route,
        // six of them) lets six through, the seventh is OutRateLimitHost.
        for (int i = 0; i < 7; i++) A(Frames6.Udp("2001:db8:a::1c", (ushort)(4020 + i), "2001:db8:99::2", 53), "no route, burst");
        // Forwarded back out the arrival device: a redirect (to the destination itself, or to a link-local router),
        // one a second per destination and per source.
        A(Frames6.Udp("2001:db8:a::1a", 4010, "2001:db8:a::30", 53), "on-link destination through r: redirect");
        A(Frames6.Udp("2001:db8:a::1a", 4011, "2001:db8:a::30", 53), "again: no redirect within a second");
        A(Frames6.Udp("2001:db8:a::1b", 4012, "2001:db8:88::1", 53), "via a link-local router on eth0: redirect to it");
        A(Frames6.Udp("2001:db8:a::1b", 4013, "2001:db8:88::2", 53, payload: 1300), "a big one: the redirect quotes what fits");
        // UDP and TCP to the router.
        A(Frames6.Udp(H0, 4100, RA, 5000), "udp to a socket");
        A(Frames6.Udp(H0, 4101, RB, 5001), "udp to the wildcard socket");
        A(Frames6.Udp(H3, 4102, RA, 5999), "udp to a closed port");
        A(Frames6.Ipv6(H3, RA, 17, Frames6.UdpL4(H3, 4103, RA, 5000, zeroChecksum: true)), "udp with checksum 0");
        A(Frames6.Ipv6(H3, RA, 6, Frames6.TcpL4(H3, 40000, RA, 80, 0x02, 1000)), "tcp syn to a closed port");
        A(Frames6.Ipv6(H3, RA, 6, Frames6.TcpL4(H3, 40001, RA, 80, 0x10, 1000, 5000, payload: 10)), "tcp ack to a closed port");
        // Header errors.
        A(Frames6.Ipv6(H0, RA, 17, Frames6.UdpL4(H0, 4200, RA, 5000), payloadLength: 100), "payload length past the frame");
        A(Frames6.Udp(H0, 4201, RA, 5000).Select((b, i) => i == 0 ? (byte)0x45 : b).ToArray(), "version 4");
        A(Frames6.Udp("ff02::5", 4202, RA, 5000), "multicast source");
        A(Frames6.Udp(H0, 4203, "::1", 5000), "loopback destination");
        A(Frames6.Echo(H0, RA, 2, 1, bad: true), "echo with a bad checksum");
        A(Frames6.Udp(H0, 4204, "ff01::1", 5000), "interface-local multicast destination on the wire", dst: "33:33:00:00:00:01");
        A(Frames6.Udp(H0, 4205, "ff00::1", 5000), "multicast destination of scope 0", dst: "33:33:00:00:00:01");
        A(Frames6.Udp("::1", 4206, RA, 5000), "loopback source");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 129, 0, 0x10009, new byte[8])), "echo reply to r: no ping socket");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 200, 0, 0, new byte[8])), "unknown informational type");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 100, 0, 0, new byte[48])), "unknown error type quoting a short header");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 1, 4, 0, Frames6.Udp(RA, 5000, H0, 4300))), "port unreachable about UDP from a socket");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 1, 4, 0, Frames6.Udp(RA, 6000, H0, 4301))), "port unreachable about UDP, no socket");
        A(Frames6.Ipv6(H0, RA, 58, Frames6.IcmpL4(H0, RA, 1, 4, 0, new byte[16])), "unreachable quoting 16 bytes");
        // Extension headers.
        A(Frames6.Ipv6(H4, RA, 0, Frames6.Concat(Frames6.Options(58), Frames6.EchoL4(H4, RA, 3, 1))), "hop-by-hop PadN, echo");
        A(Frames6.Ipv6(H4, Far, 0, Frames6.Concat(Frames6.Options(60), Frames6.Options(17), Frames6.UdpL4(H4, 4400, Far, 53))), "hop-by-hop and destination options forwarded");
        A(Frames6.Ipv6(H4, Far, 0, Frames6.Concat(Frames6.Options(17, 5, 2, 0, 0), Frames6.UdpL4(H4, 4401, Far, 53))), "router alert forwarded");
        A(Frames6.Ipv6(H4, RA, 0, Frames6.Concat(Frames6.Options(58, 0x3e, 1, 0), Frames6.EchoL4(H4, RA, 3, 2))), "hop-by-hop unknown option 00: skipped");
        A(Frames6.Ipv6(H4, RA, 0, Frames6.Concat(Frames6.Options(58, 0x7e, 1, 0), Frames6.EchoL4(H4, RA, 3, 3))), "hop-by-hop unknown option 01: dropped");
        A(Frames6.Ipv6(H5, RA, 0, Frames6.Concat(Frames6.Options(58, 0xbe, 1, 0), Frames6.EchoL4(H5, RA, 3, 4))), "hop-by-hop unknown option 10: parameter problem 2");
        A(Frames6.Ipv6(H5, Far, 0, Frames6.Concat(Frames6.Options(17, 0xfe, 1, 0), Frames6.UdpL4(H5, 4402, Far, 53))), "forwarded hop-by-hop unknown option 11: parameter problem 2");
        A(Frames6.Ipv6(H4, RA, 0, Frames6.Concat(Frames6.Options(58, 1, 4, 0, 1, 0, 0), Frames6.EchoL4(H4, RA, 3, 5))), "hop-by-hop PadN not zero");
        A(Frames6.Ipv6(H5, RA, 60, Frames6.Concat(Frames6.Options(58, 0xbe, 1, 0), Frames6.EchoL4(H5, RA, 3, 6))), "destination option 10 to r: parameter problem 2");
        A(Frames6.Ipv6(H4, RA, 60, Frames6.Concat(Frames6.Options(17), Frames6.UdpL4(H4, 4403, RA, 5000))), "destination options, udp to a socket");
        A(Frames6.Ipv6(H5, RA, 43, Frames6.Concat(Frames6.Routing(17, 0, 1, Far), Frames6.UdpL4(H5, 4404, RA, 5000))), "routing type 0, segments left 1: parameter problem 0");
        A(Frames6.Ipv6(H4, RA, 43, Frames6.Concat(Frames6.Routing(17, 0, 0, Far), Frames6.UdpL4(H4, 4405, RA, 5000))), "routing type 0, segments left 0: skipped");
        A(Frames6.Ipv6(H6, RA, 253, new byte[16]), "unknown next header 253: parameter problem 1");
        A(Frames6.Ipv6(H6, RA, 60, Frames6.Concat(Frames6.Options(0), Frames6.Options(58), Frames6.EchoL4(H6, RA, 3, 7))), "hop-by-hop after destination options: parameter problem 1");
        A(Frames6.Ipv6(H6, RA, 59, new byte[8]), "no next header");
        // Fragments to the router (reassembled by ipv6_frag_rcv) and through it (forwarded as they are).
        const string F0 = "2001:db8:a::18", F1 = "2001:db8:a::19";
        var e1 = Frames6.EchoL4(F0, RA, 5, 1, payload: 56);
        A(Frames6.Fragment(F0, RA, 58, e1, 0, 24, true, 101), "in order 1/3");
        A(Frames6.Fragment(F0, RA, 58, e1, 24, 24, true, 101), "in order 2/3");
        A(Frames6.Fragment(F0, RA, 58, e1, 48, 16, false, 101), "in order 3/3: echo reply");
        var e2 = Frames6.EchoL4(F0, RA, 5, 2, payload: 56);
        A(Frames6.Fragment(F0, RA, 58, e2, 48, 16, false, 102), "out of order 3/3");
        A(Frames6.Fragment(F0, RA, 58, e2, 0, 24, true, 102), "out of order 1/3");
        A(Frames6.Fragment(F0, RA, 58, e2, 24, 24, true, 102), "out of order 2/3: echo reply");
        var e3 = Frames6.EchoL4(F0, RA, 5, 3, payload: 56);
        A(Frames6.Fragment(F0, RA, 58, e3, 0, 24, true, 103), "duplicate 1/3");
        A(Frames6.Fragment(F0, RA, 58, e3, 0, 24, true, 103), "duplicate 1/3 again");
        A(Frames6.Fragment(F0, RA, 58, e3, 24, 24, true, 103), "duplicate 2/3");
        A(Frames6.Fragment(F0, RA, 58, e3, 48, 16, false, 103), "duplicate 3/3: echo reply");
        var e4 = Frames6.EchoL4(F0, RA, 5, 4, payload: 56);
        A(Frames6.Fragment(F0, RA, 58, e4, 0, 24, true, 104), "overlap 1/3");
        A(Frames6.Fragment(F0, RA, 58, e4, 16, 24, true, 104), "overlap 16..40: the queue goes");
        A(Frames6.Fragment(F0, RA, 58, e4, 48, 16, false, 104), "overlap 3/3: a new queue, never complete");
        var e5 = Frames6.EchoL4(F1, RA, 5, 5, payload: 56);
        A(Frames6.Fragment(F1, RA, 58, e5, 0, 24, true, 105), "first fragment alone: times out with ICMPv6 3/1");
        A(Frames6.Fragment(F1, RA, 58, e5, 24, 24, true, 106), "middle fragment alone: times out silently");
        A(Frames6.Ipv6(F0, RA, 44, Frames6.Concat(new byte[] { 58, 0, 0, 0, 0, 0, 0, 107 }, Frames6.EchoL4(F0, RA, 5, 6))), "atomic fragment: echo reply");
        A(Frames6.Fragment(F1, RA, 58, e5, 0, 20, true, 108), "middle fragment not a multiple of 8: parameter problem");
        A(Frames6.Fragment(F1, RA, 17, Frames6.UdpL4(F1, 4600, RA, 5000), 0, 4, true, 109), "first fragment without the UDP header: parameter problem 3");
        var u1 = Frames6.UdpL4(F0, 4601, Far, 53, payload: 40);
        A(Frames6.Fragment(F0, Far, 17, u1, 0, 24, true, 110), "forwarded fragment 1/2");
        A(Frames6.Fragment(F0, Far, 17, u1, 24, 24, false, 110), "forwarded fragment 2/2");
        var u2 = Frames6.UdpL4(F0, 4602, RA, 5000, payload: 40);
        A(Frames6.Fragment(F0, RA, 17, u2, 24, 24, false, 111), "udp to a socket in fragments 2/2");
        A(Frames6.Fragment(F0, RA, 17, u2, 0, 24, true, 111), "udp to a socket in fragments 1/2");
        // Echo requests that arrive in fragments and whose replies exceed the MTU: ip6_fragment cuts the replies.
        var big0 = Frames6.EchoL4(F0, RA, 7, 1, payload: 1600);
        A(Frames6.Fragment(F0, RA, 58, big0, 0, 1400, true, 120), "big echo 1/2");
        A(Frames6.Fragment(F0, RA, 58, big0, 1400, big0.Length - 1400, false, 120), "big echo 2/2: reply over eth0's 1500");
        var big1 = Frames6.EchoL4("2001:db8:b::2", RB, 7, 2, payload: 1400);
        B(Frames6.Fragment("2001:db8:b::2", RB, 58, big1, 0, 1200, true, 121), "big echo on eth1 1/2");
        B(Frames6.Fragment("2001:db8:b::2", RB, 58, big1, 1200, big1.Length - 1200, false, 121), "big echo on eth1 2/2: reply over 1280");
        // A next hop that never answers: three solicitations, then address unreachable (the fragment queues above
        // expire in the same pause).
        A(Frames6.Udp(H7, 4500, "2001:db8:b::8", 53), "to an unresolved neighbour");
        c.Pause(3500);
        // A router solicitation teaches r the asker's address: its echo reply needs no solicitation; the entry, STALE and
        // used, is probed by unicast solicitations 5 s later and fails (in the pause below).
        var rsBody = new byte[8];
        rsBody[0] = 1;
        rsBody[1] = 1;
        Frames.Mac("02:00:0a:00:00:40").CopyTo(rsBody, 2);
        A(Frames6.Ipv6("2001:db8:a::40", "ff02::2", 58, Frames6.IcmpL4("2001:db8:a::40", "ff02::2", 133, 0, 0, rsBody), 255), "router solicitation with an address", dst: "33:33:00:00:00:02");
        A(Frames6.Echo("2001:db8:a::40", RA, 8, 1), "echo from the soliciting host");
        // A link-local destination that is not r's, on eth1: forwarded back out with a redirect, never resolved (alone in
        // its pause: the kernel's timer wheel may fire two solicitations due in the same tick in either order).
        B(Frames6.Echo("2001:db8:b::2", "fe80::99", 9, 1), "a link-local destination on eth1, not r's");
        c.Pause(9000);
        // A next hop resolved by an advertisement: the queued datagram goes out.
        A(Frames6.Udp(H7, 4501, "2001:db8:b::9", 53), "to a neighbour being resolved");
        B(Frames6.Na("2001:db8:b::9", RLl1, "2001:db8:b::9", "02:00:0b:00:00:09", solicited: true, over: true), "the advertisement");
        A(Frames6.Udp(H7, 4502, "2001:db8:b::9", 53), "to the resolved neighbour");
        // Multicast and anycast destinations, router alert to the router, advertisements it only learns from.
        A(Frames6.Echo(H0, "ff02::1", 6, 1), "echo to all nodes", dst: "33:33:00:00:00:01");
        A(Frames6.Echo(H0, "ff02::2", 6, 2), "echo to all routers", dst: "33:33:00:00:00:02");
        A(Frames6.Echo(H0, "ff02::99", 6, 3), "echo to a group r is not in", dst: "33:33:00:00:00:99");
        A(Frames6.Echo(H0, "2001:db8:a::", 6, 4), "echo to the subnet-router anycast address");
        A(Frames6.Ipv6(H0, RA, 0, Frames6.Concat(Frames6.Options(58, 5, 2, 0, 0), Frames6.EchoL4(H0, RA, 6, 5))), "router alert to r");
        B(Frames6.Na("2001:db8:b::9", "ff02::1", "2001:db8:b::9", "02:00:0b:00:00:19", solicited: false, over: true), "unsolicited advertisement, new address");
        A(Frames6.Udp(H7, 4503, "2001:db8:b::9", 53), "to the neighbour's new address");
        B(Frames6.Na("2001:db8:b::7", "ff02::1", "2001:db8:b::7", "02:00:0b:00:00:07", solicited: false, over: true), "advertisement for an unknown neighbour: ignored");
        B(Frames6.Na("2001:db8:b::9", RLl1, "2001:db8:b::9", null, solicited: true, over: false), "solicited advertisement without an address");
        A(Frames6.Ns("::", null, RA, null), "duplicate address detection for r's address", dst: "33:33:ff:00:00:01");
        // Solicitations for r's addresses (last: the asker's entry goes STALE, and probes later).
        A(Frames6.Ns("2001:db8:a::20", null, RA, "02:00:0a:00:00:20"), "solicitation for r eth0", dst: "33:33:ff:00:00:01");
        A(Frames6.Ns("2001:db8:a::20", null, RA, "02:00:0a:00:00:20", hop: 64), "solicitation with hop limit 64", dst: "33:33:ff:00:00:01");
        A(Frames6.Ns("2001:db8:a::20", null, "2001:db8:a::99", "02:00:0a:00:00:20"), "solicitation for another target", dst: "33:33:ff:00:00:99");
        A(Frames6.Ns("2001:db8:a::20", RA, RA, null), "unicast solicitation without an address option");
        // The STALE entries used last (a::20 on eth0, b::9 on eth1) are probed 5 s on and fail.
        c.Pause(9000);
        A(Frames6.Echo(H0, RA, 10, 1), "after the probes");
        return c;
    }

    /// <summary>The same router with forwarding off (all.forwarding 0: a host) and IPv6 disabled on eth1.</summary>
    public static ScenarioCapture HostTraffic()
    {
        var c = new ScenarioCapture();
        void A(byte[] ip, string note, string dst = R0) => c.Add("eth0", Frames6.Eth(dst, AMac, ip), note);
        void B(byte[] ip, string note) => c.Add("eth1", Frames6.Eth(R1, BMac, ip), note);
        const string H0 = "2001:db8:a::10", H1 = "2001:db8:a::11";
        A(Frames6.Echo(H0, RA, 1, 1), "echo to r");
        A(Frames6.Udp(H0, 4000, "2001:db8:77::5", 53), "not forwarded: InAddrErrors");
        A(Frames6.Udp(H1, 4001, "2001:db8:99::1", 53), "no route: still unreachable");
        A(Frames6.Udp(H1, 4002, "2001:db8:77::5", 53, hop: 1), "hop limit 1, not forwarded");
        A(Frames6.Echo(H0, "2001:db8:a::", 1, 2), "the subnet-router anycast address is not r's now");
        A(Frames6.Echo(H0, "ff02::2", 1, 3), "all routers: r is not one", dst: "33:33:00:00:00:02");
        B(Frames6.Echo("2001:db8:b::2", RB, 1, 4), "echo on eth1, IPv6 disabled there");
        A(Frames6.Ns("2001:db8:a::20", null, RA, "02:00:0a:00:00:20"), "solicitation: advertisement without the router flag", dst: "33:33:ff:00:00:01");
        return c;
    }

    [SkippableFact]
    public void V6_host_with_forwarding_off_matches_the_kernel()
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "v6-host");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario");
        string src = Path.Combine(AppContext.BaseDirectory, "Scenarios", "v6-router");
        ScenarioFiles.Copy(src, scn);
        string sysctl = Path.Combine(scn, "ns", "r", "sysctl.conf");
        File.WriteAllText(sysctl, File.ReadAllText(sysctl).Replace("net.ipv6.conf.all.forwarding = 1", "net.ipv6.conf.all.forwarding = 0")
                                  + "net.ipv6.conf.eth1.disable_ipv6 = 1\n"
                                  // A host sends router solicitations (at link up, then every 4 s and more): none here.
                                  + "net.ipv6.conf.all.router_solicitations = 0\nnet.ipv6.conf.default.router_solicitations = 0\n"
                                  + "net.ipv6.conf.eth0.router_solicitations = 0\n");
        // eth1 has no IPv6 now: its address, route and neighbour go.
        string batch = Path.Combine(scn, "ns", "r", "ip.batch");
        File.WriteAllLines(batch, File.ReadAllLines(batch).Where(l => !l.Contains("2001:db8:b::") && !l.Contains("2001:db8:77::"))
            .Append("route add 2001:db8:77::/48 via 2001:db8:a::10 dev eth0"));
        Compare(root, scn, HostTraffic());
    }

    public static TheoryData<string, string> RateSettings() => new()
    {
        { "defaults", "" },
        // Nothing in the mask: no limit at all (the default limits six of the eight).
        { "ratemask-empty", "net.ipv6.icmp.ratemask = \n" },
        // The namespace bucket IPv4's sysctls shape limits ICMPv6 too: one refill, nothing more within the second.
        { "msgs-per-sec-1", "net.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
        // Echo replies in the mask: the echo's reply takes the refill, the errors find none.
        { "ratemask-echo", "net.ipv6.icmp.ratemask = 0-1,3-127,129\nnet.ipv4.icmp_msgs_per_sec = 1\nnet.ipv4.icmp_msgs_burst = 0\n" },
    };

    /// <summary>net.ipv6.icmp.ratemask and the namespace's ICMP bucket (icmp_msgs_per_sec, icmp_msgs_burst) on the
    /// router: an echo, then eight datagrams without a route from one host.</summary>
    [SkippableTheory]
    [MemberData(nameof(RateSettings))]
    public void Icmpv6_rate_sysctls_match_the_kernel(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var (root, scn) = RouterWithSysctls("v6-rate-" + name, sysctls);
        var c = new ScenarioCapture();
        const string H1 = "2001:db8:a::11";
        c.Add("eth0", Frames6.Eth(R0, AMac, Frames6.Echo(H1, RA, 1, 1)), "echo to r");
        for (int i = 0; i < 8; i++)
            c.Add("eth0", Frames6.Eth(R0, AMac, Frames6.Udp(H1, (ushort)(4100 + i), "2001:db8:99::1", 53)), "no route");
        Compare(root, scn, c);
    }

    /// <summary>net.ipv6.conf.eth0.mtu below the link's, written (as sysctl.conf is) while eth0 is down: ip6_mtu would
    /// cut r's replies out of eth0 to it, but eth0 coming up sets its IPv6 MTU back to the link's (addrconf_notify,
    /// NETDEV_UP), so the replies go whole as without the key.</summary>
    [SkippableTheory]
    [InlineData("mtu-default", "")]
    [InlineData("mtu-1300", "net.ipv6.conf.eth0.mtu = 1300\n")]
    public void Device_ipv6_mtu_matches_the_kernel(string name, string sysctls)
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        var (root, scn) = RouterWithSysctls("v6-" + name, sysctls);
        var c = new ScenarioCapture();
        c.Add("eth0", Frames6.Eth(R0, AMac, Frames6.Echo("2001:db8:a::10", RA, 2, 1, payload: 1350)), "echo whose reply is over 1300");
        c.Add("eth0", Frames6.Eth(R0, AMac, Frames6.Echo("2001:db8:a::10", RA, 2, 2, payload: 1200)), "echo whose reply fits");
        Compare(root, scn, c);
    }

    /// <summary>A fresh run folder scenario-runs/<paramref name="run"/> holding a copy of v6-router whose r has
    /// <paramref name="sysctls"/> appended to its sysctl.conf.</summary>
    private static (string Root, string Scenario) RouterWithSysctls(string run, string sysctls)
    {
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", run);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = ScenarioFiles.Copy(Path.Combine(AppContext.BaseDirectory, "Scenarios", "v6-router"), Path.Combine(root, "scenario"));
        File.AppendAllText(Path.Combine(scn, "ns", "r", "sysctl.conf"), sysctls);
        return (root, scn);
    }

    private static void Compare(string root, string scn, ScenarioCapture traffic)
    {
        Directory.CreateDirectory(root);
        string capture = Path.Combine(root, "in.pcapng");
        traffic.Write(capture);
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        KernelScenario.Run(scn, capture, "r", kernel);
        using (var report = ScenarioReplay.Run(scn, capture, "r", softnet))
            foreach (var ns in report.Scenario.Namespaces)
            {
                var c = ns.Counters;
                Assert.True(c.Conserved, $"{ns.Name}: counters not conserved: received {c.Received}, delivered {c.DeliveredTotal}, "
                    + $"forwarded {c.Forwarded}, neigh queued {c.NeighQueued}, fragments held {c.FragHeld}, merged {c.FragMerged}, "
                    + $"drops {c.Drops.Total} ({string.Join(", ", c.Drops.NonZero().Select(d => $"{DropReasons.Name(d.Reason)} {d.Count}"))})");
            }
        // Every counter Softnet writes is held to the kernel's: Ip6, Icmp6, Udp6 and the TCP resets' Tcp counters too.
        ScenarioCompare.AssertSame(kernel, softnet, new ScenarioCompareOptions
        {
            IgnoreFiles = new HashSet<string> { "a/wire0.tx.pcap", "b/wire0.tx.pcap" },
            NstatCompared = null,
            NstatIgnored = [],
        });
    }

    [SkippableFact]
    public void V6_router_matches_the_kernel()
    {
        string? skip = KernelScenario.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "scenario-runs", "v6-router");
        if (Directory.Exists(root)) Directory.Delete(root, true);
        Compare(root, Path.Combine(AppContext.BaseDirectory, "Scenarios", "v6-router"), Traffic());
    }
}
