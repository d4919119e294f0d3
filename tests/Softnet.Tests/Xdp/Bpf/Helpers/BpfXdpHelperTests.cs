using System.Buffers.Binary;
using System.Text;
using CsCheck;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Helpers;

/// <summary>
/// The XDP helpers run from assembled programs through <see cref="BpfInterpreter.RunXdp(BpfProgram, ref XdpBuff, uint, BpfRunContext?, BpfRegionTable?, out BpfRunResult)"/>
/// on a buffer laid out as BPF_PROG_TEST_RUN lays one out (256 bytes of headroom, a 4096-byte frame with
/// skb_shared_info's 320 bytes reserved at the end).
/// </summary>
public class BpfXdpHelperTests
{
    private const int Headroom = 256;

    internal static BpfProgram Load(string text)
        => BpfVerifier.Verify(BpfAssembler.Assemble(text, "test"), BpfVerifierOptions.Xdp(BpfXdpHelpers.Table()));

    internal static XdpBuff Frame(byte[] buf, int length)
    {
        for (int i = 0; i < length; i++) buf[Headroom + i] = (byte)(i + 1);
        return new XdpBuff(buf, Headroom, length, rxQueue: 0, tailroom: XdpAdjust.SkbSharedInfoSize);
    }

    private static (XdpAction Action, ulong R0, int Data, int DataEnd, int Meta) Run(string text, int length = 64, BpfRunContext? run = null)
    {
        var buf = new byte[4096];
        var xdp = Frame(buf, length);
        var action = new BpfInterpreter().RunXdp(Load(text), ref xdp, 1, run ?? new BpfRunContext(), null, out var r);
        Assert.True(r.Ok, r.ToString());
        return (action, r.R0, xdp.Data, xdp.DataEnd, xdp.DataMeta);
    }

    // Calls helper ID with R2 = DELTA on the context, then returns the helper's result (low 32 bits as a signed
    // value in R0) — the program keeps the ctx in R6 across the call.
    private static string CallWithDelta(int id, int delta) => $"""
        mov %r6, %r1
        mov %r2, {delta}
        call {id}
        exit
        """;

    [Fact]
    public void Adjust_head_moves_data_within_the_headroom_less_the_xdp_frame_and_keeps_an_ethernet_header()
    {
        var r = Run(CallWithDelta(BpfXdpHelpers.XdpAdjustHead, -14));
        Assert.Equal(0UL, r.R0);
        Assert.Equal(Headroom - 14, r.Data);
        Assert.Equal(Headroom - 14, r.Meta);
        Assert.Equal(Headroom + 64, r.DataEnd);

        Assert.Equal(0UL, Run(CallWithDelta(BpfXdpHelpers.XdpAdjustHead, -(Headroom - XdpAdjust.XdpFrameSize))).R0);
        Assert.Equal(unchecked((ulong)-22L), Run(CallWithDelta(BpfXdpHelpers.XdpAdjustHead, -(Headroom - XdpAdjust.XdpFrameSize) - 1)).R0);
        Assert.Equal(0UL, Run(CallWithDelta(BpfXdpHelpers.XdpAdjustHead, 64 - 14)).R0);
        var refused = Run(CallWithDelta(BpfXdpHelpers.XdpAdjustHead, 64 - 13));
        Assert.Equal(unchecked((ulong)-22L), refused.R0);
        Assert.Equal(Headroom, refused.Data);
    }

    [Fact]
    public void After_adjust_head_the_program_reads_the_new_data_and_data_end_from_its_context()
    {
        // Pop 4 bytes, reload data/data_end, return the first byte and the length.
        var r = Run("""
            mov %r6, %r1
            mov %r2, 4
            call 44
            ldxw %r2, [%r6+0]
            ldxw %r3, [%r6+4]
            mov %r4, %r2
            add %r4, 1
            jgt %r4, %r3, out
            ldxb %r0, [%r2+0]
            exit
            out:
            mov %r0, 0
            exit
            """);
        Assert.Equal(5UL, r.R0);
        Assert.Equal(Headroom + 4, r.Data);
        Assert.Equal(Headroom + 64, r.DataEnd);
    }

