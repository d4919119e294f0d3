using Softnet.Bench;
using Xunit;

namespace Softnet.Bench.Tests;

/// <summary>`bench scenario`'s Softnet half on tiny cases: the frames are forwarded, and established flows skip the
/// nat table while new connections walk it (what the kernel half checks too).</summary>
public class ScenarioBenchTests
{
    [Theory]
    [InlineData("docker", false)]
    [InlineData("kube_100_est", false)]
    [InlineData("kube_100_new", true)]
    public void Softnet_half_forwards_a_tiny_case(string name, bool newConnections)
    {
        string work = Directory.CreateTempSubdirectory("softnet-scbench-test-").FullName;
        try
        {
            var c = ScenarioBench.Build(name, work, flows: 32, segments: 4);
            Assert.Equal(128, c.Measured.Count);
            var r = ScenarioBench.MeasureSoftnet(c, rounds: 1);
            Assert.True(r.Pps > 0, $"pps {r.Pps}");
            Assert.Equal(1.0, r.Forwarded);
            Assert.Equal(newConnections ? 1.0 : 0.0, r.NatWalks);
            Assert.True(r.AllocPerPacket >= 0);
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }

    [Fact]
    public void Nat_prerouting_counter_is_the_first_rule_of_the_nat_table()
    {
        const string save = """
            *raw
            [7:700] -A PREROUTING -j DROP
            COMMIT
            *nat
            :PREROUTING ACCEPT [3:300]
            [42:4200] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
            [5:500] -A PREROUTING -j KUBE-SERVICES
            COMMIT
            """;
        Assert.Equal(42, ScenarioBench.NatPreroutingPackets(save));
        Assert.Equal(0, ScenarioBench.NatPreroutingPackets("*filter\nCOMMIT\n"));
    }
}
