using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>Pass 3, do_check: the path-by-path abstract interpretation over <see cref="BpfVerifier"/>'s state.</summary>
public static partial class BpfVerifier
{
    private sealed class Walker(BpfInsn[] insns, BpfInsn[] rewritten, BpfVerifierOptions options)
    {
        private readonly bool[] _prunePoint = PrunePoints(insns);
        private readonly byte[] _ctxLoad = new byte[insns.Length];
        private readonly Dictionary<(int Pc, StateKey Key), bool> _visited = [];
        private int _processed;

        private static bool[] PrunePoints(BpfInsn[] insns)
        {
            var p = new bool[insns.Length + 1];
            for (int i = 0; i < insns.Length; i++)
            {
                if (IsJump(insns[i], out int t, i))
                {
                    if (t >= 0 && t < p.Length) p[t] = true;
                    p[i + 1] = true;
                }
                if (IsPseudoCall(insns[i])) p[i + 1] = true;
            }
            return p;
        }

        public int Run()
        {
            var init = new State();
            var f = new FrameState();
            f.Regs[FramePointer] = Reg.Ptr(RegType.PtrToStack, 0, 0);
            switch (options.Context)
            {
                case BpfContextKind.Memory:
                    f.Regs[1] = Reg.Ptr(RegType.PtrToMem);
                    f.Regs[2] = Reg.Const((ulong)options.MemSize);
                    break;
                case BpfContextKind.Xdp:
                    f.Regs[1] = Reg.Ptr(RegType.PtrToCtx);
                    break;
            }
            init.Frames.Add(f);
            var work = new Stack<State>();
            work.Push(init);
            while (work.Count > 0)
            {
                var s = work.Pop();
                while (true)
                {
                    if (_prunePoint[s.Pc])
                    {
                        var key = KeyOf(s);
                        if (_visited.ContainsKey((s.Pc, key)))
                        {
                            for (var n = s.Path; n is not null; n = n.Parent)
                                if (n.Pc == s.Pc && n.Key.Equals(key)) throw Fail(s.Pc, $"infinite loop detected at insn {s.Pc}");
                            break; // explored before from an identical state: nothing new below
                        }
                        _visited[(s.Pc, key)] = true;
                        s.Path = new PathNode(s.Pc, key, s.Path);
                    }
                    if (++_processed > options.MaxProcessedInsns)
                        throw Fail(-1, $"BPF program is too large. Processed {_processed} insn");
                    var next = Step(s, work);
                    if (!next) break;
                }
            }
            CheckMaxStackDepth();
            return _processed;
        }

        // Stack bytes each subprogram uses (bpf_subprog_info.stack_depth) and which subprograms each calls.
        private readonly Dictionary<int, int> _stackDepth = [];
        private readonly HashSet<(int Caller, int Callee)> _calls = [];

        /// <summary>
        /// check_max_stack_depth: the frames of any chain of calls share MAX_BPF_STACK, each counted rounded up to
        /// 16 bytes as the x86-64 JIT lays them out (the kernel on this machine JITs).
        /// </summary>
        private void CheckMaxStackDepth()
        {
            int Depth(int subprog) => (_stackDepth.GetValueOrDefault(subprog) + 15) / 16 * 16;
            void Walk(int subprog, int frames, int total)
            {
                total += Depth(subprog);
                if (total > StackSize) throw Fail(-1, $"combined stack size of {frames} calls is {total}. Too large");
                foreach (var (caller, callee) in _calls)
                    if (caller == subprog) Walk(callee, frames + 1, total);
            }
            Walk(0, 1, 0);
        }

        private static StateKey KeyOf(State s)
        {
            using var ms = new MemoryStream();
            using var w = new BinaryWriter(ms);
            foreach (var f in s.Frames)
            {
                w.Write(f.ReturnPc);
                w.Write(f.Subprog);
                foreach (var r in f.Regs) WriteReg(w, r);
                w.Write(f.Slots);
                for (int i = 0; i < f.Spills.Length; i++)
                    if (f.Slots[i * 8] == StackSpill) WriteReg(w, f.Spills[i]);
            }
            return new StateKey(ms.ToArray());
        }

        private static void WriteReg(BinaryWriter w, Reg r)
        {
            w.Write((byte)r.Type);
            if (r.Type == RegType.NotInit) return;
            w.Write(r.Off); w.Write(r.UMin); w.Write(r.UMax); w.Write(r.Id); w.Write(r.Range); w.Write(r.Frame); w.Write(r.MapId);
        }

        private static void CheckRead(State s, int pc, int reg)
        {
            if (reg >= MaxReg) throw Fail(pc, $"R{reg} is invalid");
            if (s.Regs[reg].Type == RegType.NotInit) throw Fail(pc, $"R{reg} !read_ok");
        }

        private static void CheckWrite(int pc, int reg)
        {
            if (reg >= MaxReg) throw Fail(pc, $"R{reg} is invalid");
            if (reg == FramePointer) throw Fail(pc, "frame pointer is read only");
        }

