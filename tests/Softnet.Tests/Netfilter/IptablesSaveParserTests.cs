using Softnet.Netfilter;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Netfilter;

public class IptablesSaveParserTests
{
    [Fact]
    public void Canonical_rendering_matches_iptables_save_of_the_same_input()
    {
        // oracle-iptables-save.rules is what iptables-restore + iptables-save -c (1.8.9 nf_tables) printed for oracle-input.rules.
        var tables = IptablesSaveParser.Parse(NetfilterTestData.Read("oracle-input.rules"), "oracle-input.rules");
        var ours = NetfilterTestData.Tables(IptablesSave.Write(tables));
        var kernel = NetfilterTestData.Tables(NetfilterTestData.Read("oracle-iptables-save.rules"));
        Assert.Equal(kernel.Keys.OrderBy(k => k), ours.Keys.OrderBy(k => k));
        foreach (var (name, lines) in kernel)
            Assert.Equal(lines, ours[name]);
    }

    [Theory]
    [InlineData("docker-host.rules")]
    [InlineData("kube-proxy.rules")]
    public void Real_rulesets_parse_and_round_trip(string file)
    {
        var text = NetfilterTestData.Read(file);
        var t = IptablesSaveParser.Parse(text, file);
        var written = IptablesSave.Write(t);
        var again = IptablesSave.Write(IptablesSaveParser.Parse(written, "written"));
        Assert.Equal(written, again);
        // Every rule of the input appears verbatim (the files are written in canonical form).
        var rules = text.Split('\n').Where(l => l.Contains("-A ")).Select(l => l.Contains("] -A") ? l[(l.IndexOf("] ") + 2)..] : l);
        foreach (var r in rules) Assert.Contains(r, written);
    }

