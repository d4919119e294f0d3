using System.CommandLine;
using Softnet.Filter;
using Softnet.Telemetry;

namespace Softnet.Cli;

/// <summary>
/// `--trace EXPR`, `--trace-json FILE`, `--trace-pcapng FILE`, `--trace-max N` of `softnet replay` and `softnet run`:
/// the options, the tracer they make, and what is written once the run is over. The commands declare the options with
/// <see cref="AddTo"/>, make the tracer with <see cref="Make"/> and hand their exit code through <see cref="Finish"/>.
/// </summary>
internal sealed class TraceCli
{
    private readonly string _verb;
    private readonly Option<string?> _trace = new("--trace")
    {
        Description = "follow every packet a tcpdump filter EXPR selects (\"\" for all) through each stage, one line per stage "
            + "(arrival, XDP, skb, GRO, devices and namespaces, netfilter rules, conntrack and NAT, routing, socket or drop reason); deterministic mode",
    };
    private readonly Option<string?> _json = new("--trace-json") { Description = "write the trace as JSON lines (one object per event, with its packet id) to FILE" };
    private readonly Option<string?> _pcapng = new("--trace-pcapng") { Description = "write the traced packets to FILE (pcapng), each with its journey as the packet comment (tshark -e frame.comment)" };
    private readonly Option<int> _max = new("--trace-max") { Description = "packets traced at most", DefaultValueFactory = _ => PacketTracer.DefaultMaxPackets };

    public TraceCli(string verb) => _verb = verb;

    public void AddTo(Command command)
    {
        command.Options.Add(_trace);
        command.Options.Add(_json);
        command.Options.Add(_pcapng);
        command.Options.Add(_max);
    }

    /// <summary>The tracer the options ask for, or null. --trace-json or --trace-pcapng without --trace trace every
    /// packet. Throws <see cref="ArgumentException"/> for a filter the compiler refuses.</summary>
    public PacketTracer? Make(ParseResult pr, bool deterministic)
    {
        string? expr = pr.GetValue(_trace);
        bool asked = expr is not null || pr.GetValue(_json) is not null || pr.GetValue(_pcapng) is not null;
        if (!asked) return null;
        if (!deterministic)
        {
            Console.Error.WriteLine($"softnet {_verb}: --trace follows packets in deterministic mode only (one thread, the order the kernel's "
                + "softirq keeps); this threaded replay runs untraced. Use --mode deterministic to trace.");
            return null;
        }
        int max = pr.GetValue(_max);
        if (max < 1) throw new ArgumentException("--trace-max must be positive");
        try
        {
            return new PacketTracer(expr, max);
        }
        catch (FilterException e)
        {
            throw new ArgumentException($"--trace '{expr}': {e.Message}");
        }
        catch (FilterNotSupportedException e)
        {
            throw new ArgumentException($"--trace '{expr}': {e.Message}");
        }
    }

    /// <summary>After the run: the trace as text on stdout (unless it went to a file and --quiet was given), JSON lines
    /// and pcapng files. Returns the run's exit code, or 1 when a trace file cannot be written.</summary>
    public int Finish(ParseResult pr, PacketTracer? tracer, int exitCode, bool quiet)
    {
        if (tracer is null) return exitCode;
        string? json = pr.GetValue(_json), pcapng = pr.GetValue(_pcapng);
        try
        {
            if (json is not null)
            {
                using var f = new FileStream(json, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16);
                TraceText.WriteJson(tracer, f);
            }
            if (pcapng is not null) TraceText.WritePcapng(tracer, pcapng);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"softnet {_verb}: {e.Message}");
            return 1;
        }
        if (!quiet || (json is null && pcapng is null))
        {
            Console.Out.Write(tracer.Format());
            Console.Out.WriteLine($"# trace {(tracer.Expression is null ? "of every packet" : $"'{tracer.Expression}'")}: {tracer.Journeys.Count} of {tracer.Examined} packets traced, {tracer.Events.Count} events");
        }
        return exitCode;
    }
}