        /// <summary>Executes one instruction abstractly. False when this path ends.</summary>
        private bool Step(State s, Stack<State> work)
        {
            int pc = s.Pc;
            var insn = insns[pc];
            var regs = s.Regs;
            switch (insn.Class)
            {
                case BPF_ALU:
                case BPF_ALU64:
                    Alu(s, pc, insn);
                    s.Pc++;
                    return true;
                case BPF_LD:
                {
                    CheckWrite(pc, insn.Dst);
                    ulong imm = (uint)insn.Imm | ((ulong)(uint)insns[pc + 1].Imm << 32);
                    if (insn.Src == BPF_PSEUDO_MAP_FD)
                        regs[insn.Dst] = new Reg { Type = RegType.ConstPtrToMap, MapId = (int)(uint)imm };
                    else if (insn.Src == BPF_PSEUDO_MAP_VALUE)
                    {
                        ResolveMapValue(options.Maps!, imm, out int mapId, out int off);
                        regs[insn.Dst] = new Reg { Type = RegType.PtrToMapValue, MapId = mapId, Off = off };
                    }
                    else regs[insn.Dst] = Reg.Const(imm);
                    s.Pc += 2;
                    return true;
                }
                case BPF_LDX:
                {
                    CheckRead(s, pc, insn.Src);
                    CheckWrite(pc, insn.Dst);
                    int size = SizeBytes(insn.SizeField);
                    bool ctx = regs[insn.Src].Type == RegType.PtrToCtx;
                    if (_ctxLoad[pc] != 0 && _ctxLoad[pc] != (ctx ? 1 : 2)) throw Fail(pc, "same insn cannot be used with different pointers");
                    _ctxLoad[pc] = (byte)(ctx ? 1 : 2);
                    var v = Access(s, pc, insn.Src, insn.Off, size, write: false, value: default, ctxRewrite: insn.Mode == BPF_MEM);
                    if (insn.Mode == BPF_MEMSX && v.IsScalar && !(v.IsConst && v.UMax < (1UL << (size * 8 - 1)))) v = Reg.Unknown;
                    regs[insn.Dst] = v;
                    s.Pc++;
                    return true;
                }
                case BPF_ST:
                case BPF_STX:
                {
                    int size = SizeBytes(insn.SizeField);
                    CheckRead(s, pc, insn.Dst);
                    if (insn.Class == BPF_STX) CheckRead(s, pc, insn.Src);
                    if (insn.Mode == BPF_ATOMIC)
                    {
                        Atomic(s, pc, insn, size);
                        s.Pc++;
                        return true;
                    }
                    var value = insn.Class == BPF_STX ? regs[insn.Src] : Reg.Const((ulong)(long)insn.Imm);
                    Access(s, pc, insn.Dst, insn.Off, size, write: true, value, ctxRewrite: false);
                    s.Pc++;
                    return true;
                }
                case BPF_JMP:
                case BPF_JMP32:
                    return Jump(s, pc, insn, work);
            }
            throw Fail(pc, $"unknown insn class {insn.Class}");
        }

        private void Atomic(State s, int pc, BpfInsn insn, int size)
        {
            var regs = s.Regs;
            if (insn.Imm == 0x100)
            {
                // load-acquire: dst = *(src + off)
                CheckWrite(pc, insn.Dst);
                regs[insn.Dst] = Access(s, pc, insn.Src, insn.Off, size, false, default, false);
                return;
            }
            if (insn.Imm == 0x110)
            {
                Access(s, pc, insn.Dst, insn.Off, size, true, regs[insn.Src], false);
                return;
            }
            if (insn.Imm == BPF_CMPXCHG) CheckRead(s, pc, 0);
            if (regs[insn.Src].IsPtr) throw Fail(pc, $"R{insn.Src} leaks addr into mem");
            var dstReg = regs[insn.Dst];
            if (dstReg.Type is RegType.PtrToCtx or RegType.PtrToPacket or RegType.PtrToPacketMeta or RegType.PtrToPacketEnd)
                throw Fail(pc, $"BPF_ATOMIC stores into R{insn.Dst} {dstReg.TypeName} is not allowed");
            // Read then write the location: both must be allowed; the memory becomes an unknown scalar.
            Access(s, pc, insn.Dst, insn.Off, size, false, default, false);
            Access(s, pc, insn.Dst, insn.Off, size, true, Reg.Unknown, false);
            var loaded = size == 4 ? Reg.Bounded(uint.MaxValue) : Reg.Unknown;
            if (insn.Imm == BPF_CMPXCHG) regs[0] = loaded;
            else if ((insn.Imm & BPF_FETCH) != 0)
            {
                CheckWrite(pc, insn.Src);
                regs[insn.Src] = loaded;
            }
        }

        // ---- memory ----

        private Reg Access(State s, int pc, int regno, short insnOff, int size, bool write, Reg value, bool ctxRewrite)
        {
            var reg = s.Regs[regno];
            _accessKinds[pc] |= reg.Type switch
            {
                RegType.PtrToPacket or RegType.PtrToPacketMeta => PacketAccess,
                RegType.PtrToMapValue => ValueAccess,
                _ => OtherAccess,
            };
            switch (reg.Type)
            {
                case RegType.PtrToStack:
                    return StackAccess(s, pc, regno, reg, insnOff, size, write, value);
                case RegType.PtrToMem:
                {
                    long lo = (long)reg.Off + insnOff + (long)reg.UMin;
                    long hi = (long)reg.Off + insnOff + (long)Math.Min(reg.UMax, int.MaxValue) + size;
                    if (reg.UMax > int.MaxValue || lo < 0 || hi > options.MemSize)
                        throw Fail(pc, $"invalid access to memory, mem_size={options.MemSize} off={reg.Off + insnOff} size={size}\nR{regno} min value is outside of the allowed memory range");
                    return Reg.Bounded(size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);
                }
                case RegType.PtrToPacket:
                case RegType.PtrToPacketMeta:
                {
                    // The fixed part against the lineage's proven range (the variable part is in the lineage).
                    int off = reg.Off + insnOff;
                    if (off < 0 || (long)off + size > reg.Range)
                        throw Fail(pc, $"invalid access to packet, off={off} size={size}, R{regno}(id={reg.Id},off={reg.Off},r={reg.Range})\nR{regno} offset is outside of the packet");
                    if (write && value.IsPtr) throw Fail(pc, $"R{regno} leaks addr into packet");
                    return Reg.Bounded(size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);
                }
                case RegType.PtrToCtx:
                    return CtxAccess(s, pc, regno, reg, insnOff, size, write, ctxRewrite);
                case RegType.PtrToMapValue:
                    return MapValueAccess(pc, regno, reg, insnOff, size, write);
                case RegType.PtrToPacketEnd:
                    throw Fail(pc, $"R{regno} invalid mem access 'pkt_end'");
                default:
                    throw Fail(pc, $"R{regno} invalid mem access '{reg.TypeName}'");
            }
        }

        private Maps.BpfMapSpec SpecOf(int mapId) => mapId >= 0
            ? options.Maps!.Maps[mapId].Spec
            : options.Maps!.Maps[-1 - mapId].Spec.Inner ?? throw new InvalidOperationException("map of maps without an inner template");

