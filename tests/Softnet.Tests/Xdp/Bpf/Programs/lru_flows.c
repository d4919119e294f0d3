// A flow table in an LRU hash: each IPv4 5-tuple counts its frames; a second, per-CPU LRU keeps bytes per source.
// Both are sized for the flows the comparison sends: the kernel's bpf_lru evicts in batches (a CPU's free list is
// refilled with up to 128 elements by shrinking the inactive list), which Softnet's exact LRU does not model.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow_key { __be32 saddr; __be32 daddr; __be16 sport; __be16 dport; __u8 proto; __u8 pad[3]; };

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, struct flow_key);
    __type(value, __u64);
    __uint(max_entries, 256);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 32);
} bytes_by_source SEC(".maps");

SEC("xdp")
int lru_flows(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl != 5)
        return XDP_PASS;
    struct flow_key k = { .saddr = ip->saddr, .daddr = ip->daddr, .proto = ip->protocol };
    if (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) {
        __be16 *ports = (void *)(ip + 1);
        if ((void *)(ports + 2) > data_end)
            return XDP_PASS;
        k.sport = ports[0];
        k.dport = ports[1];
    }
    __u64 *n = bpf_map_lookup_elem(&flows, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    else {
        __u64 one = 1;
        bpf_map_update_elem(&flows, &k, &one, BPF_ANY);
    }
    __u32 src = ip->saddr;
    __u64 *b = bpf_map_lookup_elem(&bytes_by_source, &src);
    if (b)
        *b += data_end - data;
    else {
        __u64 len = data_end - data;
        bpf_map_update_elem(&bytes_by_source, &src, &len, BPF_NOEXIST);
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
