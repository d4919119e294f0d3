using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Nic;
using Softnet.Pipeline;
using Softnet.Tests.Nic;
using Xunit;

namespace Softnet.Tests.Gro;

/// <summary>udp4_gro_receive and udp6_gro_receive check a datagram's checksum with skb_gro_checksum_validate_zero_check:
/// a zero checksum passes GRO over either family (the IPv6 socket decides later whether it takes one), a wrong one
/// flushes the datagram as a bad checksum.</summary>
public class UdpGroChecksumTests
{
    private static Softnet.Gro.GroStats Run(params byte[][] frames)
    {
        var pipeline = new ReplayPipeline(new ReplayOptions { Nic = new NicOptions { RxChecksum = false }, Gro = new Softnet.Gro.GroOptions() });
        using var reader = new MemoryCaptureReader(frames.Select((f, i) => ((long)(i + 1) * 1000, f)).ToList());
        pipeline.Run(reader, "test");
        return pipeline.Gro!.TotalStats();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_zero_udp_checksum_passes_gro_and_a_wrong_one_is_flushed_as_bad(bool v6)
    {
        var zero = RxChecksumOffloadTests.Frame(v6, tcp: false, payload: 30);
        BinaryPrimitives.WriteUInt16BigEndian(zero.AsSpan(14 + (v6 ? 40 : 20) + 6), 0);
        var wrong = RxChecksumOffloadTests.Frame(v6, tcp: false, payload: 30, seed: 2);
        wrong[^1] ^= 0x40;
        var stats = Run(zero, wrong);
        Assert.Equal(1, stats.NormalBy(Softnet.Gro.GroNormalReason.Udp));
        Assert.Equal(1, stats.NormalBy(Softnet.Gro.GroNormalReason.BadChecksum));
    }
}
