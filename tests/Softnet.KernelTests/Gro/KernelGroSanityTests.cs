using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Xunit;

namespace Softnet.KernelTests.Gro;

/// <summary>
/// The kernel behaviours the harness must reproduce before its output can be trusted as the reference
/// (dev_gro_receive / inet_gro_receive / tcp_gro_receive as seen through a veth pair).
/// </summary>
[Collection("KernelGro")]
[Trait("Category", "Kernel")]
public sealed class KernelGroSanityTests(KernelGroFixture fx)
{
    private static List<FrameInfo> Decode(List<byte[]> frames) => frames.Select(f => new FrameInfo(f)).ToList();

    private static string Show(IEnumerable<FrameInfo> frames) => string.Join("\n", frames);

    private static int[] Payloads(List<FrameInfo> frames) => frames.Select(f => f.TcpPayloadLength).ToArray();

    [SkippableFact]
    public void Two_consecutive_segments_merge_with_summed_ip_length_and_partial_checksum()
    {
        var got = Decode(fx.Kernel("v4/data_same_2"));
        Assert.True(got.Count == 1, Show(got));
        var f = got[0];
        Assert.Equal(20 + 20 + 200, f.IpTotalLength);
        Assert.Equal(14 + 240, f.Bytes.Length);
        // inet_gro_complete rewrites tot_len and fixes the header checksum incrementally.
        Assert.True(Checksum.Verify(f.Bytes.AsSpan(f.IpOffset, 20)), "IPv4 header checksum must verify");
        // tcp_gro_complete leaves the pseudo-header sum for CHECKSUM_PARTIAL, not a full checksum.
        var ip = f.Bytes.AsSpan(f.IpOffset);
        uint pseudo = Checksum.PseudoHeaderV4(ip.Slice(12, 4), ip.Slice(16, 4), 6, 220);
        Assert.Equal((ushort)pseudo, f.TcpChecksum);
        Assert.True(f.Bytes.AsSpan(f.L4Offset + 20).ToArray().All(b => b == 'a'));
    }

    [SkippableFact]
    public void Ipv6_segments_merge_with_summed_payload_length()
    {
        var got = Decode(fx.Kernel("v6/data_same_4"));
        Assert.True(got.Count == 1, Show(got));
        Assert.Equal(40 + 20 + 400, got[0].IpTotalLength);
        var ip = got[0].Bytes.AsSpan(got[0].IpOffset);
        uint pseudo = Checksum.PseudoHeaderV6(ip.Slice(8, 16), ip.Slice(24, 16), 6, 420);
        Assert.Equal((ushort)pseudo, got[0].TcpChecksum);
    }

    [SkippableFact]
    public void Psh_segment_ends_the_merge_it_joins()
    {
        var got = Decode(fx.Kernel("v4/flags_psh"));
        Assert.True(Payloads(got).SequenceEqual([300, 200]), Show(got));
        Assert.True((got[0].TcpFlagsByte & TcpFlags.Psh) != 0, "the merged frame carries the PSH of its last segment");
    }

    [SkippableFact]
    public void Syn_segment_is_not_merged()
    {
        var got = Decode(fx.Kernel("v4/flags_syn"));
        Assert.True(got.Count >= 3 && got.Any(f => (f.TcpFlagsByte & TcpFlags.Syn) != 0 && f.TcpPayloadLength == 0), Show(got));
        Assert.Equal(400, got.Sum(f => f.TcpPayloadLength));
    }

    [SkippableFact]
    public void Bad_tcp_checksum_is_not_merged_and_overtakes_the_held_segment()
    {
        var c = GroCases.ByName("v4/tcp_bad_checksum_second");
        var got = fx.Kernel(c.Name);
        Assert.True(got.Count == 2, Show(Decode(got)));
        // The bad segment is delivered as-is at once; the good one stays held until the flush.
        Assert.Equal(c.Bursts[0][1], got[0]);
        Assert.Equal(c.Bursts[0][0], got[1]);
    }

    [SkippableFact]
    public void Unmerged_single_segment_comes_out_unchanged()
    {
        var c = GroCases.ByName("v4/data_single");
        Assert.Equal(c.Bursts[0], fx.Kernel(c.Name));
    }

    [SkippableFact]
    public void Vlan_tagged_frames_are_not_merged_and_keep_their_tag()
    {
        var c = GroCases.ByName("v4/vlan_same_flow");
        Assert.Equal(c.Bursts[0], fx.Kernel(c.Name));
    }

    [SkippableFact]
    public void Flows_flush_oldest_first_without_a_flow_hash()
    {
        var got = Decode(fx.Kernel("v4/flows_oldest_first"));
        Assert.True(got.Select(f => f.SrcPort).SequenceEqual(new ushort[] { 1502, 1501 }), Show(got));
        Assert.True(Payloads(got).SequenceEqual([200, 300]), Show(got));
    }

    [SkippableFact]
    public void Eight_flows_fit_the_gro_list_nine_evict_each_other()
    {
        var eight = Decode(fx.Kernel("v4/flows_8_interleaved"));
        Assert.True(Payloads(eight).SequenceEqual(Enumerable.Repeat(300, 8)), Show(eight));
        // MAX_GRO_SKBS = 8: the ninth flow evicts the oldest each time, so nothing ever merges.
        var nine = Decode(fx.Kernel("v4/flows_9_interleaved"));
        Assert.True(nine.Count == 27, Show(nine));
    }

    [SkippableFact]
    public void A_flow_stops_growing_at_64k()
    {
        var got = Decode(fx.Kernel("v4/large_64k"));
        Assert.True(Payloads(got).SequenceEqual([45 * 1448, 1448]), Show(got));
        var max = Decode(fx.Kernel("v4/large_max"));
        Assert.True(max[0].IpTotalLength == 65535, Show(max));
    }

    [SkippableFact]
    public void Segments_in_different_bursts_are_not_merged()
    {
        var got = Decode(fx.Kernel("v4/bursts_same_flow_two"));
        Assert.True(Payloads(got).SequenceEqual([200, 200]), Show(got));
    }

    [SkippableFact]
    public void Static_run_builds_and_removes_its_own_topology()
    {
        string? why = KernelGro.Unavailable();
        Skip.If(why != null, why);
        var frames = GroCases.ByName("v6/data_same_2").Bursts;
        // Other test classes build their own namespaces concurrently: look only at the GRO harness's.
        static string[] Mine() => Proc.Check("ip", "netns", "list").Split('\n')
            .Select(l => l.Split(' ')[0]).Where(n => n.StartsWith("sn-gro-", StringComparison.Ordinal)).Order().ToArray();
        var before = Mine();
        var got = KernelGro.Run(frames);
        Assert.Single(got);
        Assert.Equal(40 + 20 + 200, new FrameInfo(got[0]).IpTotalLength);
        Assert.Equal(before, Mine());
    }
}
