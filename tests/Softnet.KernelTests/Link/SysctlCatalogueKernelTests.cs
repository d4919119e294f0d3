using Softnet.KernelTests.Support;
using Softnet.Link;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Link;

/// <summary>
/// The sysctl catalogue against the kernel: `sysctl -a` of a fresh namespace loads as a scenario's sysctl.conf, and a
/// file of values written to every key is refused by `sysctl -p` and by the scenario loader on the same lines with the
/// same words.
/// </summary>
public sealed class SysctlCatalogueKernelTests
{
    /// <summary>A namespace with a veth pair inside (its per-device keys besides lo's), and Softnet's copy of it.</summary>
    private static (Netns Kernel, string Dir) Fresh()
    {
        var k = Netns.Create("sn-sysctl");
        k.Check("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1");
        string dir = Path.Combine(Path.GetTempPath(), "softnet-sysctl-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "ns", "h"));
        File.WriteAllText(Path.Combine(dir, "links.batch"), "netns add h\nlink add v0 netns h type veth peer name v1 netns h\n");
        return (k, dir);
    }

    /// <summary>A message about a global net.core key (rmem_default, rmem_max: read-only in a namespace): a scenario
    /// sets those as the host, whose checks <see cref="GlobalSysctlKernelTests"/> compares.</summary>
    internal static bool Global(string message)
        => SysctlCatalogue.GlobalCore.Keys.Any(key => message.Contains($"\"{key}\"", StringComparison.Ordinal));

    /// <summary>`sysctl -p FILE` in the namespace: the messages it prints on stderr, one a line.</summary>
    private static List<string> KernelMessages(Netns ns, string file)
        => ns.Exec("sysctl", "-q", "-p", file).Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            // procps' warning about a repeated separator is not a refusal.
            .Where(l => !l.Contains("separators should not be repeated")).ToList();

    /// <summary>The scenario loader on FILE in a namespace like the kernel's: every refusal's message, as sysctl -p goes on.</summary>
    private static List<string> SoftnetMessages(string dir, string file)
    {
        var sc = ScenarioLoader.Load(dir);
        var msgs = new List<string>();
        ScenarioLoader.LoadSysctl(sc.Namespace("h")!, file, _ => true, e => msgs.Add(e.Reason));
        return msgs;
    }

    [SkippableFact]
    public void Sysctl_a_of_a_fresh_namespace_loads_as_a_scenario()
    {
        string? skip = Netns.Unavailable("sysctl");
        Skip.If(skip != null, skip);
        var (k, dir) = Fresh();
        using var _ = k;
        string dump = k.Exec("sysctl", "-a").Stdout;
        Assert.Contains("net.ipv4.conf.v0.rp_filter", dump);
        var lines = dump.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        // The network keys go back to the kernel: sysctl -p refuses only the read-only ones, and Softnet the same lines.
        string net = Path.Combine(dir, "net.conf");
        File.WriteAllLines(net, lines.Where(l => l.StartsWith("net.", StringComparison.Ordinal)));
        var kernel = KernelMessages(k, net).Where(m => !m.Contains("\"net.netfilter.nf_conntrack_max\"") && !Global(m)).ToList();
        var ours = SoftnetMessages(dir, net);
        Assert.Equal(kernel.Order(StringComparer.Ordinal), ours.Order(StringComparer.Ordinal));
        Assert.All(kernel, m => Assert.Contains("Invalid argument", m));
        // The whole dump (kernel.*, vm.*, fs.* are host keys: kept, not checked) less what was refused loads as is.
        var refused = kernel.Select(m => m.Split('"')[1]).ToHashSet(StringComparer.Ordinal);
        var hostReadOnly = lines.Select(l => l.Split(" =")[0]).Where(key => !key.StartsWith("net.", StringComparison.Ordinal)
            && SysctlCatalogue.Find(key, _ => false, out string? _)?.ReadOnly == true).ToHashSet(StringComparer.Ordinal);
        File.WriteAllLines(Path.Combine(dir, "ns", "h", "sysctl.conf"),
            lines.Where(l => !refused.Contains(l.Split(" =")[0]) && !hostReadOnly.Contains(l.Split(" =")[0])));
        var ns = ScenarioLoader.Load(dir).Namespace("h")!;
        Assert.Equal("1", ns.Sysctl("net.ipv4.icmp_echo_ignore_broadcasts"));
        Assert.Contains("kernel.hostname", ns.SysctlsNotModelled.Keys);
        Directory.Delete(dir, true);
    }

    public static TheoryData<string> Values() =>
    [
        "-2147483649", "-2147483648", "-1", "-0", "0", "1", "2", "3", "7", "255", "256", "1279", "1280", "65535", "65536",
        "8589934", "8589935", "2147483647", "2147483648", "4294967295", "4294967296", "18446744073709551615",
        "abc", "", "1 2", "1 2 3", "4096 1 1", "1x", "0x10", "010", "09", " 5", "5 #c", "0-3,5", "1024 2048",
        "00000000-00000000-00000000-0000000f", "NONE", "cubic", "::1", "1,1", "x,1", "1,x", "123456789",
    ];

    [SkippableTheory]
    [MemberData(nameof(Values))]
    public void Every_key_refuses_a_value_as_sysctl_p_does(string value)
    {
        string? skip = Netns.Unavailable("sysctl");
        Skip.If(skip != null, skip);
        var (k, dir) = Fresh();
        using var _ = k;
        // Every writable key of the namespace, in the order sysctl -a lists them, set to the same value.
        var keys = k.Exec("sysctl", "-aN").Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(key => key.StartsWith("net.", StringComparison.Ordinal)).Distinct().ToList();
        string file = Path.Combine(dir, "values.conf");
        File.WriteAllLines(file, keys.Select(key => $"{key} = {value}"));
        // nf_conntrack_max is read-only outside the first namespace; Softnet lets a scenario set conntrack's limit.
        var kernel = KernelMessages(k, file).Where(m => !m.Contains("\"net.netfilter.nf_conntrack_max\"") && !Global(m)).ToList();
        var ours = SoftnetMessages(dir, file).Where(m => !m.Contains("\"net.netfilter.nf_conntrack_max\"") && !Global(m)).ToList();
        var onlyKernel = kernel.Except(ours).ToList();
        var onlyOurs = ours.Except(kernel).ToList();
        Assert.True(onlyKernel.Count == 0 && onlyOurs.Count == 0,
            $"value '{value}': only the kernel refused\n  {string.Join("\n  ", onlyKernel)}\nonly Softnet refused\n  {string.Join("\n  ", onlyOurs)}");
        Directory.Delete(dir, true);
    }
}

/// <summary>
/// conf/all and conf/default as the kernel combines them, in the harness's order (links.batch's veth pair, then
/// sysctl.conf, then ip.batch's bridge): each device's value in effect read from the kernel (the device's own, and
/// all's where the path combines them) against what Softnet's namespace uses.
/// </summary>
public sealed class SysctlConfKernelTests
{
    private const string Conf =
        // devinet: default reaches devices never written (v0), not one written (v1); the bridge made later takes it.
        "net.ipv4.conf.v1.rp_filter = 0\nnet.ipv4.conf.default.rp_filter = 2\n" +
        "net.ipv4.conf.all.accept_source_route = 1\nnet.ipv4.conf.v1.accept_source_route = 0\n" +
        "net.ipv4.conf.default.accept_local = 1\nnet.ipv4.conf.v0.accept_local = 0\n" +
        // ip_forward writes every device (which then keeps it when default changes) and default.
        "net.ipv4.ip_forward = 1\nnet.ipv4.conf.default.forwarding = 0\nnet.ipv4.conf.v1.forwarding = 0\n" +
        // addrconf: default seeds devices made after it (the bridge), not those before (the veths).
        "net.ipv6.conf.default.hop_limit = 7\nnet.ipv6.conf.v1.hop_limit = 9\n" +
        "net.ipv6.conf.all.forwarding = 1\nnet.ipv6.conf.v0.forwarding = 0\n" +
        "net.ipv6.conf.default.disable_ipv6 = 1\n";

