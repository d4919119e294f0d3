// Parses Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4 (options, fragments), IPv6 (up to two extension
// headers) and TCP/UDP; counts each frame's class and keeps the last flow it parsed. Truncated headers are dropped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum {
    C_OTHER_L3, C_V4_TCP, C_V4_UDP, C_V4_OTHER, C_V4_FRAG, C_V6_TCP, C_V6_UDP, C_V6_OTHER,
    C_TRUNCATED, C_VLAN, C_QINQ, C_MAX = 16,
};

struct flow {
    __u8 family;
    __u8 proto;
    __u16 vlan;       // outermost VLAN id, 0 when untagged
    __be16 sport;
    __be16 dport;
    __u32 addr[8];    // source then destination (IPv4 in the first word of each)
    __u32 l4_off;     // offset of the transport header from the frame's start
    __u32 tcp_flags;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, C_MAX);
} classes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, struct flow);
    __uint(max_entries, 1);
} last_flow SEC(".maps");

struct vlan_hdr {
    __be16 tci;
    __be16 proto;
};

static __always_inline void count(__u32 c)
{
    __u64 *v = bpf_map_lookup_elem(&classes, &c);
    if (v)
        __sync_fetch_and_add(v, 1);
}

static __always_inline int l4(void *p, void *data, void *data_end, __u8 proto, struct flow *f)
{
    f->proto = proto;
    f->l4_off = p - data;
    if (proto == IPPROTO_TCP) {
        struct tcphdr *t = p;
        if ((void *)(t + 1) > data_end)
            return -1;
        f->sport = t->source;
        f->dport = t->dest;
        f->tcp_flags = ((__u8 *)t)[13];
    } else if (proto == IPPROTO_UDP) {
        struct udphdr *u = p;
        if ((void *)(u + 1) > data_end)
            return -1;
        f->sport = u->source;
        f->dport = u->dest;
    }
    return 0;
}

SEC("xdp")
int parse_headers(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 zero = 0;
    struct flow *f = bpf_map_lookup_elem(&last_flow, &zero);
    if (!f)
        return XDP_ABORTED;
    __builtin_memset(f, 0, sizeof(*f));

    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        goto truncated;
    void *p = eth + 1;
    __be16 proto = eth->h_proto;
    int tags = 0;
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
            break;
        struct vlan_hdr *vh = p;
        if ((void *)(vh + 1) > data_end)
            goto truncated;
        if (tags == 0)
            f->vlan = bpf_ntohs(vh->tci) & 0x0fff;
        proto = vh->proto;
        p = vh + 1;
        tags++;
    }
    if (tags == 1)
        count(C_VLAN);
    else if (tags == 2)
        count(C_QINQ);

    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = p;
        if ((void *)(ip + 1) > data_end)
            goto truncated;
        __u32 hl = ip->ihl * 4;
        if (hl < sizeof(*ip))
            goto truncated;
        if (p + hl > data_end)
            goto truncated;
        f->family = 4;
        f->addr[0] = ip->saddr;
        f->addr[4] = ip->daddr;
        f->proto = ip->protocol;
        if (ip->frag_off & bpf_htons(0x3fff)) {
            count(C_V4_FRAG);
            return XDP_PASS;
        }
        if (l4(p + hl, data, data_end, ip->protocol, f) < 0)
            goto truncated;
        count(ip->protocol == IPPROTO_TCP ? C_V4_TCP : ip->protocol == IPPROTO_UDP ? C_V4_UDP : C_V4_OTHER);
        return XDP_PASS;
    }
    if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = p;
        if ((void *)(ip6 + 1) > data_end)
            goto truncated;
        f->family = 6;
        __builtin_memcpy(f->addr, &ip6->saddr, 16);
        __builtin_memcpy(&f->addr[4], &ip6->daddr, 16);
        __u8 nh = ip6->nexthdr;
        p = ip6 + 1;
#pragma unroll
        for (int i = 0; i < 2; i++) {
            // Hop-by-hop, routing and destination options: next header, then length in 8-byte units less one.
            if (nh != 0 && nh != 43 && nh != 60)
                break;
            __u8 *ext = p;
            if ((void *)(ext + 2) > data_end)
                goto truncated;
            nh = ext[0];
            p += (ext[1] + 1) * 8;
        }
        if (l4(p, data, data_end, nh, f) < 0)
            goto truncated;
        count(nh == IPPROTO_TCP ? C_V6_TCP : nh == IPPROTO_UDP ? C_V6_UDP : C_V6_OTHER);
        return XDP_PASS;
    }
    count(C_OTHER_L3);
    return XDP_PASS;

truncated:
    count(C_TRUNCATED);
    return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
