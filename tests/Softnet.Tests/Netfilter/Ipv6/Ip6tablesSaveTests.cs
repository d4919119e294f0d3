using Softnet.Netfilter;
using Softnet.Netfilter.Xtables;
using Xunit;

namespace Softnet.Tests.Netfilter.Ipv6;

/// <summary>ip6tables-save text: what ip6tables-restore accepts and how ip6tables-save (1.8.9, nf_tables) prints it back;
/// the expected texts are what the real tools printed for these inputs (Softnet.KernelTests' Ip6tablesKernelTests
/// checks the same against the running kernel).</summary>
public class Ip6tablesSaveTests
{
    internal const string Input = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :FWD - [0:0]
        -A INPUT -i lo -j ACCEPT
        -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
        -A INPUT -p icmpv6 --icmpv6-type echo-request -j ACCEPT
        -A INPUT -s 2001:db8:1::/64 -d 2001:DB8:2::1 -p tcp -m multiport --dports 22,80:90 -m comment --comment "hi there" -j ACCEPT
        -A INPUT -m state --state INVALID -j DROP
        -A INPUT -m mark --mark 0x1/0xff -j LOG --log-prefix "x6: " --log-level 6
        -A INPUT -p tcp -j REJECT --reject-with tcp-reset
        -A INPUT -p udp -j REJECT
        -A INPUT -j REJECT --reject-with icmp6-adm-prohibited
        -A FORWARD -j FWD
        -A FWD -d 2001:db8::/32 -j REJECT --reject-with icmp6-no-route
        -A FWD -j REJECT --reject-with icmp6-addr-unreachable
        -A FWD -j RETURN
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 2001:db8:2::1/128 -p tcp --dport 80 -j DNAT --to-destination [2001:db8:3::10]:8080
        -A PREROUTING -d 2001:db8:2::1/128 -p tcp --dport 81 -j DNAT --to-destination 2001:db8:3::11
        -A PREROUTING -p udp --dport 53 -j DNAT --to-destination [2001:db8:3::12-2001:db8:3::14]:5300-5310
        -A POSTROUTING -o eth1 -j MASQUERADE
        -A POSTROUTING -o eth2 -p tcp -j MASQUERADE --to-ports 1024-2000
        -A POSTROUTING -o eth3 -j SNAT --to-source 2001:db8:9::1
        COMMIT
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        COMMIT
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT

        """;

    /// <summary>`ip6tables-save -c` of <see cref="Input"/> (its comment lines aside), tables in the kernel's order.</summary>
    internal const string KernelSave = """
        *mangle
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        COMMIT
        *raw
        :PREROUTING ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :FWD - [0:0]
        [0:0] -A INPUT -i lo -j ACCEPT
        [0:0] -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        [0:0] -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
        [0:0] -A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT
        [0:0] -A INPUT -s 2001:db8:1::/64 -d 2001:db8:2::1/128 -p tcp -m multiport --dports 22,80:90 -m comment --comment "hi there" -j ACCEPT
        [0:0] -A INPUT -m state --state INVALID -j DROP
        [0:0] -A INPUT -m mark --mark 0x1/0xff -j LOG --log-prefix "x6: " --log-level 6
        [0:0] -A INPUT -p tcp -j REJECT --reject-with tcp-reset
        [0:0] -A INPUT -p udp -j REJECT --reject-with icmp6-port-unreachable
        [0:0] -A INPUT -j REJECT --reject-with icmp6-adm-prohibited
        [0:0] -A FORWARD -j FWD
        [0:0] -A FWD -d 2001:db8::/32 -j REJECT --reject-with icmp6-no-route
        [0:0] -A FWD -j REJECT --reject-with icmp6-addr-unreachable
        [0:0] -A FWD -j RETURN
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        [0:0] -A PREROUTING -d 2001:db8:2::1/128 -p tcp -m tcp --dport 80 -j DNAT --to-destination [2001:db8:3::10]:8080
        [0:0] -A PREROUTING -d 2001:db8:2::1/128 -p tcp -m tcp --dport 81 -j DNAT --to-destination 2001:db8:3::11
        [0:0] -A PREROUTING -p udp -m udp --dport 53 -j DNAT --to-destination [2001:db8:3::12-2001:db8:3::14]:5300-5310
        [0:0] -A POSTROUTING -o eth1 -j MASQUERADE
        [0:0] -A POSTROUTING -o eth2 -p tcp -j MASQUERADE --to-ports 1024-2000
        [0:0] -A POSTROUTING -o eth3 -j SNAT --to-source 2001:db8:9::1
        COMMIT

