using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Softnet.Capture;
using Softnet.Cli;
using Softnet.Filter;
using Softnet.Tests.Filter;
using Softnet.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.KernelTests.Filter;

/// <summary>
/// tcpdump (its libpcap 1.10 compiler and pcap_offline_filter) as the oracle: over captures of the tcpdump corpus
/// with Ethernet, Linux cooked and raw IP link types, the frames a filter keeps are the frames
/// <c>tcpdump -O -r FILE -w OUT EXPR</c> writes (unoptimised: libpcap's optimiser refuses an expression that can
/// match nothing, e.g. "arp" on raw IP, where the unoptimised program simply matches nothing); the programs, in all three dump formats, are <c>tcpdump -O -d</c>'s;
/// and every expression of libpcap's TESTrun for these link types compiles to tcpdump's program (TESTrun's own
/// expected programs come from a later libpcap). Skips with a clear message without tcpdump or the corpus.
/// </summary>
[Trait("Category", "Kernel")]
public class FilterToolComparisonKernelTests(ITestOutputHelper output)
{
    internal static readonly string[] Expressions =
    [
        "ip", "ip6", "arp", "tcp", "udp", "icmp", "icmp6", "not ip", "tcp or udp", "tcp and not udp", "vlan", "vlan and ip",
        "vlan 100", "mpls", "mpls and ip", "pppoes", "pppoes and ip", "pppoed", "port 53", "tcp port 80", "udp port 53",
        "port 80 or 443", "portrange 1-1023", "src port 53", "dst port 80", "tcp dst portrange 8000-9000",
        "host 10.0.0.1", "net 10.0.0.0/8", "net 192.168.0.0/16 or net 172.16.0.0/12", "src net 10.0.0.0 mask 255.0.0.0",
        "ip6 net fe80::/10", "ip6 host ::1", "ip multicast", "ip6 multicast", "ether broadcast", "ether multicast",
        "broadcast or multicast", "ip broadcast", "ether[0] & 1 != 0", "ether proto 0x88cc", "ip proto 89",
        "ip6 proto 58", "proto 17", "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
        "tcp[tcpflags] & tcp-push != 0", "ip[6:2] & 0x1fff = 0", "ip[6:2] & 0x1fff != 0", "icmp[icmptype] = icmp-echo",
        "icmp6[icmp6type] = icmp6-neighborsolicit", "len > 100", "len <= 64", "greater 500", "less 100",
        "len - 14 > 100", "ip[2:2] > 576", "udp[4:2] > 100", "tcp[12] & 0xf0 > 0x50",
        "ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) != 0", "ip6[6] = 17", "igmp", "pim", "vrrp",
        "esp or ah", "sctp", "stp", "iso", "udp and (port 67 or 68)", "not port 22 and not arp", "len % 4 = 0",
        "ip and ip[8] < 64", "(tcp or udp) and host 10.0.0.1 and not port 22", "ip6 protochain 58", "protochain 17",
        "ip protochain 89 or ip6 protochain 89", "decnet host 1.1 or decnet src 63.1023", "llc", "llc u or llc s",
        "host 10.0.0.1 and (10.0.0.2 or not 10.0.0.3)", "udp port 53 and (67 or (68))", "(tcp[0] + 1) * 2 = 4", "-(1) = 0xffffffff",
    ];

    // Ethernet, Linux cooked (SLL) and raw IP (LINKTYPE_RAW, LINKTYPE_IPV4/IPV6) captures of the corpus.
    internal static readonly string[] CorpusFiles =
    [
        "802.1ad_QinQ.pcap", "dns_tcp.pcap", "dns_udp.pcap", "icmpv6.pcap", "ipv4_tcp_http_xml.pcap", "ipv6-routing-header.pcap",
        "mpls-traceroute.pcap", "pppoe.pcap", "ssh.pcap", "syslog_udp.pcap", "dhcp-rfc3004.pcap", "pim-packet-assortment.pcap",
        "vrrp.pcap", "OSPFv3_with_AH.pcap", "IGMP_V1.pcap", "802.1w_rapid_STP.pcap", "arp-oobr.pcap", "mptcp-v1.pcap",
        "forces2.pcap", "resp_3_malicious.pcap", "babel.pcap", "babel_rtt.pcap", "gquic.pcap", "bgp-addpath.pcap",
        "LINKTYPE_IPV4.pcap", "LINKTYPE_IPV6.pcap", "nhrp.pcapng",
    ];

