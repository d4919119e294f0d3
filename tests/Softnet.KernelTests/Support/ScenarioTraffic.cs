using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;

namespace Softnet.KernelTests.Support;

/// <summary>Ethernet + IPv4 frames with valid checksums (unless asked otherwise) for scenario captures.</summary>
public static class Frames
{
    public static byte[] Mac(string s) => s.Split(':').Select(h => Convert.ToByte(h, 16)).ToArray();

    public static byte[] Ip4(string s) => s.Split('.').Select(byte.Parse).ToArray();

    /// <summary>An IPv4 datagram: DF set, the given TTL and ID, protocol payload <paramref name="l4"/> as is.</summary>
    public static byte[] Ipv4(string src, string dst, byte proto, ReadOnlySpan<byte> l4, byte ttl = 64, ushort id = 0x1234)
    {
        var b = new byte[20 + l4.Length];
        b[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), (ushort)b.Length);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), id);
        b[6] = 0x40; // DF
        b[8] = ttl;
        b[9] = proto;
        Ip4(src).CopyTo(b, 12);
        Ip4(dst).CopyTo(b, 16);
        l4.CopyTo(b.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), Checksum.Compute(b.AsSpan(0, 20)));
        return b;
    }

    public static byte[] Tcp(string src, ushort sport, string dst, ushort dport, byte flags, uint seq, uint ack = 0, int payload = 0,
        ushort window = 64240, bool badChecksum = false, byte ttl = 64, byte[]? options = null)
    {
        int optLen = ((options?.Length ?? 0) + 3) & ~3;
        var t = new byte[20 + optLen + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = (byte)((20 + optLen) / 4 << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), window);
        options?.CopyTo(t, 20);
        for (int i = 0; i < payload; i++) t[20 + optLen + i] = (byte)('0' + i % 10);
        ushort c = Checksum.Compute(t, Checksum.PseudoHeaderV4(Ip4(src), Ip4(dst), 6, t.Length));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), badChecksum ? (ushort)(c ^ 0x5a5a) : c);
        return Ipv4(src, dst, 6, t, ttl);
    }

    public static byte[] Udp(string src, ushort sport, string dst, ushort dport, int payload = 32, byte ttl = 64)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 0; i < payload; i++) u[8 + i] = (byte)('a' + i % 26);
        ushort c = Checksum.Compute(u, Checksum.PseudoHeaderV4(Ip4(src), Ip4(dst), 17, u.Length));
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(6), c == 0 ? (ushort)0xFFFF : c);
        return Ipv4(src, dst, 17, u, ttl);
    }

    /// <summary>ICMP echo request (type 8) or reply (type 0).</summary>
    /// <summary>A copy of the IPv4 datagram <paramref name="ip"/> with its TOS byte set (header checksum redone).</summary>
    public static byte[] WithTos(byte[] ip, byte tos)
    {
        var p = (byte[])ip.Clone();
        p[1] = tos;
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, (p[0] & 0xF) * 4)));
        return p;
    }

    public static byte[] Echo(string src, string dst, byte type, ushort id, ushort seq, int payload = 32)
    {
        var h = new byte[8 + payload];
        h[0] = type;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), id);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), seq);
        for (int i = 0; i < payload; i++) h[8 + i] = (byte)i;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), Checksum.Compute(h));
        return Ipv4(src, dst, 1, h);
    }

    /// <summary>An ICMP error (e.g. 3/3 port unreachable) quoting the IP header and 8 bytes of <paramref name="offending"/>.</summary>
    public static byte[] IcmpError(string src, string dst, byte type, byte code, byte[] offending)
    {
        int quote = Math.Min(offending.Length, 28);
        var h = new byte[8 + quote];
        h[0] = type;
        h[1] = code;
        offending.AsSpan(0, quote).CopyTo(h.AsSpan(8));
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), Checksum.Compute(h));
        return Ipv4(src, dst, 1, h, id: 0x4321);
    }

    /// <summary>A copy of the IPv4 datagram <paramref name="ip"/> with IP ID <paramref name="id"/> (header checksum redone):
    /// reassembly keys on it, so each fragmented datagram of a scenario needs its own.</summary>
    public static byte[] WithId(byte[] ip, ushort id)
    {
        var p = (byte[])ip.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(4), id);
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, (p[0] & 0xF) * 4)));
        return p;
    }

    /// <summary>The fragments a sender cuts <paramref name="ip"/> (20-byte header) into: <paramref name="dataPer"/> data
    /// bytes each (a multiple of 8), DF cleared unless <paramref name="df"/>.</summary>
    public static List<byte[]> Fragments(byte[] ip, int dataPer, bool df = false)
    {
        var list = new List<byte[]>();
        int data = ip.Length - 20;
        for (int off = 0; off < data; off += dataPer)
            list.Add(Piece(ip, off, Math.Min(dataPer, data - off), off + dataPer < data, df));
        return list;
    }

    /// <summary>One fragment of <paramref name="ip"/>: data bytes [offset, offset + len) behind a copy of its header.</summary>
    public static byte[] Piece(byte[] ip, int offset, int len, bool more, bool df = false)
    {
        var f = new byte[20 + len];
        ip.AsSpan(0, 20).CopyTo(f);
        ip.AsSpan(20 + offset, len).CopyTo(f.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(2), (ushort)f.Length);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(6), (ushort)((offset >> 3) | (more ? 0x2000 : 0) | (df ? 0x4000 : 0)));
        f[10] = f[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(10), Checksum.Compute(f.AsSpan(0, 20)));
        return f;
    }

    /// <summary>Puts an Ethernet header (EtherType IPv4) in front of <paramref name="ip"/>.</summary>
    public static byte[] Eth(string dstMac, string srcMac, byte[] ip)
    {
        var f = new byte[14 + ip.Length];
        Mac(dstMac).CopyTo(f, 0);
        Mac(srcMac).CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        ip.CopyTo(f, 14);
        return f;
    }
}

