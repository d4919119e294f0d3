using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Packets;

/// <summary>The frames dissected once by tshark for all the view tests.</summary>
public sealed class HeaderOracleFixture
{
    public static readonly string[] Fields =
    [
        "eth.dst", "eth.src", "eth.type",
        "vlan.priority", "vlan.dei", "vlan.id", "vlan.etype", "ieee8021ad.priority", "ieee8021ad.dei", "ieee8021ad.id",
        "arp.hw.type", "arp.proto.type", "arp.hw.size", "arp.proto.size", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.hw_mac", "arp.dst.proto_ipv4",
        "ip.version", "ip.hdr_len", "ip.dsfield.dscp", "ip.dsfield.ecn", "ip.len", "ip.id", "ip.flags.df", "ip.flags.mf", "ip.frag_offset",
        "ip.ttl", "ip.proto", "ip.checksum", "ip.checksum.status", "ip.src", "ip.dst", "ip.opt.type",
        "ipv6.version", "ipv6.tclass", "ipv6.flow", "ipv6.plen", "ipv6.nxt", "ipv6.hlim", "ipv6.src", "ipv6.dst",
        "ipv6.hopopts.nxt", "ipv6.hopopts.len", "ipv6.dstopts.nxt", "ipv6.dstopts.len", "ipv6.routing.nxt", "ipv6.routing.len", "ipv6.routing.type", "ipv6.routing.segleft",
        "ipv6.fraghdr.nxt", "ipv6.fraghdr.offset", "ipv6.fraghdr.more", "ipv6.fraghdr.ident",
        "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.hdr_len", "tcp.flags", "tcp.flags.cwr", "tcp.flags.ece", "tcp.flags.urg", "tcp.flags.ack",
        "tcp.flags.push", "tcp.flags.reset", "tcp.flags.syn", "tcp.flags.fin", "tcp.window_size_value", "tcp.checksum", "tcp.checksum.status", "tcp.urgent_pointer",
        "tcp.option_kind", "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_le", "tcp.options.sack_re",
        "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr", "tcp.len",
        "udp.srcport", "udp.dstport", "udp.length", "udp.checksum", "udp.checksum.status",
        "icmp.type", "icmp.code", "icmp.checksum", "icmp.checksum.status", "icmp.ident", "icmp.seq",
        "icmpv6.type", "icmpv6.code", "icmpv6.checksum", "icmpv6.checksum.status",
        "vxlan.flag_i", "vxlan.vni",
    ];

    public const int Ipv4Syn = 0, TcpSack = 1, Vlan = 2, QinQ = 3, Triple = 4, Arp = 5, Icmp = 6, Icmpv6 = 7,
        Ipv6Ext = 8, Ipv6Frag = 9, Ipv4Frag = 10, Vxlan = 11;

    public readonly byte[][] Frames =
    [
        TestFrames.Ipv4OptionsTcpSyn(), TestFrames.TcpSack(), TestFrames.Vlan8021qUdp(), TestFrames.QinQUdp(), TestFrames.TripleTagUdp(),
        TestFrames.ArpRequest(), TestFrames.IcmpEcho(), TestFrames.Icmpv6Echo(), TestFrames.Ipv6ExtTcp(), TestFrames.Ipv6Fragment(),
        TestFrames.Ipv4Fragment(), TestFrames.Vxlan(),
    ];

    public TsharkOracle Oracle { get; }

    public HeaderOracleFixture()
    {
        Oracle = new TsharkOracle(Frames, Fields, Softnet.Capture.LinkType.Ethernet,
            "tcp.relative_sequence_numbers:FALSE", "tcp.check_checksum:TRUE", "udp.check_checksum:TRUE",
            "ip.check_checksum:TRUE", "ipv6.defragment:FALSE", "ip.defragment:FALSE", "tcp.analyze_sequence_numbers:FALSE");
    }
}

/// <summary>Every header view field compared with tshark's dissection of the same frame.</summary>
public class HeaderViewTsharkTests(HeaderOracleFixture fx) : IClassFixture<HeaderOracleFixture>
{
    private const string Good = "1"; // PROTO_CHECKSUM_E_GOOD

    private Dictionary<string, string> Row(int i)
    {
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        Assert.True(fx.Oracle.Available, fx.Oracle.Error);
        return fx.Oracle[i];
    }

