using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Gro;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Pipeline;
using Softnet.Telemetry;
using Softnet.Transport;

namespace Softnet.Topology.Default;

/// <summary>The two paths of the default scenario, as node B's NIC receives them.</summary>
public enum TwoNodePath
{
    /// <summary>iperf3 from node A's host to node B's host: one pass through node B's stack to a host socket.</summary>
    Native,
    /// <summary>iperf3 from a pod on node A to pod B over flannel's VXLAN: the outer datagram goes up to the VXLAN
    /// socket, the inner frame enters the stack again on flannel.1, is forwarded through conntrack and the
    /// kube-proxy/flannel rules, crosses cni0 and the veth into pod B's namespace.</summary>
    Pod,
}

/// <summary>What one path cost node B, from a replay of that path's traffic alone.</summary>
public sealed record TwoNodePathFigures(
    TwoNodePath Path,
    string Name,
    long Segments,
    long BytesRead,
    double ReceiverBitsPerSecond,
    double GroMergeRatio,
    double IpRcvPerSegment,
    long ConntrackEntries,
    long Drops,
    IReadOnlyList<(string Stage, double NsPerPacket)> CpuPerSegment)
{
    public double TotalNsPerSegment => CpuPerSegment.LastOrDefault(s => s.Stage == "total").NsPerPacket;

    /// <summary>What one core would carry at this cost: payload bits per segment over CPU time per segment.</summary>
    public double CoreCapacityBitsPerSecond => Segments > 0 && TotalNsPerSegment > 0 ? BytesRead * 8.0 / Segments / (TotalNsPerSegment * 1e-9) : 0;
}

/// <summary>The default replay: the combined run (both paths at once, as node B sees them) and each path alone.</summary>
public sealed class TwoNodeRun : IDisposable
{
    public required ScenarioReport Combined { get; init; }
    public required IReadOnlyList<TwoNodePathFigures> Paths { get; init; }

    /// <summary>One line: which path is slower per segment, and the stages that make the difference.</summary>
    public string Verdict()
    {
        var native = Paths.First(p => p.Path == TwoNodePath.Native);
        var pod = Paths.First(p => p.Path == TwoNodePath.Pod);
        if (native.TotalNsPerSegment <= 0 || pod.TotalNsPerSegment <= 0) return "no CPU time was sampled: the runs were too short to compare the paths";
        var (slow, fast) = pod.TotalNsPerSegment >= native.TotalNsPerSegment ? (pod, native) : (native, pod);
        var deltas = slow.CpuPerSegment.Where(s => s.Stage != "total")
            .Select(s => (s.Stage, Delta: s.NsPerPacket - fast.CpuPerSegment.FirstOrDefault(f => f.Stage == s.Stage).NsPerPacket))
            .Where(d => d.Delta > 0).OrderByDescending(d => d.Delta).Take(3)
            .Select(d => $"{d.Stage} +{d.Delta:F0} ns");
        return $"{slow.Name} costs node B {slow.TotalNsPerSegment / fast.TotalNsPerSegment:F1}x the CPU of {fast.Name} per segment " +
               $"({slow.TotalNsPerSegment:F0} vs {fast.TotalNsPerSegment:F0} ns): ip_rcv runs {pod.IpRcvPerSegment:F2} times per pod segment " +
               $"against {native.IpRcvPerSegment:F2} per native one (VXLAN decapsulation sends the inner frame through the stack again " +
               $"on flannel.1, then it is forwarded across cni0 and a veth into the pod), GRO merges {pod.GroMergeRatio:F1} segments per skb " +
               $"against {native.GroMergeRatio:F1}; most of the difference: {string.Join(", ", deltas)}";
    }

    public void Dispose() => Combined.Dispose();
}

/// <summary>
/// The embedded default scenario of `softnet replay` with no capture: two Kubernetes nodes joined by a wire, flannel
/// VXLAN between their pod subnets, kube-proxy's rules (100 generated services) and flannel's on node B, iperf3-style
/// TCP streams native→native and pod→pod generated on the fly and replayed into node B's NIC.
/// </summary>
public static class TwoNodeOverlay
{
    public const string Inject = "nodeB:eth0";
    public const string SourceName = "embedded default scenario (two Kubernetes nodes, flannel VXLAN)";
    private const string ResourcePrefix = "Softnet.Default.TwoNode/";

    public static string PathName(TwoNodePath p) => p == TwoNodePath.Native ? "native->native" : "pod->pod over VXLAN";

