using System.Globalization;

namespace Softnet.KernelTests.Support;

/// <summary>One count of <see cref="KernelPlacement"/>: the IPv4 packets of <paramref name="Flow"/> (null: all of them)
/// the namespace's PREROUTING saw on <paramref name="Cpu"/>.</summary>
public readonly record struct PlacementCount(string Ns, int Cpu, string? Flow, long Packets);

/// <summary>
/// Which CPU ran each namespace's receive of a run's IPv4 packets, measured inside the scenario's namespaces so that the
/// machine's other receive work (other tests, builds, helpers) does not count. With RPS or RFS, netif_rx_internal and
/// netif_receive_skb(_list)_internal queue the packet on the backlog of the CPU get_rps_cpu picked, and that CPU's
/// process_backlog runs __netif_receive_skb, ip_rcv and the PREROUTING hook; xt_cpu's cpu_mt compares
/// smp_processor_id() there. So a chain at the head of the raw table's PREROUTING (ahead of the scenario's own raw
/// rules, which may drop) counts, per CPU, every IPv4 packet the namespace received and each given flow's share.
/// The chain is taken out again before the dump (a raw table the scenario did not have is deleted), so iptables-save
/// shows only the scenario's rules.
/// </summary>
public sealed class KernelPlacement
{
    /// <summary>The counting chain's name in each namespace's raw table.</summary>
    public const string Chain = "snplace";

    /// <summary>The file <see cref="Collect"/> writes into the run's output folder.</summary>
    public const string FileName = "placement.txt";

    private readonly List<(string Ns, string Kernel, bool HadRaw)> _namespaces = [];
    private readonly IReadOnlyList<string> _flows;
    private readonly int _cpus;

    private KernelPlacement(IReadOnlyList<string> flows, int cpus)
    {
        _flows = flows;
        _cpus = cpus;
    }

    /// <summary>Puts the counting chain into every namespace: for each CPU below <paramref name="cpus"/> one rule
    /// counting all IPv4 packets and one per entry of <paramref name="flows"/> (iptables match options, e.g.
    /// "-p udp --sport 4000").</summary>
    public static KernelPlacement Install(IEnumerable<(string Ns, string Kernel)> namespaces, IReadOnlyList<string> flows, int cpus = 2)
    {
        var p = new KernelPlacement(flows, cpus);
        string rules = $"*raw\n:{Chain} - [0:0]\n-I PREROUTING 1 -j {Chain}\n" + string.Join("", ChainRules(flows, cpus).Select(r => r + "\n")) + "COMMIT\n";
        foreach (var (ns, kernel) in namespaces)
        {
            // Not `iptables-save -t raw`: iptables-nft prints a table it is asked for by name even where there is none.
            bool hadRaw = Proc.Check("ip", "netns", "exec", kernel, "iptables-save").Split('\n').Contains("*raw");
            p._namespaces.Add((ns, kernel, hadRaw));
            Restore(kernel, rules);
        }
        return p;
    }

    /// <summary>The counting chain's rules: per CPU the all-packets rule, then one per flow.</summary>
    private static IEnumerable<string> ChainRules(IReadOnlyList<string> flows, int cpus)
    {
        for (int cpu = 0; cpu < cpus; cpu++)
        {
            yield return $"-A {Chain} -m cpu --cpu {cpu}";
            foreach (var f in flows) yield return $"-A {Chain} -m cpu --cpu {cpu} {f}";
        }
    }

    /// <summary>
    /// The same counting chain written into a scenario folder for Softnet's replay: each namespace's iptables.save gets
    /// it at the head of raw PREROUTING (ahead of the scenario's own raw rules), a raw table added where there was
    /// none, as <see cref="Install"/> puts it into the kernel's namespaces. The replay's dump (OUTDIR/NS/iptables-save.txt,
    /// `iptables-save -c`) then holds Softnet's counts: <see cref="ReadDump"/>.
    /// </summary>
    public static void AddToScenario(string scenarioDir, IReadOnlyList<string> flows, int cpus = 2)
    {
        foreach (var ns in ScenarioFolder.Load(scenarioDir).Namespaces)
        {
            string path = Path.Combine(scenarioDir, "ns", ns, "iptables.save");
            var lines = File.Exists(path) ? File.ReadAllLines(path).ToList() : [];
            int raw = lines.FindIndex(l => l.Trim() == "*raw");
            if (raw < 0)
            {
                raw = lines.Count;
                lines.AddRange(["*raw", ":PREROUTING ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT"]);
            }
            int at = raw + 1;
            while (at < lines.Count && (lines[at].StartsWith(':') || lines[at].StartsWith('#') || lines[at].Trim().Length == 0)) at++;
            lines.InsertRange(at, [$":{Chain} - [0:0]", $"-A PREROUTING -j {Chain}", .. ChainRules(flows, cpus)]);
            File.WriteAllLines(path, lines);
        }
    }

