using CsCheck;
using Softnet.Xdp.Bpf;
using Xunit;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// Every ALU operation, run as a verified program (lddw both operands, one ALU instruction, exit), against
/// C# reference arithmetic written out here: 32-bit results zero-extended, x / 0 = 0, x % 0 = x (truncated for
/// 32-bit), signed division truncating with INT_MIN / -1 = INT_MIN and INT_MIN % -1 = 0, shifts masked.
/// The verifier folds the same constants, so a disagreement between it and the interpreter shows up too.
/// </summary>
public class BpfAluPropertyTests
{
    private static readonly (string Name, byte Op, short Off)[] Ops =
    [
        ("add", BPF_ADD, 0), ("sub", BPF_SUB, 0), ("mul", BPF_MUL, 0), ("div", BPF_DIV, 0), ("sdiv", BPF_DIV, 1),
        ("or", BPF_OR, 0), ("and", BPF_AND, 0), ("lsh", BPF_LSH, 0), ("rsh", BPF_RSH, 0), ("mod", BPF_MOD, 0),
        ("smod", BPF_MOD, 1), ("xor", BPF_XOR, 0), ("mov", BPF_MOV, 0), ("arsh", BPF_ARSH, 0),
    ];

    private static ulong Reference64(string op, ulong d, ulong s) => op switch
    {
        "add" => unchecked(d + s),
        "sub" => unchecked(d - s),
        "mul" => unchecked(d * s),
        "div" => s == 0 ? 0 : d / s,
        "sdiv" => s == 0 ? 0 : (long)s == -1 ? unchecked((ulong)(-(long)d)) : (ulong)((long)d / (long)s),
        "mod" => s == 0 ? d : d % s,
        "smod" => s == 0 ? d : (long)s == -1 ? 0 : (ulong)((long)d % (long)s),
        "or" => d | s,
        "and" => d & s,
        "xor" => d ^ s,
        "lsh" => d << (int)(s % 64),
        "rsh" => d >> (int)(s % 64),
        "arsh" => (ulong)((long)d >> (int)(s % 64)),
        "mov" => s,
        _ => throw new ArgumentException(op),
    };

    private static ulong Reference32(string op, ulong dFull, ulong sFull)
    {
        uint d = (uint)dFull, s = (uint)sFull;
        uint r = op switch
        {
            "add" => unchecked(d + s),
            "sub" => unchecked(d - s),
            "mul" => unchecked(d * s),
            "div" => s == 0 ? 0 : d / s,
            "sdiv" => s == 0 ? 0 : (int)s == -1 ? unchecked((uint)(-(int)d)) : (uint)((int)d / (int)s),
            "mod" => s == 0 ? d : d % s,
            "smod" => s == 0 ? d : (int)s == -1 ? 0 : (uint)((int)d % (int)s),
            "or" => d | s,
            "and" => d & s,
            "xor" => d ^ s,
            "lsh" => d << (int)(s % 32),
            "rsh" => d >> (int)(s % 32),
            "arsh" => (uint)((int)d >> (int)(s % 32)),
            "mov" => s,
            _ => throw new ArgumentException(op),
        };
        return r; // zero-extended
    }

    // CsCheck samples on several threads; an interpreter is one queue's, so one per thread.
    private static readonly ThreadLocal<BpfInterpreter> Vm = new(() => new BpfInterpreter());

    private static ulong Run(params BpfInsn[] insns)
    {
        var prog = BpfVerifier.Verify(insns, BpfVerifierOptions.Conformance(0));
        var mem = new BpfMemory(default, default, 0, 0);
        var r = Vm.Value!.Run(prog, ref mem, 0);
        Assert.True(r.Ok, r.ToString());
        return r.R0;
    }

    private static BpfInsn[] Lddw(int reg, ulong v) =>
        [new((byte)(BPF_LD | BPF_IMM | BPF_DW), reg, 0, 0, (int)(uint)v), new(0, 0, 0, 0, (int)(uint)(v >> 32))];

