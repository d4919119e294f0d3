// Sends an 8-byte event (source address, frame length) per IPv4 frame to user space through a ring buffer with
// bpf_ringbuf_output, counting the outputs that failed (a full ring) by return code.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct event { __be32 saddr; __u32 len; };

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 2);   // 0 sent, 1 refused
} outcomes SEC(".maps");

SEC("xdp")
int ringbuf_events(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    struct event ev = { .saddr = ip->saddr, .len = data_end - data };
    long rc = bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
    __u32 k = rc == 0 ? 0 : 1;
    __u64 *n = bpf_map_lookup_elem(&outcomes, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return rc == 0 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
