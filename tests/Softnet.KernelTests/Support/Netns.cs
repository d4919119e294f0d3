using System.Diagnostics;

namespace Softnet.KernelTests.Support;

/// <summary>Runs external programs for the kernel tests (ip, ethtool, sysctl, python3).</summary>
public static class Proc
{
    /// <summary>True when <paramref name="name"/> is found on PATH.</summary>
    public static bool Exists(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, name)));

    /// <summary>Runs a program to completion; returns exit code, stdout and stderr.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(string file, IEnumerable<string> args, int timeoutMs = 60_000)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutMs))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in {timeoutMs} ms");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    public static (int Exit, string Stdout, string Stderr) Run(string file, params string[] args) => Run(file, (IEnumerable<string>)args);

    /// <summary>Runs a program and throws with its stderr when it fails.</summary>
    public static string Check(string file, params string[] args)
    {
        var (exit, stdout, stderr) = Run(file, args);
        if (exit != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited {exit}: {stderr.Trim()}");
        return stdout;
    }

    /// <summary>True when the process runs as uid 0 (network namespaces need CAP_SYS_ADMIN / CAP_NET_ADMIN).</summary>
    public static bool IsRoot => OperatingSystem.IsLinux() && geteuid() == 0;

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern uint geteuid();
}

/// <summary>
/// A named network namespace (`ip netns add`), deleted on Dispose. Commands run inside it with
/// `ip netns exec`. Names are unique per process so parallel test runs do not collide.
/// </summary>
public sealed class Netns : IDisposable
{
    private static int s_counter;
    private bool _deleted;

    public string Name { get; }

    /// <summary>Path of the namespace file that setns(2) accepts.</summary>
    public string Path => $"/run/netns/{Name}";

    private Netns(string name) => Name = name;

    /// <summary>A unique name: prefix-pid-n (kept short: interface-free, but `ip netns` lists it).</summary>
    public static string UniqueName(string prefix)
        => $"{prefix}-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";

    /// <summary>Creates a fresh namespace with its loopback up.</summary>
    public static Netns Create(string prefix)
    {
        var ns = new Netns(UniqueName(prefix));
        Proc.Check("ip", "netns", "add", ns.Name);
        try
        {
            ns.Check("ip", "link", "set", "lo", "up");
        }
        catch
        {
            ns.Dispose();
            throw;
        }
        return ns;
    }

    /// <summary>Null when namespaces can be used here; otherwise why not (for Skip messages).</summary>
    public static string? Unavailable(params string[] tools)
    {
        if (!OperatingSystem.IsLinux()) return "kernel tests need Linux";
        if (!Proc.IsRoot) return "kernel tests need root (network namespaces)";
        foreach (var t in tools.Prepend("ip"))
            if (!Proc.Exists(t)) return $"{t} is not installed";
        string probe = UniqueName("sn-probe");
        var (exit, _, err) = Proc.Run("ip", "netns", "add", probe);
        if (exit != 0) return $"`ip netns add` failed: {err.Trim()}";
        Proc.Run("ip", "netns", "del", probe);
        return null;
    }

    /// <summary>Runs a command inside the namespace.</summary>
    public (int Exit, string Stdout, string Stderr) Exec(params string[] command)
        => ExecTimed(60_000, command);

    /// <summary>Runs a command inside the namespace with a time limit in milliseconds.</summary>
    public (int Exit, string Stdout, string Stderr) ExecTimed(int timeoutMs, params string[] command)
        => Proc.Run("ip", new[] { "netns", "exec", Name }.Concat(command), timeoutMs);

    /// <summary>Starts a command inside the namespace in the background (a server); its output is discarded.</summary>
    public Process Start(params string[] command)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", Name }.Concat(command)) psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {string.Join(' ', command)} in {Name}");
        _ = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        return p;
    }

    /// <summary>Runs a command inside the namespace and throws when it fails.</summary>
    public string Check(params string[] command)
    {
        var (exit, stdout, stderr) = Exec(command);
        if (exit != 0)
            throw new InvalidOperationException($"[{Name}] {string.Join(' ', command)} exited {exit}: {stderr.Trim()}");
        return stdout;
    }

    /// <summary>Runs a shell snippet inside the namespace (for redirections into /sys and /proc).</summary>
    public string Sh(string script) => Check("sh", "-c", script);

    /// <summary>sysctl -w key=value inside the namespace.</summary>
    public void Sysctl(string key, string value) => Check("sysctl", "-q", "-w", $"{key}={value}");

    /// <summary>Writes a value into a file (e.g. /sys/class/net/DEV/gro_flush_timeout) as seen from inside.</summary>
    public void WriteFile(string path, string value) => Sh($"echo {value} > {path}");

    /// <summary>Reads a file as seen from inside (sysfs shows the namespace's own devices).</summary>
    public string ReadFile(string path) => Check("cat", path).Trim();

    /// <summary>Stops IPv6 autoconfiguration, router solicitations and DAD from adding frames to captures.</summary>
    public void DisableIpv6()
    {
        Sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        Sysctl("net.ipv6.conf.default.disable_ipv6", "1");
    }

    /// <summary>Creates a veth pair with one end in <paramref name="a"/> and the other in <paramref name="b"/>,
    /// both up. Names are at most 15 characters (IFNAMSIZ).</summary>
    public static void CreateVeth(Netns a, string nameA, Netns b, string nameB, int queues = 1)
    {
        // "ip link add a type veth" would parse `a` as a keyword: always spell out `name`.
        string q = queues.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Proc.Check("ip", "link", "add", "name", nameA, "netns", a.Name, "numtxqueues", q, "numrxqueues", q, "type", "veth",
            "peer", "name", nameB, "netns", b.Name, "numtxqueues", q, "numrxqueues", q);
        a.Check("ip", "link", "set", nameA, "up");
        b.Check("ip", "link", "set", nameB, "up");
    }

    /// <summary>Deletes the namespace (its devices go with it); safe to call twice.</summary>
    public void Dispose()
    {
        if (_deleted) return;
        _deleted = true;
        Proc.Run("ip", "netns", "del", Name);
    }
}
