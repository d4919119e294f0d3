using System.Buffers.Binary;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Xunit;
using static Softnet.Tests.Netfilter.Ipv6.PacketBuilder6;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>IPv6 conntrack (TCP, UDP, ICMPv6 echo and errors, ND untracked) and NAT66 (DNAT, SNAT, MASQUERADE) run
/// through a namespace's ip6tables hooks, checking verdicts, rewritten bytes and checksums, and `conntrack -L -f ipv6`.</summary>
public class Ip6ConntrackNatTests
{
    private const long S = 1_000_000_000L;
    private const byte SYN = 0x02, ACK = 0x10, RST = 0x04;

    /// <summary>The v6-fw router: LAN 2001:db8:1::/64 on lan0, WAN 2001:db8:ff::/64 on wan0.</summary>
    internal const string Router = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 2001:db8:ff::1/128 -i wan0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination [2001:db8:1::10]:80
        -A POSTROUTING -s 2001:db8:1::/64 -o wan0 -p udp -m udp --dport 53 -j SNAT --to-source [2001:db8:ff::53]:5300-5301
        -A POSTROUTING -s 2001:db8:1::/64 -o wan0 -j MASQUERADE
        COMMIT
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A INPUT -p ipv6-icmp -j ACCEPT
        -A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
        -A INPUT -j REJECT --reject-with icmp6-adm-prohibited
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -i lan0 -o wan0 -j ACCEPT
        -A FORWARD -i wan0 -o lan0 -p tcp -m conntrack --ctstate DNAT -m tcp --dport 80 -j ACCEPT
        -A FORWARD -j REJECT --reject-with icmp6-port-unreachable
        COMMIT

