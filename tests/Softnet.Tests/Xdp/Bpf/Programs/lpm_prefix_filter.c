// Source-prefix filter: the longest IPv4 or IPv6 prefix user space put in an LPM trie that covers the source
// address decides (action 1 drops, 2 sends back with XDP_TX, anything else passes) and counts the hit in the entry.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct key4 { __u32 prefixlen; __u8 addr[4]; };
struct key6 { __u32 prefixlen; __u8 addr[16]; };
struct rule { __u32 action; __u32 pad; __u64 hits; };

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct key4);
    __type(value, struct rule);
    __uint(max_entries, 64);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} prefixes4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct key6);
    __type(value, struct rule);
    __uint(max_entries, 64);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} prefixes6 SEC(".maps");

static __always_inline int decide(struct rule *r)
{
    if (!r)
        return XDP_PASS;
    __sync_fetch_and_add(&r->hits, 1);
    return r->action == 1 ? XDP_DROP : r->action == 2 ? XDP_TX : XDP_PASS;
}

SEC("xdp")
int lpm_prefix_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return XDP_PASS;
        struct key4 k = { .prefixlen = 32 };
        __builtin_memcpy(k.addr, &ip->saddr, 4);
        return decide(bpf_map_lookup_elem(&prefixes4, &k));
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        struct key6 k = { .prefixlen = 128 };
        __builtin_memcpy(k.addr, &ip6->saddr, 16);
        return decide(bpf_map_lookup_elem(&prefixes6, &k));
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
