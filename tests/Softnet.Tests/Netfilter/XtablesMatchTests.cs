using Softnet.Netfilter;
using Softnet.Netfilter.Xtables;
using Softnet.Packets;
using Xunit;
using Softnet.Tests.Support;
using static Softnet.Tests.Netfilter.PacketBuilder;

namespace Softnet.Tests.Netfilter;

public class XtablesMatchTests
{
    private const long S = 1_000_000_000L;

    private static Verdict Run(NetfilterTables t, byte[] pkt, long timeNs = 0, HookPoint hook = HookPoint.LocalIn, TableKind table = TableKind.Filter,
        Func<PacketContext, PacketContext>? edit = null)
    {
        var ctx = Ctx(pkt, timeNs);
        if (edit != null) ctx = edit(ctx);
        return t.Evaluate(t[table]!, hook, ref ctx);
    }

    private static NetfilterTables Filter(string rules, string ipsets = "")
    {
        var into = new NetfilterTables();
        if (ipsets.Length > 0) into.Ipsets.Load(ipsets);
        return IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" + rules + "\nCOMMIT\n", "t", into);
    }

    [Fact]
    public void Registry_finds_every_extension_by_name_and_rejects_unknown_ones()
    {
        foreach (var m in new[] { "tcp", "udp", "icmp", "conntrack", "state", "addrtype", "multiport", "comment", "mark", "statistic",
                     "recent", "iprange", "set", "physdev", "pkttype", "length", "limit" })
            Assert.Equal(m, XtRegistry.FindMatch(m)!.Name);
        foreach (var t in new[] { "REJECT", "LOG", "MARK", "CONNMARK", "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NOTRACK", "CT" })
            Assert.Equal(t, XtRegistry.FindTarget(t)!.Name);
        var e = Assert.Throws<IptablesParseException>(() => Filter("-A INPUT -m nosuch -j ACCEPT"));
        Assert.Equal("Couldn't load match `nosuch':No such file or directory", e.Reason);
        // A kernel half points back to the extension that prints it.
        var rule = Filter("-A INPUT -m length --length 10:20 -j ACCEPT")[TableKind.Filter]!.GetChain("INPUT")!.Rules[0];
        Assert.IsType<LengthMatch>(rule.Matches[0]);
        Assert.Equal(" -m length --length 10:20 -j ACCEPT", rule.Render());
    }

