// Map lookups the JIT inlines (array, per-CPU array: the kernel's map_gen_lookup) or calls directly (hash, LPM trie),
// and one it leaves to the helper (the key in a map value); indexes past the end; values read and written after.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

struct pair { __u64 packets; __u64 bytes; };
struct v4_key { __u32 prefixlen; __u32 addr; };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 8);
} arr SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __type(key, __u32);
    __type(value, struct pair);
    __uint(max_entries, 4);
} pcpu SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 64);
} hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __type(key, struct v4_key);
    __type(value, __u32);
    __uint(max_entries, 16);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} lpm SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u32);
    __uint(max_entries, 1);
} keys SEC(".maps");

SEC("xdp")
int jit_maps(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    unsigned char *b = data;
    if (data + 14 + sizeof(struct iphdr) > data_end)
        return XDP_PASS;
    struct iphdr *ip = data + 14;

    __u32 k = b[0] & 15; // 8..15 are past the array's end: NULL
    __u64 *v = bpf_map_lookup_elem(&arr, &k);
    if (v) {
        *v += 1;
        __sync_fetch_and_add(v, b[1]);
    }
    __u32 k2 = b[2] & 7;
    struct pair *p = bpf_map_lookup_elem(&pcpu, &k2);
    if (p) {
        p->packets++;
        p->bytes += data_end - data;
    }
    __u32 k3 = b[3] & 31;
    __u64 *h = bpf_map_lookup_elem(&hash, &k3);
    if (h) {
        *h += 1;
    } else {
        __u64 one = 1;
        bpf_map_update_elem(&hash, &k3, &one, BPF_ANY);
    }
    struct v4_key lk = { .prefixlen = 32, .addr = ip->saddr };
    __u32 *l = bpf_map_lookup_elem(&lpm, &lk);
    __u32 zero = 0;
    __u32 *kk = bpf_map_lookup_elem(&keys, &zero);
    if (kk) {
        __u64 *v2 = bpf_map_lookup_elem(&arr, kk); // the key is a map value: the helper's path
        if (v2)
            *v2 += 100;
    }
    // Two values live at once: the second lookup moves the JIT's region cache, so accesses through the first must not
    // take the untested path.
    __u32 k4 = b[4] & 3, k5 = b[5] & 7;
    struct pair *p2 = bpf_map_lookup_elem(&pcpu, &k4);
    __u64 *v3 = bpf_map_lookup_elem(&arr, &k5);
    if (p2 && v3) {
        p2->bytes += *v3;
        *v3 += p2->packets;
    }
    if (l)
        return XDP_DROP;
    return (k & 1) ? XDP_TX : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
