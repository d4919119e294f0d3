using System.Globalization;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>An assembly error: the source name and 1-based line, and the assembler's message.</summary>
public sealed class BpfAsmException(string source, int line, string message)
    : Exception($"{source}:{line}: {message}")
{
    public string SourceName { get; } = source;
    public int Line { get; } = line;
    /// <summary>The message alone, in the words of the conformance suite's assembler (e.g. "Invalid register: %r50").</summary>
    public string Reason { get; } = message;
}

/// <summary>
/// The assembler of the bpf_conformance suite's `-- asm` sections (the uBPF dialect): one instruction per line,
/// registers as %rN, memory operands as [%rN+off], jump targets as +N/-N or a label ("name:" on its own line;
/// "exit" names the first exit), `call N` / `call helper N` for helpers, `call %rN` (uBPF callx),
/// `call local LABEL` for BPF-to-BPF calls, `lock [fetch] op [%rN+off], %rM` for atomics. Immediates and offsets
/// are range-checked rather than truncated, with the suite's own error words.
/// </summary>
public static class BpfAssembler
{
    private enum Kind { Alu, Jmp, Ld, Ldx, St, Stx }

    private static Dictionary<string, (Kind, int)> Build()
    {
        var m = new Dictionary<string, (Kind, int)>(StringComparer.Ordinal);
        foreach (var op in new[] { "add", "sub", "mul", "div", "sdiv", "or", "and", "lsh", "rsh", "mod", "smod", "xor", "mov", "arsh" })
        {
            m[op] = (Kind.Alu, 2);
            m[op + "32"] = (Kind.Alu, 2);
        }
        m["neg"] = (Kind.Alu, 1);
        m["neg32"] = (Kind.Alu, 1);
        foreach (var w in new[] { "16", "32", "64" })
        {
            m["be" + w] = (Kind.Alu, 1);
            m["le" + w] = (Kind.Alu, 1);
            m["swap" + w] = (Kind.Alu, 1);
            m["bswap" + w] = (Kind.Alu, 1);
        }
        foreach (var mx in new[] { "movsx864", "movsx832", "movsx1664", "movsx1632", "movsx3264" }) m[mx] = (Kind.Alu, 2);
        foreach (var j in JmpOps.Keys)
        {
            m[j] = (Kind.Jmp, 3);
            m[j + "32"] = (Kind.Jmp, 3);
        }
        m["ja"] = (Kind.Jmp, 1);
        m["ja32"] = (Kind.Jmp, 1);
        m["exit"] = (Kind.Jmp, 0);
        m["call"] = (Kind.Jmp, 2);
        m["lddw"] = (Kind.Ld, 2);
        foreach (var s in new[] { "b", "h", "w", "dw", "sb", "sh", "sw" }) m["ldx" + s] = (Kind.Ldx, 2);
        foreach (var s in new[] { "b", "h", "w", "dw" })
        {
            m["st" + s] = (Kind.St, 2);
            m["stx" + s] = (Kind.Stx, 2);
        }
        return m;
    }

    private static readonly Dictionary<string, byte> AluOps = new(StringComparer.Ordinal)
    {
        ["add"] = BPF_ADD, ["sub"] = BPF_SUB, ["mul"] = BPF_MUL, ["div"] = BPF_DIV, ["sdiv"] = BPF_DIV,
        ["or"] = BPF_OR, ["and"] = BPF_AND, ["lsh"] = BPF_LSH, ["rsh"] = BPF_RSH, ["neg"] = BPF_NEG,
        ["mod"] = BPF_MOD, ["smod"] = BPF_MOD, ["xor"] = BPF_XOR, ["mov"] = BPF_MOV, ["movsx"] = BPF_MOV,
        ["arsh"] = BPF_ARSH,
    };

    private static readonly Dictionary<string, byte> JmpOps = new(StringComparer.Ordinal)
    {
        ["jeq"] = BPF_JEQ, ["jgt"] = BPF_JGT, ["jge"] = BPF_JGE, ["jset"] = BPF_JSET, ["jne"] = BPF_JNE,
        ["jsgt"] = BPF_JSGT, ["jsge"] = BPF_JSGE, ["jlt"] = BPF_JLT, ["jle"] = BPF_JLE, ["jslt"] = BPF_JSLT,
        ["jsle"] = BPF_JSLE,
    };

