namespace Softnet.Bench;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0)
            return Usage();
        var rest = args[1..];
        try
        {
            return args[0] switch
            {
                "parse" => ParseBench.Run(BenchArgs.Parse(rest)),
                "pipeline" => PipelineBench.Run(BenchArgs.Parse(rest)),
                "gro" => GroBench.Run(BenchArgs.Parse(rest)),
                "netfilter" => NetfilterBench.Run(BenchArgs.Parse(rest)),
                _ => Usage(),
            };
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"bench: {e.Message}");
            return 2;
        }
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: dotnet run -c Release --project bench/Softnet.Bench -- parse|pipeline|gro|netfilter [--capture F] [--json FILE] [--seconds S] [--case NAME]");
        return 2;
    }
}

/// <summary>Flags common to every benchmark.</summary>
public sealed record BenchArgs(string? Capture, string? Json, double Seconds, string? Case = null)
{
    public static BenchArgs Parse(string[] args)
    {
        string? capture = null, json = null, only = null;
        double seconds = 2;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--capture": capture = Next(); break;
                case "--json": json = Next(); break;
                case "--case": only = Next(); break;
                case "--seconds": seconds = double.Parse(Next(), System.Globalization.CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        return new BenchArgs(capture, json, seconds, only);
    }
}
