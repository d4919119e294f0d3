using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Transport;

/// <summary>Each TCP case's capture and the kernel's dump of it, made once per test run (two for the self-test), over
/// IPv4 (Scenarios/tcp-host) or IPv6 (<see cref="Tcp6KernelFixture"/>, Scenarios/tcp6-host).</summary>
public abstract class TcpKernelFixtureBase
{
    private readonly Dictionary<string, Lazy<(string? Dir, string? Error)>> _runs = [];
    private readonly bool _v6;
    private readonly string _outName;

    /// <summary>Why kernel tests skip here, or null.</summary>
    public string? SkipReason { get; } = TcpKernelRun.Unavailable();

    /// <summary>Results stay beside the test assembly for inspection: tcp-runs/&lt;case&gt;/{kernel,kernel2,softnet}
    /// (tcp6-runs for IPv6).</summary>
    public string OutRoot => Path.Combine(AppContext.BaseDirectory, _outName);

    public string ScenarioDir { get; }

    protected TcpKernelFixtureBase(string scenario, string outName, IEnumerable<string> names, bool v6)
    {
        ScenarioDir = Path.Combine(AppContext.BaseDirectory, "Scenarios", scenario);
        _outName = outName;
        _v6 = v6;
        foreach (var n in names)
            foreach (var tag in new[] { "kernel", "kernel2" })
                _runs[$"{n}/{tag}"] = new Lazy<(string?, string?)>(() => RunKernel(n, tag));
    }

    private readonly HashSet<string> _written = [];

    /// <summary>Writes the case's capture (once per test process, so an edited case is never read stale from an
    /// earlier run's file; the same file for every run in this one) and returns its path.</summary>
    public string Capture(string name)
    {
        string path = Path.Combine(OutRoot, $"{name}.pcapng");
        lock (_written)
        {
            if (_written.Add(name))
            {
                Directory.CreateDirectory(OutRoot);
                TcpCases.For(name, _v6).Write(path + ".tmp");
                File.Move(path + ".tmp", path, true);
            }
        }
        return path;
    }

    private (string?, string?) RunKernel(string name, string tag)
    {
        string dir = Path.Combine(OutRoot, name, tag);
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            // A prompt reader in every case: the SYN flood fills the request queue (tcp_conn_request's syncookies),
            // which no reader touches, and the cookie connection's data is then received as in any other case.
            string log = TcpKernelRun.Run(ScenarioDir, Capture(name), "server", dir, promptReader: true);
            File.WriteAllText(Path.Combine(dir, "injector.log"), log);
            TcpCompare.WriteTimeline(dir);
            return (dir, null);
        }
        catch (Exception e)
        {
            return (null, e.ToString());
        }
    }

    /// <summary>The kernel's dump of a case (<paramref name="tag"/> "kernel", or "kernel2" for a second run).</summary>
    public string Kernel(string name, string tag = "kernel")
    {
        Skip.If(SkipReason != null, SkipReason);
        var (dir, err) = _runs[$"{name}/{tag}"].Value;
        Assert.True(err == null, $"kernel run of {name} failed: {err}");
        return dir!;
    }

    /// <summary>Softnet's dump of a case: `softnet replay CAPTURE --scenario tcp-host --inject server --dump DIR`.</summary>
    public string Softnet(string name)
    {
        string dir = Path.Combine(OutRoot, name, "softnet");
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        using (ScenarioReplay.Run(ScenarioDir, Capture(name), "server", dir)) { }
        TcpCompare.WriteTimeline(dir);
        return dir;
    }
}

/// <summary>The IPv4 cases against Scenarios/tcp-host.</summary>
public sealed class TcpKernelFixture() : TcpKernelFixtureBase("tcp-host", "tcp-runs", TcpCases.Names, v6: false);

/// <summary>The IPv4 and IPv6 TCP cases share one collection, run alone after every parallel collection: the kernel's
/// timing (delayed ACKs, header-prediction hits, the reader's window) shifts when other tests — a second kernel reader,
/// the XDP tests' clang builds and JIT compiles — compete for the two CPUs, and two kernel runs then differ.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TcpKernelCollection : ICollectionFixture<TcpKernelFixture>, ICollectionFixture<Tcp6KernelFixture>
{
    public const string Name = "TcpKernel";
}

/// <summary>
/// The harness against the kernel alone: two kernel runs of the same capture normalise to the same frames,
/// sockets.txt and counters, and the normalised frames show the published test vectors
/// (/work/notes/tcp-receive-6.18.md §8).
/// </summary>
[Trait("Category", "Kernel")]
[Collection(TcpKernelCollection.Name)]
public sealed class TcpHarnessKernelTests(TcpKernelFixture fx)
{
    public static TheoryData<string> Cases() => [.. TcpCases.Names];

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Two_kernel_runs_normalise_to_the_same_result(string name)
    {
        var diffs = TcpCompare.Diff(fx.Kernel(name), fx.Kernel(name, "kernel2"), counterSource: fx.Kernel(name));
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
    }

    private List<TcpNormFrame> Sent(string name) => TcpCompare.Normalise(fx.Kernel(name)).Where(f => f.Key.StartsWith("tx ", StringComparison.Ordinal)).ToList();

