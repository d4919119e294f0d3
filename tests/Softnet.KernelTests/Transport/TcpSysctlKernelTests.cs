using Softnet.KernelTests.Support;
using Softnet.Topology;
using Xunit;

namespace Softnet.KernelTests.Transport;

/// <summary>
/// The TCP sysctls a listener's connections follow, each set in Scenarios/tcp-host's server through the kernel and
/// through Softnet on the same case, compared as the TCP receive tests compare (the server's frames normalised, its
/// sockets.txt and counters): tcp_timestamps 0 and 2, tcp_sack 0 on out-of-order data, tcp_dsack 0 on duplicate data,
/// tcp_synack_retries 0 on a late third ACK, tcp_max_syn_backlog on a SYN flood without syncookies, tcp_fastopen's
/// server side on a SYN with data and with cookies (IPv4 and IPv6),
/// tcp_window_scaling 0 and a
/// smaller tcp_rmem (the SYN-ACK's window and scale, the windows that follow).
/// </summary>
[Trait("Category", "Kernel")]
[Collection(TcpKernelCollection.Name)]
public sealed class TcpSysctlKernelTests
{
    public static TheoryData<string, string, string> Settings() => new()
    {
        { "timestamps-0", "inorder", "net.ipv4.tcp_timestamps = 0\n" },
        { "timestamps-2", "inorder", "net.ipv4.tcp_timestamps = 2\n" },
        { "sack-0", "reorder", "net.ipv4.tcp_sack = 0\n" },
        // Duplicate data is still answered at once (quick-ACK), but with no D-SACK block in the ACK.
        { "dsack-0", "duplicate", "net.ipv4.tcp_dsack = 0\n" },
        // The client's ACK comes 1.3 s after its SYN: with no SYN-ACK retransmission allowed the request is gone by then.
        { "synack-retries-0", "synack-rtx", "net.ipv4.tcp_synack_retries = 0\n" },
        // Without syncookies the request queue keeps its last quarter for proven peers: 13 of 20 SYNs get a SYN-ACK.
        { "max-syn-backlog-16", "synflood", "net.ipv4.tcp_syncookies = 0\nnet.ipv4.tcp_max_syn_backlog = 16\n" },
        { "max-syn-backlog-default", "synflood", "net.ipv4.tcp_syncookies = 0\n" },
        // Fast Open's server side: enabled (0x2) on every listener (0x400) without cookies (0x200), the SYN's data
        // reaches the reader at once; with the client flag alone (the default 1) it is not acknowledged.
        { "fastopen-server", "syn-data", "net.ipv4.tcp_fastopen = 1539\n" },
        { "fastopen-client-only", "syn-data", "" },
        { "fastopen-cookie-required", "syn-data", "net.ipv4.tcp_fastopen = 1027\n" },
        // Cookies required (no 0x200): a cookie request, a right and a wrong cookie (tcp_try_fastopen), the key set in
        // both so the cookies are the same bytes; then the case's key as the backup one (TCPFastOpenPassiveAltKey, the
        // primary cookie in the SYN-ACK).
        { "fastopen-cookies", "tfo-cookies", "net.ipv4.tcp_fastopen = 1027\nnet.ipv4.tcp_fastopen_key = " + TcpCases.FastOpenKey + "\n" },
        { "fastopen-queue-overflow", "tfo-overflow", "net.ipv4.tcp_fastopen = 1539\n" },
        { "fastopen-cookies-backup-key", "tfo-cookies", "net.ipv4.tcp_fastopen = 1027\nnet.ipv4.tcp_fastopen_key = 0badc0de-00000001-00000002-00000003," + TcpCases.FastOpenKey + "\n" },
        // tcp_wmem sizes what a writer may queue (sk_sndbuf, tcp_sndbuf_expand); the readers write nothing, and the
        // segments the server does send (ACKs, its FIN — tcp_send_fin forces its memory — and the FIN's retransmission,
        // which waits only on skbs still in flight) do not wait on it: the smallest send buffer leaves the wire as it was.
        { "wmem-small-fin-rtx", "fin-rtx", "net.ipv4.tcp_wmem = 4096 4096 4096\n" },
        // A redirect about the connection: one quoting a sequence outside the window is counted and ignored, one inside
        // it is acted on (the new gateway's address asked for) unless accept_redirects refuses it.
        { "accept-redirects-tcp", "tcp-redirect", "" },
        { "accept-redirects-0-tcp", "tcp-redirect", "net.ipv4.conf.all.accept_redirects = 0\nnet.ipv4.conf.default.accept_redirects = 0\n" },
        { "window-scaling-0", "inorder", "net.ipv4.tcp_window_scaling = 0\n" },
        // tcp_rmem[2] above this host's net.core.rmem_max (4 MB, the root namespace's, read-only here), which
        // tcp_select_initial_window also takes for the scale.
        { "rmem-max", "inorder", "net.ipv4.tcp_rmem = 4096 131072 8388608\n" },
        { "rmem-default", "inorder", "net.ipv4.tcp_rmem = 4096 262144 33554432\n" },
        { "rmem-small", "inorder", "net.ipv4.tcp_rmem = 4096 65536 8388608\n" },
    };

