using System.CommandLine;
using Softnet.Cli;
using Xunit;

namespace Softnet.Tests.Capture.Generator;

public class GenCommandTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = GenCommand.Create().Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public void Writes_a_capture_and_prints_a_summary()
    {
        var path = Path.Combine(Path.GetTempPath(), $"softnet-gen-cli-{Environment.ProcessId}.pcap");
        try
        {
            var (exit, output, error) = Run("-o", path, "-P", "2", "-n", "64K", "-b", "10Gbit", "--seed", "9", "--vlan", "5");
            Assert.True(exit == 0, error);
            Assert.Contains("frames", output);
            Assert.Contains("64 KiB payload", output);
            Assert.Contains("2 TCP stream(s)", output);
            Assert.Contains("VLAN 5", output);
            // 24-byte pcap header, then records; 2 streams x (3 handshake + 23 data + ~12 ACKs + 3 FIN)
            Assert.InRange(new FileInfo(path).Length, 24 + 64 * 1024, 24 + 64 * 1024 + 120 * 100);

            var again = Path.ChangeExtension(path, ".again.pcap");
            Assert.Equal(0, Run("--out", again, "--streams", "2", "--bytes", "64K", "--rate", "10Gbit", "--seed", "9", "--vlan", "5").Exit);
            Assert.Equal(File.ReadAllBytes(path), File.ReadAllBytes(again));
            File.Delete(again);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Udp_ipv6_duration()
    {
        var path = Path.Combine(Path.GetTempPath(), $"softnet-gen-cli6-{Environment.ProcessId}.pcap");
        try
        {
            var (exit, output, error) = Run("-o", path, "-u", "-6", "-t", "2ms", "-b", "100Mbit");
            Assert.True(exit == 0, error);
            Assert.Contains("1 UDP stream(s) IPv6", output);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("-n", "lots")]
    [InlineData("-b", "fast")]
    [InlineData("-t", "forever")]
    public void Bad_units_fail_with_a_message(string option, string value)
    {
        var (exit, _, error) = Run("-o", "/tmp/unused.pcap", option, value);
        Assert.NotEqual(0, exit);
        Assert.Contains(value, error);
    }

    [Fact]
    public void Out_is_required()
    {
        var (exit, _, error) = Run("-n", "1M");
        Assert.NotEqual(0, exit);
        Assert.Contains("--out", error);
    }

    [Fact]
    public void Invalid_options_fail_without_writing()
    {
        var (exit, _, error) = Run("-o", "/tmp/softnet-never.pcap", "-P", "500");
        Assert.Equal(1, exit);
        Assert.Contains("streams", error);
        Assert.False(File.Exists("/tmp/softnet-never.pcap"));
    }
}