        """;

    internal const string Lan = "2001:db8:1::20", Server = "2001:db8:1::10", Out = "2001:db8:ff::100", Wan = "2001:db8:ff::1";

    internal static NetfilterTables Load()
    {
        var t = IptablesSaveParser.Parse(Router, "ip6tables.save", NetfilterTables.CreateIpv6());
        t.Host6 = new SimpleHost6().Add("lan0", "fe80::1/64").Add("lan0", "2001:db8:1::1/64").Add("wan0", "fe80::2/64").Add("wan0", "2001:db8:ff::1/64");
        t.ConntrackEnabled = true;
        return t;
    }

    /// <summary>PREROUTING, FORWARD, POSTROUTING for a routed packet.</summary>
    private static Verdict Forward(NetfilterTables t, byte[] pkt, string inIf, string outIf, long time, out PacketContext ctx)
    {
        ctx = Ctx(pkt, time, inIf);
        var v = t.Hook(HookPoint.PreRouting, ref ctx, pkt);
        if (v == Verdict.Drop) return v;
        ctx.OutInterface = outIf;
        v = t.Hook(HookPoint.Forward, ref ctx, pkt);
        if (v == Verdict.Drop) return v;
        return t.Hook(HookPoint.PostRouting, ref ctx, pkt);
    }

    [Fact]
    public void Masquerade_rewrites_the_source_to_the_wan_address_and_replies_back()
    {
        var t = Load();
        var syn = Tcp(Lan, 40000, Out, 443, SYN, seq: 100);
        Assert.Equal(Verdict.Accept, Forward(t, syn, "lan0", "wan0", 0, out var ctx));
        Assert.Equal(Wan, Src(syn));
        Assert.Equal(40000, SrcPort(syn));
        AssertChecksumValid(syn);
        var conn = ctx.Ct!;
        Assert.True((conn.Status & CtStatus.SrcNat) != 0);
        Assert.Equal("wan0", conn.MasqueradeDevice);

        var synAck = Tcp(Out, 443, Wan, 40000, SYN | ACK, seq: 5000, ack: 101);
        Assert.Equal(Verdict.Accept, Forward(t, synAck, "wan0", "lan0", 1 * S, out ctx));
        Assert.Equal(CtInfo.EstablishedReply, ctx.CtInfo);
        Assert.Equal(Lan, Dst(synAck));
        Assert.Equal(40000, DstPort(synAck));
        AssertChecksumValid(synAck);
        var ack = Tcp(Lan, 40000, Out, 443, ACK, seq: 101, ack: 5001);
        Assert.Equal(Verdict.Accept, Forward(t, ack, "lan0", "wan0", 2 * S, out _));
        Assert.Equal(TcpCtState.Established, conn.TcpState);
        Assert.Equal(
            "tcp      6 431999 ESTABLISHED src=2001:db8:1::20 dst=2001:db8:ff::100 sport=40000 dport=443 src=2001:db8:ff::100 dst=2001:db8:ff::1 sport=443 dport=40000 [ASSURED] mark=0 use=1\n",
            t.Conntrack6.List(2 * S + S / 2));
    }

    [Fact]
    public void Dnat_published_port_reaches_the_server_and_its_replies_leave_as_the_router()
    {
        var t = Load();
        var syn = Tcp(Out, 50000, Wan, 8080, SYN, seq: 7);
        Assert.Equal(Verdict.Accept, Forward(t, syn, "wan0", "lan0", 0, out var ctx));
        Assert.Equal(Server, Dst(syn));
        Assert.Equal(80, DstPort(syn));
        AssertChecksumValid(syn);
        Assert.True((ctx.Ct!.Status & CtStatus.DstNat) != 0);
        var synAck = Tcp(Server, 80, Out, 50000, SYN | ACK, seq: 900, ack: 8);
        Assert.Equal(Verdict.Accept, Forward(t, synAck, "lan0", "wan0", S, out _));
        Assert.Equal(Wan, Src(synAck));
        Assert.Equal(8080, SrcPort(synAck));
        AssertChecksumValid(synAck);
        // The FORWARD rule counted the DNATed SYN.
        var fwd = t[TableKind.Filter]!.GetChain("FORWARD")!.Rules;
        Assert.Equal(1, fwd[3].Packets);
        Assert.Equal(syn.Length, fwd[3].Bytes);
        // A connection to another port is refused: REJECT with ICMPv6 port unreachable.
        var other = Tcp(Out, 50001, Wan, 8081, SYN);
        Assert.Equal(Verdict.Drop, Forward(t, other, "wan0", "lan0", 2 * S, out ctx));
        Assert.Equal(RejectWith.Icmp6PortUnreachable, ctx.Reject);
    }

    [Fact]
    public void Snat_port_range_and_echo_through_masquerade()
    {
        var t = Load();
        var q1 = Udp(Lan, 1000, Out, 53);
        Assert.Equal(Verdict.Accept, Forward(t, q1, "lan0", "wan0", 0, out _));
        Assert.Equal("2001:db8:ff::53", Src(q1));
        Assert.InRange(SrcPort(q1), (ushort)5300, (ushort)5301);
        AssertChecksumValid(q1);
        var q2 = Udp("2001:db8:1::21", 1000, Out, 53);
        Assert.Equal(Verdict.Accept, Forward(t, q2, "lan0", "wan0", 0, out _));
        Assert.NotEqual(SrcPort(q1), SrcPort(q2));
        AssertChecksumValid(q2);

        var echo = Icmp6(Lan, Out, 128, 0, id: 77, seq: 1);
        Assert.Equal(Verdict.Accept, Forward(t, echo, "lan0", "wan0", 0, out var ctx));
        Assert.Equal(Wan, Src(echo));
        AssertChecksumValid(echo);
        var reply = Icmp6(Out, Wan, 129, 0, id: 77, seq: 1);
        Assert.Equal(Verdict.Accept, Forward(t, reply, "wan0", "lan0", S, out var rctx));
        Assert.Equal(CtInfo.EstablishedReply, rctx.CtInfo);
        Assert.Same(ctx.Ct, rctx.Ct);
        Assert.Equal(Lan, Dst(reply));
        AssertChecksumValid(reply);
        Assert.Contains("icmpv6   58 29 src=2001:db8:1::20 dst=2001:db8:ff::100 type=128 code=0 id=77 src=2001:db8:ff::100 dst=2001:db8:ff::1 type=129 code=0 id=77 mark=0 use=1",
            t.Conntrack6.List(S + S / 2));
    }

    [Fact]
    public void Icmpv6_error_about_a_masqueraded_flow_is_related_and_translated_inside_and_out()
    {
        var t = Load();
        var syn = Tcp(Lan, 40000, Out, 443, SYN, seq: 100);
        Assert.Equal(Verdict.Accept, Forward(t, syn, "lan0", "wan0", 0, out var first));
        // A router on the way answers about the packet as it left (source the WAN address).
        var err = Icmp6Error("2001:db8:ff::fe", Wan, 1, 3, syn);
        Assert.Equal(Verdict.Accept, Forward(t, err, "wan0", "lan0", S, out var ctx));
        Assert.Equal(CtInfo.RelatedReply, ctx.CtInfo);
        Assert.Same(first.Ct, ctx.Ct);
        Assert.Equal(Lan, Dst(err));
        // The quoted packet is the one the LAN host sent, checksum and all.
        var quoted = err.AsSpan(48).ToArray();
        Assert.Equal(Lan, Src(quoted));
        Assert.Equal(40000, SrcPort(quoted));
        AssertChecksumValid(quoted);
        AssertChecksumValid(err);
        // An error whose outer destination is not the connection's end is not related: INVALID, dropped.
        var stray = Icmp6Error("2001:db8:ff::fe", "2001:db8:ff::99", 1, 3, syn);
        Assert.Equal(Verdict.Drop, Forward(t, stray, "wan0", "lan0", S, out ctx));
        Assert.Equal(CtInfo.None, ctx.CtInfo);
    }

    [Fact]
    public void Neighbour_discovery_is_untracked_and_unknown_icmpv6_is_invalid()
    {
        var t = Load();
        var ns = Icmp6("fe80::100", "ff02::1:ff00:1", 135, 0);
        var ctx = Ctx(ns, 0, "wan0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, ns));
        Assert.Equal(CtInfo.Untracked, ctx.CtInfo);
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalIn, ref ctx, ns));
        Assert.Equal("", t.Conntrack6.List(0));
        // An echo reply with no request: no connection (invalid new), so INPUT's REJECT... of an ICMPv6 packet: the
        // -p ipv6-icmp ACCEPT comes first.
        var reply = Icmp6(Out, Wan, 129, 0, id: 5);
        ctx = Ctx(reply, 0, "wan0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, reply));
        Assert.Equal(CtInfo.None, ctx.CtInfo);
        Assert.Equal(1, t.Conntrack6.Stats.Invalid);
    }

    [Fact]
    public void Local_input_rejects_and_bad_checksums_are_invalid()
    {
        var t = Load();
        var telnet = Tcp(Out, 1234, Wan, 23, SYN);
        var ctx = Ctx(telnet, 0, "wan0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, telnet));
        Assert.Equal(Verdict.Drop, t.Hook(HookPoint.LocalIn, ref ctx, telnet));
        Assert.Equal(RejectWith.TcpReset, ctx.Reject);
        var udp = Udp(Out, 1234, Wan, 9);
        ctx = Ctx(udp, 0, "wan0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, udp));
        Assert.Equal(Verdict.Drop, t.Hook(HookPoint.LocalIn, ref ctx, udp));
        Assert.Equal(RejectWith.Icmp6AdmProhibited, ctx.Reject);
        // nf_conntrack_checksum: a corrupted TCP checksum is INVALID in PREROUTING, and FORWARD drops INVALID.
        var bad = Tcp(Lan, 40001, Out, 443, SYN);
        bad[^1] ^= 0xFF;
        Assert.Equal(Verdict.Drop, Forward(t, bad, "lan0", "wan0", 0, out ctx));
        Assert.Equal(CtInfo.None, ctx.CtInfo);
        Assert.Equal(1, t[TableKind.Filter]!.GetChain("FORWARD")!.Rules[0].Packets);
    }

    [Fact]
    public void Rst_kills_the_connection_and_timeouts_expire_entries()
    {
        var t = Load();
        var syn = Tcp(Lan, 40000, Out, 443, SYN, seq: 100);
        Assert.Equal(Verdict.Accept, Forward(t, syn, "lan0", "wan0", 0, out _));
        Assert.Equal(1, t.Conntrack6.Count);
        var rst = Tcp(Out, 443, Wan, 40000, RST | ACK, seq: 0, ack: 101);
        Assert.Equal(Verdict.Accept, Forward(t, rst, "wan0", "lan0", S, out var ctx));
        Assert.Equal(TcpCtState.Close, ctx.Ct!.TcpState);
        // CLOSE lasts 10 s.
        Assert.Equal("", t.Conntrack6.List(12 * S));
        var udp = Udp(Lan, 999, Out, 123);
        Assert.Equal(Verdict.Accept, Forward(t, udp, "lan0", "wan0", 20 * S, out _));
        Assert.Single(t.Conntrack6.Entries(49 * S));
        Assert.Empty(t.Conntrack6.Entries(50 * S));
        Assert.Equal(1, t.Conntrack6.Gc(50 * S) + 0 * t.Conntrack6.Count);
    }

    [Fact]
    public void Conntrack_match_reads_the_ipv6_tuples()
    {
        var t = Load();
        var filter = IptablesSaveParser.Parse("""
            *mangle
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            -A FORWARD -m conntrack --ctreplsrc 2001:db8:1::10 --ctorigdst 2001:db8:ff::1/128
            -A FORWARD -m conntrack --ctrepldst 2001:db8:1::20 --ctorigsrc 2001:db8:1::/64
            -A FORWARD -m conntrack ! --ctorigsrc 2001:db8:1::/64
            COMMIT

