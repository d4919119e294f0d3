// A reflector: swaps the Ethernet addresses, and for IPv4 the IP addresses and UDP/TCP ports, and sends the frame
// back out (XDP_TX). Swapping keeps every checksum valid. Non-IPv4 frames only get their MACs swapped.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int mac_swap_tx(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    unsigned char mac[ETH_ALEN];
    __builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, mac, ETH_ALEN);
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_TX;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end)
        return XDP_TX;
    __be32 a = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = a;
    if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
        return XDP_TX;
    if (ip->ihl != 5)
        return XDP_TX;
    __be16 *ports = (void *)(ip + 1);
    if ((void *)(ports + 2) > data_end)
        return XDP_TX;
    __be16 p = ports[0];
    ports[0] = ports[1];
    ports[1] = p;
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
