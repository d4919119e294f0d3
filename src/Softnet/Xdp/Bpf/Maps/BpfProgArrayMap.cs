using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_PROG_ARRAY: programs for bpf_tail_call. User space stores programs with <see cref="SetProgram"/> (the
/// kernel's update takes a program fd, which Softnet has none of, so a plain update is -EBADF); a user-space lookup
/// gives the program's id (<see cref="BpfProgramIds"/>). Programs cannot look up, update or delete through it.
/// </summary>
public sealed class BpfProgArrayMap(BpfMapSpec spec) : BpfMap(spec)
{
    private readonly BpfProgram?[] _progs = new BpfProgram?[spec.MaxEntries];

    public override void Bind(BpfRegionTable space) { }

    /// <summary>The program bpf_tail_call jumps to for <paramref name="index"/>, or null (the call falls through).</summary>
    public BpfProgram? ProgramAt(uint index) => index < (uint)_progs.Length ? _progs[index] : null;

    /// <summary>bpf_fd_array_map_update_elem: 0, -EINVAL for flags other than BPF_ANY, -E2BIG past the end.</summary>
    public long SetProgram(uint index, BpfProgram prog, ulong flags = 0)
    {
        ArgumentNullException.ThrowIfNull(prog);
        if (flags != BpfMapFlags.Any) return -EINVAL;
        if (index >= (uint)MaxEntries) return -E2BIG;
        _progs[index] = prog;
        return 0;
    }

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu) => 0;
    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => -EOPNOTSUPP;

    /// <summary>fd_array_map_delete_elem.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint index = BpfMapUtil.U32(key);
        if (index >= (uint)MaxEntries) return -E2BIG;
        if (_progs[index] is null) return -ENOENT;
        _progs[index] = null;
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        var p = ProgramAt(BpfMapUtil.U32(key));
        if (p is null) return false;
        BinaryPrimitives.WriteUInt32LittleEndian(value, BpfProgramIds.Of(p));
        return true;
    }

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags != BpfMapFlags.Any) return -EINVAL;
        if (BpfMapUtil.U32(key) >= (uint)MaxEntries) return -E2BIG;
        return -EBADF;
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.ProgArray];

        /// <summary>fd_array_map_alloc_check.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            if (spec.ValueSize != 4 || (spec.Flags & (BpfMapFlags.RdonlyProg | BpfMapFlags.WronlyProg)) != 0) return -EINVAL;
            return BpfArrayMap.CheckArray(spec, percpu: false);
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfProgArrayMap(spec);
    }
}
