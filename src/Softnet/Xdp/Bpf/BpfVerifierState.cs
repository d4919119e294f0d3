using static Softnet.Xdp.Bpf.BpfOp;

namespace Softnet.Xdp.Bpf;

/// <summary>The verifier's abstract state: register values, stack slots, call frames (bpf_verifier_state).</summary>
public static partial class BpfVerifier
{
    internal enum RegType : byte
    {
        NotInit, Scalar, PtrToCtx, PtrToStack, PtrToPacket, PtrToPacketMeta, PtrToPacketEnd, PtrToMem,
        /// <summary>CONST_PTR_TO_MAP: a map handle from ld_imm64 src_reg BPF_PSEUDO_MAP_FD; only helpers take it.</summary>
        ConstPtrToMap,
        /// <summary>PTR_TO_MAP_VALUE: into map <see cref="Reg.MapId"/>'s value, bounded by its value_size.</summary>
        PtrToMapValue,
        /// <summary>PTR_TO_MAP_VALUE | PTR_MAYBE_NULL: a lookup's result before its null check (copies share <see cref="Reg.Id"/>).</summary>
        PtrToMapValueOrNull,
        /// <summary>CONST_PTR_TO_MAP | PTR_MAYBE_NULL: a lookup in an array/hash of maps, the inner map or NULL.</summary>
        ConstPtrToMapOrNull,
    }

    /// <summary>
    /// A register's abstract value. Scalars: [UMin, UMax]. Pointers: a fixed offset <see cref="Off"/> plus a
    /// variable part in [UMin, UMax]; packet pointers carry the <see cref="Id"/> of their variable-offset lineage
    /// and the <see cref="Range"/> proven readable from that lineage's base; stack pointers name their frame.
    /// </summary>
    internal struct Reg : IEquatable<Reg>
    {
        public RegType Type;
        public int Off;
        public ulong UMin, UMax;
        public int Id, Range, Frame;
        /// <summary>
        /// For map pointers: the map's index in <see cref="BpfVerifierOptions.Maps"/>, or −1 − index for the inner map
        /// of that array/hash of maps (known only by its template, <see cref="Maps.BpfMapSpec.Inner"/>).
        /// </summary>
        public int MapId;

        public static Reg Unknown => new() { Type = RegType.Scalar, UMin = 0, UMax = ulong.MaxValue };
        public static Reg Const(ulong v) => new() { Type = RegType.Scalar, UMin = v, UMax = v };
        public static Reg Bounded(ulong max) => new() { Type = RegType.Scalar, UMin = 0, UMax = max };
        public static Reg Ptr(RegType t, int off = 0, int frame = 0) => new() { Type = t, Off = off, Frame = frame };

        public readonly bool IsScalar => Type == RegType.Scalar;
        public readonly bool IsConst => Type == RegType.Scalar && UMin == UMax;
        public readonly bool IsPtr => Type >= RegType.PtrToCtx;
        public readonly bool VarOffZero => UMin == 0 && UMax == 0;
        public readonly bool MaybeNull => Type is RegType.PtrToMapValueOrNull or RegType.ConstPtrToMapOrNull;

        public readonly bool Equals(Reg o) => Type == o.Type && Off == o.Off && UMin == o.UMin && UMax == o.UMax
            && Id == o.Id && Range == o.Range && Frame == o.Frame && MapId == o.MapId;
        public override readonly bool Equals(object? obj) => obj is Reg r && Equals(r);
        public override readonly int GetHashCode() => HashCode.Combine(Type, Off, UMin, UMax, Id, Range, Frame, MapId);

        public readonly string TypeName => Type switch
        {
            RegType.NotInit => "?",
            RegType.Scalar => "scalar",
            RegType.PtrToCtx => "ctx",
            RegType.PtrToStack => "fp",
            RegType.PtrToPacket => "pkt",
            RegType.PtrToPacketMeta => "pkt_meta",
            RegType.PtrToPacketEnd => "pkt_end",
            RegType.ConstPtrToMap => "map_ptr",
            RegType.PtrToMapValue => "map_value",
            RegType.PtrToMapValueOrNull => "map_value_or_null",
            RegType.ConstPtrToMapOrNull => "map_ptr_or_null",
            _ => "mem",
        };
    }

    private const ulong MaxPacketOff = 0xffff;

    private const byte StackInvalid = 0, StackMisc = 1, StackSpill = 2;

    private sealed class FrameState
    {
        public readonly Reg[] Regs = new Reg[MaxReg];
        public readonly byte[] Slots = new byte[StackSize];      // per byte: invalid / misc / part of a spill
        public readonly Reg[] Spills = new Reg[StackSize / 8];   // the register spilled in each 8-byte slot
        public int ReturnPc;
        /// <summary>The first instruction of the subprogram this frame runs.</summary>
        public int Subprog;

        public FrameState Clone()
        {
            var f = new FrameState { ReturnPc = ReturnPc, Subprog = Subprog };
            Regs.CopyTo(f.Regs, 0);
            Slots.CopyTo(f.Slots, 0);
            Spills.CopyTo(f.Spills, 0);
            return f;
        }
    }

    private sealed class PathNode(int pc, StateKey key, PathNode? parent)
    {
        public readonly int Pc = pc;
        public readonly StateKey Key = key;
        public readonly PathNode? Parent = parent;
    }

    private sealed class State
    {
        public List<FrameState> Frames = [];
        public int Pc;
        public int NextId;
        public PathNode? Path;

        public FrameState Cur => Frames[^1];
        public Reg[] Regs => Frames[^1].Regs;

        public State Clone()
        {
            var s = new State { Pc = Pc, NextId = NextId, Path = Path };
            foreach (var f in Frames) s.Frames.Add(f.Clone());
            return s;
        }
    }

    private readonly struct StateKey(byte[] bytes) : IEquatable<StateKey>
    {
        private readonly byte[] _bytes = bytes;
        private readonly int _hash = Hash(bytes);

        private static int Hash(byte[] b)
        {
            var h = new HashCode();
            h.AddBytes(b);
            return h.ToHashCode();
        }

        public bool Equals(StateKey o) => _hash == o._hash && _bytes.AsSpan().SequenceEqual(o._bytes);
        public override bool Equals(object? obj) => obj is StateKey k && Equals(k);
        public override int GetHashCode() => _hash;
    }

}