    [SkippableFact]
    public void All_and_default_combine_as_in_the_kernel()
    {
        string? skip = Netns.Unavailable("sysctl");
        Skip.If(skip != null, skip);
        string dir = Path.Combine(Path.GetTempPath(), "softnet-sysctl-conf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path.Combine(dir, "ns", "h"));
        File.WriteAllText(Path.Combine(dir, "links.batch"), "netns add h\nlink add v0 netns h type veth peer name v1 netns h\n");
        File.WriteAllText(Path.Combine(dir, "ns", "h", "sysctl.conf"), Conf);
        File.WriteAllText(Path.Combine(dir, "ns", "h", "ip.batch"), "link add br0 type bridge\n");
        using var k = Netns.Create("sn-sysctl-conf");
        k.Check("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1");
        string conf = Path.Combine(dir, "k.conf");
        File.WriteAllText(conf, Conf);
        k.Check("sysctl", "-q", "-p", conf);
        k.Check("ip", "link", "add", "br0", "type", "bridge");
        int K(string key) => int.Parse(k.Check("sysctl", "-n", key).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        var ns = ScenarioLoader.Load(dir).Namespace("h")!;
        var diffs = new List<string>();
        void Same<T>(string what, T kernel, T ours)
        {
            if (!EqualityComparer<T>.Default.Equals(kernel, ours)) diffs.Add($"{what}: kernel {kernel}, Softnet {ours}");
        }
        foreach (var name in new[] { "v0", "v1", "br0" })
        {
            var dev = ns.Device(name)!;
            // IN_DEV_FORWARD, IN_DEV_RPFILTER (max), IN_DEV_SOURCE_ROUTE (and), IN_DEV_ACCEPT_LOCAL (or).
            Same($"{name} forwarding", K($"net.ipv4.conf.{name}.forwarding") != 0, ns.Forwarding(dev));
            Same($"{name} rp_filter", Math.Max(K("net.ipv4.conf.all.rp_filter"), K($"net.ipv4.conf.{name}.rp_filter")), ns.RpFilter(dev));
            Same($"{name} accept_source_route", K("net.ipv4.conf.all.accept_source_route") != 0 && K($"net.ipv4.conf.{name}.accept_source_route") != 0, ns.AcceptSourceRoute(dev));
            Same($"{name} accept_local", K("net.ipv4.conf.all.accept_local") != 0 || K($"net.ipv4.conf.{name}.accept_local") != 0, ns.AcceptLocal(dev));
            // The device's own IPv6 values.
            Same($"{name} hop_limit", K($"net.ipv6.conf.{name}.hop_limit"), ns.HopLimit6(dev));
            Same($"{name} ipv6 forwarding", K($"net.ipv6.conf.{name}.forwarding") != 0, ns.DeviceForwarding6(dev));
            Same($"{name} disable_ipv6", K($"net.ipv6.conf.{name}.disable_ipv6") != 0, ns.Ipv6Disabled(dev));
        }
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
        Directory.Delete(dir, true);
    }
}

/// <summary>
/// The global net.core keys as the host's init_net checks them (<see cref="SysctlCatalogue.GlobalCore"/>): every value
/// Softnet refuses for one, `sysctl -w` in the root namespace refuses too. Only refused values are written, so the
/// host keeps its settings; should the kernel take one, the saved value goes back at once and the test fails.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(Transport.GlobalSysctlCollection.Name)]
public sealed class GlobalSysctlKernelTests
{
    [SkippableFact]
    public void The_host_refuses_what_softnet_refuses_for_a_global_key()
    {
        Skip.If(!Proc.IsRoot || !Proc.Exists("sysctl"), "needs root and sysctl");
        var taken = new List<string>();
        int refusals = 0;
        foreach (var (key, entry) in SysctlCatalogue.GlobalCore)
        {
            string path = "/proc/sys/" + key.Replace('.', '/');
            string saved = File.ReadAllText(path).Trim();
            foreach (string value in SysctlCatalogueKernelTests.Values())
            {
                if (value.Length == 0 || SysctlCatalogue.Check(entry, null, value, _ => null, 0) == SysctlWriteError.None) continue;
                refusals++;
                var r = Proc.Run("sysctl", "-q", "-w", $"{key}={value}");
                if (r.Exit == 0 || File.ReadAllText(path).Trim() != saved)
                {
                    File.WriteAllText(path, saved);
                    taken.Add($"{key} = {value}");
                }
            }
        }
        Assert.True(refusals > 20, $"only {refusals} refused values tried");
        Assert.True(taken.Count == 0, "the host took what Softnet refuses: " + string.Join(", ", taken));
    }
}
