using Softnet.Filter;
using Softnet.Tests.Support;
using Xunit;
using static Softnet.Filter.BpfOp;

namespace Softnet.Tests.Filter;

/// <summary>The classic BPF interpreter's semantics (sk_run_filter, libpcap's bpf_filter).</summary>
public class ClassicBpfTests
{
    private static BpfInsn S(ushort code, uint k = 0) => new(code, 0, 0, k);
    private static BpfInsn J(ushort code, uint k, byte jt, byte jf) => new(code, jt, jf, k);

    private static uint Run(byte[] frame, params BpfInsn[] prog) => ClassicBpf.Run(prog, frame, frame.Length);

    [Fact]
    public void Loads_are_big_endian()
    {
        byte[] f = [0x12, 0x34, 0x56, 0x78, 0x9a];
        Assert.Equal(0x12345678u, Run(f, S(Ld | W | Abs, 0), S(Ret | A)));
        Assert.Equal(0x5678u, Run(f, S(Ld | H | Abs, 2), S(Ret | A)));
        Assert.Equal(0x9au, Run(f, S(Ld | B | Abs, 4), S(Ret | A)));
        Assert.Equal(0x3456789au, Run(f, S(Ldx | Imm, 1), S(Ld | W | Ind, 0), S(Ret | A)));
    }

    [Fact]
    public void Jumps_go_back_as_libpcaps_do_but_a_program_that_keeps_looping_ends()
    {
        byte[] f = new byte[4];
        Assert.Equal(7u, Run(f, S(Jmp | Ja, 1), S(Ret | K, 1), S(Ret | K, 7)));
        Assert.Equal(0u, Run(f, S(Jmp | Ja, 2), S(Ret | K, 1), S(Ret | K, 7))); // past the end
        // k as a signed int, as libpcap's bpf_filter adds it (protochain's loop): back to the start, then out.
        Assert.Equal(9u, Run(f, S(Ldx | Imm, 0), S(Ld | Mem, 0), S(Alu | Add | K, 1), S(St, 0), J(Jmp | Jeq | K, 3, 0, 1), S(Ret | K, 9), S(Jmp | Ja, unchecked((uint)-6))));
        // 0xFFFFFFFF is -1: a jump to itself, which would spin forever.
        Assert.Equal(0u, Run(f, S(Jmp | Ja, uint.MaxValue), S(Ret | K, 1)));
        Assert.Null(BpfJit.TryCompile([S(Jmp | Ja, uint.MaxValue), S(Ret | K, 1)])); // left to the interpreter
    }

    [Fact]
    public void Out_of_bounds_load_returns_zero()
    {
        byte[] f = new byte[10];
        Assert.Equal(0u, Run(f, S(Ld | W | Abs, 7), S(Ret | K, 1)));
        Assert.Equal(1u, Run(f, S(Ld | W | Abs, 6), S(Ret | K, 1)));
        Assert.Equal(0u, Run(f, S(Ld | B | Abs, 10), S(Ret | K, 1)));
        Assert.Equal(0u, Run(f, S(Ldx | Imm, 0xffffffff), S(Ld | B | Ind, 2), S(Ret | K, 1))); // X + k wraps in 32 bits: still out
        Assert.Equal(0u, Run(f, S(Ldx | Msh | B, 10), S(Ret | K, 1)));
        Assert.Equal(0u, Run(f, S(Ld | B | Abs, 0xfffff000), S(Ret | K, 1))); // SKF_AD_*: nothing to read offline
    }

    [Fact]
    public void Len_is_the_wire_length_and_msh_the_ip_header_length()
    {
        byte[] f = [0x46, 0, 0, 0];
        Assert.Equal(1514u, ClassicBpf.Run([S(Ld | W | Len), S(Ret | A)], f, 1514));
        Assert.Equal(24u, Run(f, S(Ldx | Msh | B, 0), S(Misc | Txa), S(Ret | A)));
    }

    [Fact]
    public void Division_or_modulus_by_zero_returns_zero()
    {
        byte[] f = new byte[1];
        Assert.Equal(0u, Run(f, S(Ld | Imm, 7), S(Ldx | Imm, 0), S(Alu | Div | X), S(Ret | K, 1)));
        Assert.Equal(0u, Run(f, S(Ld | Imm, 7), S(Ldx | Imm, 0), S(Alu | Mod | X), S(Ret | K, 1)));
        Assert.Equal(3u, Run(f, S(Ld | Imm, 7), S(Ldx | Imm, 2), S(Alu | Div | X), S(Ret | A)));
        Assert.Equal(1u, Run(f, S(Ld | Imm, 7), S(Alu | Mod | K, 3), S(Ret | A)));
    }

    [Fact]
    public void Alu_is_32_bit_and_shifts_take_the_count_modulo_32()
    {
        byte[] f = new byte[1];
        Assert.Equal(0xffffffffu, Run(f, S(Ld | Imm, 1), S(Alu | Neg), S(Ret | A)));
        Assert.Equal(2u, Run(f, S(Ld | Imm, 1), S(Ldx | Imm, 33), S(Alu | Lsh | X), S(Ret | A)));
        Assert.Equal(0u, Run(f, S(Ld | Imm, 0x80000000), S(Alu | Add | K, 0x80000000), S(Ret | A)));
        Assert.Equal(6u, Run(f, S(Ld | Imm, 5), S(Alu | Xor | K, 3), S(Ret | A)));
    }

    [Fact]
    public void Scratch_memory_starts_at_zero_and_keeps_values()
    {
        byte[] f = new byte[1];
        Assert.Equal(0u, Run(f, S(Ld | Mem, 15), S(Ret | A)));
        Assert.Equal(9u, Run(f, S(Ldx | Imm, 9), S(Stx, 3), S(Ld | Mem, 3), S(Ret | A)));
    }

    [Fact]
    public void Jumps_are_relative_and_falling_off_the_end_rejects()
    {
        byte[] f = [5];
        BpfInsn[] prog = [S(Ld | B | Abs, 0), J(Jmp | Jgt | K, 4, 0, 1), S(Ret | K, 1), S(Ret | K, 2)];
        Assert.Equal(1u, Run(f, prog));
        Assert.Equal(2u, Run([3], prog));
        Assert.Equal(7u, Run(f, S(Jmp | Ja, 1), S(Ret | K, 1), S(Ret | K, 7)));
        Assert.Equal(0u, Run(f, S(Ld | Imm, 1)));
        Assert.Equal(0u, Run(f, S(0xffff)));
    }

    [Fact]
    public void Running_a_filter_allocates_nothing()
    {
        var filter = PcapFilter.Compile("tcp port 80 or (udp and ip[6:2] & 0x1fff = 0 and len > 60)", Dlt.En10Mb);
        byte[] frame = new byte[100];
        frame[12] = 0x08;
        frame[14] = 0x45;
        frame[23] = 17;
        int hits = 0;
        AllocationAssert.NothingPerOperation(() =>
        {
            for (int i = 0; i < 10_000; i++) if (filter.Matches(frame, 100)) hits++;
        }, 10_000, "filter runs");
        Assert.True(hits > 0);
    }
}
