using System.CommandLine;
using System.Text.Json;
using Softnet.Cli;
using Xunit;

namespace Softnet.Tests.Nic;

public class RssCommandTests
{
    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int exit = new RootCommand { RssCommand.Create() }.Parse(["rss", .. args])
            .Invoke(new InvocationConfiguration { Output = o, Error = e });
        return (exit, o.ToString().Trim(), e.ToString().Trim());
    }

    [Fact]
    public void Tcp_ipv4_prints_hash_queue_and_context()
    {
        var (exit, output, err) = Run("--queues", "8", "66.9.149.187:2794", "161.142.100.80:1766");
        Assert.Equal(0, exit);
        Assert.Equal("", err);
        // 0x51ccc178 & 127 = 120, 120 % 8 = 0.
        Assert.Equal("hash 0x51ccc178  queue 0  (TCP/IPv4 66.9.149.187:2794 -> 161.142.100.80:1766, 8 queues, 128-entry table)", output);
    }

    [Fact]
    public void Addresses_only_without_ports_or_with_proto_ip()
    {
        Assert.StartsWith("hash 0x323e8fc2  queue 2  (IPv4 66.9.149.187 -> 161.142.100.80,", Run("66.9.149.187", "161.142.100.80").Out);
        Assert.StartsWith("hash 0x323e8fc2 ", Run("--proto", "ip", "66.9.149.187:2794", "161.142.100.80:1766").Out);
    }

    [Fact]
    public void Ipv6_with_bracketed_ports()
    {
        var (exit, output, _) = Run("--proto", "udp", "--queues", "4", "[3ffe:2501:200:1fff::7]:2794", "[3ffe:2501:200:3::1]:1766");
        Assert.Equal(0, exit);
        // 0x40207d3d & 127 = 61, 61 % 4 = 1.
        Assert.Equal("hash 0x40207d3d  queue 1  (UDP/IPv6 [3ffe:2501:200:1fff::7]:2794 -> [3ffe:2501:200:3::1]:1766, 4 queues, 128-entry table)", output);
        Assert.StartsWith("hash 0x2cc18cd5 ", Run("3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1").Out);
    }

    [Fact]
    public void Weights_and_table_size_pick_the_queue()
    {
        // weights 1,3 on 128 entries: slots 0..31 -> queue 0, 32..127 -> queue 1; index 120 -> queue 1.
        var (exit, output, _) = Run("--weights", "1,3", "66.9.149.187:2794", "161.142.100.80:1766");
        Assert.Equal(0, exit);
        Assert.Contains("queue 1 ", output);
        Assert.Contains("2 queues, 128-entry table, weights 1,3", output);
        // 0x51ccc178 % 100 = 68 with a 100-entry table, 68 % 8 = 4.
        Assert.StartsWith("hash 0x51ccc178  queue 4 ", Run("--table-size", "100", "66.9.149.187:2794", "161.142.100.80:1766").Out);
    }

    [Fact]
    public void Custom_key_in_ethtool_colon_form()
    {
        string key = string.Join(':', Convert.ToHexString(Softnet.Nic.RssHasher.DefaultKey).Chunk(2).Select(c => new string(c))).ToLowerInvariant();
        var (exit, output, _) = Run("--key", key, "66.9.149.187:2794", "161.142.100.80:1766");
        Assert.Equal(0, exit);
        Assert.StartsWith("hash 0x51ccc178 ", output);
        Assert.Contains("custom key", output);
    }

    [Fact]
    public void Json_output()
    {
        var (exit, output, _) = Run("--json", "--queues", "8", "66.9.149.187:2794", "161.142.100.80:1766");
        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(output);
        var r = doc.RootElement;
        Assert.Equal("0x51ccc178", r.GetProperty("hash").GetString());
        Assert.Equal(0x51ccc178u, r.GetProperty("hashValue").GetUInt32());
        Assert.Equal("TCP/IPv4", r.GetProperty("type").GetString());
        Assert.Equal(120, r.GetProperty("tableIndex").GetInt32());
        Assert.Equal(0, r.GetProperty("queue").GetInt32());
        Assert.Equal(2794, r.GetProperty("srcPort").GetInt32());
    }

    [Theory]
    [InlineData("--key", "abcd")]
    [InlineData("--key", "zz")]
    [InlineData("--queues", "abc")]
    [InlineData("--queues", "0")]
    [InlineData("--proto", "sctp")]
    [InlineData("--table-size", "-1")]
    [InlineData("--weights", "0,0")]
    [InlineData("--weights", "100,100")]
    [InlineData("--weights", "1,x")]
    public void Bad_options_exit_2_with_a_message(string option, string value)
    {
        var (exit, output, err) = Run(option, value, "66.9.149.187:2794", "161.142.100.80:1766");
        Assert.Equal(RssCommand.BadInput, exit);
        Assert.Equal("", output);
        Assert.StartsWith("softnet rss: ", err);
        Assert.DoesNotContain("   at ", err); // no stack trace
    }

    [Theory]
    [InlineData("66.9.149.300:1", "1.2.3.4:2")]
    [InlineData("66.9.149.187:70000", "1.2.3.4:2")]
    [InlineData("1.2.3.4:1", "[::1]:2")]
    [InlineData("[::1:2", "::2")]
    [InlineData("[1.2.3.4]:5", "1.2.3.4:6")]
    [InlineData("host.example:80", "1.2.3.4:6")]
    [InlineData("1.2.3.4:1", "5.6.7.8")]  // tcp (from --proto) needs both ports
    public void Bad_endpoints_exit_2(string src, string dst)
    {
        string[] args = src == "1.2.3.4:1" && dst == "5.6.7.8" ? ["--proto", "tcp", src, dst] : [src, dst];
        var (exit, _, err) = Run(args);
        Assert.Equal(RssCommand.BadInput, exit);
        Assert.StartsWith("softnet rss: ", err);
    }
}
