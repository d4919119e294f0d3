using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// ALU semantics, shared by the interpreter and the verifier's constant folding so both agree by construction.
/// They are the kernel's after its verifier fix-ups (do_misc_fixups): x / 0 = 0, x % 0 = x; signed INT_MIN / -1
/// = INT_MIN and INT_MIN % -1 = 0; shifts masked to the operand width; ALU32 results zero-extended.
/// Unknown operations never reach here (the verifier rejects them); they yield the destination unchanged.
/// </summary>
public static class BpfAlu
{
    /// <summary>BPF_ALU64 <paramref name="op"/> with source value <paramref name="s"/> (the immediate already sign-extended).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Alu64(int op, int source, short off, int imm, ulong d, ulong s) => op switch
    {
        BPF_ADD => d + s,
        BPF_SUB => d - s,
        BPF_MUL => d * s,
        BPF_DIV => s == 0 ? 0 : off == 1 ? SDiv64((long)d, (long)s) : d / s,
        BPF_MOD => s == 0 ? d : off == 1 ? SMod64((long)d, (long)s) : d % s,
        BPF_OR => d | s,
        BPF_AND => d & s,
        BPF_XOR => d ^ s,
        BPF_LSH => d << (int)(s & 63),
        BPF_RSH => d >> (int)(s & 63),
        BPF_ARSH => (ulong)((long)d >> (int)(s & 63)),
        BPF_NEG => (ulong)-(long)d,
        BPF_MOV => source == BPF_K ? s : off switch
        {
            8 => (ulong)(long)(sbyte)s,
            16 => (ulong)(long)(short)s,
            32 => (ulong)(long)(int)s,
            _ => s,
        },
        BPF_END => Swap(d, imm),   // BPF_ALU64 | BPF_END: unconditional byte swap (cpu v4 bswap)
        _ => d,
    };

    /// <summary>BPF_ALU <paramref name="op"/>: 32-bit operands, the result zero-extended into the 64-bit register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Alu32(int op, int source, short off, int imm, ulong dFull, ulong sFull)
    {
        uint d = (uint)dFull, s = (uint)sFull;
        return op switch
        {
            BPF_ADD => d + s,
            BPF_SUB => d - s,
            BPF_MUL => d * s,
            BPF_DIV => s == 0 ? 0u : off == 1 ? SDiv32((int)d, (int)s) : d / s,
            BPF_MOD => s == 0 ? d : off == 1 ? SMod32((int)d, (int)s) : d % s,
            BPF_OR => d | s,
            BPF_AND => d & s,
            BPF_XOR => d ^ s,
            BPF_LSH => d << (int)(s & 31),
            BPF_RSH => d >> (int)(s & 31),
            BPF_ARSH => (uint)((int)d >> (int)(s & 31)),
            BPF_NEG => (uint)-(int)d,
            BPF_MOV => source == BPF_K ? s : off switch
            {
                8 => (uint)(int)(sbyte)s,
                16 => (uint)(int)(short)s,
                _ => s,
            },
            // to_be swaps on this little-endian machine; to_le only truncates. Width 64 keeps all 64 bits.
            BPF_END => source == BPF_TO_BE ? Swap(dFull, imm) : imm switch
            {
                16 => (ushort)dFull,
                32 => (uint)dFull,
                _ => dFull,
            },
            _ => dFull,
        };
    }

    /// <summary>Byte swap of the low 16, 32 or 64 bits; the result is zero-extended.</summary>
    public static ulong Swap(ulong v, int width) => width switch
    {
        16 => BinaryPrimitives.ReverseEndianness((ushort)v),
        32 => BinaryPrimitives.ReverseEndianness((uint)v),
        _ => BinaryPrimitives.ReverseEndianness(v),
    };

    public static ulong SDiv64(long a, long b) => b == -1 ? (ulong)unchecked(-a) : (ulong)(a / b);
    public static ulong SMod64(long a, long b) => b == -1 ? 0 : (ulong)(a % b);
    public static uint SDiv32(int a, int b) => b == -1 ? (uint)unchecked(-a) : (uint)(a / b);
    public static uint SMod32(int a, int b) => b == -1 ? 0 : (uint)(a % b);
}
