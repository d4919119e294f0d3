using System.Buffers.Binary;

namespace Softnet.Filter;

/// <summary>
/// The classic BPF interpreter with the semantics the kernel's socket filters (net/core/filter.c, sk_filter run
/// after bpf_convert_filter) and libpcap's bpf_filter() share: a load that would read past the captured bytes ends
/// the program with 0 (drop), as does a division or modulus by a zero X; scratch memory M[0..15] starts at zero;
/// shifts use the count modulo 32 as the kernel's 32-bit ALU does; BPF_LEN is the packet's length on the wire while
/// loads see only the captured bytes. An unknown opcode, or a jump past the end, also returns 0 (the kernel's
/// sk_chk_filter would have refused such a program). Negative (ancillary SKF_AD_*) offsets have no packet
/// metadata to read here and return 0 like an out-of-bounds load. Nothing is allocated per run.
/// </summary>
public static class ClassicBpf
{
    /// <summary>Backward jumps one run may take (protochain walks at most a few dozen headers).</summary>
    public const int MaxBackJumps = 4096;

    /// <summary>Runs <paramref name="program"/> over a frame; the return value is the snap length kept (0 = reject).</summary>
    public static uint Run(ReadOnlySpan<BpfInsn> program, ReadOnlySpan<byte> frame, int wireLength)
    {
        // stackalloc memory is zeroed (the assembly does not skip locals init): M[] starts at 0.
        Span<uint> mem = stackalloc uint[BpfOp.MemWords];
        uint a = 0, x = 0;
        uint buflen = (uint)frame.Length;
        int pc = 0, backJumps = 0;
        while ((uint)pc < (uint)program.Length)
        {
            ref readonly BpfInsn ins = ref program[pc++];
            uint k = ins.K;
            switch (ins.Code)
            {
                case BpfOp.Ret | BpfOp.K: return k;
                case BpfOp.Ret | BpfOp.A: return a;

                case BpfOp.Ld | BpfOp.W | BpfOp.Abs:
                    if (!Fits(k, 4, buflen)) return 0;
                    a = BinaryPrimitives.ReadUInt32BigEndian(frame.Slice((int)k, 4));
                    break;
                case BpfOp.Ld | BpfOp.H | BpfOp.Abs:
                    if (!Fits(k, 2, buflen)) return 0;
                    a = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice((int)k, 2));
                    break;
                case BpfOp.Ld | BpfOp.B | BpfOp.Abs:
                    if (!Fits(k, 1, buflen)) return 0;
                    a = frame[(int)k];
                    break;
                case BpfOp.Ld | BpfOp.W | BpfOp.Len: a = (uint)wireLength; break;
                case BpfOp.Ldx | BpfOp.W | BpfOp.Len: x = (uint)wireLength; break;
                case BpfOp.Ld | BpfOp.W | BpfOp.Ind:
                    {
                        ulong off = (ulong)x + k;
                        if (off + 4 > buflen) return 0;
                        a = BinaryPrimitives.ReadUInt32BigEndian(frame.Slice((int)off, 4));
                        break;
                    }
                case BpfOp.Ld | BpfOp.H | BpfOp.Ind:
                    {
                        ulong off = (ulong)x + k;
                        if (off + 2 > buflen) return 0;
                        a = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice((int)off, 2));
                        break;
                    }
                case BpfOp.Ld | BpfOp.B | BpfOp.Ind:
                    {
                        ulong off = (ulong)x + k;
                        if (off + 1 > buflen) return 0;
                        a = frame[(int)off];
                        break;
                    }
                case BpfOp.Ldx | BpfOp.Msh | BpfOp.B:
                    if (!Fits(k, 1, buflen)) return 0;
                    x = (uint)(frame[(int)k] & 0xf) << 2;
                    break;
                case BpfOp.Ld | BpfOp.Imm: a = k; break;
                case BpfOp.Ldx | BpfOp.Imm: x = k; break;
                case BpfOp.Ld | BpfOp.Mem:
                    if (k >= BpfOp.MemWords) return 0;
                    a = mem[(int)k];
                    break;
                case BpfOp.Ldx | BpfOp.Mem:
                    if (k >= BpfOp.MemWords) return 0;
                    x = mem[(int)k];
                    break;
                case BpfOp.St:
                    if (k >= BpfOp.MemWords) return 0;
                    mem[(int)k] = a;
                    break;
                case BpfOp.Stx:
                    if (k >= BpfOp.MemWords) return 0;
                    mem[(int)k] = x;
                    break;

                // libpcap's bpf_filter adds k as a signed int, and its protochain code jumps back that way (the kernel
                // refuses such programs). A program that keeps jumping back is ended with 0 rather than left to spin.
                case BpfOp.Jmp | BpfOp.Ja:
                    if ((int)k < 0 && ++backJumps > MaxBackJumps) return 0;
                    pc += (int)k;
                    break;
                case BpfOp.Jmp | BpfOp.Jgt | BpfOp.K: pc += a > k ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jge | BpfOp.K: pc += a >= k ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jeq | BpfOp.K: pc += a == k ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jset | BpfOp.K: pc += (a & k) != 0 ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jgt | BpfOp.X: pc += a > x ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jge | BpfOp.X: pc += a >= x ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jeq | BpfOp.X: pc += a == x ? ins.Jt : ins.Jf; break;
                case BpfOp.Jmp | BpfOp.Jset | BpfOp.X: pc += (a & x) != 0 ? ins.Jt : ins.Jf; break;

                case BpfOp.Alu | BpfOp.Add | BpfOp.X: a += x; break;
                case BpfOp.Alu | BpfOp.Sub | BpfOp.X: a -= x; break;
                case BpfOp.Alu | BpfOp.Mul | BpfOp.X: a *= x; break;
                case BpfOp.Alu | BpfOp.Div | BpfOp.X:
                    if (x == 0) return 0;
                    a /= x;
                    break;
                case BpfOp.Alu | BpfOp.Mod | BpfOp.X:
                    if (x == 0) return 0;
                    a %= x;
                    break;
                case BpfOp.Alu | BpfOp.And | BpfOp.X: a &= x; break;
                case BpfOp.Alu | BpfOp.Or | BpfOp.X: a |= x; break;
                case BpfOp.Alu | BpfOp.Xor | BpfOp.X: a ^= x; break;
                case BpfOp.Alu | BpfOp.Lsh | BpfOp.X: a <<= (int)(x & 31); break;
                case BpfOp.Alu | BpfOp.Rsh | BpfOp.X: a >>= (int)(x & 31); break;
                case BpfOp.Alu | BpfOp.Add | BpfOp.K: a += k; break;
                case BpfOp.Alu | BpfOp.Sub | BpfOp.K: a -= k; break;
                case BpfOp.Alu | BpfOp.Mul | BpfOp.K: a *= k; break;
                case BpfOp.Alu | BpfOp.Div | BpfOp.K:
                    if (k == 0) return 0;
                    a /= k;
                    break;
                case BpfOp.Alu | BpfOp.Mod | BpfOp.K:
                    if (k == 0) return 0;
                    a %= k;
                    break;
                case BpfOp.Alu | BpfOp.And | BpfOp.K: a &= k; break;
                case BpfOp.Alu | BpfOp.Or | BpfOp.K: a |= k; break;
                case BpfOp.Alu | BpfOp.Xor | BpfOp.K: a ^= k; break;
                case BpfOp.Alu | BpfOp.Lsh | BpfOp.K: a <<= (int)(k & 31); break;
                case BpfOp.Alu | BpfOp.Rsh | BpfOp.K: a >>= (int)(k & 31); break;
                case BpfOp.Alu | BpfOp.Neg: a = 0u - a; break;

                case BpfOp.Misc | BpfOp.Tax: x = a; break;
                case BpfOp.Misc | BpfOp.Txa: a = x; break;

                default: return 0;
            }
        }
        return 0;
    }

    private static bool Fits(uint k, uint size, uint buflen) => (ulong)k + size <= buflen;
}
