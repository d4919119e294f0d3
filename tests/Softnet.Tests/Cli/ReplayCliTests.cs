using System.CommandLine;
using System.Text.Json;
using Softnet.Cli;
using Softnet.Tests.Support;
using Xunit;

namespace Softnet.Tests.Cli;

/// <summary>The issue's acceptance path: `softnet gen` then `softnet replay --json` agree with tshark.</summary>
[Collection("console")]
public class ReplayCliTests
{
    private static int Softnet(params string[] args)
        => new RootCommand { GenCommand.Create(), ReplayCommand.Create() }.Parse(args).Invoke();

    [SkippableFact]
    public void Gen_then_replay_counts_equal_tsharks()
    {
        Skip.IfNot(ExternalTool.Exists("tshark"), ExternalTool.Missing("tshark"));
        var dir = Directory.CreateTempSubdirectory("softnet-cli-");
        try
        {
            string cap = Path.Combine(dir.FullName, "a.pcapng"), json = Path.Combine(dir.FullName, "a.json");
            Assert.Equal(0, Softnet("gen", "--streams", "4", "--bytes", "2M", "--udp", "--out", cap));
            Assert.Equal(0, Softnet("replay", cap, "--json", json, "--quiet"));
            var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;

            long Count(string? filter)
            {
                var args = new List<string> { "-r", cap, "-T", "fields", "-e", "frame.number" };
                if (filter is not null) { args.Add("-Y"); args.Add(filter); }
                var (exit, stdout, _) = ExternalTool.Run("tshark", [.. args]);
                Assert.Equal(0, exit);
                return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            }

            Assert.Equal(Count(null), report.GetProperty("packets_in").GetInt64());
            Assert.Equal(Count("udp"), report.GetProperty("protocols").GetProperty("udp").GetInt64());
            Assert.Equal(Count("ip"), report.GetProperty("protocols").GetProperty("ipv4").GetInt64());
            Assert.Equal(report.GetProperty("packets_in").GetInt64(), report.GetProperty("delivered").GetInt64());
            Assert.True(report.GetProperty("conserved").GetBoolean());
            // --json asks for the per-flow merge table (kept only then): a row per UDP 4-tuple tshark sees.
            var (rc, tuples, _) = ExternalTool.Run("tshark", "-r", cap, "-Y", "udp", "-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "udp.srcport", "-e", "udp.dstport");
            Assert.Equal(0, rc);
            int flows = tuples.Split('\n', StringSplitOptions.RemoveEmptyEntries).Distinct().Count();
            Assert.Equal(flows, report.GetProperty("gro").GetProperty("flows").GetArrayLength());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Replay_of_the_embedded_default_needs_no_file()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-cli-");
        try
        {
            string json = Path.Combine(dir.FullName, "d.json");
            Assert.Equal(0, Softnet("replay", "--json", json, "--quiet", "--queues", "2"));
            var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.True(report.GetProperty("packets_in").GetInt64() > 1000);
            Assert.Equal(2, report.GetProperty("nic").GetProperty("queues").GetArrayLength());
            Assert.Equal(1, report.GetProperty("softnet").GetArrayLength());
            // ethtool -S text: every queue's counters, agreeing with the JSON.
            var nic = report.GetProperty("nic");
            string ethtool = nic.GetProperty("ethtool_s").GetString()!;
            Assert.StartsWith("NIC statistics:\n", ethtool);
            foreach (var q in nic.GetProperty("queues").EnumerateArray())
            {
                int id = q.GetProperty("queue").GetInt32();
                Assert.Contains($"\n     rx_queue_{id}_packets: {q.GetProperty("rx_packets").GetInt64()}\n", ethtool);
                Assert.True(q.GetProperty("napi_full_polls").GetInt64() <= q.GetProperty("napi_polls").GetInt64());
                Assert.True(q.GetProperty("napi_missed").GetInt64() >= 0);
            }
            var cpu = report.GetProperty("softnet")[0];
            Assert.True(cpu.GetProperty("ksoftirqd_wakeups").GetInt64() <= cpu.GetProperty("ksoftirqd_rounds").GetInt64());
            Assert.Equal(0, cpu.GetProperty("idle_wakeups").GetInt64()); // deterministic mode never sleeps
            // The default is the two-node overlay: each path alone, byte-complete, the pod path through the stack twice.
            var paths = report.GetProperty("paths");
            Assert.Equal(["native_to_native", "pod_to_native", "pod_to_pod_vxlan"], paths.EnumerateArray().Select(p => p.GetProperty("path").GetString()!).ToArray());
            foreach (var p in paths.EnumerateArray()) Assert.Equal(16 << 20, p.GetProperty("bytes_read").GetInt64());
            Assert.True(paths[2].GetProperty("ip_rcv_per_segment").GetDouble() > paths[0].GetProperty("ip_rcv_per_segment").GetDouble());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Bad_options_exit_2_with_a_message()
    {
        Assert.Equal(2, Softnet("replay", "--ring", "1000", "--quiet"));
        Assert.Equal(2, Softnet("replay", "--rate", "fast", "--quiet"));
        Assert.Equal(2, Softnet("replay", "--cpus", "3-1", "--quiet"));
    }

    [Fact]
    public void A_missing_capture_is_a_clear_error()
    {
        Assert.Equal(1, Softnet("replay", "/nonexistent/x.pcap", "--quiet"));
    }
}

/// <summary>`softnet replay --scenario`: a capture replayed into a Docker host's namespaces, dumped like the kernel's tools.</summary>
[Collection("console")]
public class ScenarioCliTests
{
    [Fact]
    public void Replay_into_a_scenario_writes_the_dump_folder()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-scn-");
        try
        {
            string cap = Path.Combine(dir.FullName, "in.pcap"), dump = Path.Combine(dir.FullName, "dump"), json = Path.Combine(dir.FullName, "r.json");
            // Traffic from outside (192.0.2.100) to the host's published port and to the container network.
            var root = new RootCommand { GenCommand.Create(), ReplayCommand.Create() };
            Assert.Equal(0, root.Parse(["gen", "--bytes", "20K", "--out", cap]).Invoke());
            string scenario = Path.Combine(ThisDir(), "..", "Topology", "Data", "docker");
            int exit = root.Parse(["replay", cap, "--scenario", scenario, "--inject", "host:eth0", "--dump", dump, "--json", json, "--quiet"]).Invoke();
            Assert.Equal(0, exit);
            Assert.True(File.Exists(Path.Combine(dump, "host", "iptables-save.txt")));
            Assert.True(File.Exists(Path.Combine(dump, "host", "conntrack.txt")));
            Assert.True(File.Exists(Path.Combine(dump, "host", "eth0.rx.pcap")));
            var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.True(report.GetProperty("packets_in").GetInt64() > 0);
            Assert.True(report.TryGetProperty("scenario", out _));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void A_bad_scenario_line_is_rejected_with_file_and_line()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-scn-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "links.batch"), "netns add host\nlink add eth0 type dummy\n");
            string cap = Path.Combine(dir.FullName, "in.pcap");
            var root = new RootCommand { GenCommand.Create(), ReplayCommand.Create() };
            Assert.Equal(0, root.Parse(["gen", "--bytes", "2K", "--out", cap]).Invoke());
            var err = new StringWriter();
            var old = Console.Error;
            Console.SetError(err);
            int exit;
            try { exit = root.Parse(["replay", cap, "--scenario", dir.FullName, "--inject", "host:eth0", "--quiet"]).Invoke(); }
            finally { Console.SetError(old); }
            Assert.NotEqual(0, exit);
            Assert.Contains("links.batch:2", err.ToString());
        }
        finally { dir.Delete(true); }
    }

    private static string ThisDir([System.Runtime.CompilerServices.CallerFilePath] string here = "") => Path.GetDirectoryName(here)!;
}
