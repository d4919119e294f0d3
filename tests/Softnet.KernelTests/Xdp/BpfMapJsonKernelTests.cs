using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using Softnet.KernelTests.Support;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// BpfMapJson against the real bpftool: the same map created in the kernel (BPF_MAP_CREATE) and in Softnet, filled
/// with the same keys and values, dumped by `bpftool map dump -j id ID` and by BpfMapJson, compared as JSON — byte for
/// byte where the walk order is the kernel's (arrays, LPM tries, hashes with BPF_F_ZERO_SEED), as sets of entries
/// where a hash seed the kernel picks at random decides the order. Maps with BTF: bpftool adds a "formatted" member
/// from the BTF, which BpfMapJson prints too when it is given the BTF (see BpfMapJsonBtfKernelTests).
/// </summary>
[Trait("Category", "Kernel")]
public class BpfMapJsonKernelTests
{
    internal static string? SkipReason()
        => !BpfSyscall.Supported ? "bpf(2) comparisons need Linux x86-64"
            : !Proc.IsRoot ? "bpftool comparisons need root (CAP_BPF / CAP_SYS_ADMIN)"
            : !Proc.Exists("bpftool") ? "bpftool is not installed (apt-get install bpftool; .ci/run does)" : null;

    internal static readonly int Cpus = BpfMapFactory.PossibleCpus();

    internal static string BpftoolDump(uint id)
    {
        var (exit, stdout, stderr) = Proc.Run("bpftool", ["map", "dump", "-j", "id", id.ToString()]);
        Assert.True(exit == 0, $"bpftool map dump -j id {id}: exit {exit}: {stderr}");
        return stdout;
    }

    /// <summary>Creates the map in both, runs <paramref name="fill"/> with an update function that writes both, and
    /// compares the dumps.</summary>
    private static void Compare(BpfMapSpec spec, Action<Action<byte[], byte[]>> fill, bool ordered)
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        var ours = BpfMapFactory.Create(spec, Cpus);
        ours.Bind(new BpfRegionTable());
        int fd = BpfSyscall.CreateMap((uint)spec.Type, (uint)spec.KeySize, (uint)spec.ValueSize, (uint)spec.MaxEntries, spec.Flags, spec.Name);
        try
        {
            fill((k, v) =>
            {
                BpfSyscall.UpdateElem(fd, k, v);
                Assert.Equal(0, ours.UserUpdate(k, v, 0));
            });
            string kernel = BpftoolDump(BpfSyscall.ObjectId(fd));
            string softnet = BpfMapJson.Dump(ours);
            if (ordered)
                Assert.Equal(kernel, softnet);
            else
            {
                // Same text per entry, same count; only the order (the random hash seed's) may differ.
                Assert.EndsWith("\n", softnet);
                Assert.Equal(Entries(kernel), Entries(softnet));
            }
        }
        finally { BpfSyscall.Close(fd); }
    }

    private static List<string> Entries(string json)
        => JsonNode.Parse(json)!.AsArray().Select(e => e!.ToJsonString()).Order(StringComparer.Ordinal).ToList();

    private static byte[] U32(uint v) => BitConverter.GetBytes(v);

    private static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    private static byte[] PerCpu(int valueSize, int seed)
    {
        int step = (valueSize + 7) & ~7;
        var v = new byte[step * Cpus];
        for (int c = 0; c < Cpus; c++) Bytes(valueSize, seed * 31 + c).CopyTo(v, c * step);
        return v;
    }

    [SkippableFact]
    public void Array_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_array", BpfMapType.Array, 4, 6, 5), put =>
        {
            put(U32(1), Bytes(6, 1));
            put(U32(4), Bytes(6, 2));
        }, ordered: true);

    [SkippableFact]
    public void Percpu_array_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_pcarray", BpfMapType.PercpuArray, 4, 12, 3), put =>
        {
            put(U32(0), PerCpu(12, 1));
            put(U32(2), PerCpu(12, 2));
        }, ordered: true);

    [SkippableFact]
    public void Hash_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_hash", BpfMapType.Hash, 6, 10, 16), put =>
        {
            for (int i = 0; i < 9; i++) put(Bytes(6, 100 + i), Bytes(10, 200 + i));
        }, ordered: false);

    [SkippableFact]
    public void Zero_seed_hash_dump_is_bpftools_in_order()
        => Compare(new BpfMapSpec("j_hash0", BpfMapType.Hash, 4, 8, 32, BpfMapFlags.ZeroSeed), put =>
        {
            for (uint i = 0; i < 20; i++) put(U32(i * 7919), Bytes(8, (int)i));
        }, ordered: true);

    [SkippableFact]
    public void Percpu_hash_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_pchash", BpfMapType.PercpuHash, 4, 5, 8), put =>
        {
            for (uint i = 0; i < 5; i++) put(U32(i + 10), PerCpu(5, (int)i));
        }, ordered: false);

    [SkippableFact]
    public void Lru_hash_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_lru", BpfMapType.LruHash, 8, 4, 64), put =>
        {
            for (int i = 0; i < 6; i++) put(Bytes(8, 300 + i), Bytes(4, 400 + i));
        }, ordered: false);

    [SkippableFact]
    public void Lru_percpu_hash_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_lrupc", BpfMapType.LruPercpuHash, 4, 8, 64), put =>
        {
            for (uint i = 0; i < 4; i++) put(U32(i), PerCpu(8, (int)i + 50));
        }, ordered: false);

    [SkippableFact]
    public void Lpm_trie_dump_is_bpftools_in_order()
        => Compare(new BpfMapSpec("j_lpm", BpfMapType.LpmTrie, 8, 4, 16, BpfMapFlags.NoPrealloc), put =>
        {
            // struct bpf_lpm_trie_key: u32 prefixlen, then the IPv4 address.
            (uint Len, byte[] Addr)[] prefixes = [(8, [10, 0, 0, 0]), (16, [10, 1, 0, 0]), (24, [10, 1, 2, 0]), (32, [192, 168, 1, 1]), (0, [0, 0, 0, 0]), (12, [172, 16, 0, 0])];
            int i = 0;
            foreach (var (len, addr) in prefixes)
            {
                var k = new byte[8];
                BinaryPrimitives.WriteUInt32LittleEndian(k, len);
                addr.CopyTo(k, 4);
                put(k, U32((uint)(1000 + i++)));
            }
        }, ordered: true);

    [SkippableFact]
    public void Empty_map_dump_is_bpftools()
        => Compare(new BpfMapSpec("j_empty", BpfMapType.Hash, 4, 4, 4), _ => { }, ordered: true);
}