    private static readonly Dictionary<string, int> AtomicOps = new(StringComparer.Ordinal)
    {
        ["add"] = BPF_ADD, ["and"] = BPF_AND, ["or"] = BPF_OR, ["xor"] = BPF_XOR, ["xchg"] = BPF_XCHG, ["cmpxchg"] = BPF_CMPXCHG,
    };

    // After the tables Build reads: static fields initialise in declaration order.
    private static readonly Dictionary<string, (Kind Kind, int Operands)> Mnemonics = Build();

    private sealed class Failure(int line, string message) : Exception(message)
    {
        public int Line { get; } = line;
    }

    /// <summary>Assembles <paramref name="text"/>; lines are numbered from <paramref name="firstLine"/>.</summary>
    public static BpfInsn[] Assemble(string text, string source = "<asm>", int firstLine = 1)
    {
        var lines = text.Split('\n');
        var output = new List<BpfInsn>();
        var fixups = new List<(int Index, string Label, int Line)>();
        var labels = new Dictionary<string, int>(StringComparer.Ordinal);
        bool sawExit = false;
        int lineNo = firstLine - 1;
        try
        {
            foreach (var raw in lines)
            {
                lineNo++;
                var line = raw;
                int hash = line.IndexOf('#');
                if (hash >= 0) line = line[..hash];
                var words = line.Split([' ', '\t', '\r'], StringSplitOptions.RemoveEmptyEntries);
                if (words.Length == 0) continue;
                string mnemonic = words[0];
                var operands = new List<string>(words.Length);
                for (int i = 1; i < words.Length; i++)
                    operands.Add(words[i].EndsWith(',') ? words[i][..^1] : words[i]);

                if (mnemonic.EndsWith(':'))
                {
                    var label = mnemonic[..^1];
                    if (labels.TryGetValue(label, out int prev))
                        throw new Failure(lineNo, $"Duplicate label ({label}) detected at line {output.Count} (previous declaration at line {prev})");
                    labels[label] = output.Count;
                    continue;
                }
                // The first exit doubles as a label, so "jeq %r1, 0, exit" jumps to it.
                if (mnemonic == "exit" && !sawExit)
                {
                    labels["exit"] = output.Count;
                    sawExit = true;
                }
                if (mnemonic == "lock")
                {
                    output.Add(Atomic(operands, lineNo));
                    continue;
                }
                if (mnemonic == "call" && operands.Count == 1) operands.Insert(0, "helper");
                if (!Mnemonics.TryGetValue(mnemonic, out var spec)) throw new Failure(lineNo, $"Invalid mnemonic: {mnemonic}");
                if (operands.Count != spec.Operands) throw new Failure(lineNo, $"Invalid number of operands for mnemonic: {mnemonic}");
                switch (spec.Kind)
                {
                    case Kind.Alu: output.Add(Alu(mnemonic, operands, lineNo)); break;
                    case Kind.Jmp: output.Add(Jmp(mnemonic, operands, lineNo, output.Count, fixups)); break;
                    case Kind.Ld:
                    {
                        int dst = Register(operands[0], lineNo);
                        ulong imm = Imm64(operands[1], lineNo);
                        output.Add(new BpfInsn((byte)(BPF_LD | BPF_IMM | BPF_DW), dst, 0, 0, (int)(uint)imm));
                        output.Add(new BpfInsn(0, 0, 0, 0, (int)(uint)(imm >> 32)));
                        break;
                    }
                    case Kind.Ldx:
                    {
                        int dst = Register(operands[0], lineNo);
                        var (src, off) = RegisterAndOffset(operands[1], lineNo);
                        string sz = mnemonic[3..];
                        byte mode = sz.StartsWith('s') ? BPF_MEMSX : BPF_MEM;
                        output.Add(new BpfInsn((byte)(BPF_LDX | mode | SizeCode(sz.TrimStart('s'))), dst, src, off, 0));
                        break;
                    }
                    case Kind.St:
                    {
                        var (dst, off) = RegisterAndOffset(operands[0], lineNo);
                        int imm = Imm32(operands[1], lineNo);
                        output.Add(new BpfInsn((byte)(BPF_ST | BPF_MEM | SizeCode(mnemonic[2..])), dst, 0, off, imm));
                        break;
                    }
                    case Kind.Stx:
                    {
                        var (dst, off) = RegisterAndOffset(operands[0], lineNo);
                        int src = Register(operands[1], lineNo);
                        output.Add(new BpfInsn((byte)(BPF_STX | BPF_MEM | SizeCode(mnemonic[3..])), dst, src, off, 0));
                        break;
                    }
                }
            }
            var prog = output.ToArray();
            foreach (var (index, label, line) in fixups)
            {
                if (!labels.TryGetValue(label, out int target)) throw new Failure(line, $"Invalid label: {label}");
                var insn = prog[index];
                int rel = target - index - 1;
                bool inImm = insn.Code == (BPF_JMP | BPF_CALL) || insn.Code == (BPF_JMP32 | BPF_JA);
                prog[index] = inImm ? insn with { Imm = rel } : insn with { Off = checked((short)rel) };
            }
            return prog;
        }
        catch (Failure f)
        {
            throw new BpfAsmException(source, f.Line, f.Message);
        }
        catch (OverflowException)
        {
            throw new BpfAsmException(source, lineNo, "Jump offset out of 16-bit range");
        }
    }

