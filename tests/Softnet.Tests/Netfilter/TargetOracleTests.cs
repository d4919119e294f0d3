using Softnet.Netfilter;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Netfilter;

/// <summary>
/// The targets TCPMSS, TTL, DSCP, TOS, CHECKSUM, NFLOG, NFQUEUE, TRACE, CT (and NOTRACK) and CONNMARK against
/// Data/targets-oracle.tsv: for each input rule, what iptables-restore + iptables-save / iptables -nvL (1.8.9,
/// nf_tables, kernel 6.18) printed, or the error iptables-restore reported (the kernel's log line for rejections
/// made at commit).
/// </summary>
public class TargetOracleTests
{
    public sealed record Row(string Table, string Rule, bool Ok, string[] Save, string[] List, string Commit)
    {
        public string Input => $"*{Table}\n{Rule.Replace("\\n", "\n")}\nCOMMIT\n";
        /// <summary>The expected error, for a rejected rule.</summary>
        public string Error => Save[0];
        public override string ToString() => $"{Table}: {Rule}";
    }

    public static List<Row> Rows()
    {
        var rows = new List<Row>();
        foreach (var line in NetfilterTestData.Read("targets-oracle.tsv").Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split('\t');
            rows.Add(new Row(f[0], f[1], f[2] == "OK", f[3].Split("\\n"), f[4].Length == 0 ? Array.Empty<string>() : f[4].Split("\\n"), f[5]));
        }
        return rows;
    }

    public static IEnumerable<object[]> Accepted() => Rows().Where(r => r.Ok).Select(r => new object[] { r });
    public static IEnumerable<object[]> Rejected() => Rows().Where(r => !r.Ok).Select(r => new object[] { r });

    private static List<string> RuleLines(string saveText)
        => saveText.Split('\n').Where(l => l.StartsWith("-A ", StringComparison.Ordinal)).ToList();

    private static List<string> ListRuleLines(string listText)
        => listText.Split('\n').Where(l => l.Length > 0 && (char.IsAsciiDigit(l.TrimStart()[0]))).ToList();

    [Theory]
    [MemberData(nameof(Accepted))]
    public void Saves_and_lists_as_iptables_does(Row row)
    {
        var tables = IptablesSaveParser.Parse(row.Input, "t.rules");
        Assert.Equal(row.Save, RuleLines(IptablesSave.Write(tables, counters: false)));
        TableNames.TryParse(row.Table, out var kind);
        Assert.Equal(row.List, ListRuleLines(IptablesSave.List(tables[kind]!)));
        // What we print loads back to the same rule.
        var again = IptablesSaveParser.Parse(IptablesSave.Write(tables, counters: false), "again.rules");
        Assert.Equal(row.Save, RuleLines(IptablesSave.Write(again, counters: false)));
    }

    [Theory]
    [MemberData(nameof(Rejected))]
    public void Rejects_as_iptables_does(Row row)
    {
        var e = Assert.Throws<IptablesParseException>(() => IptablesSaveParser.Parse(row.Input, "t.rules"));
        Assert.Equal("t.rules", e.File);
        Assert.Equal(2, e.Line);
        if (row.Commit.Length == 0)
        {
            Assert.Equal(row.Error, e.Reason);
            return;
        }
        // Rejected by the kernel at commit: the reason carries the kernel's log line (table and hook checks give
        // just that line), or iptables-restore's errno report with the reason appended.
        if (!row.Error.StartsWith("RULE_APPEND failed", StringComparison.Ordinal)) Assert.Contains(row.Error, e.Reason);
        if (e.Reason.StartsWith("RULE_APPEND failed", StringComparison.Ordinal)) Assert.StartsWith(row.Commit + " (", e.Reason);
    }

    private static bool CanUseNetns()
        => Environment.UserName == "root" && ExternalTool.Exists("ip") && ExternalTool.Exists("iptables-restore") && ExternalTool.Exists("iptables-save");

    /// <summary>
    /// Live check: every accepted rule, loaded by the real iptables-restore in a throwaway namespace, is printed back
    /// by iptables-save exactly as Softnet prints it; every rule Softnet rejects, the real one rejects too.
    /// </summary>
    [SkippableFact]
    [Trait("Category", "Kernel")]
    public void Real_iptables_agrees_on_every_oracle_rule()
    {
        Skip.IfNot(CanUseNetns(), "needs root, ip(8) and iptables-restore/iptables-save for a throwaway network namespace");
        string ns = "softnet-tgt-" + Environment.ProcessId;
        var path = Path.GetTempFileName();
        try
        {
            Assert.Equal(0, ExternalTool.Run("ip", "netns", "add", ns).Exit);
            foreach (var row in Rows())
            {
                File.WriteAllText(path, row.Input);
                var restore = ExternalTool.Run("ip", "netns", "exec", ns, "sh", "-c", $"iptables-restore < {path}");
                if (!row.Ok)
                {
                    Assert.True(restore.Exit != 0, $"iptables-restore accepted {row}");
                    continue;
                }
                Assert.True(restore.Exit == 0, $"iptables-restore rejected {row}: {restore.Stderr}");
                var save = ExternalTool.Run("ip", "netns", "exec", ns, "iptables-save", "-t", row.Table);
                var ours = IptablesSave.Write(IptablesSaveParser.Parse(row.Input, "t.rules"), counters: false);
                Assert.Equal(RuleLines(save.Stdout), RuleLines(ours));
                ExternalTool.Run("ip", "netns", "exec", ns, "iptables", "-t", row.Table, "-F");
                ExternalTool.Run("ip", "netns", "exec", ns, "iptables", "-t", row.Table, "-X");
            }
        }
        finally
        {
            ExternalTool.Run("ip", "netns", "del", ns);
            File.Delete(path);
        }
    }
}
