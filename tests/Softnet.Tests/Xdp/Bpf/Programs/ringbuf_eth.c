// Sends each frame's Ethernet header and length to a ring buffer (bpf_ringbuf_output), then passes it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event { unsigned char eth[14]; __u16 len; };

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int ringbuf_eth(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    if (data + 14 > data_end)
        return XDP_PASS;
    struct event e;
    __builtin_memcpy(e.eth, data, 14);
    e.len = data_end - data;
    bpf_ringbuf_output(&events, &e, sizeof(e), 0);
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