/// <summary>Collects frames per arrival device and writes them as pcapng, one interface (if_name) per device.</summary>
public sealed class ScenarioCapture
{
    private readonly List<string> _devices = [];
    private readonly List<(int If, byte[] Frame, string Note)> _frames = [];
    // Extra milliseconds before frame i (a pause the kernel run keeps: KernelScenario.LongGapMs).
    private readonly Dictionary<int, int> _pauses = [];

    /// <summary>A pause of <paramref name="ms"/> before the next frame (at least <see cref="KernelScenario.LongGapMs"/>
    /// for the kernel run to keep it): kernel timers (ipfrag_time) run in it, as on Softnet's replay clock.</summary>
    public ScenarioCapture Pause(int ms)
    {
        if (ms < KernelScenario.LongGapMs) throw new ArgumentOutOfRangeException(nameof(ms), $"pauses under {KernelScenario.LongGapMs} ms are not kept by the injector");
        _pauses[_frames.Count] = ms;
        return this;
    }

    public IReadOnlyList<(int If, byte[] Frame, string Note)> FrameList => _frames;

    /// <summary>The <see cref="Pause"/> before frame <paramref name="i"/>, in ms (0: none).</summary>
    public int PauseBefore(int i) => _pauses.TryGetValue(i, out int ms) ? ms : 0;

    public IReadOnlyList<string> Devices => _devices;

    /// <summary>Adds a frame that arrives on <paramref name="dev"/>; the note says what it is, for test messages.</summary>
    public ScenarioCapture Add(string dev, byte[] frame, string note = "")
    {
        int i = _devices.IndexOf(dev);
        if (i < 0) { i = _devices.Count; _devices.Add(dev); }
        _frames.Add((i, frame, note));
        return this;
    }

    /// <summary>Writes the frames 1 ms apart (the kernel run paces itself), with the <see cref="Pause"/>s added.</summary>
    public void Write(string path)
    {
        using var w = PcapngWriter.Create(path, _devices.Select(d => new CaptureInterface(LinkType.Ethernet, 262144, d, 1_000_000_000)).ToList());
        long t = 1_700_000_000_000_000_000;
        for (int i = 0; i < _frames.Count; i++)
        {
            var (iface, frame, _) = _frames[i];
            if (_pauses.TryGetValue(i, out int ms)) t += ms * 1_000_000L;
            w.Write(t, frame, interfaceId: iface);
            t += 1_000_000;
        }
    }
}

/// <summary>
/// The generated traffic of each scenario in tests/Softnet.KernelTests/Scenarios: both directions of every
/// connection (the far end's replies are injected where its frames would arrive), so conntrack reaches
/// ESTABLISHED, TIME_WAIT and CLOSE; plus UDP, ICMP echo, an ICMP error, RST, and invalid packets.
/// Inject with `--inject NS` (the namespace in <see cref="InjectNamespace"/>): each frame's if_name is its device.
/// </summary>
public static class ScenarioTraffic
{
    public static string InjectNamespace(string scenario) => scenario switch
    {
        "docker-host" => "host",
        "kube-node" => "node",
        "router-fw" => "fw",
        "edge-fw" => "fw",
        "mangle-router" => "fw",
        "frag-router" => "r",
        "frag-ct-router" => "r",
        "flannel-vxlan" => "node1",
        "default-two-node" => "nodeA",
        "v6-fw" or "v6-frag-ct-router" or "v6-bridge" => ScenarioTrafficV6.InjectNamespace(scenario),
        _ => throw new ArgumentException($"no traffic for scenario '{scenario}'"),
    };

    public static ScenarioCapture For(string scenario) => scenario switch
    {
        "docker-host" => DockerHost(),
        "kube-node" => KubeNode(),
        "router-fw" => RouterFw(),
        "edge-fw" => EdgeFw(),
        "mangle-router" => MangleRouter(),
        "frag-router" => FragRouter(),
        "frag-ct-router" => FragCtRouter(),
        "flannel-vxlan" => ScenarioTrafficVxlan.FlannelVxlan(),
        "default-two-node" => ScenarioTrafficVxlan.TwoNodeDefault(),
        "v6-fw" or "v6-frag-ct-router" or "v6-bridge" => ScenarioTrafficV6.For(scenario),
        _ => throw new ArgumentException($"no traffic for scenario '{scenario}'"),
    };

    private const byte Fin = TcpFlags.Fin, Syn = TcpFlags.Syn, Rst = TcpFlags.Rst, Psh = TcpFlags.Psh, Ack = TcpFlags.Ack;

    /// <summary>docker-host: client 192.0.2.100 on the wire (eth0), container c1 172.17.0.2 behind docker0 (vethc1).</summary>
    public static ScenarioCapture DockerHost()
    {
        const string wire = "02:00:c0:00:02:64", eth0 = "02:00:c0:00:02:0a", docker0 = "02:42:ac:11:00:01", c1Mac = "02:42:ac:11:00:02";
        const string client = "192.0.2.100", host = "192.0.2.10", c1 = "172.17.0.2";
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Frames.Eth(eth0, wire, ip), note);
        void FromC1(byte[] ip, string note) => c.Add("vethc1", Frames.Eth(docker0, c1Mac, ip), note);

