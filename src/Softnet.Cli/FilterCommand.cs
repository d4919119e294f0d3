using System.CommandLine;
using Softnet.Capture;
using Softnet.Filter;

namespace Softnet.Cli;

/// <summary>
/// <c>softnet filter EXPR [--link ethernet|sll|sll2|raw] [-d|-dd|-ddd]</c> prints the classic BPF program of a tcpdump
/// filter expression as <c>tcpdump -O -d</c> does (libpcap's unoptimised code); <c>softnet filter EXPR CAPTURE</c>
/// prints how many frames of the capture match (what <c>tcpdump -r CAPTURE EXPR</c> would print a line for), the
/// capture's link type choosing the code, and <c>--write FILE</c> keeps the matching frames.
/// </summary>
public static class FilterCommand
{
    public const int BadInput = 2;

    public static Command Create()
    {
        var cmd = new Command("filter", "Compile a tcpdump filter expression to classic BPF; print it, or count (and keep) the frames of a capture it matches");
        var expr = new Argument<string>("expression") { Description = "the pcap-filter expression (quote it as one argument)", HelpName = "EXPR" };
        var capture = new Argument<string?>("capture") { Description = "a pcap or pcapng file to run the filter over", HelpName = "CAPTURE", Arity = ArgumentArity.ZeroOrOne };
        var link = new Option<string>("--link") { Description = "link type to compile for when printing: ethernet (default), sll, sll2, raw", DefaultValueFactory = _ => "ethernet" };
        link.AcceptOnlyFromAmong("ethernet", "sll", "sll2", "raw", "ipv4", "ipv6");
        var d = new Option<bool>("-d") { Description = "print the program as tcpdump -d (the default)" };
        var dd = new Option<bool>("-dd") { Description = "print the program as a C array, as tcpdump -dd" };
        var ddd = new Option<bool>("-ddd") { Description = "print the program as decimal numbers, as tcpdump -ddd" };
        var write = new Option<string?>("--write") { Description = "write the matching frames to FILE (.pcap or .pcapng)", HelpName = "FILE" };
        cmd.Arguments.Add(expr);
        cmd.Arguments.Add(capture);
        foreach (var o in new Option[] { link, d, dd, ddd, write }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            int mode = pr.GetValue(ddd) ? 3 : pr.GetValue(dd) ? 2 : 1;
            return Run(pr.GetValue(expr) ?? "", pr.GetValue(capture), pr.GetValue(link) ?? "ethernet", mode, pr.GetValue(write),
                pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error);
        });
        return cmd;
    }

    public static Dlt ParseLink(string link) => link switch
    {
        "sll" => Dlt.LinuxSll,
        "sll2" => Dlt.LinuxSll2,
        "raw" => Dlt.Raw,
        "ipv4" => Dlt.Ipv4,
        "ipv6" => Dlt.Ipv6,
        _ => Dlt.En10Mb,
    };

    /// <summary>0 on success, 2 for an expression libpcap would refuse, a missing or unreadable capture.</summary>
    public static int Run(string expression, string? capture, string link, int dumpMode, string? write, TextWriter output, TextWriter error)
    {
        try
        {
            if (capture == null)
            {
                var f = PcapFilter.Compile(expression, ParseLink(link));
                output.Write(dumpMode switch { 3 => f.DumpDecimal(), 2 => f.DumpC(), _ => f.Image() });
                return 0;
            }
            if (!File.Exists(capture))
            {
                error.WriteLine($"softnet filter: {capture}: no such capture file");
                return BadInput;
            }
            var (matched, _) = CountMatches(expression, capture, write);
            output.WriteLine(matched);
            return 0;
        }
        catch (Exception e) when (e is FilterException or FilterNotSupportedException or CaptureFormatException)
        {
            error.WriteLine($"softnet filter: {e.Message}");
            return BadInput;
        }
    }

    /// <summary>Runs the filter over every frame of a capture: (frames matched, frames read).</summary>
    public static (long Matched, long Total) CountMatches(string expression, string capture, string? write = null)
    {
        using var reader = CaptureReader.Open(capture);
        ICaptureWriter? writer = null;
        var filters = new Dictionary<LinkType, PcapFilter>();
        long matched = 0, total = 0;
        try
        {
            while (reader.TryRead(out var meta, out var data))
            {
                total++;
                int snap = reader.Interfaces.Count > meta.InterfaceId ? reader.Interfaces[meta.InterfaceId].SnapLength : 0;
                // libpcap's savefile reader cuts a record longer than the file's snap length to that length, so
                // the filter sees (and tcpdump -w writes) only those bytes.
                if (snap > 0 && data.Length > snap) data = data[..snap];
                if (!filters.TryGetValue(meta.LinkType, out var filter))
                {
                    filter = PcapFilter.Compile(expression, meta.LinkType, snap > 0 ? (uint)snap : PcapFilter.DefaultSnaplen);
                    filters[meta.LinkType] = filter;
                }
                if (!filter.Matches(data, meta.OriginalLength)) continue;
                matched++;
                if (write != null)
                {
                    writer ??= CaptureWriter.Create(write, meta.LinkType);
                    writer.Write(meta.TimestampNs, data, meta.OriginalLength);
                }
            }
        }
        finally
        {
            // No match still leaves a (header-only) capture, as tcpdump -w does.
            if (write != null && writer == null)
                writer = CaptureWriter.Create(write, reader.Interfaces.Count > 0 ? reader.Interfaces[0].LinkType : LinkType.Ethernet);
            writer?.Dispose();
        }
        return (matched, total);
    }
}
