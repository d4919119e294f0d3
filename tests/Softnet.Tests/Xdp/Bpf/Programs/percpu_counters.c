// Per-CPU counters: frames and bytes per EtherType class in a per-CPU array, frames per IP protocol in a per-CPU
// hash, and the CPU that ran last in a plain array. Every frame passes.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct datarec {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct datarec);
    __uint(max_entries, 4);   // 0 IPv4, 1 IPv6, 2 ARP, 3 other
} by_ethertype SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __type(key, __u8);
    __type(value, __u32);
    __uint(max_entries, 32);
} by_proto SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 1);
} last_cpu SEC(".maps");

SEC("xdp")
int percpu_counters(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    __u32 zero = 0;
    __u32 *cpu = bpf_map_lookup_elem(&last_cpu, &zero);
    if (cpu)
        *cpu = bpf_get_smp_processor_id();
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    __u32 k = 3;
    __u8 proto = 255;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        k = 0;
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) <= data_end)
            proto = ip->protocol;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        k = 1;
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) <= data_end)
            proto = ip6->nexthdr;
    } else if (eth->h_proto == bpf_htons(ETH_P_ARP))
        k = 2;
    struct datarec *rec = bpf_map_lookup_elem(&by_ethertype, &k);
    if (rec) {
        rec->packets++;
        rec->bytes += data_end - data;
    }
    if (proto != 255) {
        __u32 *n = bpf_map_lookup_elem(&by_proto, &proto);
        if (n)
            (*n)++;
        else {
            __u32 one = 1;
            bpf_map_update_elem(&by_proto, &proto, &one, BPF_NOEXIST);
        }
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
