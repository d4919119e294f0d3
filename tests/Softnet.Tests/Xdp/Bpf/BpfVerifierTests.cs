using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// The verifier's refusals, each with the kernel's wording and instruction number, and the XDP programs it
/// accepts running on real frames.
/// </summary>
public class BpfVerifierTests
{
    private static BpfInsn[] Asm(string text) => BpfAssembler.Assemble(text, "test");

    private static string Refusal(string text, BpfVerifierOptions? options = null)
    {
        var e = Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(Asm(text), options ?? BpfVerifierOptions.Xdp()));
        return e.Message;
    }

    private static BpfProgram Load(string text) => BpfVerifier.Verify(Asm(text), BpfVerifierOptions.Xdp());

    // An XDP prologue: R2 = data, R3 = data_end.
    private const string Prologue = "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\n";

    [Fact]
    public void Packet_load_without_a_data_end_check_is_refused()
    {
        Assert.Equal("2: invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)\nR2 offset is outside of the packet",
            Refusal(Prologue + "ldxb %r0, [%r2+0]\nexit"));
    }

    [Fact]
    public void Packet_loads_are_allowed_up_to_the_offset_compared_with_data_end_and_no_further()
    {
        const string ok = Prologue + """
            mov %r4, %r2
            add %r4, 14
            jgt %r4, %r3, drop
            ldxh %r0, [%r2+12]
            mov %r0, 2
            exit
            drop:
            mov %r0, 1
            exit
            """;
        Load(ok);
        // Two bytes past the proven 14.
        Assert.StartsWith("5: invalid access to packet, off=13 size=2, R2(id=0,off=0,r=14)",
            Refusal(ok.Replace("ldxh %r0, [%r2+12]", "ldxh %r0, [%r2+13]")));
        // On the taken side (pkt > data_end) nothing is proven.
        Assert.StartsWith("8: invalid access to packet",
            Refusal(ok.Replace("mov %r0, 1\nexit", "ldxb %r0, [%r2+0]\nexit")));
        // The reversed comparison (data_end >= pkt jumps to the safe side) proves the same.
        Load(Prologue + """
            mov %r4, %r2
            add %r4, 14
            jge %r3, %r4, ok
            mov %r0, 1
            exit
            ok:
            ldxh %r0, [%r2+12]
            exit
            """);
    }

    [Fact]
    public void A_strict_comparison_proves_one_byte_more_and_metadata_is_checked_against_data()
    {
        const string lt = Prologue + """
            mov %r4, %r2
            add %r4, 14
            jlt %r4, %r3, ok
            mov %r0, 1
            exit
            ok:
            ldxb %r0, [%r2+14]
            exit
            """;
        Load(lt);
        Assert.StartsWith("7: invalid access to packet, off=15 size=1, R2(id=0,off=0,r=15)", Refusal(lt.Replace("[%r2+14]", "[%r2+15]")));

        var prog = Load("""
            ldxw %r2, [%r1+8]
            ldxw %r3, [%r1+0]
            mov %r4, %r2
            add %r4, 4
            jgt %r4, %r3, nometa
            ldxw %r0, [%r2+0]
            exit
            nometa:
            mov %r0, 2
            exit
            """);
        var buf = new byte[128];
        var xdp = new XdpBuff(buf, 64, 20, rxQueue: 0);
        var vm = new BpfInterpreter();
        vm.RunXdp(prog, ref xdp, 1, out var r);
        Assert.Equal(2UL, r.R0);
        Assert.True(xdp.AdjustMeta(-4));
        xdp.Meta.Fill(0x03);
        vm.RunXdp(prog, ref xdp, 1, out r);
        Assert.Equal(0x03030303UL, r.R0);
    }

    [Fact]
    public void A_variable_offset_starts_a_lineage_that_needs_its_own_check()
    {
        const string text = Prologue + """
            ldxw %r5, [%r1+16]
            and %r5, 0x3f
            mov %r4, %r2
            add %r4, %r5
            mov %r6, %r4
            add %r6, 14
            jgt %r6, %r3, drop
            ldxb %r0, [%r4+13]
            exit
            drop:
            mov %r0, 1
            exit
            """;
        var prog = Load(text);
        Assert.StartsWith("9: invalid access to packet, off=14 size=1, R4(id=1,off=0,r=14)", Refusal(text.Replace("[%r4+13]", "[%r4+14]")));
        // The check on r4's lineage says nothing about data itself.
        Assert.StartsWith("9: invalid access to packet, off=0 size=1, R2(id=0,off=0,r=0)", Refusal(text.Replace("[%r4+13]", "[%r2+0]")));
        var buf = new byte[256];
        buf[64 + 3 + 13] = 0x5a;
        var xdp = new XdpBuff(buf, 64, 20, rxQueue: 3);
        new BpfInterpreter().RunXdp(prog, ref xdp, 1, out var r);
        Assert.Equal(0x5aUL, r.R0);
        xdp = new XdpBuff(buf, 64, 16, rxQueue: 3);   // 3 + 14 > 16: the program's own check drops it
        Assert.Equal(XdpAction.Drop, new BpfInterpreter().RunXdp(prog, ref xdp, 1, out _));
    }

    [Fact]
    public void Without_loops_allowed_a_back_edge_is_refused_but_a_backward_jump_that_is_no_loop_is_not()
    {
        var noLoops = BpfVerifierOptions.Xdp() with { AllowLoops = false };
        Assert.Equal("back-edge from insn 2 to 1", Refusal("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 100, loop\nexit", noLoops));
        BpfVerifier.Verify(Asm("mov %r1, 0\nja L2\nL1:\nmov %r2, 0\nexit\nL2:\nmov %r0, 0\nja L1"), noLoops);
    }

    [Fact]
    public void Uninitialised_registers_unreachable_code_and_missing_exit_are_refused()
    {
        Assert.Equal("0: R2 !read_ok", Refusal("mov %r0, %r2\nexit"));
        Assert.Equal("0: R0 !read_ok", Refusal("exit"));
        Assert.Equal("unreachable insn 2", Refusal("mov %r0, 0\nexit\nmov %r0, 1\nexit"));
        Assert.Equal("last insn is not an exit or jmp", Refusal("mov %r0, 0"));
        Assert.Equal("jump out of range from insn 1 to 7", Refusal("mov %r0, 0\nja +5\nexit"));
        Assert.Equal("0: frame pointer is read only", Refusal("mov %r10, 0\nmov %r0, 0\nexit"));
        // After a helper call R1-R5 are dead.
        Assert.Equal("2: R1 !read_ok", Refusal("mov %r1, 1\ncall 5\nmov %r0, %r1\nexit", BpfVerifierOptions.Conformance(0)));
    }

    [Fact]
    public void Invalid_opcodes_and_reserved_fields_are_refused()
    {
        var bad = new[] { new BpfInsn(0xff, 0, 0, 0, 0), new BpfInsn(0x95, 0, 0, 0, 0) };
        Assert.Equal("0: unknown opcode ff", Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(bad, BpfVerifierOptions.Xdp())).Message);
        var ldAbs = new[] { new BpfInsn(0x30, 0, 0, 0, 12), new BpfInsn(0x95, 0, 0, 0, 0) };
        Assert.Equal("0: BPF_LD_[ABS|IND] instructions not allowed for this program type",
            Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(ldAbs, BpfVerifierOptions.Xdp())).Message);
        var reserved = new[] { new BpfInsn(0xb7, 0, 0, 1, 0), new BpfInsn(0x95, 0, 0, 0, 0) };
        Assert.Equal("0: BPF_MOV uses reserved fields", Assert.Throws<BpfVerifierException>(() => BpfVerifier.Verify(reserved, BpfVerifierOptions.Xdp())).Message);
        // The kernel refuses what RFC 9669 allows: constant division by zero, shifts past the width, callx.
        Assert.Equal("1: div by zero", Refusal("mov %r0, 1\ndiv %r0, 0\nexit"));
        Assert.Equal("1: invalid shift 68", Refusal("mov %r0, 1\nlsh %r0, 68\nexit"));
        Assert.Equal("2: unknown opcode 8d", Refusal("mov %r0, 1\nmov %r2, 5\ncall %r2\nexit"));
    }

    [Fact]
    public void Loops_must_end()
    {
        Assert.Equal("1: infinite loop detected at insn 1", Refusal("mov %r0, 0\nja -1"));
        // A loop bounded by a constant unrolls; one bounded only by a 32-bit queue number exhausts the budget.
        Load("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 100, loop\nexit");
        var small = BpfVerifierOptions.Xdp() with { MaxProcessedInsns = 20_000 };
        Assert.StartsWith("BPF program is too large. Processed 20001 insn",
            Refusal("ldxw %r2, [%r1+16]\nmov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, %r2, loop\nexit", small));
    }

    [Fact]
    public void Memory_access_errors_name_the_register_and_type()
    {
        Assert.Equal("1: R2 invalid mem access 'scalar'", Refusal("mov %r2, 5\nldxb %r0, [%r2+0]\nexit"));
        Assert.Equal("0: invalid write to stack R10 off=-520 size=8", Refusal("stdw [%r10-520], 1\nmov %r0, 0\nexit"));
        Assert.Equal("0: invalid bpf_context access off=20 size=4", Refusal("ldxw %r0, [%r1+20]\nexit"));
        Assert.Equal("0: invalid bpf_context access off=0 size=4", Refusal("stw [%r1+0], 1\nmov %r0, 0\nexit"));
        Assert.Equal("2: R3 invalid mem access 'pkt_end'", Refusal(Prologue + "ldxb %r0, [%r3+0]\nexit"));
        Assert.Equal("2: R2 pointer arithmetic on pkt_end prohibited", Refusal("ldxw %r2, [%r1+4]\nmov %r3, 1\nadd %r2, %r3\nmov %r0, 0\nexit"));
    }

    [Fact]
    public void Calls_nest_at_most_eight_frames_and_restore_the_caller()
    {
        // main calls f1 ... f8: nine frames.
        var text = new System.Text.StringBuilder("call local f1\nexit\n");
        for (int i = 1; i <= 8; i++) text.Append($"f{i}:\n").Append(i < 8 ? $"call local f{i + 1}\n" : "mov %r0, 7\n").Append("exit\n");
        Assert.Equal("15: the call stack of 9 frames is too deep !", Refusal(text.ToString().Replace("call local f1\n", "mov %r6, 1\ncall local f1\n")));
        // Seven nested calls are fine and R6 survives them.
        var seven = "mov %r6, 40\ncall local f1\nadd %r0, %r6\nexit\n";
        for (int i = 1; i <= 7; i++) seven += $"f{i}:\nmov %r6, {i}\n" + (i < 7 ? $"call local f{i + 1}\n" : "mov %r0, 2\n") + "exit\n";
        var prog = BpfVerifier.Verify(Asm(seven), BpfVerifierOptions.Conformance(0));
        var mem = new BpfMemory(default, default, 0, 0);
        Assert.Equal(42UL, new BpfInterpreter().Run(prog, ref mem, 0).R0);
    }

    [Fact]
    public void Frames_of_a_call_chain_share_the_512_byte_stack()
    {
        const string text = "stdw [%r10-300], 1\ncall local f\nmov %r0, 0\nexit\nf:\nstdw [%r10-256], 2\nmov %r0, 0\nexit";
        // 300 rounds up to 304, plus 256.
        Assert.Equal("combined stack size of 2 calls is 560. Too large", Refusal(text));
        Load(text.Replace("[%r10-300]", "[%r10-200]"));
    }

    [Fact]
    public void A_pointer_compared_with_null_takes_the_non_null_branch_only()
    {
        // The kernel never walks the "ctx == NULL" side, so what is there does not matter.
        Load("jne %r1, 0, ok\nldxb %r0, [%r0+0]\nexit\nok:\nmov %r0, 2\nexit");
    }

    [Fact]
    public void A_subprogram_returns_only_a_scalar()
    {
        Assert.Equal("4: At subprogram exit the register R0 is not a scalar value (fp)",
            Refusal("call local f\nmov %r0, 0\nexit\nf:\nmov %r0, %r10\nexit"));
        // Copying the low half of a pointer is allowed to a privileged loader and gives a plain number.
        Load("mov32 %r0, %r1\nexit");
    }

    [Fact]
    public void A_read_of_never_written_stack_is_allowed_and_reads_zero()
    {
        var vm = new BpfInterpreter();
        var writer = Load("stdw [%r10-8], 0x1234\nldxdw %r0, [%r10-8]\nexit");
        var reader = Load("ldxdw %r0, [%r10-8]\nexit");
        var buf = new byte[64];
        var xdp = new XdpBuff(buf, 0, 60, 0);
        vm.RunXdp(writer, ref xdp, 1, out var r);
        Assert.Equal(0x1234UL, r.R0);
        vm.RunXdp(reader, ref xdp, 1, out r);
        Assert.Equal(0UL, r.R0);
    }

    [Fact]
    public void An_xdp_program_parses_a_frame_and_rewrites_it_in_place()
    {
        // IPv4 frames: swap the MAC addresses and XDP_TX; anything else: XDP_PASS; runts: XDP_DROP.
        var prog = Load(Prologue + """
            mov %r4, %r2
            add %r4, 14
            jgt %r4, %r3, drop
            ldxh %r5, [%r2+12]
            jne %r5, 0x0008, pass
            ldxw %r6, [%r2+0]
            ldxh %r7, [%r2+4]
            ldxw %r8, [%r2+6]
            ldxh %r9, [%r2+10]
            stxw [%r2+0], %r8
            stxh [%r2+4], %r9
            stxw [%r2+6], %r6
            stxh [%r2+10], %r7
            mov %r0, 3
            exit
            pass:
            mov %r0, 2
            exit
            drop:
            mov %r0, 1
            exit
            """);
        var vm = new BpfInterpreter();
        var buf = new byte[256];
        byte[] frame = [1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16, 0x08, 0x00, 0x45];
        frame.CopyTo(buf, 64);
        var xdp = new XdpBuff(buf, 64, frame.Length, rxQueue: 0);
        Assert.Equal(XdpAction.Tx, vm.RunXdp(prog, ref xdp, 1, out _));
        Assert.Equal(new byte[] { 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 0x08, 0x00 }, buf[64..78]);
        buf[76] = 0x86; buf[77] = 0xdd;
        xdp = new XdpBuff(buf, 64, frame.Length, rxQueue: 0);
        Assert.Equal(XdpAction.Pass, vm.RunXdp(prog, ref xdp, 1, out _));
        xdp = new XdpBuff(buf, 64, 10, rxQueue: 0);
        Assert.Equal(XdpAction.Drop, vm.RunXdp(prog, ref xdp, 1, out _));
    }

    [Fact]
    public void Xdp_context_fields_read_as_the_kernel_presents_them()
    {
        var prog = Load("ldxw %r0, [%r1+16]\nldxw %r2, [%r1+12]\nlsh %r0, 8\nadd %r0, %r2\nexit");
        var buf = new byte[128];
        var xdp = new XdpBuff(buf, 32, 60, rxQueue: 5);
        new BpfInterpreter().RunXdp(prog, ref xdp, 7, out var r);
        Assert.Equal((5UL << 8) + 7, r.R0);
    }

    [Fact]
    public void The_interpreter_reports_an_access_outside_its_region_as_a_fault()
    {
        // Not verified (the verifier would refuse it): the run-time check still holds.
        var prog = new BpfProgram(Asm("ldxb %r0, [%r1+8]\nexit"), BpfVerifierOptions.Conformance(8), 0);
        var data = new byte[8];
        var mem = new BpfMemory(default, data, 0, data.Length);
        var r = new BpfInterpreter().Run(prog, ref mem, BpfMemory.Address(BpfMemory.PacketRegion, 0), 8);
        Assert.Equal(BpfFault.MemoryAccess, r.Fault);
        Assert.Equal(0, r.Pc);
        var nul = new BpfProgram(Asm("mov %r1, 0\nldxdw %r0, [%r1+0]\nexit"), BpfVerifierOptions.Conformance(0), 0);
        Assert.Equal(BpfFault.MemoryAccess, new BpfInterpreter().Run(nul, ref mem, 0).Fault);
    }

    [Fact]
    public void A_run_allocates_nothing()
    {
        var prog = Load(Prologue + "mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, +2\nldxh %r0, [%r2+12]\nexit\nmov %r0, 1\nexit");
        var vm = new BpfInterpreter();
        var buf = new byte[256];
        for (int i = 0; i < 1000; i++) { var x = new XdpBuff(buf, 64, 64, 0); vm.RunXdp(prog, ref x, 1, out _); }
        long before = GC.GetAllocatedBytesForCurrentThread();
        const int n = 100_000;
        for (int i = 0; i < n; i++) { var x = new XdpBuff(buf, 64, 64, 0); vm.RunXdp(prog, ref x, 1, out _); }
        Softnet.Tests.Support.AllocationAssert.NothingPerOperation(GC.GetAllocatedBytesForCurrentThread() - before, n, "runs");
    }
}