    [Fact]
    public void Kube_proxy_recent_ruleset_loads_prints_and_records_the_client()
    {
        string text = NetfilterTestData.Read("kube-proxy-recent.rules");
        var t = IptablesSaveParser.Parse(text, "kube-proxy-recent.rules");
        var nat = t[TableKind.Nat]!;
        string saved = IptablesSave.Write(t, counters: false);
        Assert.Contains("-A KUBE-SVC-1111111111111111 -p udp -m comment --comment \"kube-system/kube-dns:dns\" -m recent --set --name KUBE-SVC-1111111111111111 --mask 255.255.255.255 --rsource -j DNAT --to-destination 10.246.1.2:53", saved);
        // Every rule line of the file comes back as iptables-save prints it (the file is iptables-save output).
        var want = NetfilterTestData.Tables(text);
        var got = NetfilterTestData.Tables(saved);
        foreach (var table in want.Keys)
            Assert.Equal(want[table].Where(l => l.StartsWith("-A")), got[table].Where(l => l.StartsWith("-A")));

        // A DNS query to the cluster IP: PREROUTING -> KUBE-PORTALS-CONTAINER -> SVC-6666 -> SVC-1111 (recent --set, DNAT).
        var q = Udp("10.246.1.5", 40000, "10.247.0.10", 53);
        var ctx = Ctx(q, 5 * S, inIf: "cbr0");
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.PreRouting, ref ctx, q));
        Assert.Equal(A("10.246.1.2"), ctx.Dst);
        var list = t.Recent["KUBE-SVC-1111111111111111"]!;
        var entry = Assert.Single(list.Entries());
        Assert.Equal(A("10.246.1.5"), entry.Addr);
        Assert.Equal(XtClock.Jiffies(5 * S), entry.LastSeen);
        Assert.Equal(1, nat.GetChain("KUBE-SVC-1111111111111111")!.Rules[0].Packets);
        Assert.Empty(t.Recent["KUBE-SVC-3333333333333333"]!.Entries());
    }

    private const string Affinity = """
        -A INPUT -m recent --name EP1 --rcheck --seconds 10 --reap -j ACCEPT
        -A INPUT -m recent --name EP1 --set -j ACCEPT
        """;

    [Fact]
    public void Recent_rcheck_seconds_reap_is_session_affinity_on_the_packet_clock()
    {
        var t = Filter(Affinity);
        var rules = t[TableKind.Filter]!.GetChain("INPUT")!.Rules;
        var p = Udp("10.0.0.1", 1000, "10.0.0.2", 80);
        Run(t, p, 100 * S);
        Assert.Equal(0, rules[0].Packets);
        Assert.Equal(1, rules[1].Packets);
        Run(t, p, 105 * S);
        Assert.Equal(1, rules[0].Packets);
        // --rcheck does not refresh: 111 s is more than 10 s after the only stamp (100 s).
        Run(t, p, 111 * S);
        Assert.Equal(1, rules[0].Packets);
        Assert.Equal(2, rules[1].Packets);
        // --reap removes the least recently used entry once stale: another client, much later.
        Run(t, Udp("10.0.0.7", 1000, "10.0.0.2", 80), 200 * S);
        Assert.Equal(new[] { A("10.0.0.7") }, t.Recent["EP1"]!.Entries().Select(e => e.Addr).ToArray()
            .Where(a => a == A("10.0.0.7")).ToArray());
        Run(t, Udp("10.0.0.7", 1000, "10.0.0.2", 80), 201 * S);
        Assert.DoesNotContain(A("10.0.0.1"), t.Recent["EP1"]!.Entries().Select(e => e.Addr));
    }

    [Fact]
    public void Recent_keeps_ip_list_tot_addresses_evicting_the_least_recently_used()
    {
        var t = Filter("-A INPUT -m recent --set --name L -j ACCEPT");
        for (int i = 0; i < 101; i++) Run(t, Udp($"10.1.{i / 256}.{i % 256}", 1, "10.0.0.2", 2), i * S);
        var addrs = t.Recent["L"]!.Entries().Select(e => e.Addr).ToList();
        Assert.Equal(100, addrs.Count);
        Assert.DoesNotContain(A("10.1.0.0"), addrs);
        Assert.Equal(A("10.1.0.100"), addrs[^1]);
    }

    [Fact]
    public void Recent_hitcount_update_and_remove()
    {
        var t = Filter("""
            -A INPUT -m recent --name H --update --seconds 60 --hitcount 3 -j DROP
            -A INPUT -m recent --name H --set
            -A INPUT -m recent --name R --remove -j DROP
            -A INPUT -j ACCEPT
            """);
        var p = Tcp("10.0.0.1", 1000, "10.0.0.2", 22, 0x02);
        // set at 1, 2 (the --update misses: fewer than 3 stamps), then the third packet sees 2 stamps: miss, set -> 3.
        Assert.Equal(Verdict.Accept, Run(t, p, 1 * S));
        Assert.Equal(Verdict.Accept, Run(t, p, 2 * S));
        Assert.Equal(Verdict.Accept, Run(t, p, 3 * S));
        Assert.Equal(Verdict.Drop, Run(t, p, 4 * S));
        // A matching --update adds a stamp too: the list keeps being hit.
        Assert.Equal(Verdict.Drop, Run(t, p, 5 * S));
        Assert.Equal(5, t.Recent["H"]!.Entries().Single().Hits);
        Assert.Empty(t.Recent["R"]!.Entries());
        // /proc/net/xt_recent/H: the stamps in slot order, last_seen the newest, oldest_pkt the next slot to write.
        long J(long ns) => XtClock.Jiffies(ns);
        Assert.Equal($"src=10.0.0.1 ttl: 64 last_seen: {J(5 * S)} oldest_pkt: 5 {J(1 * S)}, {J(2 * S)}, {J(3 * S)}, {J(4 * S)}, {J(5 * S)}\n",
            t.Recent["H"]!.ProcText());
        Assert.Equal("", t.Recent["R"]!.ProcText());
    }

    [Fact]
    public void Limit_is_nft_limits_token_bucket_in_nanoseconds()
    {
        var t = Filter("-A INPUT -m limit --limit 5/sec -j ACCEPT");
        var p = Udp("10.0.0.1", 1, "10.0.0.2", 2);
        long t0 = 1000 * S;
        int accepted = 0;
        for (int i = 0; i < 10; i++) if (Run(t, p, t0) == Verdict.Accept) accepted++;
        Assert.Equal(5, accepted);
        Assert.Equal(Verdict.Drop, Run(t, p, t0 + 199_999_999));
        Assert.Equal(Verdict.Accept, Run(t, p, t0 + 200_000_000));
        Assert.Equal(Verdict.Drop, Run(t, p, t0 + 200_000_000));
        Assert.Equal(Verdict.Accept, Run(t, p, t0 + 10 * S));
    }

    [Fact]
    public void Limit_legacy_is_xt_limits_credit_bucket_in_jiffies()
    {
        {
            var t = IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -m limit --limit 5/sec --limit-burst 2 -j ACCEPT\nCOMMIT\n", "t",
                new NetfilterTables { IptablesLegacy = true });
            var p = Udp("10.0.0.1", 1, "10.0.0.2", 2);
            Assert.Equal(Verdict.Accept, Run(t, p, 0));
            Assert.Equal(Verdict.Accept, Run(t, p, 0));
            Assert.Equal(Verdict.Drop, Run(t, p, 0));
            // 200 ms = 50 jiffies at HZ 250 is one packet's cost.
            Assert.Equal(Verdict.Drop, Run(t, p, 196_000_000));
            Assert.Equal(Verdict.Accept, Run(t, p, 200_000_000));
            // xt_limit refuses burst 0 (nft_limit takes it as 5).
            var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse("*filter\n-A INPUT -m limit --limit-burst 0\nCOMMIT\n", "t",
                new NetfilterTables { IptablesLegacy = true }));
            Assert.StartsWith("RULE_APPEND failed (Invalid argument)", e.Reason);
        }
    }

    private const string Sets = """
        create nets hash:net family inet hashsize 1024 maxelem 65536
        add nets 192.168.0.0/16
        add nets 192.168.1.0/24 nomatch
        create svc hash:ip,port family inet hashsize 1024 maxelem 65536
        add svc 10.96.0.10,udp:53
        add svc 10.96.0.10,tcp:53
        create ports bitmap:port range 0-1024
        add ports 22
        add ports 80-82
        create all list:set size 8
        add all svc
        add all nets
        """;

    [Fact]
    public void Set_match_hash_net_nomatch_return_nomatch_ip_port_bitmap_and_list()
    {
        var t = Filter("""
            -A INPUT -m set --match-set nets src -j ACCEPT
            -A INPUT -m set --match-set nets src --return-nomatch -j ACCEPT
            -A INPUT -m set --match-set svc dst,dst -j ACCEPT
            -A INPUT -p tcp -m set --match-set ports dst -j ACCEPT
            -A INPUT -m set ! --match-set all dst -j DROP
            -A INPUT -j ACCEPT
            """, Sets);
        var r = t[TableKind.Filter]!.GetChain("INPUT")!.Rules;
        Run(t, Udp("192.168.7.1", 1, "10.0.0.2", 2));
        Assert.Equal(1, r[0].Packets);
        // 192.168.1.0/24 is a nomatch entry, more specific than /16: no match, unless --return-nomatch.
        Run(t, Udp("192.168.1.1", 1, "10.0.0.2", 2));
        Assert.Equal(1, r[0].Packets);
        Assert.Equal(1, r[1].Packets);
        Run(t, Udp("10.0.0.1", 1, "10.96.0.10", 53));
        Assert.Equal(1, r[2].Packets);
        Run(t, Udp("10.0.0.1", 1, "10.96.0.10", 54));
        Assert.Equal(1, r[2].Packets);
        Run(t, Tcp("10.0.0.1", 1, "10.0.0.3", 81, 0x02));
        Assert.Equal(1, r[3].Packets);
        // list:set: the destination in no member set.
        Assert.Equal(Verdict.Drop, Run(t, Tcp("10.0.0.1", 1, "10.0.0.3", 443, 0x02)));
        Assert.Equal(Verdict.Accept, Run(t, Tcp("10.0.0.1", 1, "192.168.3.3", 443, 0x02)));
    }

    [Fact]
    public void Set_match_needs_the_set_and_the_ipset_file_round_trips()
    {
        var e = Assert.Throws<IptablesParseException>(() => Filter("-A INPUT -m set --match-set docker-ext-bridges-v4 dst -j ACCEPT"));
        Assert.Equal("Set docker-ext-bridges-v4 doesn't exist.", e.Reason);
        Assert.Equal(5, e.Line);
        var c = new IpsetCollection();
        c.Load(Sets);
        Assert.Contains("add nets 192.168.1.0/24 nomatch\n", c.Save());
        Assert.Contains("add svc 10.96.0.10,udp:53\n", c.Save());
        Assert.Contains("create ports bitmap:port range 0-1024\n", c.Save());
        var bad = Assert.Throws<IptablesParseException>(() => new IpsetCollection().Load("create x hash:ip\nadd x 1.2.3.999\n", "ipset.save"));
        Assert.Equal(2, bad.Line);
    }

    [Fact]
    public void Iprange_length_pkttype_and_physdev_evaluate_as_the_kernel()
    {
        var t = Filter("""
            -A INPUT -m iprange --src-range 10.0.0.5-10.0.0.9 ! --dst-range 10.0.1.0-10.0.1.255 -j ACCEPT
            -A INPUT -m length --length 100:200 -j ACCEPT
            -A INPUT -m pkttype --pkt-type broadcast -j ACCEPT
            -A INPUT -m physdev --physdev-in veth1 -j ACCEPT
            -A INPUT -m physdev ! --physdev-is-bridged -j DROP
            -A INPUT -j ACCEPT
            """);
        var r = t[TableKind.Filter]!.GetChain("INPUT")!.Rules;
        Run(t, Udp("10.0.0.7", 1, "10.0.2.1", 2));
        Assert.Equal(1, r[0].Packets);
        Run(t, Udp("10.0.0.7", 1, "10.0.1.1", 2));
        Assert.Equal(1, r[0].Packets);
        Run(t, Udp("10.0.0.1", 1, "10.0.1.1", 2, payload: 100));
        Assert.Equal(1, r[1].Packets);
        Run(t, Udp("10.0.0.1", 1, "10.0.1.255", 2), edit: c => { c.PktType = PacketType.Broadcast; return c; });
        Assert.Equal(1, r[2].Packets);
        // Not bridged: --physdev-in cannot match, the inverted --physdev-is-bridged does.
        Assert.Equal(Verdict.Drop, Run(t, Udp("10.0.0.1", 1, "10.0.1.1", 2)));
        Assert.Equal(0, r[3].Packets);
        Assert.Equal(Verdict.Accept, Run(t, Udp("10.0.0.1", 1, "10.0.1.1", 2),
            edit: c => { c.HasBridgeInfo = true; c.PhysIn = "veth1"; return c; }));
        Assert.Equal(1, r[3].Packets);
    }

    [Fact]
    public void Matches_do_not_allocate_per_packet()
    {
        var t = Filter("""
            -A INPUT -m recent --name A --rcheck --seconds 10 --reap -j ACCEPT
            -A INPUT -m iprange --src-range 10.0.0.5-10.0.0.9 -m length --length 10:2000 -m pkttype --pkt-type unicast -m limit --limit 1000/sec -m set --match-set nets src
            -A INPUT -m set --match-set svc dst,dst -m physdev ! --physdev-is-in
            -A INPUT -m cpu ! --cpu 3 -m cpu --cpu 0
            -A INPUT -m recent --name A --set -j ACCEPT
            """, Sets);
        var pkts = Enumerable.Range(0, 64).Select(i => Udp($"10.0.0.{i}", 1, "10.96.0.10", 53)).ToArray();
        for (int i = 0; i < 200; i++) Run(t, pkts[i % 64], i * 1000);
        long n = 200;
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 2000; i++, n++)
            {
                var ctx = Ctx(pkts[i % 64], n * 1000L);
                t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref ctx);
            }
        }, 2000, "rule evaluations");

        // The byte-reading and per-key matches, through the hook with the datagram attached, once their keys exist
        // (the flows accepted, so conntrack is not making a new entry per packet either).
        var u = Filter("""
            -A INPUT -m u32 --u32 "0>>22&0x3C@8=0x61626364" -m string --string "efgh" --algo bm -m ttl --ttl-gt 1 -m dscp --dscp 0 -m tos --tos 0/0xfc
            -A INPUT -p udp -m hashlimit --hashlimit-upto 1000/sec --hashlimit-mode srcip,dstport --hashlimit-name nal -m connlimit --connlimit-above 100 -m connbytes --connbytes 1: --connbytes-dir both --connbytes-mode avgpkt
            -A INPUT -p tcp -m tcpmss --mss 1:1000
            -A INPUT -m string --hex-string "|7a7a7a|" --algo kmp --icase -m length --length 0:100 -j ACCEPT
            -A INPUT -j ACCEPT
            """);
        for (int i = 0; i < 200; i++)
        {
            var ctx = Ctx(pkts[i % 64], i * 1000L);
            u.Hook(HookPoint.PreRouting, ref ctx, pkts[i % 64]);
            u.Hook(HookPoint.LocalIn, ref ctx, pkts[i % 64]);
        }
        n = 200;
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 2000; i++, n++)
            {
                var ctx = Ctx(pkts[i % 64], n * 1000L);
                u.Hook(HookPoint.PreRouting, ref ctx, pkts[i % 64]);
                u.Hook(HookPoint.LocalIn, ref ctx, pkts[i % 64]);
            }
        }, 2000, "packets through two hooks");
    }
}

