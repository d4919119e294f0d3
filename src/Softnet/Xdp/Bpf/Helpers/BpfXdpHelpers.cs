using System.Buffers.Binary;

namespace Softnet.Xdp.Bpf.Helpers;

/// <summary>
/// The non-map helpers an XDP program calls (net/core/filter.c's xdp_func_proto and bpf_base_func_proto), with the
/// kernel's prototypes, limits and return values. The packet-moving ones update both the interpreter's packet
/// bounds and the run's xdp_md context table, so the program's next ctx load sees the new data/data_end/data_meta
/// and the driver sees them in the xdp_buff after the run. None allocates.
/// </summary>
public static class BpfXdpHelpers
{
    public const int KtimeGetNs = 5, TracePrintk = 6, GetPrandomU32 = 7, GetSmpProcessorId = 8, CsumDiff = 28,
        Redirect = 23, XdpAdjustHead = 44, XdpAdjustMeta = 54, XdpAdjustTail = 65, FibLookup = 69, KtimeGetBootNs = 125,
        XdpGetBuffLen = 188, XdpLoadBytes = 189, XdpStoreBytes = 190;

    internal const int EINVAL = 22, EFAULT = 14;

    /// <summary>Registers every helper of this file.</summary>
    public static void Register(BpfHelperTable table)
    {
        var ctxAnything = new[] { BpfArg.PtrToCtx, BpfArg.Anything };
        table.Register(new BpfHelper(XdpAdjustHead, "bpf_xdp_adjust_head", ctxAnything, BpfRet.Integer, AdjustHead) { ChangesPacketData = true });
        table.Register(new BpfHelper(XdpAdjustTail, "bpf_xdp_adjust_tail", ctxAnything, BpfRet.Integer, AdjustTail) { ChangesPacketData = true });
        table.Register(new BpfHelper(XdpAdjustMeta, "bpf_xdp_adjust_meta", ctxAnything, BpfRet.Integer, AdjustMeta) { ChangesPacketData = true });
        table.Register(new BpfHelper(XdpGetBuffLen, "bpf_xdp_get_buff_len", [BpfArg.PtrToCtx], BpfRet.Integer, GetBuffLen));
        table.Register(new BpfHelper(XdpLoadBytes, "bpf_xdp_load_bytes",
            [BpfArg.PtrToCtx, BpfArg.Anything, BpfArg.PtrToWritableMem, BpfArg.ConstSize], BpfRet.Integer, LoadBytes));
        table.Register(new BpfHelper(XdpStoreBytes, "bpf_xdp_store_bytes",
            [BpfArg.PtrToCtx, BpfArg.Anything, BpfArg.PtrToReadableMem, BpfArg.ConstSize], BpfRet.Integer, StoreBytes));
        table.Register(new BpfHelper(CsumDiff, "bpf_csum_diff",
            [BpfArg.PtrToReadableMemOrNull, BpfArg.ConstSizeOrZero, BpfArg.PtrToReadableMemOrNull, BpfArg.ConstSizeOrZero, BpfArg.Anything],
            BpfRet.Integer, CsumDiffFn));
        table.Register(new BpfHelper(KtimeGetNs, "bpf_ktime_get_ns", [], BpfRet.Integer, Ktime));
        table.Register(new BpfHelper(KtimeGetBootNs, "bpf_ktime_get_boot_ns", [], BpfRet.Integer, Ktime));
        table.Register(new BpfHelper(GetPrandomU32, "bpf_get_prandom_u32", [], BpfRet.Integer, Prandom));
        table.Register(new BpfHelper(GetSmpProcessorId, "bpf_get_smp_processor_id", [], BpfRet.Integer, SmpProcessorId));
        // Only the format and its size are checked; the three values are read as they are (bpf_trace_printk_proto).
        table.Register(new BpfHelper(TracePrintk, "bpf_trace_printk", [BpfArg.PtrToReadableMem, BpfArg.ConstSize], BpfRet.Integer, BpfTracePrintk.Call));
        table.Register(new BpfHelper(Redirect, "bpf_redirect", [BpfArg.Anything, BpfArg.Anything], BpfRet.Integer, RedirectFn));
        // The params struct is read and written (ARG_PTR_TO_MEM without MEM_UNINIT: initialised memory).
        table.Register(new BpfHelper(FibLookup, "bpf_fib_lookup",
            [BpfArg.PtrToCtx, BpfArg.PtrToReadableMem, BpfArg.ConstSize, BpfArg.Anything], BpfRet.Integer, BpfFibLookup.Call));
    }

