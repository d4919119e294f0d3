// Forwards through a devmap: the last byte of the destination MAC picks the slot, bpf_redirect_map sends the frame
// to the device user space put there and falls back to XDP_PASS for an empty slot; a counter per outcome.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 8);
} tx_ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 8);   // by verdict
} outcomes SEC(".maps");

SEC("xdp")
int devmap_redirect(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    __u32 slot = eth->h_dest[5] & 7;
    __u32 verdict = bpf_redirect_map(&tx_ports, slot, XDP_PASS);
    __u32 k = verdict & 7;
    __u64 *n = bpf_map_lookup_elem(&outcomes, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return verdict;
}

char _license[] SEC("license") = "GPL";