public class XtablesMatchTests2
{
    private const long S = 1_000_000_000L;

    private static NetfilterTables Filter(string rules)
        => IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n" + rules + "\nCOMMIT\n", "t");

    /// <summary>Through the hooks with the datagram's bytes, as the datapath runs them (conntrack, Packet attached).</summary>
    private static Verdict In(NetfilterTables t, byte[] pkt, long time = 0, Func<PacketContext, PacketContext>? edit = null)
    {
        var ctx = Ctx(pkt, time, inIf: "eth0");
        if (edit != null) ctx = edit(ctx);
        if (t.Hook(HookPoint.PreRouting, ref ctx, pkt) == Verdict.Drop) return Verdict.Drop;
        return t.Hook(HookPoint.LocalIn, ref ctx, pkt);
    }

    private static List<Rule> Input(NetfilterTables t) => t[TableKind.Filter]!.GetChain("INPUT")!.Rules;

    [Fact]
    public void U32_and_string_read_the_datagram_bytes()
    {
        var t = Filter("""
            -A INPUT -p udp -m u32 --u32 "0>>22&0x3C@0>>16=53" -j ACCEPT
            -A INPUT -m u32 --u32 "6&0xFF=6 && 0>>22&0x3C@12>>26&0x3C@0=0x30313233" -j ACCEPT
            -A INPUT -m string --string "ABC" --algo bm --icase -j ACCEPT
            -A INPUT -m string --hex-string "|0d0a|" --algo kmp --to 30 -j ACCEPT
            """);
        var r = Input(t);
        In(t, Udp("10.0.0.1", 53, "10.0.0.2", 9));
        Assert.Equal(1, r[0].Packets);
        // TCP payload starts "0123..." (PacketBuilder's pattern): the first payload word after IP + TCP headers.
        In(t, Tcp("10.0.0.1", 1, "10.0.0.2", 80, 0x18, payload: 8));
        Assert.Equal(1, r[1].Packets);
        var withText = Udp("10.0.0.1", 1, "10.0.0.2", 9, payload: 0).Concat("xxabcxx"u8.ToArray()).ToArray();
        FixLength(withText);
        In(t, withText);
        Assert.Equal(1, r[2].Packets);
        var crlfLate = Udp("10.0.0.1", 1, "10.0.0.2", 9, payload: 0).Concat("0123456789\r\n"u8.ToArray()).ToArray();
        FixLength(crlfLate);
        // 28 bytes of headers + 10: "\r\n" sits at 38-39, past --to 30.
        Assert.Equal(Verdict.Drop, In(t, crlfLate));
        Assert.Equal(0, r[3].Packets);
    }