    /// <summary>
    /// The helpers an XDP program may call (xdp_func_proto, falling back to bpf_base_func_proto for the map helpers,
    /// tail calls and ringbuf output): these and <see cref="BpfMapHelpers"/>.
    /// </summary>
    public static BpfHelperTable Table()
    {
        var t = new BpfHelperTable();
        Register(t);
        BpfMapHelpers.Register(t);
        return t;
    }

    private static ulong Errno(int e) => (ulong)(long)-e;

    // The context table holds data, data_end and data_meta as packet addresses (BpfInterpreter.RunXdp).
    private static int CtxPacketOffset(ref BpfMemory mem, int field)
        => (int)(uint)BinaryPrimitives.ReadUInt64LittleEndian(mem.Ctx[(field * 2)..]);

    private static void SetBounds(ref BpfMemory mem, int meta, int data, int end)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(mem.Ctx[(XdpMd.Data * 2)..], BpfMemory.Address(BpfMemory.PacketRegion, data));
        BinaryPrimitives.WriteUInt64LittleEndian(mem.Ctx[(XdpMd.DataEnd * 2)..], BpfMemory.Address(BpfMemory.PacketRegion, end));
        BinaryPrimitives.WriteUInt64LittleEndian(mem.Ctx[(XdpMd.DataMeta * 2)..], BpfMemory.Address(BpfMemory.PacketRegion, meta));
        mem.PacketStart = meta;
        mem.PacketEnd = end;
    }

    private static bool HasXdpCtx(ref BpfMemory mem, ulong ctx)
        => mem.Ctx.Length >= XdpMd.TableSize && ctx == BpfMemory.Address(BpfMemory.CtxRegion, 0);

    /// <summary>bpf_xdp_adjust_head (BPF_CALL_2(bpf_xdp_adjust_head, xdp, int offset)).</summary>
    private static ulong AdjustHead(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (!HasXdpCtx(ref mem, r1)) return Errno(EINVAL);
        int meta = CtxPacketOffset(ref mem, XdpMd.DataMeta), data = CtxPacketOffset(ref mem, XdpMd.Data), end = CtxPacketOffset(ref mem, XdpMd.DataEnd);
        int rc = XdpAdjust.Head(mem.Packet, ref meta, ref data, end, (int)r2);
        if (rc == 0) SetBounds(ref mem, meta, data, end);
        return (ulong)(long)rc;
    }

    /// <summary>bpf_xdp_adjust_tail on a linear buffer (the frags path is not modelled: frames here are one buffer).</summary>
    private static ulong AdjustTail(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (!HasXdpCtx(ref mem, r1)) return Errno(EINVAL);
        int meta = CtxPacketOffset(ref mem, XdpMd.DataMeta), data = CtxPacketOffset(ref mem, XdpMd.Data), end = CtxPacketOffset(ref mem, XdpMd.DataEnd);
        int rc = XdpAdjust.Tail(mem.Packet, data, ref end, mem.PacketHardEnd, (int)r2);
        if (rc == 0) SetBounds(ref mem, meta, data, end);
        return (ulong)(long)rc;
    }

    /// <summary>bpf_xdp_adjust_meta.</summary>
    private static ulong AdjustMeta(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (!HasXdpCtx(ref mem, r1)) return Errno(EINVAL);
        int meta = CtxPacketOffset(ref mem, XdpMd.DataMeta), data = CtxPacketOffset(ref mem, XdpMd.Data), end = CtxPacketOffset(ref mem, XdpMd.DataEnd);
        int rc = XdpAdjust.Meta(ref meta, data, (int)r2);
        if (rc == 0) SetBounds(ref mem, meta, data, end);
        return (ulong)(long)rc;
    }

    /// <summary>bpf_xdp_get_buff_len: the frame's length (xdp_get_buff_len; one buffer here, no frags).</summary>
    private static ulong GetBuffLen(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
    {
        if (!HasXdpCtx(ref mem, r1)) return Errno(EINVAL);
        return (ulong)(CtxPacketOffset(ref mem, XdpMd.DataEnd) - CtxPacketOffset(ref mem, XdpMd.Data));
    }

    /// <summary>bpf_xdp_pointer's checks for the load/store helpers: -EFAULT for an offset or length over 0xffff,
    /// -EINVAL past the frame's end; else the bytes at data + offset.</summary>
    private static int XdpBytes(ref BpfMemory mem, ulong r1, ulong offset, ulong len, out int at)
    {
        at = 0;
        if (!HasXdpCtx(ref mem, r1)) return -EINVAL;
        uint off = (uint)offset, n = (uint)len;
        if (off > 0xffff || n > 0xffff) return -EFAULT;
        int data = CtxPacketOffset(ref mem, XdpMd.Data), end = CtxPacketOffset(ref mem, XdpMd.DataEnd);
        if (off + n > (uint)(end - data)) return -EINVAL;
        at = data + (int)off;
        return 0;
    }

    /// <summary>bpf_xdp_load_bytes(xdp, offset, buf, len): copies frame bytes to the program's buffer.</summary>
    private static ulong LoadBytes(ref BpfMemory mem, ulong r1, ulong offset, ulong buf, ulong len, ulong r5)
    {
        int rc = XdpBytes(ref mem, r1, offset, len, out int at);
        if (rc != 0) return Errno(-rc);
        if (!mem.TryMap(buf, (int)(uint)len, true, out var dst)) return Errno(EFAULT);
        mem.Packet.Slice(at, (int)(uint)len).CopyTo(dst);
        return 0;
    }

    /// <summary>bpf_xdp_store_bytes(xdp, offset, buf, len): copies the program's buffer into the frame.</summary>
    private static ulong StoreBytes(ref BpfMemory mem, ulong r1, ulong offset, ulong buf, ulong len, ulong r5)
    {
        int rc = XdpBytes(ref mem, r1, offset, len, out int at);
        if (rc != 0) return Errno(-rc);
        if (!mem.TryMap(buf, (int)(uint)len, false, out var src)) return Errno(EFAULT);
        src.CopyTo(mem.Packet.Slice(at, (int)(uint)len));
        return 0;
    }

    /// <summary>
    /// bpf_csum_diff(from, from_size, to, to_size, seed) as the kernel has it since the helper was made the same on
    /// every architecture: csum_partial of the new words (with the seed) less csum_partial of the old ones, folded to
    /// 16 bits without complement (csum_from32to16); with both sizes 0 the seed alone is folded. No size is refused
    /// (the kernel dropped the multiple-of-4 and 512-byte checks with the scratch buffer; compared on 6.18).
    /// </summary>
    private static ulong CsumDiffFn(ref BpfMemory mem, ulong from, ulong fromSize, ulong to, ulong toSize, ulong seed)
    {
        uint fs = (uint)fromSize, ts = (uint)toSize, s = (uint)seed;
        ReadOnlySpan<byte> f = default, t = default;
        if (fs != 0)
        {
            if (!mem.TryMap(from, (int)Math.Min(fs, int.MaxValue), false, out var fb)) return Errno(EFAULT);
            f = fb;
        }
        if (ts != 0)
        {
            if (!mem.TryMap(to, (int)Math.Min(ts, int.MaxValue), false, out var tb)) return Errno(EFAULT);
            t = tb;
        }
        return Checksum.CsumDiff(f, t, s);
    }

    private static ulong Ktime(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
        => mem.Run is { } run ? run.NowNs() : 0;

    /// <summary>bpf_get_prandom_u32 (bpf_user_rnd_u32): the CPU's prandom state, seeded deterministically.</summary>
    private static ulong Prandom(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
        => mem.Run is { } run ? BpfPrandom.Next(run) : 0;

    private static ulong SmpProcessorId(ref BpfMemory mem, ulong r1, ulong r2, ulong r3, ulong r4, ulong r5)
        => mem.Run is { } run ? (uint)run.Cpu : 0;

    /// <summary>
    /// bpf_redirect for XDP (bpf_xdp_redirect): any flag is XDP_ABORTED; otherwise the target ifindex goes into
    /// bpf_redirect_info (map type UNSPEC: an ifindex, not a map slot) and the helper returns XDP_REDIRECT.
    /// </summary>
    private static ulong RedirectFn(ref BpfMemory mem, ulong ifindex, ulong flags, ulong r3, ulong r4, ulong r5)
    {
        if (flags != 0) return (ulong)XdpAction.Aborted;
        if (mem.Run is { } run)
        {
            run.RedirectIfindex = (uint)ifindex;
            run.RedirectFlags = 0;
            run.RedirectMap = null;
            run.RedirectKey = 0;
        }
        return (ulong)XdpAction.Redirect;
    }
}

/// <summary>The Internet checksum arithmetic of include/net/checksum.h and csum_partial, on 32-bit little-endian words.</summary>
public static class Checksum
{
    /// <summary>
    /// csum_partial: the one's-complement sum of <paramref name="data"/> read as little-endian 32-bit words (a short
    /// tail zero-padded) plus <paramref name="sum"/>. Every implementation adds with end-around carry, so the value
    /// is fixed modulo 2^32−1 and is 0 only when the seed and every byte are 0; that makes it exact as a 32-bit value.
    /// </summary>
    public static uint Partial(ReadOnlySpan<byte> data, uint sum)
    {
        ulong acc = sum;
        bool nonZero = sum != 0;
        int i = 0;
        for (; i + 4 <= data.Length; i += 4)
        {
            uint w = BinaryPrimitives.ReadUInt32LittleEndian(data[i..]);
            acc += w;
            nonZero |= w != 0;
        }
        if (i < data.Length)
        {
            uint w = 0;
            for (int k = 0; i + k < data.Length; k++) w |= (uint)data[i + k] << (8 * k);
            acc += w;
            nonZero |= w != 0;
        }
        if (!nonZero) return 0;
        // Reduce modulo 2^32-1 into 1..2^32-1 (a non-zero sum never folds to 0 with end-around carry).
        uint r = (uint)(acc % 0xFFFFFFFFUL);
        return r == 0 ? 0xFFFFFFFFu : r;
    }

    /// <summary>csum_add: 32-bit one's-complement addition.</summary>
    public static uint Add(uint a, uint b)
    {
        uint r = a + b;
        return r + (r < b ? 1u : 0u);
    }

    /// <summary>csum_sub: <paramref name="a"/> plus the complement of <paramref name="b"/>.</summary>
    public static uint Sub(uint a, uint b) => Add(a, ~b);

    /// <summary>csum_from32to16: the 32-bit sum folded to 16 bits, not complemented.</summary>
    public static ushort From32To16(uint sum)
    {
        sum += (sum >> 16) | (sum << 16);
        return (ushort)(sum >> 16);
    }

    /// <summary>bpf_csum_diff's arithmetic.</summary>
    public static uint CsumDiff(ReadOnlySpan<byte> from, ReadOnlySpan<byte> to, uint seed)
    {
        if (from.Length != 0 && to.Length != 0) return From32To16(Sub(Partial(to, seed), Partial(from, 0)));
        if (to.Length != 0) return From32To16(Partial(to, seed));
        if (from.Length != 0) return From32To16(~Partial(from, ~seed));
        return From32To16(seed);
    }
}