    private static readonly BpfInsn Exit = new((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0);

    // Operands biased towards the edges: 0, ±1, INT_MIN, shift widths, and random values.
    private static readonly Gen<ulong> Operand = Gen.OneOf(
        Gen.ULong,
        Gen.Const(new ulong[] { 0UL, 1UL, ulong.MaxValue, 0x8000_0000UL, 0xFFFF_FFFF_8000_0000UL, 0x8000_0000_0000_0000UL, 0xFFFF_FFFFUL, 31UL, 32UL, 63UL, 64UL }).SelectMany(a => Gen.Int[0, a.Length - 1].Select(i => a[i])),
        Gen.Long[-70, 70].Select(v => (ulong)v));

    [Fact]
    public void Register_operands_match_reference_arithmetic()
    {
        Gen.Select(Gen.Int[0, Ops.Length - 1], Gen.Bool, Operand, Operand).Sample((i, is64, d, s) =>
        {
            var (name, op, off) = Ops[i];
            byte code = (byte)((is64 ? BPF_ALU64 : BPF_ALU) | op | BPF_X);
            ulong got = Run([.. Lddw(0, d), .. Lddw(1, s), new BpfInsn(code, 0, 1, off, 0), Exit]);
            ulong want = is64 ? Reference64(name, d, s) : Reference32(name, d, s);
            Assert.True(want == got, $"{name}{(is64 ? "" : "32")} 0x{d:x}, 0x{s:x}: got 0x{got:x}, want 0x{want:x}");
        }, iter: 3000);
    }

    [Fact]
    public void Immediate_operands_are_sign_extended_for_alu64_and_taken_as_32_bits_for_alu32()
    {
        Gen.Select(Gen.Int[0, Ops.Length - 1], Gen.Bool, Operand, Gen.OneOf(Gen.Int, Gen.Int[-70, 70])).Sample((i, is64, d, imm) =>
        {
            var (name, op, off) = Ops[i];
            byte code = (byte)((is64 ? BPF_ALU64 : BPF_ALU) | op | BPF_K);
            ulong got = Run([.. Lddw(0, d), new BpfInsn(code, 0, 0, off, imm), Exit]);
            ulong want = is64 ? Reference64(name, d, (ulong)(long)imm) : Reference32(name, d, (uint)imm);
            Assert.True(want == got, $"{name}{(is64 ? "" : "32")} 0x{d:x}, imm {imm}: got 0x{got:x}, want 0x{want:x}");
        }, iter: 3000);
    }

    [Fact]
    public void Neg_moves_with_sign_extension_and_byte_swaps()
    {
        Operand.Sample(d =>
        {
            Assert.Equal(unchecked((ulong)-(long)d), Run([.. Lddw(0, d), new BpfInsn((byte)(BPF_ALU64 | BPF_NEG), 0, 0, 0, 0), Exit]));
            Assert.Equal((ulong)unchecked((uint)-(int)(uint)d), Run([.. Lddw(0, d), new BpfInsn((byte)(BPF_ALU | BPF_NEG), 0, 0, 0, 0), Exit]));
            foreach (short w in new short[] { 8, 16, 32 })
            {
                ulong sx = w switch { 8 => (ulong)(long)(sbyte)d, 16 => (ulong)(long)(short)d, _ => (ulong)(long)(int)d };
                Assert.Equal(sx, Run([.. Lddw(1, d), new BpfInsn((byte)(BPF_ALU64 | BPF_MOV | BPF_X), 0, 1, w, 0), Exit]));
                if (w < 32)
                    Assert.Equal((ulong)(uint)sx, Run([.. Lddw(1, d), new BpfInsn((byte)(BPF_ALU | BPF_MOV | BPF_X), 0, 1, w, 0), Exit]));
            }
            Assert.Equal((ulong)System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)d),
                Run([.. Lddw(0, d), new BpfInsn((byte)(BPF_ALU | BPF_END | BPF_TO_BE), 0, 0, 0, 16), Exit]));
            Assert.Equal((ulong)(uint)d, Run([.. Lddw(0, d), new BpfInsn((byte)(BPF_ALU | BPF_END | BPF_TO_LE), 0, 0, 0, 32), Exit]));
            Assert.Equal(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(d),
                Run([.. Lddw(0, d), new BpfInsn((byte)(BPF_ALU64 | BPF_END), 0, 0, 0, 64), Exit]));
        }, iter: 500);
    }

    [Fact]
    public void Jumps_compare_as_the_reference_does()
    {
        var ops = new (byte Op, Func<ulong, ulong, bool> F64, Func<uint, uint, bool> F32)[]
        {
            (BPF_JEQ, (a, b) => a == b, (a, b) => a == b), (BPF_JNE, (a, b) => a != b, (a, b) => a != b),
            (BPF_JGT, (a, b) => a > b, (a, b) => a > b), (BPF_JGE, (a, b) => a >= b, (a, b) => a >= b),
            (BPF_JLT, (a, b) => a < b, (a, b) => a < b), (BPF_JLE, (a, b) => a <= b, (a, b) => a <= b),
            (BPF_JSET, (a, b) => (a & b) != 0, (a, b) => (a & b) != 0),
            (BPF_JSGT, (a, b) => (long)a > (long)b, (a, b) => (int)a > (int)b), (BPF_JSGE, (a, b) => (long)a >= (long)b, (a, b) => (int)a >= (int)b),
            (BPF_JSLT, (a, b) => (long)a < (long)b, (a, b) => (int)a < (int)b), (BPF_JSLE, (a, b) => (long)a <= (long)b, (a, b) => (int)a <= (int)b),
        };
        Gen.Select(Gen.Int[0, ops.Length - 1], Gen.Bool, Operand, Operand).Sample((i, is64, a, b) =>
        {
            var (op, f64, f32) = ops[i];
            bool want = is64 ? f64(a, b) : f32((uint)a, (uint)b);
            byte code = (byte)((is64 ? BPF_JMP : BPF_JMP32) | op | BPF_X);
            // r0 = 1; if (r1 op r2) goto +1; r0 = 0; exit
            ulong got = Run([.. Lddw(1, a), .. Lddw(2, b), new BpfInsn((byte)(BPF_ALU64 | BPF_MOV), 0, 0, 0, 1),
                new BpfInsn(code, 1, 2, 1, 0), new BpfInsn((byte)(BPF_ALU64 | BPF_MOV), 0, 0, 0, 0), Exit]);
            Assert.Equal(want ? 1UL : 0UL, got);
        }, iter: 2000);
    }
}
