namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_HASH: key → value with max_entries preallocated elements (BPF_F_NO_PREALLOC gives the same answers,
/// only the kernel's memory use differs). get_next_key walks buckets in order with each chain newest first; the
/// bucket is the kernel's jhash with seed 0, so the order equals the kernel's for maps created with BPF_F_ZERO_SEED
/// (with a random seed the kernel's order is not reproducible).
/// </summary>
public sealed class BpfHashMap(BpfMapSpec spec) : BpfHashMapBase(spec, 1, percpu: false, lru: false)
{
    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.Hash];
        public override int Check(BpfMapSpec spec, int possibleCpus) => CheckHtab(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfHashMap(spec);
    }
}
