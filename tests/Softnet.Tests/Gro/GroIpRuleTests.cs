using Softnet.Gro;
using Xunit;
using static Softnet.Tests.Gro.GroRun;

namespace Softnet.Tests.Gro;

/// <summary>The network-layer rules: inet_gro_receive / inet_gro_flush and ipv6_gro_receive / ipv6_gro_flush.</summary>
public class GroIpRuleTests
{
    private static TcpSeg S(bool v6) => new() { V6 = v6 };

    [Theory, InlineData(false), InlineData(true)]
    public void Ip_flush_when_ecn_differs(bool v6)
    {
        var a = S(v6);
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Tos = 0x01 }));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Ip_flush_when_tos_differs(bool v6)
    {
        var a = S(v6);
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Tos = 0x10 }));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Ip_flush_when_ttl_or_hop_limit_differs(bool v6)
    {
        var a = S(v6);
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Ttl = 63 }));
    }

    [Fact]
    public void Ipv4_options_are_not_merged()
    {
        var a = S(false);
        var b = a.Next() with { IpOptions = [1, 1, 1, 0] };
        var c = b.Next() with { IpOptions = [] };
        // The held flow is not disturbed by the option packet (different header length: different offsets), but
        // the following segment cannot continue it after the gap.
        var frames = One(a, b, c);
        Assert.Equal([100, 100, 100], Delivered.Payloads(frames));
    }

    [Fact]
    public void Ipv4_fragments_are_not_merged()
    {
        var a = S(false);
        var frag = a.Next() with { FragBits = 0x2000 };
        Assert.Equal([100, 100], Payloads(a, frag));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Ip_padded_frames_are_not_merged(bool v6)
    {
        var a = S(v6) with { PayloadLen = 4 };
        var b = a.Next() with { Padding = 6 };
        Assert.Equal([4, 4], Payloads(a, b));
    }

    [Fact]
    public void Ipv4_id_incrementing_with_df_coalesces() => Assert.Equal([200], Payloads(Train(S(false), 2)));

    [Fact]
    public void Ipv4_id_fixed_with_df_coalesces()
    {
        var a = S(false) with { Id = 8 };
        Assert.Equal([200], Payloads(a, a.Next() with { Id = 8 }));
    }

    [Fact]
    public void Ipv4_id_incrementing_without_df_coalesces()
    {
        var a = S(false) with { Df = false, Id = 8 };
        Assert.Equal([200], Payloads(a, a.Next()));
    }

    [Fact]
    public void Ipv4_id_fixed_without_df_coalesces_in_current_kernels()
    {
        var a = S(false) with { Df = false, Id = 8 };
        Assert.Equal([200], Payloads(a, a.Next() with { Id = 8 }));
    }

    [Fact]
    public void Ipv4_id_fixed_without_df_does_not_coalesce_in_older_kernels()
    {
        var a = S(false) with { Df = false, Id = 8 };
        var o = new GroOptions { FixedIdRequiresDf = true };
        Assert.Equal([100, 100], Delivered.Payloads(One(o, a, a.Next() with { Id = 8 })));
    }

    [Fact]
    public void Ipv4_id_two_incrementing_then_fixed_coalesces_only_first_two()
    {
        var a = S(false) with { Id = 8 };
        var b = a.Next();
        var c = b.Next() with { Id = 9 };
        Assert.Equal([200, 100], Payloads(a, b, c));
    }

    [Fact]
    public void Ipv4_id_two_fixed_then_incrementing_coalesces_only_first_two()
    {
        var a = S(false) with { Id = 8 };
        var b = a.Next() with { Id = 8 };
        var c = b.Next() with { Id = 9 };
        Assert.Equal([200, 100], Payloads(a, b, c));
    }

    [Fact]
    public void Ipv4_flush_when_df_differs()
    {
        var a = S(false);
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Df = false }));
    }

    [Fact]
    public void Ipv4_id_jump_flushes()
    {
        var a = S(false) with { Id = 8 };
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Id = 20 }));
    }

    [Fact]
    public void Ipv6_flow_label_change_is_another_flow()
    {
        var a = S(true) with { FlowLabel = 1 };
        var b = a.Next() with { FlowLabel = 2 };
        var c = b.Next() with { FlowLabel = 1 };
        // b does not match a's flow, so a stays held; c cannot continue a (gap) and replaces it.
        var frames = One(a, b, c);
        Assert.Equal(3, frames.Count);
        Assert.Equal([a.Seq, b.Seq, c.Seq], frames.Select(f => Delivered.Parse(f).Seq).ToArray());
    }

    private static readonly byte[] DstOpt1 = [1, 4, 0, 0, 0, 0];   // PadN over 6 bytes
    private static readonly byte[] DstOpt2 = [1, 4, 1, 1, 1, 1];

    [Fact]
    public void Ipv6_destination_options_equal_coalesce()
    {
        var a = S(true) with { Ext = [(60, DstOpt1)] };
        Assert.Equal([200], Payloads(a, a.Next()));
    }

    [Fact]
    public void Ipv6_destination_options_different_do_not_coalesce()
    {
        var a = S(true) with { Ext = [(60, DstOpt1)] };
        var b = a.Next() with { Ext = [(60, DstOpt2)] };
        Assert.Equal([100, 100], Payloads(a, b));
    }

    [Fact]
    public void Ipv6_routing_header_equal_coalesce()
    {
        byte[] rh = [0, 0, 0, 0, 0, 0];
        var a = S(true) with { Ext = [(43, rh)] };
        Assert.Equal([200], Payloads(a, a.Next()));
    }

    [Fact]
    public void Ipv6_hop_by_hop_equal_coalesces()
    {
        var a = S(true) with { Ext = [(0, DstOpt1)] };
        Assert.Equal([200], Payloads(a, a.Next()));
    }

    [Fact]
    public void Ipv6_hop_by_hop_different_does_not_coalesce()
    {
        var a = S(true) with { Ext = [(0, DstOpt1)] };
        Assert.Equal([100, 100], Payloads(a, a.Next() with { Ext = [(0, DstOpt2)] }));
    }

    [Fact]
    public void Ipv6_fragments_are_not_merged()
    {
        // As the selftest: two whole segments merge and are flushed (it sleeps), then the fragment goes up
        // alone and the segment after it is held on its own.
        var a = S(true);
        var b = a.Next();
        var frag = b.Next() with { Ext = [(44, [0, 1, 0, 0, 0, 1])] };
        var d = frag.Next() with { Ext = [] };
        var outp = GroReplay.Run([[a.Build(), b.Build()], [frag.Build(), d.Build()]], new GroOptions(), 0);
        Assert.Equal([200, 100, 100], Delivered.Payloads(outp));
    }

    [Fact]
    public void Ipv6_fragment_goes_up_before_the_held_flow_in_one_poll()
    {
        var a = S(true);
        var frag = a.Next() with { Ext = [(44, [0, 1, 0, 0, 0, 1])] };
        var outp = One(a, frag);
        Assert.Equal([frag.Seq, a.Seq], outp.Select(f => Delivered.Parse(f).Seq).ToArray());
    }

    [Fact]
    public void Vlan_same_tag_coalesces_and_keeps_the_tag()
    {
        var a = S(false) with { VlanTci = 10 };
        var frames = One(a, a.Next());
        Assert.Equal([200], Delivered.Payloads(frames));
        Assert.Equal(0x81, frames[0][12]);
    }

    [Fact]
    public void Vlan_different_ids_are_different_flows()
    {
        var a = S(false) with { VlanTci = 10 };
        var b = a.Next() with { VlanTci = 11 };
        Assert.Equal([100, 100], Payloads(a, b));
    }

    [Fact]
    public void Udp_is_never_merged()
    {
        var frames = new List<byte[]>();
        for (int i = 0; i < 4; i++) frames.Add(UdpFrame(100));
        var outp = GroReplay.Run([frames], new GroOptions(), 0);
        Assert.Equal(4, outp.Count);
        for (int i = 0; i < 4; i++) Assert.Equal(frames[i], outp[i]);
    }

    [Fact]
    public void Non_ip_frames_pass_through()
    {
        var arp = new byte[60];
        arp[0] = 0xFF; arp[12] = 0x08; arp[13] = 0x06;
        var outp = GroReplay.Run([[arp]], new GroOptions(), 0);
        Assert.Equal(arp, Assert.Single(outp));
    }

    internal static byte[] UdpFrame(int payload)
    {
        var f = new byte[14 + 20 + 8 + payload];
        f[5] = 2; f[11] = 1; f[12] = 0x08;
        var ip = f.AsSpan(14);
        ip[0] = 0x45;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(2), (ushort)(20 + 8 + payload));
        ip[8] = 64; ip[9] = 17;
        ip[12] = 10; ip[15] = 1; ip[16] = 10; ip[19] = 2;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(ip.Slice(10), Softnet.Packets.Checksum.Compute(ip.Slice(0, 20)));
        var u = ip.Slice(20);
        u[0] = 0x13; u[2] = 0x14;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(u.Slice(4), (ushort)(8 + payload));
        return f;
    }
}
