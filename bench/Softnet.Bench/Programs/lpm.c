// bench xdp: looks the IPv4 source address up in an LPM trie of blocked prefixes and drops the frame when one matches.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct v4_key { __u32 prefixlen; __u32 addr; };

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct v4_key);
    __type(value, __u32);
    __uint(max_entries, 1024);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} blocked SEC(".maps");

SEC("xdp")
int lpm(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    struct v4_key key = { .prefixlen = 32, .addr = ip->saddr };
    return bpf_map_lookup_elem(&blocked, &key) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