    private static int Win(TcpNormFrame f) => int.Parse(f.Key.Split(" win=")[1].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>TV-1 and TV-5: SYN-ACK window 65160 with mss 1460, sackOK, TS, nop, ws 10; then windows 67, 70, 73, 75,
    /// 78, 79 on the ACKs of the first six segments; the client's FIN answered by one FIN|ACK.</summary>
    [SkippableFact]
    public void Kernel_shows_the_default_socket_vectors()
    {
        var tx = Sent("inorder");
        Assert.Contains("AS seq=0 ack=1 win=65160 len=0 ip(tos=0 df ttl=64 id=0) [mss 1460, sackok, ts */0, nop, ws 10]", tx[0].Key);
        Assert.Equal([67, 70, 73, 75, 78, 79], tx.Skip(1).Take(6).Select(Win));
        Assert.Contains(tx, f => f.Key.Contains(" AF seq=1 ack=34754 ", StringComparison.Ordinal));
    }

    /// <summary>TV-2 and TV-8: SO_RCVBUF 65536 gives ws 1 and raw windows 34028 … 40240 with a draining reader.</summary>
    [SkippableFact]
    public void Kernel_shows_the_rcvbuf_socket_vectors()
    {
        var tx = Sent("rcvbuf");
        Assert.Contains("win=65160", tx[0].Key);
        Assert.Contains("ws 1]", tx[0].Key);
        Assert.Equal([34028, 35476, 36924, 38372, 39820, 40240], tx.Skip(1).Take(6).Select(Win));
    }

    /// <summary>TV-13: 100 bytes on the third ACK are ACKed at once with window 64 (×1024).</summary>
    [SkippableFact]
    public void Kernel_acks_data_on_the_third_ack()
        => Assert.Contains(" A seq=1 ack=101 win=64 ", Sent("thirdack")[1].Key);

    /// <summary>TV-9: out-of-order segments get SACK blocks, newest first.</summary>
    [SkippableFact]
    public void Kernel_sacks_out_of_order_segments()
    {
        var tx = Sent("reorder");
        Assert.Contains("ack=1449 ", tx[2].Key);
        Assert.Contains("sack 2897-4345]", tx[2].Key);
        Assert.Contains("sack 5793-7241 2897-4345]", tx[3].Key);
        Assert.Contains("sack 5793-8689 2897-4345]", tx[4].Key);
    }
}

/// <summary>
/// Softnet against the kernel on each case: the server device's frames (normalised, in order), sockets.txt and the
/// Tcp/TcpExt counters Softnet's nstat.txt lists. Results in bin/.../tcp-runs/&lt;case&gt;/{kernel,softnet}, with
/// eth0.tcp.txt (the normalised timeline) in each for a diff.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(TcpKernelCollection.Name)]
public sealed class TcpReceiveKernelTests(TcpKernelFixture fx)
{
    public static TheoryData<string> Cases() => [.. TcpCases.Names];

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Softnet_matches_the_kernel(string name)
    {
        string kernel = fx.Kernel(name);
        var diffs = TcpCompare.Diff(kernel, fx.Softnet(name));
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
    }
}

/// <summary>The IPv6 cases against Scenarios/tcp6-host (the same listeners at 2001:db8:4d::1, the client at ::2).</summary>
public sealed class Tcp6KernelFixture() : TcpKernelFixtureBase("tcp6-host", "tcp6-runs", TcpCases.Names6, v6: true);

/// <summary>
/// TCP over IPv6 (tcp_v6_rcv, tcp_v6_send_synack, inet6_csk_xmit, tcp_v6_send_reset) against the kernel: each case's
/// frames on the server device (normalised as for IPv4, with the IPv6 header's traffic class, flow label and hop
/// limit in each frame's key), sockets.txt (peers as [addr]:port) and the Tcp/TcpExt and Ip6 counters. Results in
/// bin/.../tcp6-runs/&lt;case&gt;/{kernel,softnet}.
/// </summary>
[Trait("Category", "Kernel")]
[Collection(TcpKernelCollection.Name)]
public sealed class Tcp6ReceiveKernelTests(Tcp6KernelFixture fx)
{
    public static TheoryData<string> Cases() => [.. TcpCases.Names6];

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Softnet_matches_the_kernel_over_ipv6(string name)
    {
        string kernel = fx.Kernel(name);
        var diffs = TcpCompare.Diff(kernel, fx.Softnet(name), prefixes: ["Tcp", "Ip6", "Icmp6In"]);
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
    }

    /// <summary>The harness over IPv6 against the kernel alone: two runs of a capture normalise alike.</summary>
    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Two_kernel_runs_normalise_to_the_same_result_over_ipv6(string name)
    {
        var diffs = TcpCompare.Diff(fx.Kernel(name), fx.Kernel(name, "kernel2"), counterSource: fx.Kernel(name), prefixes: ["Tcp", "Ip6", "Icmp6In"]);
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
    }

    /// <summary>The kernel's IPv6 SYN-ACK: MSS 1440 (the route MTU less 60), traffic class and flow label 0, hop limit
    /// 64, window 45 × 1428.</summary>
    [SkippableFact]
    public void Kernel_shows_the_ipv6_syn_ack()
    {
        var tx = TcpCompare.Normalise(fx.Kernel("inorder")).Where(f => f.Key.StartsWith("tx ", StringComparison.Ordinal)).ToList();
        Assert.Contains("ip6(tc=0 fl=0 hlim=64) [mss 1440, sackok, ts */0, nop, ws 10]", tx[0].Key);
    }
}
