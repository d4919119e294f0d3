using System.Buffers.Binary;
using System.Reflection;
using System.Reflection.Emit;

namespace Softnet.Filter;

/// <summary>
/// Classic BPF compiled to a delegate, as the kernel's bpf_jit_enable turns a socket filter into machine code (and as
/// libpcap's BPF JIT on FreeBSD does): the tracer runs its filter on every frame at the port, and a compiled program
/// pays no dispatch per instruction. Same semantics as <see cref="ClassicBpf"/>, instruction by instruction: a load
/// past the captured bytes, a division by zero, a jump off the end or an opcode the interpreter does not know returns 0;
/// M[] starts at zero; shifts take their count modulo 32. Each instruction becomes a label and its jumps branches to later
/// labels: the CLR's JIT then makes native code of it. A program that jumps back (libpcap's protochain) is left to the
/// interpreter.
/// </summary>
public static class BpfJit
{
    /// <summary>A compiled program over (captured bytes, their count, the length on the wire).</summary>
    public unsafe delegate uint Matcher(byte* data, int length, int wireLength);

    private static readonly MethodInfo Swap32 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(uint)])!;
    private static readonly MethodInfo Swap16 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ushort)])!;

    /// <summary>The compiled program, or null where dynamic code is not available or the host is big-endian (the
    /// caller interprets then).</summary>
    public static Matcher? TryCompile(ReadOnlySpan<BpfInsn> program)
    {
        if (!BitConverter.IsLittleEndian || !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeCompiled) return null;
        // libpcap's protochain jumps back (BPF_JA with a negative k): the interpreter runs those, with its bound.
        foreach (var ins in program)
            if (ins.Code == (BpfOp.Jmp | BpfOp.Ja) && (int)ins.K < 0) return null;
        try { return Compile(program); }
        catch (Exception e) when (e is InvalidProgramException or NotSupportedException or PlatformNotSupportedException) { return null; }
    }

    public static unsafe uint Run(Matcher matcher, ReadOnlySpan<byte> frame, int wireLength)
    {
        fixed (byte* p = frame) return matcher(p, frame.Length, wireLength);
    }

    private static Matcher Compile(ReadOnlySpan<BpfInsn> program)
    {
        var dm = new DynamicMethod("cbpf_filter", typeof(uint), [typeof(byte*), typeof(int), typeof(int)], typeof(BpfJit).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        var a = il.DeclareLocal(typeof(uint));
        var x = il.DeclareLocal(typeof(uint));
        var mem = new LocalBuilder[BpfOp.MemWords];
        for (int i = 0; i < mem.Length; i++) mem[i] = il.DeclareLocal(typeof(uint)); // locals start at zero (InitLocals)
        int n = program.Length;
        var labels = new Label[n + 1];
        for (int i = 0; i <= n; i++) labels[i] = il.DefineLabel();
        var fail = labels[n]; // falling off the end, like every failure, returns 0

        // A jump target: an instruction of the program, or the failure label past its end.
        Label Target(int from, long offset) => from + 1 + offset is var t && t >= 0 && t < n ? labels[t] : fail;

        for (int pc = 0; pc < n; pc++)
        {
            il.MarkLabel(labels[pc]);
            var ins = program[pc];
            uint k = ins.K;
            switch (ins.Code)
            {
                case BpfOp.Ret | BpfOp.K: il.Emit(OpCodes.Ldc_I4, unchecked((int)k)); il.Emit(OpCodes.Ret); break;
                case BpfOp.Ret | BpfOp.A: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Ret); break;

                case BpfOp.Ld | BpfOp.W | BpfOp.Abs: LoadAbs(il, k, 4, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ld | BpfOp.H | BpfOp.Abs: LoadAbs(il, k, 2, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ld | BpfOp.B | BpfOp.Abs: LoadAbs(il, k, 1, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ld | BpfOp.W | BpfOp.Len: il.Emit(OpCodes.Ldarg_2); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ldx | BpfOp.W | BpfOp.Len: il.Emit(OpCodes.Ldarg_2); il.Emit(OpCodes.Stloc, x); break;
                case BpfOp.Ld | BpfOp.W | BpfOp.Ind: LoadInd(il, x, k, 4, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ld | BpfOp.H | BpfOp.Ind: LoadInd(il, x, k, 2, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ld | BpfOp.B | BpfOp.Ind: LoadInd(il, x, k, 1, fail); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ldx | BpfOp.Msh | BpfOp.B:
                    LoadAbs(il, k, 1, fail);
                    il.Emit(OpCodes.Ldc_I4, 0xf);
                    il.Emit(OpCodes.And);
                    il.Emit(OpCodes.Ldc_I4_2);
                    il.Emit(OpCodes.Shl);
                    il.Emit(OpCodes.Stloc, x);
                    break;
                case BpfOp.Ld | BpfOp.Imm: il.Emit(OpCodes.Ldc_I4, unchecked((int)k)); il.Emit(OpCodes.Stloc, a); break;
                case BpfOp.Ldx | BpfOp.Imm: il.Emit(OpCodes.Ldc_I4, unchecked((int)k)); il.Emit(OpCodes.Stloc, x); break;
                case BpfOp.Ld | BpfOp.Mem: Move(il, k < BpfOp.MemWords ? mem[k] : null, a, fail); break;
                case BpfOp.Ldx | BpfOp.Mem: Move(il, k < BpfOp.MemWords ? mem[k] : null, x, fail); break;
                case BpfOp.St: MoveTo(il, a, k < BpfOp.MemWords ? mem[k] : null, fail); break;
                case BpfOp.Stx: MoveTo(il, x, k < BpfOp.MemWords ? mem[k] : null, fail); break;

                case BpfOp.Jmp | BpfOp.Ja: il.Emit(OpCodes.Br, Target(pc, k)); break;
                case BpfOp.Jmp | BpfOp.Jgt | BpfOp.K: Branch(il, a, null, k, OpCodes.Bgt_Un, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jge | BpfOp.K: Branch(il, a, null, k, OpCodes.Bge_Un, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jeq | BpfOp.K: Branch(il, a, null, k, OpCodes.Beq, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jset | BpfOp.K: Branch(il, a, null, k, OpCodes.Brtrue, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jgt | BpfOp.X: Branch(il, a, x, 0, OpCodes.Bgt_Un, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jge | BpfOp.X: Branch(il, a, x, 0, OpCodes.Bge_Un, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jeq | BpfOp.X: Branch(il, a, x, 0, OpCodes.Beq, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;
                case BpfOp.Jmp | BpfOp.Jset | BpfOp.X: Branch(il, a, x, 0, OpCodes.Brtrue, Target(pc, ins.Jt), Target(pc, ins.Jf)); break;

                case BpfOp.Alu | BpfOp.Add | BpfOp.X: Alu(il, a, x, 0, OpCodes.Add); break;
                case BpfOp.Alu | BpfOp.Sub | BpfOp.X: Alu(il, a, x, 0, OpCodes.Sub); break;
                case BpfOp.Alu | BpfOp.Mul | BpfOp.X: Alu(il, a, x, 0, OpCodes.Mul); break;
                case BpfOp.Alu | BpfOp.Div | BpfOp.X:
                    il.Emit(OpCodes.Ldloc, x);
                    il.Emit(OpCodes.Brfalse, fail);
                    Alu(il, a, x, 0, OpCodes.Div_Un);
                    break;
                case BpfOp.Alu | BpfOp.Mod | BpfOp.X:
                    il.Emit(OpCodes.Ldloc, x);
                    il.Emit(OpCodes.Brfalse, fail);
                    Alu(il, a, x, 0, OpCodes.Rem_Un);
                    break;
                case BpfOp.Alu | BpfOp.And | BpfOp.X: Alu(il, a, x, 0, OpCodes.And); break;
                case BpfOp.Alu | BpfOp.Or | BpfOp.X: Alu(il, a, x, 0, OpCodes.Or); break;
                case BpfOp.Alu | BpfOp.Xor | BpfOp.X: Alu(il, a, x, 0, OpCodes.Xor); break;
                case BpfOp.Alu | BpfOp.Lsh | BpfOp.X: Shift(il, a, x, OpCodes.Shl); break;
                case BpfOp.Alu | BpfOp.Rsh | BpfOp.X: Shift(il, a, x, OpCodes.Shr_Un); break;
                case BpfOp.Alu | BpfOp.Add | BpfOp.K: Alu(il, a, null, k, OpCodes.Add); break;
                case BpfOp.Alu | BpfOp.Sub | BpfOp.K: Alu(il, a, null, k, OpCodes.Sub); break;
                case BpfOp.Alu | BpfOp.Mul | BpfOp.K: Alu(il, a, null, k, OpCodes.Mul); break;
                case BpfOp.Alu | BpfOp.Div | BpfOp.K:
                    if (k == 0) il.Emit(OpCodes.Br, fail);
                    else Alu(il, a, null, k, OpCodes.Div_Un);
                    break;
                case BpfOp.Alu | BpfOp.Mod | BpfOp.K:
                    if (k == 0) il.Emit(OpCodes.Br, fail);
                    else Alu(il, a, null, k, OpCodes.Rem_Un);
                    break;
                case BpfOp.Alu | BpfOp.And | BpfOp.K: Alu(il, a, null, k, OpCodes.And); break;
                case BpfOp.Alu | BpfOp.Or | BpfOp.K: Alu(il, a, null, k, OpCodes.Or); break;
                case BpfOp.Alu | BpfOp.Xor | BpfOp.K: Alu(il, a, null, k, OpCodes.Xor); break;
                case BpfOp.Alu | BpfOp.Lsh | BpfOp.K: Alu(il, a, null, k & 31, OpCodes.Shl); break;
                case BpfOp.Alu | BpfOp.Rsh | BpfOp.K: Alu(il, a, null, k & 31, OpCodes.Shr_Un); break;
                case BpfOp.Alu | BpfOp.Neg:
                    il.Emit(OpCodes.Ldloc, a);
                    il.Emit(OpCodes.Neg);
                    il.Emit(OpCodes.Stloc, a);
                    break;

                case BpfOp.Misc | BpfOp.Tax: il.Emit(OpCodes.Ldloc, a); il.Emit(OpCodes.Stloc, x); break;
                case BpfOp.Misc | BpfOp.Txa: il.Emit(OpCodes.Ldloc, x); il.Emit(OpCodes.Stloc, a); break;

                default: il.Emit(OpCodes.Br, fail); break;
            }
        }
        il.MarkLabel(fail);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<Matcher>();
    }

    // A load at a fixed offset: the bounds are known but the length is not, so one unsigned compare guards it.
    private static void LoadAbs(ILGenerator il, uint k, int size, Label fail)
    {
        if ((ulong)k + (ulong)size > int.MaxValue)
        {
            il.Emit(OpCodes.Br, fail);
            il.Emit(OpCodes.Ldc_I4_0); // unreachable; keeps the stack shape the store after it expects
            return;
        }
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Ldc_I4, (int)k + size);
        il.Emit(OpCodes.Blt, fail);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldc_I4, (int)k);
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Add);
        LoadAt(il, size);
    }

    // A load at X + k, checked in 64 bits as the interpreter does.
    private static void LoadInd(ILGenerator il, LocalBuilder x, uint k, int size, Label fail)
    {
        il.Emit(OpCodes.Ldloc, x);
        il.Emit(OpCodes.Conv_U8);
        il.Emit(OpCodes.Ldc_I8, (long)k + size);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Conv_I8);
        il.Emit(OpCodes.Bgt_Un, fail);
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldloc, x);
        il.Emit(OpCodes.Conv_U8);
        il.Emit(OpCodes.Ldc_I8, (long)k);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Conv_U);
        il.Emit(OpCodes.Add);
        LoadAt(il, size);
    }

    // The value at the address on the stack, network byte order to host.
    private static void LoadAt(ILGenerator il, int size)
    {
        switch (size)
        {
            case 4:
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_U4);
                il.Emit(OpCodes.Call, Swap32);
                break;
            case 2:
                il.Emit(OpCodes.Unaligned, (byte)1);
                il.Emit(OpCodes.Ldind_U2);
                il.Emit(OpCodes.Call, Swap16);
                break;
            default:
                il.Emit(OpCodes.Ldind_U1);
                break;
        }
    }

    private static void Move(ILGenerator il, LocalBuilder? from, LocalBuilder to, Label fail)
    {
        if (from is null) { il.Emit(OpCodes.Br, fail); return; }
        il.Emit(OpCodes.Ldloc, from);
        il.Emit(OpCodes.Stloc, to);
    }

    private static void MoveTo(ILGenerator il, LocalBuilder from, LocalBuilder? to, Label fail)
    {
        if (to is null) { il.Emit(OpCodes.Br, fail); return; }
        il.Emit(OpCodes.Ldloc, from);
        il.Emit(OpCodes.Stloc, to);
    }

    private static void Branch(ILGenerator il, LocalBuilder a, LocalBuilder? x, uint k, OpCode op, Label jt, Label jf)
    {
        il.Emit(OpCodes.Ldloc, a);
        if (x is not null) il.Emit(OpCodes.Ldloc, x);
        else il.Emit(OpCodes.Ldc_I4, unchecked((int)k));
        if (op == OpCodes.Brtrue) il.Emit(OpCodes.And); // JSET: A & operand non-zero
        il.Emit(op, jt);
        il.Emit(OpCodes.Br, jf);
    }

    private static void Alu(ILGenerator il, LocalBuilder a, LocalBuilder? x, uint k, OpCode op)
    {
        il.Emit(OpCodes.Ldloc, a);
        if (x is not null) il.Emit(OpCodes.Ldloc, x);
        else il.Emit(OpCodes.Ldc_I4, unchecked((int)k));
        il.Emit(op);
        il.Emit(OpCodes.Stloc, a);
    }

    private static void Shift(ILGenerator il, LocalBuilder a, LocalBuilder x, OpCode op)
    {
        il.Emit(OpCodes.Ldloc, a);
        il.Emit(OpCodes.Ldloc, x);
        il.Emit(OpCodes.Ldc_I4, 31);
        il.Emit(OpCodes.And);
        il.Emit(op);
        il.Emit(OpCodes.Stloc, a);
    }
}
