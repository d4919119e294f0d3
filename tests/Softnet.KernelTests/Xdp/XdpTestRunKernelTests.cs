using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Softnet.Capture;
using Softnet.Cli;
using Softnet.KernelTests.Support;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// `softnet xdp test` against the kernel, for one clang-built program whose maps carry BTF of every kind bpftool
/// formats (ints of each size and sign, strings, arrays, enums, bitfields, bool, typedefs, struct keys, per-CPU
/// values, an LPM trie, global data, and two maps the kernel keeps no BTF for). bpftool loads the object (libbpf)
/// and runs each frame with BPF_PROG_TEST_RUN on CPU 0 (`bpftool prog run ... data_out`); Softnet runs the same
/// frames through `xdp test --out --with-meta --maps`. The verdicts, every output frame and every map's
/// `bpftool map dump -j` text — the "formatted" member included — must be the kernel's.
/// </summary>
[Trait("Category", "Kernel")]
public class XdpTestRunKernelTests
{
    private const string Source = """
        #include <linux/bpf.h>
        #include <bpf/bpf_helpers.h>
        #include <stdbool.h>

        enum color { RED = 1, GREEN = 2, BLUE = -3 };
        typedef __u32 counter_t;

        struct rec {
            __u64 packets;
            __u32 bytes;
            __s16 delta;
            char tag[6];
            enum color c;
            unsigned int flag : 1;
            unsigned int level : 3;
            int neg : 5;
            bool ok;
            unsigned char raw[3];
            __s8 tiny;
        };
        struct flow { __u32 saddr; __u16 sport; __u8 proto; __u8 pad; };
        struct lpm_key { __u32 prefixlen; __u8 addr[4]; };

        struct { __uint(type, BPF_MAP_TYPE_ARRAY); __type(key, __u32); __type(value, struct rec); __uint(max_entries, 4); } recs SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __type(key, __u32); __type(value, counter_t); __uint(max_entries, 2); } pcpu SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_HASH); __type(key, struct flow); __type(value, __s64); __uint(max_entries, 64); } flows SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __type(key, __u32); __type(value, int[3]); __uint(max_entries, 256); } lru SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __type(key, __u16); __type(value, struct flow); __uint(max_entries, 64); } pch SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __type(key, struct lpm_key); __type(value, __u32); __uint(max_entries, 64); __uint(map_flags, BPF_F_NO_PREALLOC); } lpm SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(key_size, 4); __uint(value_size, 8); __uint(max_entries, 64); } plain SEC(".maps");
        struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __type(key, __u64); __type(value, __u32); __uint(max_entries, 64); __uint(map_flags, BPF_F_NO_PREALLOC); } lpm64 SEC(".maps");

        char name[8] = "softnet";
        __u64 hits;
        int last_verdict;
        const volatile char banner[6] = "x'\\\"y";
        const volatile short limits[3] = { 1, -2, 3 };

        SEC("xdp")
        int fill(struct xdp_md *ctx)
        {
            unsigned char *p = (void *)(long)ctx->data;
            void *end = (void *)(long)ctx->data_end;
            if ((void *)(p + 16) > end)
                return XDP_ABORTED;
            __u32 k = p[0] & 3;
            struct rec r = {};
            r.packets = 0x1122334455667788ULL + p[1];
            r.bytes = (long)end - (long)p;
            r.delta = -(__s16)p[2];
            r.tag[0] = 'h'; r.tag[1] = 'i'; r.tag[2] = p[3] & 1 ? 0 : 7; r.tag[3] = 'z';
            r.c = (p[3] & 2) ? BLUE : (enum color)(p[3] & 7);
            r.flag = 1;
            r.level = p[4];
            r.neg = -(p[5] & 15);
            r.ok = p[6] & 1;
            r.raw[0] = p[7]; r.raw[1] = 0x41; r.raw[2] = 0;
            r.tiny = -(__s8)p[8];
            bpf_map_update_elem(&recs, &k, &r, BPF_ANY);

            __u32 z = p[9] & 1;
            counter_t *c = bpf_map_lookup_elem(&pcpu, &z);
            if (c)
                *c += r.bytes;

            struct flow f = {};
            f.saddr = p[10] | (p[11] << 8) | (p[12] << 16);
            f.sport = p[13] | (p[14] << 8);
            f.proto = p[15];
            __s64 v = -(__s64)r.bytes * 1000;
            bpf_map_update_elem(&flows, &f, &v, BPF_ANY);

            int arr[3] = { p[0], -p[1], 7 };
            __u32 lk = p[2];
            bpf_map_update_elem(&lru, &lk, &arr, BPF_ANY);

            __u16 pk = p[4];
            bpf_map_update_elem(&pch, &pk, &f, BPF_ANY);

            struct lpm_key lpk = { .prefixlen = 8 + (p[5] & 15), .addr = { 10, p[6], p[7], 0 } };
            __u32 lv = p[8];
            bpf_map_update_elem(&lpm, &lpk, &lv, BPF_ANY);

            __u32 pl = p[9];
            __u64 pv = 0xdeadbeef00ull + p[10];
            bpf_map_update_elem(&plain, &pl, &pv, BPF_ANY);

            __u64 k64 = ((__u64)p[11] << 32) | 16;
            bpf_map_update_elem(&lpm64, &k64, &lv, BPF_ANY);

            hits++;
            name[0] = 'S' + (p[0] & 1);
            int verdict = p[0] & 1 ? XDP_TX : XDP_PASS;
            if (p[0] == 0xff)
                verdict = XDP_DROP;
            last_verdict = verdict;
            p[15] ^= 0xff;
            return verdict;
        }

        char _license[] SEC("license") = "GPL";
        """;

