// A router in XDP (as the kernel's samples/bpf/xdp_fwd): bpf_fib_lookup on the ingress device's namespace for IPv4
// and IPv6; on success the TTL / hop limit goes down, the MACs come from the lookup and the frame is redirected to
// the egress device; otherwise it passes to the stack. The lookup's answer is kept per return code. One program per
// set of lookup flags: none, BPF_FIB_LOOKUP_OUTPUT, BPF_FIB_LOOKUP_DIRECT, BPF_FIB_LOOKUP_SKIP_NEIGH.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct answer {
    __u64 count;
    __u32 ifindex;
    __u16 mtu;
    __u8 smac[6];
    __u8 dmac[6];
    __u16 pad;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct answer);
    __uint(max_entries, 16);   // by BPF_FIB_LKUP_RET_*
} answers SEC(".maps");

static __always_inline void note(int rc, struct bpf_fib_lookup *p)
{
    __u32 k = rc & 15;
    struct answer *a = bpf_map_lookup_elem(&answers, &k);
    if (!a)
        return;
    a->count++;
    a->ifindex = p->ifindex;
    a->mtu = p->mtu_result;
    __builtin_memcpy(a->smac, p->smac, 6);
    __builtin_memcpy(a->dmac, p->dmac, 6);
}

static __always_inline int forward(struct xdp_md *ctx, __u32 flags)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    struct bpf_fib_lookup p;
    __builtin_memset(&p, 0, sizeof(p));
    struct iphdr *ip = 0;
    struct ipv6hdr *ip6 = 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return XDP_DROP;
        if (ip->ttl <= 1)
            return XDP_PASS;
        p.family = AF_INET;
        p.tos = ip->tos;
        p.l4_protocol = ip->protocol;
        p.tot_len = bpf_ntohs(ip->tot_len);
        p.ipv4_src = ip->saddr;
        p.ipv4_dst = ip->daddr;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return XDP_DROP;
        if (ip6->hop_limit <= 1)
            return XDP_PASS;
        p.family = AF_INET6;
        p.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
        p.l4_protocol = ip6->nexthdr;
        p.tot_len = bpf_ntohs(ip6->payload_len);
        __builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
        __builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
    } else
        return XDP_PASS;
    p.ifindex = ctx->ingress_ifindex;
    int rc = bpf_fib_lookup(ctx, &p, sizeof(p), flags);
    note(rc, &p);
    if (rc != BPF_FIB_LKUP_RET_SUCCESS)
        return XDP_PASS;
    if (ip) {
        __u32 check = ip->check;
        check += bpf_htons(0x0100);
        ip->check = (__u16)(check + (check >= 0xffff));
        ip->ttl--;
    } else if (ip6)
        ip6->hop_limit--;
    __builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
    return bpf_redirect(p.ifindex, 0);
}

SEC("xdp")
int fib_forward(struct xdp_md *ctx)
{
    return forward(ctx, 0);
}

SEC("xdp/output")
int fib_output(struct xdp_md *ctx)
{
    return forward(ctx, BPF_FIB_LOOKUP_OUTPUT);
}

SEC("xdp/direct")
int fib_direct(struct xdp_md *ctx)
{
    return forward(ctx, BPF_FIB_LOOKUP_DIRECT);
}

SEC("xdp/skip_neigh")
int fib_skip_neigh(struct xdp_md *ctx)
{
    return forward(ctx, BPF_FIB_LOOKUP_SKIP_NEIGH);
}

char _license[] SEC("license") = "GPL";
