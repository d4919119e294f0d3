// bpf_redirect_map through a devmap, a devmap_hash and a cpumap, with the flags the frame asks for: the destination
// MAC's fifth byte is the flags argument (fallback action in the low bits, BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS,
// or bits no map accepts), its sixth byte picks the map (bits 4-5) and the key (low bits). Verdicts are counted.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 8);
} tx_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 8);
} ports_by_key SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __type(key, __u32);
    __type(value, struct bpf_cpumap_val);
    __uint(max_entries, 4);
} cpus SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 8);
} verdicts SEC(".maps");

SEC("xdp")
int redirect_flags(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    __u64 flags = eth->h_dest[4];
    __u8 sel = eth->h_dest[5];
    long ret;
    if ((sel & 0x30) == 0)
        ret = bpf_redirect_map(&tx_ports, sel & 7, flags);
    else if ((sel & 0x30) == 0x10)
        ret = bpf_redirect_map(&ports_by_key, sel & 7, flags);
    else
        ret = bpf_redirect_map(&cpus, sel & 3, flags);
    __u32 k = ret & 7;
    __u64 *n = bpf_map_lookup_elem(&verdicts, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return ret;
}

char _license[] SEC("license") = "GPL";