    private static void FixLength(byte[] ip)
    {
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(20 + 4), (ushort)(ip.Length - 20));
        ip[10] = ip[11] = 0;
        ushort c = Softnet.Packets.Checksum.Compute(ip.AsSpan(0, 20));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), c);
        ip[26] = ip[27] = 0;
    }

    [Fact]
    public void Tcpmss_reads_the_mss_option()
    {
        var t = Filter("-A INPUT -p tcp -m tcpmss --mss 1000:1460 -j ACCEPT\n-A INPUT -p tcp -m tcpmss ! --mss 0:65535 -j ACCEPT");
        var syn = Tcp("10.0.0.1", 1, "10.0.0.2", 80, 0x02);
        // Give the SYN an MSS option of 1400: data offset 6, option bytes 02 04 05 78.
        var withMss = new byte[syn.Length + 4];
        syn.AsSpan(0, 40).CopyTo(withMss);
        withMss[32] = 6 << 4;
        withMss[40] = 2; withMss[41] = 4; withMss[42] = 0x05; withMss[43] = 0x78;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(withMss.AsSpan(2), (ushort)withMss.Length);
        var ctx = Ctx(withMss);
        ctx.IpHeaderLength = 20;
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalIn, ref ctx, withMss));
        Assert.Equal(1, Input(t)[0].Packets);
        // No options: no MSS, so only the inverted rule matches.
        var plain = Ctx(syn);
        Assert.Equal(Verdict.Accept, t.Hook(HookPoint.LocalIn, ref plain, syn));
        Assert.Equal(1, Input(t)[1].Packets);
    }

    [Fact]
    public void Connlimit_counts_live_connections_per_masked_source()
    {
        var t = Filter("-A INPUT -p tcp -m connlimit --connlimit-above 2 --connlimit-mask 24 -j DROP\n-A INPUT -j ACCEPT");
        Assert.Equal(Verdict.Accept, In(t, Tcp("10.0.0.1", 1000, "10.0.0.2", 80, 0x02), 1 * S));
        Assert.Equal(Verdict.Accept, In(t, Tcp("10.0.0.7", 1001, "10.0.0.2", 80, 0x02), 2 * S));
        Assert.Equal(Verdict.Drop, In(t, Tcp("10.0.0.9", 1002, "10.0.0.2", 80, 0x02), 3 * S));
        // Another /24 has its own count; a retransmitted SYN of a counted connection is not a new one.
        Assert.Equal(Verdict.Accept, In(t, Tcp("10.0.1.1", 1000, "10.0.0.2", 80, 0x02), 4 * S));
        Assert.Equal(Verdict.Accept, In(t, Tcp("10.0.0.1", 1000, "10.0.0.2", 80, 0x02), 5 * S));
    }

    [Fact]
    public void Connbytes_uses_conntrack_accounting_including_the_packet()
    {
        var t = Filter("-A INPUT -m connbytes --connbytes 3 --connbytes-dir original --connbytes-mode packets -j DROP\n-A INPUT -j ACCEPT");
        for (int i = 0; i < 2; i++) Assert.Equal(Verdict.Accept, In(t, Udp("10.0.0.1", 5, "10.0.0.2", 6), i * S));
        Assert.Equal(Verdict.Drop, In(t, Udp("10.0.0.1", 5, "10.0.0.2", 6), 3 * S));
    }

    [Fact]
    public void Header_field_matches_ttl_tos_dscp_mac_connmark_helper_owner()
    {
        var t = Filter("""
            -A INPUT -m ttl --ttl-lt 10 -j DROP
            -A INPUT -m dscp --dscp-class EF -j DROP
            -A INPUT -m tos --tos 0x10/0x3f -j DROP
            -A INPUT -m mac --mac-source 02:00:00:00:00:99 -j DROP
            -A INPUT -m connmark ! --mark 0 -j DROP
            -A INPUT -m helper --helper ftp -j DROP
            -A INPUT -j ACCEPT
            -A OUTPUT -m owner ! --uid-owner 0 -j DROP
            -A OUTPUT -m owner --uid-owner 0 -j ACCEPT
            """);
        var r = Input(t);
        // Without the datagram attached, the header-field matches read the parsed fields the test sets.
        static Verdict Eval(NetfilterTables t, byte[] pkt, Func<PacketContext, PacketContext>? edit = null)
        {
            var ctx = Ctx(pkt, 0, inIf: "eth0");
            if (edit != null) ctx = edit(ctx);
            return t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref ctx);
        }
        var p = Udp("10.0.0.1", 5, "10.0.0.2", 6);
        Assert.Equal(Verdict.Accept, Eval(t, p));
        Assert.Equal(Verdict.Drop, Eval(t, p, edit: c => { c.Ttl = 3; return c; }));
        Assert.Equal(Verdict.Drop, Eval(t, p, edit: c => { c.Tos = 0x2e << 2; return c; }));
        Assert.Equal(Verdict.Drop, Eval(t, p, edit: c => { c.Tos = 0x10; return c; }));
        Assert.Equal(Verdict.Drop, Eval(t, p, edit: c => { c.SrcMac = PacketContext.MacOf(new byte[] { 2, 0, 0, 0, 0, 0x99 }); return c; }));
        Assert.Equal(new long[] { 1, 1, 1, 1, 0, 0, 1 }, r.Select(x => x.Packets).ToArray());
        // No local sockets: the inverted owner rule matches, the plain one does not.
        var o = Ctx(p);
        Assert.Equal(Verdict.Drop, t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalOut, ref o));
    }

