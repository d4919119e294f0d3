using System.Diagnostics;

namespace Softnet.Tests.Support;

/// <summary>Runs external tools (tshark, tcpdump, ip, ...) that tests use as oracles.</summary>
public static class ExternalTool
{
    /// <summary>True when <paramref name="name"/> is found on PATH.</summary>
    public static bool Exists(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Any(dir => dir.Length > 0 && File.Exists(Path.Combine(dir, name)));

    /// <summary>Runs a tool to completion; returns exit code, stdout and stderr.</summary>
    public static (int Exit, string Stdout, string Stderr) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // tshark refuses to run some dissectors as root without this hint; keep its output stable.
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(true);
            throw new TimeoutException($"{file} did not finish in 120 s");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>The message a test prints when it skips for a missing tool.</summary>
    public static string Missing(string name) => $"{name} is not installed (CI installs it via .ci/run)";
}
