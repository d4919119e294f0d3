// Counts frames and bytes in an array map; swaps the Ethernet addresses and sends the frame back (XDP_TX).
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct stats { __u64 packets; __u64 bytes; };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(key_size, 4);
    __uint(value_size, sizeof(struct stats));
    __uint(max_entries, 1);
} stats SEC(".maps");

SEC("xdp/counter")
int count_and_tx(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 key = 0;
    struct stats *s = bpf_map_lookup_elem(&stats, &key);
    if (!s)
        return XDP_ABORTED;
    s->packets++;
    s->bytes += data_end - data;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    unsigned char tmp[ETH_ALEN];
    __builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
