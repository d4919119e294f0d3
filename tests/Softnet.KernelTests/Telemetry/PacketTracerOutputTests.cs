using System.Text.Json;
using Softnet.KernelTests.Support;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.KernelTests.Telemetry;

/// <summary>
/// `softnet replay CAPTURE --scenario DIR --inject NS:DEV --trace EXPR --trace-json FILE --trace-pcapng FILE`: the JSON
/// lines hold one object per event with its packet id, and tshark reads each traced packet's journey back as its
/// frame.comment.
/// </summary>
public sealed class PacketTracerOutputTests
{
    [SkippableFact]
    public void Tshark_reads_each_journey_as_the_packet_comment()
    {
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        var frames = new[]
        {
            PacketTracerDropTests.Lan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 53)),
            PacketTracerDropTests.Lan(Frames.Udp("10.0.0.2", 5000, "203.0.113.9", 666)),
            PacketTracerDropTests.Lan(Frames.Tcp("10.0.0.2", 40000, "203.0.113.9", 443, 0x02, 1000)),
        };
        string dir = PacketTracerDropTests.MakeScenario("pcapng", true, false, false, frames);
        try
        {
            string pcapng = Path.Combine(dir, "trace.pcapng"), json = Path.Combine(dir, "trace.jsonl");
            int rc = Softnet.Cli.Program.Main(["replay", Path.Combine(dir, "in.pcapng"), "--scenario", dir, "--inject", "r:lan0",
                "--trace", "udp", "--trace-pcapng", pcapng, "--trace-json", json, "--quiet"]);
            Assert.Equal(0, rc);

            var (exit, stdout, stderr) = ExternalTool.Run("tshark", "-r", pcapng, "-T", "fields", "-e", "frame.comment");
            Assert.True(exit == 0, stderr);
            // tshark prints a comment's newlines as "\n"; two UDP packets traced, the TCP one not.
            var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(2, rows.Length);
            Assert.Contains("#1 port 0 frame 1", rows[0]);
            Assert.Contains("filter FORWARD rule 1", rows[1]);
            Assert.Contains("SKB_DROP_REASON_NETFILTER_DROP", rows[1]);

            var lines = File.ReadAllLines(json);
            Assert.NotEmpty(lines);
            var packets = new HashSet<int>();
            foreach (var l in lines)
            {
                using var doc = JsonDocument.Parse(l);
                packets.Add(doc.RootElement.GetProperty("packet").GetInt32());
                Assert.False(string.IsNullOrEmpty(doc.RootElement.GetProperty("stage").GetString()));
            }
            Assert.Equal([1, 2], packets.Order());
            Assert.Contains(lines, l => l.Contains("\"drop_reason\":\"SKB_DROP_REASON_NETFILTER_DROP\"", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
