// Per-source rate limit: at most LIMIT IPv4 frames per source address in each WINDOW of bpf_ktime_get_ns, counted
// in a hash map (window start, frames in the window, frames dropped); the rest of a window's frames are dropped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define LIMIT 3
#define WINDOW_NS (10ULL * 1000 * 1000 * 1000)

struct bucket {
    __u64 window_start;
    __u64 frames;
    __u64 dropped;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, struct bucket);
    __uint(max_entries, 1024);
} buckets SEC(".maps");

SEC("xdp")
int rate_limit(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_PASS;
    __u32 src = ip->saddr;
    __u64 now = bpf_ktime_get_ns();
    struct bucket *b = bpf_map_lookup_elem(&buckets, &src);
    if (!b) {
        struct bucket fresh = { .window_start = now, .frames = 1 };
        bpf_map_update_elem(&buckets, &src, &fresh, BPF_NOEXIST);
        return XDP_PASS;
    }
    if (now - b->window_start >= WINDOW_NS) {
        b->window_start = now;
        b->frames = 0;
    }
    if (b->frames >= LIMIT) {
        __sync_fetch_and_add(&b->dropped, 1);
        return XDP_DROP;
    }
    b->frames++;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