    /// <summary>The scenario folder, written once under the temporary directory (the same contents give the same
    /// folder); node B's iptables.save is kube-proxy's generated ruleset with flanneld's rules added.</summary>
    public static string Extract()
    {
        var asm = typeof(TwoNodeOverlay).Assembly;
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in asm.GetManifestResourceNames())
        {
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal)) continue;
            using var s = asm.GetManifestResourceStream(name)!;
            using var r = new StreamReader(s);
            files[name[ResourcePrefix.Length..].Replace('\\', '/')] = r.ReadToEnd();
        }
        if (files.Count == 0) throw new InvalidOperationException("the default scenario is missing from the assembly");
        string flannel = files["ns/nodeB/iptables.flannel"];
        files.Remove("ns/nodeB/iptables.flannel");
        files["ns/nodeB/iptables.save"] = MergeRules(KubeProxyRules.Generate(new KubeProxyOptions { Services = 100 }).Text, flannel);

        var hash = new StringBuilder();
        foreach (var (k, v) in files) hash.Append(k).Append('\0').Append(v).Append('\0');
        string id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(hash.ToString())))[..12];
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "softnet-default-" + id);
        if (System.IO.Directory.Exists(dir)) return dir;
        string tmp = dir + ".tmp-" + Environment.ProcessId;
        foreach (var (k, v) in files)
        {
            string path = System.IO.Path.Combine(tmp, k);
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
            File.WriteAllText(path, v);
        }
        try { System.IO.Directory.Move(tmp, dir); }
        catch (IOException) when (System.IO.Directory.Exists(dir)) { System.IO.Directory.Delete(tmp, true); }
        return dir;
    }

    /// <summary>Adds each table block of <paramref name="extra"/> to the same table of <paramref name="rules"/>:
    /// chain declarations after the table line, rules before its COMMIT (appended, as flanneld appends them).</summary>
    internal static string MergeRules(string rules, string extra)
    {
        var decls = new Dictionary<string, List<string>>();
        var appends = new Dictionary<string, List<string>>();
        string? table = null;
        foreach (var raw in extra.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.StartsWith('*')) { table = line[1..]; decls[table] = []; appends[table] = []; }
            else if (line == "COMMIT") table = null;
            else if (table is not null && line.StartsWith(':')) decls[table].Add(line);
            else if (table is not null && line.StartsWith("-A ")) appends[table].Add(line);
        }
        var sb = new StringBuilder();
        table = null;
        var seen = new HashSet<string>();
        foreach (var raw in rules.Split('\n'))
        {
            string line = raw.TrimEnd('\r');
            if (line.Length == 0 && sb.Length > 0 && raw == "") { sb.Append('\n'); continue; }
            if (line == "COMMIT" && table is not null && appends.TryGetValue(table, out var a))
                foreach (var r in a) sb.Append(r).Append('\n');
            sb.Append(line).Append('\n');
            if (line.StartsWith('*'))
            {
                table = line[1..];
                seen.Add(table);
                if (decls.TryGetValue(table, out var d)) foreach (var c in d) sb.Append(c).Append('\n');
            }
            else if (line == "COMMIT") table = null;
        }
        string text = sb.ToString().TrimEnd('\n') + "\n";
        foreach (var t in decls.Keys.Where(t => !seen.Contains(t)))
            throw new InvalidOperationException($"the generated rules have no *{t} table to add flanneld's rules to");
        return text;
    }

    /// <summary>iperf3 -c from node A: two TCP streams per path, <paramref name="bytesPerPath"/> each path, at
    /// <paramref name="bitsPerSecond"/> per path. The pod's segments fit flannel.1's MTU 1450 (MSS 1398).</summary>
    public static IReadOnlyList<GeneratorOptions> Streams(IEnumerable<TwoNodePath> paths, long bytesPerPath, double bitsPerSecond)
    {
        var list = new List<GeneratorOptions>();
        foreach (var p in paths)
            list.Add(p == TwoNodePath.Native
                ? new GeneratorOptions
                {
                    Streams = 2, Bytes = bytesPerPath, Rate = Rate.FromBits(bitsPerSecond), ServerKey = 0, Seed = 1,
                    Client = System.Net.IPAddress.Parse("10.0.0.1"), Server = System.Net.IPAddress.Parse("10.0.0.2"),
                    ClientMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0a-00-00-01"),
                    ServerMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0a-00-00-02"),
                }
                : new GeneratorOptions
                {
                    Streams = 2, Bytes = bytesPerPath, Rate = Rate.FromBits(bitsPerSecond), ServerKey = 0, Seed = 2, Mss = 1398,
                    Client = System.Net.IPAddress.Parse("10.244.0.2"), Server = System.Net.IPAddress.Parse("10.244.1.2"),
                    // flannel.1's MACs: the inner frame goes from node A's VXLAN device to node B's.
                    ClientMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0f-00-00-01"),
                    ServerMac = System.Net.NetworkInformation.PhysicalAddress.Parse("02-00-0f-00-00-02"),
                });
        return list;
    }

    /// <summary>Node B's NIC's view of <paramref name="paths"/>: the pod path's frames wrapped by node A's flannel.1.</summary>
    public static ICaptureReader Traffic(IEnumerable<TwoNodePath> paths, long bytesPerPath, double bitsPerSecond)
        => new OverlayEncapReader(new GeneratorCaptureReader(Streams(paths, bytesPerPath, bitsPerSecond)),
            Ipv4.Parse("10.244.0.0"), 16, "02:00:0a:00:00:01", "02:00:0a:00:00:02", Ipv4.Parse("10.0.0.1"), Ipv4.Parse("10.0.0.2"));

    /// <summary>Replays both paths together (the report, dumps and JSON), then each path alone for its figures.</summary>
    public static TwoNodeRun Run(ReplayOptions replay, string dumpDir = "", long bytesPerPath = 16 << 20, double bitsPerSecond = 2e9)
    {
        string dir = Extract();
        var options = new ScenarioOptions { Replay = replay };
        TwoNodePath[] both = [TwoNodePath.Native, TwoNodePath.Pod];
        var combined = ScenarioReplay.Run(dir, () => Traffic(both, bytesPerPath, bitsPerSecond), SourceName, Inject, dumpDir, options);
        var figures = new List<TwoNodePathFigures>();
        foreach (var p in both)
        {
            // A --trace follows the combined run only: each path alone replays the same packets again.
            using var alone = ScenarioReplay.Run(dir, () => Traffic([p], bytesPerPath, bitsPerSecond), SourceName, Inject, "",
                options with { Replay = replay with { Tracer = null } });
            figures.Add(Figures(p, alone));
        }
        combined.Replay.Sections.Add(new TwoNodePathsSection(figures));
        return new TwoNodeRun { Combined = combined, Paths = figures };
    }

    private static TwoNodePathFigures Figures(TwoNodePath p, ScenarioReport r)
    {
        var nodeB = r.Scenario.Namespace("nodeB")!;
        var sockNs = r.Scenario.Namespace(p == TwoNodePath.Native ? "nodeB" : "podB")!;
        var sock = sockNs.Sockets.All.OfType<TcpListenSock>().First();
        var stats = sock.Stats;
        long segments = r.Replay.PacketsIn;
        var gro = r.Replay.Sections.OfType<GroStats>().FirstOrDefault();
        var cpu = r.Replay.Sections.OfType<StageTimeSection>().FirstOrDefault()?.PerPacket() ?? [];
        long drops = r.Replay.Drops.Total + r.Scenario.Namespaces.Where(n => n.Name != "nodeA").Sum(n => n.Counters.Drops.Total);
        return new TwoNodePathFigures(p, PathName(p), segments, stats.Bytes, stats.BitsPerSecond, gro?.MergeRatio ?? 1,
            segments > 0 ? (double)nodeB.Mib[SnmpCounter.IpInReceives] / segments : 0,
            nodeB.HasIptables && nodeB.Netfilter.ConntrackEnabled ? nodeB.Netfilter.Conntrack.Count : 0, drops, cpu);
    }
}

