using Softnet.Tests.Support;
using System.Buffers.Binary;
using Softnet.Nic;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Nic;

public class SkbBuilderTests
{
    /// <summary>Ethernet + optional 802.1Q + IPv4 (+options) + TCP (+options) + payload.</summary>
    internal static byte[] Tcp4Frame(int payload, int tcpOptions = 12, int ipOptions = 0, bool vlan = false)
    {
        int l2 = vlan ? 18 : 14, ihl = 20 + ipOptions, doff = 20 + tcpOptions;
        var f = new byte[l2 + ihl + doff + payload];
        for (int i = 0; i < 12; i++) f[i] = (byte)(i + 1);
        int off = 12;
        if (vlan)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 100);
            off = 16;
        }
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(off), 0x0800);
        int ip = l2;
        f[ip] = (byte)(0x40 | ihl / 4);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(ip + 2), (ushort)(ihl + doff + payload));
        f[ip + 8] = 64;
        f[ip + 9] = 6;
        int tcp = ip + ihl;
        f[tcp + 12] = (byte)(doff / 4 << 4);
        for (int i = 0; i < payload; i++) f[tcp + doff + i] = (byte)('0' + i % 10);
        return f;
    }

    internal static byte[] Udp6Frame(int payload, bool hopByHop)
    {
        int ext = hopByHop ? 8 : 0;
        var f = new byte[14 + 40 + ext + 8 + payload];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x86DD);
        f[14] = 0x60;
        f[14 + 6] = (byte)(hopByHop ? 0 : 17);
        if (hopByHop) { f[54] = 17; f[55] = 0; }
        for (int i = 0; i < payload; i++) f[14 + 40 + ext + 8 + i] = (byte)i;
        return f;
    }

    [Theory]
    [InlineData(1000, 12, 0, false, 14 + 20 + 32)]
    [InlineData(1000, 0, 8, false, 14 + 28 + 20)]
    [InlineData(1000, 12, 0, true, 18 + 20 + 32)]
    public void Eth_get_headlen_finds_the_end_of_the_tcp_header(int payload, int tcpOpt, int ipOpt, bool vlan, int expected)
    {
        var f = Tcp4Frame(payload, tcpOpt, ipOpt, vlan);
        Assert.Equal(expected, SkbBuilder.EthGetHeadlen(f, SkbBuilder.RxHdrSize));
    }

    [Fact]
    public void Eth_get_headlen_ipv6_udp_with_extension_header_and_unknown_types()
    {
        Assert.Equal(14 + 40 + 8, SkbBuilder.EthGetHeadlen(Udp6Frame(500, false), 256));
        Assert.Equal(14 + 40 + 8 + 8, SkbBuilder.EthGetHeadlen(Udp6Frame(500, true), 256));
        var arp = new byte[300];
        arp[12] = 0x08; arp[13] = 0x06;
        Assert.Equal(14, SkbBuilder.EthGetHeadlen(arp, 256));
        Assert.Equal(10, SkbBuilder.EthGetHeadlen(new byte[10], 256));
    }

    private static (PagePool Ring, RxRing Rx, SkbPool Skbs, PagePool Heads, SkbBuilder B) Setup()
    {
        var ringPool = new PagePool(128);
        var rx = new RxRing(ringPool, size: 64, queueId: 2);
        var skbs = new SkbPool(64);
        var heads = SkbBuilder.CreateHeadPool(64);
        return (ringPool, rx, skbs, heads, new SkbBuilder(skbs, heads));
    }

    private static byte[] Bytes(Skb skb)
    {
        var b = new byte[skb.Len];
        Assert.True(skb.CopyTo(b));
        return b;
    }

    [Fact]
    public void Build_skb_wraps_the_ring_buffer_zero_copy()
    {
        var (ringPool, rx, skbs, _, b) = Setup();
        var frame = Tcp4Frame(1400);
        Assert.True(rx.TryReceive(frame, 123456789, 0xabcdef01, PktHashType.L4));
        var batch = new RxDescriptor[4];
        Assert.Equal(1, rx.Poll(batch, int.MaxValue));
        var skb = b.BuildSkb(ringPool, in batch[0], rx.QueueId, ringPool.Headroom, batch[0].Length)!;
        Assert.Equal(batch[0].BufferIndex, skb.HeadIndex);
        Assert.Same(ringPool, skb.HeadPool);
        Assert.Equal(PagePool.DefaultHeadroom, skb.Headroom);
        Assert.Equal(frame.Length, skb.Len);
        Assert.Equal(frame.Length, skb.HeadLen);
        Assert.Equal(0, skb.NrFrags);
        Assert.Equal(frame, Bytes(skb));
        Assert.Equal(123456789, skb.TimestampNs);
        Assert.Equal(0xabcdef01u, skb.Hash);
        Assert.True(skb.L4Hash);
        Assert.Equal(2, skb.QueueMapping);
        Assert.Equal(skb.Data, skb.MacHeader);
        int inUse = ringPool.InUse;
        skb.Free();
        Assert.Equal(inUse - 1, ringPool.InUse); // recycled, ready for the next refill
        Assert.Equal(0, skbs.InUse);
    }

    [Fact]
    public void Construct_skb_copies_headers_and_attaches_the_rest_as_frag0()
    {
        var (ringPool, rx, skbs, heads, b) = Setup();
        var frame = Tcp4Frame(1448);
        rx.TryReceive(frame, 5, 7, PktHashType.L3);
        var batch = new RxDescriptor[4];
        rx.Poll(batch, int.MaxValue);
        int buf = batch[0].BufferIndex;
        var skb = b.ConstructSkb(ringPool, in batch[0], rx.QueueId)!;
        Assert.Same(heads, skb.HeadPool);
        Assert.Equal(66, skb.HeadLen);
        Assert.Equal(1, skb.NrFrags);
        Assert.Equal(buf, skb.Frag(0).Index);
        Assert.Equal(PagePool.DefaultHeadroom + 66, skb.Frag(0).Offset);
        Assert.Equal(frame.Length - 66, skb.Frag(0).Size);
        Assert.Equal(frame, Bytes(skb));
        Assert.True(skb.Validate(out var why), why);
        Assert.Equal(1, heads.InUse);
        Assert.Equal(1, ringPool.RefCount(buf));

        // A clone keeps the page alive after the original is freed; the last free recycles it.
        var clone = skbs.Clone(skb)!;
        Assert.Equal(2, ringPool.RefCount(buf));
        skb.Free();
        Assert.Equal(1, ringPool.RefCount(buf));
        clone.Free();
        Assert.Equal(0, ringPool.RefCount(buf));
        Assert.Equal(0, heads.InUse);
        Assert.Equal(0, skbs.InUse);
    }

    [Fact]
    public void Construct_skb_of_a_small_frame_copies_all_and_recycles_the_page_at_once()
    {
        var (ringPool, rx, skbs, heads, b) = Setup();
        var frame = Tcp4Frame(6); // 72 bytes
        rx.TryReceive(frame, 0, 0, PktHashType.None);
        var batch = new RxDescriptor[4];
        rx.Poll(batch, int.MaxValue);
        int before = ringPool.InUse;
        var skb = b.ConstructSkb(ringPool, in batch[0], 0)!;
        Assert.Equal(before - 1, ringPool.InUse);
        Assert.False(skb.IsNonlinear);
        Assert.Equal(frame, Bytes(skb));
        Assert.Equal(PktHashType.None, skb.HashType);
        skb.Free();
        Assert.Equal(0, heads.InUse + skbs.InUse);
    }

    [Fact]
    public void Both_paths_return_every_buffer_and_fail_softly_when_skbs_run_out()
    {
        var ringPool = new PagePool(64);
        var rx = new RxRing(ringPool, size: 32);
        var skbs = new SkbPool(4);
        var heads = SkbBuilder.CreateHeadPool(4);
        var b = new SkbBuilder(skbs, heads);
        var batch = new RxDescriptor[32];
        var outSkbs = new Skb?[32];
        foreach (bool construct in new[] { false, true })
        {
            for (int i = 0; i < 10; i++) rx.TryReceive(Tcp4Frame(300 + i), i, 0, PktHashType.None);
            int n = rx.Poll(batch, int.MaxValue);
            Assert.Equal(10, n);
            int made = b.BuildBatch(rx, batch.AsSpan(0, n), outSkbs, construct);
            Assert.Equal(4, made);
            for (int i = 0; i < made; i++)
            {
                Assert.Equal(Tcp4Frame(300 + i), Bytes(outSkbs[i]!));
                outSkbs[i]!.Free();
            }
        }
        Assert.Equal(12, b.AllocFailed);
        Assert.Equal(rx.Posted, ringPool.InUse); // only the ring's posted buffers are still out
        Assert.Equal(0, skbs.InUse + heads.InUse);
    }

    [Fact]
    public void Receive_poll_build_free_does_not_allocate()
    {
        var (ringPool, rx, skbs, heads, b) = Setup();
        var frame = Tcp4Frame(1448);
        var batch = new RxDescriptor[16];
        var outSkbs = new Skb?[16];
        void Round()
        {
            for (int i = 0; i < 16; i++) rx.TryReceive(frame, i, 0x1234, PktHashType.L3);
            int n = rx.Poll(batch, int.MaxValue);
            int made = b.BuildBatch(rx, batch.AsSpan(0, n), outSkbs, construct: false);
            for (int i = 0; i < made; i++) outSkbs[i]!.Free();
            for (int i = 0; i < 16; i++) rx.TryReceive(frame, i, 0x1234, PktHashType.L3);
            n = rx.Poll(batch, int.MaxValue);
            made = b.BuildBatch(rx, batch.AsSpan(0, n), outSkbs, construct: true);
            for (int i = 0; i < made; i++) outSkbs[i]!.Free();
        }
        for (int i = 0; i < 200; i++) Round();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5000; i++) Round();
        AllocationAssert.NothingPerOperation(GC.GetAllocatedBytesForCurrentThread() - before, 5000 * 32, "packets");
        Assert.Equal(0, skbs.InUse + heads.InUse);
        Assert.Equal(0, rx.RxMissed + b.AllocFailed);
    }
}
