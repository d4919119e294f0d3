// Destination NAT for IPv4 TCP/UDP: a hash map gives the new address and port for (daddr, dport); the IPv4 header
// checksum and the transport checksum are updated with bpf_csum_diff over the words that changed (a UDP checksum of
// 0, none, stays 0), and the TTL is decremented with the same incremental update.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct nat_key { __be32 daddr; __be16 dport; __u8 proto; __u8 pad; };
struct nat_to { __be32 daddr; __be16 dport; __u16 pad; __u64 hits; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, struct nat_key);
    __type(value, struct nat_to);
    __uint(max_entries, 16);
} nat SEC(".maps");

static __always_inline __u16 fold(__s64 sum)
{
    __u64 s = (__u64)sum;
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)s;
}

SEC("xdp")
int csum_rewrite(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || ip->ihl != 5)
        return XDP_PASS;
    if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
        return XDP_PASS;
    if (ip->frag_off & bpf_htons(0x3fff))
        return XDP_PASS;
    __be16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > data_end)
        return XDP_PASS;
    struct nat_key k = { .daddr = ip->daddr, .dport = ports[1], .proto = ip->protocol };
    struct nat_to *to = bpf_map_lookup_elem(&nat, &k);
    if (!to)
        return XDP_PASS;
    if (ip->ttl <= 1)
        return XDP_DROP;
    __sync_fetch_and_add(&to->hits, 1);

    // Old and new 32-bit words: the destination address, then the ports word, then the TTL/protocol word.
    __be32 from[2], dst[2];
    from[0] = ip->daddr;
    dst[0] = to->daddr;
    __be32 portword_old = *(__be32 *)ports;
    __be16 newports[2] = { ports[0], to->dport };
    from[1] = portword_old;
    dst[1] = *(__be32 *)newports;

    __be32 ttl_old = *(__be32 *)&ip->ttl;   // ttl, protocol, check: only the first half-word matters
    ip->ttl--;
    __be32 ttl_new = *(__be32 *)&ip->ttl;
    // The checksum field is in this word too: compare with it left as it was.
    ((__u16 *)&ttl_new)[1] = ((__u16 *)&ttl_old)[1];

    __s64 d = bpf_csum_diff(&from[0], 4, &dst[0], 4, ~((__u32)ip->check) & 0xffff);
    d = bpf_csum_diff(&ttl_old, 4, &ttl_new, 4, d);
    ip->check = ~fold(d);
    ip->daddr = to->daddr;

    __u16 *l4check;
    if (ip->protocol == IPPROTO_TCP) {
        struct tcphdr *t = (void *)ports;
        if ((void *)(t + 1) > data_end)
            return XDP_ABORTED;
        l4check = &t->check;
    } else {
        struct udphdr *u = (void *)ports;
        if ((void *)(u + 1) > data_end)
            return XDP_ABORTED;
        l4check = &u->check;
    }
    if (ip->protocol == IPPROTO_TCP || *l4check != 0) {
        __s64 d4 = bpf_csum_diff(from, 8, dst, 8, ~((__u32)*l4check) & 0xffff);
        __u16 c = ~fold(d4);
        if (ip->protocol == IPPROTO_UDP && c == 0)
            c = 0xffff;
        *l4check = c;
    }
    ports[1] = to->dport;
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
