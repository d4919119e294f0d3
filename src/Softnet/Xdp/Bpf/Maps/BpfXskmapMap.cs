using System.Buffers.Binary;
using static Softnet.Xdp.Bpf.Maps.BpfErrno;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_XSKMAP (net/xdp/xskmap.c): AF_XDP sockets by index, the targets of bpf_redirect_map to user space.
/// Softnet has no AF_XDP sockets, so a socket is represented by the queue id it is bound to, set with
/// <see cref="SetSocket"/>; a program's lookup returns a pointer to it (struct bpf_xdp_sock's queue_id, the one field a
/// program may read). A user-space update needs a socket fd (-EBADF here) and a user-space lookup is -EOPNOTSUPP, as
/// in the kernel.
/// </summary>
public sealed class BpfXskmapMap : BpfMap, IBpfRedirectMap
{
    private readonly byte[] _queueIds;
    private readonly bool[] _present;
    private ulong _base;

    public BpfXskmapMap(BpfMapSpec spec) : base(spec)
    {
        _queueIds = new byte[4L * spec.MaxEntries];
        _present = new bool[spec.MaxEntries];
    }

    public ulong RedirectFlagMask => 0;
    public bool HasTarget(uint key) => key < (uint)_present.Length && _present[key];

    /// <summary>Places a socket bound to <paramref name="queueId"/> at <paramref name="index"/>.</summary>
    public long SetSocket(uint index, uint queueId)
    {
        if (index >= (uint)MaxEntries) return -E2BIG;
        BinaryPrimitives.WriteUInt32LittleEndian(_queueIds.AsSpan((int)index * 4), queueId);
        _present[index] = true;
        return 0;
    }

    public override void Bind(BpfRegionTable space) => _base = space.Add(_queueIds, readOnly: true);

    public override ulong Lookup(ReadOnlySpan<byte> key, int cpu)
    {
        uint k = BpfMapUtil.U32(key);
        return HasTarget(k) ? _base + k * 4ul : 0;
    }

    public override long Update(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags, int cpu) => UserUpdate(key, value, flags);

    /// <summary>xsk_map_delete_elem: -EINVAL past the end, else 0.</summary>
    public override long Delete(ReadOnlySpan<byte> key)
    {
        uint k = BpfMapUtil.U32(key);
        if (k >= (uint)MaxEntries) return -EINVAL;
        _present[k] = false;
        return 0;
    }

    public override bool UserLookup(ReadOnlySpan<byte> key, Span<byte> value) => false;
    public override long UserLookupElem(ReadOnlySpan<byte> key, Span<byte> value) => -EOPNOTSUPP;

    public override long UserUpdate(ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, ulong flags)
    {
        if (flags > BpfMapFlags.Exist) return -EINVAL;
        if (BpfMapUtil.U32(key) >= (uint)MaxEntries) return -E2BIG;
        return -EBADF;
    }

    public override bool GetNextKey(ReadOnlySpan<byte> key, Span<byte> next) => BpfMapUtil.ArrayNextKey(MaxEntries, key, next);

    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Xskmap];

        /// <summary>xsk_map_alloc's checks.</summary>
        public override int Check(BpfMapSpec spec, int possibleCpus)
        {
            const uint mask = BpfMapFlags.NumaNode | BpfMapFlags.Rdonly | BpfMapFlags.Wronly;
            if (spec.MaxEntries == 0 || spec.KeySize != 4 || spec.ValueSize != 4 || (spec.Flags & ~mask) != 0) return -EINVAL;
            return 0;
        }

        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfXskmapMap(spec);
    }
}
