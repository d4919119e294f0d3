// A flow table in an LRU hash smaller than the number of flows: each IPv4 5-tuple counts its frames and old flows
// are evicted as new ones come; a second, per-CPU LRU keeps bytes per source; a third, with BPF_F_NO_COMMON_LRU,
// counts frames per destination port.
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
    __uint(max_entries, 16);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 8);
} bytes_by_source SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __type(key, __u16);
    __type(value, __u64);
    __uint(max_entries, 12);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
} by_port SEC(".maps");

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
        __u16 port = bpf_ntohs(ports[1]);
        __u64 *p = bpf_map_lookup_elem(&by_port, &port);
        if (p)
            (*p)++;
        else {
            __u64 one = 1;
            bpf_map_update_elem(&by_port, &port, &one, BPF_NOEXIST);
        }
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
