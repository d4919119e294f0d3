using System.Runtime.InteropServices;

namespace Softnet.Filter;

/// <summary>
/// One classic BPF instruction, laid out as struct sock_filter (include/uapi/linux/filter.h): code, jt, jf, k.
/// This is what SO_ATTACH_FILTER takes and what libpcap's compiler emits.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct BpfInsn(ushort Code, byte Jt, byte Jf, uint K)
{
    public override string ToString() => $"{{ 0x{Code:x}, {Jt}, {Jf}, 0x{K:x8} }}";
}

/// <summary>The classic BPF opcode fields (include/uapi/linux/bpf_common.h, filter.h).</summary>
public static class BpfOp
{
    // Instruction classes.
    public const ushort Ld = 0x00, Ldx = 0x01, St = 0x02, Stx = 0x03, Alu = 0x04, Jmp = 0x05, Ret = 0x06, Misc = 0x07;
    // Load sizes.
    public const ushort W = 0x00, H = 0x08, B = 0x10;
    // Load modes.
    public const ushort Imm = 0x00, Abs = 0x20, Ind = 0x40, Mem = 0x60, Len = 0x80, Msh = 0xa0;
    // ALU operations.
    public const ushort Add = 0x00, Sub = 0x10, Mul = 0x20, Div = 0x30, Or = 0x40, And = 0x50, Lsh = 0x60, Rsh = 0x70,
        Neg = 0x80, Mod = 0x90, Xor = 0xa0;
    // Jump operations.
    public const ushort Ja = 0x00, Jeq = 0x10, Jgt = 0x20, Jge = 0x30, Jset = 0x40;
    // Operand source.
    public const ushort K = 0x00, X = 0x08;
    // Return value source.
    public const ushort A = 0x10;
    // Misc operations.
    public const ushort Tax = 0x00, Txa = 0x80;

    /// <summary>Scratch memory words (BPF_MEMWORDS).</summary>
    public const int MemWords = 16;

    public static ushort Class(ushort code) => (ushort)(code & 0x07);
    public static ushort Size(ushort code) => (ushort)(code & 0x18);
    public static ushort Mode(ushort code) => (ushort)(code & 0xe0);
    public static ushort Operation(ushort code) => (ushort)(code & 0xf0);
    public static ushort Source(ushort code) => (ushort)(code & 0x08);
    public static ushort RetVal(ushort code) => (ushort)(code & 0x18);
    public static ushort MiscOp(ushort code) => (ushort)(code & 0xf8);
}
