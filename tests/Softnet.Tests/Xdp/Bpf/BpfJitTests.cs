using System.CommandLine;
using CsCheck;
using Softnet.Cli;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Xunit;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// The JIT against the interpreter, its reference: the whole conformance suite compiled, random instruction
/// sequences (verified or not) giving the same R0, fault, faulting pc and memory, every ALU and jump operation on
/// edge operands, and XDP programs giving the same verdicts and output frames.
/// </summary>
[Collection("console")]
public class BpfJitTests
{
    private static string Folder(string name)
    {
        string dir = Path.Combine(BpfConformanceTests.SuiteDir, name);
        if (!Directory.Exists(dir)) Assert.Fail($"bpf_conformance folder missing: {dir}");
        return dir;
    }

    [Fact]
    public void Every_positive_conformance_test_passes_through_the_jit()
    {
        var runner = new BpfConformanceRunner(BpfEngine.Jit);
        var files = Directory.GetFiles(Folder("tests"), "*.data");
        Assert.True(files.Length >= 300, $"only {files.Length} test files");
        var failures = files.Order(StringComparer.Ordinal).Select(runner.Run).Where(o => !o.Passed).Select(o => o.Detail).ToList();
        Assert.True(failures.Count == 0, $"{failures.Count} of {files.Length} failed:\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Negative_conformance_tests_read_the_same_through_the_jit()
    {
        var interp = new BpfConformanceRunner();
        var jit = new BpfConformanceRunner(BpfEngine.Jit);
        foreach (var path in Directory.GetFiles(Folder("negative"), "*.data").Order(StringComparer.Ordinal))
            Assert.Equal(interp.Run(path), jit.Run(path));
    }

    [Fact]
    public void Cli_conformance_takes_jit()
    {
        var output = new StringWriter();
        var config = new InvocationConfiguration { Output = output, Error = new StringWriter() };
        int rc = new RootCommand { XdpCommand.Create() }.Parse(["xdp", "conformance", Folder("tests"), "--jit"]).Invoke(config);
        Assert.Equal(0, rc);
        Assert.Matches(@"^\d+ passed, 0 failed$", output.ToString().TrimEnd().Split('\n')[^1]);
    }

    // ---- random programs, verified or not ----

    /// <summary>
    /// Helpers for the random programs: 5 is the suite's unwind; 6 moves data_meta forward by R1 &amp; 3 (as
    /// bpf_xdp_adjust_head does, so compiled code must re-read the packet bounds after a call); 7 stores R2 through
    /// the pointer in R1 (so helpers reach the stack and packet the same way in both engines).
    /// </summary>
    private static BpfHelperTable RandomHelpers()
    {
        var t = BpfHelperTable.Conformance();
        t.Register(new BpfHelper(6, "shrink", 1, static (ref BpfMemory m, ulong r1, ulong _, ulong _, ulong _, ulong _) =>
        {
            int n = (int)(r1 & 3);
            if (m.PacketStart + n <= m.PacketEnd) m.PacketStart += n;
            return (ulong)m.PacketStart;
        }));
        t.Register(new BpfHelper(7, "poke", 2, static (ref BpfMemory m, ulong r1, ulong r2, ulong _, ulong _, ulong _) =>
        {
            if (!m.TryMap(r1, 4, true, out var b)) return ulong.MaxValue;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)r2);
            return 0;
        }));
        return t;
    }

    private static readonly BpfHelperTable Helpers = RandomHelpers();

    private static readonly long[] EdgeImms = [0, 1, -1, 2, 7, 8, 16, 31, 32, 63, 64, int.MinValue, int.MaxValue, 0xff, 0x8000, 0x100, 0x110];

    private static int Reg(Random rng) => rng.Next(20) == 0 ? rng.Next(11, 16) : rng.Next(0, 11);

    private static int Imm(Random rng) => rng.Next(3) == 0 ? (int)EdgeImms[rng.Next(EdgeImms.Length)] : rng.Next(3) == 0 ? rng.Next(-70, 70) : rng.Next(int.MinValue, int.MaxValue);

