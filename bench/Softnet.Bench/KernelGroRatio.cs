using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Softnet.Gro;

namespace Softnet.Bench;

/// <summary>
/// The real kernel's merge ratio on the bench's 64-flow input: two network namespaces joined by a veth pair, GRO
/// on at the receiving end, the frames sent in bursts with AF_PACKET from the other end, the frames the receiving
/// device passes up counted with AF_PACKET (which sees them after GRO). A compact version of
/// tests/Softnet.KernelTests/Support/KernelGro.cs, whose notes explain the knobs: the sender needs `tso off`
/// (veth skips GRO for skbs from a TSO-capable peer), and gro_flush_timeout with napi_defer_hard_irqs keeps a
/// whole burst (below veth's 256-entry ring) in one GRO pass. veth gives no flow hash, so all flows share GRO
/// bucket 0 and MAX_GRO_SKBS, and a poll that uses veth's budget of 64 flushes everything on a HZ=250 kernel: the
/// Softnet figure on the same input, polled the same way, is the one to compare.
/// </summary>
public static class KernelGroRatio
{
    private const string TxDev = "sngrb-tx", RxDev = "sngrb-rx";
    private const int Burst = 192, Bursts = 20, GapMs = 50;

    public readonly record struct Result(double? Ratio, double? SoftnetRatio, string Detail);

