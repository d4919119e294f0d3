using System.CommandLine;
using System.Text.Json;
using Softnet.Cli;
using Xunit;

namespace Softnet.Tests.Cli;

/// <summary>`softnet replay --mtu` and `--aggregates`.</summary>
[Collection("console")]
public class ReplayMtuCliTests
{
    private static int Softnet(params string[] args)
        => new RootCommand { GenCommand.Create(), ReplayCommand.Create() }.Parse(args).Invoke();

    [Fact]
    public void Jumbo_capture_replays_at_mtu_9000_and_is_oversize_at_1500_without_aggregates()
    {
        var dir = Directory.CreateTempSubdirectory("softnet-mtu-");
        try
        {
            string cap = Path.Combine(dir.FullName, "j.pcapng"), json = Path.Combine(dir.FullName, "j.json");
            Assert.Equal(0, Softnet("gen", "--streams", "2", "--bytes", "1M", "--mss", "8948", "--out", cap));

            Assert.Equal(0, Softnet("replay", cap, "--mtu", "9000", "--json", json, "--quiet"));
            var r = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.Equal(r.GetProperty("packets_in").GetInt64(), r.GetProperty("delivered").GetInt64());
            var nic = r.GetProperty("nic");
            Assert.Equal(9000, nic.GetProperty("mtu").GetInt32());
            Assert.True(nic.GetProperty("queues")[0].GetProperty("non_eop_descs").GetInt64() > 0);

            Assert.Equal(0, Softnet("replay", cap, "--aggregates", "drop", "--json", json, "--quiet"));
            r = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.True(r.GetProperty("drops").GetProperty("frame_too_long").GetInt64() > 0);
            Assert.True(r.GetProperty("nic").GetProperty("queues")[0].GetProperty("rx_length_errors").GetInt64() > 0);
            Assert.True(r.GetProperty("conserved").GetBoolean());

            // Default: the same long TCP frames are taken whole as aggregates (as from a GRO capture).
            Assert.Equal(0, Softnet("replay", cap, "--json", json, "--quiet"));
            r = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
            Assert.True(r.GetProperty("nic").GetProperty("queues")[0].GetProperty("rx_gro_skbs").GetInt64() > 0);
            Assert.True(r.GetProperty("conserved").GetBoolean());
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void Mtu_out_of_range_exits_2()
    {
        Assert.Equal(2, Softnet("replay", "--mtu", "9217", "--quiet"));
        Assert.Equal(2, Softnet("replay", "--mtu", "50", "--quiet"));
    }
}
