using Softnet.Capture;
using Softnet.Capture.Generator;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Capture.Generator;

/// <summary>Wireshark's dissectors and TCP analysis as the judge of what the generator puts on the wire.</summary>
public class TsharkOracleTests
{
    public static TheoryData<string> Scenarios => ["tcp4", "tcp6-vlan", "udp4", "udp6", "tcp4-max-smallblock", "default"];

    private static IReadOnlyList<GeneratorOptions> Scenario(string name) => name switch
    {
        "tcp4" => [new GeneratorOptions { Streams = 4, Bytes = 3_000_001, Seed = 3 }],
        "tcp6-vlan" => [new GeneratorOptions { Streams = 2, Bytes = 1_000_000, Ipv6 = true, Vlan = 100, Seed = 4 }],
        "udp4" => [new GeneratorOptions { Streams = 2, Protocol = TrafficProtocol.Udp, Bytes = 500_005, Seed = 5 }],
        "udp6" => [new GeneratorOptions { Protocol = TrafficProtocol.Udp, Bytes = 200_000, Ipv6 = true, Vlan = 7 }],
        "tcp4-max-smallblock" => [new GeneratorOptions { Streams = 3, Bytes = 2_000_000, Rate = Rate.Max, BlockSize = 4000, Mss = 1000 }],
        _ => GeneratorOptions.DefaultScenario,
    };

    [SkippableTheory]
    [MemberData(nameof(Scenarios))]
    public void Tshark_finds_no_errors_warnings_or_tcp_analysis_flags(string name)
    {
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        var path = Path.Combine(Path.GetTempPath(), $"softnet-gen-{name}-{Environment.ProcessId}.pcap");
        try
        {
            var gen = new TrafficGenerator(Scenario(name));
            GeneratorStats stats;
            using (var w = PcapWriter.Create(path, LinkType.Ethernet))
                stats = gen.WriteTo(w);

            string[] checks = ["-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"];
            var all = ExternalTool.Run("tshark", [.. checks, "-r", path, "-T", "fields", "-e", "frame.number"]);
            Assert.True(all.Exit == 0, all.Stderr);
            Assert.Equal(stats.Frames, all.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);

            // Anything above "chat" is a defect (bad checksums, malformed packets, lost or retransmitted segments,
            // duplicate ACKs, ACKs of unseen data, zero windows) except the notes tshark 4.0 puts on every FIN.
            var expert = ExternalTool.Run("tshark", [.. checks, "-r", path, "-Y", "_ws.expert.severity > 0x00200000 || _ws.malformed",
                "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"]);
            Assert.True(expert.Exit == 0, expert.Stderr);
            var complaints = expert.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Where(l => l.Split('\t')[1].Split(',').Any(m => !m.StartsWith("Connection finish (FIN)") && !m.Contains("the connection closing")))
                .ToList();
            Assert.True(complaints.Count == 0, $"tshark complains about {name}:\n{Head(string.Join('\n', complaints))}");

            var flags = ExternalTool.Run("tshark", ["-r", path, "-Y", "tcp.analysis.flags && !tcp.analysis.window_update",
                "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"]);
            Assert.True(flags.Stdout.Trim().Length == 0, $"tcp.analysis.flags set in {name}:\n{Head(flags.Stdout)}");

            // tshark reassembles the same per-stream byte counts the generator reports.
            var conv = ExternalTool.Run("tshark", ["-r", path, "-Y", "tcp.len > 0 || (udp && udp.length > 12)", "-T", "fields", "-e", "tcp.len", "-e", "udp.length"]);
            long payload = conv.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Sum(l => l.Split('\t') is var c && c[0].Length > 0 ? long.Parse(c[0]) : long.Parse(c[1]) - 8);
            Assert.Equal(stats.PayloadBytes, payload);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Head(string s) => string.Join('\n', s.Split('\n').Take(20));
}
