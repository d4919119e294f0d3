// IPIP encapsulation toward a backend, as load balancers do it in XDP: IPv4 frames whose destination is a VIP in a
// hash map get an outer IPv4 header pushed in front (bpf_xdp_adjust_head with a negative delta), its checksum made
// with bpf_csum_diff over the new header, the Ethernet header rebuilt in front, and go back out with XDP_TX. A VLAN
// tag is pushed the same way for VIPs that ask for one.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct backend {
    __be32 addr;          // outer destination
    __be32 src;           // outer source
    __u8 dmac[6];         // next hop
    __u16 vlan;           // 0: untagged
    __u64 packets;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __be32);
    __type(value, struct backend);
    __uint(max_entries, 16);
} vips SEC(".maps");

static __always_inline __u16 fold(__s64 sum)
{
    __u64 s = (__u64)sum;
    s = (s & 0xffffffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)s;
}

SEC("xdp")
int ipip_encap(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *inner = (void *)(eth + 1);
    if ((void *)(inner + 1) > data_end)
        return XDP_PASS;
    __be32 vip = inner->daddr;
    struct backend *b = bpf_map_lookup_elem(&vips, &vip);
    if (!b)
        return XDP_PASS;
    __sync_fetch_and_add(&b->packets, 1);
    __u16 inner_len = bpf_ntohs(inner->tot_len);
    __u8 tos = inner->tos;
    unsigned char smac[ETH_ALEN];
    __builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
    int push = sizeof(struct iphdr) + (b->vlan ? 4 : 0);
    if (bpf_xdp_adjust_head(ctx, -push))
        return XDP_DROP;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    struct ethhdr *neth = data;
    if ((void *)(neth + 1) > data_end)
        return XDP_DROP;
    __builtin_memcpy(neth->h_dest, b->dmac, ETH_ALEN);
    __builtin_memcpy(neth->h_source, smac, ETH_ALEN);
    struct iphdr *outer = (void *)(neth + 1);
    if (b->vlan) {
        neth->h_proto = bpf_htons(ETH_P_8021Q);
        __be16 *tag = (void *)(neth + 1);
        if ((void *)(tag + 2) > data_end)
            return XDP_DROP;
        tag[0] = bpf_htons(b->vlan & 0x0fff);
        tag[1] = bpf_htons(ETH_P_IP);
        outer = (void *)(tag + 2);
    } else
        neth->h_proto = bpf_htons(ETH_P_IP);
    if ((void *)(outer + 1) > data_end)
        return XDP_DROP;
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = tos;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = bpf_htons(0x4000);
    outer->ttl = 64;
    outer->protocol = IPPROTO_IPIP;
    outer->check = 0;
    outer->saddr = b->src;
    outer->daddr = b->addr;
    __s64 sum = bpf_csum_diff(0, 0, (__be32 *)outer, sizeof(*outer), 0);
    outer->check = ~fold(sum);
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
