namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_LRU_HASH: a hash that takes every new element from LRU lists kept as the kernel keeps them
/// (<see cref="BpfLru"/>, kernel/bpf/bpf_lru.c): when no element is free it evicts — in batches, from the tail of the
/// inactive list, sparing elements a program looked up since the last rotation — so which keys go, and when, are the
/// kernel's for the same operations on the same CPU. An update takes its element before looking at the key, so even a
/// failed or replacing update may evict (htab_lru_map_update_elem); a user-space lookup marks nothing.
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
