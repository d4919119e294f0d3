// Pops the outer VLAN tag (802.1Q or 802.1ad): the Ethernet addresses move four bytes up and bpf_xdp_adjust_head
// drops the four bytes in front of them, leaving the inner EtherType in place. Counts the tags popped per VLAN id
// bucket; untagged frames pass unchanged, a tag cut short is dropped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 16);   // VLAN id & 15
} popped SEC(".maps");

SEC("xdp")
int vlan_pop(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != bpf_htons(ETH_P_8021Q) && eth->h_proto != bpf_htons(ETH_P_8021AD))
        return XDP_PASS;
    if (data + sizeof(*eth) + 4 > data_end)
        return XDP_DROP;
    __u16 tci = bpf_ntohs(*(__be16 *)(eth + 1));
    unsigned char macs[12];
    __builtin_memcpy(macs, eth, 12);
    if (bpf_xdp_adjust_head(ctx, 4))
        return XDP_ABORTED;
    data = (void *)(long)ctx->data;
    data_end = (void *)(long)ctx->data_end;
    if (data + 12 > data_end)
        return XDP_ABORTED;
    __builtin_memcpy(data, macs, 12);
    __u32 k = tci & 15;
    __u64 *n = bpf_map_lookup_elem(&popped, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
