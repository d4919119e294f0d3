using System.Diagnostics;
using System.Security.Cryptography;

namespace Softnet.Tests.Xdp.Bpf.Elf;

/// <summary>clang could not build a program: not installed, or the source did not compile.</summary>
public sealed class BpfClangException(string message) : Exception(message);

/// <summary>
/// Builds a C XDP program as users do (<c>clang-14 -O2 -g -target bpf -c</c>) into a cache folder keyed by the source's
/// hash, so each source is compiled once per machine. Shared by the tests (<see cref="BpfTestPrograms"/>) and
/// `bench xdp`, which links this file.
/// </summary>
public static class BpfClang
{
    private static readonly object Gate = new();

    /// <summary>The compiler: $SOFTNET_CLANG, or clang-14.</summary>
    public static string Clang => Environment.GetEnvironmentVariable("SOFTNET_CLANG") is { Length: > 0 } c ? c : "clang-14";

    /// <summary>The object built from <paramref name="source"/> (a .c file), in <paramref name="cacheDir"/>.</summary>
    public static string Compile(string source, string cacheDir)
    {
        if (!File.Exists(source)) throw new BpfClangException($"no program source {source}");
        string name = Path.GetFileNameWithoutExtension(source);
        string hash = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(source)))[..16];
        string obj = Path.Combine(cacheDir, $"{name}-{hash}.o");
        lock (Gate)
        {
            if (File.Exists(obj)) return obj;
            Directory.CreateDirectory(cacheDir);
            string tmp = obj + $".{Environment.ProcessId}.tmp";
            var psi = new ProcessStartInfo(Clang)
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            foreach (var a in new[] { "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", source, "-o", tmp }) psi.ArgumentList.Add(a);
            Process p;
            try
            {
                p = Process.Start(psi)!;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new BpfClangException($"{Clang} is needed to build the XDP programs and was not found ({e.Message}); install clang-14 and libbpf-dev (.ci/run does) or set SOFTNET_CLANG");
            }
            _ = p.StandardOutput.ReadToEndAsync();
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new BpfClangException($"{Clang} failed on {source}:\n{err}");
            File.Move(tmp, obj, overwrite: true);
            return obj;
        }
    }
}