public class HashlimitTests
{
    [Fact]
    public void Hashlimit_keeps_a_bucket_per_masked_source_with_the_kernels_credits()
    {
        var t = IptablesSaveParser.Parse("""
            *filter
            :INPUT DROP [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A INPUT -m hashlimit --hashlimit-upto 2/sec --hashlimit-burst 3 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name hl -j ACCEPT
            COMMIT
            """);
        Verdict Run(string src, long ns)
        {
            var p = Udp(src, 1, "10.0.0.2", 2);
            var ctx = Ctx(p, ns);
            return t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref ctx);
        }
        long t0 = 1_000_000_000_000;
        Assert.Equal(Verdict.Accept, Run("10.1.1.1", t0));
        Assert.Equal(Verdict.Accept, Run("10.1.1.2", t0));
        Assert.Equal(Verdict.Accept, Run("10.1.1.3", t0));
        Assert.Equal(Verdict.Drop, Run("10.1.1.4", t0));
        // Another /24 has its own bucket.
        Assert.Equal(Verdict.Accept, Run("10.1.2.1", t0));
        // 2/sec: one packet's cost comes back after 500 ms (125 jiffies at HZ 250).
        Assert.Equal(Verdict.Drop, Run("10.1.1.1", t0 + 496_000_000));
        Assert.Equal(Verdict.Accept, Run("10.1.1.1", t0 + 500_000_000));
        Assert.Equal(2, t.Hashlimit["hl"]!.Count);
        Assert.Equal(137438953UL, HashlimitTable.UserToCredits(1));
    }
}

