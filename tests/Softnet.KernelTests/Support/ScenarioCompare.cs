using System.Buffers.Binary;
using System.Text;
using Softnet.Capture;
using Softnet.Packets;
using Xunit;

namespace Softnet.KernelTests.Support;

/// <summary>What <see cref="ScenarioCompare"/> leaves out.</summary>
public sealed record ScenarioCompareOptions
{
    /// <summary>Files to skip, as "ns/file" (e.g. "outside/wire0.tx.pcap": the injecting peer's own frames).</summary>
    public IReadOnlySet<string> IgnoreFiles { get; init; } = new HashSet<string>();

    /// <summary>Only these namespaces (null: every namespace found in either folder).</summary>
    public IReadOnlySet<string>? Namespaces { get; init; }

    /// <summary>nstat.txt: only counters whose name starts with one of these (null: every counter Softnet writes).</summary>
    public IReadOnlyList<string>? NstatCompared { get; init; } = NstatScope.Compared;

    /// <summary>nstat.txt: counters whose name starts with one of these are left out even when
    /// <see cref="NstatCompared"/> takes them.</summary>
    public IReadOnlyList<string> NstatIgnored { get; init; } = NstatScope.NotYet;

    /// <summary>IPv6 flow labels compared by shape only (net.ipv6.auto_flowlabels on: the kernel hashes each flow with a
    /// per-boot key): in each pcap a nonzero label becomes 1, 2, ... in order of first use, so zero or not and which
    /// frames share a label are compared.</summary>
    public bool CanonicalFlowLabels { get; init; }
}

/// <summary>
/// Which nstat counters the scenario comparisons hold Softnet to: the one place to widen as paths land. A counter is
/// compared when Softnet's nstat.txt names it, its name starts with a <see cref="Compared"/> prefix and with no
/// <see cref="NotYet"/> prefix; the kernel's value is the expected one.
/// </summary>
public static class NstatScope
{
    /// <summary>Ip (and IpExt, reassembly and fragmentation), Icmp (the IcmpMsg* per-type lines are the kernel's alone:
    /// Softnet does not write them), Udp, Tcp.</summary>
    public static readonly string[] Compared = ["Ip", "Icmp", "Udp", "Tcp"];

    /// <summary>
    /// Not compared in the scenario comparisons: TcpExt* (the TCP receive harness, TcpCompare, holds the ones TCP
    /// receive moves to the kernel's on its own flows).
    /// </summary>
    public static readonly string[] NotYet = ["TcpExt"];

    public static bool Takes(string name, IReadOnlyList<string>? compared, IReadOnlyList<string> ignored)
        => (compared is null || compared.Any(p => name.StartsWith(p, StringComparison.Ordinal)))
           && !ignored.Any(p => name.StartsWith(p, StringComparison.Ordinal));
}

