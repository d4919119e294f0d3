using Softnet.Gro;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Gro;

/// <summary>
/// Jumbo frames (MTU 9000 on both veth ends) through the kernel's GRO and through Softnet's: each frame reaches
/// Softnet's GRO the way the NIC receives it, spread over 2 KB RX buffers (head + page frags), so merges run the
/// frag-stealing path until MAX_SKB_FRAGS is full and then chain on the frag_list. The outputs must match flow by
/// flow, byte for byte, and the kernel's merge sizes are checked against the limit worked out from its source.
/// </summary>
[Collection("KernelGro")]
[Trait("Category", "Kernel")]
public sealed class GroJumboKernelComparisonTests(KernelGroFixture fx)
{
    public static IEnumerable<object[]> Cases => GroCases.JumboNames();

    /// <summary>The NIC's default RX buffer: 2048 bytes, 1792 of them for data after the 256-byte headroom.</summary>
    private const int RxBuffer = 2048;

    [SkippableTheory]
    [MemberData(nameof(Cases))]
    public void Softnet_gro_matches_the_kernel_on_jumbo_frames(string name)
    {
        var kernel = fx.Kernel(name);
        var c = GroCases.ByName(name, jumbo: true);
        var options = new GroOptions { VlanGro = KernelGro.HasVlanGro };
        var multiBuffer = GroReplay.Run(c.Bursts, options, RxBuffer);
        string? diff = GroCompare.Diff(kernel, multiBuffer);
        Assert.True(diff == null, $"{name} (multi-buffer skbs): {diff}");
        var linear = GroReplay.Run(c.Bursts, options);
        diff = GroCompare.Diff(kernel, linear);
        Assert.True(diff == null, $"{name} (one-buffer skbs): {diff}");
    }

    /// <summary>
    /// skb_gro_receive refuses a segment once p->len + len would reach 65536 (gro_max_size and
    /// GRO_LEGACY_MAX_SIZE). p->len counts from the network header: a 9000-byte IPv4 segment with timestamps
    /// carries 8948 bytes of payload, so 9000 + 6 * 8948 = 62688 still takes one more segment's check
    /// (62688 + 8948 = 71636 &gt;= 65536 fails): 7 segments per merged skb. 16 segments come out as 7, 7, 2.
    /// </summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void Kernel_merges_seven_9000_byte_segments_per_skb(bool v6)
    {
        string name = (v6 ? "jumbo/v6/" : "jumbo/v4/") + "mss_ts_x16";
        var kernel = fx.Kernel(name);
        int ipHdr = v6 ? 40 : 20, headers = 14 + ipHdr + 32, mss = GroCases.JumboMtu - ipHdr - 32;
        int[] expected = [headers + 7 * mss, headers + 7 * mss, headers + 2 * mss];
        Assert.Equal(expected, kernel.Select(f => f.Length).ToArray());
        var softnet = GroReplay.Run(GroCases.ByName(name, jumbo: true).Bursts, new GroOptions(), RxBuffer);
        Assert.Equal(expected, softnet.Select(f => f.Length).ToArray());
    }
}