    public static Result Measure(int flows)
    {
        // Bursts of whole rounds (64 flows: 3 segments each), well below the 256-entry veth ring.
        int rounds = Math.Max(1, Burst / flows) * Bursts;
        var frames = GroBench.FlowFrames(flows, rounds);
        int perBurst = Math.Max(1, Burst / flows) * flows;
        var bursts = frames.Chunk(perBurst).Select(c => (IReadOnlyList<byte[]>)c).ToList();
        long payloadIn = frames.Sum(f => (long)f.Length - 66);

        int hz = KernelHz();
        double softnet = SoftnetRatio(bursts, frames.Count, hz);

        string? why = Unavailable();
        if (why != null) return new Result(null, softnet, why);
        string tx = $"sngrb-tx-{Environment.ProcessId}", rx = $"sngrb-rx-{Environment.ProcessId}";
        string dir = Directory.CreateTempSubdirectory("softnet-bench-kgro-").FullName;
        try
        {
            Run("ip", "netns", "add", tx);
            Run("ip", "netns", "add", rx);
            foreach (var ns in new[] { tx, rx })
            {
                In(ns, "ip", "link", "set", "lo", "up");
                In(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1");
                In(ns, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1");
            }
            Run("ip", "link", "add", "name", TxDev, "netns", tx, "type", "veth", "peer", "name", RxDev, "netns", rx);
            In(tx, "ip", "link", "set", TxDev, "address", "00:00:00:00:00:01", "mtu", "9000", "up");
            In(rx, "ip", "link", "set", RxDev, "address", "00:00:00:00:00:02", "mtu", "9000", "up");
            In(tx, "ethtool", "-K", TxDev, "tso", "off");
            In(rx, "ethtool", "-K", RxDev, "gro", "on");
            In(rx, "sh", "-c", $"echo 15000000 > /sys/class/net/{RxDev}/gro_flush_timeout && echo 1 > /sys/class/net/{RxDev}/napi_defer_hard_irqs");
            if (!In(rx, "ethtool", "-k", RxDev).Contains("generic-receive-offload: on"))
                return new Result(null, softnet, "GRO did not turn on for the veth");

            string input = Path.Combine(dir, "in.bin"), script = Path.Combine(dir, "inject.py");
            using (var w = new BinaryWriter(File.Create(input)))
            {
                foreach (var b in bursts)
                {
                    w.Write(b.Count);
                    foreach (var f in b) { w.Write(f.Length); w.Write(f); }
                }
            }
            File.WriteAllText(script, Injector);
            string output = In(rx, "python3", script, $"/run/netns/{tx}", TxDev, RxDev, input, GapMs.ToString(CultureInfo.InvariantCulture));
            var parts = output.Trim().Split(' ');
            long framesOut = long.Parse(parts[0], CultureInfo.InvariantCulture), payloadOut = long.Parse(parts[1], CultureInfo.InvariantCulture);
            if (framesOut == 0) return new Result(null, softnet, "no frames came out of the veth");
            string detail = $"{frames.Count} segments in {bursts.Count} bursts of {perBurst}, {framesOut} frames out, Linux {Environment.OSVersion.Version}, HZ={hz}";
            if (payloadOut != payloadIn) detail += $"; payload out {payloadOut} != in {payloadIn} (frames lost)";
            return new Result((double)frames.Count / framesOut, softnet, detail);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or FormatException)
        {
            return new Result(null, softnet, "kernel run failed: " + e.Message);
        }
        finally
        {
            Exec("ip", "netns", "del", tx);
            Exec("ip", "netns", "del", rx);
            try { Directory.Delete(dir, true); } catch (IOException) { }
        }
    }

    /// <summary>
    /// Softnet on the same bursts as the kernel sees them from veth: CHECKSUM_NONE, no flow hash, polls of at most
    /// 64 frames (veth's NAPI weight); a poll that uses its budget flushes everything when HZ &lt; 1000 (the
    /// machine's CONFIG_HZ), the last poll of a burst completes with the gro_flush_timeout/defer settings above
    /// and the timer flushes what is left.
    /// </summary>
    private static double SoftnetRatio(List<IReadOnlyList<byte[]>> bursts, int segments, int hz)
    {
        var options = new GroOptions { Hz = hz, GroFlushTimeoutNs = 15_000_000, NapiDeferHardIrqs = 1, PerFlowStats = false };
        var pool = new Softnet.Packets.PagePool(segments + 8);
        var skbs = new Softnet.Packets.SkbPool(segments + 8);
        var engine = new GroEngine(options, new FreeingSink());
        long now = 1_000_000_000;
        foreach (var burst in bursts)
        {
            for (int i = 0; i < burst.Count;)
            {
                int n = Math.Min(64, burst.Count - i);
                for (int k = 0; k < n; k++, i++)
                {
                    byte[] f = burst[i];
                    if (!pool.TryRent(out int index)) throw new InvalidOperationException("pool exhausted");
                    f.CopyTo(pool.Slice(index, pool.Headroom, f.Length));
                    var skb = skbs.Build(pool, index, pool.Headroom, f.Length)!;
                    skb.ResetMacHeader();
                    engine.Receive(skb, now);
                }
                engine.PollComplete(n, 64, now);
                if (n == 64 && i == burst.Count) engine.PollComplete(0, 64, now); // the next poll finds the ring empty
            }
            while (engine.TimerDeadlineNs is long deadline)
            {
                now = Math.Max(now, deadline);
                engine.TimerFired(now);
            }
            now += GapMs * 1_000_000L;
        }
        return (double)segments / engine.Stats.DeliveredSkbs;
    }

    private sealed class FreeingSink : IGroSink
    {
        public void Deliver(ReadOnlySpan<Softnet.Packets.Skb> batch)
        {
            foreach (var s in batch) s.Free();
        }
    }

    /// <summary>CONFIG_HZ of the running kernel from /proc/config.gz; 250 (the common distribution value) if unknown.</summary>
    private static int KernelHz()
    {
        try
        {
            using var gz = new System.IO.Compression.GZipStream(File.OpenRead("/proc/config.gz"), System.IO.Compression.CompressionMode.Decompress);
            using var r = new StreamReader(gz);
            for (string? line; (line = r.ReadLine()) != null;)
                if (line.StartsWith("CONFIG_HZ=", StringComparison.Ordinal)) return int.Parse(line.AsSpan(10), CultureInfo.InvariantCulture);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return 250;
    }

    private static string? Unavailable()
    {
        if (!OperatingSystem.IsLinux()) return "needs Linux";
        if (geteuid() != 0) return "needs root (network namespaces)";
        foreach (var t in new[] { "ip", "ethtool", "python3", "sysctl" })
        {
            var (exit, _, _) = Exec("sh", "-c", $"command -v {t}");
            if (exit != 0) return $"{t} is not installed";
        }
        string probe = $"sngrb-probe-{Environment.ProcessId}";
        var (e2, _, err) = Exec("ip", "netns", "add", probe);
        if (e2 != 0) return $"`ip netns add` failed: {err.Trim()}";
        Exec("ip", "netns", "del", probe);
        return null;
    }

    private static string In(string ns, params string[] command) => Run(["ip", "netns", "exec", ns, .. command]);

    private static string Run(params string[] command)
    {
        var (exit, stdout, stderr) = Exec(command);
        if (exit != 0) throw new InvalidOperationException($"{string.Join(' ', command)} exited {exit}: {stderr.Trim()}");
        return stdout;
    }

    private static (int Exit, string Stdout, string Stderr) Exec(params string[] command)
    {
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {command[0]}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(true);
            throw new InvalidOperationException($"{command[0]} timed out");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    [DllImport("libc")]
    private static extern uint geteuid();

    /// <summary>Runs in the rx namespace: receive socket there, send socket in the tx namespace (setns), bursts
    /// sent back to back with a pause after each; prints the IPv4 TCP frames received and their TCP payload bytes.</summary>
    private const string Injector = """
import ctypes, os, select, socket, struct, sys, time
txns, txdev, rxdev, inp, gap = sys.argv[1:6]
gap = float(gap) / 1000.0
libc = ctypes.CDLL(None, use_errno=True)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
rx.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE
rx.bind((rxdev, 0))
fd = os.open(txns, os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    raise OSError(ctypes.get_errno(), 'setns ' + txns)
os.close(fd)
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.bind((txdev, 0))
frames = 0
payload = 0
def drain(wait, quiet):
    global frames, payload
    deadline = time.monotonic() + wait
    while True:
        left = wait if quiet else deadline - time.monotonic()
        r, _, _ = select.select([rx], [], [], max(left, 0))
        if not r:
            return
        f, addr = rx.recvfrom(1 << 18)
        if addr[2] == 4 or len(f) < 54 or f[23] != 6:
            continue
        ihl = (f[14] & 15) * 4
        tot = struct.unpack_from('!H', f, 16)[0]
        thl = (f[14 + ihl + 12] >> 4) * 4
        frames += 1
        payload += tot - ihl - thl
data = open(inp, 'rb').read()
off = 0
while off < len(data):
    n, = struct.unpack_from('<i', data, off); off += 4
    for _ in range(n):
        l, = struct.unpack_from('<i', data, off); off += 4
        tx.send(data[off:off + l]); off += l
    drain(gap, False)
drain(0.25, True)
print(frames, payload)
""";
}