            """, "r", t);
        var syn = Tcp(Out, 50000, Wan, 8080, SYN);
        Assert.Equal(Verdict.Accept, Forward(filter, syn, "wan0", "lan0", 0, out _));
        var echo = Icmp6(Lan, Out, 128, 0, id: 1);
        Assert.Equal(Verdict.Accept, Forward(filter, echo, "lan0", "wan0", 0, out _));
        var rules = filter[TableKind.Mangle]!.GetChain("FORWARD")!.Rules;
        // In FORWARD the masquerade is still to come (POSTROUTING): the reply goes to the LAN host yet.
        Assert.Equal([1L, 1L, 1L], rules.Select(r => r.Packets));
    }

    [Fact]
    public void A_source_keeps_its_mapping_for_new_destinations()
    {
        // find_appropriate_src: the port MASQUERADE gave 50000 (out of --to-ports, so moved) is the one its next
        // connection gets, to another server; another source port gets its own.
        var t = IptablesSaveParser.Parse("""
            *nat
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            -A POSTROUTING -o wan0 -p tcp -j MASQUERADE --to-ports 2000-2999
            COMMIT

            """, "r", NetfilterTables.CreateIpv6());
        t.Host6 = new SimpleHost6().Add("wan0", "2001:db8:ff::1/64");
        var first = Tcp(Lan, 50000, Out, 443, SYN);
        Assert.Equal(Verdict.Accept, Forward(t, first, "lan0", "wan0", 0, out _));
        ushort mapped = SrcPort(first);
        Assert.InRange(mapped, (ushort)2000, (ushort)2999);
        var second = Tcp(Lan, 50000, "2001:db8:ff::200", 80, SYN);
        Assert.Equal(Verdict.Accept, Forward(t, second, "lan0", "wan0", 0, out _));
        Assert.Equal(mapped, SrcPort(second));
        AssertChecksumValid(second);
        var third = Tcp(Lan, 50001, "2001:db8:ff::200", 80, SYN);
        Assert.Equal(Verdict.Accept, Forward(t, third, "lan0", "wan0", 0, out _));
        Assert.NotEqual(mapped, SrcPort(third));
        // A different source address with the same port is another source.
        var other = Tcp("2001:db8:1::21", 50000, Out, 443, SYN);
        Assert.Equal(Verdict.Accept, Forward(t, other, "lan0", "wan0", 0, out _));
        Assert.NotEqual(mapped, SrcPort(other));
    }

    [Fact]
    public void No_next_header_is_invalid_and_matches_only_rules_without_a_protocol()
    {
        // ipv6_find_hdr returns 59 itself (no hotdrop); ipv6_skip_exthdr gives conntrack no tuple (INVALID).
        var t = Load();
        var none = PacketBuilder6.Ip(Out, Wan, 59, 8);
        var ctx = Ctx(none, 0, "wan0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, none));
        Assert.Equal(CtInfo.None, ctx.CtInfo);
        Assert.Equal(Verdict.Drop, t.Hook(HookPoint.LocalIn, ref ctx, none));
        Assert.Equal(RejectWith.Icmp6AdmProhibited, ctx.Reject);
        Assert.Equal(1, t[TableKind.Filter]!.GetChain("INPUT")!.Rules[3].Packets);
        // REJECT answers nothing: reject6_csum_ok finds no transport header.
        Assert.False(Nf6Reject.Reject6ChecksumOk(none, verified: false));
    }

    /// <summary>A namespace-like host that knows both families' addresses.</summary>
    private sealed class DualHost : INetfilterHost, IIp6NetfilterHost
    {
        private readonly SimpleHost _v4 = new();
        private readonly SimpleHost6 _v6 = new SimpleHost6().Add("wan0", "2001:db8:ff::7/64");
        public RouteType AddressType(uint address, string? device) => _v4.AddressType(address, device);
        public uint SelectAddress(string? device, uint nexthop) => _v4.SelectAddress(device, nexthop);
        public uint DeviceAddress(string? device) => _v4.DeviceAddress(device);
        public bool TrySelectSource(string? device, UInt128 dst, out UInt128 src) => _v6.TrySelectSource(device, dst, out src);
        public bool IsLocal(UInt128 address) => _v6.IsLocal(address);
    }

    [Fact]
    public void Masquerade_asks_the_namespace_for_its_ipv6_addresses_when_it_knows_them()
    {
        var t = IptablesSaveParser.Parse(Router, "ip6tables.save", NetfilterTables.CreateIpv6());
        t.ConntrackEnabled = true;
        // No address known: MASQUERADE has no source to give (nf_nat_masquerade_ipv6 drops).
        var first = Tcp(Lan, 40000, Out, 443, SYN);
        Assert.Equal(Verdict.Drop, Forward(t, first, "lan0", "wan0", 0, out var ctx));
        Assert.Equal(Softnet.Packets.DropReason.NetfilterNatFailed, ctx.DropReason);
        t.Host = new DualHost();
        var second = Tcp(Lan, 40001, Out, 443, SYN);
        Assert.Equal(Verdict.Accept, Forward(t, second, "lan0", "wan0", 0, out _));
        Assert.Equal("2001:db8:ff::7", Src(second));
    }

    [Fact]
    public void Addrtype_matches_ipv6_addresses_as_match_type6_does()
    {
        var t = IptablesSaveParser.Parse("""
            *mangle
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            -A PREROUTING -m addrtype --dst-type LOCAL
            -A PREROUTING -m addrtype --dst-type MULTICAST
            -A PREROUTING -m addrtype --dst-type UNICAST
            -A PREROUTING -m addrtype --src-type UNICAST,LOCAL
            -A PREROUTING -m addrtype ! --dst-type LOCAL
            COMMIT

