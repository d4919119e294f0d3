namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// What array-of-maps and hash-of-maps share (kernel/bpf/map_in_map.c): the inner map template check
/// (bpf_map_meta_equal) and the ids user space sees for inner maps. Inside Softnet an inner map is named by its handle
/// in the outer map's address space, and its user-visible id is its index there plus one (the kernel's map ids are
/// positive too).
/// </summary>
internal static class BpfInnerMaps
{
    /// <summary>bpf_map_meta_alloc's refusals of a template: none, or another map-in-map (-EINVAL).</summary>
    public static int CheckTemplate(BpfMapSpec spec)
    {
        if (spec.Inner is null) return -BpfErrno.EBADF; // no inner_map_fd
        if (spec.Inner.Type is BpfMapType.ArrayOfMaps or BpfMapType.HashOfMaps) return -BpfErrno.EINVAL;
        if (spec.Inner.Type is BpfMapType.ProgArray) return -BpfErrno.ENOTSUPP;
        return 0;
    }

    /// <summary>bpf_map_meta_equal (plus max_entries for arrays without BPF_F_INNER_MAP): may <paramref name="inner"/> go in?</summary>
    public static bool Fits(BpfMapSpec template, BpfMap inner)
    {
        var s = inner.Spec;
        if (s.Type != template.Type || s.KeySize != template.KeySize || s.ValueSize != template.ValueSize || s.Flags != template.Flags)
            return false;
        bool array = template.Type is BpfMapType.Array or BpfMapType.PercpuArray;
        return !array || (template.Flags & BpfMapFlags.InnerMap) != 0 || s.MaxEntries == template.MaxEntries;
    }

    /// <summary>The handle of <paramref name="inner"/> in <paramref name="space"/>, binding it there first if needed.</summary>
    public static ulong HandleOf(BpfRegionTable space, BpfMap inner)
    {
        for (int i = 0; i < space.Maps.Count; i++)
            if (ReferenceEquals(space.Maps[i], inner)) return BpfMemory.Address(BpfMemory.MapRegion, i);
        return space.AddMap(inner);
    }

    /// <summary>The handle user space's id names (id − 1 is the index), or 0.</summary>
    public static ulong HandleOfId(BpfRegionTable? space, uint id)
        => space != null && id >= 1 && id <= (uint)space.Maps.Count ? BpfMemory.Address(BpfMemory.MapRegion, (int)(id - 1)) : 0;

    public static uint IdOf(ulong handle) => (uint)handle + 1;
}
