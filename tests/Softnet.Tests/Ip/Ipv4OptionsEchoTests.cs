using System.Buffers.Binary;
using Softnet.Ip;
using Xunit;
using static Softnet.Tests.Ip.Ipv4OptionsCompileTests;

namespace Softnet.Tests.Ip;

/// <summary>__ip_options_echo and ip_options_build: the options an answer carries.</summary>
public class Ipv4OptionsEchoTests
{
    private const uint Us = 0x0A090002, Sender = 0x0A09000A;

    /// <summary>Compiles <paramref name="options"/> as received, echoes them and builds the answer's header.</summary>
    private static (bool Ok, IpOptions Opt, byte[] Answer) Answer(params byte[] options)
    {
        var h = Header(options);
        var sopt = default(IpOptions);
        Assert.True(Ipv4Options.Compile(h, ref sopt, Spec, Now, null, out _));
        var data = new byte[Ipv4Options.MaxLength];
        bool ok = Ipv4Options.Echo(h, sopt, null, data, out var dopt);
        var answer = new byte[20 + dopt.OptLen];
        if (ok) Ipv4Options.Build(answer, dopt, data, Sender, Us, 0x0A0B0C0D);
        return (ok, dopt, answer);
    }

    private static uint At(byte[] h, int i) => BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(i));

    [Fact]
    public void Ping_record_route_answer_holds_us_twice()
    {
        var (ok, opt, a) = Answer(7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0);
        Assert.True(ok);
        Assert.Equal(12, opt.OptLen);
        Assert.Equal(new byte[] { 7, 11, 12 }, a[20..23]);
        Assert.Equal(Spec, At(a, 23));
        Assert.Equal(Us, At(a, 27));
        Assert.Equal(0, a[31]);
    }

    [Fact]
    public void Record_route_without_room_for_the_answer_is_not_answered()
    {
        // 10 bytes: the request fills the first slot; the answer would need a second one that does not fit.
        var (ok, _, _) = Answer(7, 10, 4, 0, 0, 0, 0, 0, 0, 0);
        Assert.False(ok);
    }

    [Fact]
    public void Timestamp_answer_takes_another_entry()
    {
        var (ok, opt, a) = Answer([68, 20, 5, 1, .. new byte[16]]);
        Assert.True(ok && opt.TsNeedAddr && opt.TsNeedTime);
        Assert.Equal(21, a[22]);
        Assert.Equal(Spec, At(a, 24));
        Assert.Equal(Now, At(a, 28));
        Assert.Equal(Us, At(a, 32));
        Assert.Equal(0x0A0B0C0Du, At(a, 36));
    }

    [Fact]
    public void Reversed_source_route_goes_back_by_the_last_hop()
    {
        // Arrived via 10.9.0.31 then 10.9.0.32 (pointer past both): the answer goes to .32, then .31, then the sender.
        var (ok, opt, a) = Answer(137, 11, 12, 10, 9, 0, 31, 10, 9, 0, 32);
        Assert.True(ok);
        Assert.Equal(0x0A090020u, opt.Faddr);
        Assert.True(opt.IsStrictRoute);
        Assert.Equal(new byte[] { 137, 11, 4 }, a[20..23]);
        Assert.Equal(0x0A09001Fu, At(a, 23));
        Assert.Equal(Sender, At(a, 27));
    }

    [Fact]
    public void Source_route_through_the_sender_is_cut_short()
    {
        var (ok, opt, a) = Answer(131, 11, 12, 10, 9, 0, 10, 10, 9, 0, 33);
        Assert.True(ok);
        Assert.Equal(0x0A090021u, opt.Faddr);
        Assert.Equal(new byte[] { 131, 7, 4 }, a[20..23]);
        Assert.Equal(Sender, At(a, 23));
    }

    [Fact]
    public void Unused_source_route_and_other_options_are_not_echoed()
    {
        var (ok, opt, _) = Answer(131, 7, 4, 10, 77, 0, 5, 148, 4, 0, 0, 136, 4, 0, 1);
        Assert.True(ok);
        Assert.Equal(0, opt.OptLen);
    }
}