        /// <summary>
        /// check_map_access: the whole access, fixed and variable offset, inside value_size; no writes through a
        /// BPF_F_RDONLY_PROG map (.rodata), whose bytes are known, so a constant-offset read of one is a constant
        /// (the kernel reads frozen read-only maps the same way).
        /// </summary>
        private Reg MapValueAccess(int pc, int regno, Reg reg, short insnOff, int size, bool write)
        {
            var map = SpecOf(reg.MapId);
            CheckMapRange(pc, regno, reg, insnOff, size, map);
            if (write && map.ReadOnlyForProgram)
                throw Fail(pc, $"write into map forbidden, value_size={map.ValueSize} off={reg.Off + insnOff} size={size}");
            if (!write && map.ReadOnlyForProgram && reg.VarOffZero && size <= 8 && reg.MapId >= 0)
            {
                Span<byte> key = stackalloc byte[4];
                key.Clear();
                var frozen = options.Maps!.Maps[reg.MapId];
                var value = new byte[frozen.UserValueSize];
                if (frozen.UserLookup(key, value))
                {
                    ulong v = 0;
                    for (int k = size - 1; k >= 0; k--) v = (v << 8) | value[reg.Off + insnOff + k];
                    return Reg.Const(v);
                }
            }
            return Reg.Bounded(size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);
        }

        private static void CheckMapRange(int pc, int regno, Reg reg, long insnOff, long size, Maps.BpfMapSpec map)
        {
            long lo = reg.Off + insnOff + (long)Math.Min(reg.UMin, int.MaxValue);
            long hi = reg.Off + insnOff + (long)Math.Min(reg.UMax, int.MaxValue) + size;
            if (lo < 0 || reg.UMax > int.MaxValue || hi > map.ValueSize)
            {
                string msg = $"invalid access to map value, value_size={map.ValueSize} off={reg.Off + insnOff} size={size}";
                if (!reg.VarOffZero) msg += $"\nR{regno} {(lo < 0 ? "min" : "max")} value is outside of the allowed memory range";
                throw Fail(pc, msg);
            }
        }

        private Reg CtxAccess(State s, int pc, int regno, Reg reg, short insnOff, int size, bool write, bool rewrite)
        {
            _ = s;
            int off = reg.Off + insnOff;
            if (options.Context != BpfContextKind.Xdp)
                throw Fail(pc, $"invalid bpf_context access off={off} size={size}");
            if (reg.Off != 0 || !reg.VarOffZero) throw Fail(pc, $"dereference of modified ctx ptr R{regno} off={reg.Off} disallowed");
            // xdp_is_valid_access: aligned 4-byte reads of xdp_md only; egress_ifindex is for devmap programs.
            if (write || size != 4 || off < 0 || off % 4 != 0 || off >= XdpMd.Size || off == XdpMd.EgressIfindex || !rewrite)
                throw Fail(pc, $"invalid bpf_context access off={off} size={size}");
            // convert_ctx_accesses: the load becomes a 64-bit read of the run's context table, where the packet
            // pointers are full BPF addresses.
            rewritten[pc] = rewritten[pc] with { Code = (byte)(BPF_LDX | BPF_MEM | BPF_DW), Off = (short)(off / 4 * 8) };
            return off switch
            {
                XdpMd.Data => Reg.Ptr(RegType.PtrToPacket),
                XdpMd.DataEnd => Reg.Ptr(RegType.PtrToPacketEnd),
                XdpMd.DataMeta => Reg.Ptr(RegType.PtrToPacketMeta),
                _ => Reg.Bounded(uint.MaxValue),
            };
        }

        private Reg StackAccess(State s, int pc, int regno, Reg reg, short insnOff, int size, bool write, Reg value)
        {
            var frame = s.Frames[reg.Frame];
            long lo = (long)reg.Off + insnOff + (long)reg.UMin;
            long hi = (long)reg.Off + insnOff + (long)Math.Min(reg.UMax, int.MaxValue) + size;
            string what = write ? " write to" : " read from";
            if (reg.UMax > int.MaxValue || lo < -StackSize || hi > 0)
                throw Fail(pc, $"invalid{what} stack R{regno} off={reg.Off + insnOff} size={size}");
            int first = (int)(lo + StackSize), last = (int)(hi + StackSize); // [first, last)
            _stackDepth[frame.Subprog] = Math.Max(_stackDepth.GetValueOrDefault(frame.Subprog), StackSize - first);
            bool fixedOff = reg.VarOffZero;
            if (write)
            {
                // Any write over part of a spill turns the rest of that spill into plain data.
                for (int b = first & ~7; b < last; b += 8)
                    if (frame.Slots[b] == StackSpill)
                        for (int k = b; k < b + 8; k++) frame.Slots[k] = StackMisc;
                if (fixedOff && size == 8 && (first & 7) == 0 && value.Type != RegType.NotInit)
                {
                    for (int k = first; k < last; k++) frame.Slots[k] = StackSpill;
                    frame.Spills[first / 8] = value;
                }
                else
                {
                    if (value.IsPtr && fixedOff) throw Fail(pc, $"invalid size of register spill");
                    for (int k = first; k < last; k++) frame.Slots[k] = StackMisc;
                }
                return default;
            }
            if (fixedOff && size == 8 && (first & 7) == 0 && frame.Slots[first] == StackSpill)
                return frame.Spills[first / 8];
            for (int k = first; k < last; k++)
            {
                if (frame.Slots[k] == StackInvalid)
                {
                    if (!AllowUninitStack) throw Fail(pc, $"invalid read from stack off {reg.Off + insnOff}+{k - first} size {size}");
                    ReadsUninitStack = true;
                }
                if (frame.Slots[k] == StackSpill && frame.Spills[k / 8].IsPtr)
                    throw Fail(pc, "invalid size of register fill");
            }
            // A narrower read of a spilled constant gives that constant's bytes.
            if (fixedOff && frame.Slots[first] == StackSpill && frame.Spills[first / 8].IsConst && (first & 7) + size <= 8)
            {
                ulong c = frame.Spills[first / 8].UMin >> ((first & 7) * 8);
                return Reg.Const(size == 8 ? c : c & ((1UL << (size * 8)) - 1));
            }
            return Reg.Bounded(size == 8 ? ulong.MaxValue : (1UL << (size * 8)) - 1);
        }

        /// <summary>
        /// Reading stack bytes never written is allowed, as for a loader with CAP_PERFMON (allow_uninit_stack);
        /// a program that may do so gets its frames zeroed by the interpreter, so such reads are deterministic.
        /// </summary>
        private const bool AllowUninitStack = true;