    private static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)), true);
        foreach (var d in Directory.GetDirectories(from)) Copy(d, Path.Combine(to, Path.GetFileName(d)));
    }

    /// <summary>The IPv6 side of the settings whose path differs there (tcp_v6_conn_request's Fast Open).</summary>
    public static TheoryData<string, string, string> Settings6() => new()
    {
        { "fastopen-cookies", "tfo-cookies", "net.ipv4.tcp_fastopen = 1027\nnet.ipv4.tcp_fastopen_key = " + TcpCases.FastOpenKey + "\n" },
    };

    [SkippableTheory]
    [MemberData(nameof(Settings))]
    public void A_tcp_sysctl_shapes_the_connection_as_in_the_kernel(string name, string tcpCase, string sysctls)
        => Run(name, tcpCase, sysctls, v6: false);

    [SkippableTheory]
    [MemberData(nameof(Settings6))]
    public void A_tcp_sysctl_shapes_an_ipv6_connection_as_in_the_kernel(string name, string tcpCase, string sysctls)
        => Run(name + "-v6", tcpCase, sysctls, v6: true);

    private static void Run(string name, string tcpCase, string sysctls, bool v6)
    {
        string? skip = TcpKernelRun.Unavailable();
        Skip.If(skip != null, skip);
        string root = Path.Combine(AppContext.BaseDirectory, "tcp-sysctl-runs", name);
        if (Directory.Exists(root)) Directory.Delete(root, true);
        string scn = Path.Combine(root, "scenario");
        Copy(Path.Combine(AppContext.BaseDirectory, "Scenarios", v6 ? "tcp6-host" : "tcp-host"), scn);
        File.AppendAllText(Path.Combine(scn, "ns", "server", "sysctl.conf"), sysctls);
        File.AppendAllText(Path.Combine(scn, "ns", "server", "ip.batch"), TcpCases.ServerRoutes(tcpCase));
        string capture = Path.Combine(root, tcpCase + ".pcapng");
        TcpFlow.ServerTsOffsetZero = sysctls.Contains("tcp_timestamps = 2");
        try { TcpCases.For(tcpCase, v6).Write(capture); }
        finally { TcpFlow.ServerTsOffsetZero = false; }
        string kernel = Path.Combine(root, "kernel"), softnet = Path.Combine(root, "softnet");
        // A prompt reader, as the receive tests' (Softnet's readers drain each segment before the next), except where
        // the SYN flood needs the accept queue to fill, and for the Fast Open overflow: a prompt reader's reads on the
        // children still in SYN_RECV make the kernel send SYN-ACKs there that Softnet does not model yet.
        File.WriteAllText(Path.Combine(root, "injector.log"), TcpKernelRun.Run(scn, capture, "server", kernel, promptReader: tcpCase is not ("synflood" or "tfo-overflow")));
        TcpCompare.WriteTimeline(kernel);
        using (ScenarioReplay.Run(scn, capture, "server", softnet)) { }
        TcpCompare.WriteTimeline(softnet);
        var diffs = TcpCompare.Diff(kernel, softnet, prefixes: TcpCases.ComparedCounters(tcpCase));
        Assert.True(diffs.Count == 0, string.Join('\n', diffs));
    }
}
