using System.Buffers.Binary;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>The compiled program's entry: the generated method bound to its <see cref="BpfJitClosure"/>.</summary>
internal delegate BpfRunResult BpfJitEntry(ref BpfMemory mem, ulong r1, ulong r2);

/// <summary>What the generated code reaches beyond its arguments: the helper functions bound at compile time.</summary>
internal sealed class BpfJitClosure(BpfProgram program, BpfHelperFn[] fns, BpfHelperTable? table, BpfRegionTable? space, Maps.BpfMap[] maps)
{
    public readonly BpfProgram Program = program;
    /// <summary>The program compiled with every bounds test, for runs the verifier's packet proofs do not cover
    /// (compiled on first need).</summary>
    public BpfJitEntry? CheckedEntry;
    public readonly BpfHelperFn[] Fns = fns;
    public readonly BpfHelperTable? Table = table;
    /// <summary>The address space the program was verified against: inlined map lookups hold while a run uses it.</summary>
    public readonly BpfRegionTable? Space = space;
    /// <summary>The maps of the call sites whose lookup is inlined.</summary>
    public readonly Maps.BpfMap[] Maps = maps;
}

/// <summary>
/// Emits one IL method for a whole program, mirroring <see cref="BpfInterpreter"/>'s loop instruction by
/// instruction so every outcome is the same: each instruction slot gets a label (jumps, even into the second half
/// of an ld_imm64 in an unverified program, land where the interpreter's pc would), each register is an IL local,
/// every fault returns the interpreter's <see cref="BpfRunResult"/> with the same pc.
/// <list type="bullet">
/// <item>Memory: an access through R10 with a constant offset inside the frame is checked here, at compile time,
/// when no instruction can write R10 (the verifier forbids it; unverified programs that do lose only this fast
/// path). Any other address is rebased on data_meta and compared once, unsigned, with a per-size limit
/// recomputed after each helper call (helpers move the packet); a miss calls <see cref="BpfMemory.TryMap"/> itself,
/// out of line, so the stack through other registers, map values and the context answer exactly as in the
/// interpreter. The verifier's rewritten xdp_md loads (64-bit loads) try the context table first.</item>
/// <item>BPF-to-BPF calls stay in the one method, as in the interpreter: a call saves R6–R9 and a return-site
/// number in a small native frame array (stackalloc, so runs on different threads share nothing), the exit of a
/// callee restores them and dispatches on the return site with an IL switch.</item>
/// <item>Helpers with a constant id are bound at compile time (the table lookup the interpreter does per call is
/// done once); uBPF's callx looks the id up per call.</item>
/// </list>
/// Very large programs (thousands of memory accesses) exceed the .NET JIT's optimisation limits for one method
/// and are compiled without optimisation: still correct, slower.
/// </summary>
internal sealed class BpfJitEmitter
{
    private const int SaveSlotBytes = 40; // R6–R9 and the return site of one frame
    private static readonly ulong FramePointer0 = BpfMemory.FramePointer(0);
    private static readonly ulong CtxLow = BpfMemory.Address(BpfMemory.CtxRegion, 0);

