using System.Buffers.Binary;
using Softnet.Capture;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// Frames for the XDP program comparisons: built ones (Ethernet, VLAN tags, IPv4 with options and fragments, IPv6
/// with extension headers, TCP, UDP, ICMP, ARP; checksums valid) and real ones read from the tcpdump corpus captures
/// (../shared/corpus/tcpdump-tests, when it is there).
/// </summary>
public static class BpfTestFrames
{
    public static readonly byte[] MacA = [0x02, 0, 0, 0, 0, 0x0a], MacB = [0x02, 0, 0, 0, 0, 0x0b];
    public const ushort EtherIpv4 = 0x0800, EtherIpv6 = 0x86dd, EtherArp = 0x0806, EtherVlan = 0x8100, EtherQinq = 0x88a8;

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    public static byte[] Eth(ushort type, byte[] payload, byte[]? dst = null, byte[]? src = null)
    {
        var h = new byte[14];
        (dst ?? MacA).CopyTo(h, 0);
        (src ?? MacB).CopyTo(h, 6);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(12), type);
        return Concat(h, payload);
    }

    /// <summary>A VLAN-tagged frame: the tags (TPID, VLAN id) outermost first, then the EtherType.</summary>
    public static byte[] Tagged((ushort Tpid, ushort Vid)[] tags, ushort type, byte[] payload, byte[]? dst = null)
    {
        var h = new List<byte>();
        h.AddRange(dst ?? MacA);
        h.AddRange(MacB);
        foreach (var (tpid, vid) in tags)
        {
            h.Add((byte)(tpid >> 8)); h.Add((byte)tpid);
            h.Add((byte)(vid >> 8 | 0x20)); h.Add((byte)vid); // priority 1
        }
        h.Add((byte)(type >> 8)); h.Add((byte)type);
        h.AddRange(payload);
        return h.ToArray();
    }

    public static ushort Checksum(ReadOnlySpan<byte> data, uint sum = 0)
    {
        for (int i = 0; i + 1 < data.Length; i += 2) sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if ((data.Length & 1) != 0) sum += (uint)data[^1] << 8;
        while (sum >> 16 != 0) sum = (sum & 0xffff) + (sum >> 16);
        return (ushort)~sum;
    }

    public static byte[] Ipv4(byte proto, byte[] src, byte[] dst, byte[] payload, byte ttl = 64, ushort fragOff = 0, byte[]? options = null, byte tos = 0)
    {
        options ??= [];
        int hl = 20 + options.Length;
        var h = new byte[hl];
        h[0] = (byte)(0x40 | hl / 4);
        h[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), (ushort)(hl + payload.Length));
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), 0x1234);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(6), fragOff);
        h[8] = ttl;
        h[9] = proto;
        src.CopyTo(h, 12);
        dst.CopyTo(h, 16);
        options.CopyTo(h, 20);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(10), Checksum(h));
        var l4 = (byte[])payload.Clone();
        if (fragOff == 0) FillL4Checksum(proto, l4, Pseudo4(src, dst, proto, l4.Length));
        return Concat(h, l4);
    }

    public static byte[] Ipv6(byte nextHeader, byte[] src, byte[] dst, byte[] payload, byte hopLimit = 64, byte[]? ext = null, byte l4Proto = 0)
    {
        ext ??= [];
        var h = new byte[40];
        h[0] = 0x60; h[1] = 0x01; h[2] = 0x23; h[3] = 0x45; // flow label 0x12345
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(4), (ushort)(ext.Length + payload.Length));
        h[6] = nextHeader;
        h[7] = hopLimit;
        src.CopyTo(h, 8);
        dst.CopyTo(h, 24);
        var l4 = (byte[])payload.Clone();
        FillL4Checksum(ext.Length > 0 ? l4Proto : nextHeader, l4, Pseudo6(src, dst, ext.Length > 0 ? l4Proto : nextHeader, l4.Length));
        return Concat(h, ext, l4);
    }

    private static uint Pseudo4(byte[] src, byte[] dst, byte proto, int len)
    {
        uint s = 0;
        for (int i = 0; i < 4; i += 2) s += (uint)(src[i] << 8 | src[i + 1]) + (uint)(dst[i] << 8 | dst[i + 1]);
        return s + proto + (uint)len;
    }

    private static uint Pseudo6(byte[] src, byte[] dst, byte proto, int len)
    {
        uint s = 0;
        for (int i = 0; i < 16; i += 2) s += (uint)(src[i] << 8 | src[i + 1]) + (uint)(dst[i] << 8 | dst[i + 1]);
        return s + proto + (uint)len;
    }

    private static void FillL4Checksum(byte proto, byte[] l4, uint pseudo)
    {
        int at = proto == 6 && l4.Length >= 20 ? 16 : proto == 17 && l4.Length >= 8 ? 6 : -1;
        if (at < 0) return;
        l4[at] = l4[at + 1] = 0;
        ushort c = Checksum(l4, pseudo);
        if (proto == 17 && c == 0) c = 0xffff;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(at), c);
    }

    public static byte[] Udp(ushort sport, ushort dport, int payload = 18)
    {
        var u = new byte[8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(u, sport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(u.AsSpan(4), (ushort)u.Length);
        for (int i = 8; i < u.Length; i++) u[i] = (byte)(i * 7);
        return u;
    }

    public static byte[] Tcp(ushort sport, ushort dport, byte flags = 0x18, int payload = 10)
    {
        var t = new byte[20 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), 1000);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), 2000);
        t[12] = 0x50;
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), 65535);
        for (int i = 20; i < t.Length; i++) t[i] = (byte)i;
        return t;
    }

    public static byte[] Icmp(int payload = 8) => Concat([8, 0, 0, 0, 0, 1, 0, 1], new byte[payload]);

    public static byte[] Arp() => Concat([0, 1, 8, 0, 6, 4, 0, 1], MacB, [10, 0, 0, 2], new byte[6], [10, 0, 0, 1]);

    public static readonly byte[] V4A = [10, 0, 0, 1], V4B = [10, 0, 0, 2], V4C = [192, 168, 7, 9], V4D = [172, 16, 3, 4];
    public static readonly byte[] V6A = Addr6("2001:db8::1"), V6B = Addr6("2001:db8::2"), V6C = Addr6("2001:db8:77::9");

    public static byte[] Addr6(string s) => System.Net.IPAddress.Parse(s).GetAddressBytes();

    public static byte[] Udp4(ushort dport, byte[]? src = null, byte[]? dst = null, int payload = 18)
        => Eth(EtherIpv4, Ipv4(17, src ?? V4A, dst ?? V4B, Udp(40000, dport, payload)));

    public static byte[] Tcp4(ushort dport, byte[]? src = null, byte[]? dst = null, byte flags = 0x18)
        => Eth(EtherIpv4, Ipv4(6, src ?? V4A, dst ?? V4B, Tcp(40001, dport, flags)));

    public static byte[] Udp6(ushort dport, byte[]? src = null, byte[]? dst = null)
        => Eth(EtherIpv6, Ipv6(17, src ?? V6A, dst ?? V6B, Udp(40002, dport)));

    public static byte[] Tcp6(ushort dport, byte[]? src = null, byte[]? dst = null)
        => Eth(EtherIpv6, Ipv6(6, src ?? V6A, dst ?? V6B, Tcp(40003, dport)));

    /// <summary>The built frames every program sees: each protocol and shape the programs branch on, and cut-short
    /// copies of some of them.</summary>
    public static List<(string Name, byte[] Frame)> Generated()
    {
        var l = new List<(string, byte[])>
        {
            ("udp4 53", Udp4(53)),
            ("udp4 9", Udp4(9)),
            ("udp4 4789 other source", Udp4(4789, V4C, V4D)),
            ("tcp4 80 syn", Tcp4(80, flags: 0x02)),
            ("tcp4 443", Tcp4(443, V4D, V4C)),
            ("icmp4", Eth(EtherIpv4, Ipv4(1, V4A, V4B, Icmp()))),
            ("ipv4 options udp 53", Eth(EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 53), options: [0x94, 4, 0, 0, 1, 1, 1, 0]))),
            ("ipv4 first fragment", Eth(EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 53, 32), fragOff: 0x2000))),
            ("ipv4 later fragment", Eth(EtherIpv4, Ipv4(17, V4A, V4B, new byte[24], fragOff: 0x0004))),
            ("ipv4 ttl 1", Eth(EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 53), ttl: 1))),
            ("udp6 53", Udp6(53)),
            ("tcp6 80", Tcp6(80, V6C, V6A)),
            ("icmp6", Eth(EtherIpv6, Ipv6(58, V6A, V6B, [128, 0, 0, 0, 0, 1, 0, 1]))),
            ("ipv6 hop-by-hop udp 9", Eth(EtherIpv6, Ipv6(0, V6A, V6B, Udp(1, 9), ext: [17, 0, 1, 4, 0, 0, 0, 0], l4Proto: 17))),
            ("ipv6 hop-by-hop + dstopts tcp 22", Eth(EtherIpv6, Ipv6(0, V6A, V6B, Tcp(1, 22), ext: [60, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0], l4Proto: 6))),
            ("ipv6 hop limit 1", Eth(EtherIpv6, Ipv6(17, V6A, V6B, Udp(1, 53), hopLimit: 1))),
            ("arp", Eth(EtherArp, Arp())),
            ("vlan 5 udp4 53", Tagged([(EtherVlan, 5)], EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 53)))),
            ("vlan 100 tcp6 80", Tagged([(EtherVlan, 100)], EtherIpv6, Ipv6(6, V6A, V6B, Tcp(1, 80)))),
            ("qinq 7/8 udp4 9", Tagged([(EtherQinq, 7), (EtherVlan, 8)], EtherIpv4, Ipv4(17, V4C, V4B, Udp(1, 9)))),
            ("vlan arp", Tagged([(EtherVlan, 3)], EtherArp, Arp())),
            ("udp4 no checksum 53", UdpNoChecksum()),
            ("jumbo-ish udp4 80", Udp4(80, payload: 3000)),
            ("ethernet only", Eth(0x88b5, [])),
            ("unknown ethertype", Eth(0x88b5, new byte[46])),
        };
        // Cut short: the truncation branches.
        l.Add(("udp4 cut in the ip header", Udp4(53)[..30]));
        l.Add(("udp4 cut in the udp header", Udp4(53)[..38]));
        l.Add(("tcp4 cut in the tcp header", Tcp4(80)[..40]));
        l.Add(("udp6 cut in the ipv6 header", Udp6(53)[..50]));
        l.Add(("vlan cut in the tag", Tagged([(EtherVlan, 5)], EtherIpv4, [])[..16]));
        l.Add(("ipv6 ext cut", Eth(EtherIpv6, Ipv6(0, V6A, V6B, [], ext: [17, 0], l4Proto: 17))));
        return l;
    }

    private static byte[] UdpNoChecksum()
    {
        var f = Udp4(53);
        f[40] = f[41] = 0;
        return f;
    }

    /// <summary>The tcpdump corpus, when this checkout has it next to it (../shared/corpus) or the machine has it at
    /// /work/shared (a CI clone elsewhere).</summary>
    public static string? CorpusDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "shared", "corpus", "tcpdump-tests");
            if (Directory.Exists(p)) return p;
        }
        return Directory.Exists("/work/shared/corpus/tcpdump-tests") ? "/work/shared/corpus/tcpdump-tests" : null;
    }

    /// <summary>Captures of the corpus with Ethernet frames of the shapes the programs parse.</summary>
    public static readonly string[] CorpusFiles =
    [
        "802.1ad_QinQ.pcap", "dns_udp.pcap", "dns_tcp.pcap", "icmpv6.pcap", "ipv4_tcp_http_xml.pcap", "ipv6-routing-header.pcap",
        "syslog_udp.pcap", "ipv6-bad-version.pcap", "mptcp-v0.pcap", "pim-packet-assortment.pcap", "vrrp.pcap", "afs.pcap",
        "various_gre.pcap", "ldp-common-session.pcap", "rpvstp-trunk-native-vid5.pcap", "dhcp-rfc4388.pcap", "geneve.pcap",
        "bgp-4byte-asn.pcap", "OSPFv3_with_AH.pcap", "arp-oobr.pcap", "sflow-print-v6.pcap", "ssh.pcap",
    ];

    /// <summary>Up to <paramref name="perFile"/> Ethernet frames of each corpus capture that fit a test run (14 bytes
    /// to 3000), named "file#n"; empty when the corpus is absent.</summary>
    public static List<(string Name, byte[] Frame)> Corpus(int perFile = 25)
    {
        var list = new List<(string, byte[])>();
        if (CorpusDir() is not { } dir) return list;
        foreach (var file in CorpusFiles)
        {
            string path = Path.Combine(dir, file);
            if (!File.Exists(path)) continue;
            try
            {
                using var r = CaptureReader.Open(path);
                int n = 0, taken = 0;
                while (taken < perFile && r.TryRead(out var meta, out var data))
                {
                    n++;
                    if (meta.LinkType != LinkType.Ethernet || data.Length < 14 || data.Length > 3000) continue;
                    list.Add(($"{file}#{n}", data.ToArray()));
                    taken++;
                }
            }
            catch (CaptureFormatException) { }
        }
        return list;
    }

    /// <summary>The generated frames and the corpus frames.</summary>
    public static List<(string Name, byte[] Frame)> All() => [.. Generated(), .. Corpus()];
}
