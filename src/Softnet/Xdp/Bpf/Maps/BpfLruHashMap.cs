namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_LRU_HASH: a hash that, when all max_entries elements are in use, evicts the least recently used
/// (lookup from a program or an update marks an element used; a user-space lookup does not). Every update takes a free
/// element first, evicting if needed, even one that then fails with -EEXIST / -ENOENT or replaces a key, as
/// htab_lru_map_update_elem does.
/// Where the kernel differs: its bpf_lru is approximate — per-CPU local free lists filled in batches of up to 128
/// elements (or, with BPF_F_NO_COMMON_LRU, a separate list per CPU with max_entries / CPUs elements each), and an
/// active/inactive list with reference bits — so it can evict before the map is full and may pick a recently used
/// element; here the list is one exact LRU for the whole map, which never exceeds max_entries.
/// </summary>
public sealed class BpfLruHashMap(BpfMapSpec spec, int possibleCpus) : BpfHashMapBase(spec, possibleCpus, percpu: false, lru: true)
{
    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.LruHash];
        public override int Check(BpfMapSpec spec, int possibleCpus) => CheckHtab(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfLruHashMap(spec, possibleCpus);
    }
}
