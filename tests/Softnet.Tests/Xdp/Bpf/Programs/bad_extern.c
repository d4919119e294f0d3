// Refers to a variable no object defines: the loader must refuse the relocation, naming section and instruction.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern __u32 nowhere;

SEC("xdp")
int uses_extern(struct xdp_md *ctx)
{
    return nowhere ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
