// Walks IPv6 extension headers (hop-by-hop, routing, destination options, fragment) in a real loop — a bounded
// back-edge, not unrolled — to the transport header, and counts frames by the header it ends on and by how many
// extension headers it crossed. Frames with more than six extension headers, or cut short, are dropped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 256);   // by final next-header value
} final_header SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 8);     // by extension headers crossed
} depth SEC(".maps");

static __always_inline void count(void *map, __u32 k)
{
    __u64 *v = bpf_map_lookup_elem(map, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int ipv6_ext_loop(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IPV6))
        return XDP_PASS;
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end)
        return XDP_DROP;
    __u8 nh = ip6->nexthdr;
    __u32 off = sizeof(*eth) + sizeof(*ip6);
    __u32 n;
#pragma nounroll
    for (n = 0; n < 6; n++) {
        if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
            break;
        if (off > 1500)
            return XDP_DROP;
        __u8 *ext = data + off;
        if ((void *)(ext + 2) > data_end)
            return XDP_DROP;
        __u8 next = ext[0];
        off += nh == 44 ? 8 : (ext[1] + 1) * 8;
        nh = next;
    }
    if (nh == 0 || nh == 43 || nh == 60 || nh == 44)
        return XDP_DROP;
    count(&final_header, nh);
    count(&depth, n);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
