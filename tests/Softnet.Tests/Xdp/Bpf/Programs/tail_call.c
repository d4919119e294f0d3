// A dispatcher that tail-calls by IP protocol through a prog array: UDP to slot 0, TCP to slot 1; an empty slot
// (or any other protocol) falls through to XDP_PASS. Each target counts what it saw in a shared array.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} jmp_table SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 4);
} hits SEC(".maps");

static __always_inline void hit(__u32 k)
{
    __u64 *v = bpf_map_lookup_elem(&hits, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    if (ip->protocol == IPPROTO_UDP)
        bpf_tail_call(ctx, &jmp_table, 0);
    else if (ip->protocol == IPPROTO_TCP)
        bpf_tail_call(ctx, &jmp_table, 1);
    hit(3);
    return XDP_PASS;
}

SEC("xdp/udp")
int on_udp(struct xdp_md *ctx)
{
    hit(0);
    return XDP_DROP;
}

SEC("xdp/tcp")
int on_tcp(struct xdp_md *ctx)
{
    hit(1);
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";

// Tail-calls itself through slot 2: the kernel allows MAX_TAIL_CALL_CNT (33) tail calls, so 34 runs in all.
SEC("xdp/loop")
int loop(struct xdp_md *ctx)
{
    hit(2);
    bpf_tail_call(ctx, &jmp_table, 2);
    return XDP_DROP;
}
