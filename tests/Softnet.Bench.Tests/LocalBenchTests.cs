using Softnet.Bench;
using Xunit;

namespace Softnet.Bench.Tests;

/// <summary>`bench local`'s Softnet half on tiny cases: every measured datagram or segment reaches the socket (the TCP
/// case's capture answers the listener's SYN-ACKs).</summary>
public class LocalBenchTests
{
    [Theory]
    [InlineData("udp")]
    [InlineData("tcp")]
    public void Softnet_half_delivers_every_frame_to_the_socket(string name)
    {
        string work = Directory.CreateTempSubdirectory("softnet-local-test-").FullName;
        try
        {
            var c = LocalBench.Build(name, LocalBench.BuildScenario(work), work, frames: 256);
            Assert.Equal(256, c.Measured.Count);
            var r = ScenarioBench.MeasureSoftnet(c, rounds: 1);
            Assert.True(r.Pps > 0, $"pps {r.Pps}");
            Assert.Equal(1.0, r.Forwarded);
        }
        finally
        {
            Directory.Delete(work, true);
        }
    }
}
