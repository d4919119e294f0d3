// Dispatches by EtherType through a prog array (IPv4 to slot 0, IPv6 to slot 1): each target decrements the TTL or
// hop limit (the IPv4 checksum updated incrementally) and passes the frame; an empty slot falls through to a count
// and XDP_PASS. Frames with an expiring TTL are dropped by the targets.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u32);
} by_ethertype SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 4);   // 0 IPv4, 1 IPv6, 2 fell through, 3 expired
} seen SEC(".maps");

static __always_inline void count(__u32 k)
{
    __u64 *v = bpf_map_lookup_elem(&seen, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto == bpf_htons(ETH_P_IP))
        bpf_tail_call(ctx, &by_ethertype, 0);
    else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
        bpf_tail_call(ctx, &by_ethertype, 1);
    count(2);
    return XDP_PASS;
}

SEC("xdp/ipv4")
int ttl4(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > data_end)
        return XDP_DROP;
    count(0);
    if (ip->ttl <= 1) {
        count(3);
        return XDP_DROP;
    }
    // RFC 1624 update for the TTL's high byte of its 16-bit word going down by one.
    __u32 check = ip->check;
    check += bpf_htons(0x0100);
    ip->check = (__u16)(check + (check >= 0xffff));
    ip->ttl--;
    return XDP_PASS;
}

SEC("xdp/ipv6")
int hop6(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
    if ((void *)(ip6 + 1) > data_end)
        return XDP_DROP;
    count(1);
    if (ip6->hop_limit <= 1) {
        count(3);
        return XDP_DROP;
    }
    ip6->hop_limit--;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