        /// <summary>Some path may read a stack byte no path has written before it.</summary>
        public bool ReadsUninitStack { get; private set; }

        // What each load and store accessed on the paths walked: the JIT leaves out the bounds test of an access that
        // was a packet access on every path, proven inside the packet as the kernel's JIT relies on.
        private const byte PacketAccess = 1, OtherAccess = 2, ValueAccess = 4;
        private readonly byte[] _accessKinds = new byte[insns.Length];

        /// <summary>Instructions whose every walked access was to the packet (or data_meta area) within a proven range.</summary>
        public bool[] PacketOnlyAccesses() => _accessKinds.Select(k => k == PacketAccess).ToArray();

        /// <summary>Instructions whose every walked access was inside a map value (check_map_access).</summary>
        public bool[] MapValueOnlyAccesses() => _accessKinds.Select(k => k == ValueAccess).ToArray();

        // ---- ALU ----

        private static void Alu(State s, int pc, BpfInsn insn)
        {
            var regs = s.Regs;
            int op = insn.Op;
            bool is64 = insn.Class == BPF_ALU64;
            bool x = insn.Source == BPF_X;
            if (op != BPF_MOV) CheckRead(s, pc, insn.Dst);
            CheckWrite(pc, insn.Dst);
            var d = regs[insn.Dst];
            if (op == BPF_END || op == BPF_NEG)
            {
                // One operand (BPF_END's source bit only says which byte order).
                if (d.IsPtr) throw Fail(pc, $"R{insn.Dst} pointer arithmetic with {OpName(op)} operator prohibited");
                ulong r = is64 ? BpfAlu.Alu64(op, insn.Source, insn.Off, insn.Imm, d.UMin, 0) : BpfAlu.Alu32(op, insn.Source, insn.Off, insn.Imm, d.UMin, 0);
                regs[insn.Dst] = d.IsConst ? Reg.Const(r)
                    : op == BPF_END && insn.Imm < 64 ? Reg.Bounded((1UL << insn.Imm) - 1)
                    : is64 ? Reg.Unknown : Reg.Bounded(uint.MaxValue);
                return;
            }
            if (x) CheckRead(s, pc, insn.Src);
            var src = x ? regs[insn.Src] : Reg.Const(is64 ? (ulong)(long)insn.Imm : (uint)insn.Imm);

            if (op == BPF_MOV)
            {
                if (src.IsPtr)
                {
                    // A privileged loader may copy part of a pointer (allow_ptr_leaks): the result is just a number.
                    if (!is64 || insn.Off != 0)
                    {
                        regs[insn.Dst] = is64 ? Reg.Unknown : Reg.Bounded(uint.MaxValue);
                        return;
                    }
                    regs[insn.Dst] = src;
                    return;
                }
                if (src.IsConst) { regs[insn.Dst] = Reg.Const(is64 ? BpfAlu.Alu64(op, insn.Source, insn.Off, insn.Imm, 0, src.UMin) : BpfAlu.Alu32(op, insn.Source, insn.Off, insn.Imm, 0, src.UMin)); return; }
                if (insn.Off != 0) { regs[insn.Dst] = is64 ? Reg.Unknown : Reg.Bounded(uint.MaxValue); return; }
                regs[insn.Dst] = is64 ? src : (src.UMax <= uint.MaxValue ? src : Reg.Bounded(uint.MaxValue));
                return;
            }

            if (d.IsPtr || src.IsPtr)
            {
                regs[insn.Dst] = PointerArith(s, pc, insn, d, src, is64);
                return;
            }
            if (d.IsConst && src.IsConst)
            {
                regs[insn.Dst] = Reg.Const(is64
                    ? BpfAlu.Alu64(op, insn.Source, insn.Off, insn.Imm, d.UMin, src.UMin)
                    : BpfAlu.Alu32(op, insn.Source, insn.Off, insn.Imm, d.UMin, src.UMin));
                return;
            }
            regs[insn.Dst] = ScalarRange(op, insn.Off, is64, d, src);
        }

        /// <summary>The result range of a scalar operation with at least one unknown operand.</summary>
        private static Reg ScalarRange(int op, short off, bool is64, Reg d, Reg s)
        {
            ulong lim = is64 ? ulong.MaxValue : uint.MaxValue;
            if (!is64)
            {
                // Operands are their low 32 bits; a range wider than that is any 32-bit value.
                if (d.UMax > uint.MaxValue) d = Reg.Bounded(uint.MaxValue);
                if (s.UMax > uint.MaxValue) s = Reg.Bounded(uint.MaxValue);
            }
            ulong min = 0, max = lim;
            switch (op)
            {
                case BPF_ADD:
                    if (d.UMax <= lim - s.UMax) { min = d.UMin + s.UMin; max = d.UMax + s.UMax; }
                    break;
                case BPF_SUB:
                    if (d.UMin >= s.UMax) { min = d.UMin - s.UMax; max = d.UMax - s.UMin; }
                    break;
                case BPF_MUL:
                    if (d.UMax <= uint.MaxValue && s.UMax <= uint.MaxValue && d.UMax * s.UMax <= lim) { min = d.UMin * s.UMin; max = d.UMax * s.UMax; }
                    break;
                case BPF_DIV:
                    if (off == 0 && s.IsConst && s.UMin != 0) { min = d.UMin / s.UMin; max = d.UMax / s.UMin; }
                    else if (off == 0) max = d.UMax;
                    break;
                case BPF_MOD:
                    if (off == 0 && s.IsConst && s.UMin != 0) max = Math.Min(d.UMax, s.UMin - 1);
                    else if (off == 0) max = d.UMax;
                    break;
                case BPF_AND:
                    if (off == 0) max = Math.Min(d.UMax, s.UMax);
                    break;
                case BPF_OR:
                case BPF_XOR:
                    max = Math.Min(lim, NextPow2Mask(Math.Max(d.UMax, s.UMax)));
                    if (op == BPF_OR) min = Math.Max(d.UMin, s.UMin);
                    break;
                case BPF_LSH:
                    if (s.IsConst)
                    {
                        int k = (int)(s.UMin & (is64 ? 63u : 31u));
                        if (k == 0 || d.UMax <= (lim >> k)) { min = d.UMin << k; max = d.UMax << k; }
                    }
                    break;
                case BPF_RSH:
                    if (s.IsConst)
                    {
                        int k = (int)(s.UMin & (is64 ? 63u : 31u));
                        min = d.UMin >> k; max = d.UMax >> k;
                    }
                    else max = d.UMax;
                    break;
            }
            return new Reg { Type = RegType.Scalar, UMin = min, UMax = max };
        }

