// bench xdp: counts frames and bytes per IP protocol in a per-CPU array (non-IPv4 frames under key 0); passes all.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct counter { __u64 packets; __u64 bytes; };

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct counter);
    __uint(max_entries, 256);
} by_protocol SEC(".maps");

SEC("xdp")
int percpu_counter(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    __u32 key = 0;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return XDP_PASS;
        key = ip->protocol;
    }
    struct counter *c = bpf_map_lookup_elem(&by_protocol, &key);
    if (!c)
        return XDP_ABORTED;
    c->packets++; // per-CPU: no atomics needed, as in the kernel's samples
    c->bytes += data_end - data;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