    /// <summary>
    /// A random program: mostly well-formed instructions of every class with edge operands, some malformed ones,
    /// memory through R10, R1 (the packet) and other registers. Jumps and call targets only go forward, so every run
    /// ends (within one frame the pc only grows, and frames are bounded).
    /// </summary>
    private static BpfInsn[] RandomProgram(Random rng)
    {
        int n = rng.Next(1, 32);
        var p = new List<BpfInsn>();
        while (p.Count < n)
        {
            int i = p.Count;
            int remaining = n - i;
            short Fwd() => (short)(rng.Next(8) == 0 ? rng.Next(0, remaining + 3) : rng.Next(0, Math.Max(1, remaining)));
            int kind = rng.Next(100);
            if (kind < 30)
            {
                byte cls = rng.Next(2) == 0 ? BPF_ALU64 : BPF_ALU;
                byte op = (byte)(rng.Next(16) << 4);
                byte src = rng.Next(2) == 0 ? BPF_K : BPF_X;
                short off = (short)(rng.Next(4) switch { 0 => 1, 1 => new short[] { 8, 16, 32 }[rng.Next(3)], 2 => rng.Next(-3, 40), _ => 0 });
                int imm = op == BPF_END ? new[] { 16, 32, 64, 8 }[rng.Next(4)] : Imm(rng);
                p.Add(new BpfInsn((byte)(cls | op | src), Reg(rng), Reg(rng), off, imm));
            }
            else if (kind < 45)
            {
                byte cls = rng.Next(2) == 0 ? BPF_JMP : BPF_JMP32;
                byte op = (byte)(rng.Next(15) << 4);
                if (op == BPF_CALL || op == BPF_EXIT) op = BPF_JEQ;
                byte src = rng.Next(2) == 0 ? BPF_K : BPF_X;
                short off = Fwd();
                p.Add(new BpfInsn((byte)(cls | op | src), Reg(rng), Reg(rng), off, op == BPF_JA && cls == BPF_JMP32 ? off : Imm(rng)));
            }
            else if (kind < 52) p.Add(new BpfInsn((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0));
            else if (kind < 57) p.Add(new BpfInsn((byte)(BPF_JMP | BPF_CALL), 0, BPF_PSEUDO_CALL, 0, Fwd()));
            else if (kind < 62)
            {
                // Helpers: unwind, shrink, poke, an unknown id, and callx.
                if (rng.Next(5) == 0) p.Add(new BpfInsn((byte)(BPF_JMP | BPF_CALL | BPF_X), Reg(rng), 0, 0, 0));
                else p.Add(new BpfInsn((byte)(BPF_JMP | BPF_CALL), 0, 0, 0, new[] { 5, 6, 7, 1, 9 }[rng.Next(5)]));
            }
            else if (kind < 88)
            {
                int baseReg = rng.Next(3) switch { 0 => FramePointer, 1 => 1, _ => Reg(rng) };
                short off = baseReg == FramePointer
                    ? (short)(rng.Next(10) == 0 ? rng.Next(-600, 16) : -8 * rng.Next(1, 65) + rng.Next(0, 8))
                    : (short)(rng.Next(10) == 0 ? rng.Next(-100, 200) : rng.Next(-4, 72));
                byte size = (byte)(rng.Next(4) << 3);
                int which = rng.Next(10);
                if (which < 4)
                {
                    byte mode = rng.Next(6) switch { 0 => BPF_MEMSX, 1 => (byte)(rng.Next(8) << 5), _ => BPF_MEM };
                    p.Add(new BpfInsn((byte)(BPF_LDX | mode | size), Reg(rng), baseReg, off, 0));
                }
                else if (which < 6) p.Add(new BpfInsn((byte)(BPF_ST | BPF_MEM | size), baseReg, 0, off, Imm(rng)));
                else if (which < 8) p.Add(new BpfInsn((byte)(BPF_STX | BPF_MEM | size), baseReg, Reg(rng), off, 0));
                else
                {
                    int[] ops = [BPF_ADD, BPF_AND, BPF_OR, BPF_XOR, BPF_ADD | BPF_FETCH, BPF_AND | BPF_FETCH, BPF_OR | BPF_FETCH,
                        BPF_XOR | BPF_FETCH, BPF_XCHG, BPF_CMPXCHG, 0xe0, 0x100, 0x110, 0x30, 0xf0];
                    if (rng.Next(2) == 0) size = rng.Next(2) == 0 ? BPF_W : BPF_DW;
                    p.Add(new BpfInsn((byte)(BPF_STX | BPF_ATOMIC | size), baseReg, Reg(rng), off, ops[rng.Next(ops.Length)]));
                }
            }
            else if (kind < 95)
            {
                p.Add(new BpfInsn((byte)(BPF_LD | BPF_IMM | BPF_DW), Reg(rng), 0, 0, Imm(rng)));
                p.Add(new BpfInsn(0, 0, 0, 0, Imm(rng)));
            }
            else
            {
                // Any byte at all, jumps kept forward.
                var insn = new BpfInsn((byte)rng.Next(256), (byte)rng.Next(256), (short)rng.Next(short.MinValue, short.MaxValue), Imm(rng));
                if (insn.Class is BPF_JMP or BPF_JMP32) insn = insn with { Off = Fwd(), Imm = Math.Abs(insn.Imm % 64) };
                p.Add(insn);
            }
        }
        return [.. p];
    }

    private static string Listing(BpfInsn[] p) => string.Join("\n", p.Select((x, i) => $"{i}: {x}"));

    [Fact]
    public void Random_programs_give_the_same_result_fault_and_memory_as_the_interpreter()
    {
        var options = new BpfVerifierOptions { Helpers = Helpers, MemSize = 64, Rfc9669 = true };
        Gen.Int.Sample(seed =>
        {
            var rng = new Random(seed);
            var insns = RandomProgram(rng);
            // Verified when the verifier accepts it (then with its rewrites and stack flag), else run as written.
            BpfProgram prog;
            try { prog = BpfVerifier.Verify(insns, options); }
            catch (BpfVerifierException) { prog = new BpfProgram(insns, options, 0); }
            var packet = new byte[80];
            rng.NextBytes(packet);
            int start = rng.Next(0, 8), end = rng.Next(start, 80);
            ulong r1 = BpfMemory.Address(BpfMemory.PacketRegion, start), r2 = (ulong)rng.NextInt64();

            var p1 = (byte[])packet.Clone();
            var vm = new BpfInterpreter();
            var m1 = new BpfMemory(default, p1, start, end);
            var want = vm.Run(prog, ref m1, r1, r2);

            var p2 = (byte[])packet.Clone();
            var jit = BpfJit.Compile(prog);
            var m2 = new BpfMemory(default, p2, start, end);
            var got = jit.Run(ref m2, r1, r2);

            string why = $"seed {seed}\n{Listing(insns)}";
            Assert.True(want == got, $"interpreter {want}, jit {got}\n{why}");
            Assert.True(p1.AsSpan().SequenceEqual(p2), $"packet differs\n{why}");
            Assert.True(vm.StackBytes.SequenceEqual(jit.StackBytes), $"stack differs\n{why}");
            Assert.Equal(m1.PacketStart, m2.PacketStart);
        }, iter: 3000, threads: 1);
    }

    // ---- every ALU and jump operation on edge operands ----

    private static readonly Gen<ulong> Operand = Gen.OneOf(
        Gen.ULong,
        Gen.Int[0, 10].Select(i => new[] { 0UL, 1UL, ulong.MaxValue, 0x8000_0000UL, 0xFFFF_FFFF_8000_0000UL, 0x8000_0000_0000_0000UL, 0xFFFF_FFFFUL, 31UL, 32UL, 63UL, 64UL }[i]),
        Gen.Long[-70, 70].Select(v => (ulong)v));

    private static BpfInsn[] Lddw(int reg, ulong v) =>
        [new((byte)(BPF_LD | BPF_IMM | BPF_DW), reg, 0, 0, (int)(uint)v), new(0, 0, 0, 0, (int)(uint)(v >> 32))];

    private static readonly BpfInsn Exit = new((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0);

    private static void Same(BpfInsn[] insns)
    {
        var prog = BpfVerifier.Verify(insns, BpfVerifierOptions.Conformance(0));
        var m1 = new BpfMemory(default, default, 0, 0);
        var m2 = new BpfMemory(default, default, 0, 0);
        var want = new BpfInterpreter().Run(prog, ref m1, 0);
        var got = BpfJit.Compile(prog).Run(ref m2, 0);
        Assert.True(want == got, $"interpreter {want}, jit {got}\n{Listing(insns)}");
    }

    [Fact]
    public void Alu_operations_match_the_interpreter_for_register_and_immediate_operands()
    {
        short[] offs = [0, 1, 8, 16, 32];
        Gen.Select(Gen.Int[0, 13], Gen.Bool, Gen.Bool, Operand, Operand, Gen.Int[0, offs.Length - 1], Gen.OneOf(Gen.Int, Gen.Int[-70, 70])).Sample((o, is64, x, d, s, oi, imm) =>
        {
            byte op = (byte)(o << 4);
            short off = op switch { BPF_DIV or BPF_MOD => (short)(offs[oi] == 1 ? 1 : 0), BPF_MOV when x => offs[oi] == 1 || (!is64 && offs[oi] == 32) ? (short)0 : offs[oi], _ => 0 };
            if (op is BPF_END) { imm = new[] { 16, 32, 64 }[(int)(d % 3)]; x = x && !is64; }
            byte code = (byte)((is64 ? BPF_ALU64 : BPF_ALU) | op | (x ? BPF_X : BPF_K));
            var insn = op == BPF_NEG ? new BpfInsn((byte)((is64 ? BPF_ALU64 : BPF_ALU) | op), 0, 0, 0, 0)
                : op == BPF_END ? new BpfInsn(code, 0, 0, 0, imm)
                : x ? new BpfInsn(code, 0, 1, off, 0) : new BpfInsn(code, 0, 0, off, imm);
            Same([.. Lddw(0, d), .. Lddw(1, s), insn, Exit]);
        }, iter: 4000);
    }

    [Fact]
    public void Jumps_match_the_interpreter()
    {
        Gen.Select(Gen.Int[1, 13], Gen.Bool, Gen.Bool, Operand, Operand, Gen.Int).Sample((o, is64, x, a, b, imm) =>
        {
            byte op = (byte)(o << 4);
            if (op is BPF_CALL or BPF_EXIT) op = BPF_JSET;
            byte code = (byte)((is64 ? BPF_JMP : BPF_JMP32) | op | (x ? BPF_X : BPF_K));
            Same([.. Lddw(1, a), .. Lddw(2, b), new((byte)(BPF_ALU64 | BPF_MOV), 0, 0, 0, 1),
                new(code, 1, x ? 2 : 0, 1, x ? 0 : imm), new((byte)(BPF_ALU64 | BPF_MOV), 0, 0, 0, 0), Exit]);
        }, iter: 2000);
    }

    // ---- XDP programs ----

    /// <summary>
    /// A 20-instruction parser: Ethernet, IPv4 without options, UDP; drops UDP to port 9 (discard), passes the rest.
    /// The benchmark's and the kernel comparison's program.
    /// </summary>
    public const string DropByPort = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 42
        jgt %r4, %r3, pass
        ldxh %r5, [%r2+12]
        jne %r5, 0x0008, pass
        ldxb %r5, [%r2+14]
        and %r5, 0xf
        jne %r5, 5, pass
        ldxb %r5, [%r2+23]
        jne %r5, 17, pass
        ldxh %r5, [%r2+36]
        be16 %r5
        jne %r5, 9, pass
        mov %r0, 1
        exit
        pass:
        mov %r0, 2
        exit
        """;

    /// <summary>Swaps the MAC addresses, counts in a stack word with an atomic add in a BPF-to-BPF call, and returns XDP_TX.</summary>
    private const string SwapAndTx = """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 14
        jgt %r4, %r3, short
        ldxw %r5, [%r2+0]
        ldxh %r6, [%r2+4]
        ldxw %r7, [%r2+6]
        ldxh %r8, [%r2+10]
        stxw [%r2+0], %r7
        stxh [%r2+4], %r8
        stxw [%r2+6], %r5
        stxh [%r2+10], %r6
        stdw [%r10-8], 5
        mov %r9, 3
        lock add [%r10-8], %r9
        ldxdw %r1, [%r10-8]
        mov %r6, %r2
        call local twice
        jne %r0, 16, short
        ldxb %r5, [%r6+13]
        xor %r5, 0xff
        stxb [%r6+13], %r5
        mov %r0, 3
        exit
        short:
        mov %r0, 1
        exit
        twice:
        stxdw [%r10-16], %r1
        ldxdw %r0, [%r10-16]
        lsh %r0, 1
        exit
        """;

    public static byte[] UdpFrame(int len, ushort dport, byte proto = 17, byte ihl = 5)
    {
        var f = new byte[len];
        for (int i = 0; i < len; i++) f[i] = (byte)(i * 7 + 3);
        if (len >= 14) { f[12] = 0x08; f[13] = 0x00; }
        if (len >= 15) f[14] = (byte)(0x40 | ihl);
        if (len >= 24) f[23] = proto;
        if (len >= 38) { f[36] = (byte)(dport >> 8); f[37] = (byte)dport; }
        return f;
    }

    private static void SameXdp(BpfProgram prog, byte[] frame, XdpAction? expected = null)
    {
        const int headroom = 32;
        var b1 = new byte[headroom + frame.Length + 16];
        frame.CopyTo(b1, headroom);
        var b2 = (byte[])b1.Clone();
        var x1 = new XdpBuff(b1, headroom, frame.Length, rxQueue: 2);
        var x2 = new XdpBuff(b2, headroom, frame.Length, rxQueue: 2);
        var want = new BpfInterpreter().RunXdp(prog, ref x1, 3, out var r1);
        var got = BpfJit.Compile(prog).RunXdp(ref x2, 3, out var r2);
        Assert.Equal(want, got);
        Assert.Equal(r1, r2);
        Assert.True(b1.AsSpan().SequenceEqual(b2), "output frames differ");
        if (expected is { } e) Assert.Equal(e, got);
    }

    [Fact]
    public void Drop_by_port_gives_the_interpreters_verdicts()
    {
        var prog = BpfVerifier.Verify(BpfAssembler.Assemble(DropByPort, "drop_by_port"), BpfVerifierOptions.Xdp());
        SameXdp(prog, UdpFrame(64, 9), XdpAction.Drop);
        SameXdp(prog, UdpFrame(64, 53), XdpAction.Pass);
        SameXdp(prog, UdpFrame(64, 9, proto: 6), XdpAction.Pass);
        SameXdp(prog, UdpFrame(64, 9, ihl: 6), XdpAction.Pass);
        SameXdp(prog, UdpFrame(41, 9), XdpAction.Pass);
        SameXdp(prog, UdpFrame(42, 9), XdpAction.Drop);
        Gen.Select(Gen.Int[0, 100], Gen.UShort[0, 20], Gen.Bool).Sample((len, port, udp) => SameXdp(prog, UdpFrame(len, port, udp ? (byte)17 : (byte)6)), iter: 300);
    }

    [Fact]
    public void Frames_written_by_the_program_come_out_the_same()
    {
        var prog = BpfVerifier.Verify(BpfAssembler.Assemble(SwapAndTx, "swap"), BpfVerifierOptions.Xdp());
        SameXdp(prog, UdpFrame(64, 9), XdpAction.Tx);
        SameXdp(prog, UdpFrame(13, 9), XdpAction.Drop);
        SameXdp(prog, UdpFrame(14, 9), XdpAction.Tx);
    }

    [Fact]
    public void Faults_and_bad_verdicts_are_aborted_as_in_the_interpreter()
    {
        // Return 7 (no XDP action) and a packet read past data_end in an unverified program.
        var seven = new BpfProgram(BpfAssembler.Assemble("mov %r0, 7\nexit", "seven"), BpfVerifierOptions.Xdp(), 0);
        SameXdp(seven, UdpFrame(64, 9), XdpAction.Aborted);
        var past = new BpfProgram(BpfAssembler.Assemble("ldxdw %r2, [%r1+0]\nldxb %r0, [%r2+64]\nexit", "past"), BpfVerifierOptions.Xdp(), 0);
        SameXdp(past, UdpFrame(64, 9), XdpAction.Aborted);
        var jit = BpfJit.Compile(past);
        var buf = new byte[128];
        var xdp = new XdpBuff(buf, 32, 64, rxQueue: 0);
        jit.RunXdp(ref xdp, 1, out var r);
        Assert.Equal(new BpfRunResult(0, BpfFault.MemoryAccess, 1), r);
    }

    [Fact]
    public void One_compiled_program_runs_on_many_threads_with_their_own_stacks()
    {
        var jit = BpfJit.Compile(BpfVerifier.Verify(BpfAssembler.Assemble(SwapAndTx, "swap"), BpfVerifierOptions.Xdp()));
        Parallel.For(0, 4, t =>
        {
            var stack = new BpfJitStack();
            var buf = new byte[128];
            for (int i = 0; i < 2000; i++)
            {
                UdpFrame(64, 9).CopyTo(buf, 32);
                var xdp = new XdpBuff(buf, 32, 64, rxQueue: 0);
                Assert.Equal(XdpAction.Tx, jit.RunXdp(stack, ref xdp, 1, out _));
            }
        });
    }

    [Fact]
    public void A_run_allocates_nothing()
    {
        var jit = BpfJit.Compile(BpfVerifier.Verify(BpfAssembler.Assemble(SwapAndTx, "swap"), BpfVerifierOptions.Xdp()));
        var buf = new byte[128];
        UdpFrame(64, 9).CopyTo(buf, 32);
        var xdp = new XdpBuff(buf, 32, 64, rxQueue: 0);
        jit.RunXdp(ref xdp, 1, out _);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            xdp = new XdpBuff(buf, 32, 64, rxQueue: 0);
            jit.RunXdp(ref xdp, 1, out _);
        }
        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
