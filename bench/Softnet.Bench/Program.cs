namespace Softnet.Bench;

public static class Program
{
    private const string SingleProcDelay = "DOTNET_TC_DelaySingleProcMultiplier";

    public static int Main(string[] args)
    {
        if (args.Length == 0)
            return Usage();
        // Pinned to one CPU (taskset, a one-CPU cgroup), the runtime delays tier-up ten times longer and keeps
        // re-arming the delay while methods move through the tiers, so the hot loops would be measured as tier-0
        // code for seconds (about 1 M instead of 12 M GRO segments/s here). Run again with the multiplier at 1.
        if (Environment.ProcessorCount == 1 && Environment.GetEnvironmentVariable(SingleProcDelay) is null)
            return RunAgainWithoutSingleProcDelay();
        var rest = args[1..];
        try
        {
            return args[0] switch
            {
                "parse" => ParseBench.Run(BenchArgs.Parse(rest)),
                "pipeline" => PipelineBench.Run(BenchArgs.Parse(rest)),
                "gro" => GroBench.Run(BenchArgs.Parse(rest)),
                "netfilter" => NetfilterBench.Run(BenchArgs.Parse(rest)),
                "netfilter6" => Netfilter6Bench.Run(BenchArgs.Parse(rest)),
                "scenario" => ScenarioBench.Run(BenchArgs.Parse(rest), secondsGiven: rest.Contains("--seconds")),
                "local" => LocalBench.Run(BenchArgs.Parse(rest), secondsGiven: rest.Contains("--seconds")),
                "xdp" => XdpBench.Run(BenchArgs.Parse(rest)),
                "live" => LiveBench.Run(BenchArgs.Parse(rest), secondsGiven: rest.Contains("--seconds")),
                "replay" => ReplayBench.Run(BenchArgs.Parse(rest)),
                "overlay" => OverlayBench.Run(BenchArgs.Parse(rest), secondsGiven: rest.Contains("--seconds")),
                "trace" => TraceBench.Run(BenchArgs.Parse(rest)),
                _ => Usage(),
            };
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"bench: {e.Message}");
            return 2;
        }
    }

    private static int RunAgainWithoutSingleProcDelay()
    {
        var cmd = Environment.GetCommandLineArgs(); // [entry assembly, args...] under `dotnet`, [path, args...] as an apphost
        var psi = new System.Diagnostics.ProcessStartInfo(Environment.ProcessPath!);
        bool viaDotnet = Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet";
        foreach (string a in viaDotnet ? cmd : cmd[1..]) psi.ArgumentList.Add(a);
        psi.Environment[SingleProcDelay] = "1";
        Console.Error.WriteLine($"bench: one CPU visible; running again with {SingleProcDelay}=1 so the measured code is tiered up");
        using var child = System.Diagnostics.Process.Start(psi)!;
        child.WaitForExit();
        return child.ExitCode;
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Softnet.Bench -- parse|pipeline|gro|netfilter|netfilter6|scenario|local|overlay|xdp|live|replay|trace [--capture F] [--json FILE] [--seconds S] [--case NAME] [--keep DIR] [--rounds N] [--warmup S]");
        return 2;
    }
}

/// <summary>Flags common to every benchmark.</summary>
public sealed record BenchArgs(string? Capture, string? Json, double Seconds, string? Case = null, string? Keep = null, int Rounds = 0, double Warmup = -1)
{
    public static BenchArgs Parse(string[] args)
    {
        string? capture = null, json = null, only = null, keep = null;
        int rounds = 0;
        double seconds = 2, warmup = -1;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--capture": capture = Next(); break;
                case "--json": json = Next(); break;
                case "--case": only = Next(); break;
                case "--keep": keep = Next(); break;
                case "--rounds": rounds = int.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                case "--seconds": seconds = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        return new BenchArgs(capture, json, seconds, only, keep, rounds, warmup);
    }

    /// <summary>The cases to run: --case if given (one of <paramref name="all"/>), else all of them.</summary>
    public string[] Cases(string bench, string[] all)
    {
        if (Capture is not null) throw new ArgumentException($"{bench} generates its own captures (--capture is not used)");
        if (Case is null) return all;
        return all.Contains(Case) ? [Case] : throw new ArgumentException($"--case {Case}: one of {string.Join(", ", all)}");
    }

    /// <summary>What a forwarding bench (scenario, local, overlay) takes from the flags, defaults filled in: the cases,
    /// seconds of kernel injection per case (--seconds if given, at least half a second), rounds, warm-up seconds and the
    /// work directory (--keep DIR, kept afterwards, or a new temporary one deleted on Dispose).</summary>
    public ForwardingRun Forwarding(string bench, string[] all, bool secondsGiven, int rounds, double warmup, string workPrefix)
    {
        var cases = Cases(bench, all);
        double kernelSeconds = secondsGiven ? Math.Max(0.5, Seconds) : ScenarioBench.DefaultKernelSeconds;
        string work = Keep is { } keep ? Directory.CreateDirectory(keep).FullName : Directory.CreateTempSubdirectory(workPrefix).FullName;
        return new ForwardingRun(cases, kernelSeconds, Rounds > 0 ? Rounds : rounds, Warmup >= 0 ? Warmup : warmup, work, Keep is not null);
    }
}

/// <summary>The settings of a forwarding bench's run (<see cref="BenchArgs.Forwarding"/>); disposing it deletes the
/// work directory unless --keep named it.</summary>
public sealed record ForwardingRun(string[] Cases, double KernelSeconds, int Rounds, double Warmup, string Work, bool Keep) : IDisposable
{
    public void Dispose()
    {
        if (!Keep)
            try { Directory.Delete(Work, true); } catch (IOException) { }
    }
}
