using System.Globalization;
using System.Text;

namespace Softnet.Filter;

/// <summary>
/// Text forms of a classic BPF program exactly as libpcap prints them for tcpdump: <c>-d</c> is bpf_image() per
/// instruction, <c>-dd</c> a C array initializer, <c>-ddd</c> the decimal form that bpf_asm and iptables' bpf match
/// read (bpf_dump() options 1, 2 and 3).
/// </summary>
public static class BpfImage
{
    private const uint SkfAdOff = 0xfffff000; // SKF_AD_OFF, -0x1000

    // The kernel's ancillary load offsets (SKF_AD_*) that bpf_image names, index = offset - SKF_AD_OFF.
    private static readonly Dictionary<uint, string> Ancillary = new()
    {
        [0] = "proto", [4] = "type", [8] = "ifidx", [12] = "nla", [16] = "nlan", [20] = "mark", [24] = "queue",
        [28] = "hatype", [32] = "rxhash", [36] = "cpu", [40] = "xor_x", [44] = "vlan_tci", [48] = "vlanp",
        [52] = "poff", [56] = "random", [60] = "vlan_tpid",
    };

    /// <summary>tcpdump -d: one bpf_image line per instruction.</summary>
    public static string Image(ReadOnlySpan<BpfInsn> program)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < program.Length; i++) sb.Append(Line(program[i], i)).Append('\n');
        return sb.ToString();
    }

    /// <summary>tcpdump -dd: C initializers.</summary>
    public static string DumpC(ReadOnlySpan<BpfInsn> program)
    {
        var sb = new StringBuilder();
        foreach (var ins in program)
            sb.Append(CultureInfo.InvariantCulture, $"{{ 0x{ins.Code:x}, {ins.Jt}, {ins.Jf}, 0x{ins.K:x8} }},\n");
        return sb.ToString();
    }

    /// <summary>tcpdump -ddd: the count, then "code jt jf k" in decimal per line.</summary>
    public static string DumpDecimal(ReadOnlySpan<BpfInsn> program)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"{program.Length}\n");
        foreach (var ins in program)
            sb.Append(CultureInfo.InvariantCulture, $"{ins.Code} {ins.Jt} {ins.Jf} {ins.K}\n");
        return sb.ToString();
    }

    /// <summary>bpf_image(): "(NNN) op       operand" and for conditional jumps the absolute jt/jf targets.</summary>
    public static string Line(BpfInsn p, int n)
    {
        (string op, string operand) = Decode(p, n);
        if (BpfOp.Class(p.Code) == BpfOp.Jmp && BpfOp.Operation(p.Code) != BpfOp.Ja)
            return string.Create(CultureInfo.InvariantCulture, $"({n:D3}) {op,-8} {operand,-16} jt {n + 1 + p.Jt}\tjf {n + 1 + p.Jf}");
        return string.Create(CultureInfo.InvariantCulture, $"({n:D3}) {op,-8} {operand}");
    }

    private static string Hex(uint k) => "#0x" + k.ToString("x", CultureInfo.InvariantCulture);
    private static string Dec(uint k) => "#" + ((int)k).ToString(CultureInfo.InvariantCulture);
    private static string Ind(uint k) => "[x + " + ((int)k).ToString(CultureInfo.InvariantCulture) + "]";

    private static string AbsOperand(uint k)
    {
        if (k >= SkfAdOff && k < SkfAdOff + 64 && Ancillary.TryGetValue(k - SkfAdOff, out var sym)) return "[" + sym + "]";
        return "[" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]";
    }

    private static (string Op, string Operand) Decode(BpfInsn p, int n)
    {
        uint k = p.K;
        return p.Code switch
        {
            BpfOp.Ret | BpfOp.K => ("ret", Dec(k)),
            BpfOp.Ret | BpfOp.A => ("ret", ""),
            BpfOp.Ld | BpfOp.W | BpfOp.Abs => ("ld", AbsOperand(k)),
            BpfOp.Ld | BpfOp.H | BpfOp.Abs => ("ldh", AbsOperand(k)),
            BpfOp.Ld | BpfOp.B | BpfOp.Abs => ("ldb", AbsOperand(k)),
            BpfOp.Ld | BpfOp.W | BpfOp.Len => ("ld", "#pktlen"),
            BpfOp.Ldx | BpfOp.W | BpfOp.Len => ("ldx", "#pktlen"),
            BpfOp.Ld | BpfOp.W | BpfOp.Ind => ("ld", Ind(k)),
            BpfOp.Ld | BpfOp.H | BpfOp.Ind => ("ldh", Ind(k)),
            BpfOp.Ld | BpfOp.B | BpfOp.Ind => ("ldb", Ind(k)),
            BpfOp.Ld | BpfOp.Imm => ("ld", Hex(k)),
            BpfOp.Ldx | BpfOp.Imm => ("ldx", Hex(k)),
            BpfOp.Ldx | BpfOp.Msh | BpfOp.B => ("ldxb", "4*([" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]&0xf)"),
            BpfOp.Ld | BpfOp.Mem => ("ld", "M[" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]"),
            BpfOp.Ldx | BpfOp.Mem => ("ldx", "M[" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]"),
            BpfOp.St => ("st", "M[" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]"),
            BpfOp.Stx => ("stx", "M[" + ((int)k).ToString(CultureInfo.InvariantCulture) + "]"),
            BpfOp.Jmp | BpfOp.Ja => ("ja", (n + 1 + (int)k).ToString(CultureInfo.InvariantCulture)),
            BpfOp.Jmp | BpfOp.Jgt | BpfOp.K => ("jgt", Hex(k)),
            BpfOp.Jmp | BpfOp.Jge | BpfOp.K => ("jge", Hex(k)),
            BpfOp.Jmp | BpfOp.Jeq | BpfOp.K => ("jeq", Hex(k)),
            BpfOp.Jmp | BpfOp.Jset | BpfOp.K => ("jset", Hex(k)),
            BpfOp.Jmp | BpfOp.Jgt | BpfOp.X => ("jgt", "x"),
            BpfOp.Jmp | BpfOp.Jge | BpfOp.X => ("jge", "x"),
            BpfOp.Jmp | BpfOp.Jeq | BpfOp.X => ("jeq", "x"),
            BpfOp.Jmp | BpfOp.Jset | BpfOp.X => ("jset", "x"),
            BpfOp.Alu | BpfOp.Add | BpfOp.X => ("add", "x"),
            BpfOp.Alu | BpfOp.Sub | BpfOp.X => ("sub", "x"),
            BpfOp.Alu | BpfOp.Mul | BpfOp.X => ("mul", "x"),
            BpfOp.Alu | BpfOp.Div | BpfOp.X => ("div", "x"),
            BpfOp.Alu | BpfOp.Mod | BpfOp.X => ("mod", "x"),
            BpfOp.Alu | BpfOp.And | BpfOp.X => ("and", "x"),
            BpfOp.Alu | BpfOp.Or | BpfOp.X => ("or", "x"),
            BpfOp.Alu | BpfOp.Xor | BpfOp.X => ("xor", "x"),
            BpfOp.Alu | BpfOp.Lsh | BpfOp.X => ("lsh", "x"),
            BpfOp.Alu | BpfOp.Rsh | BpfOp.X => ("rsh", "x"),
            BpfOp.Alu | BpfOp.Add | BpfOp.K => ("add", Dec(k)),
            BpfOp.Alu | BpfOp.Sub | BpfOp.K => ("sub", Dec(k)),
            BpfOp.Alu | BpfOp.Mul | BpfOp.K => ("mul", Dec(k)),
            BpfOp.Alu | BpfOp.Div | BpfOp.K => ("div", Dec(k)),
            BpfOp.Alu | BpfOp.Mod | BpfOp.K => ("mod", Dec(k)),
            BpfOp.Alu | BpfOp.And | BpfOp.K => ("and", Hex(k)),
            BpfOp.Alu | BpfOp.Or | BpfOp.K => ("or", Hex(k)),
            BpfOp.Alu | BpfOp.Xor | BpfOp.K => ("xor", Hex(k)),
            BpfOp.Alu | BpfOp.Lsh | BpfOp.K => ("lsh", Dec(k)),
            BpfOp.Alu | BpfOp.Rsh | BpfOp.K => ("rsh", Dec(k)),
            BpfOp.Alu | BpfOp.Neg => ("neg", ""),
            BpfOp.Misc | BpfOp.Tax => ("tax", ""),
            BpfOp.Misc | BpfOp.Txa => ("txa", ""),
            _ => ("unimp", "0x" + p.Code.ToString("x", CultureInfo.InvariantCulture)),
        };
    }
}
