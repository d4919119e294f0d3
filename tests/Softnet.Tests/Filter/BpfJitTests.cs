using CsCheck;
using Softnet.Filter;
using Xunit;

namespace Softnet.Tests.Filter;

/// <summary>The compiled classic BPF (<see cref="BpfJit"/>) returns what the interpreter returns, for random programs
/// of every opcode (bad loads, division by zero, jumps off the end, unknown opcodes included) and for the programs the
/// filter compiler makes, on random frames.</summary>
public sealed class BpfJitTests
{
    private static readonly ushort[] Codes =
    [
        BpfOp.Ret | BpfOp.K, BpfOp.Ret | BpfOp.A,
        BpfOp.Ld | BpfOp.W | BpfOp.Abs, BpfOp.Ld | BpfOp.H | BpfOp.Abs, BpfOp.Ld | BpfOp.B | BpfOp.Abs,
        BpfOp.Ld | BpfOp.W | BpfOp.Len, BpfOp.Ldx | BpfOp.W | BpfOp.Len,
        BpfOp.Ld | BpfOp.W | BpfOp.Ind, BpfOp.Ld | BpfOp.H | BpfOp.Ind, BpfOp.Ld | BpfOp.B | BpfOp.Ind,
        BpfOp.Ldx | BpfOp.Msh | BpfOp.B, BpfOp.Ld | BpfOp.Imm, BpfOp.Ldx | BpfOp.Imm,
        BpfOp.Ld | BpfOp.Mem, BpfOp.Ldx | BpfOp.Mem, BpfOp.St, BpfOp.Stx,
        BpfOp.Jmp | BpfOp.Ja,
        BpfOp.Jmp | BpfOp.Jgt | BpfOp.K, BpfOp.Jmp | BpfOp.Jge | BpfOp.K, BpfOp.Jmp | BpfOp.Jeq | BpfOp.K, BpfOp.Jmp | BpfOp.Jset | BpfOp.K,
        BpfOp.Jmp | BpfOp.Jgt | BpfOp.X, BpfOp.Jmp | BpfOp.Jge | BpfOp.X, BpfOp.Jmp | BpfOp.Jeq | BpfOp.X, BpfOp.Jmp | BpfOp.Jset | BpfOp.X,
        BpfOp.Alu | BpfOp.Add | BpfOp.X, BpfOp.Alu | BpfOp.Sub | BpfOp.X, BpfOp.Alu | BpfOp.Mul | BpfOp.X, BpfOp.Alu | BpfOp.Div | BpfOp.X,
        BpfOp.Alu | BpfOp.Mod | BpfOp.X, BpfOp.Alu | BpfOp.And | BpfOp.X, BpfOp.Alu | BpfOp.Or | BpfOp.X, BpfOp.Alu | BpfOp.Xor | BpfOp.X,
        BpfOp.Alu | BpfOp.Lsh | BpfOp.X, BpfOp.Alu | BpfOp.Rsh | BpfOp.X,
        BpfOp.Alu | BpfOp.Add | BpfOp.K, BpfOp.Alu | BpfOp.Sub | BpfOp.K, BpfOp.Alu | BpfOp.Mul | BpfOp.K, BpfOp.Alu | BpfOp.Div | BpfOp.K,
        BpfOp.Alu | BpfOp.Mod | BpfOp.K, BpfOp.Alu | BpfOp.And | BpfOp.K, BpfOp.Alu | BpfOp.Or | BpfOp.K, BpfOp.Alu | BpfOp.Xor | BpfOp.K,
        BpfOp.Alu | BpfOp.Lsh | BpfOp.K, BpfOp.Alu | BpfOp.Rsh | BpfOp.K, BpfOp.Alu | BpfOp.Neg,
        BpfOp.Misc | BpfOp.Tax, BpfOp.Misc | BpfOp.Txa,
        0x0e, 0xff, // codes neither knows: 0
    ];

    private static uint RandomK(Random r) => r.Next(6) switch
    {
        0 => 0,
        1 => (uint)r.Next(16),
        2 => (uint)r.Next(80),
        3 => uint.MaxValue - (uint)r.Next(8),
        4 => (uint)r.Next(40) + 0x7ffffff0u,
        _ => (uint)r.NextInt64(0, 1L << 32),
    };

    [Fact]
    public void Random_programs_return_what_the_interpreter_returns()
    {
        Gen.Int.Sample(seed =>
        {
            var r = new Random(seed);
            int n = r.Next(1, 24);
            var prog = new BpfInsn[n];
            for (int i = 0; i < n; i++)
            {
                ushort code = Codes[r.Next(Codes.Length)];
                // BPF_JA's offset forward only, as the kernel's checker allows (the interpreter would loop on a
                // backward one).
                uint k = code == (BpfOp.Jmp | BpfOp.Ja) ? (uint)r.Next(n + 2) : RandomK(r);
                prog[i] = new BpfInsn(code, (byte)r.Next(r.Next(2) == 0 ? 4 : 256), (byte)r.Next(r.Next(2) == 0 ? 4 : 256), k);
            }
            var jit = BpfJit.TryCompile(prog);
            Assert.NotNull(jit);
            for (int i = 0; i < 8; i++)
            {
                var frame = new byte[r.Next(0, 90)];
                r.NextBytes(frame);
                int wire = frame.Length + r.Next(3);
                uint want = ClassicBpf.Run(prog, frame, wire);
                uint got = BpfJit.Run(jit!, frame, wire);
                if (want != got)
                    throw new Xunit.Sdk.XunitException($"{string.Join(" ", prog)} on {Convert.ToHexString(frame)} (wire {wire}): interpreter {want}, compiled {got}");
            }
        }, iter: 1000);
    }

    [Fact]
    public void Compiled_filters_agree_with_the_interpreter_on_random_frames()
    {
        string[] exprs =
        [
            "tcp port 80 or udp portrange 1-1024", "vlan and vlan 10 and ip6 host ::1", "ip[ip[0] & 0xf] = 1",
            "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420", "len % 3 = len / 7", "udp and ip[5] < 3", "tcp[tcpflags] & tcp-syn != 0",
            "ip[6:2] & 0x1fff = 0", "net 10.0.0.0/8 and not host 10.1.2.3", "greater 100", "icmp6 or arp",
        ];
        foreach (string e in exprs)
        {
            var f = PcapFilter.Compile(e, Dlt.En10Mb);
            var jit = BpfJit.TryCompile(f.Program)!;
            var r = new Random(e.Length);
            for (int i = 0; i < 2000; i++)
            {
                var frame = new byte[r.Next(0, 120)];
                r.NextBytes(frame);
                if (frame.Length >= 14 && r.Next(2) == 0) { frame[12] = 0x08; frame[13] = 0x00; }
                if (frame.Length >= 24 && r.Next(2) == 0) frame[23] = (byte)(r.Next(2) == 0 ? 6 : 17);
                if (frame.Length >= 15 && r.Next(2) == 0) frame[14] = 0x45;
                Assert.Equal(f.Run(frame, frame.Length), BpfJit.Run(jit, frame, frame.Length));
            }
        }
    }
}
