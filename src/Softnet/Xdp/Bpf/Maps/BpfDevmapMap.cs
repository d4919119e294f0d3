using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_DEVMAP (kernel/bpf/devmap.c): an array of struct bpf_devmap_val — a u32 ifindex and, with an 8-byte
/// value, a program to run on the redirected frame (its id on lookup) — the targets of bpf_redirect_map. An entry
/// exists once set; ifindex 0 clears it; a program's lookup gets a read-only pointer to the entry's value. Which
/// ifindexes exist is <see cref="DeviceExists"/> (any nonzero by default); the kernel looks in the caller's netns.
/// </summary>
public sealed class BpfDevmapMap : BpfMap, IBpfRedirectMap
{
    private readonly byte[] _vals;
    private readonly bool[] _present;
    private readonly BpfProgram?[] _progs;
    private ulong _base;

    public BpfDevmapMap(BpfMapSpec spec) : base(spec)
    {
        _vals = new byte[8L * spec.MaxEntries];
        _present = new bool[spec.MaxEntries];
        _progs = new BpfProgram?[spec.MaxEntries];
    }

    /// <summary>Whether an ifindex names a device (dev_get_by_index); null accepts every nonzero ifindex.</summary>
    public Func<uint, bool>? DeviceExists { get; set; }

    public ulong RedirectFlagMask => BpfDevmapShared.BroadcastFlags;

    public bool HasTarget(uint key) => key < (uint)_present.Length && _present[key];

    /// <summary>The target at <paramref name="key"/>: its ifindex and devmap program, or false when empty.</summary>
    public bool TryGetTarget(uint key, out uint ifindex, out BpfProgram? prog)
    {
        ifindex = HasTarget(key) ? BinaryPrimitives.ReadUInt32LittleEndian(_vals.AsSpan((int)key * 8)) : 0;
        prog = ifindex != 0 ? _progs[key] : null;
        return ifindex != 0;
    }

    /// <summary>Sets entry <paramref name="index"/> as __dev_map_update_elem does, with a devmap program given directly.</summary>
    public long SetEntry(uint index, uint ifindex, BpfProgram? prog = null, ulong flags = 0)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        if (index >= (uint)MaxEntries) return -E2BIG;
        if (flags == BpfMapFlags.NoExist) return -EEXIST;
        if (ifindex == 0)
        {
            if (prog != null) return -EINVAL;
            Clear((int)index);
            return 0;
        }
        if (!(DeviceExists?.Invoke(ifindex) ?? true) || (prog != null && ValueSize < 8)) return -EINVAL;
        var v = _vals.AsSpan((int)index * 8, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(v, ifindex);
        BinaryPrimitives.WriteUInt32LittleEndian(v[4..], prog is null ? 0 : BpfProgramIds.Of(prog));
        _progs[index] = prog;
        _present[index] = true;
        return 0;
    }

    private void Clear(int index)
    {
        _present[index] = false;
        _progs[index] = null;
        _vals.AsSpan(index * 8, 8).Clear();
    }

    public override void Bind(BpfRegionTable space) => _base = space.Add(_vals, readOnly: true);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        uint k = BpfMapUtil.U32(key);
        return HasTarget(k) ? _base + k * 8ul : 0;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => UserUpdate(key, value, flags);

    /// <summary>dev_map_delete_elem: -EINVAL past the end, otherwise 0 whether or not the entry was set.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint k = BpfMapUtil.U32(key);
        if (k >= (uint)MaxEntries) return -EINVAL;
        Clear((int)k);
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value)
    {
        uint k = BpfMapUtil.U32(key);
        if (!HasTarget(k)) return false;
        _vals.AsSpan((int)k * 8, ValueSize).CopyTo(value);
        return true;
    }

    /// <summary>__dev_map_update_elem from user space: a program fd in the value cannot be resolved here (-EINVAL, as the kernel's failed lookup).</summary>
    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        uint k = BpfMapUtil.U32(key);
        if (k >= (uint)MaxEntries) return -E2BIG;
        if (flags == BpfMapFlags.NoExist) return -EEXIST;
        uint ifindex = BinaryPrimitives.ReadUInt32LittleEndian(value);
        int fd = ValueSize >= 8 ? BinaryPrimitives.ReadInt32LittleEndian(value[4..]) : 0;
        if (fd > 0) return -EINVAL;
        return SetEntry(k, ifindex, null, flags);
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Devmap];
        public override int Check(BpfMapSpec spec, int possibleCpus) => BpfDevmapShared.Check(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfDevmapMap(spec);
    }
}

internal static class BpfDevmapShared
{
    /// <summary>BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS.</summary>
    public const ulong BroadcastFlags = 8 | 16;

    /// <summary>dev_map_init_map: key 4, value 4 (ifindex) or 8 (ifindex + prog fd), DEV_CREATE_FLAG_MASK.</summary>
    public static int Check(BpfMapSpec spec)
    {
        const uint mask = BpfMapFlags.NumaNode | BpfMapFlags.Rdonly | BpfMapFlags.Wronly;
        if (spec.MaxEntries == 0 || spec.KeySize != 4 || (spec.ValueSize != 4 && spec.ValueSize != 8) || (spec.Flags & ~mask) != 0)
            return -EINVAL;
        if (spec.Type == BpfMapType.DevmapHash && (uint)spec.MaxEntries > 1u << 31) return -EINVAL;
        return 0;
    }
}