public class NftTranslationTests
{
    private static Rule One(string rule)
        => IptablesSaveParser.Parse($"*filter\n-A INPUT {rule}\nCOMMIT\n")[TableKind.Filter]!.GetChain("INPUT")!.Rules[0];

    [Theory]
    [InlineData("-p tcp -m tcp ! --sport :80", " -p tcp -m tcp --sport 81:65535")]
    [InlineData("-p tcp -m tcp ! --sport 80:", " -p tcp -m tcp ! --sport 80:65535")]
    [InlineData("-p tcp -m tcp ! --sport 0:65535", " -p tcp")]
    [InlineData("-p tcp -m tcp --sport 0:65535", " -p tcp -m tcp")]
    [InlineData("-p tcp -m tcp ! --sport 1:65535 ! --dport 0:5", " -p tcp -m tcp ! --sport 1:65535 --dport 6:65535")]
    [InlineData("-p udp ! --dport :80", " -p udp -m udp --dport 81:65535")]
    [InlineData("-p tcp -m tcp --tcp-flags NONE NONE", " -p tcp -m tcp")]
    [InlineData("-m limit --limit 7/s --limit-burst 0", " -m limit --limit 7/sec")]
    public void Rules_read_back_as_iptables_nft_translated_them(string rule, string saved)
        => Assert.Equal(saved, One(rule).Render());