    private static readonly ConstructorInfo ResultCtor = typeof(BpfRunResult).GetConstructor([typeof(ulong), typeof(BpfFault), typeof(int)])!;
    private static readonly MethodInfo InvokeFn = typeof(BpfHelperFn).GetMethod(nameof(BpfHelperFn.Invoke))!;
    private static readonly FieldInfo FnsField = typeof(BpfJitClosure).GetField(nameof(BpfJitClosure.Fns))!;
    private static readonly FieldInfo TableField = typeof(BpfJitClosure).GetField(nameof(BpfJitClosure.Table))!;
    private static readonly FieldInfo SpaceField = typeof(BpfJitClosure).GetField(nameof(BpfJitClosure.Space))!;
    private static readonly FieldInfo MapsField = typeof(BpfJitClosure).GetField(nameof(BpfJitClosure.Maps))!;
    private static readonly FieldInfo CacheLow = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.Low))!;
    private static readonly FieldInfo CacheLim1 = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.Lim1))!;
    private static readonly FieldInfo CacheLim2 = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.Lim2))!;
    private static readonly FieldInfo CacheLim4 = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.Lim4))!;
    private static readonly FieldInfo CacheLim8 = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.Lim8))!;
    private static readonly FieldInfo CacheReadOnly = typeof(BpfJitRegionCache).GetField(nameof(BpfJitRegionCache.ReadOnly))!;
    private static readonly MethodInfo IsNullRef = typeof(Unsafe).GetMethod(nameof(Unsafe.IsNullRef))!.MakeGenericMethod(typeof(byte));
    private static readonly MethodInfo Barrier = typeof(Interlocked).GetMethod(nameof(Interlocked.MemoryBarrier), Type.EmptyTypes)!;
    private static readonly MethodInfo HelperFnGetter = typeof(BpfHelper).GetProperty(nameof(BpfHelper.Fn))!.GetMethod!;
    private static readonly MethodInfo HelperUnwindGetter = typeof(BpfHelper).GetProperty(nameof(BpfHelper.UnwindOnZero))!.GetMethod!;
    private static readonly MethodInfo Swap16 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ushort)])!;
    private static readonly MethodInfo Swap32 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(uint)])!;
    private static readonly MethodInfo Swap64 = typeof(BinaryPrimitives).GetMethod(nameof(BinaryPrimitives.ReverseEndianness), [typeof(ulong)])!;

    private static MethodInfo Rt(string name) => typeof(BpfJitRuntime).GetMethod(name, BindingFlags.Public | BindingFlags.Static)!;

    private readonly BpfProgram _prog;
    private readonly BpfInsn[] _insns;
    private readonly List<BpfHelperFn> _fns = [];
    private readonly List<Maps.BpfMap> _maps = [];
    private readonly bool[] _jumpTarget;
    private readonly bool[] _sizesUsed = new bool[9];
    private readonly bool[]? _proven;
    private readonly bool _constLookups;
    private readonly bool[] _mapElide = [];
    private readonly bool _anyMapElide;
    private readonly Dictionary<int, Label> _outside = [];
    private readonly List<(Label Slow, Label Resume, int Size, bool Write, int Pc, bool MapFirst, bool CtxFirst, int Base, short Off)> _cold = [];
    private readonly List<int> _callSites = [];
    private ILGenerator _il = null!;

    private LocalBuilder[] _r = null!;
    private LocalBuilder _addr = null!, _t = null!, _p = null!, _len = null!;
    private LocalBuilder _stackBase = null!, _frameBase = null!, _frame = null!, _save = null!, _slot = null!;
    private LocalBuilder _pktFirst = null!, _pktLow = null!, _ctxFirst = null!, _ctxLim = null!, _helper = null!;
    private LocalBuilder _frameLow = null!, _cache = null!, _sameSpace = null!, _valueFirst = null!;
    private readonly LocalBuilder?[] _lim = new LocalBuilder?[9];
    private Label[] _labels = null!;
    private Label _returnBlock;
    private Label[] _returnSites = [];

    private readonly bool _hasCalls, _r10Fixed, _usesCtx, _usesPacket;

    /// <param name="elideProvenChecks">Compile the accesses the verifier proved inside the packet without a bounds test
    /// (valid only when the run's context table and packet bounds agree, as <see cref="BpfJitProgram.RunXdp(BpfJitStack, ref XdpBuff, uint, BpfRunContext?, BpfRegionTable?, out BpfRunResult)"/> ensures).</param>
    public BpfJitEmitter(BpfProgram prog, bool elideProvenChecks = true)
    {
        _prog = prog;
        _proven = elideProvenChecks ? prog.PacketAccessProven : null;
        if (_proven is { } proven && !proven.Contains(true)) _proven = null;
        _insns = prog.Insns;
        bool r10Fixed = true, usesCtx = false, usesPacket = false;
        for (int i = 0; i < _insns.Length; i++)
        {
            var insn = _insns[i];
            int cls = insn.Class;
            if (insn.Code == (BPF_JMP | BPF_CALL) && insn.Source == BPF_K && insn.Src == BPF_PSEUDO_CALL) _callSites.Add(i);
            if ((cls is BPF_ALU or BPF_ALU64 or BPF_LDX or BPF_LD && insn.Dst == FramePointer)
                || (cls == BPF_STX && insn.Mode == BPF_ATOMIC && (insn.Src == FramePointer || insn.Dst == FramePointer)))
                r10Fixed = false;
            if (cls is BPF_LDX or BPF_ST or BPF_STX)
            {
                usesPacket = true;
                _sizesUsed[SizeBytes(insn.SizeField)] = true;
            }
            if (cls == BPF_LDX && insn.Code == (BPF_LDX | BPF_MEM | BPF_DW) && prog.Options.Context == BpfContextKind.Xdp) usesCtx = true;
        }
        _hasCalls = _callSites.Count > 0;
        _jumpTarget = JumpTargets(_insns);
        _mapElide = new bool[_insns.Length];
        for (int i = 0; i < _insns.Length && !_constLookups; i++)
        {
            var insn = _insns[i];
            _constLookups = insn.Code == (BPF_JMP | BPF_CALL) && insn.Src == 0 && insn.Imm == Helpers.BpfMapHelpers.MapLookupElemId
                && ConstantMapArg(i) is not null;
        }
        _r10Fixed = r10Fixed;
        _usesCtx = usesCtx;
        _usesPacket = usesPacket;
        if (elideProvenChecks && prog.MapValueAccessProven is { } mapProven && prog.Options.Maps is not null)
        {
            // In instruction order: a decision looks back at the earlier ones.
            for (int i = 0; i < _insns.Length; i++)
            {
                var insn = _insns[i];
                if (!mapProven[i] || insn.Class is not (BPF_LDX or BPF_ST or BPF_STX)) continue;
                int baseReg = insn.Class == BPF_LDX || (insn.Class == BPF_STX && insn.Mode == BPF_ATOMIC && insn.Imm == 0x100) ? insn.Src : insn.Dst;
                if (MapValueFromLookup(i, baseReg)) _mapElide[i] = _anyMapElide = true;
            }
        }
    }

    /// <summary>Lookups with the map known at compile time (after <see cref="Compile"/>).</summary>
    public int InlinedLookups => _maps.Count;

    /// <summary>Packet accesses compiled without a bounds test (after <see cref="Compile"/>).</summary>
    public int ElidedChecks { get; private set; }

    public BpfJitEntry Compile()
    {
        var dm = new DynamicMethod("bpf_jit", typeof(BpfRunResult),
            [typeof(BpfJitClosure), typeof(BpfMemory).MakeByRefType(), typeof(ulong), typeof(ulong)],
            typeof(BpfJitClosure).Module, skipVisibility: true);
        _il = dm.GetILGenerator(64 + _insns.Length * 48);
        var il = _il;
        var byteRef = typeof(byte).MakeByRefType();
        _r = new LocalBuilder[MaxReg];
        for (int i = 0; i < MaxReg; i++) _r[i] = il.DeclareLocal(typeof(ulong));
        _addr = il.DeclareLocal(typeof(ulong));
        _t = il.DeclareLocal(typeof(ulong));
        _p = il.DeclareLocal(byteRef);
        _len = il.DeclareLocal(typeof(int));
        _stackBase = il.DeclareLocal(byteRef);
        _frameBase = il.DeclareLocal(byteRef);
        _frame = il.DeclareLocal(typeof(int));
        _save = il.DeclareLocal(typeof(nint));
        _slot = il.DeclareLocal(typeof(nint));
        _pktFirst = il.DeclareLocal(byteRef);
        _pktLow = il.DeclareLocal(typeof(ulong));
        _ctxFirst = il.DeclareLocal(byteRef);
        _ctxLim = il.DeclareLocal(typeof(ulong));
        _helper = il.DeclareLocal(typeof(BpfHelper));
        _frameLow = il.DeclareLocal(typeof(ulong));
        _cache = il.DeclareLocal(typeof(BpfJitRegionCache));
        _valueFirst = il.DeclareLocal(byteRef);
        _sameSpace = il.DeclareLocal(typeof(bool));
        foreach (int size in new[] { 1, 2, 4, 8 }) _lim[size] = il.DeclareLocal(typeof(ulong));

        _labels = new Label[_insns.Length];
        for (int i = 0; i < _labels.Length; i++) _labels[i] = il.DefineLabel();
        _returnBlock = il.DefineLabel();
        _returnSites = _callSites.Select(c => Target(c + 1)).ToArray();

        EmitPrologue();
        for (int i = 0; i < _insns.Length; i++)
        {
            il.MarkLabel(_labels[i]);
            EmitInsn(i);
        }
        il.Emit(OpCodes.Br, Target(_insns.Length));
        EmitColdBlocks();

        var closure = new BpfJitClosure(_prog, [.. _fns], _prog.Helpers, _prog.Options.Maps, [.. _maps]);
        return dm.CreateDelegate<BpfJitEntry>(closure);
    }

    // ---- structure ----

    /// <summary>The label of instruction <paramref name="pc"/>, or of a "fell off" exit when it lies outside the program.</summary>
    private Label Target(int pc)
    {
        if ((uint)pc < (uint)_insns.Length) return _labels[pc];
        if (!_outside.TryGetValue(pc, out var l)) _outside[pc] = l = _il.DefineLabel();
        return l;
    }

    private void EmitPrologue()
    {
        var il = _il;
        for (int i = 0; i < MaxReg; i++)
        {
            il.Emit(OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Conv_U8);
            il.Emit(OpCodes.Stloc, _r[i]);
        }
        il.Emit(OpCodes.Ldarg_2);
        il.Emit(OpCodes.Stloc, _r[1]);
        il.Emit(OpCodes.Ldarg_3);
        il.Emit(OpCodes.Stloc, _r[2]);
        il.Emit(OpCodes.Ldc_I8, (long)FramePointer0);
        il.Emit(OpCodes.Stloc, _r[FramePointer]);
        il.Emit(OpCodes.Ldc_I4_0);
        il.Emit(OpCodes.Stloc, _frame);
        il.Emit(OpCodes.Ldc_I8, (long)(FramePointer0 - StackSize));
        il.Emit(OpCodes.Stloc, _frameLow);
        // Inlined map lookups bind the maps of the space the program was verified with; a run in another space takes
        // the helper (the kernel's maps are fixed at load, so there this never happens).
        if (_constLookups || _anyMapElide)
        {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, SpaceField);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.Extra)));
            il.Emit(OpCodes.Ceq);
            il.Emit(OpCodes.Stloc, _sameSpace);
        }
        il.Emit(OpCodes.Ldarg_1);
        il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.StackFirst)));
        il.Emit(OpCodes.Stloc, _stackBase);
        il.Emit(OpCodes.Ldloc, _stackBase);
        il.Emit(OpCodes.Stloc, _frameBase);
        if (_prog.ZeroStack) EmitClearFrame();
        if (_hasCalls)
        {
            il.Emit(OpCodes.Ldc_I4, MaxCallFrames * SaveSlotBytes);
            il.Emit(OpCodes.Conv_U);
            il.Emit(OpCodes.Localloc);
            il.Emit(OpCodes.Stloc, _save);
        }
        EmitReload();
        if (_proven is not null || _anyMapElide)
        {
            // The proven accesses hold for an XDP run: R1 the context, whose table agrees with the packet bounds; and
            // proven map-value accesses for a run in the address space the program was verified with (its maps'
            // value sizes). Anything else runs the program with every test.
            var sane = il.DefineLabel();
            var insane = il.DefineLabel();
            if (_anyMapElide)
            {
                il.Emit(OpCodes.Ldloc, _sameSpace);
                il.Emit(_proven is not null ? OpCodes.Brfalse : OpCodes.Brtrue, _proven is not null ? insane : sane);
            }
            if (_proven is not null)
            {
                il.Emit(OpCodes.Ldarg_1);
                il.Emit(OpCodes.Ldarg_2);
                il.Emit(OpCodes.Ldloc, _len);
                il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.XdpBoundsAgree)));
                il.Emit(OpCodes.Brtrue, sane);
            }
            il.MarkLabel(insane);
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldarg_2);
            il.Emit(OpCodes.Ldarg_3);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.RunChecked)));
            il.Emit(OpCodes.Ret);
            il.MarkLabel(sane);
            if (_proven is not null)
            {
                // What the test established, as constants the .NET JIT folds: R1 is the context pointer and the table
                // holds at least xdp_md's fields, so the rewritten context loads through R1 need no run-time test.
                il.Emit(OpCodes.Ldc_I8, (long)CtxLow);
                il.Emit(OpCodes.Stloc, _r[1]);
                if (_usesCtx)
                {
                    il.Emit(OpCodes.Ldc_I8, (long)(XdpMd.TableSize + 1 - 8));
                    il.Emit(OpCodes.Stloc, _ctxLim);
                }
            }
        }
    }

    /// <summary>Re-reads the packet and context bounds: at entry and after every helper call (helpers move the packet).</summary>
    private void EmitReload()
    {
        var il = _il;
        if (_usesPacket)
        {
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.PacketLength)));
            il.Emit(OpCodes.Stloc, _len);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.PacketLow)));
            il.Emit(OpCodes.Stloc, _pktLow);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, _len);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.PacketFirstAt)));
            il.Emit(OpCodes.Stloc, _pktFirst);
            foreach (int size in new[] { 1, 2, 4, 8 })
            {
                if (!_sizesUsed[size]) continue;
                il.Emit(OpCodes.Ldloc, _len);
                il.Emit(OpCodes.Ldc_I4, size);
                il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.Limit)));
                il.Emit(OpCodes.Stloc, _lim[size]!);
            }
        }
        if (_usesCtx)
        {
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.CtxFirst)));
            il.Emit(OpCodes.Stloc, _ctxFirst);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.CtxLength)));
            il.Emit(OpCodes.Ldc_I4_8);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.Limit)));
            il.Emit(OpCodes.Stloc, _ctxLim);
        }
    }

    private void EmitClearFrame()
    {
        _il.Emit(OpCodes.Ldloc, _frameBase);
        _il.Emit(OpCodes.Ldc_I4_0);
        _il.Emit(OpCodes.Ldc_I4, StackSize);
        _il.Emit(OpCodes.Unaligned, (byte)1);
        _il.Emit(OpCodes.Initblk);
    }

    private void EmitResult(BpfFault fault, int pc, LocalBuilder? r0 = null)
    {
        if (r0 is null)
        {
            _il.Emit(OpCodes.Ldc_I4_0);
            _il.Emit(OpCodes.Conv_U8);
        }
        else _il.Emit(OpCodes.Ldloc, r0);
        _il.Emit(OpCodes.Ldc_I4, (int)fault);
        _il.Emit(OpCodes.Ldc_I4, pc);
        _il.Emit(OpCodes.Newobj, ResultCtor);
        _il.Emit(OpCodes.Ret);
    }

    private void EmitColdBlocks()
    {
        var il = _il;
        foreach (var (slow, resume, size, write, pc, mapFirst, ctxFirst, baseReg, off) in _cold)
        {
            // What the inline test missed: the other regions' tests — the context and packet (after a map-value
            // guess), the current frame's stack (a pointer derived from R10), the region cache (a map value) — then
            // the out-of-line resolution, which fills the cache or answers as TryMap does.
            il.MarkLabel(slow);
            if (!mapFirst && !ctxFirst) EmitAddr(baseReg, off); // the hot test kept it on the IL stack
            if (mapFirst)
            {
                if (ctxFirst) EmitCtxCheck(resume);
                EmitPacketCheck(size, resume, branchOnHit: true);
            }
            EmitFrameAccess(_addr, size, resume);
            if (!mapFirst)
            {
                var notCached = il.DefineLabel();
                EmitCacheCheck(size, write, notCached);
                il.Emit(OpCodes.Br, resume);
                il.MarkLabel(notCached);
            }
            il.Emit(OpCodes.Ldloca, _cache);
            il.Emit(OpCodes.Ldarg_1);
            il.Emit(OpCodes.Ldloc, _addr);
            il.Emit(OpCodes.Ldc_I4, size);
            il.Emit(write ? OpCodes.Ldc_I4_1 : OpCodes.Ldc_I4_0);
            il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.Fill)));
            il.Emit(OpCodes.Stloc, _p);
            il.Emit(OpCodes.Ldloc, _p);
            il.Emit(OpCodes.Call, IsNullRef);
            il.Emit(OpCodes.Brfalse, resume);
            EmitResult(BpfFault.MemoryAccess, pc);
        }
        foreach (var (pc, label) in _outside)
        {
            il.MarkLabel(label);
            EmitResult(BpfFault.FellOff, pc);
        }
        if (_hasCalls)
        {
            // The exit of a callee (frame > 0): restore the caller's R6–R9 and frame pointer, resume after its call.
            il.MarkLabel(_returnBlock);
            il.Emit(OpCodes.Ldloc, _frame);
            il.Emit(OpCodes.Ldc_I4_1);
            il.Emit(OpCodes.Sub);
            il.Emit(OpCodes.Stloc, _frame);
            EmitSlot();
            for (int k = 0; k < 4; k++)
            {
                il.Emit(OpCodes.Ldloc, _slot);
                if (k > 0)
                {
                    il.Emit(OpCodes.Ldc_I4, k * 8);
                    il.Emit(OpCodes.Add);
                }
                il.Emit(OpCodes.Ldind_I8);
                il.Emit(OpCodes.Stloc, _r[6 + k]);
            }
            EmitFrameRegisters();
            il.Emit(OpCodes.Ldloc, _slot);
            il.Emit(OpCodes.Ldc_I4, 32);
            il.Emit(OpCodes.Add);
            il.Emit(OpCodes.Ldind_I4);
            il.Emit(OpCodes.Switch, _returnSites);
            EmitResult(BpfFault.BadInstruction, -1); // never: every saved site is in the table
        }
    }

    /// <summary>
    /// _p = the bytes at <paramref name="addr"/> and a branch to <paramref name="hit"/> when the
    /// <paramref name="size"/>-byte access lies in the current call frame's stack (the test of
    /// <see cref="BpfMemory.TryMap"/> for that frame); falls through otherwise.
    /// </summary>
    private void EmitFrameAccess(LocalBuilder addr, int size, Label hit)
    {
        var il = _il;
        var miss = il.DefineLabel();
        Ld(addr);
        Ld(_frameLow);
        Op(OpCodes.Sub);
        Op(OpCodes.Dup);
        St(_t);
        il.Emit(OpCodes.Ldc_I8, (long)(StackSize + 1 - size));
        il.Emit(OpCodes.Bge_Un, miss);
        Ld(_frameBase);
        Ld(_t);
        Op(OpCodes.Conv_U);
        Op(OpCodes.Add);
        St(_p);
        il.Emit(OpCodes.Br, hit);
        il.MarkLabel(miss);
    }

    /// <summary>_valueFirst = the first byte of the region of the value a lookup returned in R0 (a null reference when
    /// NULL), so the proven accesses through it that follow need only add R0's offset.</summary>
    private void EmitValueRegionForR0()
    {
        Op(OpCodes.Ldarg_1);
        Ld(_r[0]);
        Call(nameof(BpfJitRuntime.ValueRegion));
        St(_valueFirst);
    }

    /// <summary>
    /// Whether the access at <paramref name="pc"/> through R[<paramref name="baseReg"/>] (a proven map-value access)
    /// may skip its test: in straight-line code (no jump lands in between) the base is R0 of a bpf_map_lookup_elem call,
    /// through moves and constant adds, and no instruction in between can change the region cache (every memory access
    /// there is a frame access off R10, a proven packet access, or itself such an access).
    /// </summary>
    private bool MapValueFromLookup(int pc, int baseReg)
    {
        int reg = baseReg;
        if (_jumpTarget[pc]) return false;
        for (int k = pc - 1, steps = 0; k >= 0 && steps < 64; k--, steps++)
        {
            if (k > 0 && _insns[k - 1].IsLdImm64)
            {
                if (_jumpTarget[k]) return false;
                k--;
            }
            var insn = _insns[k];
            int cls = insn.Class;
            if (insn.IsLdImm64)
            {
                if (insn.Dst == reg) return false;
            }
            else if (cls is BPF_JMP or BPF_JMP32)
            {
                if (insn.Op == BPF_CALL)
                    return reg == 0 && insn.Source == BPF_K && insn.Src == 0 && insn.Imm == Helpers.BpfMapHelpers.MapLookupElemId;
                if (insn.Op is BPF_EXIT or BPF_JA) return false;
            }
            else if (cls == BPF_ALU64 && insn.Dst == reg)
            {
                if (insn.Op == BPF_MOV && insn.Source == BPF_X && insn.Off == 0) reg = insn.Src;
                else if (!(insn.Op == BPF_ADD && insn.Source == BPF_K)) return false;
            }
            else if (cls is BPF_ALU or BPF_LD && insn.Dst == reg) return false;
            else if (cls is BPF_LDX or BPF_ST or BPF_STX)
            {
                if (cls == BPF_LDX && insn.Dst == reg) return false;
                if (cls == BPF_STX && insn.Mode == BPF_ATOMIC && (insn.Src == reg || reg == 0)) return false;
                int b = cls == BPF_LDX || (cls == BPF_STX && insn.Mode == BPF_ATOMIC && insn.Imm == 0x100) ? insn.Src : insn.Dst;
                bool frame = b == FramePointer && _r10Fixed && insn.Off >= -StackSize && insn.Off + SizeBytes(insn.SizeField) <= 0;
                bool packet = _proven is { } pr && pr[k];
                if (!frame && !packet && !_mapElide[k]) return false;
            }
            if (_jumpTarget[k]) return false;
        }
        return false;
    }

    /// <summary>Instructions some jump, call or callee return lands on: where straight-line reasoning stops.</summary>
    private static bool[] JumpTargets(BpfInsn[] insns)
    {
        var t = new bool[insns.Length + 1];
        void Mark(long pc)
        {
            if (pc >= 0 && pc < t.Length) t[pc] = true;
        }
        for (int i = 0; i < insns.Length; i++)
        {
            var insn = insns[i];
            if (insn.Class is not (BPF_JMP or BPF_JMP32)) continue;
            if (insn.Op == BPF_EXIT) continue;
            if (insn.Op == BPF_CALL)
            {
                if (insn.Source == BPF_K && insn.Src == BPF_PSEUDO_CALL)
                {
                    Mark((long)i + 1 + insn.Imm);
                    Mark(i + 1); // the callee's exit returns here
                }
                continue;
            }
            Mark((long)i + 1 + (insn.Op == BPF_JA && insn.Class == BPF_JMP32 ? insn.Imm : insn.Off));
        }
        return t;
    }

    /// <summary>
    /// The map R1 holds at the helper call <paramref name="pc"/> when it is certain: the last write of R1 in the
    /// straight line before the call (no jump lands between) is an ld_imm64 of a map (BPF_PSEUDO_MAP_FD) that the
    /// program's address space knows. Null otherwise.
    /// </summary>
    private Maps.BpfMap? ConstantMapArg(int pc)
    {
        if (_prog.Options.Maps is not { } space || _jumpTarget[pc]) return null;
        for (int k = pc - 1; k >= 0; k--)
        {
            var insn = _insns[k];
            if (k > 0 && _insns[k - 1].IsLdImm64)
            {
                // The second half of an ld_imm64: look at the whole instruction.
                if (_jumpTarget[k]) return null;
                k--;
                insn = _insns[k];
            }
            if (insn.IsLdImm64)
            {
                if (insn.Dst == 1)
                {
                    if (insn.Src != BPF_PSEUDO_MAP_FD || k + 1 >= _insns.Length) return null;
                    return space.MapAt((uint)insn.Imm | ((ulong)(uint)_insns[k + 1].Imm << 32));
                }
            }
            else if (insn.Class is BPF_JMP or BPF_JMP32 && insn.Op is BPF_CALL or BPF_EXIT) return null;
            else if (WritesR1(insn)) return null;
            if (_jumpTarget[k]) return null;
        }
        return null;
    }

    private static bool WritesR1(BpfInsn insn) => insn.Class switch
    {
        BPF_ALU or BPF_ALU64 or BPF_LDX or BPF_LD => insn.Dst == 1,
        BPF_STX => insn.Mode == BPF_ATOMIC && (insn.Src == 1 || insn.Dst == 1),
        _ => false,
    };

    /// <summary>_slot = the save area of frame _frame.</summary>
    private void EmitSlot()
    {
        _il.Emit(OpCodes.Ldloc, _save);
        _il.Emit(OpCodes.Ldloc, _frame);
        _il.Emit(OpCodes.Ldc_I4, SaveSlotBytes);
        _il.Emit(OpCodes.Mul);
        _il.Emit(OpCodes.Conv_I);
        _il.Emit(OpCodes.Add);
        _il.Emit(OpCodes.Stloc, _slot);
    }

    /// <summary>R10 and the frame's stack base for the current _frame.</summary>
    private void EmitFrameRegisters()
    {
        var il = _il;
        il.Emit(OpCodes.Ldc_I8, (long)FramePointer0);
        il.Emit(OpCodes.Ldloc, _frame);
        il.Emit(OpCodes.Conv_I8);
        il.Emit(OpCodes.Ldc_I4, 32);
        il.Emit(OpCodes.Shl);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stloc, _r[FramePointer]);
        il.Emit(OpCodes.Ldloc, _r[FramePointer]);
        il.Emit(OpCodes.Ldc_I8, (long)StackSize);
        il.Emit(OpCodes.Sub);
        il.Emit(OpCodes.Stloc, _frameLow);
        il.Emit(OpCodes.Ldloc, _stackBase);
        il.Emit(OpCodes.Ldloc, _frame);
        il.Emit(OpCodes.Ldc_I4, StackSize);
        il.Emit(OpCodes.Mul);
        il.Emit(OpCodes.Conv_I);
        il.Emit(OpCodes.Add);
        il.Emit(OpCodes.Stloc, _frameBase);
    }

    // ---- instructions ----

    private void EmitInsn(int pc)
    {
        var insn = _insns[pc];
        if (insn.Dst >= MaxReg || insn.Src >= MaxReg)
        {
            EmitResult(BpfFault.BadInstruction, pc);
            return;
        }
        switch (insn.Class)
        {
            case BPF_ALU64: EmitAlu64(insn); break;
            case BPF_ALU: EmitAlu32(insn); break;
            case BPF_JMP:
            case BPF_JMP32: EmitJump(pc, insn); break;
            case BPF_LDX: EmitLoad(pc, insn); break;
            case BPF_ST:
            case BPF_STX: EmitStore(pc, insn); break;
            case BPF_LD:
                if (!insn.IsLdImm64 || pc + 1 >= _insns.Length)
                {
                    EmitResult(BpfFault.BadInstruction, pc);
                    break;
                }
                _il.Emit(OpCodes.Ldc_I8, (long)((uint)insn.Imm | ((ulong)(uint)_insns[pc + 1].Imm << 32)));
                _il.Emit(OpCodes.Stloc, _r[insn.Dst]);
                _il.Emit(OpCodes.Br, Target(pc + 2));
                break;
            default: EmitResult(BpfFault.BadInstruction, pc); break;
        }
    }

    private void Ld(LocalBuilder l) => _il.Emit(OpCodes.Ldloc, l);
    private void St(LocalBuilder l) => _il.Emit(OpCodes.Stloc, l);
    private void Op(OpCode op) => _il.Emit(op);
    private void Call(string runtime) => _il.Emit(OpCodes.Call, Rt(runtime));

    private void EmitAlu64(BpfInsn insn)
    {
        var d = _r[insn.Dst];
        bool x = insn.Source == BPF_X;
        long imm = insn.Imm;
        void Src()
        {
            if (x) Ld(_r[insn.Src]);
            else _il.Emit(OpCodes.Ldc_I8, imm);
        }
        void Binary(OpCode op)
        {
            Ld(d);
            Src();
            Op(op);
            St(d);
        }
        void Runtime(string name)
        {
            Ld(d);
            Src();
            Call(name);
            St(d);
        }
        switch (insn.Op)
        {
            case BPF_ADD: Binary(OpCodes.Add); break;
            case BPF_SUB: Binary(OpCodes.Sub); break;
            case BPF_MUL: Binary(OpCodes.Mul); break;
            case BPF_OR: Binary(OpCodes.Or); break;
            case BPF_AND: Binary(OpCodes.And); break;
            case BPF_XOR: Binary(OpCodes.Xor); break;
            case BPF_DIV:
                bool sdiv = insn.Off == 1;
                if (x) Runtime(sdiv ? nameof(BpfJitRuntime.SDiv64) : nameof(BpfJitRuntime.Div64));
                else if (imm == 0) SetConst(d, 0);
                else if (sdiv && imm == -1) { Ld(d); Op(OpCodes.Neg); St(d); }
                else Binary(sdiv ? OpCodes.Div : OpCodes.Div_Un);
                break;
            case BPF_MOD:
                bool smod = insn.Off == 1;
                if (x) Runtime(smod ? nameof(BpfJitRuntime.SMod64) : nameof(BpfJitRuntime.Mod64));
                else if (imm == 0) { }
                else if (smod && imm == -1) SetConst(d, 0);
                else Binary(smod ? OpCodes.Rem : OpCodes.Rem_Un);
                break;
            case BPF_LSH: Shift(d, insn, OpCodes.Shl, 63); break;
            case BPF_RSH: Shift(d, insn, OpCodes.Shr_Un, 63); break;
            case BPF_ARSH: Shift(d, insn, OpCodes.Shr, 63); break;
            case BPF_NEG: Ld(d); Op(OpCodes.Neg); St(d); break;
            case BPF_MOV:
                if (!x) SetConst(d, (ulong)imm);
                else
                {
                    Ld(_r[insn.Src]);
                    switch (insn.Off)
                    {
                        case 8: Op(OpCodes.Conv_I1); Op(OpCodes.Conv_I8); break;
                        case 16: Op(OpCodes.Conv_I2); Op(OpCodes.Conv_I8); break;
                        case 32: Op(OpCodes.Conv_I4); Op(OpCodes.Conv_I8); break;
                    }
                    St(d);
                }
                break;
            case BPF_END: EmitSwap(d, insn.Imm); break;
        }
    }

    private void EmitAlu32(BpfInsn insn)
    {
        var d = _r[insn.Dst];
        bool x = insn.Source == BPF_X;
        int imm = insn.Imm;
        void Dst32()
        {
            Ld(d);
            Op(OpCodes.Conv_U4);
        }
        void Src32()
        {
            if (x)
            {
                Ld(_r[insn.Src]);
                Op(OpCodes.Conv_U4);
            }
            else _il.Emit(OpCodes.Ldc_I4, imm);
        }
        void Binary(OpCode op)
        {
            Dst32();
            Src32();
            Op(op);
            Op(OpCodes.Conv_U8);
            St(d);
        }
        void Runtime(string name)
        {
            Ld(d);
            if (x) Ld(_r[insn.Src]);
            else _il.Emit(OpCodes.Ldc_I8, (long)(uint)imm);
            Call(name);
            St(d);
        }
        void Truncate()
        {
            Dst32();
            Op(OpCodes.Conv_U8);
            St(d);
        }
        switch (insn.Op)
        {
            case BPF_ADD: Binary(OpCodes.Add); break;
            case BPF_SUB: Binary(OpCodes.Sub); break;
            case BPF_MUL: Binary(OpCodes.Mul); break;
            case BPF_OR: Binary(OpCodes.Or); break;
            case BPF_AND: Binary(OpCodes.And); break;
            case BPF_XOR: Binary(OpCodes.Xor); break;
            case BPF_DIV:
                bool sdiv = insn.Off == 1;
                if (x) Runtime(sdiv ? nameof(BpfJitRuntime.SDiv32) : nameof(BpfJitRuntime.Div32));
                else if (imm == 0) SetConst(d, 0);
                else if (sdiv && imm == -1) { Dst32(); Op(OpCodes.Neg); Op(OpCodes.Conv_U8); St(d); }
                else Binary(sdiv ? OpCodes.Div : OpCodes.Div_Un);
                break;
            case BPF_MOD:
                bool smod = insn.Off == 1;
                if (x) Runtime(smod ? nameof(BpfJitRuntime.SMod32) : nameof(BpfJitRuntime.Mod32));
                else if (imm == 0) Truncate();
                else if (smod && imm == -1) SetConst(d, 0);
                else Binary(smod ? OpCodes.Rem : OpCodes.Rem_Un);
                break;
            case BPF_LSH: Shift(d, insn, OpCodes.Shl, 31); break;
            case BPF_RSH: Shift(d, insn, OpCodes.Shr_Un, 31); break;
            case BPF_ARSH: Shift(d, insn, OpCodes.Shr, 31); break;
            case BPF_NEG: Dst32(); Op(OpCodes.Neg); Op(OpCodes.Conv_U8); St(d); break;
            case BPF_MOV:
                if (!x) SetConst(d, (uint)imm);
                else
                {
                    Ld(_r[insn.Src]);
                    switch (insn.Off)
                    {
                        case 8: Op(OpCodes.Conv_I1); break;
                        case 16: Op(OpCodes.Conv_I2); break;
                        default: Op(OpCodes.Conv_U4); break;
                    }
                    Op(OpCodes.Conv_U8);
                    St(d);
                }
                break;
            case BPF_END:
                if (insn.Source == BPF_TO_BE) EmitSwap(d, imm);
                else if (imm == 16) { Ld(d); Op(OpCodes.Conv_U2); Op(OpCodes.Conv_U8); St(d); }
                else if (imm == 32) Truncate();
                break;
        }
    }

    private void SetConst(LocalBuilder d, ulong v)
    {
        _il.Emit(OpCodes.Ldc_I8, (long)v);
        St(d);
    }

    /// <summary>Shifts mask the amount to the operand width, as the interpreter does (IL leaves wider shifts undefined).</summary>
    private void Shift(LocalBuilder d, BpfInsn insn, OpCode op, int mask)
    {
        bool wide = mask == 63;
        Ld(d);
        if (!wide) Op(OpCodes.Conv_U4);
        if (insn.Source == BPF_X)
        {
            Ld(_r[insn.Src]);
            Op(OpCodes.Conv_I4);
            _il.Emit(OpCodes.Ldc_I4, mask);
            Op(OpCodes.And);
        }
        else _il.Emit(OpCodes.Ldc_I4, insn.Imm & mask);
        Op(op);
        if (!wide) Op(OpCodes.Conv_U8);
        St(d);
    }

    private void EmitSwap(LocalBuilder d, int width)
    {
        Ld(d);
        switch (width)
        {
            case 16: Op(OpCodes.Conv_U2); _il.Emit(OpCodes.Call, Swap16); Op(OpCodes.Conv_U8); break;
            case 32: Op(OpCodes.Conv_U4); _il.Emit(OpCodes.Call, Swap32); Op(OpCodes.Conv_U8); break;
            default: _il.Emit(OpCodes.Call, Swap64); break;
        }
        St(d);
    }

    private void EmitJump(int pc, BpfInsn insn)
    {
        var il = _il;
        int cls = insn.Class;
        int op = insn.Op;
        if (op == BPF_JA)
        {
            il.Emit(OpCodes.Br, Target(unchecked(pc + 1 + (cls == BPF_JMP ? insn.Off : insn.Imm))));
            return;
        }
        if (op == BPF_EXIT && cls == BPF_JMP)
        {
            if (_hasCalls)
            {
                Ld(_frame);
                il.Emit(OpCodes.Brtrue, _returnBlock);
            }
            EmitResult(BpfFault.None, pc, _r[0]);
            return;
        }
        if (op == BPF_CALL && cls == BPF_JMP)
        {
            if (insn.Source == BPF_K && insn.Src == BPF_PSEUDO_CALL) EmitLocalCall(pc, insn);
            else EmitHelperCall(pc, insn);
            return;
        }
        if (op > BPF_JSLE || op == BPF_CALL || op == BPF_EXIT)
        {
            EmitResult(BpfFault.BadInstruction, pc);
            return;
        }
        bool x = insn.Source == BPF_X;
        Ld(_r[insn.Dst]);
        if (cls == BPF_JMP)
        {
            if (x) Ld(_r[insn.Src]);
            else il.Emit(OpCodes.Ldc_I8, (long)insn.Imm);
        }
        else
        {
            Op(OpCodes.Conv_U4);
            if (x)
            {
                Ld(_r[insn.Src]);
                Op(OpCodes.Conv_U4);
            }
            else il.Emit(OpCodes.Ldc_I4, insn.Imm);
        }
        var target = Target(unchecked(pc + 1 + insn.Off));
        switch (op)
        {
            case BPF_JEQ: il.Emit(OpCodes.Beq, target); break;
            case BPF_JNE: il.Emit(OpCodes.Bne_Un, target); break;
            case BPF_JGT: il.Emit(OpCodes.Bgt_Un, target); break;
            case BPF_JGE: il.Emit(OpCodes.Bge_Un, target); break;
            case BPF_JLT: il.Emit(OpCodes.Blt_Un, target); break;
            case BPF_JLE: il.Emit(OpCodes.Ble_Un, target); break;
            case BPF_JSET: Op(OpCodes.And); il.Emit(OpCodes.Brtrue, target); break;
            case BPF_JSGT: il.Emit(OpCodes.Bgt, target); break;
            case BPF_JSGE: il.Emit(OpCodes.Bge, target); break;
            case BPF_JSLT: il.Emit(OpCodes.Blt, target); break;
            case BPF_JSLE: il.Emit(OpCodes.Ble, target); break;
        }
    }

    private void EmitLocalCall(int pc, BpfInsn insn)
    {
        var il = _il;
        var ok = il.DefineLabel();
        Ld(_frame);
        il.Emit(OpCodes.Ldc_I4, MaxCallFrames - 1);
        il.Emit(OpCodes.Blt, ok);
        EmitResult(BpfFault.CallDepth, pc);
        il.MarkLabel(ok);
        EmitSlot();
        for (int k = 0; k < 4; k++)
        {
            Ld(_slot);
            if (k > 0)
            {
                il.Emit(OpCodes.Ldc_I4, k * 8);
                Op(OpCodes.Add);
            }
            Ld(_r[6 + k]);
            Op(OpCodes.Stind_I8);
        }
        Ld(_slot);
        il.Emit(OpCodes.Ldc_I4, 32);
        Op(OpCodes.Add);
        il.Emit(OpCodes.Ldc_I4, _callSites.IndexOf(pc));
        Op(OpCodes.Stind_I4);
        Ld(_frame);
        Op(OpCodes.Ldc_I4_1);
        Op(OpCodes.Add);
        St(_frame);
        EmitFrameRegisters();
        if (_prog.ZeroStack) EmitClearFrame();
        il.Emit(OpCodes.Br, Target(unchecked(pc + 1 + insn.Imm)));
    }

    private void EmitHelperCall(int pc, BpfInsn insn)
    {
        var il = _il;
        var cont = il.DefineLabel();
        var inlined = il.DefineLabel(); // after an inlined helper: nothing to reload
        if (insn.Source == BPF_X)
        {
            // uBPF's callx: the helper id is in dst at run time.
            Op(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, TableField);
            Ld(_r[insn.Dst]);
            Call(nameof(BpfJitRuntime.Helper));
            St(_helper);
            var found = il.DefineLabel();
            Ld(_helper);
            il.Emit(OpCodes.Brtrue, found);
            EmitResult(BpfFault.UnknownHelper, pc);
            il.MarkLabel(found);
            Ld(_helper);
            il.Emit(OpCodes.Callvirt, HelperFnGetter);
            EmitHelperArgs();
            il.Emit(OpCodes.Callvirt, InvokeFn);
            St(_r[0]);
            Ld(_helper);
            il.Emit(OpCodes.Callvirt, HelperUnwindGetter);
            il.Emit(OpCodes.Brfalse, cont);
            Ld(_r[0]);
            il.Emit(OpCodes.Brtrue, cont);
            EmitResult(BpfFault.None, pc);
        }
        else
        {
            var h = _prog.Helpers?.Get(insn.Imm);
            if (h is null)
            {
                EmitResult(BpfFault.UnknownHelper, pc);
                return;
            }
            if (ReferenceEquals(h, Helpers.BpfMapHelpers.MapLookupElem) && ConstantMapArg(pc) is { } map)
            {
                EmitInlineLookup(map, inlined);
                // The helper itself when the inline path does not apply (another address space, the key elsewhere).
            }
            Op(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldfld, FnsField);
            il.Emit(OpCodes.Ldc_I4, _fns.Count);
            _fns.Add(h.Fn);
            il.Emit(OpCodes.Ldelem_Ref);
            EmitHelperArgs();
            il.Emit(OpCodes.Callvirt, InvokeFn);
            St(_r[0]);
            if (_anyMapElide && ReferenceEquals(h, Helpers.BpfMapHelpers.MapLookupElem)) EmitValueRegionForR0();
            if (h.UnwindOnZero)
            {
                Ld(_r[0]);
                il.Emit(OpCodes.Brtrue, cont);
                EmitResult(BpfFault.None, pc);
            }
            if (h.Id == Helpers.BpfMapHelpers.TailCallId)
            {
                // A taken tail call leaves the method with R1 (the context) for BpfJitProgram to start the target with,
                // rather than jumping between dynamic methods; only from the main frame, as the interpreter does.
                Op(OpCodes.Ldarg_1);
                Ld(_frame);
                il.Emit(OpCodes.Call, Rt(nameof(BpfJitRuntime.TakeTailCall)));
                il.Emit(OpCodes.Brfalse, cont);
                EmitResult(BpfFault.TailCall, pc, _r[1]);
            }
        }
        il.MarkLabel(cont);
        EmitReload();
        il.MarkLabel(inlined);
    }

    /// <summary>
    /// bpf_map_lookup_elem with the map known at compile time (the kernel's verifier rewrites such calls too: array
    /// maps through map_gen_lookup, the rest to a direct call of the map's lookup). When the run is in the program's
    /// own address space and R2 points into the current stack frame — what a verified program passes as a key,
    /// nearly always — R0 is computed here and the code continues at <paramref name="done"/>; otherwise it falls
    /// through to the helper. A map lookup moves no packet, so no bounds are reloaded.
    /// </summary>
    private void EmitInlineLookup(Maps.BpfMap map, Label done)
    {
        var il = _il;
        var helper = il.DefineLabel();
        var key = il.DefineLabel();
        if (!_anyMapElide)
        {
            // (With proven map-value accesses the entry already sent a run in another space to the tested compile.)
            Ld(_sameSpace);
            il.Emit(OpCodes.Brfalse, helper);
        }
        EmitFrameAccess(_r[2], map.KeySize, key);
        il.Emit(OpCodes.Br, helper);
        il.MarkLabel(key);
        Op(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Ldfld, MapsField);
        il.Emit(OpCodes.Ldc_I4, _maps.Count);
        _maps.Add(map);
        il.Emit(OpCodes.Ldelem_Ref);
        Ld(_p);
        // With proven value accesses in the program, the arrays hand their value storage to _valueFirst (what those
        // accesses read through); otherwise to the region cache, for the tested accesses that follow.
        switch (map)
        {
            case Maps.BpfArrayMap when _anyMapElide:
                Call(nameof(BpfJitRuntime.ArrayLookupIndex));
                St(_r[0]);
                Op(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, MapsField);
                il.Emit(OpCodes.Ldc_I4, _maps.Count - 1);
                il.Emit(OpCodes.Ldelem_Ref);
                Call(nameof(BpfJitRuntime.ArrayValues));
                St(_valueFirst);
                break;
            case Maps.BpfArrayMap:
                il.Emit(OpCodes.Ldloca, _cache);
                Call(nameof(BpfJitRuntime.ArrayLookup));
                St(_r[0]);
                break;
            case Maps.BpfPercpuArrayMap when _anyMapElide:
                Op(OpCodes.Ldarg_1);
                Call(nameof(BpfJitRuntime.Cpu));
                Call(nameof(BpfJitRuntime.PercpuArrayLookupIndex));
                St(_r[0]);
                Op(OpCodes.Ldarg_0);
                il.Emit(OpCodes.Ldfld, MapsField);
                il.Emit(OpCodes.Ldc_I4, _maps.Count - 1);
                il.Emit(OpCodes.Ldelem_Ref);
                Op(OpCodes.Ldarg_1);
                Call(nameof(BpfJitRuntime.Cpu));
                Call(nameof(BpfJitRuntime.PercpuArrayValues));
                St(_valueFirst);
                break;
            case Maps.BpfPercpuArrayMap:
                Op(OpCodes.Ldarg_1);
                Call(nameof(BpfJitRuntime.Cpu));
                il.Emit(OpCodes.Ldloca, _cache);
                Call(nameof(BpfJitRuntime.PercpuArrayLookup));
                St(_r[0]);
                break;
            default:
                Op(OpCodes.Ldarg_1);
                Call(nameof(BpfJitRuntime.Cpu));
                Call(nameof(BpfJitRuntime.MapLookup));
                St(_r[0]);
                if (_anyMapElide) EmitValueRegionForR0();
                break;
        }
        il.Emit(OpCodes.Br, done);
        il.MarkLabel(helper);
    }

    private void EmitHelperArgs()
    {
        Op(OpCodes.Ldarg_1);
        for (int k = 1; k <= 5; k++) Ld(_r[k]);
    }

    private void EmitLoad(int pc, BpfInsn insn)
    {
        if (insn.Mode != BPF_MEM && insn.Mode != BPF_MEMSX)
        {
            EmitResult(BpfFault.BadInstruction, pc);
            return;
        }
        int size = SizeBytes(insn.SizeField);
        EmitAddress(insn.Src, insn.Off, size, write: false, pc, ctxFirst: _usesCtx && size == 8 && insn.Mode == BPF_MEM);
        Ld(_p);
        EmitLoadFrom(size, signed: insn.Mode == BPF_MEMSX);
        St(_r[insn.Dst]);
    }

    /// <summary>Loads <paramref name="size"/> bytes from the byref on the stack, widened to 64 bits.</summary>
    private void EmitLoadFrom(int size, bool signed)
    {
        var il = _il;
        if (size > 1) il.Emit(OpCodes.Unaligned, (byte)1);
        switch (size)
        {
            case 1: Op(signed ? OpCodes.Ldind_I1 : OpCodes.Ldind_U1); break;
            case 2: Op(signed ? OpCodes.Ldind_I2 : OpCodes.Ldind_U2); break;
            case 4: Op(signed ? OpCodes.Ldind_I4 : OpCodes.Ldind_U4); break;
            default: Op(OpCodes.Ldind_I8); return;
        }
        Op(signed ? OpCodes.Conv_I8 : OpCodes.Conv_U8);
    }

    /// <summary>Stores the 64-bit value on the stack (below it the byref) as <paramref name="size"/> bytes.</summary>
    private void EmitStoreTo(int size)
    {
        if (size < 8) Op(OpCodes.Conv_U4);
        if (size > 1) _il.Emit(OpCodes.Unaligned, (byte)1);
        Op(size switch { 1 => OpCodes.Stind_I1, 2 => OpCodes.Stind_I2, 4 => OpCodes.Stind_I4, _ => OpCodes.Stind_I8 });
    }

    private void EmitStore(int pc, BpfInsn insn)
    {
        int size = SizeBytes(insn.SizeField);
        bool stx = insn.Class == BPF_STX;
        if (insn.Mode != BPF_MEM && !(insn.Mode == BPF_ATOMIC && stx))
        {
            EmitResult(BpfFault.BadInstruction, pc);
            return;
        }
        if (insn.Mode == BPF_ATOMIC)
        {
            EmitAtomic(pc, insn, size);
            return;
        }
        EmitAddress(insn.Dst, insn.Off, size, write: true, pc, ctxFirst: false);
        Ld(_p);
        if (stx) Ld(_r[insn.Src]);
        else _il.Emit(OpCodes.Ldc_I8, (long)insn.Imm);
        EmitStoreTo(size);
    }

    private void EmitAtomic(int pc, BpfInsn insn, int size)
    {
        var il = _il;
        int op = insn.Imm;
        if (op == 0x100)
        {
            // Load-acquire: a plain load, then a full barrier (the interpreter's ordering).
            EmitAddress(insn.Src, insn.Off, size, write: false, pc, ctxFirst: false);
            Ld(_p);
            EmitLoadFrom(size, signed: false);
            St(_r[insn.Dst]);
            il.Emit(OpCodes.Call, Barrier);
            return;
        }
        if (op == 0x110)
        {
            EmitAddress(insn.Dst, insn.Off, size, write: true, pc, ctxFirst: false);
            il.Emit(OpCodes.Call, Barrier);
            Ld(_p);
            Ld(_r[insn.Src]);
            EmitStoreTo(size);
            return;
        }
        if (size != 4 && size != 8)
        {
            EmitResult(BpfFault.BadInstruction, pc);
            return;
        }
        EmitAddress(insn.Dst, insn.Off, size, write: true, pc, ctxFirst: false);
        int rmw = op & ~BPF_FETCH;
        switch (rmw)
        {
            case BPF_ADD:
            case BPF_AND:
            case BPF_OR:
            case BPF_XOR:
            case BPF_XCHG & ~BPF_FETCH:
                Ld(_p);
                il.Emit(OpCodes.Ldc_I4, rmw);
                Ld(_r[insn.Src]);
                Call(size == 8 ? nameof(BpfJitRuntime.Atomic64) : nameof(BpfJitRuntime.Atomic32));
                if ((op & BPF_FETCH) != 0) St(_r[insn.Src]);
                else Op(OpCodes.Pop);
                break;
            case BPF_CMPXCHG & ~BPF_FETCH:
                Ld(_p);
                Ld(_r[insn.Src]);
                Ld(_r[0]);
                Call(size == 8 ? nameof(BpfJitRuntime.CmpXchg64) : nameof(BpfJitRuntime.CmpXchg32));
                St(_r[0]);
                break;
            default:
                EmitResult(BpfFault.BadInstruction, pc);
                break;
        }
    }

    /// <summary>
    /// Leaves in _p the bytes at R[<paramref name="baseReg"/>] + <paramref name="off"/>, or returns the
    /// interpreter's MemoryAccess fault for <paramref name="pc"/>.
    /// </summary>
    private void EmitAddress(int baseReg, short off, int size, bool write, int pc, bool ctxFirst)
    {
        var il = _il;
        if (baseReg == FramePointer && _r10Fixed && off >= -StackSize && off + size <= 0)
        {
            // R10 + constant inside the frame: proven here, so just the displacement.
            Ld(_frameBase);
            il.Emit(OpCodes.Ldc_I4, StackSize + off);
            Op(OpCodes.Add);
            St(_p);
            return;
        }
        if (_proven is { } proven && (uint)pc < (uint)proven.Length && proven[pc])
        {
            // The verifier proved this a packet access inside the range the program compared with data_end, on every
            // path (check_packet_access): no test, as in the kernel's JIT. Rebased on data_meta like the tested path.
            Ld(_pktFirst);
            Ld(_r[baseReg]);
            if (off != 0)
            {
                il.Emit(OpCodes.Ldc_I8, (long)off);
                Op(OpCodes.Add);
            }
            Ld(_pktLow);
            Op(OpCodes.Sub);
            Op(OpCodes.Conv_U);
            Op(OpCodes.Add);
            St(_p);
            ElidedChecks++;
            return;
        }
        if (_mapElide[pc])
        {
            // Proven inside a map value by the verifier, and the pointer came from the lookup that last set _valueFirst
            // (nothing in between can change it): the value's bytes without a test, at the address's offset in its
            // region (a region's base address has offset 0).
            Ld(_valueFirst);
            Ld(_r[baseReg]);
            if (off != 0)
            {
                il.Emit(OpCodes.Ldc_I8, (long)off);
                Op(OpCodes.Add);
            }
            Op(OpCodes.Conv_U4);
            Op(OpCodes.Conv_U);
            Op(OpCodes.Add);
            St(_p);
            ElidedChecks++;
            return;
        }
        var slow = il.DefineLabel();
        var resume = il.DefineLabel();
        bool mapFirst = GuessMapValue(pc, baseReg);
        if (mapFirst)
        {
            // The base came from a map lookup: the region cache first, the rest out of line.
            EmitAddr(baseReg, off);
            EmitCacheCheck(size, write, slow);
        }
        else if (ctxFirst)
        {
            EmitAddr(baseReg, off);
            EmitCtxCheck(resume);
            EmitPacketCheck(size, slow, branchOnHit: false);
        }
        else
        {
            // The packet test alone, the address kept on the IL stack (the slow path recomputes it).
            Ld(_r[baseReg]);
            if (off != 0)
            {
                il.Emit(OpCodes.Ldc_I8, (long)off);
                Op(OpCodes.Add);
            }
            EmitPacketCheck(size, slow, branchOnHit: false, addrOnStack: true);
        }
        il.MarkLabel(resume);
        _cold.Add((slow, resume, size, write, pc, mapFirst, ctxFirst, baseReg, off));
    }

    /// <summary>_addr = R[<paramref name="baseReg"/>] + <paramref name="off"/>.</summary>
    private void EmitAddr(int baseReg, short off)
    {
        Ld(_r[baseReg]);
        if (off != 0)
        {
            _il.Emit(OpCodes.Ldc_I8, (long)off);
            Op(OpCodes.Add);
        }
        St(_addr);
    }

    /// <summary>_p = the context bytes and a branch to <paramref name="hit"/> when _addr is an 8-byte field of the
    /// context table (the verifier's rewritten xdp_md loads); falls through otherwise.</summary>
    private void EmitCtxCheck(Label hit)
    {
        var il = _il;
        var notCtx = il.DefineLabel();
        Ld(_addr);
        il.Emit(OpCodes.Ldc_I8, (long)CtxLow);
        Op(OpCodes.Sub);
        Op(OpCodes.Dup);
        St(_t);
        Ld(_ctxLim);
        il.Emit(OpCodes.Bge_Un, notCtx);
        Ld(_ctxFirst);
        Ld(_t);
        Op(OpCodes.Conv_U);
        Op(OpCodes.Add);
        St(_p);
        il.Emit(OpCodes.Br, hit);
        il.MarkLabel(notCtx);
    }

    /// <summary>
    /// The packet test of _addr: rebased on data_meta and compared once, unsigned, with the size's limit. With
    /// <paramref name="branchOnHit"/> _p is set and the code branches to <paramref name="target"/> on a hit (falling
    /// through on a miss); otherwise it branches to <paramref name="target"/> on a miss and falls through with _p set.
    /// </summary>
    private void EmitPacketCheck(int size, Label target, bool branchOnHit, bool addrOnStack = false)
    {
        var il = _il;
        var miss = branchOnHit ? il.DefineLabel() : target;
        if (!addrOnStack) Ld(_addr);
        Ld(_pktLow);
        Op(OpCodes.Sub);
        Op(OpCodes.Dup);
        St(_t);
        Ld(_lim[size]!);
        il.Emit(OpCodes.Bge_Un, miss);
        Ld(_pktFirst);
        Ld(_t);
        Op(OpCodes.Conv_U);
        Op(OpCodes.Add);
        St(_p);
        if (branchOnHit)
        {
            il.Emit(OpCodes.Br, target);
            il.MarkLabel(miss);
        }
    }

    /// <summary>
    /// The region cache's test of _addr, in IL so the hit is the straight path: branches to <paramref name="miss"/>
    /// unless the access lies in the cached region (and it is writable, for a store); falls through with _p set.
    /// </summary>
    private void EmitCacheCheck(int size, bool write, Label miss)
    {
        var il = _il;
        Ld(_addr);
        il.Emit(OpCodes.Ldloca, _cache);
        il.Emit(OpCodes.Ldfld, CacheLow);
        Op(OpCodes.Sub);
        Op(OpCodes.Dup);
        St(_t);
        il.Emit(OpCodes.Ldloca, _cache);
        il.Emit(OpCodes.Ldfld, size switch { 1 => CacheLim1, 2 => CacheLim2, 4 => CacheLim4, _ => CacheLim8 });
        il.Emit(OpCodes.Bge_Un, miss);
        if (write)
        {
            il.Emit(OpCodes.Ldloca, _cache);
            il.Emit(OpCodes.Ldfld, CacheReadOnly);
            il.Emit(OpCodes.Brtrue, miss);
        }
        il.Emit(OpCodes.Ldloca, _cache);
        Call(nameof(BpfJitRuntime.CachedFirst));
        Ld(_t);
        Op(OpCodes.Conv_U);
        Op(OpCodes.Add);
        St(_p);
    }

    /// <summary>
    /// Whether R[<paramref name="baseReg"/>] at <paramref name="pc"/> most likely holds a map value: followed back in
    /// straight-line code (through moves and constant adds) to the R0 of bpf_map_lookup_elem. Only orders the checks.
    /// </summary>
    private bool GuessMapValue(int pc, int baseReg)
    {
        int reg = baseReg;
        for (int k = pc - 1, steps = 0; k >= 0 && steps < 64; k--, steps++)
        {
            var insn = _insns[k];
            int cls = insn.Class;
            if (cls is BPF_JMP or BPF_JMP32)
            {
                if (insn.Op == BPF_CALL)
                    return reg == 0 && insn.Source == BPF_K && insn.Src != BPF_PSEUDO_CALL && insn.Imm == Helpers.BpfMapHelpers.MapLookupElemId;
                if (insn.Op is BPF_EXIT or BPF_JA) return false;
                continue;
            }
            if (cls == BPF_ALU64 && insn.Dst == reg)
            {
                if (insn.Op == BPF_MOV && insn.Source == BPF_X && insn.Off == 0) { reg = insn.Src; continue; }
                if (insn.Op == BPF_ADD && insn.Source == BPF_K) continue;
                return false;
            }
            if (cls is BPF_ALU or BPF_LDX or BPF_LD && insn.Dst == reg) return false;
            if (cls == BPF_STX && insn.Mode == BPF_ATOMIC && (insn.Src == reg || (reg == 0 && (insn.Imm & ~BPF_FETCH) == (BPF_CMPXCHG & ~BPF_FETCH)))) return false;
        }
        return false;
    }
}