    private static byte SizeCode(string s) => s switch
    {
        "b" => BPF_B,
        "h" => BPF_H,
        "w" => BPF_W,
        _ => BPF_DW,
    };

    private static BpfInsn Alu(string mnemonic, List<string> operands, int line)
    {
        int dst = Register(operands[0], line);
        foreach (var (prefix, endCode) in new[] { ("bswap", (byte)(BPF_ALU64 | BPF_END)), ("swap", (byte)(BPF_ALU64 | BPF_END)),
                     ("be", (byte)(BPF_ALU | BPF_END | BPF_TO_BE)), ("le", (byte)(BPF_ALU | BPF_END | BPF_TO_LE)) })
        {
            if (mnemonic.StartsWith(prefix, StringComparison.Ordinal))
                return new BpfInsn(endCode, dst, 0, 0, Imm32(mnemonic[prefix.Length..], line));
        }
        short off = 0;
        byte cls = BPF_ALU64;
        string op = mnemonic;
        if (mnemonic.StartsWith("sdiv", StringComparison.Ordinal) || mnemonic.StartsWith("smod", StringComparison.Ordinal)) off = 1;
        if (mnemonic.EndsWith("32", StringComparison.Ordinal)) { cls = BPF_ALU; op = mnemonic[..^2]; }
        else if (mnemonic.EndsWith("64", StringComparison.Ordinal)) op = mnemonic[..^2];
        if (op.StartsWith("movsx", StringComparison.Ordinal))
        {
            off = Offset(op[5..], line);
            op = "movsx";
        }
        byte code = (byte)(cls | AluOps[op]);
        if (operands.Count == 1) return new BpfInsn(code, dst, 0, off, 0);
        if (operands[1].StartsWith('%')) return new BpfInsn((byte)(code | BPF_X), dst, Register(operands[1], line), off, 0);
        return new BpfInsn(code, dst, 0, off, Imm32(operands[1], line));
    }

    private static BpfInsn Jmp(string mnemonic, List<string> operands, int line, int index, List<(int, string, int)> fixups)
    {
        switch (mnemonic)
        {
            case "exit": return new BpfInsn((byte)(BPF_JMP | BPF_EXIT), 0, 0, 0, 0);
            case "ja": return new BpfInsn((byte)(BPF_JMP | BPF_JA), 0, 0, Target(operands[0], line, index, fixups), 0);
            case "ja32": return new BpfInsn((byte)(BPF_JMP32 | BPF_JA), 0, 0, 0, Target(operands[0], line, index, fixups));
            case "call":
            {
                string target = operands[1];
                switch (operands[0])
                {
                    case "helper":
                        return target.StartsWith('%')
                            ? new BpfInsn((byte)(BPF_JMP | BPF_CALL | BPF_X), Register(target, line), 0, 0, 0)
                            : new BpfInsn((byte)(BPF_JMP | BPF_CALL), 0, 0, 0, Imm32(target, line));
                    case "local":
                        return new BpfInsn((byte)(BPF_JMP | BPF_CALL), 0, BPF_PSEUDO_CALL, 0, Target(target, line, index, fixups));
                    case "runtime":
                        return new BpfInsn((byte)(BPF_JMP | BPF_CALL), 0, BPF_PSEUDO_KFUNC_CALL, 0, Imm32(target, line));
                    default: throw new Failure(line, "Invalid call mode");
                }
            }
        }
        bool is32 = mnemonic.EndsWith("32", StringComparison.Ordinal);
        byte code = (byte)((is32 ? BPF_JMP32 : BPF_JMP) | JmpOps[is32 ? mnemonic[..^2] : mnemonic]);
        int dst = Register(operands[0], line);
        int src = 0, imm = 0;
        if (operands[1].StartsWith('%')) { code |= BPF_X; src = Register(operands[1], line); }
        else imm = Imm32(operands[1], line);
        short off = Target(operands[2], line, index, fixups);
        return new BpfInsn(code, dst, src, off, imm);
    }