        private static ulong NextPow2Mask(ulong v)
        {
            if (v == 0) return 0;
            int bits = 64 - System.Numerics.BitOperations.LeadingZeroCount(v);
            return bits >= 64 ? ulong.MaxValue : (1UL << bits) - 1;
        }

        private static Reg PointerArith(State s, int pc, BpfInsn insn, Reg d, Reg src, bool is64)
        {
            int op = insn.Op;
            if (!is64) throw Fail(pc, $"R{insn.Dst} 32-bit pointer arithmetic prohibited");
            if (d.IsPtr && src.IsPtr)
            {
                if (op == BPF_SUB) return Reg.Unknown; // allow_ptr_leaks: any difference of pointers is a number
                throw Fail(pc, $"R{insn.Dst} pointer {OpName(op)} pointer prohibited");
            }
            if (op != BPF_ADD && op != BPF_SUB)
            {
                if (d.IsPtr) throw Fail(pc, $"R{insn.Dst} {(op is BPF_AND or BPF_OR or BPF_XOR ? "bitwise operator " + OpName(op) : "pointer arithmetic with " + OpName(op) + " operator")} on pointer prohibited");
                throw Fail(pc, $"R{insn.Dst} {OpName(op)} with pointer operand prohibited");
            }
            if (op == BPF_SUB && !d.IsPtr) throw Fail(pc, $"R{insn.Dst} tried to subtract pointer from scalar");
            var ptr = d.IsPtr ? d : src;
            var off = d.IsPtr ? src : d;
            if (ptr.Type == RegType.PtrToPacketEnd) throw Fail(pc, $"R{insn.Dst} pointer arithmetic on pkt_end prohibited");
            if (ptr.Type == RegType.ConstPtrToMap) throw Fail(pc, $"R{insn.Dst} pointer arithmetic on map_ptr prohibited");
            if (ptr.MaybeNull) throw Fail(pc, $"R{insn.Dst} pointer arithmetic on {ptr.TypeName} prohibited, null-check it first");
            if (off.IsConst)
            {
                long delta = op == BPF_ADD ? (long)off.UMin : -(long)off.UMin;
                long n = ptr.Off + delta;
                if (n < int.MinValue / 2 || n > int.MaxValue / 2) throw Fail(pc, $"value {delta} makes {ptr.TypeName} pointer be out of bounds");
                ptr.Off = (int)n;
                return ptr;
            }
            if (op == BPF_SUB) throw Fail(pc, $"R{insn.Dst} variable offset subtraction from pointer not supported");
            if (ptr.Type == RegType.PtrToCtx) throw Fail(pc, $"R{insn.Dst} variable ctx access prohibited");
            if (off.UMax > (1UL << 29) || ptr.UMax + off.UMax > (1UL << 29))
                throw Fail(pc, $"R{insn.Dst} unbounded memory access, make sure to bounds check any such access");
            ptr.UMin += off.UMin;
            ptr.UMax += off.UMax;
            if (ptr.Type is RegType.PtrToPacket or RegType.PtrToPacketMeta)
            {
                // A variable offset starts a new lineage with nothing proven yet (the kernel's new reg->id).
                // Ranges are relative to base + variable part, so this pointer's lineage has proven nothing yet.
                ptr.Id = ++s.NextId;
                ptr.Range = 0;
            }
            return ptr;
        }

        private static string OpName(int op) => op switch
        {
            BPF_ADD => "+=", BPF_SUB => "-=", BPF_MUL => "*=", BPF_DIV => "/=", BPF_OR => "|=", BPF_AND => "&=",
            BPF_LSH => "<<=", BPF_RSH => ">>=", BPF_NEG => "neg", BPF_MOD => "%=", BPF_XOR => "^=", BPF_ARSH => "s>>=",
            BPF_END => "endian", _ => "?",
        };

        // ---- jumps, calls, exit ----

        private bool Jump(State s, int pc, BpfInsn insn, Stack<State> work)
        {
            int op = insn.Op;
            var regs = s.Regs;
            if (op == BPF_JA)
            {
                s.Pc = pc + 1 + (insn.Class == BPF_JMP32 ? insn.Imm : insn.Off);
                return true;
            }
            if (op == BPF_EXIT) return Exit(s, pc);
            if (op == BPF_CALL) return Call(s, pc, insn);

            CheckRead(s, pc, insn.Dst);
            if (insn.Source == BPF_X) CheckRead(s, pc, insn.Src);
            var a = regs[insn.Dst];
            var b = insn.Source == BPF_X ? regs[insn.Src]
                : Reg.Const(insn.Class == BPF_JMP ? (ulong)(long)insn.Imm : (uint)insn.Imm);
            int target = pc + 1 + insn.Off;
            bool is32 = insn.Class == BPF_JMP32;

            int taken = BranchTaken(op, a, b, is32);
            if (taken == 1) { s.Pc = target; return true; }
            if (taken == 0) { s.Pc = pc + 1; return true; }

            var other = s.Clone();
            other.Pc = target;
            s.Pc = pc + 1;
            if (a.MaybeNull && !is32 && b.IsConst && b.UMin == 0 && op is BPF_JEQ or BPF_JNE)
            {
                // mark_ptr_or_null_regs: the side where it equals 0 holds NULL, the other a valid value pointer,
                // for every copy of the lookup's result.
                MarkPtrOrNull(op == BPF_JEQ ? other : s, a.Id, isNull: true);
                MarkPtrOrNull(op == BPF_JEQ ? s : other, a.Id, isNull: false);
            }
            else if (a.IsPtr || b.IsPtr)
            {
                if (!is32) PacketBranch(op, insn, other, s);
            }
            else if (!is32 || (a.UMax <= uint.MaxValue && b.UMax <= uint.MaxValue))
            {
                Refine(op, insn, other.Regs, takenBranch: true);
                Refine(op, insn, s.Regs, takenBranch: false);
            }
            work.Push(other);
            return true;
        }