        """;

    /// <summary>More forms and what ip6tables-save made of them.</summary>
    internal static readonly (string In, string Out)[] Forms =
    [
        ("-p icmpv6 --icmpv6-type 1/4 -j ACCEPT", "-p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j ACCEPT"),
        ("-p 58 --icmpv6-type destination-unreachable -j ACCEPT", "-p ipv6-icmp -m icmp6 --icmpv6-type 1 -j ACCEPT"),
        ("-p ipv6-icmp ! --icmpv6-type neighbour-solicitation -j ACCEPT", "-p ipv6-icmp -m icmp6 ! --icmpv6-type 135 -j ACCEPT"),
        ("-p icmpv6 --icmpv6-type packet-too-big -j ACCEPT", "-p ipv6-icmp -m icmp6 --icmpv6-type 2 -j ACCEPT"),
        ("-p icmpv6 --icmpv6-type port-unreachable -j ACCEPT", "-p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j ACCEPT"),
        ("-p icmpv6 -j ACCEPT", "-p ipv6-icmp -j ACCEPT"),
        ("! -s ::1 ! -d fe80::/10 -j ACCEPT", "! -s ::1/128 ! -d fe80::/10 -j ACCEPT"),
        ("-s 2001:db8::1/ffff:ffff:: -j ACCEPT", "-s 2001:db8::/32 -j ACCEPT"),
        ("-s ::/0 -j ACCEPT", "-j ACCEPT"),
        ("-p all -j ACCEPT", "-j ACCEPT"),
        ("-p udp -m udp --sport 1:2 -j ACCEPT", "-p udp -m udp --sport 1:2 -j ACCEPT"),
        ("-s 2001:db8::5/64 -j ACCEPT", "-s 2001:db8::/64 -j ACCEPT"),
        ("-p tcp --syn -j ACCEPT", "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT"),
        ("-p 132 -j ACCEPT", "-p sctp -j ACCEPT"),
        ("-m conntrack --ctstate NEW --ctorigdst 2001:db8::1 -j ACCEPT", "-m conntrack --ctstate NEW --ctorigdst 2001:db8::1 -j ACCEPT"),
        ("-m conntrack ! --ctreplsrc 2001:db8::5/48 -j ACCEPT", "-m conntrack ! --ctreplsrc 2001:db8::/48 -j ACCEPT"),
        ("-p tcp -j REJECT --reject-with no-route", "-p tcp -j REJECT --reject-with icmp6-no-route"),
        ("-p tcp -j REJECT --reject-with adm-prohibited", "-p tcp -j REJECT --reject-with icmp6-adm-prohibited"),
        ("-p tcp -j REJECT --reject-with addr-unreach", "-p tcp -j REJECT --reject-with icmp6-addr-unreachable"),
        ("-p tcp -j REJECT --reject-with port-unreach", "-p tcp -j REJECT --reject-with icmp6-port-unreachable"),
        ("-p tcp -j REJECT --reject-with policy-fail", "-p tcp -j REJECT --reject-with icmp6-policy-fail"),
        ("-p tcp -j REJECT --reject-with reject-route", "-p tcp -j REJECT --reject-with icmp6-reject-route"),
    ];

    internal static string Strip(string save)
        => string.Join('\n', save.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0 && !l.StartsWith('#'))) + "\n";

    private static NetfilterTables Load(string text) => IptablesSaveParser.Parse(text, "ip6tables.save", NetfilterTables.CreateIpv6());

    private static string SaveInKernelOrder(NetfilterTables t)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var kind in new[] { TableKind.Mangle, TableKind.Security, TableKind.Raw, TableKind.Filter, TableKind.Nat })
            if (t[kind] is { } table) IptablesSave.WriteTable(sb, table, counters: true);
        return Strip(sb.ToString());
    }

    [Fact]
    public void Ruleset_saves_as_ip6tables_save_prints_it()
        => Assert.Equal(Strip(KernelSave), SaveInKernelOrder(Load(Input)));

    [Fact]
    public void Kernel_save_parses_back_to_the_same_text()
        => Assert.Equal(Strip(KernelSave), SaveInKernelOrder(Load(KernelSave)));

    [Fact]
    public void Rule_forms_save_as_ip6tables_save_prints_them()
    {
        foreach (var (input, output) in Forms)
        {
            var t = Load($"*filter\n-A INPUT {input}\nCOMMIT\n");
            Assert.Equal(" " + output, t[TableKind.Filter]!.GetChain("INPUT")!.Rules[0].Render());
        }
    }

    [Fact]
    public void Extensions_register_by_family()
    {
        Assert.IsType<Reject6TargetExtension>(XtRegistry.FindTarget("REJECT", NfProto.Ipv6));
        Assert.IsType<RejectTargetExtension>(XtRegistry.FindTarget("REJECT", NfProto.Ipv4));
        Assert.IsType<RejectTargetExtension>(XtRegistry.FindTarget("REJECT"));
        Assert.IsType<Dnat6TargetExtension>(XtRegistry.FindTarget("DNAT", NfProto.Ipv6));
        Assert.IsType<Masquerade6TargetExtension>(XtRegistry.FindTarget("MASQUERADE", NfProto.Ipv6));
        Assert.Null(XtRegistry.FindMatch("icmp6", NfProto.Ipv4));
        Assert.Null(XtRegistry.FindMatch("icmp", NfProto.Ipv6));
        // NFPROTO_UNSPEC extensions serve both.
        Assert.Same(XtRegistry.FindMatch("conntrack", NfProto.Ipv4), XtRegistry.FindMatch("conntrack", NfProto.Ipv6));
        Assert.Contains("icmp6", XtRegistry.MatchNamesOf(NfProto.Ipv6));
        Assert.DoesNotContain("icmp6", XtRegistry.MatchNames);
    }

    [Theory]
    [InlineData("-A INPUT -s 10.0.0.1 -j ACCEPT", 2, "host/network `10.0.0.1' not found")]
    [InlineData("-A INPUT -s 2001:db8::/129 -j ACCEPT", 2, "invalid mask `129' specified")]
    [InlineData("-A INPUT -f -j ACCEPT", 2, "unknown option \"-f\"")]
    [InlineData("-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT", 2, "Couldn't load match `icmp'")]
    [InlineData("-A INPUT -p udp -j REJECT --reject-with tcp-reset", 2, "TCP_RESET illegal for non-tcp")]
    [InlineData("-A INPUT -p tcp -j REJECT --reject-with icmp-host-prohibited", 2, "unknown reject type \"icmp-host-prohibited\"")]
    [InlineData("-A INPUT -j DNAT --to-destination 2001:db8::1", 2, "DNAT target: only valid in nat table")]
    [InlineData("-A INPUT -p udp -m icmp6 --icmpv6-type 128 -j ACCEPT", 2, "icmp6 match: only valid for protocol 58")]
    [InlineData("-A INPUT -p icmpv6 --icmpv6-type bogus -j ACCEPT", 2, "Unknown ICMPv6 type `bogus'")]
    public void Bad_lines_are_refused_with_file_and_line(string rule, int line, string reason)
    {
        var e = Assert.Throws<IptablesParseException>(() => Load($"*filter\n{rule}\nCOMMIT\n"));
        Assert.Equal("ip6tables.save", e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Reason);
    }

    [Fact]
    public void Nat_range_forms_are_refused_when_malformed()
    {
        var e = Assert.Throws<IptablesParseException>(() => Load("*nat\n-A PREROUTING -p tcp -j DNAT --to-destination [2001:db8::1:80\nCOMMIT\n"));
        Assert.Equal(2, e.Line);
        e = Assert.Throws<IptablesParseException>(() => Load("*nat\n-A PREROUTING -j DNAT --to-destination [2001:db8::1]:80\nCOMMIT\n"));
        Assert.Contains("Need TCP, UDP, SCTP or DCCP with port specification", e.Reason);
    }

    [Fact]
    public void Rules_marked_for_the_other_family_are_skipped()
    {
        // ip6tables-restore and iptables-restore 1.8.9 on the same file: each keeps its own family's rules.
        const string both = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -4 -s 10.0.0.1 -j ACCEPT\n-A INPUT -6 -s 2001:db8::1 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n";
        var v6 = Load(both)[TableKind.Filter]!.GetChain("INPUT")!.Rules.Select(r => r.Render());
        Assert.Equal([" -s 2001:db8::1/128 -j ACCEPT", " -j DROP"], v6);
        var v4 = IptablesSaveParser.Parse(both)[TableKind.Filter]!.GetChain("INPUT")!.Rules.Select(r => r.Render());
        Assert.Equal([" -s 10.0.0.1/32 -j ACCEPT", " -j DROP"], v4);
    }

    [Fact]
    public void Iptables_rulesets_still_parse_as_ipv4()
    {
        var t = IptablesSaveParser.Parse("*filter\n-A INPUT -s 10.0.0.0/8 -p icmp --icmp-type 8 -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n");
        Assert.Equal(" -s 10.0.0.0/8 -p icmp -m icmp --icmp-type 8 -j REJECT --reject-with icmp-host-prohibited", t[TableKind.Filter]!.GetChain("INPUT")!.Rules[0].Render());
        Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse("*filter\n-A INPUT -s 2001:db8::1 -j ACCEPT\nCOMMIT\n"));
    }
}
