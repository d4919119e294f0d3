namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// A map bpf_redirect_map can target (the kernel's map_redirect op): devmap, devmap_hash, cpumap, xskmap. The helper
/// asks whether a key has a target and which BPF_F_* flags beyond the fallback action the map accepts.
/// </summary>
public interface IBpfRedirectMap
{
    /// <summary>The flag bits this map's redirect accepts besides the fallback action (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS for devmaps).</summary>
    ulong RedirectFlagMask { get; }

    /// <summary>The map's __*_lookup_elem for redirect: is there a target at <paramref name="key"/>?</summary>
    bool HasTarget(uint key);
}