    /// <summary>The counting chain's counts in one namespace's `iptables-save -c` text, in <see cref="ChainRules"/>'s order.</summary>
    private static List<PlacementCount> Counts(string ns, string saveC, IReadOnlyList<string> flows, int cpus)
    {
        var counts = saveC.Split('\n')
            .Where(l => l.Contains($" -A {Chain} ", StringComparison.Ordinal))
            .Select(l => long.Parse(l.AsSpan(1, l.IndexOf(':', StringComparison.Ordinal) - 1), CultureInfo.InvariantCulture)).ToList();
        if (counts.Count != cpus * (flows.Count + 1))
            throw new InvalidOperationException($"[{ns}] raw {Chain}: {counts.Count} rules, expected {cpus * (flows.Count + 1)}");
        var list = new List<PlacementCount>();
        for (int cpu = 0, i = 0; cpu < cpus; cpu++)
            for (int f = -1; f < flows.Count; f++, i++)
                list.Add(new PlacementCount(ns, cpu, f < 0 ? null : flows[f], counts[i]));
        return list;
    }

    /// <summary>Softnet's counts from the dump of a replay of a scenario <see cref="AddToScenario"/> wrote.</summary>
    public static List<PlacementCount> ReadDump(string outDir, string scenarioDir, IReadOnlyList<string> flows, int cpus = 2)
        => [.. ScenarioFolder.Load(scenarioDir).Namespaces.SelectMany(ns =>
            Counts(ns, File.ReadAllText(Path.Combine(outDir, ns, "iptables-save.txt")), flows, cpus))];

    /// <summary>Reads the counters into OUTDIR/<see cref="FileName"/> (lines "NS CPU PACKETS [FLOW]") and takes the chain
    /// out of every namespace again.</summary>
    public void Collect(string outDir)
    {
        var lines = new List<string>();
        foreach (var (ns, kernel, hadRaw) in _namespaces)
        {
            // iptables-save -c lists the chain's rules in order: per CPU the all-packets rule, then the flows.
            foreach (var c in Counts(ns, Proc.Check("ip", "netns", "exec", kernel, "iptables-save", "-c", "-t", "raw"), _flows, _cpus))
                lines.Add(c.Flow is null ? $"{ns} {c.Cpu} {c.Packets}" : $"{ns} {c.Cpu} {c.Packets} {c.Flow}");
            if (hadRaw) Restore(kernel, $"*raw\n-D PREROUTING -j {Chain}\n-F {Chain}\n-X {Chain}\nCOMMIT\n");
            else DeleteRawTable(kernel);
        }
        Directory.CreateDirectory(outDir);
        File.WriteAllLines(Path.Combine(outDir, FileName), lines);
    }

    /// <summary>The counts <see cref="Collect"/> wrote to <paramref name="outDir"/>.</summary>
    public static List<PlacementCount> Read(string outDir)
        => File.ReadAllLines(Path.Combine(outDir, FileName)).Where(l => l.Length > 0).Select(l =>
        {
            var t = l.Split(' ', 4);
            return new PlacementCount(t[0], int.Parse(t[1], CultureInfo.InvariantCulture), t.Length > 3 ? t[3] : null,
                long.Parse(t[2], CultureInfo.InvariantCulture));
        }).ToList();

    private static void Restore(string kernel, string rules)
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, rules);
            Proc.Check("ip", "netns", "exec", kernel, "iptables-restore", "--noflush", file);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>iptables-nft has no command that removes a table: NFT_MSG_DELTABLE for "ip raw" (which takes its chains
    /// with it) in an nfnetlink batch, sent from inside the namespace.</summary>
    private static void DeleteRawTable(string kernel) => Proc.Check("ip", "netns", "exec", kernel, "python3", "-c", DeleteRawScript);

    private const string DeleteRawScript = """
import socket, struct
NFNL_SUBSYS_NFTABLES, NFT_MSG_DELTABLE, NFTA_TABLE_NAME = 10, 2, 1
def msg(kind, flags, seq, family, payload=b'', res_id=0):
    body = struct.pack('=BBH', family, 0, socket.htons(res_id)) + payload
    return struct.pack('=IHHII', 16 + len(body), kind, flags, seq, 0) + body
name = b'raw\0'
attr = struct.pack('=HH', 4 + len(name), NFTA_TABLE_NAME) + name + b'\0' * (-len(name) % 4)
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.sendto(msg(0x10, 1, 1, 0, res_id=NFNL_SUBSYS_NFTABLES)  # NFNL_MSG_BATCH_BEGIN
         + msg(NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_DELTABLE, 1 | 4, 2, socket.AF_INET, attr)  # NLM_F_REQUEST | NLM_F_ACK
         + msg(0x11, 1, 3, 0, res_id=NFNL_SUBSYS_NFTABLES), (0, 0))  # NFNL_MSG_BATCH_END
reply = s.recv(65536)
kind, = struct.unpack_from('=H', reply, 4)
err, = struct.unpack_from('=i', reply, 16)
if kind != 2 or err != 0:  # NLMSG_ERROR, 0 is the ack
    raise SystemExit('NFT_MSG_DELTABLE ip raw: error %d' % err)
""";
}
