using Softnet.KernelTests.Support;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// The XDP helpers against the kernel's: the same raw programs loaded with bpf(BPF_PROG_LOAD) and run with
/// BPF_PROG_TEST_RUN on the same frames give the same return value and the same output frame in Softnet's
/// interpreter (the output being data_meta..data_end, as the test run copies it; on a buffer laid out as the test run lays one out: 256 bytes of headroom in a 4096-byte frame with
/// skb_shared_info reserved at the end).
/// </summary>
[Trait("Category", "Kernel")]
public class BpfXdpHelperKernelTests
{
    private static string? SkipReason()
        => !BpfSyscall.Supported ? "bpf(2) comparisons need Linux x86-64"
            : !Proc.IsRoot ? "bpf(2) comparisons need root (CAP_BPF / CAP_SYS_ADMIN)" : null;

    private static byte[] Frame(int length, int seed)
    {
        var f = new byte[length];
        var rng = new Random(seed);
        rng.NextBytes(f);
        return f;
    }

    /// <summary>BPF_PROG_LOAD, retried on EAGAIN as libbpf does (the verifier gives up with EAGAIN when a signal is
    /// pending, and the runtime signals its threads now and then).</summary>
    private static int Load(ulong[] raw)
    {
        for (int attempt = 0; ; attempt++)
        {
            try { return BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, raw); }
            catch (BpfSyscallException e) when (e.Errno == 11 && attempt < 5) { }
        }
    }

    /// <summary>Runs <paramref name="text"/> on <paramref name="frame"/> in the kernel and here; asserts both agree.</summary>
    private static void Compare(string text, byte[] frame)
    {
        var insns = BpfAssembler.Assemble(text, "kernel-compare");
        var raw = insns.Select(i => i.ToUInt64()).ToArray();
        int fd = Load(raw);
        uint kRet;
        byte[] kOut;
        try
        {
            var outp = new byte[4096];
            var r = BpfSyscall.TestRun(fd, frame, outp);
            kRet = r.ReturnValue;
            kOut = outp.AsSpan(0, r.DataOutLength).ToArray();
        }
        finally { BpfSyscall.Close(fd); }

        var prog = BpfVerifier.Verify(insns, BpfVerifierOptions.Xdp(BpfXdpHelpers.Table()));
        var buf = new byte[4096];
        frame.CopyTo(buf, XdpAdjust.PacketHeadroom);
        var xdp = new XdpBuff(buf, XdpAdjust.PacketHeadroom, frame.Length, 0, XdpAdjust.SkbSharedInfoSize);
        new BpfInterpreter().RunXdp(prog, ref xdp, 1, new BpfRunContext(), null, out var ours);
        Assert.True(ours.Ok, $"{ours.Fault} at {ours.Pc}\n{text}");
        Assert.True(kRet == (uint)ours.R0, $"kernel returned {kRet:x8}, Softnet {(uint)ours.R0:x8}\n{text}");
        // The test run hands back the metadata too: data_meta..data_end.
        var ourOut = buf.AsSpan(xdp.DataMeta, xdp.DataEnd - xdp.DataMeta);
        Assert.True(kOut.AsSpan().SequenceEqual(ourOut), $"output frames differ ({kOut.Length} vs {ourOut.Length} bytes)\n{text}");
    }

    private static string Call(int id, int delta) => $"""
        mov %r6, %r1
        mov %r2, {delta}
        call {id}
        exit
        """;

    [SkippableFact]
    public void Adjust_head_agrees_on_every_limit()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var frame = Frame(64, 1);
        foreach (int d in new[] { -14, -200, -(256 - XdpAdjust.XdpFrameSize), -(256 - XdpAdjust.XdpFrameSize) - 1, -300, 0, 20, 50, 51, 64 })
            Compare(Call(BpfXdpHelpers.XdpAdjustHead, d), frame);
    }

    [SkippableFact]
    public void Adjust_tail_agrees_on_shrinking_growing_and_the_tailroom()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var frame = Frame(64, 2);
        int room = 4096 - XdpAdjust.SkbSharedInfoSize - XdpAdjust.PacketHeadroom - frame.Length;
        foreach (int d in new[] { 10, -10, -50, -51, room, room + 1, -64, 1000 })
            Compare(Call(BpfXdpHelpers.XdpAdjustTail, d), frame);
    }

    [SkippableFact]
    public void Adjust_meta_agrees_and_metadata_moves_with_adjust_head()
    {
        var why = BpfKernelCompare.AdjustMetaRefused();
        Skip.If(why != null, why);
        var frame = Frame(64, 3);
        foreach (int d in new[] { -4, -8, -32, -36, -3, 4, 0, -212, -216, -220 })
            Compare(Call(BpfXdpHelpers.XdpAdjustMeta, d), frame);
        foreach (int head in new[] { -20, -(256 - XdpAdjust.XdpFrameSize - 16), -(256 - XdpAdjust.XdpFrameSize - 16) - 1, 30 })
        {
            Compare($"""
                mov %r6, %r1
                mov %r2, -16
                call 54
                mov %r1, %r6
                mov %r2, {head}
                call 44
                exit
                """, frame);
        }
    }

    [SkippableFact]
    public void Csum_diff_agrees_on_diffs_pushes_pulls_and_sizes()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var frame = Frame(64, 4);
        var rng = new Random(5);
        foreach (var (fromSize, toSize) in new[] { (4, 4), (8, 8), (16, 16), (0, 8), (8, 0), (0, 0), (4, 16), (2, 4), (4, 6) })
        {
            for (int round = 0; round < 4; round++)
            {
                uint seed = round == 0 ? 0 : (uint)rng.Next();
                var lines = new System.Text.StringBuilder();
                // 32 bytes of words at fp-64 (from) and fp-32 (to).
                for (int off = 64; off > 0; off -= 4)
                    lines.AppendLine($"stw [%r10-{off}], {(round == 3 ? 0 : rng.Next())}");
                lines.AppendLine($"""
                    mov %r1, %r10
                    add %r1, -64
                    mov %r2, {fromSize}
                    mov %r3, %r10
                    add %r3, -32
                    mov %r4, {toSize}
                    mov32 %r5, {(int)seed}
                    call 28
                    exit
                    """);
                Compare(lines.ToString(), frame);
            }
        }
    }

    [SkippableFact]
    public void Csum_diff_of_a_packet_header_agrees()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        // The 20 bytes after the Ethernet header, pushed (from = NULL) with a seed: what a checksum rewrite computes.
        const string text = """
            ldxw %r2, [%r1+0]
            ldxw %r3, [%r1+4]
            mov %r4, %r2
            add %r4, 34
            jgt %r4, %r3, out
            mov %r3, %r2
            add %r3, 14
            mov %r1, 0
            mov %r2, 0
            mov %r4, 20
            mov %r5, 0
            call 28
            exit
            out:
            mov %r0, 1
            exit
            """;
        for (int s = 0; s < 8; s++) Compare(text, Frame(60, 10 + s));
    }

    [SkippableFact]
    public void Redirect_returns_what_the_kernel_returns()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var frame = Frame(64, 20);
        foreach (var (ifindex, flags) in new[] { (7, 0), (0, 0), (7, 1), (1, 8) })
            Compare($"mov %r1, {ifindex}\nmov %r2, {flags}\ncall 23\nexit", frame);
    }
}