/// <summary>
/// Compares two dump folders in the `softnet replay --dump` layout: per namespace iptables-save.txt (tables,
/// chains, policies and rules with their counters; comment lines ignored), conntrack.txt (a set of entries with
/// the timeout column normalised and use=/id= dropped), nstat.txt (the counters Softnet writes, within
/// <see cref="NstatScope"/>), sockets.txt (line by line) and every &lt;dev&gt;.rx.pcap / &lt;dev&gt;.tx.pcap frame by
/// frame (timestamps ignored; the outer IP ID and header checksum of ICMP errors ignored, as the kernel keys
/// that ID randomly; a TCP checksum the kernel left CHECKSUM_PARTIAL completed). A missing pcap reads as an empty one.
/// </summary>
public static class ScenarioCompare
{
    /// <summary>Every difference, one line each, naming ns/file and the line or frame.</summary>
    public static List<string> Differences(string expectedDir, string actualDir, ScenarioCompareOptions? options = null)
    {
        options ??= new ScenarioCompareOptions();
        var diffs = new List<string>();
        var namespaces = SubDirs(expectedDir).Union(SubDirs(actualDir)).Where(n => options.Namespaces?.Contains(n) ?? true).Order().ToList();
        foreach (var ns in namespaces)
        {
            string e = Path.Combine(expectedDir, ns), a = Path.Combine(actualDir, ns);
            if (!options.IgnoreFiles.Contains($"{ns}/iptables-save.txt"))
                diffs.AddRange(CompareIptables(ns, Read(e, "iptables-save.txt"), Read(a, "iptables-save.txt")));
            // ip6tables-save -c: the same, but for the policy counters of OUTPUT and POSTROUTING chains, which the
            // kernel's own MLD reports (sent at link up, before the capture) move and Softnet, sending none, does not.
            if (!options.IgnoreFiles.Contains($"{ns}/ip6tables-save.txt"))
                diffs.AddRange(CompareIptables(ns, Read(e, "ip6tables-save.txt"), Read(a, "ip6tables-save.txt"), "ip6tables-save.txt", ["OUTPUT", "POSTROUTING"]));
            if (!options.IgnoreFiles.Contains($"{ns}/conntrack.txt"))
                diffs.AddRange(CompareConntrack(ns, Read(e, "conntrack.txt"), Read(a, "conntrack.txt")));
            if (!options.IgnoreFiles.Contains($"{ns}/ipset.save"))
                diffs.AddRange(CompareIpsets(ns, Read(e, "ipset.save"), Read(a, "ipset.save")));
            if (!options.IgnoreFiles.Contains($"{ns}/nstat.txt"))
                diffs.AddRange(CompareNstat(ns, Read(e, "nstat.txt"), Read(a, "nstat.txt"), options));
            if (!options.IgnoreFiles.Contains($"{ns}/sockets.txt"))
                diffs.AddRange(CompareSockets(ns, Read(e, "sockets.txt"), Read(a, "sockets.txt")));
            foreach (var list in RecentLists(e).Union(RecentLists(a)).Order())
                diffs.AddRange(CompareRecent($"{ns}/xt_recent/{list}", Read(Path.Combine(e, "xt_recent"), list), Read(Path.Combine(a, "xt_recent"), list)));
            var pcaps = Pcaps(e).Union(Pcaps(a)).Order();
            foreach (var p in pcaps)
                if (!options.IgnoreFiles.Contains($"{ns}/{p}"))
                {
                    List<byte[]> ef = ReadFrames(Path.Combine(e, p)), af = ReadFrames(Path.Combine(a, p));
                    if (options.CanonicalFlowLabels) { CanonicalFlowLabels(ef); CanonicalFlowLabels(af); }
                    diffs.AddRange(ComparePcap($"{ns}/{p}", ef, af));
                }
        }
        return diffs;
    }

    /// <summary>Fails with every difference listed (expected = first folder).</summary>
    public static void AssertSame(string expectedDir, string actualDir, ScenarioCompareOptions? options = null)
    {
        var d = Differences(expectedDir, actualDir, options);
        if (d.Count > 0)
            Assert.Fail($"{d.Count} difference(s) between {expectedDir} (expected) and {actualDir} (actual):\n" + string.Join('\n', d.Take(60)));
    }

    private static IEnumerable<string> SubDirs(string dir)
        => Directory.Exists(dir) ? Directory.GetDirectories(dir).Select(Path.GetFileName).OfType<string>() : [];

    private static IEnumerable<string> Pcaps(string dir)
        => Directory.Exists(dir) ? Directory.GetFiles(dir, "*.pcap").Select(Path.GetFileName).OfType<string>() : [];

    private static string? Read(string dir, string file)
    {
        string p = Path.Combine(dir, file);
        return File.Exists(p) ? File.ReadAllText(p) : null;
    }

    private static IEnumerable<string> RecentLists(string dir)
    {
        string d = Path.Combine(dir, "xt_recent");
        return Directory.Exists(d) ? Directory.GetFiles(d).Select(Path.GetFileName).OfType<string>() : [];
    }

    // ---- nstat, sockets