    private static long N(Dictionary<string, string> r, string f) => TsharkOracle.Number(r[f]);

    private static Ipv4View Ip4(ReadOnlySpan<byte> frame, int l3 = 14)
    {
        Assert.True(Ipv4View.TryParse(frame[l3..], out var ip, out var reason), reason.ToString());
        return ip;
    }

    [SkippableFact]
    public void Ethernet_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv4Syn);
        Assert.True(EthernetView.TryParse(fx.Frames[HeaderOracleFixture.Ipv4Syn], out var eth, out _));
        Assert.Equal(r["eth.dst"], TsharkOracle.Mac(eth.Destination));
        Assert.Equal(r["eth.src"], TsharkOracle.Mac(eth.Source));
        Assert.Equal(N(r, "eth.type"), eth.EtherType);
        Assert.Equal(TestFrames.MacB, eth.DestinationMac);
        Assert.Equal(TestFrames.MacA, eth.SourceMac);
        Assert.False(eth.IsMulticast);
    }

    [SkippableFact]
    public void Vlan_8021q_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Vlan);
        var f = fx.Frames[HeaderOracleFixture.Vlan];
        Assert.True(VlanStackView.TryParse(f, out var stack, out _));
        Assert.Equal(1, stack.Count);
        var tag = stack[0];
        Assert.Equal(N(r, "vlan.priority"), tag.Pcp);
        Assert.Equal(N(r, "vlan.dei") != 0, tag.Dei);
        Assert.Equal(N(r, "vlan.id"), tag.Vid);
        Assert.Equal(N(r, "vlan.etype"), tag.EtherType);
        Assert.Equal(EtherTypes.Ipv4, stack.InnerEtherType);
        Assert.Equal(18, stack.PayloadOffset);
    }

    [SkippableFact]
    public void Vlan_8021ad_stacked_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.QinQ);
        Assert.True(VlanStackView.TryParse(fx.Frames[HeaderOracleFixture.QinQ], out var stack, out _));
        Assert.Equal(2, stack.Count);
        Assert.Equal(EtherTypes.QinQ, stack.Tpid(0));
        Assert.Equal(EtherTypes.Vlan, stack.Tpid(1));
        Assert.Equal(N(r, "ieee8021ad.id"), stack[0].Vid);
        Assert.Equal(N(r, "ieee8021ad.priority"), stack[0].Pcp);
        Assert.Equal(N(r, "ieee8021ad.dei") != 0, stack[0].Dei);
        Assert.Equal(N(r, "vlan.id"), stack[1].Vid);
        Assert.Equal(N(r, "vlan.priority"), stack[1].Pcp);
        Assert.Equal(N(r, "vlan.etype"), stack[1].EtherType);
        Assert.Equal(22, stack.PayloadOffset);
    }

    [SkippableFact]
    public void Vlan_three_tags_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Triple);
        Assert.True(VlanStackView.TryParse(fx.Frames[HeaderOracleFixture.Triple], out var stack, out _));
        Assert.Equal(3, stack.Count);
        Assert.Equal(N(r, "ieee8021ad.id"), stack[0].Vid);
        var ids = TsharkOracle.Numbers(r["vlan.id"]);
        var pcps = TsharkOracle.Numbers(r["vlan.priority"]);
        var deis = TsharkOracle.Numbers(r["vlan.dei"]);
        Assert.Equal(ids, new long[] { stack[1].Vid, stack[2].Vid });
        Assert.Equal(pcps, new long[] { stack[1].Pcp, stack[2].Pcp });
        Assert.Equal(deis, new long[] { stack[1].Dei ? 1 : 0, stack[2].Dei ? 1 : 0 });
        Assert.Equal(EtherTypes.Ipv4, stack.InnerEtherType);
    }

    [SkippableFact]
    public void Arp_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Arp);
        var f = fx.Frames[HeaderOracleFixture.Arp];
        Assert.True(ArpView.TryParse(f.AsSpan(14), out var arp, out _));
        Assert.True(arp.IsEthernetIpv4);
        Assert.Equal(N(r, "arp.hw.type"), arp.HardwareType);
        Assert.Equal(N(r, "arp.proto.type"), arp.ProtocolType);
        Assert.Equal(N(r, "arp.hw.size"), arp.HardwareLength);
        Assert.Equal(N(r, "arp.proto.size"), arp.ProtocolLength);
        Assert.Equal(N(r, "arp.opcode"), arp.Operation);
        Assert.Equal(r["arp.src.hw_mac"], TsharkOracle.Mac(arp.SenderHardwareAddress));
        Assert.Equal(r["arp.src.proto_ipv4"], TsharkOracle.Ipv4(arp.SenderProtocolAddress));
        Assert.Equal(r["arp.dst.hw_mac"], TsharkOracle.Mac(arp.TargetHardwareAddress));
        Assert.Equal(r["arp.dst.proto_ipv4"], TsharkOracle.Ipv4(arp.TargetProtocolAddress));
        Assert.Equal(TestFrames.IpA, arp.SenderIp);
        Assert.Equal(TestFrames.IpB, arp.TargetIp);
        Assert.True(EthernetView.TryParse(f, out var eth, out _) && eth.IsBroadcast);
    }

    private static void AssertIpv4(Dictionary<string, string> r, Ipv4View ip)
    {
        Assert.Equal(N(r, "ip.version"), ip.Version);
        Assert.Equal(N(r, "ip.hdr_len"), ip.HeaderLength);
        Assert.Equal(N(r, "ip.dsfield.dscp"), ip.Dscp);
        Assert.Equal(N(r, "ip.dsfield.ecn"), ip.Ecn);
        Assert.Equal(N(r, "ip.len"), ip.TotalLength);
        Assert.Equal(N(r, "ip.id"), ip.Identification);
        Assert.Equal(N(r, "ip.flags.df") != 0, ip.DontFragment);
        Assert.Equal(N(r, "ip.flags.mf") != 0, ip.MoreFragments);
        Assert.Equal(N(r, "ip.frag_offset"), ip.FragmentOffset); // tshark counts 8-byte units
        Assert.Equal(N(r, "ip.ttl"), ip.Ttl);
        Assert.Equal(N(r, "ip.proto"), ip.Protocol);
        Assert.Equal(N(r, "ip.checksum"), ip.HeaderChecksum);
        Assert.Equal(r["ip.checksum.status"] == Good, ip.VerifyChecksum());
        Assert.Equal(r["ip.src"], TsharkOracle.Ipv4(ip.Source));
        Assert.Equal(r["ip.dst"], TsharkOracle.Ipv4(ip.Destination));
    }

    [SkippableFact]
    public void Ipv4_with_options_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv4Syn);
        var ip = Ip4(fx.Frames[HeaderOracleFixture.Ipv4Syn]);
        AssertIpv4(r, ip);
        Assert.True(ip.VerifyChecksum());
        Assert.Equal(7, ip.Ihl);
        // The options tshark lists, by type byte (router alert 148, then NOPs).
        var types = TsharkOracle.Numbers(r["ip.opt.type"]);
        Assert.Equal(148, types[0]);
        Assert.Equal(8, ip.Options.Length);
        Assert.Equal(ip.Options[0], (byte)types[0]);
        Assert.All(types.Skip(1), t => Assert.Equal(1, t));
    }

    [SkippableFact]
    public void Ipv4_fragment_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv4Frag);
        var ip = Ip4(fx.Frames[HeaderOracleFixture.Ipv4Frag]);
        AssertIpv4(r, ip);
        Assert.True(ip.IsFragment);
        Assert.Equal(185 * 8, ip.FragmentOffsetBytes);
    }

    private static void AssertTcp(Dictionary<string, string> r, TcpView tcp, uint pseudo)
    {
        Assert.Equal(N(r, "tcp.srcport"), tcp.SourcePort);
        Assert.Equal(N(r, "tcp.dstport"), tcp.DestinationPort);
        Assert.Equal(N(r, "tcp.seq_raw"), tcp.SequenceNumber);
        Assert.Equal(N(r, "tcp.ack_raw"), tcp.AckNumber);
        Assert.Equal(N(r, "tcp.hdr_len"), tcp.HeaderLength);
        Assert.Equal(N(r, "tcp.flags") & 0xFF, (long)tcp.Flags);
        Assert.Equal(N(r, "tcp.flags.cwr") != 0, tcp.Cwr);
        Assert.Equal(N(r, "tcp.flags.ece") != 0, tcp.Ece);
        Assert.Equal(N(r, "tcp.flags.urg") != 0, tcp.Urg);
        Assert.Equal(N(r, "tcp.flags.ack") != 0, tcp.Ack);
        Assert.Equal(N(r, "tcp.flags.push") != 0, tcp.Psh);
        Assert.Equal(N(r, "tcp.flags.reset") != 0, tcp.Rst);
        Assert.Equal(N(r, "tcp.flags.syn") != 0, tcp.Syn);
        Assert.Equal(N(r, "tcp.flags.fin") != 0, tcp.Fin);
        Assert.Equal(N(r, "tcp.window_size_value"), tcp.Window);
        Assert.Equal(N(r, "tcp.checksum"), tcp.Checksum);
        Assert.Equal(r["tcp.checksum.status"] == Good, tcp.VerifyChecksum(pseudo));
        Assert.Equal(N(r, "tcp.urgent_pointer"), tcp.UrgentPointer);
        Assert.Equal(N(r, "tcp.len"), tcp.Payload.Length);

        // Option kinds in order, as tshark lists them (EOL/NOP included).
        var kinds = new List<long>();
        var rd = new TcpOptionReader(tcp.Options);
        while (rd.MoveNext()) kinds.Add(rd.Kind);
        Assert.Equal(DropReason.None, rd.Error);
        Assert.Equal(TsharkOracle.Numbers(r["tcp.option_kind"]), kinds);

        Assert.True(tcp.TryParseOptions(out var o, out _));
        Assert.Equal(r["tcp.options.mss_val"].Length > 0, o.HasMss);
        if (o.HasMss) Assert.Equal(N(r, "tcp.options.mss_val"), o.Mss);
        Assert.Equal(r["tcp.options.wscale.shift"].Length > 0, o.HasWindowScale);
        if (o.HasWindowScale) Assert.Equal(N(r, "tcp.options.wscale.shift"), o.WindowScale);
        Assert.Equal(kinds.Contains(TcpOptionKinds.SackPermitted), o.SackPermitted);
        Assert.Equal(r["tcp.options.timestamp.tsval"].Length > 0, o.HasTimestamps);
        if (o.HasTimestamps)
        {
            Assert.Equal(N(r, "tcp.options.timestamp.tsval"), o.TsVal);
            Assert.Equal(N(r, "tcp.options.timestamp.tsecr"), o.TsEcr);
        }
        var le = TsharkOracle.Numbers(r["tcp.options.sack_le"]);
        var re = TsharkOracle.Numbers(r["tcp.options.sack_re"]);
        Assert.Equal(le.Length, o.SackBlockCount);
        for (int i = 0; i < le.Length; i++)
        {
            Assert.Equal(le[i], o.SackLeft(i));
            Assert.Equal(re[i], o.SackRight(i));
        }
    }

    [SkippableFact]
    public void Tcp_syn_with_mss_ws_sackperm_ts_matches_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv4Syn);
        var ip = Ip4(fx.Frames[HeaderOracleFixture.Ipv4Syn]);
        Assert.True(TcpView.TryParse(ip.Payload, out var tcp, out _));
        AssertTcp(r, tcp, Checksum.PseudoHeaderV4(ip.Source, ip.Destination, ip.Protocol, ip.Payload.Length));
        Assert.True(tcp.TryParseOptions(out var o, out _));
        Assert.True(o.HasMss && o.HasWindowScale && o.SackPermitted && o.HasTimestamps);
    }

    [SkippableFact]
    public void Tcp_sack_blocks_and_urgent_match_tshark()
    {
        var r = Row(HeaderOracleFixture.TcpSack);
        var ip = Ip4(fx.Frames[HeaderOracleFixture.TcpSack]);
        Assert.True(TcpView.TryParse(ip.Payload, out var tcp, out _));
        AssertTcp(r, tcp, Checksum.PseudoHeaderV4(ip.Source, ip.Destination, ip.Protocol, ip.Payload.Length));
        Assert.True(tcp.TryParseOptions(out var o, out _));
        Assert.Equal(2, o.SackBlockCount);
    }

    [SkippableFact]
    public void Udp_fields_match_tshark()
    {
        foreach (var (i, l3) in new[] { (HeaderOracleFixture.Vlan, 18), (HeaderOracleFixture.QinQ, 22), (HeaderOracleFixture.Triple, 26) })
        {
            var r = Row(i);
            var ip = Ip4(fx.Frames[i], l3);
            AssertIpv4(r, ip);
            Assert.True(UdpView.TryParse(ip.Payload, out var udp, out _));
            Assert.Equal(N(r, "udp.srcport"), udp.SourcePort);
            Assert.Equal(N(r, "udp.dstport"), udp.DestinationPort);
            Assert.Equal(N(r, "udp.length"), udp.Length);
            Assert.Equal(N(r, "udp.checksum"), udp.Checksum);
            Assert.Equal(r["udp.checksum.status"] == Good,
                udp.VerifyChecksum(Checksum.PseudoHeaderV4(ip.Source, ip.Destination, ip.Protocol, udp.Length)));
            Assert.True(TestFrames.Payload.AsSpan().SequenceEqual(udp.Payload));
        }
    }

    [SkippableFact]
    public void Icmpv4_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Icmp);
        var ip = Ip4(fx.Frames[HeaderOracleFixture.Icmp]);
        AssertIpv4(r, ip);
        Assert.True(IcmpView.TryParse(ip.Payload, out var icmp, out _));
        Assert.Equal(N(r, "icmp.type"), icmp.Type);
        Assert.Equal(N(r, "icmp.code"), icmp.Code);
        Assert.Equal(N(r, "icmp.checksum"), icmp.Checksum);
        Assert.Equal(r["icmp.checksum.status"] == Good, icmp.VerifyChecksum());
        Assert.Equal(N(r, "icmp.ident"), icmp.Identifier);
        Assert.Equal(N(r, "icmp.seq"), icmp.SequenceNumber);
        Assert.Equal((uint)(icmp.Identifier << 16 | icmp.SequenceNumber), icmp.RestOfHeader);
    }

    private static Ipv6View AssertIpv6(Dictionary<string, string> r, ReadOnlySpan<byte> frame)
    {
        Assert.True(Ipv6View.TryParse(frame[14..], out var ip, out var reason), reason.ToString());
        Assert.Equal(N(r, "ipv6.version"), ip.Version);
        Assert.Equal(N(r, "ipv6.tclass"), ip.TrafficClass);
        Assert.Equal(N(r, "ipv6.flow"), ip.FlowLabel);
        Assert.Equal(N(r, "ipv6.plen"), ip.PayloadLength);
        Assert.Equal(N(r, "ipv6.nxt"), ip.NextHeader);
        Assert.Equal(N(r, "ipv6.hlim"), ip.HopLimit);
        Assert.Equal(r["ipv6.src"], TsharkOracle.Ipv6(ip.Source));
        Assert.Equal(r["ipv6.dst"], TsharkOracle.Ipv6(ip.Destination));
        return ip;
    }

    [SkippableFact]
    public void Icmpv6_fields_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Icmpv6);
        var ip = AssertIpv6(r, fx.Frames[HeaderOracleFixture.Icmpv6]);
        Assert.True(Icmpv6View.TryParse(ip.Payload, out var icmp, out _));
        Assert.Equal(N(r, "icmpv6.type"), icmp.Type);
        Assert.Equal(N(r, "icmpv6.code"), icmp.Code);
        Assert.Equal(N(r, "icmpv6.checksum"), icmp.Checksum);
        Assert.Equal(r["icmpv6.checksum.status"] == Good,
            icmp.VerifyChecksum(Checksum.PseudoHeaderV6(ip.Source, ip.Destination, IpProtocols.Icmpv6, ip.Payload.Length)));
    }

    [SkippableFact]
    public void Ipv6_extension_headers_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv6Ext);
        var ip = AssertIpv6(r, fx.Frames[HeaderOracleFixture.Ipv6Ext]);
        var rd = new Ipv6ExtensionHeaderReader(ip.Payload, ip.NextHeader);
        var seen = new List<byte>();
        while (rd.MoveNext())
        {
            seen.Add(rd.Type);
            var d = rd.Data;
            switch (rd.Type)
            {
                case IpProtocols.HopByHop:
                    Assert.Equal(N(r, "ipv6.hopopts.nxt"), d[0]);
                    Assert.Equal(N(r, "ipv6.hopopts.len"), d[1]);
                    break;
                case IpProtocols.DestinationOptions:
                    Assert.Equal(N(r, "ipv6.dstopts.nxt"), d[0]);
                    Assert.Equal(N(r, "ipv6.dstopts.len"), d[1]);
                    break;
                case IpProtocols.Routing:
                    Assert.True(Ipv6RoutingView.TryParse(d, out var rt, out _));
                    Assert.Equal(N(r, "ipv6.routing.nxt"), rt.NextHeader);
                    Assert.Equal(N(r, "ipv6.routing.len"), rt.HeaderExtLength);
                    Assert.Equal(N(r, "ipv6.routing.type"), rt.RoutingType);
                    Assert.Equal(N(r, "ipv6.routing.segleft"), rt.SegmentsLeft);
                    break;
            }
        }
        Assert.Equal(DropReason.None, rd.Error);
        Assert.Equal(new byte[] { IpProtocols.HopByHop, IpProtocols.DestinationOptions, IpProtocols.Routing }, seen);
        Assert.Equal(IpProtocols.Tcp, rd.NextHeader);

        Assert.True(Ipv6ExtensionHeaderReader.TryWalk(ip.Payload, ip.NextHeader, out var info, out _));
        Assert.Equal(IpProtocols.Tcp, info.UpperProtocol);
        Assert.Equal(rd.NextOffset, info.UpperOffset);
        Assert.Equal(3, info.HeaderCount);
        Assert.True(info.HasHopByHop && info.HasDestinationOptions && info.HasRouting && !info.HasFragmentHeader);
        Assert.True(TcpView.TryParse(ip.Payload[info.UpperOffset..], out var tcp, out _));
        AssertTcp(r, tcp, Checksum.PseudoHeaderV6(ip.Source, ip.Destination, IpProtocols.Tcp, ip.Payload.Length - info.UpperOffset));
    }

    [SkippableFact]
    public void Ipv6_fragment_header_matches_tshark()
    {
        var r = Row(HeaderOracleFixture.Ipv6Frag);
        var ip = AssertIpv6(r, fx.Frames[HeaderOracleFixture.Ipv6Frag]);
        Assert.True(Ipv6FragmentView.TryParse(ip.Payload, out var fh, out _));
        Assert.Equal(N(r, "ipv6.fraghdr.nxt"), fh.NextHeader);
        Assert.Equal(N(r, "ipv6.fraghdr.offset"), fh.FragmentOffset / 8);
        Assert.Equal(N(r, "ipv6.fraghdr.more") != 0, fh.MoreFragments);
        Assert.Equal(N(r, "ipv6.fraghdr.ident"), fh.Identification);
        Assert.True(Ipv6ExtensionHeaderReader.TryWalk(ip.Payload, ip.NextHeader, out var info, out _));
        Assert.True(info.IsNonFirstFragment);
        Assert.Equal(1448, info.FragmentOffset);
        Assert.True(info.MoreFragments);
        Assert.Equal(0xcafebabeu, info.FragmentId);
        Assert.Equal(IpProtocols.Udp, info.UpperProtocol);
        Assert.Equal(8, info.UpperOffset);
    }

    [SkippableFact]
    public void Vxlan_and_inner_headers_match_tshark()
    {
        var r = Row(HeaderOracleFixture.Vxlan);
        var f = fx.Frames[HeaderOracleFixture.Vxlan];
        var ip = Ip4(f);
        Assert.True(UdpView.TryParse(ip.Payload, out var udp, out _));
        Assert.Equal(TsharkOracle.Numbers(r["udp.dstport"])[0], udp.DestinationPort);
        Assert.True(VxlanView.TryParse(udp.Payload, out var vx, out _));
        Assert.Equal(N(r, "vxlan.flag_i") != 0, vx.VniValid);
        Assert.Equal(N(r, "vxlan.vni"), vx.Vni);
        // Inner Ethernet and IPv4: tshark lists the outer and inner occurrences in order.
        Assert.True(EthernetView.TryParse(vx.Payload, out var inner, out _));
        Assert.Equal(r["eth.src"].Split(',')[1], TsharkOracle.Mac(inner.Source));
        Assert.Equal(r["ip.src"].Split(',')[1], TsharkOracle.Ipv4(inner.Payload[12..16]));
        Assert.Equal(80, TsharkOracle.Numbers(r["tcp.srcport"])[0]);
    }
}
