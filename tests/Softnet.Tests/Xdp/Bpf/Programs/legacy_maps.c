// A legacy map definition (struct bpf_map_def in SEC("maps")), as older samples write them.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def_legacy {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

struct bpf_map_def_legacy SEC("maps") rx_count = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 2,
};

SEC("xdp")
int legacy(struct xdp_md *ctx)
{
    __u32 key = ctx->rx_queue_index & 1;
    __u64 *v = bpf_map_lookup_elem(&rx_count, &key);
    if (v)
        *v += 1;
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