    private static string? SkipReason()
        => BpfMapJsonKernelTests.SkipReason()
           ?? (!Proc.Exists("clang-14") ? "clang-14 is not installed (.ci/run installs it)"
           : !Proc.Exists("taskset") ? "taskset is not installed" : null);

    private static void Run(string file, params string[] args)
    {
        var (exit, _, stderr) = Proc.Run(file, args);
        Assert.True(exit == 0, $"{file} {string.Join(' ', args)}: exit {exit}: {stderr}");
    }

    [SkippableFact]
    public void Xdp_test_gives_the_kernels_verdicts_frames_and_bpftool_map_dumps()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var dir = Directory.CreateTempSubdirectory("softnet-xdptest-kernel-");
        string pin = $"/sys/fs/bpf/softnet_xdptest_{Environment.ProcessId}_{Stopwatch.GetTimestamp()}";
        try
        {
            string src = Path.Combine(dir.FullName, "btfmaps.c"), obj = Path.Combine(dir.FullName, "btfmaps.o");
            File.WriteAllText(src, Source);
            Run("clang-14", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", src, "-o", obj);
            Run("bpftool", "prog", "load", obj, pin, "pinmaps", pin + "_maps");

            // Frames: seeded bytes; some with a first byte of 0xff (XDP_DROP), one too short for the program (ABORTED).
            var rng = new Random(12);
            var frames = new List<byte[]>();
            for (int i = 0; i < 40; i++)
            {
                var f = new byte[i == 7 ? 15 : 60 + rng.Next(200)];
                rng.NextBytes(f);
                if (i % 9 == 4) f[0] = 0xff;
                frames.Add(f);
            }

            // The kernel: BPF_PROG_TEST_RUN per frame on CPU 0 (per-CPU maps then fill CPU 0's slot, as Softnet's run).
            var kernelVerdicts = new List<int>();
            var kernelOut = new List<string>();
            string fin = Path.Combine(dir.FullName, "in.bin"), fout = Path.Combine(dir.FullName, "out.bin");
            foreach (var f in frames)
            {
                File.WriteAllBytes(fin, f);
                File.Delete(fout);
                var (exit, stdout, stderr) = Proc.Run("taskset", ["-c", "0", "bpftool", "-j", "prog", "run", "pinned", pin, "data_in", fin, "data_out", fout]);
                Assert.True(exit == 0, $"bpftool prog run: {stderr}");
                int retval = JsonDocument.Parse(stdout).RootElement.GetProperty("retval").GetInt32();
                kernelVerdicts.Add(retval);
                if (retval is 2 or 3 or 4) kernelOut.Add(Convert.ToHexString(File.ReadAllBytes(fout)));
            }

            // Softnet: the same frames through `xdp test`, output frames from data_meta as data_out holds them.
            string cap = Path.Combine(dir.FullName, "in.pcapng"), outCap = Path.Combine(dir.FullName, "out.pcapng");
            string maps = Path.Combine(dir.FullName, "maps"), json = Path.Combine(dir.FullName, "s.json");
            using (var w = CaptureWriter.Create(cap))
                for (int i = 0; i < frames.Count; i++) w.Write(i * 1000L, frames[i]);
            var stdoutW = new StringWriter();
            var stderrW = new StringWriter();
            int rc = XdpCommand.RunTest(new XdpCommand.TestArgs(obj, cap, Out: outCap, Maps: maps, Json: json, WithMeta: true), stdoutW, stderrW);
            Assert.True(rc == 0, stderrW.ToString());

            var verdicts = JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("verdicts");
            string[] names = ["aborted", "drop", "pass", "tx", "redirect"];
            for (int v = 0; v < names.Length; v++)
                Assert.True(kernelVerdicts.Count(k => k == v) == verdicts.GetProperty(names[v]).GetInt64(), $"{names[v]}: kernel {kernelVerdicts.Count(k => k == v)}, softnet {verdicts.GetProperty(names[v]).GetInt64()}");
            using (var r = CaptureReader.Open(outCap))
                Assert.Equal(kernelOut, MemoryCaptureReader.Load(r).Select(f => Convert.ToHexString(f.Frame)).ToList());

            // Every map the kernel holds, dumped by bpftool, against Softnet's file of the same name.
            int compared = 0, formatted = 0;
            foreach (var pinned in Directory.GetFiles(pin + "_maps"))
            {
                var (exit, show, err) = Proc.Run("bpftool", ["-j", "map", "show", "pinned", pinned]);
                Assert.True(exit == 0, err);
                var info = JsonDocument.Parse(show).RootElement;
                string name = info.GetProperty("name").GetString()!, type = info.GetProperty("type").GetString()!;
                var (dexit, kernel, derr) = Proc.Run("bpftool", ["map", "dump", "-j", "pinned", pinned]);
                Assert.True(dexit == 0, derr);
                string ours = File.ReadAllText(Path.Combine(maps, name + ".json"));
                if (type.Contains("hash"))
                    Assert.True(Entries(kernel).SequenceEqual(Entries(ours)), $"{name}:\nkernel  {kernel}\nsoftnet {ours}");
                else
                    Assert.True(kernel == ours, $"{name}:\nkernel  {kernel}\nsoftnet {ours}");
                compared++;
                if (kernel.Contains("\"formatted\"")) formatted++;
            }
            Assert.Equal(11, compared);
            Assert.Equal(9, formatted); // all but "plain" (no __type) and "lpm64" (the kernel refuses a non-struct LPM key's BTF)
        }
        finally
        {
            try { File.Delete(pin); } catch (IOException) { }
            try { if (Directory.Exists(pin + "_maps")) Directory.Delete(pin + "_maps", true); } catch (IOException) { }
            dir.Delete(true);
        }
    }

    private static List<string> Entries(string json)
        => JsonNode.Parse(json)!.AsArray().Select(e => e!.ToJsonString()).Order(StringComparer.Ordinal).ToList();
}
