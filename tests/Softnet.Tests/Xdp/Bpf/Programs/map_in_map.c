// Per-protocol tables in an array of maps: UDP frames count per source address in the table at slot 0, TCP frames
// in slot 1 (an empty slot lets them pass uncounted); a hash of maps keyed by VLAN-less EtherType holds a per-CPU
// counter array per EtherType user space registered.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct per_source {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 32);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct per_source);
} by_proto SEC(".maps");

struct counters {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 2);
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
    __uint(max_entries, 8);
    __type(key, __u16);
    __array(values, struct counters);
} by_ethertype SEC(".maps");

SEC("xdp")
int map_in_map(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    __u16 type = bpf_ntohs(eth->h_proto);
    void *ctr = bpf_map_lookup_elem(&by_ethertype, &type);
    if (ctr) {
        __u32 k = 0;
        __u64 *v = bpf_map_lookup_elem(ctr, &k);
        if (v)
            *v += 1;
        k = 1;
        v = bpf_map_lookup_elem(ctr, &k);
        if (v)
            *v += data_end - data;
    }
    if (type != ETH_P_IP)
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    __u32 slot = ip->protocol == IPPROTO_UDP ? 0 : ip->protocol == IPPROTO_TCP ? 1 : 2;
    void *table = bpf_map_lookup_elem(&by_proto, &slot);
    if (!table)
        return XDP_PASS;
    __u32 src = ip->saddr;
    __u64 *n = bpf_map_lookup_elem(table, &src);
    if (n)
        __sync_fetch_and_add(n, 1);
    else {
        __u64 one = 1;
        if (bpf_map_update_elem(table, &src, &one, BPF_NOEXIST))
            return XDP_DROP;
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