        /// <summary>1 when the comparison is always true, 0 when always false, -1 when the ranges cannot tell.</summary>
        private static int BranchTaken(int op, Reg a, Reg b, bool is32)
        {
            // No pointer this verifier tracks can be NULL, so comparing one with 0 has a known outcome.
            if (!is32 && a.IsPtr && !a.MaybeNull && b.IsConst && b.UMin == 0 && op is BPF_JEQ or BPF_JNE) return op == BPF_JNE ? 1 : 0;
            if (!a.IsScalar || !b.IsScalar) return -1;
            if (a.IsConst && b.IsConst)
            {
                ulong x = a.UMin, y = b.UMin;
                if (is32) { x = (uint)x; y = (uint)y; }
                bool r = op switch
                {
                    BPF_JEQ => x == y,
                    BPF_JNE => x != y,
                    BPF_JGT => x > y,
                    BPF_JGE => x >= y,
                    BPF_JLT => x < y,
                    BPF_JLE => x <= y,
                    BPF_JSET => (x & y) != 0,
                    BPF_JSGT => is32 ? (int)x > (int)y : (long)x > (long)y,
                    BPF_JSGE => is32 ? (int)x >= (int)y : (long)x >= (long)y,
                    BPF_JSLT => is32 ? (int)x < (int)y : (long)x < (long)y,
                    BPF_JSLE => is32 ? (int)x <= (int)y : (long)x <= (long)y,
                    _ => false,
                };
                return r ? 1 : 0;
            }
            if (is32 && (a.UMax > uint.MaxValue || b.UMax > uint.MaxValue)) return -1;
            switch (op)
            {
                case BPF_JEQ: if (a.UMax < b.UMin || a.UMin > b.UMax) return 0; break;
                case BPF_JNE: if (a.UMax < b.UMin || a.UMin > b.UMax) return 1; break;
                case BPF_JGT: if (a.UMin > b.UMax) return 1; if (a.UMax <= b.UMin) return 0; break;
                case BPF_JGE: if (a.UMin >= b.UMax) return 1; if (a.UMax < b.UMin) return 0; break;
                case BPF_JLT: if (a.UMax < b.UMin) return 1; if (a.UMin >= b.UMax) return 0; break;
                case BPF_JLE: if (a.UMax <= b.UMin) return 1; if (a.UMin > b.UMax) return 0; break;
            }
            return -1;
        }

        /// <summary>Narrows the unsigned ranges of the compared registers for one side of a branch.</summary>
        private static void Refine(int op, BpfInsn insn, Reg[] regs, bool takenBranch)
        {
            ref Reg a = ref regs[insn.Dst];
            Reg bv = insn.Source == BPF_X ? regs[insn.Src] : Reg.Const(insn.Class == BPF_JMP ? (ulong)(long)insn.Imm : (uint)insn.Imm);
            // Express the outcome as "a OP b" holding.
            int rel = op;
            if (!takenBranch)
            {
                rel = op switch
                {
                    BPF_JEQ => BPF_JNE, BPF_JNE => BPF_JEQ, BPF_JGT => BPF_JLE, BPF_JGE => BPF_JLT,
                    BPF_JLT => BPF_JGE, BPF_JLE => BPF_JGT, _ => -1,
                };
            }
            Reg an = a, bn = bv;
            switch (rel)
            {
                case BPF_JEQ:
                    an.UMin = bn.UMin = Math.Max(a.UMin, bv.UMin);
                    an.UMax = bn.UMax = Math.Min(a.UMax, bv.UMax);
                    break;
                case BPF_JGT:
                    if (bv.UMin < ulong.MaxValue) an.UMin = Math.Max(a.UMin, bv.UMin + 1);
                    if (a.UMax > 0) bn.UMax = Math.Min(bv.UMax, a.UMax - 1);
                    break;
                case BPF_JGE:
                    an.UMin = Math.Max(a.UMin, bv.UMin);
                    bn.UMax = Math.Min(bv.UMax, a.UMax);
                    break;
                case BPF_JLT:
                    if (bv.UMax > 0) an.UMax = Math.Min(a.UMax, bv.UMax - 1);
                    if (a.UMin < ulong.MaxValue) bn.UMin = Math.Max(bv.UMin, a.UMin + 1);
                    break;
                case BPF_JLE:
                    an.UMax = Math.Min(a.UMax, bv.UMax);
                    bn.UMin = Math.Max(bv.UMin, a.UMin);
                    break;
                default:
                    return;
            }
            if (an.UMin <= an.UMax) a = an;
            if (insn.Source == BPF_X && bn.UMin <= bn.UMax) regs[insn.Src] = bn;
        }

        /// <summary>
        /// find_good_pkt_pointers (via try_match_pkt_pointers): comparing a packet pointer with data_end (or a
        /// metadata pointer with data) proves, on the side where it is not past the end, that every pointer of its
        /// lineage may read up to its offset — one byte more when that side knows it is strictly below the end.
        /// </summary>
        private static void PacketBranch(int op, BpfInsn insn, State taken, State fall)
        {
            if (insn.Source != BPF_X) return;
            var a = fall.Regs[insn.Dst];
            var b = fall.Regs[insn.Src];
            bool pktVsEnd = (a.Type == RegType.PtrToPacket && b.Type == RegType.PtrToPacketEnd)
                || (a.Type == RegType.PtrToPacketMeta && b.Type == RegType.PtrToPacket);
            bool endVsPkt = (a.Type == RegType.PtrToPacketEnd && b.Type == RegType.PtrToPacket)
                || (a.Type == RegType.PtrToPacket && b.Type == RegType.PtrToPacketMeta);
            Reg pkt;
            State? safe;
            bool open;
            if (pktVsEnd)
            {
                pkt = a;
                (safe, open) = op switch
                {
                    BPF_JGT => (fall, false), BPF_JLT => (taken, true), BPF_JGE => (fall, true), BPF_JLE => (taken, false),
                    _ => ((State?)null, false),
                };
            }
            else if (endVsPkt)
            {
                pkt = b;
                (safe, open) = op switch
                {
                    BPF_JGT => (taken, true), BPF_JLT => (fall, false), BPF_JGE => (taken, false), BPF_JLE => (fall, true),
                    _ => ((State?)null, false),
                };
            }
            else return;
            if (safe is null || pkt.Off < 0 || (pkt.Off == 0 && open)) return;
            // MAX_PACKET_OFF: beyond it ptr + off could wrap and still compare below data_end.
            if (pkt.UMax > MaxPacketOff || pkt.UMax + (ulong)pkt.Off > MaxPacketOff) return;
            int range = open ? pkt.Off + 1 : pkt.Off;
            foreach (var f in safe.Frames)
            {
                for (int r = 0; r < MaxReg; r++) Widen(ref f.Regs[r], pkt, range);
                for (int k = 0; k < f.Spills.Length; k++) if (f.Slots[k * 8] == StackSpill) Widen(ref f.Spills[k], pkt, range);
            }
        }