    [Fact]
    public void Docker_counters_are_kept()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("docker-host.rules"));
        var nat = t[TableKind.Nat]!;
        Assert.Equal(36, nat.GetChain("OUTPUT")!.PolicyPackets);
        Assert.Equal(2240, nat.GetChain("POSTROUTING")!.Rules[0].Packets);
        Assert.Equal(135000, nat.GetChain("POSTROUTING")!.Rules[0].Bytes);
        Assert.Contains("[2240:135000] -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", IptablesSave.Write(t));
    }

    [Theory]
    [InlineData("*filter\n-A INPUT -m foo -j ACCEPT\nCOMMIT\n", 2, "Couldn't load match `foo'")]
    [InlineData("*filter\n-A INPUT -j FOO\nCOMMIT\n", 2, "Chain 'FOO' does not exist")]
    [InlineData("*filter\n-A INPUT -p tcp --bogus 1 -j ACCEPT\nCOMMIT\n", 2, "unknown option \"--bogus\"")]
    [InlineData("*filter\n-A NOPE -j ACCEPT\nCOMMIT\n", 2, "chain 'NOPE' does not exist")]
    [InlineData("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\n", 4, "COMMIT expected")]
    [InlineData("*filter\n-A INPUT -s 10.0.0.300 -j ACCEPT\nCOMMIT\n", 2, "host/network `10.0.0.300' not found")]
    [InlineData("*filter\n-A INPUT -m nosuch --x 1 -j DROP\nCOMMIT\n", 2, "Couldn't load match `nosuch':No such file or directory")]
    [InlineData("*nat\n-A INPUT -j DNAT --to-destination 1.2.3.4\nCOMMIT\n", 2, "only usable from PREROUTING/OUTPUT")]
    [InlineData("*filter\n-A INPUT -j MASQUERADE\nCOMMIT\n", 2, "only valid in nat table")]
    [InlineData("*nat\n-A POSTROUTING -j MASQUERADE --to-ports 1024-2000\nCOMMIT\n", 2, "Need TCP, UDP, SCTP or DCCP")]
    [InlineData("*filter\n-A INPUT -j REJECT --reject-with tcp-reset\nCOMMIT\n", 2, "only valid with -p tcp")]
    [InlineData("*filter\n-A INPUT -m addrtype --dst-type ! LOCAL -j DROP\nCOMMIT\n", 2, "addrtype: bad type \"!\"")]
    [InlineData("*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\n-A B -j A\nCOMMIT\n", 5, "loop detected")]
    [InlineData("*filter\n-A OUTPUT -i eth0 -j ACCEPT\nCOMMIT\n", 2, "Can't use -i with OUTPUT")]
    [InlineData("*bogus\nCOMMIT\n", 1, "unknown table 'bogus'")]
    [InlineData("-A INPUT -j ACCEPT\n", 1, "no table specified")]
    [InlineData("*filter\n:INPUT REJECT [0:0]\nCOMMIT\n", 2, "bad policy name")]
    [InlineData("*filter\n-A INPUT -m tcp --dport 22 -j ACCEPT\nCOMMIT\n", 2, "TCP match requires '-p tcp'")]
    public void Errors_name_file_and_line(string text, int line, string reason)
    {
        var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse(text, "rules.v4"));
        Assert.Equal("rules.v4", e.File);
        Assert.Equal(line, e.Line);
        Assert.Contains(reason, e.Message);
        Assert.StartsWith($"rules.v4:{line}: ", e.Message);
    }

    [Fact]
    public void List_matches_iptables_nvL_layout()
    {
        var t = IptablesSaveParser.Parse(NetfilterTestData.Read("oracle-input.rules"));
        var list = IptablesSave.List(t[TableKind.Nat]!);
        // Lines captured from `iptables -t nat -nvL` (1.8.9) for the same input.
        Assert.Contains("Chain PREROUTING (policy ACCEPT 5 packets, 300 bytes)\n pkts bytes target     prot opt in     out     source               destination         \n", list);
        Assert.Contains("    0     0 DOCKER     0    --  *      *       0.0.0.0/0           !127.0.0.0/8          ADDRTYPE match dst-type LOCAL\n", list);
        Assert.Contains("    0     0 MASQUERADE  0    --  *      !docker0  172.17.0.0/16        0.0.0.0/0           \n", list);
        Assert.Contains("    0     0 DNAT       6    --  !docker0 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:172.17.0.2:80\n", list);
        Assert.Contains("    0     0 DNAT       17   --  *      *       0.0.0.0/0            0.0.0.0/0            udp dpts:8082:8090 to:172.17.0.2:80-90\n", list);
        Assert.Contains("Chain DOCKER (2 references)\n", list);
        var filter = IptablesSave.List(t[TableKind.Filter]!);
        Assert.Contains("    3   180 ACCEPT     6    --  eth+   *       10.0.0.1             10.0.0.0/8           tcp dpt:22\n", filter);
        Assert.Contains("    0     0 ACCEPT     6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spts:!1:1023 flags:0x16/0x02\n", filter);
        Assert.Contains("    0     0 ACCEPT    !17   --  *      *       0.0.0.0/0            0.0.0.0/0           \n", filter);
        Assert.Contains("    0     0 ZZ         0    --  *      *       0.0.0.0/0            0.0.0.0/0           [goto] \n", filter);
        Assert.Contains("multiport sports  !53", filter);
        Assert.Contains("ADDRTYPE match src-type UNICAST,LOCAL dst-type !BROADCAST limit-in", filter);
    }

    private static bool CanUseNetns()
        => Environment.UserName == "root" && ExternalTool.Exists("ip") && ExternalTool.Exists("iptables-restore") && ExternalTool.Exists("iptables-save");

    private static (int, string, string) InNetns(string ns, string script)
        => ExternalTool.Run("ip", "netns", "exec", ns, "sh", "-c", script);

    [SkippableTheory]
    [InlineData("docker-host.rules")]
    [InlineData("kube-proxy.rules")]
    [InlineData("oracle-input.rules")]
    public void Kernel_accepts_our_output_and_saves_it_back_identically(string file)
    {
        Skip.IfNot(CanUseNetns(), "needs root, ip(8) and iptables-restore/iptables-save for a throwaway network namespace");
        var ours = IptablesSave.Write(IptablesSaveParser.Parse(NetfilterTestData.Read(file), file));
        var path = System.IO.Path.GetTempFileName();
        File.WriteAllText(path, ours);
        string ns = "softnet-nf-" + Environment.ProcessId + "-" + file.GetHashCode().ToString("x");
        try
        {
            Assert.Equal(0, ExternalTool.Run("ip", "netns", "add", ns).Exit);
            var test = InNetns(ns, $"iptables-restore --test < {path}");
            Assert.True(test.Item1 == 0, "iptables-restore --test rejected our output: " + test.Item3);
            var restore = InNetns(ns, $"iptables-restore -c < {path}");
            Assert.True(restore.Item1 == 0, restore.Item3);
            var save = InNetns(ns, "iptables-save -c");
            var kernel = NetfilterTestData.Tables(save.Item2);
            var mine = NetfilterTestData.Tables(ours);
            foreach (var (name, lines) in mine)
                Assert.Equal(lines, kernel[name]);
        }
        finally
        {
            ExternalTool.Run("ip", "netns", "del", ns);
            File.Delete(path);
        }
    }
}
