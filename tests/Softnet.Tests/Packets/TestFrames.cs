using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Tests.Packets;

/// <summary>Builds well-formed frames (with correct checksums) for header and decoder tests.</summary>
public static class TestFrames
{
    public const ulong MacA = 0x02_00_00_00_00_0a;
    public const ulong MacB = 0x02_00_00_00_00_0b;
    public const uint IpA = 0x0a000001; // 10.0.0.1
    public const uint IpB = 0xc0a80102; // 192.168.1.2
    public static readonly byte[] Ip6A = Convert.FromHexString("20010db8000000000000000000000001");
    public static readonly byte[] Ip6B = Convert.FromHexString("20010db8000000000000000000000002");
    public static readonly byte[] Payload = "0123456789abcdef"u8.ToArray();

    /// <summary>Linux-style SYN options: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.</summary>
    public static byte[] SynOptions(uint tsval, uint tsecr)
    {
        var o = new byte[20];
        o[0] = 2; o[1] = 4; BinaryPrimitives.WriteUInt16BigEndian(o.AsSpan(2), 1460);
        o[4] = 4; o[5] = 2;
        o[6] = 8; o[7] = 10; BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8), tsval); BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(12), tsecr);
        o[16] = 1; o[17] = 3; o[18] = 3; o[19] = 7;
        return o;
    }

    /// <summary>NOP NOP TS NOP NOP SACK with the given edges.</summary>
    public static byte[] SackOptions(uint tsval, uint tsecr, params uint[] edges)
    {
        var o = new byte[12 + 4 + edges.Length * 4];
        o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(4), tsval);
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8), tsecr);
        o[12] = 1; o[13] = 1; o[14] = 5; o[15] = (byte)(2 + edges.Length * 4);
        for (int i = 0; i < edges.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(16 + 4 * i), edges[i]);
        return o;
    }

    public static byte[] Tcp(ushort sport, ushort dport, uint seq, uint ack, TcpFlags flags, ushort window,
        ReadOnlySpan<byte> options, ReadOnlySpan<byte> payload, ushort urgent = 0)
    {
        var t = new byte[20 + options.Length + payload.Length];
        TcpView.Write(t, sport, dport, seq, ack, flags, window, 20 + options.Length, urgent);
        options.CopyTo(t.AsSpan(20));
        payload.CopyTo(t.AsSpan(20 + options.Length));
        return t;
    }

    public static byte[] Udp(ushort sport, ushort dport, ReadOnlySpan<byte> payload)
    {
        var u = new byte[8 + payload.Length];
        UdpView.Write(u, sport, dport, u.Length);
        payload.CopyTo(u.AsSpan(8));
        return u;
    }

    /// <summary>IPv4 packet around an L4 segment; fills the TCP/UDP/ICMP checksum.</summary>
    public static byte[] Ipv4(byte protocol, byte[] l4, ReadOnlySpan<byte> options = default, byte tos = 0, ushort id = 0x1234,
        bool df = true, byte ttl = 64, bool mf = false, ushort fragOffset8 = 0, uint src = IpA, uint dst = IpB)
    {
        int hl = 20 + options.Length;
        var p = new byte[hl + l4.Length];
        Ipv4View.Write(p, p.Length, id, df, ttl, protocol, src, dst, tos, mf, fragOffset8);
        p[0] = (byte)(0x40 | hl / 4);
        options.CopyTo(p.AsSpan(20));
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p.AsSpan(10), Checksum.Compute(p.AsSpan(0, hl)));
        FillL4Checksum(protocol, l4, Checksum.PseudoHeaderV4(p.AsSpan(12, 4), p.AsSpan(16, 4), protocol, l4.Length), fragOffset8 != 0);
        l4.CopyTo(p.AsSpan(hl));
        return p;
    }

    /// <summary>IPv6 packet; <paramref name="ext"/> holds extension headers already chained, ending in <paramref name="upper"/>.</summary>
    public static byte[] Ipv6(byte firstNext, ReadOnlySpan<byte> ext, byte upper, byte[] l4, byte trafficClass = 0, uint flow = 0, byte hops = 64, bool fillChecksum = true)
    {
        var p = new byte[40 + ext.Length + l4.Length];
        Ipv6View.Write(p, ext.Length + l4.Length, firstNext, hops, Ip6A, Ip6B, trafficClass, flow);
        ext.CopyTo(p.AsSpan(40));
        if (fillChecksum)
            FillL4Checksum(upper, l4, Checksum.PseudoHeaderV6(Ip6A, Ip6B, upper, l4.Length), false);
        l4.CopyTo(p.AsSpan(40 + ext.Length));
        return p;
    }

    private static void FillL4Checksum(byte protocol, byte[] l4, uint pseudo, bool fragment)
    {
        if (fragment) return;
        switch (protocol)
        {
            case IpProtocols.Tcp when l4.Length >= 20:
                l4[16] = l4[17] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(16), Checksum.Compute(l4, pseudo));
                break;
            case IpProtocols.Udp when l4.Length >= 8:
                l4[6] = l4[7] = 0;
                ushort c = Checksum.Compute(l4, pseudo);
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(6), c == 0 ? (ushort)0xFFFF : c);
                break;
            case IpProtocols.Icmpv6 when l4.Length >= 4:
                l4[2] = l4[3] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), Checksum.Compute(l4, pseudo));
                break;
            case IpProtocols.Icmp when l4.Length >= 4:
                l4[2] = l4[3] = 0;
                BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), Checksum.Compute(l4));
                break;
        }
    }

    /// <summary>Ethernet frame; each tag is (TPID, PCP, DEI, VID), outermost first.</summary>
    public static byte[] Ethernet(ushort etherType, ReadOnlySpan<byte> payload, params (ushort Tpid, byte Pcp, bool Dei, ushort Vid)[] tags)
        => EthernetFrom(MacB, MacA, etherType, payload, tags);

    public static byte[] EthernetFrom(ulong dst, ulong src, ushort etherType, ReadOnlySpan<byte> payload, params (ushort Tpid, byte Pcp, bool Dei, ushort Vid)[] tags)
    {
        var f = new byte[14 + 4 * tags.Length + payload.Length];
        EthernetView.Write(f, dst, src, tags.Length > 0 ? tags[0].Tpid : etherType);
        for (int i = 0; i < tags.Length; i++)
        {
            ushort next = i + 1 < tags.Length ? tags[i + 1].Tpid : etherType;
            VlanView.Write(f.AsSpan(14 + 4 * i), tags[i].Pcp, tags[i].Dei, tags[i].Vid, next);
        }
        payload.CopyTo(f.AsSpan(14 + 4 * tags.Length));
        return f;
    }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    // ---- the frames the tshark oracle tests use ----

    /// <summary>IPv4 with Router Alert + 4 NOP options (IHL 7), DSCP EF/ECT(1); TCP SYN|ECE|CWR with SYN options.</summary>
    public static byte[] Ipv4OptionsTcpSyn()
    {
        byte[] ipOpts = [148, 4, 0, 0, 1, 1, 1, 1];
        var tcp = Tcp(40000, 5201, 0xdeadbeef, 0, TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, 64240, SynOptions(0x01020304, 0), default);
        return Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Tcp, tcp, ipOpts, tos: 46 << 2 | 1, id: 0x4321, ttl: 63));
    }

    /// <summary>TCP ACK|PSH|URG with TS and two SACK blocks, 16 payload bytes.</summary>
    public static byte[] TcpSack()
    {
        var tcp = Tcp(5201, 40000, 1000001, 2000002, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Urg, 501,
            SackOptions(111111, 222222, 3000, 4000, 5000, 6000), Payload, urgent: 7);
        return Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Tcp, tcp, df: false, id: 7));
    }

    public static byte[] Vlan8021qUdp()
        => Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Udp, Udp(5353, 53, Payload)), (EtherTypes.Vlan, 5, true, 100));

    public static byte[] QinQUdp()
        => Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Udp, Udp(1234, 4321, Payload)), (EtherTypes.QinQ, 3, false, 200), (EtherTypes.Vlan, 6, false, 300));

    public static byte[] TripleTagUdp()
        => Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Udp, Udp(1, 2, Payload)),
            (EtherTypes.QinQ, 1, false, 10), (EtherTypes.Vlan, 2, true, 20), (EtherTypes.Vlan, 4, false, 4094));

    public static byte[] ArpRequest()
    {
        var a = new byte[28];
        ArpView.WriteEthernetIpv4(a, ArpView.OpRequest, MacA, IpA, 0, IpB);
        return EthernetFrom(0xFFFF_FFFF_FFFF, MacA, EtherTypes.Arp, a);
    }

    public static byte[] IcmpEcho()
    {
        var icmp = new byte[8 + Payload.Length];
        IcmpView.Write(icmp, IcmpView.EchoRequest, 0, 0x00420007, Payload);
        Payload.CopyTo(icmp, 8);
        return Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Icmp, icmp, ttl: 1));
    }

    public static byte[] Icmpv6Echo()
    {
        var icmp = new byte[8 + Payload.Length];
        icmp[0] = Icmpv6View.EchoRequest;
        BinaryPrimitives.WriteUInt32BigEndian(icmp.AsSpan(4), 0x00990003);
        Payload.CopyTo(icmp, 8);
        return Ethernet(EtherTypes.Ipv6, Ipv6(IpProtocols.Icmpv6, default, IpProtocols.Icmpv6, icmp, trafficClass: 0xb8, flow: 0x12345, hops: 255));
    }

    /// <summary>Hop-by-hop (router alert) → destination options (PadN) → routing type 2 → TCP.</summary>
    public static byte[] Ipv6ExtTcp()
    {
        byte[] hbh = [IpProtocols.DestinationOptions, 0, 5, 2, 0, 0, 1, 0];          // router alert + PadN(0)
        byte[] dst = [IpProtocols.Routing, 0, 1, 4, 0, 0, 0, 0];                      // PadN(4)
        var rt = new byte[24];
        // Type 2, segments left 0: with segments left the pseudo-header would use the home address.
        rt[0] = IpProtocols.Tcp; rt[1] = 2; rt[2] = 2; rt[3] = 0;
        Ip6A.CopyTo(rt, 8);
        var tcp = Tcp(443, 50000, 42, 43, TcpFlags.Ack, 1000, default, Payload);
        return Ethernet(EtherTypes.Ipv6, Ipv6(IpProtocols.HopByHop, Concat(hbh, dst, rt), IpProtocols.Tcp, tcp));
    }

    /// <summary>IPv6 non-first fragment (offset 1448, M set) of a UDP datagram.</summary>
    public static byte[] Ipv6Fragment()
    {
        byte[] frag = [IpProtocols.Udp, 0, 0x05, 0xa9, 0xca, 0xfe, 0xba, 0xbe]; // offset 181*8=1448, M=1
        return Ethernet(EtherTypes.Ipv6, Ipv6(IpProtocols.Fragment, frag, IpProtocols.Udp, Payload, fillChecksum: false));
    }

    /// <summary>IPv4 non-first fragment, offset 185*8, MF clear.</summary>
    public static byte[] Ipv4Fragment()
        => Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Udp, Payload, df: false, fragOffset8: 185, id: 0x9999));

    /// <summary>VXLAN (VNI 0x123456) carrying Ethernet/IPv4/TCP, outer IPv4/UDP 4789.</summary>
    public static byte[] Vxlan()
    {
        var inner = EthernetFrom(0x02_00_00_00_01_01, 0x02_00_00_00_01_02, EtherTypes.Ipv4,
            Ipv4(IpProtocols.Tcp, Tcp(80, 8080, 5, 6, TcpFlags.Ack | TcpFlags.Fin, 99, default, Payload), src: 0xac100001, dst: 0xac100002));
        var vx = new byte[8];
        VxlanView.Write(vx, 0x123456);
        var udp = Udp(49152, UdpView.VxlanPort, Concat(vx, inner));
        return Ethernet(EtherTypes.Ipv4, Ipv4(IpProtocols.Udp, udp));
    }
}