        private static void MarkPtrOrNull(State st, int id, bool isNull)
        {
            foreach (var f in st.Frames)
            {
                for (int r = 0; r < MaxReg; r++) Mark(ref f.Regs[r]);
                for (int k = 0; k < f.Spills.Length; k++) if (f.Slots[k * 8] == StackSpill) Mark(ref f.Spills[k]);
            }
            void Mark(ref Reg r)
            {
                if (!r.MaybeNull || r.Id != id) return;
                if (isNull) r = Reg.Const(0);
                else
                {
                    r.Type = r.Type == RegType.ConstPtrToMapOrNull ? RegType.ConstPtrToMap : RegType.PtrToMapValue;
                    r.Id = 0;
                }
            }
        }

        private static void Widen(ref Reg r, Reg pkt, int range)
        {
            if (r.Type == pkt.Type && r.Id == pkt.Id && r.Range < range) r.Range = range;
        }

        private bool Call(State s, int pc, BpfInsn insn)
        {
            var regs = s.Regs;
            if (insn.Source == BPF_K && insn.Src == BPF_PSEUDO_CALL)
            {
                if (s.Frames.Count >= MaxCallFrames) throw Fail(pc, $"the call stack of {s.Frames.Count + 1} frames is too deep !");
                var callee = new FrameState { ReturnPc = pc + 1, Subprog = pc + 1 + insn.Imm };
                _calls.Add((s.Cur.Subprog, callee.Subprog));
                for (int r = 1; r <= 5; r++) callee.Regs[r] = regs[r];
                callee.Regs[FramePointer] = Reg.Ptr(RegType.PtrToStack, 0, s.Frames.Count);
                s.Frames.Add(callee);
                s.Pc = pc + 1 + insn.Imm;
                return true;
            }
            if (insn.Src == BPF_PSEUDO_KFUNC_CALL) throw Fail(pc, "calling kernel function is not supported without BTF");
            BpfHelper? h;
            if (insn.Source == BPF_X)
            {
                CheckRead(s, pc, insn.Dst);
                var idReg = regs[insn.Dst];
                if (!idReg.IsConst) throw Fail(pc, $"R{insn.Dst} callx target is not a known helper id");
                h = options.Helpers?.Get((long)idReg.UMin);
                if (h is null) throw Fail(pc, $"invalid func unknown#{(long)idReg.UMin}");
            }
            else
            {
                h = options.Helpers?.Get(insn.Imm);
                if (h is null) throw Fail(pc, $"invalid func unknown#{insn.Imm}");
            }
            for (int r = 1; r <= h.ArgCount; r++) CheckRead(s, pc, r);
            int? metaMap = CheckHelperArgs(s, pc, h);
            if (h.ChangesPacketData) ClearPacketPointers(s);
            for (int r = 1; r <= 5; r++) regs[r] = default;
            regs[0] = h.Ret switch
            {
                BpfRet.Void => default,
                // A lookup in an array/hash of maps gives the inner map (typed by the outer map's template) or NULL.
                BpfRet.PtrToMapValueOrNull when metaMap is int m && m >= 0 && SpecOf(m).Type is Maps.BpfMapType.ArrayOfMaps or Maps.BpfMapType.HashOfMaps
                    => new Reg { Type = RegType.ConstPtrToMapOrNull, MapId = -1 - m, Id = ++s.NextId },
                BpfRet.PtrToMapValueOrNull when metaMap is int m => new Reg { Type = RegType.PtrToMapValueOrNull, MapId = m, Id = ++s.NextId },
                BpfRet.PtrToMapValueOrNull => throw Fail(pc, $"kernel subsystem misconfigured verifier: {h.Name} returns a map value but takes no map"),
                _ => Reg.Unknown,
            };
            s.Pc = pc + 1;
            return true;
        }