    private static string? CorpusDir()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "shared", "corpus", "tcpdump-tests");
            if (Directory.Exists(p)) return p;
        }
        return Directory.Exists("/work/shared/corpus/tcpdump-tests") ? "/work/shared/corpus/tcpdump-tests" : null;
    }

    /// <summary>(original length, captured length) of each record of a pcap file.</summary>
    private static List<(int Len, int CapLen)> Records(string path)
    {
        var list = new List<(int, int)>();
        using var r = CaptureReader.Open(path);
        while (r.TryRead(out var meta, out var data)) list.Add((meta.OriginalLength, data.Length));
        return list;
    }

    private static List<(int Len, int CapLen)> OurMatches(string path, string expr)
    {
        var list = new List<(int, int)>();
        using var r = CaptureReader.Open(path);
        PcapFilter? f = null;
        while (r.TryRead(out var meta, out var data))
        {
            int snap = r.Interfaces[meta.InterfaceId].SnapLength;
            if (snap > 0 && data.Length > snap) data = data[..snap]; // as libpcap's savefile reader cuts it
            f ??= PcapFilter.Compile(expr, meta.LinkType, (uint)r.Interfaces[meta.InterfaceId].SnapLength);
            if (f.Matches(data, meta.OriginalLength)) list.Add((meta.OriginalLength, data.Length));
        }
        return list;
    }

    [SkippableFact]
    public void Frames_kept_equal_tcpdumps_on_the_corpus()
    {
        Skip.IfNot(ExternalTool.Exists("tcpdump"), ExternalTool.Missing("tcpdump"));
        string? dir = CorpusDir();
        Skip.If(dir is null, "the tcpdump corpus (shared/corpus/tcpdump-tests) is not here");
        string tmp = Path.Combine(Path.GetTempPath(), $"softnet-filter-{Environment.ProcessId}.pcap");
        int compared = 0, bothRefused = 0, files = 0;
        long matchedFrames = 0;
        var failures = new List<string>();
        var skipped = new List<string>();
        try
        {
            foreach (string file in CorpusFiles)
            {
                string path = Path.Combine(dir!, file);
                if (!File.Exists(path)) { skipped.Add($"{file}: not in this corpus"); continue; }
                files++;
                foreach (string expr in Expressions)
                {
                    File.Delete(tmp);
                    var (exit, _, err) = ExternalTool.Run("tcpdump", "-O", "-r", path, "-w", tmp, "--", expr);
                    List<(int, int)>? ours = null;
                    string? ourError = null;
                    try { ours = OurMatches(path, expr); }
                    catch (FilterNotSupportedException e) { skipped.Add($"{file} [{expr}]: {e.Message}"); continue; }
                    catch (FilterException e) { ourError = e.Message; }
                    if (exit != 0)
                    {
                        if (ourError != null) bothRefused++;
                        else failures.Add($"{file} [{expr}]: tcpdump refused ({err.Trim()}), we matched {ours!.Count}");
                        continue;
                    }
                    if (ourError != null) { failures.Add($"{file} [{expr}]: we refused ({ourError})"); continue; }
                    var theirs = Records(tmp);
                    compared++;
                    matchedFrames += theirs.Count;
                    if (!theirs.SequenceEqual(ours!))
                        failures.Add($"{file} [{expr}]: tcpdump kept {theirs.Count} frames, we kept {ours!.Count}");
                }
            }
        }
        finally { File.Delete(tmp); }
        output.WriteLine($"{files} captures x {Expressions.Length} expressions: {compared} compared ({matchedFrames} frames kept), {bothRefused} refused by both, {failures.Count} differ");
        foreach (var f in failures) output.WriteLine("  DIFFERS " + f);
        foreach (var s in skipped) output.WriteLine("  skipped " + s);
        Assert.True(files >= 20, $"only {files} corpus captures found");
        Assert.Empty(failures);
    }

    private static string Dummy(string dir, uint linkType, uint snaplen)
    {
        string path = Path.Combine(dir, $"empty-{linkType}-{snaplen}.pcap");
        if (File.Exists(path)) return path;
        var h = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(h, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(16), snaplen);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(20), linkType);
        File.WriteAllBytes(path, h);
        return path;
    }

    private static readonly (string Link, uint LinkType)[] Links = [("ethernet", 1), ("sll", 113), ("sll2", 276), ("raw", 101)];

    private static string TcpdumpProgram(string dummy, string flag, string expr, out int exit)
    {
        var (e, stdout, _) = ExternalTool.Run("tcpdump", "-r", dummy, "-O", flag, "--", expr);
        exit = e;
        return stdout;
    }

    [SkippableFact]
    public void Programs_and_dump_formats_equal_tcpdump_O_d()
    {
        Skip.IfNot(ExternalTool.Exists("tcpdump"), ExternalTool.Missing("tcpdump"));
        string dir = Directory.CreateTempSubdirectory("softnet-filter-").FullName;
        int equal = 0;
        var failures = new List<string>();
        try
        {
            foreach (var (link, lt) in Links)
            {
                string dummy = Dummy(dir, lt, PcapFilter.DefaultSnaplen);
                foreach (string expr in Expressions)
                {
                    foreach (string flag in new[] { "-d", "-dd", "-ddd" })
                    {
                        if (flag != "-d" && expr.Length % 3 != 0) continue; // the dump formats on a third of them
                        string theirs = TcpdumpProgram(dummy, flag, expr, out int exit);
                        var ow = new StringWriter();
                        var ew = new StringWriter();
                        int ours = FilterCommand.Run(expr, null, link, flag.Length - 1, null, ow, ew);
                        if (exit != 0 && ours != 0) continue;
                        if (exit != ours || theirs != ow.ToString()) failures.Add($"[{link} {flag}] {expr}:\n{theirs}\n--- ours ---\n{ow}{ew}");
                        else equal++;
                    }
                }
            }
        }
        finally { Directory.Delete(dir, true); }
        output.WriteLine($"{equal} programs equal tcpdump's, {failures.Count} differ");
        foreach (var f in failures) output.WriteLine("  DIFFERS " + f);
        Assert.Empty(failures);
        Assert.True(equal > 300, $"only {equal} programs compared");
    }

    private static readonly Dictionary<string, uint> TestrunLinks = new(StringComparer.Ordinal)
    {
        ["EN10MB"] = 1, ["LINUX_SLL"] = 113, ["LINUX_SLL2"] = 276, ["RAW"] = 101, ["IPV4"] = 228, ["IPV6"] = 229,
    };

    [SkippableFact]
    public void Every_testrun_expression_compiles_to_tcpdumps_program()
    {
        Skip.IfNot(ExternalTool.Exists("tcpdump"), ExternalTool.Missing("tcpdump"));
        string? suite = LibpcapSuite();
        Skip.If(suite is null, "libpcap's TESTrun (shared/conformance/libpcap) is not here");
        string text = File.ReadAllText(Path.Combine(suite!, "TESTrun"));
        var scalars = new Dictionary<string, object?>(StringComparer.Ordinal) { ["nonexistent"] = "host.invalid." };
        string dir = Directory.CreateTempSubdirectory("softnet-filter-").FullName;
        int equal = 0, bothRefused = 0, unsupported = 0;
        var failures = new List<string>();
        try
        {
            foreach (var o in PerlData.ReadArray(text, "filter_accept_blocks", scalars))
            {
                var b = (Dictionary<string, object?>)o!;
                if (!TestrunLinks.TryGetValue(b["DLT"]?.ToString() ?? "", out uint lt)) continue;
                if (b.ContainsKey("netmask") || PerlData.Truthy(b.GetValueOrDefault("linuxext"))) continue;
                uint snaplen = b.TryGetValue("snaplen", out var sl) && sl is long l ? (uint)l : PcapFilter.DefaultSnaplen;
                string dummy = Dummy(dir, lt, snaplen);
                foreach (var alias in (List<object?>)b["aliases"]!)
                {
                    string expr = alias?.ToString() ?? "";
                    if (expr.StartsWith('_')) continue;
                    string theirs = TcpdumpProgram(dummy, "-d", expr, out int exit);
                    string ours;
                    try { ours = PcapFilter.Compile(expr, PcapFilter.ToDlt((LinkType)lt), snaplen).Image(); }
                    catch (FilterNotSupportedException) { unsupported++; continue; }
                    catch (FilterException e)
                    {
                        if (exit != 0) bothRefused++;
                        else failures.Add($"{b["name"]} [{expr}]: we refused ({e.Message}), tcpdump compiled it");
                        continue;
                    }
                    if (exit != 0) failures.Add($"{b["name"]} [{expr}]: tcpdump refused it");
                    else if (theirs != ours) failures.Add($"{b["name"]} [{expr}]:\n{theirs}--- ours ---\n{ours}");
                    else equal++;
                }
            }
            // The reject tests libpcap 1.10 does not reject (later range checks): tcpdump compiles them too.
            foreach (string expr in new[] { "proto 256", "ip proto 256", "byte 1 = 256", "link proto 65536", "link proto 1500", "decnet host 1.2.3", "ip6 protochain 256" })
            {
                TcpdumpProgram(Dummy(dir, 1, PcapFilter.DefaultSnaplen), "-d", expr, out int exit);
                Assert.True(exit == 0, $"tcpdump refuses '{expr}' (LibpcapConformanceTests.AcceptedByLibpcap110 is stale)");
            }
        }
        finally { Directory.Delete(dir, true); }
        output.WriteLine($"TESTrun expressions: {equal} programs equal tcpdump's, {bothRefused} refused by both, {unsupported} not supported here, {failures.Count} differ");
        foreach (var f in failures) output.WriteLine("  DIFFERS " + f);
        Assert.Empty(failures);
        Assert.True(equal >= 500, $"only {equal} TESTrun programs compared");
    }

    private static string? LibpcapSuite()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "shared", "conformance", "libpcap");
            if (File.Exists(Path.Combine(p, "TESTrun"))) return p;
        }
        return File.Exists("/work/shared/conformance/libpcap/TESTrun") ? "/work/shared/conformance/libpcap" : null;
    }

    [SkippableFact]
    public void Cli_counts_and_writes_what_tcpdump_keeps()
    {
        Skip.IfNot(ExternalTool.Exists("tcpdump"), ExternalTool.Missing("tcpdump"));
        string? dir = CorpusDir();
        Skip.If(dir is null, "the tcpdump corpus (shared/corpus/tcpdump-tests) is not here");
        string path = Path.Combine(dir!, "ssh.pcap");
        string outFile = Path.Combine(Path.GetTempPath(), $"softnet-filter-cli-{Environment.ProcessId}.pcap");
        try
        {
            var (exit, stdout, _) = ExternalTool.Run("tcpdump", "-r", path, "-n", "tcp[tcpflags] & tcp-push != 0");
            Assert.Equal(0, exit);
            int lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            var ow = new StringWriter();
            Assert.Equal(0, FilterCommand.Run("tcp[tcpflags] & tcp-push != 0", path, "ethernet", 1, outFile, ow, new StringWriter()));
            Assert.Equal(lines.ToString(System.Globalization.CultureInfo.InvariantCulture), ow.ToString().Trim());
            Assert.Equal(lines, Records(outFile).Count);
            Assert.True(lines > 0);
        }
        finally { File.Delete(outFile); }
    }
}