    [Fact]
    public void Adjust_meta_grows_4_aligned_to_the_xdp_frame_and_data_meta_follows_adjust_head()
    {
        var r = Run(CallWithDelta(BpfXdpHelpers.XdpAdjustMeta, -8));
        Assert.Equal(0UL, r.R0);
        Assert.Equal(Headroom - 8, r.Meta);
        Assert.Equal(Headroom, r.Data);
        Assert.Equal(unchecked((ulong)-13L), Run(CallWithDelta(BpfXdpHelpers.XdpAdjustMeta, -3)).R0);
        Assert.Equal(0UL, Run(CallWithDelta(BpfXdpHelpers.XdpAdjustMeta, -(Headroom - XdpAdjust.XdpFrameSize))).R0);
        Assert.Equal(unchecked((ulong)-22L), Run(CallWithDelta(BpfXdpHelpers.XdpAdjustMeta, -(Headroom - XdpAdjust.XdpFrameSize) - 4)).R0);
        Assert.Equal(unchecked((ulong)-22L), Run(CallWithDelta(BpfXdpHelpers.XdpAdjustMeta, 4)).R0);

        var both = Run("""
            mov %r6, %r1
            mov %r2, -16
            call 54
            mov %r1, %r6
            mov %r2, -20
            call 44
            exit
            """);
        Assert.Equal(0UL, both.R0);
        Assert.Equal(Headroom - 20, both.Data);
        Assert.Equal(Headroom - 36, both.Meta);
        // The metadata may not reach into the xdp_frame: with 16 bytes of it, data stops 56 bytes in.
        var deep = Run($"""
            mov %r6, %r1
            mov %r2, -16
            call 54
            mov %r1, %r6
            mov %r2, {-(Headroom - XdpAdjust.XdpFrameSize - 16) - 1}
            call 44
            exit
            """);
        Assert.Equal(unchecked((ulong)-22L), deep.R0);
    }

    [Fact]
    public void Adjust_tail_grows_zero_filled_to_the_reserved_tailroom_and_keeps_an_ethernet_header()
    {
        var buf = new byte[4096];
        buf.AsSpan(Headroom + 64, 100).Fill(0xEE); // stale bytes from an earlier frame
        var xdp = Frame(buf, 64);
        var vm = new BpfInterpreter();
        Assert.Equal(0UL, RunOn(vm, CallWithDelta(BpfXdpHelpers.XdpAdjustTail, 10), ref xdp));
        Assert.Equal(74, xdp.Length);
        Assert.All(xdp.Packet[64..].ToArray(), b => Assert.Equal(0, b));
        int room = 4096 - XdpAdjust.SkbSharedInfoSize - xdp.DataEnd;
        Assert.Equal(unchecked((ulong)-22L), RunOn(vm, CallWithDelta(BpfXdpHelpers.XdpAdjustTail, room + 1), ref xdp));
        Assert.Equal(0UL, RunOn(vm, CallWithDelta(BpfXdpHelpers.XdpAdjustTail, room), ref xdp));
        Assert.Equal(4096 - XdpAdjust.SkbSharedInfoSize, xdp.DataEnd);
        Assert.Equal(unchecked((ulong)-22L), RunOn(vm, CallWithDelta(BpfXdpHelpers.XdpAdjustTail, -(xdp.Length - 13)), ref xdp));
        Assert.Equal(0UL, RunOn(vm, CallWithDelta(BpfXdpHelpers.XdpAdjustTail, -(xdp.Length - 14)), ref xdp));
        Assert.Equal(14, xdp.Length);
    }

