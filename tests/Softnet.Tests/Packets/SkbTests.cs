using Softnet.Tests.Support;
using CsCheck;
using Softnet.Packets;
using Xunit;

namespace Softnet.Tests.Packets;

public class SkbTests
{
    private static (PagePool Heads, PagePool Pages, SkbPool Skbs) Pools(int n = 64)
        => (new PagePool(n, 512, 128, "heads"), new PagePool(n, 256, 0, "pages"), new SkbPool(n));

    private static void AssertValid(Skb skb)
    {
        Assert.True(skb.Validate(out var why), why);
        Assert.Equal(skb.Len, skb.HeadLen + skb.DataLen);
    }

    private static byte[] Bytes(Skb skb)
    {
        var b = new byte[skb.Len];
        Assert.True(skb.CopyTo(b));
        return b;
    }

    /// <summary>Rents a page, writes <paramref name="content"/> at <paramref name="offset"/> and adds it as a frag.</summary>
    private static void AddFragWith(Skb skb, PagePool pages, int offset, ReadOnlySpan<byte> content)
    {
        Assert.True(pages.TryRent(out int idx));
        Assert.NotEqual(-1, idx);
        content.CopyTo(pages.Buffer(idx).Slice(offset));
        Assert.True(skb.AddFrag(pages, idx, offset, content.Length, pages.BufferSize));
    }

    [Fact]
    public void Reserve_put_push_pull_keep_len_equal_headlen_plus_datalen()
    {
        var (heads, _, skbs) = Pools();
        var skb = skbs.Alloc(heads, headroom: 0)!;
        Assert.Equal(0, skb.Len);
        skb.Reserve(64);
        Assert.Equal(64, skb.Headroom);
        skb.Put(4).Fill(2);
        Assert.Equal(4, skb.Len);
        Assert.Equal(68, skb.Tail);
        skb.Push(2).Fill(1);
        Assert.Equal(62, skb.Data);
        Assert.Equal([1, 1, 2, 2, 2, 2], Bytes(skb));
        Assert.True(skb.Pull(3));
        Assert.Equal([2, 2, 2], skb.LinearData.ToArray());
        Assert.False(skb.Pull(4)); // more than the linear part: refused, nothing changes
        Assert.Equal(3, skb.Len);
        AssertValid(skb);
        Assert.Throws<InvalidOperationException>(() => skb.Push(100));   // skb_under_panic
        Assert.Throws<InvalidOperationException>(() => skb.Put(1000));   // skb_over_panic
        Assert.Throws<InvalidOperationException>(() => skb.Reserve(1)); // not empty
        skb.Free();
        Assert.Equal(0, heads.InUse);
        Assert.Equal(0, skbs.InUse);
    }

