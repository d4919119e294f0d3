// BPF-to-BPF calls: two non-inlined functions in .text, one calling the other, used by two programs.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __attribute__((noinline)) int first_byte(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    unsigned char *end = (void *)(long)ctx->data_end;
    if (data + 1 > end)
        return -1;
    return data[0];
}

static __attribute__((noinline)) int verdict_for(struct xdp_md *ctx, int bias)
{
    int b = first_byte(ctx);
    if (b < 0)
        return XDP_ABORTED;
    return ((b + bias) & 1) ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int odd_drops(struct xdp_md *ctx)
{
    return verdict_for(ctx, 0);
}

SEC("xdp.frags")
int even_drops(struct xdp_md *ctx)
{
    return verdict_for(ctx, 1);
}

char _license[] SEC("license") = "Dual BSD/GPL";