/// <summary>The `paths` section of the default replay's JSON report: each path alone, as node B paid for it.</summary>
public sealed class TwoNodePathsSection(IReadOnlyList<TwoNodePathFigures> paths) : IReportSection
{
    public string Key => "paths";

    public void WriteJson(Utf8JsonWriter w)
    {
        w.WriteStartArray();
        foreach (var p in paths)
        {
            w.WriteStartObject();
            w.WriteString("path", p.Path == TwoNodePath.Native ? "native_to_native" : "pod_to_pod_vxlan");
            w.WriteNumber("segments", p.Segments);
            w.WriteNumber("bytes_read", p.BytesRead);
            w.WriteNumber("receiver_bits_per_second", Math.Round(p.ReceiverBitsPerSecond));
            w.WriteNumber("core_capacity_bits_per_second", Math.Round(p.CoreCapacityBitsPerSecond));
            w.WriteNumber("gro_merge_ratio", Math.Round(p.GroMergeRatio, 3));
            w.WriteNumber("ip_rcv_per_segment", Math.Round(p.IpRcvPerSegment, 3));
            w.WriteNumber("conntrack_entries", p.ConntrackEntries);
            w.WriteNumber("drops", p.Drops);
            w.WriteStartObject("cpu_ns_per_segment");
            foreach (var (stage, ns) in p.CpuPerSegment) w.WriteNumber(stage, Math.Round(ns, 1));
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
