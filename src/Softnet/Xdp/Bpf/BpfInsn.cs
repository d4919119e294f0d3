using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Softnet.Xdp.Bpf;

/// <summary>
/// One eBPF instruction slot, laid out as struct bpf_insn (include/uapi/linux/bpf.h): an 8-bit opcode, the
/// destination register in the low nibble and the source register in the high nibble of the second byte, a
/// signed 16-bit offset and a signed 32-bit immediate, little-endian. A 64-bit immediate load (lddw) takes two
/// slots: the second carries the high 32 bits in its imm and must be otherwise zero.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1)]
public readonly record struct BpfInsn(byte Code, byte Regs, short Off, int Imm)
{
    public const int Size = 8;

    public BpfInsn(byte code, int dst, int src, short off, int imm)
        : this(code, (byte)((dst & 0xf) | ((src & 0xf) << 4)), off, imm) { }

    public int Dst => Regs & 0xf;
    public int Src => Regs >> 4;
    public int Class => Code & 0x07;
    /// <summary>BPF_OP for ALU and JMP classes.</summary>
    public int Op => Code & 0xf0;
    /// <summary>BPF_SRC: BPF_K (immediate) or BPF_X (register).</summary>
    public int Source => Code & 0x08;
    /// <summary>BPF_SIZE for load and store classes.</summary>
    public int SizeField => Code & 0x18;
    /// <summary>BPF_MODE for load and store classes.</summary>
    public int Mode => Code & 0xe0;

    public bool IsLdImm64 => Code == (BpfOp.BPF_LD | BpfOp.BPF_IMM | BpfOp.BPF_DW);

    public static BpfInsn Read(ReadOnlySpan<byte> b) => new(
        b[0], b[1], BinaryPrimitives.ReadInt16LittleEndian(b[2..]), BinaryPrimitives.ReadInt32LittleEndian(b[4..]));

    public void Write(Span<byte> b)
    {
        b[0] = Code;
        b[1] = Regs;
        BinaryPrimitives.WriteInt16LittleEndian(b[2..], Off);
        BinaryPrimitives.WriteInt32LittleEndian(b[4..], Imm);
    }

    /// <summary>Decodes a program from its byte image (a multiple of 8 bytes).</summary>
    public static BpfInsn[] Decode(ReadOnlySpan<byte> image)
    {
        if (image.Length % Size != 0) throw new ArgumentException($"program length {image.Length} is not a multiple of {Size}");
        var prog = new BpfInsn[image.Length / Size];
        for (int i = 0; i < prog.Length; i++) prog[i] = Read(image.Slice(i * Size, Size));
        return prog;
    }

    /// <summary>The instruction as the raw 64-bit word the conformance suite's `-- raw` form uses.</summary>
    public ulong ToUInt64()
    {
        Span<byte> b = stackalloc byte[8];
        Write(b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    public static BpfInsn FromUInt64(ulong v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return Read(b);
    }

    public override string ToString() => $"({Code:x2}) dst=r{Dst} src=r{Src} off={Off} imm={Imm}";
}

/// <summary>
/// Opcode pieces as include/uapi/linux/bpf_common.h and bpf.h name them. An opcode is class | size | mode
/// for loads and stores, class | op | source for ALU and jumps.
/// </summary>
public static class BpfOp
{
    // Instruction classes (BPF_CLASS).
    public const byte BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03;
    public const byte BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_JMP32 = 0x06, BPF_ALU64 = 0x07;

    // Load/store sizes (BPF_SIZE).
    public const byte BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10, BPF_DW = 0x18;

    // Load/store modes (BPF_MODE).
    public const byte BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MEM = 0x60;
    public const byte BPF_MEMSX = 0x80, BPF_ATOMIC = 0xc0;

    // Sources (BPF_SRC).
    public const byte BPF_K = 0x00, BPF_X = 0x08;

    // ALU operations (BPF_OP).
    public const byte BPF_ADD = 0x00, BPF_SUB = 0x10, BPF_MUL = 0x20, BPF_DIV = 0x30, BPF_OR = 0x40;
    public const byte BPF_AND = 0x50, BPF_LSH = 0x60, BPF_RSH = 0x70, BPF_NEG = 0x80, BPF_MOD = 0x90;
    public const byte BPF_XOR = 0xa0, BPF_MOV = 0xb0, BPF_ARSH = 0xc0, BPF_END = 0xd0;

    // BPF_END source bit: to little or big endian (with BPF_ALU); BPF_ALU64 | BPF_END is the unconditional bswap.
    public const byte BPF_TO_LE = 0x00, BPF_TO_BE = 0x08;

    // Jump operations (BPF_OP).
    public const byte BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40;
    public const byte BPF_JNE = 0x50, BPF_JSGT = 0x60, BPF_JSGE = 0x70, BPF_CALL = 0x80, BPF_EXIT = 0x90;
    public const byte BPF_JLT = 0xa0, BPF_JLE = 0xb0, BPF_JSLT = 0xc0, BPF_JSLE = 0xd0, BPF_JCOND = 0xe0;

    // Atomic operations in imm of BPF_STX | BPF_ATOMIC.
    public const int BPF_FETCH = 0x01;
    public const int BPF_XCHG = 0xe0 | BPF_FETCH;
    public const int BPF_CMPXCHG = 0xf0 | BPF_FETCH;

    // src_reg of BPF_CALL: helper (0), BPF-to-BPF call (BPF_PSEUDO_CALL), kfunc (BPF_PSEUDO_KFUNC_CALL).
    public const int BPF_PSEUDO_CALL = 1, BPF_PSEUDO_KFUNC_CALL = 2;

    // src_reg of BPF_LD | BPF_IMM | BPF_DW (what the immediate refers to); the loader resolves these.
    public const int BPF_PSEUDO_MAP_FD = 1, BPF_PSEUDO_MAP_VALUE = 2, BPF_PSEUDO_BTF_ID = 3;
    public const int BPF_PSEUDO_FUNC = 4, BPF_PSEUDO_MAP_IDX = 5, BPF_PSEUDO_MAP_IDX_VALUE = 6;

    /// <summary>Registers: R0 return value, R1–R5 arguments, R6–R9 callee saved, R10 read-only frame pointer.</summary>
    public const int MaxReg = 11, FramePointer = 10;

    /// <summary>MAX_BPF_STACK: bytes of stack per frame.</summary>
    public const int StackSize = 512;

    /// <summary>MAX_CALL_FRAMES: the main program plus seven nested BPF-to-BPF calls.</summary>
    public const int MaxCallFrames = 8;

    /// <summary>Bytes accessed by a BPF_SIZE value.</summary>
    public static int SizeBytes(int sizeField) => sizeField switch
    {
        BPF_B => 1,
        BPF_H => 2,
        BPF_W => 4,
        _ => 8,
    };
}
