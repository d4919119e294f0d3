using System.Buffers.Binary;
using Softnet.KernelTests.Support;
using Softnet.Xdp.Bpf;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// The bpf(2) wrapper the XDP kernel comparisons stand on: a program loaded from raw instructions runs under
/// BPF_PROG_TEST_RUN with the verdict and frame it should give, a map round-trips, and a refused program comes back
/// with the verifier's own words.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfSyscallKernelTests
{
    private static string? SkipReason()
        => !BpfSyscall.Supported ? "bpf(2) comparisons need Linux x86-64"
            : !Proc.IsRoot ? "bpf(2) comparisons need root (CAP_BPF / CAP_SYS_ADMIN)" : null;

    // Raw encodings (code | dst<<8 | src<<12 | off<<16 | imm<<32), written out so this test stands apart from
    // Softnet's own assembler.
    private static ulong Insn(byte code, int dst, int src, short off, int imm)
        => code | ((ulong)(dst | (src << 4)) << 8) | ((ulong)(ushort)off << 16) | ((ulong)(uint)imm << 32);

    private const byte MovK64 = 0xb7, Exit = 0x95, LdxW = 0x61, LdxB = 0x71, JgtX = 0x2d, AddK64 = 0x07, MovX64 = 0xbf, StxB = 0x73;

    [SkippableFact]
    public void XdpProgramReturnsItsVerdictAndTheFrameAsItLeftIt()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        // r2 = ctx->data; r3 = ctx->data_end; r4 = r2 + 1; if r4 > r3 goto drop; *(u8*)r2 = 0xAB; return XDP_PASS;
        // drop: return XDP_DROP
        ulong[] prog =
        [
            Insn(LdxW, 2, 1, 0, 0),
            Insn(LdxW, 3, 1, 4, 0),
            Insn(MovX64, 4, 2, 0, 0),
            Insn(AddK64, 4, 0, 0, 1),
            Insn(JgtX, 4, 3, 4, 0),
            Insn(MovK64, 5, 0, 0, 0xAB),
            Insn(StxB, 2, 5, 0, 0),
            Insn(MovK64, 0, 0, 0, 2),
            Insn(Exit, 0, 0, 0, 0),
            Insn(MovK64, 0, 0, 0, 1),
            Insn(Exit, 0, 0, 0, 0),
        ];
        int fd = BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, prog);
        try
        {
            var frame = new byte[64];
            frame.AsSpan().Fill(0x11);
            var outp = new byte[256];
            var r = BpfSyscall.TestRun(fd, frame, outp);
            Assert.Equal(2u, r.ReturnValue);
            Assert.Equal(64, r.DataOutLength);
            Assert.Equal(0xAB, outp[0]);
            Assert.True(outp.AsSpan(1, 63).IndexOfAnyExcept((byte)0x11) < 0);
            var timed = BpfSyscall.TestRun(fd, frame, outp, repeat: 1000);
            Assert.Equal(2u, timed.ReturnValue);
            Assert.True(timed.DurationNs < 100_000, $"{timed.DurationNs} ns per run for an 11-instruction program");
        }
        finally { BpfSyscall.Close(fd); }
    }

    [SkippableFact]
    public void ArrayMapRoundTrips()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        int fd = BpfSyscall.CreateMap(BpfSyscall.MapTypeArray, 4, 8, 4, name: "softnet_test");
        try
        {
            Span<byte> key = stackalloc byte[4], value = stackalloc byte[8], back = stackalloc byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(key, 2);
            BinaryPrimitives.WriteUInt64LittleEndian(value, 0x1122334455667788);
            BpfSyscall.UpdateElem(fd, key, value);
            Assert.True(BpfSyscall.LookupElem(fd, key, back));
            Assert.Equal(0x1122334455667788ul, BinaryPrimitives.ReadUInt64LittleEndian(back));
            BinaryPrimitives.WriteUInt32LittleEndian(key, 9);
            Assert.False(BpfSyscall.LookupElem(fd, key, back)); // past max_entries: ENOENT
            int n = 0;
            var k = Array.Empty<byte>();
            var next = new byte[4];
            while (BpfSyscall.GetNextKey(fd, k, next)) { n++; k = (byte[])next.Clone(); }
            Assert.Equal(4, n); // an array map has every index
        }
        finally { BpfSyscall.Close(fd); }
    }

    [SkippableFact]
    public void RefusedProgramCarriesTheVerifierLog()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        // Reads r2 before any write: the verifier's "R2 !read_ok".
        ulong[] prog = [Insn(MovX64, 0, 2, 0, 0), Insn(Exit, 0, 0, 0, 0)];
        var e = Assert.Throws<BpfSyscallException>(() => BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, prog));
        Assert.Equal(13, e.Errno); // EACCES
        Assert.Contains("R2 !read_ok", e.VerifierLog);
    }
}
