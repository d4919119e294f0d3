using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Xunit;

namespace Softnet.Tests.Packets;

public class PacketDecoderTests
{
    private static DecodedPacket Ok(byte[] frame, LinkType lt = LinkType.Ethernet)
    {
        var r = PacketDecoder.Decode(frame, lt, out var p);
        Assert.Equal(DropReason.None, r);
        return p;
    }

    private static DropReason Bad(byte[] frame, LinkType lt = LinkType.Ethernet)
        => PacketDecoder.Decode(frame, lt, out _);

    [Fact]
    public void Ipv4_tcp_syn_offsets_ports_and_options()
    {
        var f = TestFrames.Ipv4OptionsTcpSyn();
        var p = Ok(f);
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Tcp, p.Protocols);
        Assert.Equal(0, p.L2Offset);
        Assert.Equal(14, p.L3Offset);
        Assert.Equal(14 + 28, p.L4Offset);
        Assert.Equal(14 + 28 + 40, p.PayloadOffset);
        Assert.Equal(0, p.PayloadLength);
        Assert.Equal(EtherTypes.Ipv4, p.EtherType);
        Assert.Equal(IpProtocols.Tcp, p.IpProtocol);
        Assert.Equal(40000, p.SourcePort);
        Assert.Equal(5201, p.DestinationPort);
        Assert.Equal(0xdeadbeefu, p.TcpSeq);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ece | TcpFlags.Cwr, p.TcpFlags);
        Assert.True(p.TcpOptions.HasMss);
        Assert.Equal(1460, p.TcpOptions.Mss);
        Assert.Equal(7, p.TcpOptions.WindowScale);
        Assert.True(p.TcpOptions.SackPermitted);
        Assert.Equal(0x01020304u, p.TcpOptions.TsVal);
        Assert.Equal(63, p.Ttl);
        Assert.Equal(f.Length - 14, p.L3Length);
        Assert.Equal(26, p.SourceAddressOffset);
        Assert.Equal(30, p.DestinationAddressOffset);
        Assert.Equal(4, p.AddressLength);
    }

    [Fact]
    public void Tcp_sack_blocks_are_parsed()
    {
        var p = Ok(TestFrames.TcpSack());
        Assert.Equal(2, p.TcpOptions.SackBlockCount);
        Assert.Equal(3000u, p.TcpOptions.SackLeft(0));
        Assert.Equal(6000u, p.TcpOptions.SackRight(1));
        Assert.Equal(16, p.PayloadLength);
    }

    [Fact]
    public void Vlan_stacks_record_count_and_ids()
    {
        var p = Ok(TestFrames.Vlan8021qUdp());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Vlan | ProtocolFlags.Ipv4 | ProtocolFlags.Udp, p.Protocols);
        Assert.Equal(1, p.VlanCount);
        Assert.Equal(100, p.VlanId);
        Assert.Equal(18, p.L3Offset);

        p = Ok(TestFrames.QinQUdp());
        Assert.Equal(2, p.VlanCount);
        Assert.Equal(200, p.VlanId);
        Assert.Equal(300, p.InnerVlanId);
        Assert.Equal(22, p.L3Offset);
        Assert.Equal(1234, p.SourcePort);

        p = Ok(TestFrames.TripleTagUdp());
        Assert.Equal(3, p.VlanCount);
        Assert.Equal(26, p.L3Offset);
    }

    [Fact]
    public void Vlan_stack_deeper_than_four_is_other_not_a_drop()
    {
        var tags = Enumerable.Range(0, 5).Select(i => (EtherTypes.Vlan, (byte)0, false, (ushort)(i + 1))).ToArray();
        var p = Ok(TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, 2, [])), tags));
        Assert.Equal(4, p.VlanCount);
        Assert.True(p.Protocols.Has(ProtocolFlags.Other));
        Assert.Equal(EtherTypes.Vlan, p.EtherType);
    }

    [Fact]
    public void Arp_icmp_icmpv6()
    {
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Arp, Ok(TestFrames.ArpRequest()).Protocols);
        var p = Ok(TestFrames.IcmpEcho());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Icmp, p.Protocols);
        Assert.Equal(IcmpView.EchoRequest, p.IcmpType);
        Assert.Equal(16, p.PayloadLength);
        p = Ok(TestFrames.Icmpv6Echo());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv6 | ProtocolFlags.Icmpv6, p.Protocols);
        Assert.Equal(Icmpv6View.EchoRequest, p.IcmpType);
        Assert.Equal(22, p.SourceAddressOffset);
        Assert.Equal(16, p.AddressLength);
    }

    [Fact]
    public void Ipv6_extension_headers_lead_to_tcp()
    {
        var p = Ok(TestFrames.Ipv6ExtTcp());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv6 | ProtocolFlags.Tcp, p.Protocols);
        Assert.Equal(14 + 40 + 8 + 8 + 24, p.L4Offset);
        Assert.Equal(IpProtocols.Tcp, p.IpProtocol);
        Assert.Equal(443, p.SourcePort);
    }

    [Fact]
    public void Non_first_fragments_skip_l4()
    {
        var p = Ok(TestFrames.Ipv4Fragment());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Fragment, p.Protocols);
        Assert.Equal(-1, p.L4Offset);
        Assert.Equal(185 * 8, p.FragmentOffset);
        Assert.Equal(34, p.PayloadOffset);
        Assert.Equal(16, p.PayloadLength);
        Assert.Equal(0x9999u, p.FragmentId);

        p = Ok(TestFrames.Ipv6Fragment());
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv6 | ProtocolFlags.Fragment, p.Protocols);
        Assert.Equal(-1, p.L4Offset);
        Assert.Equal(1448, p.FragmentOffset);
        Assert.True(p.MoreFragments);
        Assert.Equal(IpProtocols.Udp, p.IpProtocol);
        Assert.Equal(14 + 48, p.PayloadOffset);
    }

    [Fact]
    public void First_fragment_is_parsed_to_l4_and_flagged()
    {
        var udp = TestFrames.Udp(7, 9, TestFrames.Payload);
        var p = Ok(TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Udp, udp, df: false, mf: true)));
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Udp | ProtocolFlags.Fragment, p.Protocols);
        Assert.Equal(7, p.SourcePort);
        Assert.True(p.MoreFragments);
    }

    [Fact]
    public void Vxlan_inner_frame_is_decoded()
    {
        var f = TestFrames.Vxlan();
        var p = Ok(f);
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Udp | ProtocolFlags.Vxlan, p.Protocols);
        Assert.Equal(0x123456u, p.Vni);
        Assert.Equal(14 + 20 + 8 + 8, p.InnerL2Offset);
        Assert.Equal(p.InnerL2Offset + 14, p.InnerL3Offset);
        Assert.Equal(p.InnerL3Offset + 20, p.InnerL4Offset);
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Tcp, p.InnerProtocols);
        Assert.Equal(IpProtocols.Tcp, p.InnerIpProtocol);
        Assert.Equal(16, p.InnerPayloadLength);
        Assert.Equal(f.Length - 16, p.InnerPayloadOffset);
        Assert.Equal(80, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(p.InnerL4Offset)));
    }

    [Fact]
    public void Unknown_ethertype_and_protocol_are_other()
    {
        var p = Ok(TestFrames.Ethernet(0x88cc, new byte[40])); // LLDP
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Other, p.Protocols);
        Assert.Equal(14, p.PayloadOffset);
        p = Ok(TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Gre, new byte[12])));
        Assert.Equal(ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Other, p.Protocols);
        Assert.Equal(34, p.L4Offset);
        Assert.Equal(12, p.PayloadLength);
    }

    [Fact]
    public void Ethernet_padding_is_not_payload()
    {
        // A 60-byte minimum frame carrying a short UDP datagram: the padding is after the IP total length.
        var f = TestFrames.Ethernet(EtherTypes.Ipv4, TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, 2, [1, 2])));
        Array.Resize(ref f, 60);
        var p = Ok(f);
        Assert.Equal(2, p.PayloadLength);
        Assert.Equal(30, p.L3Length);
    }

    [Fact]
    public void Other_link_types()
    {
        var ip4 = TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, 2, TestFrames.Payload));
        var ip6 = TestFrames.Ipv6(IpProtocols.Udp, default, IpProtocols.Udp, TestFrames.Udp(3, 4, TestFrames.Payload));
        foreach (var lt in new[] { LinkType.Raw, LinkType.Ipv4 })
        {
            var p = Ok(ip4, lt);
            Assert.Equal(ProtocolFlags.Ipv4 | ProtocolFlags.Udp, p.Protocols);
            Assert.Equal(-1, p.L2Offset);
            Assert.Equal(0, p.L3Offset);
        }
        Assert.Equal(ProtocolFlags.Ipv6 | ProtocolFlags.Udp, Ok(ip6, LinkType.Raw).Protocols);
        Assert.Equal(ProtocolFlags.Ipv6 | ProtocolFlags.Udp, Ok(ip6, LinkType.Ipv6).Protocols);
        Assert.Equal(DropReason.IpBadVersion, Bad(ip6, LinkType.Ipv4));

        var sll = new byte[16 + ip4.Length];
        BinaryPrimitives.WriteUInt16BigEndian(sll.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt16BigEndian(sll.AsSpan(4), 6);
        BinaryPrimitives.WriteUInt16BigEndian(sll.AsSpan(14), EtherTypes.Ipv4);
        ip4.CopyTo(sll, 16);
        var ps = Ok(sll, LinkType.LinuxSll);
        Assert.Equal(ProtocolFlags.LinuxSll | ProtocolFlags.Ipv4 | ProtocolFlags.Udp, ps.Protocols);
        Assert.Equal(16, ps.L3Offset);
        Assert.True(LinuxSllView.TryParse(sll, false, out var sv, out _));
        Assert.Equal(EtherTypes.Ipv4, sv.Protocol);
        Assert.Equal(6, sv.AddressLength);

        var sll2 = new byte[20 + ip6.Length];
        BinaryPrimitives.WriteUInt16BigEndian(sll2, EtherTypes.Ipv6);
        BinaryPrimitives.WriteUInt32BigEndian(sll2.AsSpan(4), 3);
        ip6.CopyTo(sll2, 20);
        var p2 = Ok(sll2, LinkType.LinuxSll2);
        Assert.Equal(ProtocolFlags.LinuxSll | ProtocolFlags.Ipv6 | ProtocolFlags.Udp, p2.Protocols);
        Assert.Equal(20, p2.L3Offset);
        Assert.True(LinuxSllView.TryParse(sll2, true, out var sv2, out _));
        Assert.Equal(3u, sv2.InterfaceIndex);

        Assert.Equal(DropReason.UnsupportedLinkType, Bad(ip4, (LinkType)9999));
        Assert.Equal(DropReason.UnsupportedLinkType, Bad(ip4, LinkType.Null));
        Assert.Equal(DropReason.SllTruncated, Bad(new byte[15], LinkType.LinuxSll));
        Assert.Equal(DropReason.SllTruncated, Bad(new byte[19], LinkType.LinuxSll2));
    }

    // ---- malformed frames: the reason names the first bad header, as the kernel's drop reason would ----

    private static byte[] Eth4(byte[] ip) => TestFrames.Ethernet(EtherTypes.Ipv4, ip);

    [Fact]
    public void Malformed_link_layer()
    {
        Assert.Equal(DropReason.EthTruncated, Bad(new byte[13]));
        var v = TestFrames.Vlan8021qUdp();
        Assert.Equal(DropReason.VlanTruncated, Bad(v[..17]));
        var arp = TestFrames.ArpRequest();
        Assert.Equal(DropReason.ArpTruncated, Bad(arp[..(14 + 27)]));
    }

    [Fact]
    public void Malformed_ipv4()
    {
        var ok = TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, 2, TestFrames.Payload));
        Assert.Equal(DropReason.IpHeaderTruncated, Bad(Eth4(ok[..19])));

        var badVer = (byte[])ok.Clone();
        badVer[0] = 0x55;
        Assert.Equal(DropReason.IpBadVersion, Bad(Eth4(badVer)));

        var badIhl = (byte[])ok.Clone();
        badIhl[0] = 0x44;
        Assert.Equal(DropReason.IpBadIhl, Bad(Eth4(badIhl)));

        var ihlPastEnd = ok[..24];
        ihlPastEnd[0] = 0x47; // 28-byte header in 24 bytes
        Assert.Equal(DropReason.IpHeaderTruncated, Bad(Eth4(ihlPastEnd)));

        var longTotal = (byte[])ok.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(longTotal.AsSpan(2), (ushort)(ok.Length + 1));
        Assert.Equal(DropReason.IpBadTotalLength, Bad(Eth4(longTotal)));

        var shortTotal = (byte[])ok.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(shortTotal.AsSpan(2), 19);
        Assert.Equal(DropReason.IpBadTotalLength, Bad(Eth4(shortTotal)));
    }

    [Fact]
    public void Malformed_ipv6()
    {
        var ok = TestFrames.Ipv6ExtTcp();
        Assert.Equal(DropReason.Ipv6HeaderTruncated, Bad(ok[..53]));
        var ver = (byte[])ok.Clone();
        ver[14] = 0x40;
        Assert.Equal(DropReason.Ipv6BadVersion, Bad(ver));
        var plen = (byte[])ok.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(plen.AsSpan(18), (ushort)(ok.Length - 54 + 1));
        Assert.Equal(DropReason.Ipv6BadPayloadLength, Bad(plen));
        // Routing header claims more length than the payload holds.
        var ext = (byte[])ok.Clone();
        ext[14 + 40 + 16 + 1] = 200;
        Assert.Equal(DropReason.Ipv6ExtHeaderTruncated, Bad(ext));
    }

    [Fact]
    public void Malformed_tcp()
    {
        var tcp = TestFrames.Tcp(1, 2, 3, 4, TcpFlags.Ack, 5, default, TestFrames.Payload);
        Assert.Equal(DropReason.TcpHeaderTruncated, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Tcp, tcp[..19]))));

        var small = (byte[])tcp.Clone();
        small[12] = 4 << 4;
        Assert.Equal(DropReason.TcpBadDoff, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Tcp, small))));

        var past = (byte[])tcp.Clone();
        past[12] = 15 << 4; // 60 bytes in a 36-byte segment
        Assert.Equal(DropReason.TcpBadDoff, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Tcp, past))));

        // An option whose length runs past the option space.
        byte[] opts = [2, 4, 5, 0xb4, 8, 12, 0, 0];
        var badOpt = TestFrames.Tcp(1, 2, 3, 4, TcpFlags.Syn, 5, opts, default);
        Assert.Equal(DropReason.TcpOptionsMalformed, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Tcp, badOpt))));
        byte[] zeroLen = [3, 0, 1, 1];
        Assert.Equal(DropReason.TcpOptionsMalformed,
            Bad(Eth4(TestFrames.Ipv4(IpProtocols.Tcp, TestFrames.Tcp(1, 2, 3, 4, TcpFlags.Syn, 5, zeroLen, default)))));
    }

    [Fact]
    public void Malformed_udp_icmp_vxlan()
    {
        var udp = TestFrames.Udp(1, 2, TestFrames.Payload);
        Assert.Equal(DropReason.UdpHeaderTruncated, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Udp, udp[..7]))));
        var longLen = (byte[])udp.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(longLen.AsSpan(4), (ushort)(udp.Length + 1));
        Assert.Equal(DropReason.UdpBadLength, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Udp, longLen))));
        var shortLen = (byte[])udp.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(shortLen.AsSpan(4), 7);
        Assert.Equal(DropReason.UdpBadLength, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Udp, shortLen))));

        Assert.Equal(DropReason.IcmpTruncated, Bad(Eth4(TestFrames.Ipv4(IpProtocols.Icmp, new byte[7]))));
        Assert.Equal(DropReason.Icmpv6Truncated,
            Bad(TestFrames.Ethernet(EtherTypes.Ipv6, TestFrames.Ipv6(IpProtocols.Icmpv6, default, IpProtocols.Icmpv6, new byte[7]))));
        Assert.Equal(DropReason.VxlanTruncated,
            Bad(Eth4(TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, UdpView.VxlanPort, new byte[7])))));
        // A bad inner frame is reported, with the outer layers still filled in.
        var vx = new byte[8 + 10];
        VxlanView.Write(vx, 5);
        var r = PacketDecoder.Decode(Eth4(TestFrames.Ipv4(IpProtocols.Udp, TestFrames.Udp(1, UdpView.VxlanPort, vx))), LinkType.Ethernet, out var p);
        Assert.Equal(DropReason.EthTruncated, r);
        Assert.True(p.Protocols.Has(ProtocolFlags.Vxlan));
        Assert.Equal(5u, p.Vni);
    }

    [Fact]
    public void Tcp_option_reader_and_parser_ignore_wrong_length_known_options()
    {
        // MSS with length 3 is not an MSS (tcp_parse_options checks opsize), and a kind after EOL is ignored.
        byte[] opts = [2, 3, 0, 1, 1, 99, 2, 0, 0, 2, 4, 5, 0xb4];
        Assert.True(TcpOptions.TryParse(opts, out var o, out _));
        Assert.False(o.HasMss);
        Assert.Equal(2, o.UnknownCount);
        var rd = new TcpOptionReader(opts);
        var kinds = new List<byte>();
        while (rd.MoveNext()) kinds.Add(rd.Kind);
        Assert.Equal(new byte[] { 2, 1, 1, 99, 0 }, kinds);
        Assert.Equal(DropReason.None, rd.Error);
    }

    [Fact]
    public void Aligned_timestamp_fast_path_matches_general_parse()
    {
        byte[] aligned = [1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6];
        Assert.True(TcpOptions.TryParse(aligned, out var fast, out _));
        Assert.True(fast.HasTimestamps);
        Assert.Equal(5u, fast.TsVal);
        Assert.Equal(6u, fast.TsEcr);
        // The same option laid out differently takes the general loop.
        byte[] other = [8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 0];
        Assert.True(TcpOptions.TryParse(other, out var slow, out _));
        Assert.Equal(fast.TsVal, slow.TsVal);
        Assert.Equal(fast.TsEcr, slow.TsEcr);
        Assert.Equal(fast.HasTimestamps, slow.HasTimestamps);
    }
}
