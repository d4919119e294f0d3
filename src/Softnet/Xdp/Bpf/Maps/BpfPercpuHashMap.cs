namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_TYPE_PERCPU_HASH: a hash whose value has a copy per possible CPU; a program reads and writes its CPU's
/// copy, an element it creates starts with the other copies zeroed, and user space sees every copy.
/// </summary>
public sealed class BpfPercpuHashMap(BpfMapSpec spec, int possibleCpus) : BpfHashMapBase(spec, possibleCpus, percpu: true, lru: false)
{
    private sealed class Kind : BpfMapKind
    {
        public override BpfMapType[] Types => [BpfMapType.PercpuHash];
        public override int Check(BpfMapSpec spec, int possibleCpus) => CheckHtab(spec);
        public override BpfMap Create(BpfMapSpec spec, int possibleCpus) => new BpfPercpuHashMap(spec, possibleCpus);
    }
}
