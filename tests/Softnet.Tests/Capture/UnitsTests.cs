using Softnet.Capture;
using Xunit;

namespace Softnet.Tests.Capture;

public class UnitsTests
{
    [Theory]
    [InlineData("1500", 1500L)]
    [InlineData("512K", 512L * 1024)]
    [InlineData("512k", 512L * 1024)]
    [InlineData("20M", 20L * 1024 * 1024)]
    [InlineData("1G", 1024L * 1024 * 1024)]
    [InlineData("1g", 1024L * 1024 * 1024)]
    [InlineData("2T", 2L << 40)]
    [InlineData("1.5M", 1536L * 1024)]
    [InlineData("4KB", 4096L)]
    [InlineData("4MiB", 4L << 20)]
    [InlineData(" 64 K ", 65536L)]
    [InlineData("0", 0L)]
    public void Sizes_use_iperf3_1024_multiples(string text, long expected)
        => Assert.Equal(expected, Units.ParseBytes(text));

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("10X")]
    [InlineData("K")]
    [InlineData("1.2.3M")]
    public void Bad_sizes_throw_format_errors(string text)
    {
        var e = Assert.Throws<FormatException>(() => Units.ParseBytes(text));
        Assert.Contains("size", e.Message);
    }

    [Fact]
    public void Negative_size_is_rejected()
        => Assert.Throws<ArgumentException>(() => Units.ParseBytes("-5M"));

    [Theory]
    [InlineData("10Gbit", 10e9)]
    [InlineData("100Mbit", 100e6)]
    [InlineData("1Gbps", 1e9)]
    [InlineData("2.5G", 2.5e9)]
    [InlineData("100m", 100e6)]
    [InlineData("64k", 64e3)]
    [InlineData("5000000", 5e6)]
    [InlineData("40Gbit/s", 40e9)]
    [InlineData("1Tbit", 1e12)]
    public void Bit_rates_use_si_1000_multiples(string text, double bps)
    {
        var r = Units.ParseRate(text);
        Assert.False(r.IsMax);
        Assert.False(r.IsPacketRate);
        Assert.Equal(bps, r.BitsPerSecond, 6);
    }

    [Theory]
    [InlineData("14.88Mpps", 14.88e6)]
    [InlineData("1000pps", 1000)]
    [InlineData("1kpps", 1000)]
    public void Packet_rates(string text, double pps)
    {
        var r = Units.ParseRate(text);
        Assert.True(r.IsPacketRate);
        Assert.Equal(pps, r.PacketsPerSecond, 6);
    }

    [Theory]
    [InlineData("max")]
    [InlineData("MAX")]
    public void Max_rate(string text) => Assert.True(Units.ParseRate(text).IsMax);

    [Theory]
    [InlineData("fast")]
    [InlineData("10Gbyte")]
    [InlineData("")]
    public void Bad_rates_throw_format_errors(string text)
    {
        var e = Assert.Throws<FormatException>(() => Units.ParseRate(text));
        Assert.Contains("rate", e.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-1G")]
    public void Rates_must_be_positive(string text)
        => Assert.Throws<ArgumentException>(() => Units.ParseRate(text));

    [Theory]
    [InlineData("10", 10_000.0)]
    [InlineData("10s", 10_000.0)]
    [InlineData("1.5s", 1_500.0)]
    [InlineData("500ms", 500.0)]
    [InlineData("100us", 0.1)]
    [InlineData("2m", 120_000.0)]
    [InlineData("1h", 3_600_000.0)]
    public void Durations(string text, double ms)
        => Assert.Equal(ms, Units.ParseDuration(text).TotalMilliseconds, 6);

    [Theory]
    [InlineData("10 parsecs")]
    [InlineData("x")]
    [InlineData("")]
    public void Bad_durations_throw_format_errors(string text)
    {
        var e = Assert.Throws<FormatException>(() => Units.ParseDuration(text));
        Assert.Contains("duration", e.Message);
    }

    [Fact]
    public void Rate_prints_back()
    {
        Assert.Equal("10Gbit/s", Units.ParseRate("10Gbit").ToString());
        Assert.Equal("14.88Mpps", Units.ParseRate("14.88Mpps").ToString());
        Assert.Equal("max", Rate.Max.ToString());
    }
}