        /// <summary>
        /// check_func_arg for each argument: the kind of register each BpfArg wants; keys and values as memory of
        /// the map's key_size / value_size (readable and, on the stack, written before); memory with its size in the
        /// next argument. Returns the map argument's id (meta->map_ptr), or null.
        /// </summary>
        private int? CheckHelperArgs(State s, int pc, BpfHelper h)
        {
            var regs = s.Regs;
            int? meta = null;
            for (int i = 0; i < h.Args.Length; i++)
            {
                int r = i + 1;
                var reg = regs[r];
                switch (h.Args[i])
                {
                    case BpfArg.Anything:
                        break;
                    case BpfArg.ConstMapPtr:
                        if (reg.Type != RegType.ConstPtrToMap) throw Fail(pc, $"R{r} type={reg.TypeName} expected=map_ptr");
                        meta = reg.MapId;
                        break;
                    case BpfArg.PtrToMapKey:
                    case BpfArg.PtrToMapValue:
                    {
                        bool key = h.Args[i] == BpfArg.PtrToMapKey;
                        if (meta is not int m) throw Fail(pc, key ? "invalid map_ptr to access map->key" : "invalid map_ptr to access map->value");
                        var map = SpecOf(m);
                        CheckHelperMem(s, pc, r, key ? map.KeySize : map.ValueSize, write: false);
                        break;
                    }
                    case BpfArg.PtrToCtx:
                        if (reg.Type != RegType.PtrToCtx) throw Fail(pc, $"R{r} type={reg.TypeName} expected=ctx");
                        if (reg.Off != 0 || !reg.VarOffZero) throw Fail(pc, $"dereference of modified ctx ptr R{r} off={reg.Off} disallowed");
                        break;
                    case BpfArg.PtrToReadableMem:
                    case BpfArg.PtrToWritableMem:
                    case BpfArg.PtrToReadableMemOrNull:
                    {
                        if (i + 1 >= h.Args.Length || h.Args[i + 1] is not (BpfArg.ConstSize or BpfArg.ConstSizeOrZero))
                            throw Fail(pc, $"kernel subsystem misconfigured verifier: {h.Name} arg{r} has no size argument");
                        var size = regs[r + 1];
                        bool zeroOk = h.Args[i + 1] == BpfArg.ConstSizeOrZero;
                        if (!size.IsScalar) throw Fail(pc, $"R{r + 1} type={size.TypeName} expected=scalar");
                        if (!zeroOk && size.UMin == 0 && size.UMax == 0) throw Fail(pc, $"invalid zero-sized read");
                        if (size.UMax >= 1UL << 29)
                            throw Fail(pc, $"R{r + 1} unbounded memory access, use 'var &= const' or 'if (var < const)'");
                        if (h.Args[i] == BpfArg.PtrToReadableMemOrNull && reg.IsConst && reg.UMin == 0) break;
                        if (size.UMax == 0 && reg.IsScalar && reg.IsConst && reg.UMin == 0) break;
                        if (size.UMax > 0) CheckHelperMem(s, pc, r, (int)size.UMax, write: h.Args[i] == BpfArg.PtrToWritableMem);
                        break;
                    }
                    case BpfArg.ConstSize:
                    case BpfArg.ConstSizeOrZero:
                        if (!reg.IsScalar) throw Fail(pc, $"R{r} type={reg.TypeName} expected=scalar");
                        break;
                }
            }
            return meta;
        }

        /// <summary>check_helper_mem_access: <paramref name="size"/> bytes at register <paramref name="r"/>.</summary>
        private void CheckHelperMem(State s, int pc, int r, int size, bool write)
        {
            var reg = s.Regs[r];
            switch (reg.Type)
            {
                case RegType.PtrToStack:
                {
                    var frame = s.Frames[reg.Frame];
                    long lo = reg.Off + (long)Math.Min(reg.UMin, int.MaxValue);
                    long hi = reg.Off + (long)Math.Min(reg.UMax, int.MaxValue) + size;
                    if (reg.UMax > int.MaxValue || lo < -StackSize || hi > 0)
                        throw Fail(pc, $"invalid indirect access to stack R{r} off={reg.Off} size={size}");
                    int first = (int)(lo + StackSize), last = (int)(hi + StackSize);
                    _stackDepth[frame.Subprog] = Math.Max(_stackDepth.GetValueOrDefault(frame.Subprog), StackSize - first);
                    if (write)
                    {
                        // The helper fills the bytes: spills there are gone, the bytes are data.
                        for (int b = first & ~7; b < last; b += 8)
                            if (frame.Slots[b] == StackSpill)
                                for (int k = b; k < b + 8; k++) frame.Slots[k] = StackMisc;
                        if (reg.VarOffZero) for (int k = first; k < last; k++) frame.Slots[k] = StackMisc;
                        return;
                    }
                    for (int k = first; k < last; k++)
                    {
                        if (frame.Slots[k] != StackInvalid) continue;
                        if (!AllowUninitStack) throw Fail(pc, $"invalid indirect read from stack R{r} off {reg.Off}+{k - first} size {size}");
                        ReadsUninitStack = true;
                    }
                    return;
                }
                case RegType.PtrToPacket:
                case RegType.PtrToPacketMeta:
                    if (reg.Off < 0 || (long)reg.Off + size > reg.Range)
                        throw Fail(pc, $"invalid access to packet, off={reg.Off} size={size}, R{r}(id={reg.Id},off={reg.Off},r={reg.Range})\nR{r} offset is outside of the packet");
                    return;
                case RegType.PtrToMapValue:
                {
                    var map = SpecOf(reg.MapId);
                    CheckMapRange(pc, r, reg, 0, size, map);
                    if (write && map.ReadOnlyForProgram)
                        throw Fail(pc, $"write into map forbidden, value_size={map.ValueSize} off={reg.Off} size={size}");
                    return;
                }
                case RegType.PtrToMem:
                {
                    long lo = reg.Off + (long)Math.Min(reg.UMin, int.MaxValue);
                    long hi = reg.Off + (long)Math.Min(reg.UMax, int.MaxValue) + size;
                    if (lo < 0 || hi > options.MemSize)
                        throw Fail(pc, $"invalid access to memory, mem_size={options.MemSize} off={reg.Off} size={size}");
                    return;
                }
                default:
                    throw Fail(pc, $"R{r} type={reg.TypeName} expected=fp, pkt, pkt_meta, map_value, mem");
            }
        }

        /// <summary>clear_all_pkt_pointers: after a helper that may move packet data, no packet pointer is valid.</summary>
        private static void ClearPacketPointers(State s)
        {
            foreach (var f in s.Frames)
            {
                for (int r = 0; r < MaxReg; r++) Clear(ref f.Regs[r]);
                for (int k = 0; k < f.Spills.Length; k++) if (f.Slots[k * 8] == StackSpill) Clear(ref f.Spills[k]);
            }
            static void Clear(ref Reg r)
            {
                if (r.Type is RegType.PtrToPacket or RegType.PtrToPacketMeta or RegType.PtrToPacketEnd) r = Reg.Unknown;
            }
        }

        private static bool Exit(State s, int pc)
        {
            CheckRead(s, pc, 0);
            if (s.Frames.Count == 1) return false;
            var r0 = s.Regs[0];
            int callee = s.Frames.Count - 1;
            // check_return_code for a subprogram: only a scalar may go back to the caller.
            if (!r0.IsScalar) throw Fail(pc, $"At subprogram exit the register R0 is not a scalar value ({r0.TypeName})");
            int ret = s.Cur.ReturnPc;
            s.Frames.RemoveAt(callee);
            var regs = s.Regs;
            regs[0] = r0;
            for (int r = 1; r <= 5; r++) regs[r] = default;
            s.Pc = ret;
            return true;
        }
    }
}