        // Published port 8080 -> c1:80: handshake, data both ways, FIN both ways, last ACK (TIME_WAIT).
        In(Frames.Tcp(client, 40000, host, 8080, Syn, 1000), "SYN to the published port (DNAT to 172.17.0.2:80)");
        FromC1(Frames.Tcp(c1, 80, client, 40000, Syn | Ack, 5000, 1001), "SYN-ACK from c1 (un-DNAT)");
        In(Frames.Tcp(client, 40000, host, 8080, Ack, 1001, 5001), "ACK");
        In(Frames.Tcp(client, 40000, host, 8080, Psh | Ack, 1001, 5001, payload: 100), "request");
        FromC1(Frames.Tcp(c1, 80, client, 40000, Psh | Ack, 5001, 1101, payload: 200), "response");
        In(Frames.Tcp(client, 40000, host, 8080, Ack, 1101, 5201), "ACK of the response");
        In(Frames.Tcp(client, 40000, host, 8080, Fin | Ack, 1101, 5201), "client FIN");
        FromC1(Frames.Tcp(c1, 80, client, 40000, Fin | Ack, 5201, 1102), "c1 FIN");
        In(Frames.Tcp(client, 40000, host, 8080, Ack, 1102, 5202), "last ACK (TIME_WAIT)");
        // Refused: c1 answers the SYN with RST (CLOSE).
        In(Frames.Tcp(client, 40001, host, 8080, Syn, 2000), "SYN, refused by c1");
        FromC1(Frames.Tcp(c1, 80, client, 40001, Rst | Ack, 0, 2001), "RST-ACK from c1");
        // c1 connects out: MASQUERADE to the host's eth0 address.
        FromC1(Frames.Tcp(c1, 33000, client, 443, Syn, 8000), "c1 SYN out (MASQUERADE)");
        In(Frames.Tcp(client, 443, host, 33000, Syn | Ack, 9000, 8001), "SYN-ACK to the masqueraded port");
        // UDP out and back; ICMP echo out and back.
        FromC1(Frames.Udp(c1, 5353, "8.8.8.8", 53), "c1 DNS query (MASQUERADE)");
        In(Frames.Udp("8.8.8.8", 53, host, 5353), "DNS answer (un-MASQUERADE)");
        FromC1(Frames.Echo(c1, "8.8.8.8", 8, 77, 1), "c1 echo request (MASQUERADE)");
        In(Frames.Echo("8.8.8.8", host, 0, 77, 1), "echo reply");
        // Pings to the host itself (icmp_echo): answered with the request's TOS byte; a bad ICMP checksum and an echo
        // to the subnet broadcast (icmp_echo_ignore_broadcasts) are not.
        In(Frames.Echo(client, host, 8, 501, 1), "echo request to the host (answered)");
        In(Frames.WithTos(Frames.Echo(client, host, 8, 501, 2, payload: 56), 0x2a), "echo request with TOS 0x2a (answered, TOS kept)");
        var bad = Frames.Echo(client, host, 8, 501, 3);
        bad[20 + 8] ^= 0xff;
        In(bad, "echo request with a bad ICMP checksum (dropped)");
        c.Add("eth0", Frames.Eth("ff:ff:ff:ff:ff:ff", wire, Frames.Echo(client, "192.0.2.255", 8, 502, 1)), "echo request to the broadcast address (ignored)");
        // An ICMP error from the far end about a masqueraded UDP flow: RELATED, inner header un-NATed.
        FromC1(Frames.Udp(c1, 5000, "8.8.4.4", 9999), "c1 UDP to a closed port");
        In(Frames.IcmpError("8.8.4.4", host, 3, 3, Frames.Udp(host, 5000, "8.8.4.4", 9999, ttl: 63)), "port unreachable (RELATED)");
        // Invalid and odd packets.
        In(Frames.Tcp(client, 40002, host, 8080, Ack, 3000, 7000), "ACK without a connection (picked up: nf_conntrack_tcp_loose)");
        In(Frames.Tcp(client, 40003, host, 8080, Syn, 4000, badChecksum: true), "SYN with a bad checksum (INVALID, no DNAT, dropped by TCP)");
        In(Frames.Tcp(client, 40004, c1, 80, Syn, 4100), "SYN straight to the container address (raw DROP)");
        // Fragmented echo requests to the host: nf_defrag_ipv4 gathers them in front of conntrack (user CONNTRACK_IN),
        // the nat and filter counters see one datagram, and the 2028-byte reply leaves eth0 (MTU 1500) in two fragments.
        var e1 = Frames.WithId(Frames.Echo(client, host, 8, 601, 1, payload: 2000), 0x6001);
        foreach (var f in Frames.Fragments(e1, 1000)) In(f, "fragment of an echo request, in order (answered in fragments)");
        var e2 = Frames.Fragments(Frames.WithId(Frames.Echo(client, host, 8, 601, 2, payload: 2400), 0x6002), 800);
        foreach (int i in new[] { 3, 1, 0, 2 }) In(e2[i], $"fragment {i} of an echo request, out of order");
        var e3 = Frames.WithId(Frames.Echo(client, host, 8, 601, 3, payload: 1992), 0x6003);
        var e3f = Frames.Fragments(e3, 1000);
        In(e3f[0], "first fragment");
        In(e3f[0], "the same fragment again (duplicate: dropped, queue kept)");
        In(Frames.Piece(e3, 200, 400, more: true), "a piece inside what is held (duplicate too)");
        In(e3f[1], "last fragment (answered)");
        var e4 = Frames.WithId(Frames.Echo(client, host, 8, 601, 4, payload: 2000), 0x6004);
        In(Frames.Piece(e4, 0, 1000, more: true), "first fragment");
        In(Frames.Piece(e4, 504, 1000, more: true), "an overlapping fragment (RFC 5722: the datagram is dropped)");
        var e5 = Frames.WithId(Frames.Echo(client, host, 8, 601, 5, payload: 2000), 0x6005);
        In(Frames.Fragments(e5, 1000)[0], "first fragment of a request whose rest never comes");
        // ipfrag_time is 1 s in ns/host/sysctl.conf: the queue expires in the pause, ICMP 11/1 to the client.
        c.Pause(2500);
        var e6 = Frames.WithId(Frames.Echo(client, host, 8, 601, 6, payload: 1600), 0x6006);
        foreach (var f in Frames.Fragments(e6, 1000)) In(f, "fragment of an echo request after the pause (answered)");
        return c;
    }

    /// <summary>kube-node: client 192.168.1.100 on eth0; pods 10.244.0.11-13 on cni0 (vethp1-3).</summary>
    public static ScenarioCapture KubeNode()
    {
        const string wire = "02:00:c0:a8:01:64", eth0 = "02:00:c0:a8:01:0a", cni0 = "02:00:0a:f4:00:01";
        const string client = "192.168.1.100", node = "192.168.1.10", gw = "10.244.0.1";
        string[] pod = ["", "10.244.0.11", "10.244.0.12", "10.244.0.13"];
        string[] podMac = ["", "02:00:0a:f4:00:0b", "02:00:0a:f4:00:0c", "02:00:0a:f4:00:0d"];
        var c = new ScenarioCapture();
        void In(byte[] ip, string note) => c.Add("eth0", Frames.Eth(eth0, wire, ip), note);
        void FromPod(int i, byte[] ip, string note) => c.Add($"vethp{i}", Frames.Eth(cni0, podMac[i], ip), note);

        // Each pod speaks first, so the bridge has learned every pod MAC before traffic is sent to it.
        for (int i = 1; i <= 3; i++) FromPod(i, Frames.Udp(pod[i], 7000, client, 9), $"pod{i} UDP out (bridge learns its MAC)");
        // NodePort 30080: endpoints in turn (statistic nth): pod1, pod2, pod3, pod1. Source masqueraded to cni0's address.
        In(Frames.Tcp(client, 41000, node, 30080, Syn, 1000), "NodePort SYN (-> pod1:8080, MASQUERADE)");
        FromPod(1, Frames.Tcp(pod[1], 8080, gw, 41000, Syn | Ack, 9000, 1001), "pod1 SYN-ACK");
        In(Frames.Tcp(client, 41000, node, 30080, Ack, 1001, 9001), "ACK");
        In(Frames.Tcp(client, 41000, node, 30080, Psh | Ack, 1001, 9001, payload: 64), "request");
        FromPod(1, Frames.Tcp(pod[1], 8080, gw, 41000, Psh | Ack, 9001, 1065, payload: 128), "response");
        In(Frames.Tcp(client, 41000, node, 30080, Fin | Ack, 1065, 9129), "client FIN");
        FromPod(1, Frames.Tcp(pod[1], 8080, gw, 41000, Fin | Ack, 9129, 1066), "pod1 FIN");
        In(Frames.Tcp(client, 41000, node, 30080, Ack, 1066, 9130), "last ACK");
        In(Frames.Tcp(client, 41001, node, 30080, Syn, 2000), "NodePort SYN (-> pod2)");
        FromPod(2, Frames.Tcp(pod[2], 8080, gw, 41001, Rst | Ack, 0, 2001), "pod2 RST-ACK");
        In(Frames.Tcp(client, 41002, node, 30080, Syn, 3000), "NodePort SYN (-> pod3, unanswered)");
        In(Frames.Tcp(client, 41003, node, 30080, Syn, 4000), "NodePort SYN (-> pod1 again)");
        // ClusterIP 10.96.0.10:53 from pod3: UDP to pod1 and answered, UDP to pod2, TCP to pod1 (own nth counter).
        FromPod(3, Frames.Udp(pod[3], 33333, "10.96.0.10", 53), "DNS query to the ClusterIP (-> pod1:53)");
        FromPod(1, Frames.Udp(pod[1], 53, pod[3], 33333), "DNS answer from pod1 (source back to the ClusterIP)");
        FromPod(3, Frames.Udp(pod[3], 33334, "10.96.0.10", 53), "DNS query to the ClusterIP (-> pod2:53)");
        FromPod(3, Frames.Tcp(pod[3], 34000, "10.96.0.10", 53, Syn, 100), "DNS over TCP SYN (-> pod1:53)");
        // A service without endpoints: REJECT icmp-port-unreachable back to pod3.
        FromPod(3, Frames.Tcp(pod[3], 34001, "10.96.0.30", 80, Syn, 200), "SYN to a service with no endpoints (REJECT)");
        // Straight to a pod: invalid flags dropped by KUBE-FORWARD, a loose ACK picked up and forwarded, echo both ways.
        In(Frames.Tcp(client, 41010, pod[2], 8080, Syn | Fin, 5000), "SYN+FIN (INVALID, KUBE-FORWARD drop)");
        In(Frames.Tcp(client, 41011, pod[2], 8080, Ack, 6000, 7000), "ACK without a connection (picked up)");
        In(Frames.Echo(client, pod[2], 8, 55, 1), "echo request to pod2");
        FromPod(2, Frames.Echo(pod[2], client, 0, 55, 1), "echo reply from pod2");
        return c;
    }

    /// <summary>mangle-router: router-fw's topology with wan0 at MTU 1400 and the packet-rewriting targets in mangle and raw.</summary>
    public static ScenarioCapture MangleRouter()
    {
        const string lanMac = "02:00:0a:00:00:02", lan0 = "02:00:0a:00:00:01", wan0 = "02:00:c6:33:64:01", wanMac = "02:00:c6:33:64:02";
        const string lan = "10.0.0.2", fw = "198.51.100.1", srv = "203.0.113.5";
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames.Eth(lan0, lanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames.Eth(wan0, wanMac, ip), note);
        // MSS 1460, SACK permitted, timestamps, NOP, window scale 7: a Linux SYN's options.
        byte[] syn = [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

        FromLan(Frames.Tcp(lan, 50000, srv, 80, Syn, 100, options: syn), "HTTP SYN, MSS 1460 clamped to 1360 (wan0 MTU 1400)");
        FromWan(Frames.Tcp(srv, 80, fw, 50000, Syn | Ack, 700, 101, options: syn), "SYN-ACK, MSS 1460 clamped to 1360 (reverse route via wan0)");
        FromLan(Frames.Tcp(lan, 50000, srv, 80, Ack, 101, 701), "ACK");
        FromLan(Frames.Tcp(lan, 50001, srv, 8080, Syn, 200, options: syn), "SYN to 8080: clamped, then --set-mss 1000");
        FromLan(Frames.Tcp(lan, 50002, srv, 80, Syn, 300, options: [2, 4, 0x04, 0x00]), "SYN with MSS 1024: never raised");
        FromLan(Frames.Udp(lan, 50003, "203.0.113.53", 53), "DNS query: TTL set to 200 (199 after forwarding)");
        FromWan(Frames.Udp("203.0.113.53", 53, fw, 50003), "DNS answer: TTL 64 - 60, then 3 after forwarding");
        FromLan(Frames.Echo(lan, srv, 8, 99, 1), "echo request: TTL 64 + 100, DSCP EF on wan0");
        FromLan(Frames.Udp(lan, 50018, srv, 33434), "TTL set to 1 before routing: time exceeded from the router");
        // Random TOS bytes, TTLs and IP IDs through TOS (set, and), DSCP and the TTL rules: the incremental header
        // checksum updates (ipv4_change_dsfield, csum_replace2) over many starting checksums.
        var rng = new Random(20261204);
        for (int i = 0; i < 120; i++)
        {
            ushort dport = (i % 4) switch { 0 => 5353, 1 => 5354, 2 => 53, _ => 7 };
            byte[] ip = i % 4 == 3 ? Frames.Echo(lan, srv, 8, (ushort)(1000 + i), 1) : Frames.Udp(lan, (ushort)(51000 + i), srv, dport);
            ip[1] = (byte)rng.Next(256);
            ip[8] = (byte)rng.Next(2, 256);
            BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(4), (ushort)rng.Next(65536));
            BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), 0);
            BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), Checksum.Compute(ip.AsSpan(0, 20)));
            FromLan(ip, $"random TOS/TTL/ID #{i}");
        }
        FromLan(Frames.Udp(lan, 50004, srv, 5353), "TOS --set-tos 0x10");
        FromLan(Frames.Udp(lan, 50005, srv, 5354), "TOS --and-tos 0x0f");
        FromLan(Frames.Udp(lan, 50006, srv, 9999), "NFQUEUE without listener: freed");
        FromLan(Frames.Udp(lan, 50007, srv, 9998), "NFQUEUE --queue-bypass: rest of mangle FORWARD skipped");
        FromLan(Frames.Udp(lan, 50008, srv, 5000), "CT --zone 3 (both directions)");
        FromWan(Frames.Udp(srv, 5000, fw, 50008), "reply in zone 3: un-SNATed");
        FromLan(Frames.Udp(lan, 50009, srv, 5001), "CT --zone-orig 3: the reply tuple stays in the default zone");
        FromWan(Frames.Udp(srv, 5001, fw, 50009), "reply without a template finds it (default zone in the reply direction): un-SNATed");
        FromLan(Frames.Udp(lan, 50017, srv, 5002), "CT --zone-reply 4: the reply tuple is in zone 4");
        FromWan(Frames.Udp(srv, 5002, fw, 50017), "reply without a template (default zone): not found, to the firewall (INPUT DROP)");
        FromLan(Frames.Udp(lan, 50010, srv, 6000), "CT --notrack: not SNATed");
        FromLan(Frames.Udp(lan, 50011, srv, 7000), "TRACE");
        FromLan(Frames.Udp(lan, 50012, srv, 6001), "CT --zone mark: zone 7 (the mark's low 16 bits)");
        FromLan(Frames.Tcp(lan, 50013, srv, 21, Syn, 900, options: syn), "CT --helper ftp (the helper itself is not modeled)");
        FromLan(Frames.Tcp(lan, 50014, srv, 80, Syn, 1000), "SYN without options: TCPMSS inserts MSS min(1360, 536)");
        FromLan(Frames.Tcp(lan, 50015, srv, 80, Syn, 1100, options: [1, 1, 4, 2]), "SYN with NOP NOP SACK-permitted only: MSS inserted before them");
        FromLan(Frames.Tcp(lan, 50016, srv, 80, Syn, 1200, payload: 20), "SYN with data and no MSS: left alone");
        return c;
    }

    /// <summary>frag-router: a router without netfilter (no conntrack, so no nf_defrag_ipv4) between the LAN (10.0.0.2 on
    /// lan0, MTU 1500) and the WAN (wan0, MTU 1000). Forwarded fragments go as they are, cut again where bigger than
    /// wan0's MTU; fragments to the router's own address are reassembled by ip_local_deliver.</summary>
    public static ScenarioCapture FragRouter()
    {
        const string lanMac = "02:00:0a:00:00:02", lan0 = "02:00:0a:00:00:01", wan0 = "02:00:c6:33:64:01", wanMac = "02:00:c6:33:64:02";
        const string lan = "10.0.0.2", r = "10.0.0.1", srv = "203.0.113.5";
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames.Eth(lan0, lanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames.Eth(wan0, wanMac, ip), note);

        var big = Frames.WithId(Frames.Udp(lan, 40000, srv, 9000, payload: 3000), 0x8001);
        foreach (var f in Frames.Fragments(big, 1480)) FromLan(f, "1500-byte fragment forwarded to wan0 (MTU 1000): cut again, offset and MF kept");
        var small = Frames.WithId(Frames.Udp(lan, 40001, srv, 9000, payload: 1800), 0x8002);
        foreach (var f in Frames.Fragments(small, 800)) FromLan(f, "fragment that fits wan0: forwarded as it is");
        var echo = Frames.Fragments(Frames.WithId(Frames.Echo(lan, srv, 8, 300, 1, payload: 1700), 0x8003), 600);
        foreach (int i in new[] { 2, 0, 1 }) FromLan(echo[i], $"fragment {i} of a forwarded echo request, out of order: forwarded in arrival order");
        FromWan(Frames.Fragments(Frames.WithId(Frames.Udp(srv, 9000, lan, 40000, payload: 1500), 0x8004), 960)[0], "first fragment from the WAN to the LAN (fits lan0)");
        var dfFirst = Frames.WithId(Frames.Udp(lan, 40002, srv, 9000, payload: 2000), 0x8005);
        FromLan(Frames.Piece(dfFirst, 0, 1200, more: true, df: true), "DF first fragment over wan0's MTU: fragmentation needed");
        // To the router itself: ip_local_deliver reassembles (user LOCAL_DELIVER), icmp_echo answers, lan0 cuts the reply.
        var p1 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 1, payload: 2000), 0x8101);
        foreach (var f in Frames.Fragments(p1, 1000)) FromLan(f, "fragment of an echo request to the router, in order");
        var p2 = Frames.Fragments(Frames.WithId(Frames.Echo(lan, r, 8, 400, 2, payload: 2400), 0x8102), 800);
        foreach (int i in new[] { 1, 3, 2, 0 }) FromLan(p2[i], $"fragment {i} of an echo request to the router, out of order");
        var p3 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 3, payload: 1992), 0x8103);
        var p3f = Frames.Fragments(p3, 1000);
        FromLan(p3f[1], "last fragment first");
        FromLan(p3f[1], "the last fragment again (duplicate)");
        FromLan(Frames.Piece(p3, 1000, 504, more: true), "a piece inside the held last fragment (duplicate)");
        FromLan(p3f[0], "first fragment (answered)");
        var p4 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 4, payload: 2000), 0x8104);
        FromLan(Frames.Piece(p4, 1000, 1008, more: false), "last fragment");
        FromLan(Frames.Piece(p4, 0, 1008, more: true), "first fragment running into the last (overlap: all dropped)");
        var p5 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 5, payload: 2000), 0x8105);
        FromLan(Frames.Fragments(p5, 1000)[0], "first fragment of a request whose rest never comes");
        var p6 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 6, payload: 2000), 0x8106);
        FromLan(Frames.Fragments(p6, 1000)[1], "last fragment of another request whose first never comes");
        // ipfrag_time = 1 (ns/r/sysctl.conf): both queues expire in the pause; only the one with its first fragment
        // answers with ICMP 11/1.
        c.Pause(2500);
        var p8 = Frames.WithId(Frames.Echo(lan, r, 8, 400, 8, payload: 1200), 0x8108);
        foreach (var f in Frames.Fragments(p8, 1000)) FromLan(f, "fragment of an echo request after the pause");
        return c;
    }

    /// <summary>frag-ct-router: frag-router's links with conntrack on in r (a FORWARD ctstate rule), so nf_defrag_ipv4
    /// gathers forwarded fragments and ip_fragment cuts the datagram again: at most the largest original fragment
    /// (frag_max_size) and wan0's MTU 1000, DF refused when an original DF fragment was bigger than the MTU.</summary>
    public static ScenarioCapture FragCtRouter()
    {
        const string lanMac = "02:00:0a:00:00:02", lan0 = "02:00:0a:00:00:01", wan0 = "02:00:c6:33:64:01", wanMac = "02:00:c6:33:64:02";
        const string lan = "10.0.0.2", srv = "203.0.113.5";
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames.Eth(lan0, lanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames.Eth(wan0, wanMac, ip), note);

        var big = Frames.Fragments(Frames.WithId(Frames.Udp(lan, 41000, srv, 9000, payload: 3000), 0x9001), 1480);
        foreach (int i in new[] { 0, 1, 2 }) FromLan(big[i], $"1500-byte fragment {i}: gathered, then cut at wan0's MTU (copying path)");
        var bigDf = Frames.Fragments(Frames.WithId(Frames.Udp(lan, 41001, srv, 9000, payload: 3000), 0x9002), 1480, df: true);
        foreach (int i in new[] { 0, 1, 2 }) FromLan(bigDf[i], $"1500-byte DF fragment {i}: the datagram may not be cut below them, fragmentation needed");
        var small = Frames.Fragments(Frames.WithId(Frames.Udp(lan, 41002, srv, 9000, payload: 1800), 0x9003), 800);
        foreach (int i in new[] { 1, 2, 0 }) FromLan(small[i], $"800-byte fragment {i}: leaves as it came (frag_list path)");
        var smallDf = Frames.Fragments(Frames.WithId(Frames.Echo(lan, srv, 8, 500, 1, payload: 1800), 0x9004), 800, df: true);
        foreach (int i in new[] { 2, 1, 0 }) FromLan(smallDf[i], $"800-byte DF fragment {i} of an echo request: leaves as it came, without DF");
        var reply = Frames.Fragments(Frames.WithId(Frames.Echo(srv, lan, 0, 500, 1, payload: 1800), 0x9005), 960);
        foreach (int i in new[] { 1, 0 }) FromWan(reply[i], $"fragment {i} of the echo reply (ESTABLISHED once gathered)");
        var lost = Frames.WithId(Frames.Udp(lan, 41003, srv, 9000, payload: 2000), 0x9006);
        FromLan(Frames.Fragments(lost, 1000)[0], "first fragment of a forwarded datagram whose rest never comes");
        // ipfrag_time = 1: the queue expires in the pause; a conntrack queue sends no ICMP for a datagram not
        // addressed to this host (frag_expire_skip_icmp).
        c.Pause(2500);
        FromLan(Frames.Udp(lan, 41004, srv, 9000), "a whole datagram after the pause");
        return c;
    }

    /// <summary>router-fw: LAN client 10.0.0.2 (lan0), upstream router 198.51.100.2 (wan0), servers in 203.0.113.0/24.</summary>
    public static ScenarioCapture RouterFw()
    {
        const string lanMac = "02:00:0a:00:00:02", lan0 = "02:00:0a:00:00:01", wan0 = "02:00:c6:33:64:01", wanMac = "02:00:c6:33:64:02";
        const string lan = "10.0.0.2", fw = "198.51.100.1", srv = "203.0.113.5";
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames.Eth(lan0, lanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames.Eth(wan0, wanMac, ip), note);

        FromLan(Frames.Tcp(lan, 50000, srv, 80, Syn, 100), "HTTP SYN (ACCEPT NEW, SNAT)");
        FromWan(Frames.Tcp(srv, 80, fw, 50000, Syn | Ack, 700, 101), "SYN-ACK (un-SNAT)");
        FromLan(Frames.Tcp(lan, 50000, srv, 80, Ack, 101, 701), "ACK");
        FromLan(Frames.Tcp(lan, 50000, srv, 80, Psh | Ack, 101, 701, payload: 50), "request");
        FromWan(Frames.Tcp(srv, 80, fw, 50000, Psh | Ack, 701, 151, payload: 300), "response");
        FromLan(Frames.Tcp(lan, 50000, srv, 80, Rst | Ack, 151, 1001), "client aborts with RST (CLOSE)");
        FromLan(Frames.Tcp(lan, 50001, srv, 23, Syn, 200), "telnet SYN (REJECT tcp-reset)");
        FromLan(Frames.Udp(lan, 50002, "203.0.113.53", 53), "DNS query (ACCEPT, SNAT)");
        FromWan(Frames.Udp("203.0.113.53", 53, fw, 50002), "DNS answer");
        FromLan(Frames.Udp(lan, 50003, srv, 69), "TFTP (REJECT icmp-port-unreachable)");
        FromLan(Frames.Echo(lan, srv, 8, 99, 1), "echo request (ACCEPT, SNAT)");
        FromWan(Frames.Echo(srv, fw, 0, 99, 1), "echo reply");
        FromLan(Frames.Udp(lan, 50004, "203.0.113.54", 53), "DNS query to a dead server");
        FromWan(Frames.IcmpError("203.0.113.54", fw, 3, 3, Frames.Udp(fw, 50004, "203.0.113.54", 53, ttl: 63)), "port unreachable (RELATED)");
        FromLan(Frames.Tcp(lan, 50005, srv, 80, Syn | Fin, 300), "SYN+FIN (INVALID: LOG, DROP)");
        FromLan(Frames.Tcp(lan, 50006, srv, 80, Syn, 400, badChecksum: true), "SYN with a bad checksum (INVALID)");
        FromLan(Frames.Tcp(lan, 50007, srv, 8080, Ack, 500, 900), "ACK without a connection to a closed port (picked up, LOG, policy DROP)");
        FromWan(Frames.Tcp("203.0.113.9", 40000, lan, 22, Syn, 600), "inbound SYN from the WAN (LOG, policy DROP)");
        FromLan(Frames.Tcp(lan, 50008, "10.0.0.1", 22, Syn, 700), "SYN to the firewall's ssh (INPUT REJECT tcp-reset)");
        FromLan(Frames.Tcp(lan, 50009, "10.0.0.1", 8443, Syn, 800), "SYN to a firewall port (INPUT policy DROP)");
        // HTTPS is SNATed to one port: a connection closes into TIME_WAIT, then another client's SYN wants that port.
        FromLan(Frames.Tcp(lan, 52000, srv, 443, Syn, 1000), "HTTPS SYN (SNAT to port 61000)");
        FromWan(Frames.Tcp(srv, 443, fw, 61000, Syn | Ack, 5000, 1001), "SYN-ACK");
        FromLan(Frames.Tcp(lan, 52000, srv, 443, Ack, 1001, 5001), "ACK");
        FromLan(Frames.Tcp(lan, 52000, srv, 443, Fin | Ack, 1001, 5001), "client FIN");
        FromWan(Frames.Tcp(srv, 443, fw, 61000, Fin | Ack, 5001, 1002), "server FIN");
        FromLan(Frames.Tcp(lan, 52000, srv, 443, Ack, 1002, 5002), "last ACK (TIME_WAIT)");
        FromLan(Frames.Tcp("10.0.0.3", 52000, srv, 443, Syn, 10), "another client's SYN, sequence behind: port taken, confirm drops it");
        FromLan(Frames.Tcp("10.0.0.3", 52000, srv, 443, Syn, 2000), "its SYN again, sequence past: the TIME_WAIT entry is evicted (nf_nat_used_tuple_harder)");
        // Fragments through conntrack: gathered before it (nf_defrag_ipv4), SNATed as one datagram, cut again on output
        // as they came (ip_do_fragment's frag_list path), in offset order and without DF. The first fragment comes
        // last where the datagram is forwarded: the kernel writes each outgoing header over the chained fragment's
        // own, in data it still shares with the packet socket's clone when that fragment completed the datagram (the
        // head alone is uncloned), so its rx capture would show the rewritten header (see KernelScenario).
        var q = Frames.Fragments(Frames.WithId(Frames.Udp(lan, 50020, "203.0.113.53", 53, payload: 2500), 0x7001), 1200);
        foreach (int i in new[] { 1, 2, 0 }) FromLan(q[i], $"fragment {i} of a large DNS query (SNAT after reassembly)");
        var a = Frames.Fragments(Frames.WithId(Frames.Udp("203.0.113.53", 53, fw, 50020, payload: 3000), 0x7002), 1000);
        foreach (int i in new[] { 3, 2, 1, 0 }) FromWan(a[i], $"fragment {i} of the answer, last first (un-SNAT after reassembly)");
        var ping = Frames.WithId(Frames.Echo(lan, srv, 8, 120, 1, payload: 3000), 0x7003);
        foreach (int i in new[] { 2, 1, 0 }) FromLan(Frames.Fragments(ping, 1480, df: true)[i], $"DF fragment {i} of an echo request (DF kept only up to the router)");
        var tftp = Frames.WithId(Frames.Udp(lan, 50021, srv, 69, payload: 1800), 0x7004);
        foreach (var f in Frames.Fragments(tftp, 1000)) FromLan(f, "fragment of a TFTP datagram (REJECT quotes the reassembled datagram)");
        return c;
    }

    /// <summary>edge-fw: the router-fw links; the rules use pkttype, recent, set, iprange, length, limit, physdev.
    /// Timing-insensitive on purpose: --seconds 3600 and 1/hour, so the kernel's injection pace does not matter.</summary>
    public static ScenarioCapture EdgeFw()
    {
        const string lanMac = "02:00:0a:00:00:02", lan0 = "02:00:0a:00:00:01", wan0 = "02:00:c6:33:64:01", wanMac = "02:00:c6:33:64:02";
        const string lan = "10.0.0.2", fw = "198.51.100.1", srv = "203.0.113.5", dns = "203.0.113.53";
        var c = new ScenarioCapture();
        void FromLan(byte[] ip, string note) => c.Add("lan0", Frames.Eth(lan0, lanMac, ip), note);
        void FromWan(byte[] ip, string note) => c.Add("wan0", Frames.Eth(wan0, wanMac, ip), note);

        // allowed-svc (hash:ip,port dst,dst) from the iprange of LAN hosts: HTTP to srv:80, DNS to dns:53.
        FromLan(Frames.Tcp(lan, 51000, srv, 80, Syn, 100), "HTTP SYN (iprange + set allowed-svc, SNAT)");
        FromWan(Frames.Tcp(srv, 80, fw, 51000, Syn | Ack, 700, 101), "SYN-ACK (un-SNAT)");
        FromLan(Frames.Tcp(lan, 51000, srv, 80, Ack, 101, 701), "ACK");
        FromLan(Frames.Tcp(lan, 51000, srv, 80, Psh | Ack, 101, 701, payload: 40), "request");
        FromWan(Frames.Tcp(srv, 80, fw, 51000, Psh | Ack, 701, 141, payload: 200), "response");
        FromLan(Frames.Tcp(lan, 51000, srv, 80, Rst | Ack, 141, 901), "client RST");
        FromLan(Frames.Udp(lan, 51001, dns, 53), "DNS query (allowed-svc udp:53)");
        FromWan(Frames.Udp(dns, 53, fw, 51001), "DNS answer");
        FromLan(Frames.Tcp(lan, 51002, srv, 8080, Syn, 200), "SYN to a port not in allowed-svc (LOG, policy DROP)");
        FromLan(Frames.Udp(lan, 51003, dns, 53, payload: 1200), "1228-byte DNS query (length DROP)");
        // blocklist hash:net 203.0.113.64/26 with 203.0.113.66 nomatch.
        FromLan(Frames.Tcp(lan, 51004, "203.0.113.70", 80, Syn, 300), "SYN into the blocklist (REJECT icmp-port-unreachable)");
        FromLan(Frames.Tcp(lan, 51005, "203.0.113.66", 80, Syn, 400), "SYN to the nomatch hole (not blocked, policy DROP)");
        // limit 1/hour burst 2 on ICMP out: two new echo flows pass, the third does not.
        for (ushort seq = 1; seq <= 3; seq++)
        {
            FromLan(Frames.Echo(lan, srv, 8, (ushort)(40 + seq), seq), $"echo request {seq} (limit burst 2)");
            if (seq <= 2) FromWan(Frames.Echo(srv, fw, 0, (ushort)(40 + seq), seq), $"echo reply {seq}");
        }
        // recent scanners: a SYN from the WAN is remembered and dropped; later packets from it hit --rcheck.
        FromWan(Frames.Tcp("203.0.113.9", 40000, lan, 22, Syn, 600), "inbound SYN (recent --set scanners, DROP)");
        FromWan(Frames.Tcp("203.0.113.9", 40001, lan, 80, Syn, 610), "second SYN (recent --rcheck, DROP)");
        FromWan(Frames.Udp("203.0.113.9", 40002, lan, 5000), "UDP from the scanner (recent --rcheck, DROP)");
        FromWan(Frames.Udp("203.0.113.10", 40003, lan, 5000), "UDP from another host (policy DROP)");
        // The scanners list keeps ip_list_tot = 100 addresses: 100 more sources push 203.0.113.9 out (LRU), so its next
        // SYN is --set again rather than caught by --rcheck; a source still in the list is caught.
        for (int i = 0; i < 100; i++)
            FromWan(Frames.Tcp($"198.18.{i / 200}.{1 + i % 200}", 41000, lan, 22, Syn, 700u + (uint)i), $"SYN from scanner {i + 2} (recent --set)");
        FromWan(Frames.Tcp("203.0.113.9", 40010, lan, 22, Syn, 800), "SYN from the evicted first scanner (recent --set again)");
        FromWan(Frames.Tcp("198.18.0.50", 41001, lan, 22, Syn, 900), "SYN from a scanner still listed (recent --rcheck)");
        // recent ssh: admin-ports (bitmap:port) on the firewall; the fourth attempt within the hour is dropped silently.
        for (ushort i = 0; i < 4; i++)
            FromLan(Frames.Tcp(lan, (ushort)(52000 + i), "10.0.0.1", 22, Syn, 800u + i), i < 3 ? $"ssh attempt {i + 1} (REJECT tcp-reset)" : "ssh attempt 4 (recent --update --hitcount 3, DROP)");
        FromLan(Frames.Tcp(lan, 52010, "10.0.0.1", 443, Syn, 900), "SYN to 443 (admin-ports; the same ssh list: DROP)");
        // u32 + string + hashlimit (1/hour, burst 2, per source): two of three new UDP flows to 5353 pass.
        for (ushort i = 0; i < 3; i++)
            FromLan(Frames.Udp(lan, (ushort)(53530 + i), dns, 5353), $"UDP to 5353 #{i + 1} (u32, string, hashlimit burst 2)");
        // connlimit 1 per source to 443: the first connection passes (ttl 63 after forwarding, dscp 0, no MSS, connbytes 1),
        // the second is reset.
        FromLan(Frames.Tcp(lan, 52100, srv, 443, Syn, 1000), "HTTPS SYN (connlimit 1, ttl/dscp/tcpmss/connbytes ACCEPT)");
        FromLan(Frames.Tcp(lan, 52101, srv, 443, Syn, 2000), "second HTTPS SYN (connlimit above 1: REJECT tcp-reset)");
        // pkttype: a broadcast frame is dropped in raw PREROUTING.
        c.Add("lan0", Frames.Eth("ff:ff:ff:ff:ff:ff", lanMac, Frames.Udp(lan, 51010, "10.0.0.255", 137)), "broadcast UDP (pkttype DROP)");
        return c;
    }
}
