// Drops TCP and UDP (over IPv4 or IPv6) to the destination ports user space puts in a hash map, counting the drops
// per port in the map's value; everything else passes.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u16);     // port, host order
    __type(value, __u64);   // frames dropped
    __uint(max_entries, 64);
} blocked_ports SEC(".maps");

SEC("xdp")
int port_filter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    void *l4;
    __u8 proto;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return XDP_PASS;
        if (ip->frag_off & bpf_htons(0x1fff))
            return XDP_PASS;   // no transport header in a later fragment
        proto = ip->protocol;
        l4 = (void *)ip + ip->ihl * 4;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        proto = ip6->nexthdr;
        l4 = ip6 + 1;
    } else
        return XDP_PASS;
    if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
        return XDP_PASS;
    // Source and destination ports lead both headers.
    __be16 *ports = l4;
    if ((void *)(ports + 2) > data_end)
        return XDP_PASS;
    __u16 dport = bpf_ntohs(ports[1]);
    __u64 *hits = bpf_map_lookup_elem(&blocked_ports, &dport);
    if (!hits)
        return XDP_PASS;
    __sync_fetch_and_add(hits, 1);
    return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
