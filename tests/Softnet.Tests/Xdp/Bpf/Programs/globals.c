// Global data: a .rodata constant decides the verdict, .data and .bss variables count.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 min_len = 60;   // .rodata
__u64 seen = 100;                    // .data
__u64 short_frames;                  // .bss
__u32 last_len;                      // .bss

SEC("xdp")
int globals(struct xdp_md *ctx)
{
    __u32 len = ctx->data_end - ctx->data;
    seen++;
    last_len = len;
    if (len < min_len) {
        short_frames++;
        return XDP_DROP;
    }
    return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