    private static ulong RunOn(BpfInterpreter vm, string text, ref XdpBuff xdp)
    {
        vm.RunXdp(Load(text), ref xdp, 1, new BpfRunContext(), null, out var r);
        Assert.True(r.Ok);
        return r.R0;
    }

    // Stores the words on the stack at fp-8*n.., then csum_diff(from = fp-16, 4, to = fp-8, 4, seed).
    private static ulong CsumDiffOf(uint from, uint to, uint seed, int fromSize = 4, int toSize = 4)
    {
        string text = $"""
            mov %r1, {(int)from}
            stxw [%r10-16], %r1
            mov %r1, {(int)to}
            stxw [%r10-8], %r1
            mov %r1, %r10
            add %r1, -16
            mov %r2, {fromSize}
            mov %r3, %r10
            add %r3, -8
            mov %r4, {toSize}
            mov32 %r5, {(int)seed}
            call 28
            exit
            """;
        return Run(text).R0;
    }

    [Fact]
    public void Csum_diff_of_an_address_rewrite_matches_the_incremental_checksum_rule()
    {
        // 10.0.0.1 -> 10.0.0.2: the words as they sit in memory, little-endian loads of big-endian bytes.
        uint a = BinaryPrimitives.ReadUInt32LittleEndian([10, 0, 0, 1]);
        uint b = BinaryPrimitives.ReadUInt32LittleEndian([10, 0, 0, 2]);
        ulong diff = CsumDiffOf(a, b, 0);
        Assert.Equal(Checksum.CsumDiff(LE(a), LE(b), 0), (uint)diff);
        Assert.Equal(0x0100UL, diff); // +1 in the last byte: 0x0001 big-endian, 0x0100 as a little-endian halfword
        Assert.Equal(0xABCDUL, CsumDiffOf(0, 0, 0xABCD, 0, 0)); // nothing to diff: the seed, folded
        Assert.Equal(0x1CAFUL, CsumDiffOf(0, 0, 0x67A2B50C, 0, 0));
        Assert.Equal(Checksum.CsumDiff(default, LE(b), 7), (uint)CsumDiffOf(0, b, 7, 0, 4));
        Assert.Equal(Checksum.CsumDiff(LE(a), default, 7), (uint)CsumDiffOf(a, 0, 7, 4, 0));
    }

    private static byte[] LE(uint w)
    {
        var x = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(x, w);
        return x;
    }

    [Fact]
    public void Csum_diff_is_the_ones_complement_difference_modulo_0xffff_and_zero_only_for_zero_input()
    {
        Gen.Select(Gen.Byte.Array[0, 24], Gen.Byte.Array[0, 24], Gen.UInt).Sample((from, to, seed) =>
        {
            from = from[..(from.Length & ~3)];
            to = to[..(to.Length & ~3)];
            uint r = Checksum.CsumDiff(from, to, seed);
            if (from.Length == 0 && to.Length == 0)
            {
                Assert.Equal(Checksum.From32To16(seed), r);
                return;
            }
            Assert.True(r <= 0xFFFF);
            // Reference: 16-bit little-endian halfwords, to (+ seed) minus from, modulo 0xffff.
            long sum = (seed & 0xFFFF) + (seed >> 16);
            for (int i = 0; i < to.Length; i += 2) sum += to[i] | (to[i + 1] << 8);
            for (int i = 0; i < from.Length; i += 2) sum -= from[i] | (from[i + 1] << 8);
            long mod = ((sum % 0xFFFF) + 0xFFFF) % 0xFFFF;
            Assert.Equal(mod, r % 0xFFFF);
        });
    }

