// Trims what follows the IPv4 datagram (Ethernet padding, trailers) with bpf_xdp_adjust_tail, pads frames shorter
// than 64 bytes back up with the tail growing, and leaves a 4-byte mark in front of the frame in the metadata
// (bpf_xdp_adjust_meta) read back with bpf_xdp_load_bytes / written with bpf_xdp_store_bytes checks.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __s64);
    __uint(max_entries, 8);   // last result of each helper call
} results SEC(".maps");

static __always_inline void note(__u32 k, __s64 v)
{
    __s64 *r = bpf_map_lookup_elem(&results, &k);
    if (r)
        *r = v;
}

SEC("xdp")
int meta_trim(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    int len = data_end - data;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > data_end)
            return XDP_DROP;
        int want = sizeof(*eth) + bpf_ntohs(ip->tot_len);
        if (want < len) {
            int rc = bpf_xdp_adjust_tail(ctx, want - len);
            note(0, rc);
            if (rc)
                return XDP_ABORTED;
        }
    }
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    len = data_end - data;
    if (len < 64) {
        int rc = bpf_xdp_adjust_tail(ctx, 64 - len);
        note(1, rc);
    }
    // Too much growth is refused: past the frame's tailroom.
    note(2, bpf_xdp_adjust_tail(ctx, 4096));
    __u8 first[4];
    note(3, bpf_xdp_load_bytes(ctx, 0, first, 4));
    __u8 mark[2] = { 0xab, 0xcd };
    note(4, bpf_xdp_store_bytes(ctx, 12, mark, 2));
    note(5, bpf_xdp_load_bytes(ctx, 100000, first, 4));

    int rc = bpf_xdp_adjust_meta(ctx, -4);
    note(6, rc);
    if (rc)
        return XDP_PASS;
    void *meta = (void *)(long)ctx->data_meta;
    data = (void *)(long)ctx->data;
    if (meta + 4 > data)
        return XDP_ABORTED;
    __builtin_memcpy(meta, first, 4);
    note(7, bpf_xdp_get_buff_len(ctx));
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