    [Fact]
    public void An_inverted_range_from_zero_matches_the_ports_above_it()
    {
        var t = IptablesSaveParser.Parse("*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp ! --dport :1023 -j ACCEPT\nCOMMIT\n");
        var low = PacketBuilder.Ctx(PacketBuilder.Tcp("10.0.0.1", 40000, "10.0.0.2", 22, 0x02));
        var high = PacketBuilder.Ctx(PacketBuilder.Tcp("10.0.0.1", 40000, "10.0.0.2", 8080, 0x02));
        Assert.Equal(Verdict.Drop, t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref low));
        Assert.Equal(Verdict.Accept, t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref high));
    }
}

public class NfacctTests
{
    [Fact]
    public void Nfacct_counts_into_an_existing_object_and_refuses_a_missing_one()
    {
        var into = new NetfilterTables();
        into.Nfacct.Load("{ pkts = 00000000000000000000, bytes = 00000000000000000000 } = localhost_nps_accepted_pkts;\nct_state_invalid_dropped_pkts\n");
        var t = IptablesSaveParser.Parse("*filter\n-A INPUT -m nfacct --nfacct-name localhost_nps_accepted_pkts -j ACCEPT\nCOMMIT\n", "r", into);
        Assert.Equal(" -m nfacct --nfacct-name localhost_nps_accepted_pkts -j ACCEPT", t[TableKind.Filter]!.GetChain("INPUT")!.Rules[0].Render());
        var p = PacketBuilder.Udp("10.0.0.1", 1, "10.0.0.2", 2);
        var ctx = PacketBuilder.Ctx(p);
        Assert.Equal(Verdict.Accept, t.Evaluate(t[TableKind.Filter]!, HookPoint.LocalIn, ref ctx));
        Assert.Equal(1, t.Nfacct["localhost_nps_accepted_pkts"]!.Packets);
        Assert.Equal(p.Length, t.Nfacct["localhost_nps_accepted_pkts"]!.Bytes);
        var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse("*filter\n-A INPUT -m nfacct --nfacct-name nope\nCOMMIT\n"));
        Assert.StartsWith("RULE_APPEND failed (No such file or directory): rule in chain INPUT", e.Reason);
    }
}
}
