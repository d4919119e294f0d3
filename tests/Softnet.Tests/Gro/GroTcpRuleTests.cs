using System.Buffers.Binary;
using Softnet.Gro;
using Softnet.Packets;
using Xunit;
using static Softnet.Tests.Gro.GroRun;

namespace Softnet.Tests.Gro;

/// <summary>tcp_gro_receive's rules, each case as tools/testing/selftests/net/gro.c checks it (payload sizes
/// of what the receiver sees), for IPv4 and IPv6.</summary>
public class GroTcpRuleTests
{
    private static TcpSeg S(bool v6) => new() { V6 = v6 };

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_same_flow_data_coalesces(bool v6)
    {
        Assert.Equal([400], Payloads(Train(S(v6), 4)));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_large_then_small_coalesces_and_completes(bool v6)
    {
        var a = S(v6);
        var b = a.Next();
        var c = b.Next(50);
        var d = c.Next(100);
        // The short segment is merged, then completes the flow; the next one starts a new skb.
        Assert.Equal([250, 100], Payloads(a, b, c, d));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_small_then_large_does_not_coalesce(bool v6)
    {
        var a = S(v6) with { PayloadLen = 50 };
        var b = a.Next(100);
        Assert.Equal([50, 100], Payloads(a, b));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_pure_acks_are_never_merged(bool v6)
    {
        var a = S(v6) with { PayloadLen = 0 };
        var dup = a with { Id = 2 };
        var next = a with { Ack = 6000, Id = 3 };
        Assert.Equal([0, 0, 0], Payloads(a, dup, next));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_pure_ack_after_data_flushes_the_held_flow(bool v6)
    {
        var a = S(v6);
        var b = a.Next();
        var ack = b.Next(0);
        var frames = One(a, b, ack);
        Assert.Equal([200, 0], Delivered.Payloads(frames));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_when_ack_changes(bool v6)
    {
        var a = S(v6);
        var b = a.Next() with { Ack = a.Ack + 1 };
        Assert.Equal([100, 100], Payloads(a, b));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_when_window_changes(bool v6)
    {
        var a = S(v6);
        var b = a.Next() with { Window = 600 };
        Assert.Equal([100, 100], Payloads(a, b));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_psh_is_merged_and_ends_coalescing(bool v6)
    {
        var t = Train(S(v6), 5);
        t[2] = t[2] with { Flags = TcpSeg.AckF | TcpSeg.Psh };
        var frames = One(t);
        Assert.Equal([300, 200], Delivered.Payloads(frames));
        // PSH of the last merged segment is OR-ed into the kept (first) header.
        Assert.Equal(TcpSeg.AckF | TcpSeg.Psh, Delivered.Parse(frames[0]).Flags);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_fin_is_merged_and_ends_coalescing(bool v6)
    {
        var t = Train(S(v6), 3);
        t[1] = t[1] with { Flags = TcpSeg.AckF | TcpSeg.Fin };
        var frames = One(t);
        Assert.Equal([200, 100], Delivered.Payloads(frames));
        Assert.Equal(TcpSeg.AckF | TcpSeg.Fin, Delivered.Parse(frames[0]).Flags);
    }

    [Theory]
    [InlineData(false, TcpSeg.Syn), InlineData(true, TcpSeg.Syn)]
    [InlineData(false, TcpSeg.Rst), InlineData(true, TcpSeg.Rst)]
    [InlineData(false, TcpSeg.Urg), InlineData(true, TcpSeg.Urg)]
    public void Tcp_syn_rst_urg_end_coalescing_unmerged(bool v6, byte flag)
    {
        var t = Train(S(v6), 5);
        t[2] = t[2] with { Flags = (byte)(TcpSeg.AckF | flag), UrgPtr = flag == TcpSeg.Urg ? (ushort)10 : (ushort)0 };
        // As the selftest expects: two merged, the flagged one alone, two merged.
        Assert.Equal([200, 100, 200], Payloads(t));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_cwr_segment_stands_alone_as_linux_6_18_compares_cwr_like_other_flags(bool v6)
    {
        var t = Train(S(v6), 5);
        t[2] = t[2] with { Flags = TcpSeg.AckF | TcpSeg.Cwr };
        var frames = One(t);
        // Before 6.18 a CWR segment flushed the held skb but then took later segments in: [200, 300].
        Assert.Equal([200, 100, 200], Delivered.Payloads(frames));
        Assert.Equal(TcpSeg.AckF | TcpSeg.Cwr, Delivered.Parse(frames[1]).Flags);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_bad_checksum_is_not_merged(bool v6)
    {
        var t = Train(S(v6), 2);
        var bad = t[1].Next() with { BadChecksum = true };
        var frames = One(t[0], t[1], bad, bad.Next() with { BadChecksum = false });
        // The bad one goes up at once (before the held flow); the next segment then meets a sequence gap.
        Assert.Equal([100, 200, 100], Delivered.Payloads(frames));
        Assert.Equal(bad.Seq, Delivered.Parse(frames[0]).Seq);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_bad_checksum_is_trusted_when_the_device_verified(bool v6)
    {
        var t = Train(S(v6), 2);
        t[1] = t[1] with { BadChecksum = true };
        var frames = One(new GroOptions { RxChecksum = RxChecksum.Unnecessary }, t);
        Assert.Equal([200], Delivered.Payloads(frames));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_complete_checksum_state_validates_from_skb_csum(bool v6)
    {
        var t = Train(S(v6), 3);
        t[2] = t[2] with { BadChecksum = true };
        Assert.Equal([100, 200], Delivered.Payloads(One(new GroOptions { RxChecksum = RxChecksum.Complete }, t)));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_on_sequence_gap(bool v6)
    {
        var a = S(v6);
        var c = a.Next().Next();
        Assert.Equal([100, 100], Payloads(a, c));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_on_retransmit(bool v6)
    {
        var a = S(v6);
        var b = a.Next();
        Assert.Equal([200, 100], Payloads(a, b, a with { Id = 9 }));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_equal_options_coalesce(bool v6)
    {
        var t = Train(S(v6) with { TcpOptions = TcpSeg.Ts(7, 8) }, 3);
        Assert.Equal([300], Payloads(t));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_when_timestamp_differs(bool v6)
    {
        var a = S(v6);
        var b = a.Next() with { TcpOptions = TcpSeg.Ts(101, 200) };
        var c = b.Next();
        Assert.Equal([100, 200], Payloads(a, b, c));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flush_when_option_length_differs(bool v6)
    {
        var a = S(v6);
        var b = a.Next() with { TcpOptions = [1, 1, 1, 1, .. TcpSeg.Ts(100, 200)] };
        Assert.Equal([100, 100], Payloads(a, b));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_segment_bigger_than_mss_flushes(bool v6)
    {
        var a = S(v6);
        var b = a.Next(101);
        Assert.Equal([100, 101], Payloads(a, b));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_flow_stops_below_64k(bool v6)
    {
        // 52- (v4) or 72-byte (v6) headers + n * 1448 must stay below 65536: the segment that would reach it
        // starts a new skb.
        var t = Train(S(v6) with { PayloadLen = 1448 }, 50);
        int hdr = v6 ? 40 + 32 : 20 + 32;
        int fit = (65536 - 1 - hdr) / 1448;
        var p = Payloads(t);
        Assert.Equal([fit * 1448, (50 - fit) * 1448], p);
        Assert.True(hdr + fit * 1448 < 65536);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_selftest_large_last_segment_alone(bool v6)
    {
        // A flow filling the limit exactly up to a remainder, then one segment of remainder+1 that cannot fit.
        int hdr = v6 ? 72 : 52;
        var t = Train(S(v6) with { PayloadLen = 1000 }, 70);
        int fit = (65536 - 1 - hdr) / 1000;
        Assert.Equal([fit * 1000, (70 - fit) * 1000], Payloads(t));
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_more_than_17_segments_use_frag_list(bool v6)
    {
        var t = Train(S(v6), 30);
        var o = new GroOptions();
        var frames = One(o, t);
        Assert.Equal([3000], Delivered.Payloads(frames));
        var bytes = Delivered.PayloadBytes(frames[0]);
        for (int i = 0; i < bytes.Length; i++) Assert.Equal(TcpSeg.PayloadByte(t[0].Seq, i), bytes[i]);
    }

    [Theory, InlineData(false), InlineData(true)]
    public void Tcp_merged_skb_has_kernel_headers(bool v6)
    {
        var t = Train(S(v6), 3);
        var f = One(t)[0];
        var s = Delivered.Parse(f);
        Assert.Equal(300, s.Payload);
        Assert.Equal(t[0].Seq, s.Seq);
        int l4len = f.Length - s.L4Offset;
        uint pseudo;
        if (!v6)
        {
            var iph = f.AsSpan(14, 20);
            Assert.Equal(f.Length - 14, BinaryPrimitives.ReadUInt16BigEndian(iph.Slice(2)));
            Assert.True(Checksum.Verify(iph), "IPv4 header checksum rewritten");
            Assert.Equal(t[0].Id, BinaryPrimitives.ReadUInt16BigEndian(iph.Slice(4)));
            pseudo = Checksum.PseudoHeaderV4(iph.Slice(12, 4), iph.Slice(16, 4), 6, l4len);
        }
        else
        {
            var iph = f.AsSpan(14, 40);
            Assert.Equal(f.Length - 14 - 40, BinaryPrimitives.ReadUInt16BigEndian(iph.Slice(4)));
            pseudo = Checksum.PseudoHeaderV6(iph.Slice(8, 16), iph.Slice(24, 16), 6, l4len);
        }
        // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, as tcp4/6_gro_complete leave it.
        Assert.Equal((ushort)pseudo, BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(s.L4Offset + 16)));
    }
}
