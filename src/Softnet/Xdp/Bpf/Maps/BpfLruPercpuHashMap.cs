namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_LRU_PERCPU_HASH: the LRU hash with a value copy per possible CPU; an update of an existing key writes
/// in place (still taking and returning an element first, which may evict), and an update with BPF_EXIST takes no
/// element (htab_lru_percpu_map_update_elem). Evictions follow <see cref="BpfLru"/> as for <see cref="BpfLruHashMap"/>.
/// </summary>
public sealed class BpfLruPercpuHashMap(BpfMapSpec spec, int possibleCpus) : BpfHashMapBase(spec, possibleCpus, percpu: true, lru: true)
{
    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.LruPercpuHash];
        public override int Check(BpfMapSpec spec, int possibleCpus) => CheckHtab(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfLruPercpuHashMap(spec, possibleCpus);
    }
}