    [Fact]
    public void Time_cpu_and_random_come_from_the_run_context_and_the_random_stream_is_seeded()
    {
        var run = new BpfRunContext { Cpu = 3, NowNs = static () => 123_456_789UL, Seed = 42 };
        Assert.Equal(123_456_789UL, Run("call 5\nexit", run: run).R0);
        Assert.Equal(123_456_789UL, Run("call 125\nexit", run: run).R0);
        Assert.Equal(3UL, Run("call 8\nexit", run: run).R0);

        const string twoRandoms = "call 7\nmov %r6, %r0\ncall 7\nlsh %r0, 32\nor %r0, %r6\nexit";
        ulong a = Run(twoRandoms, run: new BpfRunContext { Cpu = 1, Seed = 7 }).R0;
        ulong b = Run(twoRandoms, run: new BpfRunContext { Cpu = 1, Seed = 7 }).R0;
        ulong c = Run(twoRandoms, run: new BpfRunContext { Cpu = 2, Seed = 7 }).R0;
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual((uint)a, (uint)(a >> 32));
    }

    [Fact]
    public void Redirect_fills_the_redirect_info_and_returns_xdp_redirect_but_flags_abort()
    {
        var run = new BpfRunContext();
        var r = Run("mov %r1, 7\nmov %r2, 0\ncall 23\nexit", run: run);
        Assert.Equal(XdpAction.Redirect, r.Action);
        Assert.Equal(7u, run.RedirectIfindex);
        Assert.Null(run.RedirectMap);
        Assert.Equal(XdpAction.Aborted, Run("mov %r1, 7\nmov %r2, 1\ncall 23\nexit").Action);
    }

    // Stores a NUL-terminated string at the bottom of the stack and returns "mov r1, fp-N; mov r2, N" for it.
    private static string StackString(string s, out int size)
    {
        var bytes = Encoding.ASCII.GetBytes(s + "\0");
        size = (bytes.Length + 7) & ~7;
        var sb = new StringBuilder();
        for (int i = 0; i < bytes.Length; i++) sb.AppendLine($"stb [%r10-{size - i}], {bytes[i]}");
        return sb.ToString();
    }

    [Fact]
    public void Trace_printk_formats_as_the_kernel_and_writes_a_trace_pipe_line()
    {
        var w = new StringWriter();
        var run = new BpfRunContext { Cpu = 1, NowNs = static () => 5_123_456_789UL, TraceWriter = w };
        string small = StackString("a=%d b=%lx c=%s\n", out int k) + $"""
            mov %r6, %r10
            add %r6, -{k + 8}
            stb [%r6+0], 104
            stb [%r6+1], 105
            stb [%r6+2], 0
            mov %r1, %r10
            add %r1, -{k}
            mov %r2, {k}
            mov %r3, -5
            lddw %r4, 0x1234abcd5678
            mov %r5, %r6
            call 6
            exit
            """;
        var r = Run(small, run: run);
        const string msg = "a=-5 b=1234abcd5678 c=hi\n";
        Assert.Equal((ulong)msg.Length, r.R0);
        Assert.Equal("          <idle>-0       [001] ..s1.     5.123456: bpf_trace_printk: " + msg + "\n", w.ToString());

        w.GetStringBuilder().Clear();
        string widths = StackString("[%5d|%-4u|%04x|%%]", out int q) + $"""
            mov %r1, %r10
            add %r1, -{q}
            mov %r2, {q}
            mov %r3, 42
            mov %r4, 7
            mov %r5, 255
            call 6
            exit
            """;
        Assert.Equal((ulong)"[   42|7   |00ff|%]".Length, Run(widths, run: run).R0);
        Assert.EndsWith("bpf_trace_printk: [   42|7   |00ff|%]\n", w.ToString());
    }

    [Fact]
    public void Trace_printk_refuses_what_bpf_bprintf_prepare_refuses()
    {
        foreach (var bad in new[] { "%d %d %d %d", "%f", "%.2d", "%pI4", "%q" })
        {
            string text = StackString(bad, out int n) + $"""
                mov %r1, %r10
                add %r1, -{n}
                mov %r2, {n}
                mov %r3, 1
                mov %r4, 2
                mov %r5, 3
                call 6
                exit
                """;
            Assert.Equal(unchecked((ulong)-22L), Run(text).R0);
        }
    }
}
