using System.Buffers.Binary;
using Softnet.Ip;
using Xunit;

namespace Softnet.Tests.Ip;

/// <summary>ip_options_compile on received headers: what it fills in place and where a parameter problem points.</summary>
public class Ipv4OptionsCompileTests
{
    internal const uint Spec = 0x0A090002, Now = 0x01020304;

    /// <summary>A 20-byte header followed by <paramref name="options"/> padded with END to a word.</summary>
    internal static byte[] Header(params byte[] options)
    {
        var h = new byte[20 + ((options.Length + 3) & ~3)];
        h[0] = (byte)(0x40 | (h.Length >> 2));
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), 0x0A09000A);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(16), 0x0A090002);
        options.CopyTo(h, 20);
        return h;
    }

    private static (bool Ok, IpOptions Opt, int Problem) Compile(byte[] h)
    {
        var opt = default(IpOptions);
        bool ok = Ipv4Options.Compile(h, ref opt, Spec, Now, null, out int problem);
        return (ok, opt, problem);
    }

    private static uint At(byte[] h, int i) => BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(i));

    [Fact]
    public void Record_route_takes_spec_dst_and_moves_its_pointer()
    {
        var h = Header(7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok);
        Assert.Equal(20, opt.Rr);
        Assert.True(opt.RrNeedAddr);
        Assert.True(opt.IsChanged);
        Assert.Equal(8, h[22]);
        Assert.Equal(Spec, At(h, 23));
        Assert.Equal(12, opt.OptLen);
    }

    [Fact]
    public void Full_record_route_is_left_alone()
    {
        var h = Header(7, 7, 8, 1, 1, 1, 1);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok);
        Assert.False(opt.RrNeedAddr);
        Assert.Equal(8, h[22]);
        Assert.Equal(0x01010101u, At(h, 23));
    }

    [Fact]
    public void Timestamp_only_stamps_the_time()
    {
        var h = Header(68, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok && opt.TsNeedTime && !opt.TsNeedAddr);
        Assert.Equal(9, h[22]);
        Assert.Equal(Now, At(h, 24));
    }

    [Fact]
    public void Timestamp_and_address_takes_both()
    {
        var h = Header(68, 12, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok && opt.TsNeedTime && opt.TsNeedAddr);
        Assert.Equal(13, h[22]);
        Assert.Equal(Spec, At(h, 24));
        Assert.Equal(Now, At(h, 28));
    }

    [Fact]
    public void Prespecified_timestamp_stamps_only_for_a_non_unicast_address()
    {
        // Without a namespace every address counts as someone else's unicast: nothing stamped, pointer kept.
        var other = Header(68, 12, 5, 3, 10, 9, 9, 9, 0, 0, 0, 0);
        var (ok, opt, _) = Compile(other);
        Assert.True(ok && !opt.TsNeedTime);
        Assert.Equal(5, other[22]);
        // A broadcast address is not unicast: stamped.
        var bcast = Header(68, 12, 5, 3, 255, 255, 255, 255, 0, 0, 0, 0);
        (ok, opt, _) = Compile(bcast);
        Assert.True(ok && opt.TsNeedTime);
        Assert.Equal(13, bcast[22]);
        Assert.Equal(Now, At(bcast, 28));
    }

    [Fact]
    public void Full_timestamp_counts_its_overflow()
    {
        var h = Header(68, 8, 9, 0x21, 1, 2, 3, 4);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok);
        Assert.Equal(20, opt.Ts);
        Assert.Equal(0x31, h[23]);
        Assert.True(opt.IsChanged);
        // A full prespecified timestamp has no overflow to count.
        var pre = Header(68, 12, 13, 0x03, 1, 2, 3, 4, 5, 6, 7, 8);
        (ok, _, _) = Compile(pre);
        Assert.True(ok);
        Assert.Equal(0x03, pre[23]);
    }

    [Theory]
    [InlineData(new byte[] { 68, 8, 9, 0xF0, 1, 2, 3, 4 }, 23)] // overflow 15: at the flags
    [InlineData(new byte[] { 7, 2, 0, 0 }, 21)] // record route shorter than 3: at its length
    [InlineData(new byte[] { 1, 68, 0, 0 }, 21)] // length 0: at the option
    [InlineData(new byte[] { 1, 68, 9, 0 }, 21)] // length past the header: at the option
    [InlineData(new byte[] { 7, 11, 3, 0, 0, 0, 0, 0, 0, 0, 0 }, 22)] // record route pointer under 4
    [InlineData(new byte[] { 7, 9, 8, 0, 0, 0, 0, 0, 0 }, 22)] // record route pointer with less than a slot left
    [InlineData(new byte[] { 68, 8, 4, 0, 0, 0, 0, 0 }, 22)] // timestamp pointer under 5
    [InlineData(new byte[] { 68, 3, 5 }, 21)] // timestamp shorter than 4
    [InlineData(new byte[] { 68, 8, 5, 1, 0, 0, 0, 0 }, 22)] // timestamp and address, no room for a pair
    [InlineData(new byte[] { 131, 2, 0, 0 }, 21)] // source route shorter than 3
    [InlineData(new byte[] { 137, 7, 3, 1, 2, 3, 4 }, 22)] // source route pointer under 4
    [InlineData(new byte[] { 131, 3, 4, 131, 3, 4, 0, 0 }, 23)] // a second source route
    [InlineData(new byte[] { 7, 3, 4, 7, 3, 4, 0, 0 }, 23)] // a second record route
    [InlineData(new byte[] { 148, 2, 0, 0 }, 21)] // router alert shorter than 4
    [InlineData(new byte[] { 134, 10, 0, 0, 0, 1, 1, 4, 0, 0 }, 22)] // CIPSO with no DOI configured: at the DOI
    [InlineData(new byte[] { 134, 6, 0, 0, 0, 1 }, 21)] // CIPSO shorter than 8: at its length
    [InlineData(new byte[] { 1, 1, 1, 7 }, 23)] // one byte left for a multi-byte option
    public void Malformed_option_points_where_the_kernel_points(byte[] options, int pointer)
    {
        var (ok, _, problem) = Compile(Header(options));
        Assert.False(ok);
        Assert.Equal(pointer, problem);
    }

    [Fact]
    public void Bytes_after_end_of_list_become_end()
    {
        var h = Header(1, 0, 7, 9);
        var (ok, opt, _) = Compile(h);
        Assert.True(ok);
        Assert.True(opt.IsChanged);
        Assert.Equal(new byte[] { 1, 0, 0, 0 }, h[20..]);
    }

    [Fact]
    public void Router_alert_is_noted_only_with_value_zero()
    {
        var (ok, opt, _) = Compile(Header(148, 4, 0, 0));
        Assert.True(ok);
        Assert.Equal(20, opt.RouterAlert);
        (ok, opt, _) = Compile(Header(148, 4, 0, 1));
        Assert.True(ok);
        Assert.Equal(0, opt.RouterAlert);
    }

    [Fact]
    public void Source_route_is_noted_and_unknown_options_pass()
    {
        var (ok, opt, _) = Compile(Header(136, 4, 0, 1, 137, 7, 4, 10, 0, 0, 1, 130, 3, 0));
        Assert.True(ok);
        Assert.Equal(24, opt.Srr);
        Assert.True(opt.IsStrictRoute);
        Assert.False(opt.IsChanged);
    }

    [Fact]
    public void Timestamp_is_milliseconds_since_midnight_utc()
    {
        var t = new DateTimeOffset(2026, 12, 5, 12, 35, 42, 134, TimeSpan.Zero);
        long ns = t.ToUnixTimeMilliseconds() * 1_000_000 + 999_999;
        Assert.Equal((uint)(((12 * 60 + 35) * 60 + 42) * 1000 + 134), Ipv4Options.Timestamp32(ns));
    }
}
