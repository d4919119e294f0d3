using System.Buffers.Binary;
using System.Net;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.KernelTests.Support;

/// <summary>IPv6 packets and Ethernet frames for the IPv6 scenarios (checksums over the IPv6 pseudo-header).</summary>
public static class Frames6
{
    public static byte[] Addr(string s) => IPAddress.Parse(s).GetAddressBytes();

    public static byte[] Ipv6(string src, string dst, byte nextHeader, ReadOnlySpan<byte> payload, byte hopLimit = 64)
    {
        var b = new byte[40 + payload.Length];
        Ipv6View.Write(b, payload.Length, nextHeader, hopLimit, Addr(src), Addr(dst));
        payload.CopyTo(b.AsSpan(40));
        return b;
    }

    private static uint Pseudo(string src, string dst, byte proto, int len) => Checksum.PseudoHeaderV6(Addr(src), Addr(dst), proto, len);

    public static byte[] Tcp(string src, ushort sport, string dst, ushort dport, byte flags, uint seq, uint ack = 0, int payload = 0,
        ushort window = 64240, bool badChecksum = false, byte hopLimit = 64)
    {
        var t = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = 5 << 4;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), window);
        for (int i = 0; i < payload; i++) t[20 + i] = (byte)('0' + i % 10);
        ushort c = Checksum.Compute(t, Pseudo(src, dst, 6, t.Length));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), badChecksum ? (ushort)(c ^ 0x5a5a) : c);
        return Ipv6(src, dst, 6, t, hopLimit);
    }

    public static byte[] Udp(string src, ushort sport, string dst, ushort dport, int payload = 32, byte hopLimit = 64)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 0; i < payload; i++) u[8 + i] = (byte)('a' + i % 26);
        ushort c = Checksum.Compute(u, Pseudo(src, dst, 17, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(6), c == 0 ? (ushort)0xFFFF : c);
        return Ipv6(src, dst, 17, u, hopLimit);
    }

    /// <summary>ICMPv6 echo request (128) or reply (129).</summary>
    public static byte[] Echo(string src, string dst, byte type, ushort id, ushort seq, int payload = 32)
    {
        var h = new byte[8 + payload];
        h[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), seq);
        for (int i = 0; i < payload; i++) h[8 + i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), Checksum.Compute(h, Pseudo(src, dst, 58, h.Length)));
        return Ipv6(src, dst, 58, h);
    }

    /// <summary>An ICMPv6 error (type below 128) quoting <paramref name="offending"/>.</summary>
    public static byte[] Icmp6Error(string src, string dst, byte type, byte code, byte[] offending)
    {
        var h = new byte[8 + offending.Length];
        h[0] = type;
        h[1] = code;
        offending.CopyTo(h, 8);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), Checksum.Compute(h, Pseudo(src, dst, 58, h.Length)));
        return Ipv6(src, dst, 58, h);
    }

    /// <summary>Bytes <paramref name="offset"/>..+<paramref name="len"/> of the upper-layer part of
    /// <paramref name="whole"/> (an IPv6 packet without extension headers) behind a fragment header of
    /// <paramref name="id"/>.</summary>
    public static byte[] Fragment(byte[] whole, int offset, int len, bool more, uint id)
    {
        var h = new byte[8 + len];
        h[0] = whole[6];
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)(offset | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(4), id);
        whole.AsSpan(40 + offset, len).CopyTo(h.AsSpan(8));
        var ip = Ipv6("::", "::", 44, h, whole[7]);
        whole.AsSpan(8, 32).CopyTo(ip.AsSpan(8));
        return ip;
    }

    /// <summary><paramref name="whole"/> cut into fragments of at most <paramref name="size"/> bytes of data (a multiple
    /// of 8), in offset order.</summary>
    public static List<byte[]> Fragments(byte[] whole, int size, uint id)
    {
        var list = new List<byte[]>();
        int data = whole.Length - 40;
        for (int off = 0; off < data; off += size)
            list.Add(Fragment(whole, off, Math.Min(size, data - off), off + size < data, id));
        return list;
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
/// The traffic of the IPv6 scenarios (Scenarios/v6-fw): both directions of each connection through the router, the
/// far ends' replies injected where their frames arrive, REJECT cases, an ICMPv6 error about a NATed flow, and invalid
/// packets. Inject into "fw"; each frame's if_name is its device there.
/// </summary>
public static class ScenarioTrafficV6
{
    public static string InjectNamespace(string scenario) => scenario switch
    {
        "v6-fw" => "fw",
        "v6-frag-ct-router" => "r",
        "v6-bridge" => "sw",
        _ => throw new ArgumentException($"no IPv6 traffic for scenario '{scenario}'"),
    };

    public static ScenarioCapture For(string scenario) => scenario switch
    {
        "v6-fw" => V6Fw(),
        "v6-frag-ct-router" => V6FragCtRouter(),
        "v6-bridge" => V6Bridge(),
        _ => throw new ArgumentException($"no IPv6 traffic for scenario '{scenario}'"),
    };

    private const byte Fin = TcpFlags.Fin, Syn = TcpFlags.Syn, Rst = TcpFlags.Rst, Psh = TcpFlags.Psh, Ack = TcpFlags.Ack;

    public const string LanMac = "02:00:0a:00:00:02", Lan0Mac = "02:00:0a:00:00:01", Wan0Mac = "02:00:c6:33:64:01", WanMac = "02:00:c6:33:64:02";
    public const string Lan = "2001:db8:1::2", FwLan = "2001:db8:1::1", FwWan = "2001:db8:ff::1", Srv = "2001:db8:100::5", Client = "2001:db8:200::9";

    /// <summary>v6-fw: the LAN host 2001:db8:1::2 behind lan0, the Internet (2001:db8:100::/48 servers,
    /// 2001:db8:200::9 a client) behind the upstream router on wan0.</summary>
    public static ScenarioCapture V6Fw()
    {
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames6.Eth(Lan0Mac, LanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames6.Eth(Wan0Mac, WanMac, ip), note);

        // LAN out: MASQUERADE to the WAN address (the port kept), replies un-NATed.
        FromLan(Frames6.Tcp(Lan, 50000, Srv, 443, Syn, 100), "HTTPS SYN (ACCEPT, MASQUERADE)");
        FromWan(Frames6.Tcp(Srv, 443, FwWan, 50000, Syn | Ack, 700, 101), "SYN-ACK (un-MASQUERADE)");
        FromLan(Frames6.Tcp(Lan, 50000, Srv, 443, Ack, 101, 701), "ACK (ESTABLISHED)");
        FromLan(Frames6.Tcp(Lan, 50000, Srv, 443, Psh | Ack, 101, 701, payload: 50), "request");
        FromWan(Frames6.Tcp(Srv, 443, FwWan, 50000, Psh | Ack, 701, 151, payload: 300), "response");
        FromLan(Frames6.Tcp(Lan, 50000, Srv, 443, Fin | Ack, 151, 1001), "client FIN");
        FromWan(Frames6.Tcp(Srv, 443, FwWan, 50000, Fin | Ack, 1001, 152), "server FIN");
        FromLan(Frames6.Tcp(Lan, 50000, Srv, 443, Ack, 152, 1002), "last ACK (TIME_WAIT)");
        // WAN in: the published port 8080 DNATed to the LAN host's port 80.
        FromWan(Frames6.Tcp(Client, 40000, FwWan, 8080, Syn, 5000), "SYN to the published port (DNAT to [2001:db8:1::2]:80)");
        FromLan(Frames6.Tcp(Lan, 80, Client, 40000, Syn | Ack, 9000, 5001), "SYN-ACK from the LAN host (un-DNAT)");
        FromWan(Frames6.Tcp(Client, 40000, FwWan, 8080, Ack, 5001, 9001), "ACK");
        FromWan(Frames6.Tcp(Client, 40000, FwWan, 8080, Psh | Ack, 5001, 9001, payload: 100), "request");
        FromLan(Frames6.Tcp(Lan, 80, Client, 40000, Ack, 9001, 5101), "ACK of the request");
        FromWan(Frames6.Tcp(Client, 40000, FwWan, 8080, Ack, 5101 + 1_000_000_000u, 9001), "segment far out of the window (INVALID, DROP)");
        FromWan(Frames6.Tcp(Client, 40001, FwWan, 8080, Syn, 6000), "SYN to the published port, refused");
        FromLan(Frames6.Tcp(Lan, 80, Client, 40001, Rst | Ack, 0, 6001), "RST-ACK from the LAN host (CLOSE)");
        // UDP: DNS with SNAT to the fixed port 5353; TFTP refused in FORWARD.
        FromLan(Frames6.Udp(Lan, 50002, "2001:db8:100::53", 53), "DNS query (SNAT [2001:db8:ff::1]:5353)");
        FromWan(Frames6.Udp("2001:db8:100::53", 53, FwWan, 5353), "DNS answer (un-SNAT)");
        FromLan(Frames6.Udp(Lan, 50003, Srv, 69), "TFTP (FORWARD REJECT icmp6-port-unreachable)");
        FromLan(Frames6.Udp(Lan, 50123, Srv, 123), "NTP (raw CT --notrack: UNTRACKED, forwarded without MASQUERADE)");
        // A published UDP port; the LAN host answers with a port unreachable: RELATED, un-DNATed inside and out.
        FromWan(Frames6.Udp(Client, 40010, FwWan, 5000), "UDP to the published port 5000 (DNAT to [2001:db8:1::2]:5001)");
        FromLan(Frames6.Icmp6Error(Lan, Client, 1, 4, Frames6.Udp(Client, 40010, Lan, 5001, hopLimit: 63)),
            "port unreachable from the LAN host (RELATED reply, un-DNAT inside and out)");
        // ICMPv6 echo through the router, and to it.
        FromLan(Frames6.Echo(Lan, Srv, 128, 99, 1), "echo request out (MASQUERADE, id kept)");
        FromWan(Frames6.Echo(Srv, FwWan, 129, 99, 1), "echo reply (un-MASQUERADE)");
        FromWan(Frames6.Echo(Client, FwWan, 128, 7, 1), "echo request to the router (answered)");
        // An ICMPv6 error about a NATed flow: RELATED, the quoted packet translated back.
        FromLan(Frames6.Udp(Lan, 50004, "2001:db8:100::54", 53), "DNS query to a dead server (SNAT)");
        FromWan(Frames6.Icmp6Error("2001:db8:100::54", FwWan, 1, 4, Frames6.Udp(FwWan, 5353, "2001:db8:100::54", 53, hopLimit: 63)),
            "port unreachable about it (RELATED, un-SNAT inside and out)");
        // REJECT at the router itself.
        FromLan(Frames6.Tcp(Lan, 50005, FwLan, 22, Syn, 300), "SYN to the router's ssh (INPUT REJECT tcp-reset)");
        FromWan(Frames6.Udp(Client, 40002, FwWan, 9999), "UDP to the router from the WAN (INPUT REJECT icmp6-adm-prohibited)");
        FromWan(Frames6.Tcp(Client, 40003, Lan, 22, Syn, 400), "SYN straight to the LAN host (FORWARD REJECT icmp6-addr-unreachable)");
        // Invalid packets.
        FromLan(Frames6.Tcp(Lan, 50006, Srv, 80, Syn | Fin, 500), "SYN+FIN (INVALID, DROP)");
        FromLan(Frames6.Tcp(Lan, 50007, Srv, 80, Syn, 600, badChecksum: true), "SYN with a bad checksum (INVALID, DROP)");
        FromLan(Frames6.Tcp(Lan, 50008, Srv, 80, Ack, 700, 900), "ACK without a connection (picked up: nf_conntrack_tcp_loose, MASQUERADE)");
        FromWan(Frames6.Ipv6(Client, FwWan, 59, new byte[8]), "no next header to the router (INVALID, INPUT REJECT answers nothing)");
        // 2.5 s later the DNS flow speaks again: a replied UDP flow older than 2 s becomes ASSURED (120 s).
        c.Pause(2500);
        FromLan(Frames6.Udp(Lan, 50002, "2001:db8:100::53", 53), "DNS query again (the stream timeout)");
        FromWan(Frames6.Udp("2001:db8:100::53", 53, FwWan, 5353), "DNS answer (ASSURED)");
        return c;
    }

    /// <summary>v6-frag-ct-router: the v6-fw links (lan0 MTU 1500, wan0 MTU 1280) with IPv6 conntrack on in r, so
    /// nf_defrag_ipv6 gathers fragments before the rules: forwarded ones out of order, duplicated, overlapping, timing
    /// out, too big for wan0 once gathered, replies and a DNAT through it, an atomic fragment, and fragments to a UDP
    /// socket on r. Where a datagram is forwarded its first fragment comes last (see KernelScenario: the frag_list
    /// path of ip6_fragment writes the outgoing header over the completing fragment's own).</summary>
    public static ScenarioCapture V6FragCtRouter()
    {
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames6.Eth(Lan0Mac, LanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames6.Eth(Wan0Mac, WanMac, ip), note);
        const string RLan = "2001:db8:1::1";

        var a = Frames6.Fragments(Frames6.Udp(Lan, 41000, Srv, 9000, payload: 2400), 1232, 0x6001);
        foreach (int i in new[] { 1, 0 }) FromLan(a[i], $"1280-byte fragment {i}: gathered, NEW, SNAT, cut again as it came for wan0 (MTU 1280)");
        var b = Frames6.Fragments(Frames6.Udp(Lan, 41001, Srv, 9000, payload: 1800), 800, 0x6002);
        foreach (int i in new[] { 2, 1, 0 }) FromLan(b[i], $"fragment {i} of three, last first: out at frag_max_size 848");
        var d = Frames6.Fragments(Frames6.Udp(Lan, 41002, Srv, 9000, payload: 1600), 800, 0x6003);
        FromLan(d[1], "middle fragment");
        FromLan(d[1], "the middle fragment again (duplicate: swallowed)");
        FromLan(d[2], "last fragment");
        FromLan(d[0], "first fragment: the datagram goes out once");
        var ov = Frames6.Udp(Lan, 41003, Srv, 9000, payload: 1600);
        FromLan(Frames6.Fragment(ov, 800, 808, false, 0x6004), "last fragment");
        FromLan(Frames6.Fragment(ov, 0, 808, true, 0x6004), "first fragment running into it (RFC 5722 overlap: the queue goes)");
        var tooBig = Frames6.Fragments(Frames6.Udp(Lan, 41006, Srv, 9000, payload: 2792), 1400, 0x6005);
        foreach (int i in new[] { 1, 0 }) FromLan(tooBig[i], $"1448-byte fragment {i}: gathered, larger than wan0's MTU: packet too big 1280");
        var ra = Frames6.Fragments(Frames6.Udp(Srv, 9000, FwWan, 41000, payload: 2400), 1232, 0x6101);
        foreach (int i in new[] { 1, 0 }) FromWan(ra[i], $"fragment {i} of the reply to the first datagram: ESTABLISHED, un-SNAT, cut as it came for lan0");
        var rb = Frames6.Fragments(Frames6.Udp(Srv, 9000, FwWan, 41001, payload: 1192), 600, 0x6102);
        foreach (int i in new[] { 1, 0 }) FromWan(rb[i], $"fragment {i} of a reply that fits lan0 whole: cut again (longer than frag_max_size)");
        var dn = Frames6.Fragments(Frames6.Udp(Client, 40000, FwWan, 5000, payload: 1500), 1000, 0x6103);
        foreach (int i in new[] { 1, 0 }) FromWan(dn[i], $"fragment {i} to the published port: DNAT to [2001:db8:1::2]:5001 once gathered");
        FromLan(Frames6.Fragment(Frames6.Udp(Lan, 41007, Srv, 9000, payload: 100), 0, 108, false, 0x6006),
            "atomic fragment: gathered alone, forwarded without its fragment header");
        var bad = Frames6.Fragments(Frames6.Udp(Lan, 41011, Srv, 9999, payload: 1600), 800, 0x6007);
        foreach (int i in new[] { 2, 1, 0 }) FromLan(bad[i], $"fragment {i} to a port FORWARD does not allow: dropped once, as a datagram");
        var loc = Frames6.Fragments(Frames6.Udp(Lan, 41008, RLan, 6000, payload: 2000), 1000, 0x6008);
        foreach (int i in new[] { 0, 1, 2 }) FromLan(loc[i], $"fragment {i} to r's UDP socket, in order");
        var loc2 = Frames6.Fragments(Frames6.Udp(Lan, 41009, RLan, 6000, payload: 1500), 1000, 0x6009);
        foreach (int i in new[] { 1, 0 }) FromLan(loc2[i], $"fragment {i} to r's UDP socket, out of order");
        var odd = Frames6.Udp(Lan, 41012, Srv, 9000, payload: 2400);
        FromLan(Frames6.Fragment(odd, 0, 800, true, 0x600c), "first fragment (held)");
        FromLan(Frames6.Fragment(odd, 800, 804, true, 0x600c), "middle fragment not a multiple of 8: its queue dies, it goes on as it is (no tuple: INVALID, DROP)");
        FromLan(Frames6.Fragment(odd, 1600, odd.Length - 40 - 1600, false, 0x600c), "last fragment: a new queue that times out without its first");
        var lost = Frames6.Fragments(Frames6.Udp(Lan, 41004, Srv, 9000, payload: 2000), 1000, 0x600a);
        FromLan(lost[0], "first fragment of a forwarded datagram whose rest never comes");
        var lost2 = Frames6.Fragments(Frames6.Udp(Lan, 41005, Srv, 9000, payload: 2000), 1000, 0x600b);
        FromLan(lost2[2], "last fragment of one whose first never comes");
        // nf_conntrack_frag6_timeout = 1: both queues expire in the pause (ip6frag_expire_frag_queue; ICMPv6 3/1 only
        // for the one holding its first fragment).
        c.Pause(2500);
        FromLan(Frames6.Udp(Lan, 41010, Srv, 9000), "a whole datagram after the pause");
        return c;
    }

    /// <summary>v6-bridge: sw's br0 (2001:db8::fe) with a on p1 (2001:db8::1), b on p2 (2001:db8::2) and c on p3, and
    /// br_netfilter's IPv6 hooks on (bridge-nf-call-ip6tables = 1): flooded and learned frames through FORWARD and
    /// POSTROUTING per port, a FORWARD DROP of one port's copy, an echo to sw (passed up: PREROUTING once, INPUT with
    /// its port), a DNAT to b kept bridged and its reply un-DNATed, frames br_validate_ipv6 refuses, and an echo to
    /// all nodes (flooded and passed up).</summary>
    public static ScenarioCapture V6Bridge()
    {
        const string a1 = "02:00:00:00:0a:01", b1 = "02:00:00:00:0b:01", c1 = "02:00:00:00:0c:01", br0 = "02:00:00:00:10:00";
        const string a = "2001:db8::1", b = "2001:db8::2", sw = "2001:db8::fe", vip = "2001:db8::100";
        var c = new ScenarioCapture();
        void FromA(string dst, byte[] ip, string note) => c.Add("p1", Frames6.Eth(dst, a1, ip), note);
        void FromB(string dst, byte[] ip, string note) => c.Add("p2", Frames6.Eth(dst, b1, ip), note);

        FromA(b1, Frames6.Udp(a, 40000, b, 7), "a to b, b's MAC not learned: flooded to p2 and p3");
        FromB(a1, Frames6.Udp(b, 7, a, 40000), "b's answer: to p1 alone");
        FromA(b1, Frames6.Udp(a, 40000, b, 7, payload: 64), "a to b again: to p2 alone");
        FromA(c1, Frames6.Udp(a, 40001, "2001:db8::3", 9), "a to c's MAC, never learned: flooded, FORWARD drops p3's copy");
        FromA(br0, Frames6.Echo(a, sw, 128, 5, 1), "echo request to sw: passed up (PREROUTING once, INPUT with physdev-in p1), answered");
        FromA(br0, Frames6.Udp(a, 40002, vip, 53), "DNS to 2001:db8::100: DNAT to b, bridged (first through br0's xmit)");
        FromB(a1, Frames6.Udp(b, 53, a, 40002), "b's answer: un-DNATed, bridged to a");
        FromA(br0, Frames6.Udp(a, 40003, vip, 53), "DNS again: the neighbour's cached header");
        var cut = Frames6.Udp(a, 40004, b, 7, payload: 40);
        cut[5] += 8;
        FromA(b1, cut, "payload length past the frame: br_validate_ipv6 drops it (InTruncatedPkts)");
        var v4 = Frames6.Udp(a, 40005, b, 7);
        v4[0] = 0x40;
        FromA(b1, v4, "version 4 in an IPv6 frame: br_validate_ipv6 drops it (InHdrErrors)");
        FromA("33:33:00:00:00:01", Frames6.Echo(a, "ff02::1", 128, 6, 1), "echo to all nodes: flooded to p2 and p3 and passed up, answered");
        return c;
    }
}
