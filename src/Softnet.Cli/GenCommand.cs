using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Softnet.Capture;
using Softnet.Capture.Generator;

namespace Softnet.Cli;

/// <summary>`softnet gen`: writes iperf3-style traffic to a capture file.</summary>
public static class GenCommand
{
    /// <summary>Opens the output: pcap for .pcap/.cap, pcapng otherwise (tests may swap it).</summary>
    internal static Func<string, ICaptureWriter> WriterFactory { get; set; } =
        path => CaptureWriter.Create(path, LinkType.Ethernet);

    public static Command Create()
    {
        var streams = new Option<int>("--streams", "-P")
        {
            Description = "Parallel streams (like iperf3 -P)", DefaultValueFactory = _ => 1,
        };
        var mss = new Option<int?>("--mss", "-M")
        {
            Description = "TCP segment payload / UDP datagram payload in bytes (default 1448, IPv6 1428)",
        };
        var length = new Option<long?>("--length", "-l")
        {
            Description = "TCP application write size (iperf3 -l, default 128K); the pattern restarts at each write",
            CustomParser = r => Parse(r, Units.ParseBytes),
        };
        var bytes = new Option<long?>("--bytes", "-n")
        {
            Description = "Total payload over all streams, e.g. 20M, 1G (K/M/G = 1024 multiples)",
            CustomParser = r => Parse(r, Units.ParseBytes),
        };
        var duration = new Option<TimeSpan?>("--duration", "-t")
        {
            Description = "Data phase length, e.g. 10s, 500ms (default 1s when --bytes is not given)",
            CustomParser = r => Parse(r, Units.ParseDuration),
        };
        var rate = new Option<Rate?>("--rate", "-b")
        {
            Description = "Aggregate rate: 10Gbit, 100Mbit, 14.88Mpps or max (default 1Gbit)",
            CustomParser = r => Parse(r, Units.ParseRate),
        };
        var udp = new Option<bool>("--udp", "-u") { Description = "UDP instead of TCP" };
        var ipv6 = new Option<bool>("--ipv6", "-6") { Description = "IPv6 (fd00::1 -> fd00::2)" };
        var vlan = new Option<int?>("--vlan") { Description = "Tag every frame with this 802.1Q VLAN id" };
        var seed = new Option<ulong>("--seed") { Description = "Seed for ports, ISNs and IDs; same seed, same bytes", DefaultValueFactory = _ => 1 };
        var serverKey = new Option<ulong?>("--server-key")
        {
            Description = "Answer a Softnet scenario listening on the server address (10.0.0.2:5201, MAC 02:00:00:00:00:02) with this TCP key " +
                          "(0 unless the scenario sets one): server ISNs as that socket picks them, and only the client's frames",
        };
        var output = new Option<string>("--out", "-o") { Description = "Output capture (.pcap or .pcapng)", Required = true };

        var cmd = new Command("gen", "Generate iperf3-style TCP/UDP traffic (handshake, data, delayed ACKs, teardown) into a capture");
        foreach (Option o in new Option[] { streams, mss, length, bytes, duration, rate, udp, ipv6, vlan, seed, serverKey, output })
            cmd.Options.Add(o);

        cmd.SetAction(parseResult =>
        {
            var stdout = parseResult.InvocationConfiguration.Output;
            var stderr = parseResult.InvocationConfiguration.Error;
            var options = new GeneratorOptions
            {
                Streams = parseResult.GetValue(streams),
                Protocol = parseResult.GetValue(udp) ? TrafficProtocol.Udp : TrafficProtocol.Tcp,
                Mss = parseResult.GetValue(mss),
                BlockSize = parseResult.GetValue(length) is { } l ? checked((int)l) : null,
                Bytes = parseResult.GetValue(bytes),
                Duration = parseResult.GetValue(duration),
                Rate = parseResult.GetValue(rate),
                Ipv6 = parseResult.GetValue(ipv6),
                Vlan = parseResult.GetValue(vlan),
                Seed = parseResult.GetValue(seed),
                ServerKey = parseResult.GetValue(serverKey),
            };
            var path = parseResult.GetRequiredValue(output);
            TrafficGenerator gen;
            try
            {
                gen = new TrafficGenerator(options);
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine($"softnet gen: {e.Message}");
                return 1;
            }
            GeneratorStats stats;
            using (var writer = WriterFactory(path))
                stats = gen.WriteTo(writer);
            var seconds = (stats.LastTimestampNs - stats.FirstTimestampNs) / 1e9;
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{path}: {stats.Frames} frames, {Units.FormatBytes(stats.FrameBytes)} on the wire, {Units.FormatBytes(stats.PayloadBytes)} payload, " +
                $"{stats.Streams} {(options.Protocol == TrafficProtocol.Udp ? "UDP" : "TCP")} stream(s){(options.Ipv6 ? " IPv6" : "")}" +
                $"{(options.Vlan is { } v ? $" VLAN {v}" : "")}, {seconds:0.######} s"));
            return 0;
        });
        return cmd;
    }

    private static T? Parse<T>(ArgumentResult r, Func<string, T> parse) where T : struct
    {
        var text = r.Tokens.Count > 0 ? r.Tokens[^1].Value : "";
        try
        {
            return parse(text);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            r.AddError(e.Message);
            return null;
        }
    }
}