    [Fact]
    public void Alloc_reserves_the_pool_headroom_and_header_offsets_survive_pull()
    {
        var (heads, _, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        Assert.Equal(128, skb.Headroom);
        skb.Put(54);
        skb.ResetMacHeader();
        skb.SetNetworkHeader(14);
        skb.SetTransportHeader(34);
        skb.Pull(14);
        Assert.Equal(0, skb.NetworkOffset);
        Assert.Equal(20, skb.TransportOffset);
        Assert.Equal(14, skb.MacLen);
        Assert.Equal(128, skb.MacHeader);
        skb.Free();
    }

    [Fact]
    public void Seventeen_frags_at_most()
    {
        var (heads, pages, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        skb.Put(10);
        for (int i = 0; i < Skb.MaxFrags; i++) AddFragWith(skb, pages, 0, new byte[10]);
        Assert.Equal(17, skb.NrFrags);
        Assert.True(pages.TryRent(out int extra));
        Assert.False(skb.AddFrag(pages, extra, 0, 10, pages.BufferSize));
        Assert.Equal(180, skb.Len);
        Assert.Equal(170, skb.DataLen);
        Assert.Equal(10, skb.HeadLen);
        Assert.True(skb.IsNonlinear);
        Assert.Equal(0, skb.Tailroom);
        Assert.Throws<InvalidOperationException>(() => skb.Put(1));
        AssertValid(skb);
        pages.Return(extra); // refused frag stays with the caller
        skb.Free();
        Assert.Equal(0, pages.InUse);
        Assert.Equal(0, heads.InUse);
    }

    [Fact]
    public void Copy_bits_spans_head_frags_and_frag_list()
    {
        var (heads, pages, skbs) = Pools();
        var expected = Enumerable.Range(0, 200).Select(i => (byte)i).ToArray();
        var skb = skbs.Alloc(heads)!;
        expected.AsSpan(0, 30).CopyTo(skb.Put(30));
        AddFragWith(skb, pages, 7, expected.AsSpan(30, 40));
        AddFragWith(skb, pages, 0, expected.AsSpan(70, 30));
        // frag_list member with its own head and frag
        var m1 = skbs.Alloc(heads)!;
        expected.AsSpan(100, 20).CopyTo(m1.Put(20));
        AddFragWith(m1, pages, 3, expected.AsSpan(120, 30));
        var m2 = skbs.Alloc(heads)!;
        expected.AsSpan(150, 50).CopyTo(m2.Put(50));
        skb.AppendFragList(m1);
        skb.AppendFragList(m2);
        Assert.Equal(200, skb.Len);
        Assert.Equal(170, skb.DataLen);
        AssertValid(skb);
        Assert.Equal(expected, Bytes(skb));

        var part = new byte[80];
        for (int off = 0; off <= 120; off += 7)
        {
            Assert.True(skb.CopyBits(off, part));
            Assert.Equal(expected.AsSpan(off, 80).ToArray(), part);
        }
        Assert.False(skb.CopyBits(121, part));
        Assert.False(skb.CopyBits(-1, part));
        Assert.False(skb.CopyTo(new byte[199]));

        skb.Free();
        Assert.Equal(0, heads.InUse);
        Assert.Equal(0, pages.InUse);
        Assert.Equal(0, skbs.InUse);
    }

    [Fact]
    public void May_pull_moves_frag_bytes_into_the_head()
    {
        var (heads, pages, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        skb.Put(10).Fill(1);
        AddFragWith(skb, pages, 0, Enumerable.Repeat((byte)2, 20).ToArray());
        AddFragWith(skb, pages, 0, Enumerable.Repeat((byte)3, 20).ToArray());
        var before = Bytes(skb);
        Assert.True(skb.MayPull(35)); // all of frag 0 and 5 bytes of frag 1
        Assert.Equal(35, skb.HeadLen);
        Assert.Equal(1, skb.NrFrags);
        Assert.Equal(15, skb.Frag(0).Size);
        Assert.Equal(1, pages.InUse); // emptied frag's page went back
        Assert.Equal(before, Bytes(skb));
        Assert.False(skb.MayPull(51));
        AssertValid(skb);
        skb.Free();
        Assert.Equal(0, pages.InUse);
    }

    [Fact]
    public void Trim_drops_frags_and_frag_list_members_past_the_cut()
    {
        var (heads, pages, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        var expected = Enumerable.Range(0, 100).Select(i => (byte)i).ToArray();
        expected.AsSpan(0, 20).CopyTo(skb.Put(20));
        AddFragWith(skb, pages, 0, expected.AsSpan(20, 20));
        AddFragWith(skb, pages, 0, expected.AsSpan(40, 20));
        var m = skbs.Alloc(heads)!;
        expected.AsSpan(60, 20).CopyTo(m.Put(20));
        var m2 = skbs.Alloc(heads)!;
        expected.AsSpan(80, 20).CopyTo(m2.Put(20));
        skb.AppendFragList(m);
        skb.AppendFragList(m2);

        skb.Trim(70); // cut inside the first frag_list member; the second goes
        Assert.Equal(expected.AsSpan(0, 70).ToArray(), Bytes(skb));
        Assert.Equal(2, skbs.InUse);
        AssertValid(skb);
        skb.Trim(30); // cut inside frag 0
        Assert.Equal(expected.AsSpan(0, 30).ToArray(), Bytes(skb));
        Assert.Equal(1, pages.InUse);
        Assert.Null(skb.FragList);
        skb.Trim(5);
        Assert.Equal(expected.AsSpan(0, 5).ToArray(), Bytes(skb));
        Assert.False(skb.IsNonlinear);
        AssertValid(skb);
        skb.Free();
        Assert.Equal(0, pages.InUse + heads.InUse + skbs.InUse);
    }

    [Fact]
    public void Clone_shares_buffers_until_the_last_reference_drops()
    {
        var (heads, pages, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        skb.Put(10).Fill(9);
        AddFragWith(skb, pages, 0, new byte[] { 1, 2, 3 });
        var member = skbs.Alloc(heads)!;
        member.Put(4).Fill(4);
        skb.AppendFragList(member);
        skb.Mark = 42;
        skb.SetHash(0xdeadbeef, PktHashType.L4);

        var clone = skbs.Clone(skb)!;
        Assert.True(clone.Cloned && skb.Cloned);
        Assert.Equal(skb.HeadIndex, clone.HeadIndex);
        Assert.Equal(2, heads.RefCount(skb.HeadIndex));
        Assert.Equal(42u, clone.Mark);
        Assert.True(clone.L4Hash);
        Assert.Equal(Bytes(skb), Bytes(clone));
        AssertValid(clone);
        Assert.Equal(4, skbs.InUse);

        skb.Free();
        Assert.Equal(2, heads.InUse); // both heads still held by the clone and its member clone
        Assert.Equal(1, pages.InUse);
        Assert.Equal(2, skbs.InUse);
        Assert.Equal([9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 4, 4, 4, 4], Bytes(clone));
        clone.Free();
        Assert.Equal(0, heads.InUse + pages.InUse + skbs.InUse);
    }

    [Fact]
    public void May_pull_on_a_clone_copies_the_shared_head_first()
    {
        var (heads, pages, skbs) = Pools();
        var skb = skbs.Alloc(heads)!;
        skb.Put(10).Fill(1);
        AddFragWith(skb, pages, 0, Enumerable.Range(0, 30).Select(i => (byte)i).ToArray());
        skb.ResetMacHeader();
        var clone = skbs.Clone(skb)!;
        Assert.True(clone.HeadShared);
        skb.Trim(5);                  // the original's tail moves back inside the shared head
        Assert.True(clone.MayPull(25)); // must not write into the original's head
        Assert.False(clone.HeadShared);
        Assert.NotEqual(skb.HeadIndex, clone.HeadIndex);
        Assert.Equal(skb.MacHeader, clone.MacHeader);
        Assert.Equal(Enumerable.Repeat((byte)1, 5).ToArray(), Bytes(skb));
        var expected = Enumerable.Repeat((byte)1, 10).Concat(Enumerable.Range(0, 30).Select(i => (byte)i)).ToArray();
        Assert.Equal(expected, Bytes(clone));
        skb.Free();
        clone.Free();
        Assert.Equal(0, heads.InUse + pages.InUse + skbs.InUse);
    }

    [Fact]
    public void Exhausted_pools_fail_softly()
    {
        var heads = new PagePool(1, 512, 128);
        var skbs = new SkbPool(2);
        var a = skbs.Alloc(heads);
        Assert.NotNull(a);
        Assert.Null(skbs.Alloc(heads)); // no head buffer: the skb goes back
        Assert.Equal(1, skbs.InUse);
        Assert.Equal(1, heads.AllocFailed);
        var c = skbs.Clone(a!)!;
        Assert.Null(skbs.Clone(a!));
        Assert.Equal(1, skbs.AllocFailed);
        a!.Free();
        c.Free();
        Assert.Throws<InvalidOperationException>(() => c.Free());
        Assert.Equal(0, heads.InUse + skbs.InUse);
    }

    [Fact]
    public void Build_wraps_a_held_buffer_without_copy()
    {
        var pages = new PagePool(4);
        var skbs = new SkbPool(4);
        Assert.True(pages.TryRent(out int idx));
        pages.Data(idx).Slice(0, 60).Fill(0x5a);
        var skb = skbs.Build(pages, idx, pages.Headroom, 60)!;
        Assert.Equal(256, skb.Headroom);
        Assert.Equal(60, skb.Len);
        pages.Data(idx)[0] = 1; // same memory
        Assert.Equal(1, skb.LinearData[0]);
        skb.Free();
        Assert.Equal(0, pages.InUse);
    }

    // ---- property test: random operation sequences against a byte-list model ----

    private enum Op { Push, Pull, Put, AddFrag, AppendMember, CloneKeepOne, MayPull, Trim, CopyBits }

    [Fact]
    public void Random_operations_keep_invariants_and_never_leak()
    {
        var gen = Gen.Select(Gen.Enum<Op>(), Gen.Int[0, 300], Gen.Byte).Array[1, 60];
        gen.Sample(ops =>
        {
            var (heads, pages, skbs) = Pools(512);
            var model = new List<byte>();
            var skb = skbs.Alloc(heads)!;
            foreach (var (op, n, b) in ops)
            {
                switch (op)
                {
                    case Op.Push when n <= skb.Headroom:
                        skb.Push(n).Fill(b);
                        model.InsertRange(0, Enumerable.Repeat(b, n));
                        break;
                    case Op.Pull:
                        bool pulled = skb.Pull(n);
                        Assert.Equal(n <= skb.HeadLen + (pulled ? n : 0), pulled);
                        if (pulled) model.RemoveRange(0, n);
                        break;
                    case Op.Put when !skb.IsNonlinear && n <= skb.Tailroom:
                        skb.Put(n).Fill(b);
                        model.AddRange(Enumerable.Repeat(b, n));
                        break;
                    case Op.AddFrag when skb.NrFrags < Skb.MaxFrags:
                    {
                        int size = n % 200, offset = (n * 7) % (256 - size);
                        Assert.True(pages.TryRent(out int idx));
                        if (idx < 0) break;
                        int at = skb.Len - FragListLen(skb);
                        pages.Buffer(idx).Slice(offset, size).Fill(b);
                        Assert.True(skb.AddFrag(pages, idx, offset, size, pages.BufferSize));
                        model.InsertRange(at, Enumerable.Repeat(b, size));
                        break;
                    }
                    case Op.AppendMember:
                    {
                        var m = skbs.Alloc(heads);
                        if (m is null) break;
                        int lin = Math.Min(n, m.Tailroom);
                        m.Put(lin).Fill(b);
                        model.AddRange(Enumerable.Repeat(b, lin));
                        Assert.True(pages.TryRent(out int idx));
                        if (idx >= 0)
                        {
                            pages.Buffer(idx).Slice(0, 16).Fill((byte)(b + 1));
                            m.AddFrag(pages, idx, 0, 16, pages.BufferSize);
                            model.AddRange(Enumerable.Repeat((byte)(b + 1), 16));
                        }
                        skb.AppendFragList(m);
                        break;
                    }
                    case Op.CloneKeepOne:
                    {
                        var c = skbs.Clone(skb);
                        if (c is null) break;
                        if ((n & 1) == 0) { skb.Free(); skb = c; }
                        else c.Free();
                        break;
                    }
                    case Op.MayPull:
                        if (skb.MayPull(n)) Assert.True(skb.HeadLen >= n);
                        break;
                    case Op.Trim:
                        if (n < skb.Len)
                        {
                            skb.Trim(n);
                            model.RemoveRange(n, model.Count - n);
                        }
                        break;
                    case Op.CopyBits:
                    {
                        int off = Math.Min(n, model.Count), len = Math.Min(b, model.Count - off);
                        var part = new byte[len];
                        Assert.True(skb.CopyBits(off, part));
                        Assert.Equal(model.GetRange(off, len), part);
                        break;
                    }
                }
                Assert.True(skb.Validate(out var why), why);
                Assert.Equal(model.Count, skb.Len);
            }
            Assert.Equal(model.ToArray(), Bytes(skb));
            skb.Free();
            Assert.Equal(0, heads.InUse);
            Assert.Equal(0, pages.InUse);
            Assert.Equal(0, skbs.InUse);
        }, iter: 300);
    }

    private static int FragListLen(Skb skb)
    {
        int n = 0;
        for (var m = skb.FragList; m != null; m = m.Next) n += m.Len;
        return n;
    }

    [Fact]
    public void Rent_build_free_cycle_does_not_allocate()
    {
        var pages = new PagePool(16);
        var heads = new PagePool(16, 512, 64);
        var skbs = new SkbPool(16);
        Span<byte> copy = stackalloc byte[2048];
        void Cycle(Span<byte> copy)
        {
            Assert.True(pages.TryRent(out int idx));
            var skb = skbs.Build(pages, idx, pages.Headroom, 100)!;
            Assert.True(pages.TryRent(out int frag));
            skb.AddFrag(pages, frag, 0, 500, pages.BufferSize);
            var clone = skbs.Clone(skb)!;
            var small = skbs.Alloc(heads)!;
            small.Put(20);
            clone.AppendFragList(small);
            clone.MayPull(200);
            clone.CopyTo(copy);
            skb.Free();
            clone.Free();
        }
        for (int i = 0; i < 1000; i++) Cycle(copy);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 50_000; i++) Cycle(copy);
        AllocationAssert.NothingPerOperation(GC.GetAllocatedBytesForCurrentThread() - before, 50_000, "build/clone/free cycles");
        Assert.Equal(0, pages.InUse + heads.InUse + skbs.InUse);
    }
}