    private static BpfInsn Atomic(List<string> operands, int line)
    {
        // lock [fetch] op [%rN+off], %rM
        if (operands.Count == 0) throw new Failure(line, "Invalid number of operands for lock");
        bool fetch = operands[0] == "fetch";
        int at = fetch ? 1 : 0;
        if (operands.Count != at + 3) throw new Failure(line, "Invalid number of operands for lock");
        string op = operands[at];
        bool is32 = op.EndsWith("32", StringComparison.Ordinal);
        if (!AtomicOps.TryGetValue(is32 ? op[..^2] : op, out int imm)) throw new Failure(line, $"Invalid mnemonic: {op}");
        if (fetch) imm |= BPF_FETCH;
        var (dst, off) = RegisterAndOffset(operands[at + 1], line);
        int src = Register(operands[at + 2], line);
        return new BpfInsn((byte)(BPF_STX | BPF_ATOMIC | (is32 ? BPF_W : BPF_DW)), dst, src, off, imm);
    }

    private static short Target(string s, int line, int index, List<(int, string, int)> fixups)
    {
        if (s.StartsWith('+') || s.StartsWith('-')) return Offset(s, line);
        fixups.Add((index, s, line));
        return 0;
    }

    private static int Register(string s, int line)
    {
        // %r11..%r15 assemble (the suite's negative tests need them); the verifier rejects them.
        if (s.StartsWith("%r", StringComparison.Ordinal) && int.TryParse(s.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out int r)
            && r <= 15 && s.Length <= 4 && (s.Length == 3 || s[2] != '0'))
            return r;
        throw new Failure(line, $"Invalid register: {s}");
    }

    private static (int Reg, short Off) RegisterAndOffset(string s, int line)
    {
        int open = s.IndexOf('[');
        int end = s.IndexOf('+');
        if (end < 0) end = s.IndexOf('-');
        if (end < 0) end = s.IndexOf(']');
        if (open < 0 || end < 0 || end < open) throw new Failure(line, $"Failed to decode register and offset: {s}");
        int reg = Register(s[(open + 1)..end], line);
        if (s[end] == ']') return (reg, 0);
        string off = s[end..];
        int close = off.IndexOf(']');
        if (close < 0) throw new Failure(line, $"Failed to decode register and offset: {s}");
        return (reg, Offset(off[..close], line));
    }

    private static short Offset(string s, int line)
    {
        if (TryHex(s, line, out bool neg, out ulong hex))
        {
            if (neg || hex > ushort.MaxValue) throw new Failure(line, $"Offset out of 16-bit range: {s}");
            return (short)(ushort)hex;
        }
        if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            throw new Failure(line, $"Invalid offset: {s}");
        if (v < short.MinValue || v > short.MaxValue) throw new Failure(line, $"Offset out of 16-bit range: {s}");
        return (short)v;
    }

    private static int Imm32(string s, int line)
    {
        if (TryHex(s, line, out bool neg, out ulong hex))
        {
            if (neg || hex > uint.MaxValue) throw new Failure(line, $"Immediate out of 32-bit range: {s}");
            return (int)(uint)hex;
        }
        if (!long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long v))
            throw new Failure(line, $"Invalid immediate: {s}");
        if (v < int.MinValue || v > int.MaxValue) throw new Failure(line, $"Immediate out of 32-bit range: {s}");
        return (int)v;
    }

    private static ulong Imm64(string s, int line)
    {
        if (TryHex(s, line, out bool neg, out ulong hex)) return neg ? (ulong)-(long)hex : hex;
        if (s.StartsWith('-') && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long sv)) return (ulong)sv;
        if (ulong.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ulong uv)) return uv;
        throw new Failure(line, $"Immediate out of 64-bit range: {s}");
    }

    private static bool TryHex(string s, int line, out bool negative, out ulong value)
    {
        negative = false;
        value = 0;
        var t = s.AsSpan();
        if (t.StartsWith("+")) t = t[1..];
        else if (t.StartsWith("-")) { negative = true; t = t[1..]; }
        if (!t.StartsWith("0x") && !t.StartsWith("0X")) return false;
        if (!ulong.TryParse(t[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value))
            throw new Failure(line, $"Invalid number: {s}");
        return true;
    }
}
