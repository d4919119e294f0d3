using CsCheck;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Xunit;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// The verifier's promise, checked on random programs: whatever it accepts runs to an exit without a single
/// out-of-region access or bad instruction (the interpreter checks every access again), and whatever it
/// refuses it refuses with its own exception, never another one.
/// </summary>
public class BpfVerifierPropertyTests
{
    private static readonly byte[] AluOps = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR, BPF_MOV, BPF_ARSH];
    private static readonly byte[] JmpOps = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET, BPF_JNE, BPF_JSGT, BPF_JSGE, BPF_JLT, BPF_JLE, BPF_JSLT, BPF_JSLE];
    private static readonly byte[] Sizes = [BPF_B, BPF_H, BPF_W, BPF_DW];
    private static readonly int[] Scalars = [0, 2, 3, 4, 5];
    private static readonly int[] AtomicOps = [BPF_ADD, BPF_OR, BPF_AND, BPF_XOR, BPF_ADD | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG];

    // Raw material for one instruction: kind, then parameters the kind picks from.
    private static readonly Gen<(int Kind, int A, int B, int C, int Imm, int D)> Slot =
        Gen.Select(Gen.Int[0, 9], Gen.Int[0, 1000], Gen.Int[0, 9], Gen.Int[0, 9], Gen.Int[-70, 70], Gen.Int[0, 1000]);

    private static BpfInsn[] Build((int Kind, int A, int B, int C, int Imm, int D)[] slots)
    {
        var prog = new List<BpfInsn>();
        // R0 and R2-R5 start as small constants, R1 points at the memory, R6-R9 are not initialised.
        foreach (int r in new[] { 0, 2, 3, 4, 5 }) prog.Add(new BpfInsn((byte)(BPF_ALU64 | BPF_MOV | BPF_K), r, 0, 0, r + 1));
        for (int i = 0; i < slots.Length; i++)
        {
            var (kind, a, b, c, imm, d) = slots[i];
            // Mostly the initialised scalars R0, R2-R5; now and then R1 (the memory pointer) or R6-R9, which
            // must be written before they are read.
            int dst = b < 9 ? Scalars[b % 5] : (a >> 3) % 5 + 5, src = c < 9 ? Scalars[c % 5] : (d >> 3) % 5 + 5;
            if (src == 5 && (d & 64) != 0) src = 1;
            int left = slots.Length - 1 - i;
            bool is64 = (a & 1) != 0, x = (a & 2) != 0;
            prog.Add(kind switch
            {
                <= 3 => Alu(AluOps[a % AluOps.Length], is64, x, dst, src, imm, (a & 4) != 0),
                4 => new BpfInsn((byte)(BPF_LDX | BPF_MEM | Sizes[a % 4]), dst, FramePointer, (short)(-8 * (1 + d % 66)), 0),
                5 => x
                    ? new BpfInsn((byte)(BPF_STX | BPF_MEM | Sizes[a % 4]), FramePointer, src, (short)(-8 * (1 + d % 66)), 0)
                    : new BpfInsn((byte)(BPF_ST | BPF_MEM | Sizes[a % 4]), FramePointer, 0, (short)(-8 * (1 + d % 66)), imm),
                6 => new BpfInsn((byte)(BPF_LDX | BPF_MEM | Sizes[a % 4]), dst, c == 0 ? src : 1, (short)(d % 24 - 4), 0),
                7 => new BpfInsn((byte)((is64 ? BPF_JMP : BPF_JMP32) | JmpOps[a % JmpOps.Length] | (x ? BPF_X : BPF_K)),
                    dst, x ? src : 0, (short)(left == 0 ? 0 : d % (left + 1)), x ? 0 : imm),
                8 => new BpfInsn((byte)(BPF_STX | BPF_ATOMIC | (is64 ? BPF_DW : BPF_W)), FramePointer, src, (short)(-8 * (1 + d % 60)),
                    AtomicOps[a % AtomicOps.Length]),
                _ => new BpfInsn((byte)(BPF_ALU64 | BPF_MOV | BPF_K), dst, 0, 0, imm),
            });
        }
        prog.Add(new BpfInsn((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0));
        return [.. prog];
    }

    private static BpfInsn Alu(byte op, bool is64, bool x, int dst, int src, int imm, bool signed)
    {
        if (op == BPF_NEG) return new BpfInsn((byte)((is64 ? BPF_ALU64 : BPF_ALU) | op), dst, 0, 0, 0);
        short off = (short)(signed && (op == BPF_DIV || op == BPF_MOD) ? 1 : 0);
        return new BpfInsn((byte)((is64 ? BPF_ALU64 : BPF_ALU) | op | (x ? BPF_X : BPF_K)), dst, x ? src : 0, off, x ? 0 : imm);
    }

    private static readonly List<string> Reasons = [];

    [Fact]
    public void Accepted_programs_run_without_faults()
    {
        var mem = new byte[16];
        int accepted = 0, refused = 0;
        Slot.Array[1, 30].Select(Build).Sample(prog =>
        {
            BpfProgram p;
            try
            {
                p = BpfVerifier.Verify(prog, BpfVerifierOptions.Conformance(mem.Length) with { MaxProcessedInsns = 100_000 });
            }
            catch (BpfVerifierException e)
            {
                lock (Reasons) Reasons.Add(System.Text.RegularExpressions.Regex.Replace(e.Message, @"\d+", "N"));
                Interlocked.Increment(ref refused);
                return;
            }
            Interlocked.Increment(ref accepted);
            var data = mem.ToArray();
            var m = new BpfMemory(default, data, 0, data.Length);
            var r = new BpfInterpreter().Run(p, ref m, BpfMemory.Address(BpfMemory.PacketRegion, 0), (ulong)data.Length);
            Assert.True(r.Ok, $"{r} in\n{string.Join("\n", prog.Select((x, i) => $"{i}: {x}"))}");
        }, iter: 4000);
        Assert.True(accepted > 600 && refused > 300, $"{accepted} accepted, {refused} refused: the generator needs work; " + string.Join("; ", Reasons.GroupBy(r => r).OrderByDescending(g => g.Count()).Take(8).Select(g => $"{g.Count()}x {g.Key}")));
    }

    private static readonly byte[] PktJmps = [BPF_JGT, BPF_JGE, BPF_JLT, BPF_JLE];

    /// <summary>
    /// XDP programs built around packet checks: R2 = data, R3 = data_end, R4/R5 pointers derived from R2 by
    /// constants, comparisons between them and data_end in either order, and loads and stores through them.
    /// </summary>
    private static BpfInsn[] BuildXdp((int Kind, int A, int B, int C, int Imm, int D)[] slots)
    {
        var prog = new List<BpfInsn>
        {
            new((byte)(BPF_LDX | BPF_MEM | BPF_W), 2, 1, XdpMd.Data, 0),
            new((byte)(BPF_LDX | BPF_MEM | BPF_W), 3, 1, XdpMd.DataEnd, 0),
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_K), 0, 0, 0, 2),
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 4, 2, 0, 0),
            new((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 5, 2, 0, 0),
        };
        for (int i = 0; i < slots.Length; i++)
        {
            var (kind, a, b, c, imm, d) = slots[i];
            int left = slots.Length - 1 - i;
            int ptr = 2 + b % 3 switch { 0 => 0, 1 => 2, _ => 3 };   // R2, R4 or R5
            short jump = (short)(left == 0 ? 0 : d % (left + 1));
            prog.Add(kind switch
            {
                <= 1 => new BpfInsn((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 4 + (a & 1), 2, 0, 0),
                2 or 3 => new BpfInsn((byte)(BPF_ALU64 | BPF_ADD | BPF_K), 4 + (a & 1), 0, 0, d % 40),
                4 or 5 => (a & 1) == 0
                    ? new BpfInsn((byte)(BPF_JMP | PktJmps[a / 2 % 4] | BPF_X), ptr, 3, jump, 0)
                    : new BpfInsn((byte)(BPF_JMP | PktJmps[a / 2 % 4] | BPF_X), 3, ptr, jump, 0),
                6 => new BpfInsn((byte)(BPF_LDX | BPF_MEM | Sizes[a % 4]), 0, ptr, (short)(d % 40 - 2), 0),
                7 => new BpfInsn((byte)(BPF_ST | BPF_MEM | Sizes[a % 4]), ptr, 0, (short)(d % 40), imm),
                8 => new BpfInsn((byte)(BPF_JMP | PktJmps[a / 2 % 4] | BPF_X), 4 + (a & 1), 3, jump, 0),
                _ => new BpfInsn((byte)(BPF_ALU64 | BPF_AND | BPF_K), 0, 0, 0, 3),
            });
        }
        prog.Add(new BpfInsn((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0));
        return [.. prog];
    }

    [Fact]
    public void Accepted_xdp_programs_never_touch_bytes_outside_the_frame()
    {
        int accepted = 0, refused = 0;
        Gen.Select(Slot.Array[1, 25].Select(BuildXdp), Gen.Int[0, 80]).Sample((prog, len) =>
        {
            BpfProgram p;
            try
            {
                p = BpfVerifier.Verify(prog, BpfVerifierOptions.Xdp() with { MaxProcessedInsns = 100_000 });
            }
            catch (BpfVerifierException)
            {
                Interlocked.Increment(ref refused);
                return;
            }
            Interlocked.Increment(ref accepted);
            var buf = new byte[256];
            var xdp = new XdpBuff(buf, 64, len, rxQueue: 0);
            new BpfInterpreter().RunXdp(p, ref xdp, 1, out var r);
            Assert.True(r.Ok, $"{r} on a {len}-byte frame in\n{string.Join("\n", prog.Select((x, i) => $"{i}: {x}"))}");
        }, iter: 4000);
        Assert.True(accepted > 300 && refused > 300, $"{accepted} accepted, {refused} refused: the generator needs work");
    }
}