    /// <summary>nstat.txt: every counter Softnet's (actual) file names, within the options' scope, must have the
    /// kernel's (expected) value. The kernel prints many counters Softnet does not model; those are not compared.</summary>
    private static IEnumerable<string> CompareNstat(string ns, string? expected, string? actual, ScenarioCompareOptions options)
    {
        string f = $"{ns}/nstat.txt";
        if (expected is null || actual is null)
        {
            if (expected is not null || actual is not null) yield return $"{f}: {(expected is null ? "only Softnet" : "only the kernel")} has it";
            yield break;
        }
        var e = Softnet.Telemetry.SnmpMib.ParseNstat(expected);
        var a = Softnet.Telemetry.SnmpMib.ParseNstat(actual);
        foreach (var (name, value) in a)
        {
            if (!NstatScope.Takes(name, options.NstatCompared, options.NstatIgnored)) continue;
            if (!e.TryGetValue(name, out long want)) yield return $"{f}: {name}: the kernel has no such counter (Softnet {value})";
            else if (want != value) yield return $"{f}: {name}: expected {want}, actual {value}";
        }
    }

    /// <summary>sockets.txt line by line (runs of blanks compared as one): each socket line, then what its reader got.</summary>
    private static IEnumerable<string> CompareSockets(string ns, string? expected, string? actual)
    {
        string f = $"{ns}/sockets.txt";
        if (expected is null && actual is null) yield break;
        if (expected is null || actual is null)
        {
            yield return $"{f}: {(expected is null ? "only Softnet" : "only the kernel")} has it";
            yield break;
        }
        static List<string> Lines(string text) => text.Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Trim().Length > 0)
            .Select(l => (l.StartsWith(' ') ? "  " : "") + string.Join(' ', l.Split(' ', StringSplitOptions.RemoveEmptyEntries))).ToList();
        var e = Lines(expected);
        var a = Lines(actual);
        for (int i = 0; i < Math.Max(e.Count, a.Count); i++)
        {
            if (i >= e.Count) yield return $"{f}: line {i + 1} only in actual: `{a[i]}`";
            else if (i >= a.Count) yield return $"{f}: line {i + 1} missing in actual: `{e[i]}`";
            else if (e[i] != a[i]) yield return $"{f}: line {i + 1}: expected `{e[i]}`, actual `{a[i]}`";
        }
    }

    // ---- ipset save, /proc/net/xt_recent

    /// <summary>`ipset save`: per set its type (the create line's first two words) and its elements with their
    /// counters, as sets (the kernel prints elements in hash order, and create options such as bucketsize and initval
    /// that only it has).</summary>
    private static IEnumerable<string> CompareIpsets(string ns, string? expected, string? actual)
    {
        static SortedSet<string> Norm(string? text)
        {
            var set = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var raw in (text ?? "").Split('\n'))
            {
                var w = raw.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (w.Length < 3) continue;
                if (w[0] == "create") set.Add($"create {w[1]} {w[2]}");
                else if (w[0] == "add") set.Add(string.Join(' ', w));
            }
            return set;
        }
        var e = Norm(expected);
        var a = Norm(actual);
        foreach (var l in e.Except(a)) yield return $"{ns}/ipset.save: missing: {l}";
        foreach (var l in a.Except(e)) yield return $"{ns}/ipset.save: extra: {l}";
    }

    /// <summary>/proc/net/xt_recent/NAME: per address its TTL, oldest_pkt index and how many stamps it holds, as a set
    /// (the stamps are each side's jiffies; the kernel lists by hash bucket).</summary>
    private static IEnumerable<string> CompareRecent(string file, string? expected, string? actual)
    {
        static SortedSet<string> Norm(string? text)
        {
            var set = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var raw in (text ?? "").Split('\n'))
            {
                var w = raw.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                // src=A ttl: T last_seen: J oldest_pkt: I s1, s2, ...
                if (w.Length < 8 || !w[0].StartsWith("src=", StringComparison.Ordinal)) continue;
                set.Add($"{w[0]} ttl={w[2]} oldest_pkt={w[6]} stamps={w.Length - 7}");
            }
            return set;
        }
        if (expected is null || actual is null)
        {
            yield return $"{file}: {(expected is null ? "only Softnet" : "only the kernel")} has this list";
            yield break;
        }
        var e = Norm(expected);
        var a = Norm(actual);
        foreach (var l in e.Except(a)) yield return $"{file}: missing: {l}";
        foreach (var l in a.Except(e)) yield return $"{file}: extra: {l}";
    }

    // ---- iptables-save -c

    /// <summary>One table of an iptables-save text: chain headers and rules by chain, each with its file line.</summary>
    public sealed class SavedTable
    {
        public Dictionary<string, (string Header, int Line)> Chains { get; } = [];
        public Dictionary<string, List<(string Rule, int Line)>> Rules { get; } = [];
    }

    /// <summary>Parses iptables-save output into tables (comments and blank lines skipped).</summary>
    public static Dictionary<string, SavedTable> ParseSave(string text)
    {
        var tables = new Dictionary<string, SavedTable>();
        SavedTable? cur = null;
        int n = 0;
        foreach (var raw in text.Split('\n'))
        {
            n++;
            string line = raw.TrimEnd('\r').Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            if (line[0] == '*') { cur = new SavedTable(); tables[line[1..]] = cur; continue; }
            if (cur is null || line == "COMMIT") continue;
            if (line[0] == ':')
            {
                string name = line[1..].Split(' ')[0];
                cur.Chains[name] = (line, n);
                continue;
            }
            // "[p:b] -A CHAIN ..." or "-A CHAIN ..."
            var tokens = line.Split(' ');
            int ai = Array.IndexOf(tokens, "-A");
            string chain = ai >= 0 && ai + 1 < tokens.Length ? tokens[ai + 1] : "?";
            if (!cur.Rules.TryGetValue(chain, out var list)) cur.Rules[chain] = list = [];
            list.Add((line, n));
        }
        return tables;
    }

    private static IEnumerable<string> CompareIptables(string ns, string? expected, string? actual, string file = "iptables-save.txt",
        string[]? policyCountersIgnored = null)
    {
        string f = $"{ns}/{file}";
        if (expected is null || actual is null)
        {
            if ((expected ?? "").Trim().Length > 0 || (actual ?? "").Trim().Length > 0 || (expected is null) != (actual is null))
                yield return $"{f}: {(expected is null ? "missing in expected" : "missing in actual")}";
            yield break;
        }
        var e = ParseSave(expected);
        var a = ParseSave(actual);
        foreach (var t in e.Keys.Union(a.Keys).Order())
        {
            if (!e.TryGetValue(t, out var et)) { yield return $"{f}: table *{t} only in actual"; continue; }
            if (!a.TryGetValue(t, out var at)) { yield return $"{f}: table *{t} only in expected"; continue; }
            foreach (var c in et.Chains.Keys.Union(at.Chains.Keys).Order())
            {
                bool inE = et.Chains.TryGetValue(c, out var eh), inA = at.Chains.TryGetValue(c, out var ah);
                if (!inE) yield return $"{f} *{t}: chain {c} only in actual (line {ah.Line}: {ah.Header})";
                else if (!inA) yield return $"{f} *{t}: chain {c} only in expected (line {eh.Line}: {eh.Header})";
                else if (Header(eh.Header) != Header(ah.Header)) yield return $"{f} *{t}: chain {c}: expected `{eh.Header}` (line {eh.Line}), actual `{ah.Header}` (line {ah.Line})";
                string Header(string h) => policyCountersIgnored?.Contains(c) == true && h.IndexOf(" [", StringComparison.Ordinal) is int i and > 0 ? h[..i] : h;
                var er = et.Rules.GetValueOrDefault(c) ?? [];
                var ar = at.Rules.GetValueOrDefault(c) ?? [];
                for (int i = 0; i < Math.Max(er.Count, ar.Count); i++)
                {
                    if (i >= er.Count) yield return $"{f} *{t}: chain {c} rule {i + 1} only in actual (line {ar[i].Line}): {ar[i].Rule}";
                    else if (i >= ar.Count) yield return $"{f} *{t}: chain {c} rule {i + 1} only in expected (line {er[i].Line}): {er[i].Rule}";
                    else if (er[i].Rule != ar[i].Rule)
                        yield return $"{f} *{t}: chain {c} rule {i + 1}: expected `{er[i].Rule}` (line {er[i].Line}), actual `{ar[i].Rule}` (line {ar[i].Line})";
                }
            }
        }
    }

    // ---- conntrack -L

    /// <summary>A conntrack -L line with the timeout (third column) replaced by "T" and a timestamped entry's age by
    /// "delta-time=D" (both count wall-clock seconds since the frames), use= and the entry id= dropped.</summary>
    public static string NormaliseConntrack(string line)
    {
        var t = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).ToList();
        if (t.Count > 2 && t[2].All(char.IsAsciiDigit)) t[2] = "T";
        for (int i = 0; i < t.Count; i++)
            if (t[i].StartsWith("delta-time=", StringComparison.Ordinal)) t[i] = "delta-time=D";
        // `id=` before mark=/use= is an ICMP id (part of the tuple); after them it is the entry id of `-o id`.
        int tail = t.FindIndex(x => x.StartsWith("mark=", StringComparison.Ordinal) || x.StartsWith("use=", StringComparison.Ordinal));
        var kept = t.Where((x, i) => !x.StartsWith("use=", StringComparison.Ordinal) && !(tail >= 0 && i > tail && x.StartsWith("id=", StringComparison.Ordinal))).ToList();
        MaskTunnelSourcePort(kept);
        return string.Join(' ', kept);
    }

    /// <summary>A VXLAN tunnel's outer flow (UDP to 8472 or 4789 from a source port in the local port range): the port is
    /// the flow hash keyed with the kernel's boot-time secret, so it is written as H in both tuples. The number of such
    /// entries still has to agree: one per inner flow the hash told apart.</summary>
    private static void MaskTunnelSourcePort(List<string> t)
    {
        if (t.Count == 0 || t[0] != "udp") return;
        int sport = t.FindIndex(x => x.StartsWith("sport=", StringComparison.Ordinal));
        int dport = t.FindIndex(x => x.StartsWith("dport=", StringComparison.Ordinal));
        if (sport < 0 || dport < 0 || t[dport] is not ("dport=8472" or "dport=4789")) return;
        if (!int.TryParse(t[sport].AsSpan(6), out int port) || port is < 32768 or > 60999) return;
        string reply = "dport=" + port;
        int back = t.FindIndex(dport + 1, x => x == reply);
        t[sport] = "sport=H";
        if (back >= 0) t[back] = "dport=H";
    }

    /// <summary>The normalised entries of a conntrack -L text, sorted.</summary>
    public static List<string> ConntrackEntries(string? text)
        => (text ?? "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith("conntrack v", StringComparison.Ordinal))
            .Select(NormaliseConntrack).Order(StringComparer.Ordinal).ToList();

    private static IEnumerable<string> CompareConntrack(string ns, string? expected, string? actual)
    {
        var e = ConntrackEntries(expected);
        var a = ConntrackEntries(actual);
        var left = new List<string>(a);
        foreach (var x in e)
            if (!left.Remove(x)) yield return $"{ns}/conntrack.txt: entry only in expected: {x}";
        foreach (var x in left)
            yield return $"{ns}/conntrack.txt: entry only in actual: {x}";
    }

    // ---- pcaps

    /// <summary>Each IPv6 frame's nonzero flow label replaced by its rank of first use in <paramref name="frames"/>;
    /// no checksum covers the label.</summary>
    public static void CanonicalFlowLabels(List<byte[]> frames)
    {
        var seen = new Dictionary<uint, uint>();
        foreach (var f in frames)
        {
            if (f.Length < 14 + 40 || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x86DD) continue;
            uint word = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(14)), label = word & 0xFFFFF;
            if (label == 0) continue;
            if (!seen.TryGetValue(label, out uint rank)) seen[label] = rank = (uint)seen.Count + 1;
            BinaryPrimitives.WriteUInt32BigEndian(f.AsSpan(14), word & 0xFFF0_0000 | rank);
        }
    }

    /// <summary>The frames of a pcap/pcapng file (empty when it does not exist).</summary>
    public static List<byte[]> ReadFrames(string path)
    {
        var frames = new List<byte[]>();
        if (!File.Exists(path) || new FileInfo(path).Length == 0) return frames;
        using var r = CaptureReader.Open(path);
        while (r.TryRead(out _, out var data)) frames.Add(data.ToArray());
        return frames;
    }

    /// <summary>A copy of an Ethernet frame with the parts the kernel varies blanked: for an IPv4 ICMP error
    /// (types 3, 4, 5, 11, 12), echo reply or ICMP fragment past the first, the IP ID and header checksum. A TCP checksum left CHECKSUM_PARTIAL is completed
    /// (<see cref="CompletePartialTcpChecksum"/>).</summary>
    public static byte[] Mask(byte[] frame)
    {
        var f = (byte[])frame.Clone();
        CompletePartialTcpChecksum(f);
        NormaliseIpTimestamps(f);
        // An IPv6 fragment: the identification of what the kernel cuts itself is ipv6_select_ident's keyed hash.
        if (f.Length >= 14 + 48 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x86DD && f[14 + 6] == 44)
            f.AsSpan(14 + 40 + 4, 4).Clear();
        // A VXLAN datagram a tunnel device built (DF clear): its IP ID comes from ip_idents and its UDP source port from
        // the flow hash, both keyed with boot-time random secrets; the header checksum covers the ID, the UDP checksum
        // the port (and the kernel leaves it CHECKSUM_PARTIAL: veth shows the pseudo-header sum, Softnet the whole).
        if (f.Length >= 14 + 20 + 8 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800 && f[14 + 9] == 17
            && (f[14 + 6] & 0x40) == 0 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + (f[14] & 0x0f) * 4 + 2)) is 8472 or 4789
            && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + (f[14] & 0x0f) * 4)) is >= 32768 and <= 60999)
        {
            int ihl = (f[14] & 0x0f) * 4;
            f[14 + 4] = f[14 + 5] = 0;
            f[14 + 10] = f[14 + 11] = 0;
            f[14 + ihl] = f[14 + ihl + 1] = 0;
            f[14 + ihl + 6] = f[14 + ihl + 7] = 0;
            // The inner frame is masked as any frame is (an ICMP error or echo reply inside keeps its random IP ID).
            int inner = 14 + ihl + 8 + 8;
            if (f.Length > inner + 14)
                Mask(f[inner..]).CopyTo(f, inner);
        }
        if (f.Length >= 14 + 20 + 1 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800 && f[14 + 9] == 1)
        {
            int ihl = (f[14] & 0x0f) * 4;
            // Echo replies too: the ICMP socket does not set DF, so their ID is also the per-destination random one.
            // A fragment past the first carries no ICMP type to tell: its ID is masked whatever it is (the fragments
            // of an echo reply the kernel cut share the reply's random ID).
            bool laterFragment = (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 6)) & 0x1FFF) != 0;
            if (f.Length > 14 + ihl && (laterFragment || f[14 + ihl] is 0 or 3 or 4 or 5 or 11 or 12))
            {
                f[14 + 4] = f[14 + 5] = 0;
                f[14 + 10] = f[14 + 11] = 0;
            }
        }
        return f;
    }

    /// <summary>
    /// IPv4 timestamp options hold each side's clock (the kernel's real time, Softnet's replay clock): the 32-bit time of
    /// every filled entry (those before the pointer) is zeroed, in the header and in an ICMP error's quoted header,
    /// and a checksum covering them that was right is redone (one that was wrong stays wrong). Pointers, flags,
    /// overflow counts and addresses are left to compare.
    /// </summary>
    public static void NormaliseIpTimestamps(byte[] f)
    {
        if (f.Length < 14 + 20 || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x0800) return;
        var ip = f.AsSpan(14);
        int hl = (ip[0] & 0x0f) * 4;
        if (hl <= 20 || hl > ip.Length) return;
        bool headerOk = Checksum.Verify(ip[..hl]);
        if (ZeroTimestamps(ip) && headerOk)
        {
            ip[10] = ip[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Checksum.Compute(ip[..hl]));
        }
        if (ip[9] != 1 || ip.Length < hl + 8 + 20 || ip[hl] is not (3 or 4 or 5 or 11 or 12)) return;
        int total = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(ip[2..]), ip.Length);
        if (total < hl + 8) return;
        var icmp = ip[hl..total];
        bool icmpOk = Checksum.Verify(icmp);
        if (ZeroTimestamps(icmp[8..]) && icmpOk)
        {
            icmp[2] = icmp[3] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
        }
    }

    /// <summary>Zeroes the time values of the filled entries of a timestamp option (68) in the IPv4 header at the start
    /// of <paramref name="ip"/>; true when there was one.</summary>
    private static bool ZeroTimestamps(Span<byte> ip)
    {
        if (ip.Length < 20) return false;
        int hl = (ip[0] & 0x0f) * 4;
        if (hl <= 20 || hl > ip.Length) return false;
        bool found = false;
        for (int i = 20; i < hl;)
        {
            byte t = ip[i];
            if (t == 0) break;
            if (t == 1) { i++; continue; }
            if (i + 1 >= hl) break;
            int len = ip[i + 1];
            if (len < 2 || i + len > hl) break;
            if (t == 68 && len >= 4)
            {
                found = true;
                int ptr = Math.Min((int)ip[i + 2], len + 1);
                bool withAddress = (ip[i + 3] & 0xF) != 0;
                int step = withAddress ? 8 : 4, at = withAddress ? 4 : 0;
                for (int e = 4; e + step <= ptr - 1; e += step) ip.Slice(i + e + at, 4).Clear();
            }
            i += len;
        }
        return found;
    }

    /// <summary>
    /// The kernel builds some TCP segments with CHECKSUM_PARTIAL: REJECT --reject-with tcp-reset stores only the
    /// folded pseudo-header sum in the checksum field (nf_reject_ip_tcphdr_put: ~tcp_v4_check(len, saddr, daddr, 0))
    /// and leaves the rest to the device. veth advertises NETIF_F_HW_CSUM, so validate_xmit_skb never completes it,
    /// and __dev_forward_skb hands the peer the skb still CHECKSUM_PARTIAL (trusted, never verified): both packet
    /// sockets capture the partial value. NAT on such a segment keeps the field the pseudo-header sum of the new
    /// addresses (inet_proto_csum_replace4). Softnet writes the finished checksum, what a NIC would send. So a field
    /// that equals exactly the pseudo-header sum of its own frame is replaced by the complete checksum; a frame
    /// whose field is already complete is left as it is (completing a complete checksum changes nothing).
    /// </summary>
    public static void CompletePartialTcpChecksum(byte[] f)
    {
        // IPv6 (no extension headers): tcp_v6_send_response's resets are CHECKSUM_PARTIAL the same way
        // (__tcp_v6_send_check).
        if (f.Length >= 14 + 40 + 20 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x86DD && f[14 + 6] == 6)
        {
            var ip6 = f.AsSpan(14);
            int plen = BinaryPrimitives.ReadUInt16BigEndian(ip6[4..]);
            if (plen < 20 || 40 + plen > ip6.Length) return;
            var seg = ip6.Slice(40, plen);
            uint pseudo6 = Checksum.PseudoHeaderV6(ip6[8..24], ip6[24..40], 6, seg.Length);
            if (BinaryPrimitives.ReadUInt16BigEndian(seg[16..]) != (ushort)pseudo6) return;
            BinaryPrimitives.WriteUInt16BigEndian(seg[16..], 0);
            BinaryPrimitives.WriteUInt16BigEndian(seg[16..], Checksum.Compute(seg, pseudo6));
            return;
        }
        if (f.Length < 14 + 20 || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x0800 || f[14 + 9] != 6) return;
        var ip = f.AsSpan(14);
        int ihl = (ip[0] & 0x0f) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < 20 || total < ihl + 20 || total > ip.Length) return;
        if ((BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x3fff) != 0) return; // fragments carry no whole segment
        var tcp = ip[ihl..total];
        uint pseudo = Checksum.PseudoHeaderV4(ip[12..16], ip[16..20], 6, tcp.Length);
        if (BinaryPrimitives.ReadUInt16BigEndian(tcp[16..]) != (ushort)pseudo) return;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], 0);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Checksum.Compute(tcp, pseudo));
    }

    private static IEnumerable<string> ComparePcap(string name, List<byte[]> e, List<byte[]> a)
    {
        if (e.Count != a.Count)
            yield return $"{name}: expected {e.Count} frame(s), actual {a.Count}";
        for (int i = 0; i < Math.Min(e.Count, a.Count); i++)
        {
            var me = Mask(e[i]);
            var ma = Mask(a[i]);
            if (me.AsSpan().SequenceEqual(ma)) continue;
            int at = 0;
            while (at < Math.Min(me.Length, ma.Length) && me[at] == ma[at]) at++;
            yield return $"{name}: frame {i + 1} differs at byte {at} (lengths {e[i].Length}/{a[i].Length}): expected {Describe(e[i])}, actual {Describe(a[i])}";
        }
        for (int i = a.Count; i < e.Count; i++) yield return $"{name}: frame {i + 1} missing in actual: {Describe(e[i])}";
        for (int i = e.Count; i < a.Count; i++) yield return $"{name}: frame {i + 1} only in actual: {Describe(a[i])}";
    }

    /// <summary>A one-line summary of an Ethernet/IPv4 frame for messages.</summary>
    public static string Describe(byte[] f)
    {
        if (f.Length < 14) return $"runt ({f.Length} bytes)";
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12));
        if (type != 0x0800 || f.Length < 34) return $"ethertype 0x{type:x4}, {f.Length} bytes";
        var ip = f.AsSpan(14);
        int ihl = (ip[0] & 0x0f) * 4;
        string src = $"{ip[12]}.{ip[13]}.{ip[14]}.{ip[15]}", dst = $"{ip[16]}.{ip[17]}.{ip[18]}.{ip[19]}";
        var l4 = ip.Length > ihl ? ip[ihl..] : [];
        var sb = new StringBuilder();
        switch (ip[9])
        {
            case 6 when l4.Length >= 20:
                sb.Append($"TCP {src}:{BinaryPrimitives.ReadUInt16BigEndian(l4)} > {dst}:{BinaryPrimitives.ReadUInt16BigEndian(l4[2..])} [");
                string flags = "FSRPAUEC";
                for (int b = 0; b < 8; b++) if ((l4[13] & (1 << b)) != 0) sb.Append(flags[b]);
                sb.Append($"] seq {BinaryPrimitives.ReadUInt32BigEndian(l4[4..])} ack {BinaryPrimitives.ReadUInt32BigEndian(l4[8..])}");
                break;
            case 17 when l4.Length >= 8:
                sb.Append($"UDP {src}:{BinaryPrimitives.ReadUInt16BigEndian(l4)} > {dst}:{BinaryPrimitives.ReadUInt16BigEndian(l4[2..])}");
                break;
            case 1 when l4.Length >= 2:
                sb.Append($"ICMP {src} > {dst} type {l4[0]} code {l4[1]}");
                break;
            default:
                sb.Append($"IP proto {ip[9]} {src} > {dst}");
                break;
        }
        sb.Append($" ttl {ip[8]} id 0x{BinaryPrimitives.ReadUInt16BigEndian(ip[4..]):x4}, {f.Length} bytes");
        return sb.ToString();
    }
}