            """, "r", NetfilterTables.CreateIpv6());
        t.Host6 = new SimpleHost6().Add("wan0", "2001:db8:ff::1/64");
        foreach (var pkt in new[] { Udp(Out, 1, Wan, 2), Udp(Out, 1, "ff02::1", 2), Udp(Wan, 1, Out, 2) })
        {
            var ctx = Ctx(pkt, 0, "wan0");
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, pkt));
        }
        var rules = t[TableKind.Mangle]!.GetChain("PREROUTING")!.Rules;
        Assert.Equal([1L, 1L, 2L, 1L, 2L], rules.Select(r => r.Packets));
        // BROADCAST, BLACKHOLE and PROHIBIT and above are refused for IPv6 (addrtype_mt_checkentry).
        var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse(
            "*filter\n-A INPUT -m addrtype --dst-type BROADCAST\nCOMMIT\n", "r", NetfilterTables.CreateIpv6()));
        Assert.Contains("ipv6 does not support BROADCAST matching", e.Reason);
    }

    [Fact]
    public void Masquerade_source_follows_ipv6_dev_get_saddr()
    {
        var h = new SimpleHost6().Add("wan0", "fe80::2/64").Add("wan0", "2001:db8:ff::1/64").Add("wan0", "2001:db8:aa::1/64").Add("lan0", "2001:db8:1::1/64");
        Assert.True(h.TrySelectSource("wan0", A("2001:db8:aa::9"), out var s));
        Assert.Equal(A("2001:db8:aa::1"), s);
        Assert.True(h.TrySelectSource("wan0", A("2001:db8:5::9"), out s));
        Assert.Equal(A("2001:db8:ff::1"), s);
        Assert.True(h.TrySelectSource("wan0", A("fe80::99"), out s));
        Assert.Equal(A("fe80::2"), s);
        Assert.True(h.TrySelectSource("wan0", A("2001:db8:1::1"), out s));
        Assert.Equal(A("2001:db8:1::1"), s);
        Assert.False(new SimpleHost6().TrySelectSource("wan0", A("2001:db8::1"), out _));
    }

    [Fact]
    public void Nat66_address_range_choice_is_the_kernels_jhash2()
    {
        // find_best_ips_proto over [::12, ::14]: a stable choice per client, inside the range.
        var t = IptablesSaveParser.Parse("""
            *nat
            :PREROUTING ACCEPT [0:0]
            -A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination 2001:db8:3::12-2001:db8:3::14
            COMMIT

            """, "r", NetfilterTables.CreateIpv6());
        var seen = new HashSet<string>();
        for (int i = 0; i < 64; i++)
        {
            var q = Udp($"2001:db8:1::{i + 1:x}", 1000, Wan, 53);
            var ctx = Ctx(q, 0, "wan0");
            Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, q));
            var d = A(Dst(q));
            Assert.InRange(d, A("2001:db8:3::12"), A("2001:db8:3::14"));
            seen.Add(Dst(q));
            AssertChecksumValid(q);
            var again = Udp($"2001:db8:1::{i + 1:x}", 1001, Wan, 53);
            ctx = Ctx(again, 0, "wan0");
            t.Hook(HookPoint.PreRouting, ref ctx, again);
            Assert.Equal(Dst(q), Dst(again));
        }
        Assert.Equal(3, seen.Count);
    }
}
