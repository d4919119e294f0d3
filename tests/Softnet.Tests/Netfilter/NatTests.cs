using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

public class NatTests
{
    private static NetfilterTables DockerHost()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("docker-host.rules"));
        t.Host = new SimpleHost().Add("eth0", "192.168.1.10/24").Add("docker0", "172.17.0.1/16");
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
    public void Dnat_published_port_and_reverse_translation_of_replies()
    {
        var t = DockerHost();
        var syn = Tcp("203.0.113.7", 51000, "192.168.1.10", 8080, 0x02, seq: 100);
        Assert.Equal(Verdict.Accept, Forward(t, syn, "eth0", "docker0", 0, out var ctx));
        Assert.Equal(A("172.17.0.2"), ctx.Dst);
        Assert.Equal(80, ctx.DstPort);
        Assert.Equal(A("172.17.0.2"), System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(syn.AsSpan(16)));
        AssertChecksumsValid(syn);
        var conn = ctx.Ct!;
        Assert.True((conn.Status & CtStatus.DstNat) != 0);
        Assert.Equal("tcp      6 120 SYN_SENT src=203.0.113.7 dst=192.168.1.10 sport=51000 dport=8080 [UNREPLIED] src=172.17.0.2 dst=203.0.113.7 sport=80 dport=51000 mark=0 use=1",
            conn.Format(0));

        // The container answers; POSTROUTING undoes the DNAT on the source.
        var synack = Tcp("172.17.0.2", 80, "203.0.113.7", 51000, 0x12, seq: 9000, ack: 101);
        Assert.Equal(Verdict.Accept, Forward(t, synack, "docker0", "eth0", 1, out ctx));
        Assert.Equal(CtInfo.EstablishedReply, ctx.CtInfo);
        Assert.Equal(A("192.168.1.10"), ctx.Src);
        Assert.Equal(8080, ctx.SrcPort);
        AssertChecksumsValid(synack);

        // DNAT counter counted only the first packet; the ctstate DNAT bit matches.
        var dnat = t[TableKind.Nat]!.GetChain("DOCKER")!.Rules[1];
        Assert.Equal(3 + 1, dnat.Packets);
        var m = IptablesSaveParser.Parse("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -m conntrack --ctstate DNAT --ctorigdstport 8080 -j ACCEPT\nCOMMIT\n");
        var probe = ctx;
        Assert.Equal(Verdict.Accept, m.Evaluate(m[TableKind.Filter]!, HookPoint.Forward, ref probe));
    }

    [Fact]
    public void Masquerade_keeps_the_port_then_moves_a_clashing_one()
    {
        var t = DockerHost();
        var a = Udp("172.17.0.2", 40000, "8.8.8.8", 53);
        Assert.Equal(Verdict.Accept, Forward(t, a, "docker0", "eth0", 0, out var ca));
        Assert.Equal(A("192.168.1.10"), ca.Src);
        Assert.Equal(40000, ca.SrcPort);
        AssertChecksumsValid(a);

        var b = Udp("172.17.0.3", 40000, "8.8.8.8", 53);
        Assert.Equal(Verdict.Accept, Forward(t, b, "docker0", "eth0", 0, out var cb));
        Assert.Equal(A("192.168.1.10"), cb.Src);
        Assert.NotEqual(40000, cb.SrcPort);
        Assert.InRange(cb.SrcPort, 1024, 65535);
        AssertChecksumsValid(b);
        ushort mapped = cb.SrcPort;

        // The reply to the moved port goes back to the second container.
        var reply = Udp("8.8.8.8", 53, "192.168.1.10", mapped);
        Assert.Equal(Verdict.Accept, Forward(t, reply, "eth0", "docker0", 1, out var cr));
        Assert.Equal(A("172.17.0.3"), cr.Dst);
        Assert.Equal(40000, cr.DstPort);
        AssertChecksumsValid(reply);
        Assert.Contains($"src=8.8.8.8 dst=192.168.1.10 sport=53 dport={mapped}", cb.Ct!.Format(1));
    }

    [Fact]
    public void Icmp_error_about_a_masqueraded_flow_is_translated_inside_and_out()
    {
        var t = DockerHost();
        var a = Udp("172.17.0.2", 40000, "8.8.8.8", 53);
        Forward(t, a, "docker0", "eth0", 0, out _);
        // The remote host answers port unreachable, quoting the datagram as it saw it (after SNAT).
        var err = Icmp("8.8.8.8", "192.168.1.10", 3, 3, 0, a.AsSpan(0, 28));
        Assert.Equal(Verdict.Accept, Forward(t, err, "eth0", "docker0", 1, out var ce));
        Assert.Equal(CtInfo.RelatedReply, ce.CtInfo);
        Assert.Equal(A("172.17.0.2"), ce.Dst);
        Assert.Equal(A("172.17.0.2"), ce.InnerSrc);
        Assert.True(Softnet.Packets.Checksum.Verify(err.AsSpan(20)), "ICMP checksum after inner rewrite");
        Assert.True(Softnet.Packets.Checksum.Verify(err.AsSpan(0, 20)));
        Assert.True(Softnet.Packets.Checksum.Verify(err.AsSpan(28, 20)), "inner IP header checksum");
    }

    [Fact]
    public void Kube_service_dnat_picks_an_endpoint_and_marks_for_masquerade()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("kube-proxy.rules"));
        t.Host = new SimpleHost().Add("eth0", "192.168.1.10/24").Add("cni0", "10.244.0.1/24");
        t.Seed(7);
        var seen = new HashSet<uint>();
        for (ushort port = 30000; port < 30040; port++)
        {
            var syn = Tcp("192.168.1.50", port, "10.96.0.10", 80, 0x02);
            Assert.Equal(Verdict.Accept, Forward(t, syn, "eth0", "cni0", 0, out var ctx));
            Assert.Equal(80, ctx.DstPort);
            seen.Add(ctx.Dst);
            // From outside the pod CIDR: KUBE-MARK-MASQ set 0x4000, so KUBE-POSTROUTING masquerades.
            Assert.Equal(A("10.244.0.1"), ctx.Src);
            AssertChecksumsValid(syn);
        }
        Assert.Equal(new HashSet<uint> { A("10.244.1.5"), A("10.244.2.7") }, seen);
    }

    [Fact]
    public void Snat_port_range_is_respected()
    {
        var t = IptablesSaveParser.Parse("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1:2000-2001\nCOMMIT\n");
        var ports = new List<ushort>();
        for (ushort i = 0; i < 2; i++)
        {
            var syn = Tcp("10.0.0." + (i + 1), 5555, "203.0.113.1", 443, 0x02);
            Assert.Equal(Verdict.Accept, Forward(t, syn, "eth1", "eth0", 0, out var ctx));
            Assert.Equal(A("198.51.100.1"), ctx.Src);
            ports.Add(ctx.SrcPort);
        }
        Assert.Equal(new ushort[] { 2000, 2001 }, ports.OrderBy(p => p));
    }

    [Fact]
    public void A_source_keeps_its_mapping_past_newer_bindings_from_the_same_source()
    {
        // find_appropriate_src walks every connection from the source, newest first, for one whose mapping is in the
        // range: the newer bindings (another range's SNAT, a null binding) do not hide the first one. Checked on Linux
        // 6.18 (a netns, these rules, one UDP socket bound to 10.0.0.5:40000 sending to each address, conntrack -L).
        var t = IptablesSaveParser.Parse("*nat\n:POSTROUTING ACCEPT [0:0]\n" +
            "-A POSTROUTING -d 192.0.2.0/24 -p udp -j SNAT --to-source 198.51.100.1-198.51.100.200\n" +
            "-A POSTROUTING -d 203.0.113.0/24 -p udp -j SNAT --to-source 198.51.100.250\nCOMMIT\n");
        Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.5", 40000, "192.0.2.1", 53), "eth1", "eth0", 0, out var first));
        // The address Linux 6.18 chose for this source and destination (find_best_ips_proto's jhash2); in a netns with
        // these two rules, the kernel mapped all of 192.0.2.1-11 to it, past the newer bindings, as checked below.
        Assert.Equal(A("198.51.100.112"), first.Src);
        Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.5", 40000, "203.0.113.1", 53), "eth1", "eth0", 0, out var other));
        Assert.Equal(A("198.51.100.250"), other.Src);
        Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.5", 40000, "172.16.0.1", 53), "eth1", "eth0", 0, out var unmapped));
        Assert.Equal(A("10.0.0.5"), unmapped.Src);
        for (int host = 2; host < 40; host++)
        {
            Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.5", 40000, "192.0.2." + host, 53), "eth1", "eth0", 0, out var again));
            Assert.Equal(first.Src, again.Src);
            Assert.Equal(40000, again.SrcPort);
        }
    }

    /// <summary>find_best_ips_proto's choice in an SNAT range, as Linux 6.18 made it (a netns with
    /// `-j SNAT --to-source 198.51.100.10-198.51.100.200`, one UDP datagram per pair, `conntrack -L`).</summary>
    [Theory]
    [InlineData("10.9.0.11", "203.0.113.1", "198.51.100.32")]
    [InlineData("10.9.0.11", "203.0.113.9", "198.51.100.181")]
    [InlineData("10.9.0.12", "203.0.113.1", "198.51.100.119")]
    [InlineData("10.9.0.12", "203.0.113.9", "198.51.100.36")]
    [InlineData("10.9.0.13", "203.0.113.1", "198.51.100.176")]
    [InlineData("10.9.0.14", "203.0.113.9", "198.51.100.15")]
    [InlineData("10.9.0.15", "203.0.113.1", "198.51.100.149")]
    [InlineData("10.9.0.77", "203.0.113.9", "198.51.100.158")]
    [InlineData("10.9.0.200", "203.0.113.1", "198.51.100.52")]
    [InlineData("10.9.0.200", "203.0.113.9", "198.51.100.174")]
    public void Snat_address_range_choice_is_the_kernels(string src, string dst, string mapped)
    {
        var t = IptablesSaveParser.Parse("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o v0 -p udp -j SNAT --to-source 198.51.100.10-198.51.100.200\nCOMMIT\n");
        Assert.Equal(Verdict.Accept, Forward(t, Udp(src, 40001, dst, 53), "lo", "v0", 0, out var ctx));
        Assert.Equal(A(mapped), ctx.Src);
    }

    [Fact]
    public void A_range_of_every_address_wraps_the_distance_to_zero_and_takes_its_start()
    {
        // find_best_ips_proto's u32 distance is 0 for 0.0.0.0-255.255.255.255, so the choice is the range's start.
        // Linux 6.18, a netns with these rules: the second datagram's reply clashes with the first's, and its entry reads
        // "src=192.0.2.4 dst=0.0.0.0 sport=80 dport=5000".
        var t = IptablesSaveParser.Parse("*nat\n:POSTROUTING ACCEPT [0:0]\n" +
            "-A POSTROUTING -s 10.0.0.1/32 -p udp -j SNAT --to-source 10.0.0.2\n" +
            "-A POSTROUTING -s 10.0.0.2/32 -p udp -j SNAT --to-source 0.0.0.0-255.255.255.255\nCOMMIT\n");
        Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.1", 5000, "192.0.2.4", 80), "lo", "v0", 0, out var first));
        Assert.Equal(A("10.0.0.2"), first.Src);
        Assert.Equal(Verdict.Accept, Forward(t, Udp("10.0.0.2", 5000, "192.0.2.4", 80), "lo", "v0", 0, out var second));
        Assert.Equal(0u, second.Src);
        Assert.Equal(5000, second.SrcPort);
    }

    [Fact]
    public void Redirect_on_a_device_without_an_address_drops_rather_than_borrow_another_devices()
    {
        var rules = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -j REDIRECT --to-ports 3128\nCOMMIT\n";
        var t = IptablesSaveParser.Parse(rules);
        t.Host = new SimpleHost().Add("eth0", "192.168.1.10/24").Add("eth0", "192.168.2.10/24");
        var pkt = Tcp("203.0.113.7", 51000, "198.51.100.1", 80, 0x02);
        var ctx = Ctx(pkt, 0, "eth1");
        Assert.Equal(Verdict.Drop, t.Hook(HookPoint.PreRouting, ref ctx, pkt));
        // On a device with addresses: its first.
        t = IptablesSaveParser.Parse(rules);
        t.Host = new SimpleHost().Add("eth0", "192.168.1.10/24").Add("eth0", "192.168.2.10/24");
        pkt = Tcp("203.0.113.7", 51000, "198.51.100.1", 80, 0x02);
        ctx = Ctx(pkt, 0, "eth0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, pkt));
        Assert.Equal(A("192.168.1.10"), ctx.Dst);
        Assert.Equal(3128, ctx.DstPort);
    }

    [Fact]
    public void A_syn_late_in_the_port_search_evicts_a_closing_source_nated_entry()
    {
        // nf_nat_used_tuple_harder (Linux 6.5+): with one port to give, the new SYN's search is all "late"; the old
        // connection holding that port's reply tuple is in TIME_WAIT, was source-NATed, and the new SYN's sequence is
        // past it, so the old entry is killed and the new connection takes the port (without it, confirm would find
        // the clash and drop the SYN).
        var t = IptablesSaveParser.Parse("*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -p tcp -j SNAT --to-source 198.51.100.1:5000\nCOMMIT\n");
        long ns = 0;
        Verdict Go(byte[] pkt, bool orig, out PacketContext c) => Forward(t, pkt, orig ? "eth1" : "eth0", orig ? "eth0" : "eth1", ns += 1000, out c);
        Assert.Equal(Verdict.Accept, Go(Tcp("10.0.0.1", 4000, "203.0.113.1", 80, 0x02, seq: 100), true, out var a));
        var old = a.Ct!;
        Assert.Equal(5000, a.SrcPort);
        Go(Tcp("203.0.113.1", 80, "198.51.100.1", 5000, 0x12, seq: 9000, ack: 101), false, out _);
        Go(Tcp("10.0.0.1", 4000, "203.0.113.1", 80, 0x10, seq: 101, ack: 9001), true, out _);
        Go(Tcp("10.0.0.1", 4000, "203.0.113.1", 80, 0x11, seq: 101, ack: 9001), true, out _);
        Go(Tcp("203.0.113.1", 80, "198.51.100.1", 5000, 0x11, seq: 9001, ack: 102), false, out _);
        Go(Tcp("10.0.0.1", 4000, "203.0.113.1", 80, 0x10, seq: 102, ack: 9002), true, out _);
        Assert.Equal(TcpCtState.TimeWait, old.TcpState);

        // A SYN from another client whose sequence is behind the old one's: the port stays taken, confirm drops it.
        Assert.Equal(Verdict.Drop, Go(Tcp("10.0.0.2", 4000, "203.0.113.1", 80, 0x02, seq: 50), true, out _));
        Assert.Equal(TcpCtState.TimeWait, old.TcpState);
        Assert.Equal(0, (int)(old.Status & CtStatus.Dying));
        // One past it: the old entry goes, the new connection gets port 5000.
        Assert.Equal(Verdict.Accept, Go(Tcp("10.0.0.2", 4000, "203.0.113.1", 80, 0x02, seq: 500), true, out var b));
        Assert.Equal(5000, b.SrcPort);
        Assert.NotEqual(0, (int)(old.Status & CtStatus.Dying));
        Assert.Single(t.Conntrack.Entries(ns));
    }
}
