using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Softnet.KernelTests.Support;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// Softnet's maps against the kernel's: the same specs (good and bad) through BpfMapFactory and BPF_MAP_CREATE give
/// the same errno, and the same seeded sequences of user-space update / lookup / delete / get_next_key give the same
/// errnos, values and keys — including the hash walk order, for maps created with BPF_F_ZERO_SEED.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfMapKernelTests
{
    private static string? SkipReason()
        => !BpfSyscall.Supported ? "bpf(2) comparisons need Linux x86-64"
            : !Proc.IsRoot ? "bpf(2) comparisons need root (CAP_BPF / CAP_SYS_ADMIN)" : null;

    private static readonly int Cpus = BpfMapFactory.PossibleCpus();

    // Raw bpf(2) for what BpfSyscall leaves out (errno results, delete, inner_map_fd), without unsafe code.
    [DllImport("libc", SetLastError = true, EntryPoint = "syscall")]
    private static extern long Syscall(long number, long cmd, byte[] attr, long size);

    private static long Bpf(int cmd, byte[] attr)
    {
        long r = Syscall(321, cmd, attr, attr.Length);
        return r < 0 ? -Marshal.GetLastPInvokeError() : r;
    }

    private static int KCreate(BpfMapSpec s, int innerFd = 0)
    {
        if (innerFd == 0 && s.Inner is null)
        {
            try { return BpfSyscall.CreateMap((uint)s.Type, (uint)s.KeySize, (uint)s.ValueSize, (uint)s.MaxEntries, s.Flags); }
            catch (BpfSyscallException e) { return -e.Errno; }
        }
        var a = new byte[144];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)s.Type);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(4), (uint)s.KeySize);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(8), (uint)s.ValueSize);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(12), (uint)s.MaxEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(16), s.Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(20), (uint)innerFd);
        return (int)Bpf(0, a);
    }

    private static long KElem(int cmd, int fd, byte[]? key, byte[]? value, ulong flags)
    {
        var hk = key is null ? default : GCHandle.Alloc(key, GCHandleType.Pinned);
        var hv = value is null ? default : GCHandle.Alloc(value, GCHandleType.Pinned);
        try
        {
            var a = new byte[144];
            BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)fd);
            BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(8), key is null ? 0 : (ulong)hk.AddrOfPinnedObject());
            BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(16), value is null ? 0 : (ulong)hv.AddrOfPinnedObject());
            BinaryPrimitives.WriteUInt64LittleEndian(a.AsSpan(24), flags);
            return Bpf(cmd, a);
        }
        finally
        {
            if (key is not null) hk.Free();
            if (value is not null) hv.Free();
        }
    }

        private static BpfMapSpec S(BpfMapType t, int k, int v, int max, uint flags = 0, BpfMapSpec? inner = null)
        => new("t", t, k, v, max, flags) { Inner = inner };

    public static TheoryData<string, BpfMapSpec> Specs()
    {
        var inner = S(BpfMapType.Array, 4, 8, 4);
        var d = new TheoryData<string, BpfMapSpec>();
        void Add(string name, BpfMapSpec s) => d.Add(name, s);
        Add("array ok", S(BpfMapType.Array, 4, 8, 16));
        Add("array key 8", S(BpfMapType.Array, 8, 8, 16));
        Add("array value 0", S(BpfMapType.Array, 4, 0, 16));
        Add("array max 0", S(BpfMapType.Array, 4, 8, 0));
        Add("array no_prealloc", S(BpfMapType.Array, 4, 8, 1, BpfMapFlags.NoPrealloc));
        Add("array mmapable", S(BpfMapType.Array, 4, 8, 1, BpfMapFlags.Mmapable));
        Add("array rdonly_prog|wronly_prog", S(BpfMapType.Array, 4, 8, 1, BpfMapFlags.RdonlyProg | BpfMapFlags.WronlyProg));
        Add("array rdonly|wronly", S(BpfMapType.Array, 4, 8, 1, BpfMapFlags.Rdonly | BpfMapFlags.Wronly));
        Add("array preserve_elems", S(BpfMapType.Array, 4, 8, 1, BpfMapFlags.PreserveElems));
        Add("percpu array ok", S(BpfMapType.PercpuArray, 4, 12, 4));
        Add("percpu array mmapable", S(BpfMapType.PercpuArray, 4, 8, 4, BpfMapFlags.Mmapable));
        Add("percpu array value 32k+1", S(BpfMapType.PercpuArray, 4, (32 << 10) + 1, 1));
        Add("percpu array numa", S(BpfMapType.PercpuArray, 4, 8, 1, BpfMapFlags.NumaNode));
        Add("hash ok", S(BpfMapType.Hash, 6, 10, 8));
        Add("hash key 0", S(BpfMapType.Hash, 0, 4, 8));
        Add("hash value 0", S(BpfMapType.Hash, 4, 0, 8));
        Add("hash no_common_lru", S(BpfMapType.Hash, 4, 4, 8, BpfMapFlags.NoCommonLru));
        Add("hash mmapable", S(BpfMapType.Hash, 4, 4, 8, BpfMapFlags.Mmapable));
        Add("hash no_prealloc", S(BpfMapType.Hash, 4, 4, 8, BpfMapFlags.NoPrealloc));
        Add("hash huge", S(BpfMapType.Hash, 4, 4 << 20, 8));
        Add("percpu hash value 32k+1", S(BpfMapType.PercpuHash, 4, (32 << 10) + 1, 8));
        Add("percpu hash numa", S(BpfMapType.PercpuHash, 4, 8, 8, BpfMapFlags.NumaNode));
        Add("lru ok", S(BpfMapType.LruHash, 4, 8, 8));
        Add("lru no_prealloc", S(BpfMapType.LruHash, 4, 8, 8, BpfMapFlags.NoPrealloc));
        Add("lru no_common_lru numa", S(BpfMapType.LruHash, 4, 8, 8, BpfMapFlags.NoCommonLru | BpfMapFlags.NumaNode));
        Add("lru percpu ok", S(BpfMapType.LruPercpuHash, 4, 8, 8, BpfMapFlags.NoCommonLru));
        Add("lpm ok", S(BpfMapType.LpmTrie, 8, 4, 16, BpfMapFlags.NoPrealloc));
        Add("lpm prealloc", S(BpfMapType.LpmTrie, 8, 4, 16));
        Add("lpm key 4", S(BpfMapType.LpmTrie, 4, 4, 16, BpfMapFlags.NoPrealloc));
        Add("lpm key 261", S(BpfMapType.LpmTrie, 261, 4, 16, BpfMapFlags.NoPrealloc));
        Add("lpm key 260", S(BpfMapType.LpmTrie, 260, 4, 16, BpfMapFlags.NoPrealloc));
        Add("lpm value 0", S(BpfMapType.LpmTrie, 8, 0, 16, BpfMapFlags.NoPrealloc));
        Add("lpm zero_seed", S(BpfMapType.LpmTrie, 8, 4, 16, BpfMapFlags.NoPrealloc | BpfMapFlags.ZeroSeed));
        Add("prog array ok", S(BpfMapType.ProgArray, 4, 4, 8));
        Add("prog array value 8", S(BpfMapType.ProgArray, 4, 8, 8));
        Add("prog array rdonly_prog", S(BpfMapType.ProgArray, 4, 4, 8, BpfMapFlags.RdonlyProg));
        Add("devmap ok 4", S(BpfMapType.Devmap, 4, 4, 8));
        Add("devmap ok 8", S(BpfMapType.Devmap, 4, 8, 8));
        Add("devmap value 6", S(BpfMapType.Devmap, 4, 6, 8));
        Add("devmap no_prealloc", S(BpfMapType.Devmap, 4, 4, 8, BpfMapFlags.NoPrealloc));
        Add("devmap_hash ok", S(BpfMapType.DevmapHash, 4, 8, 8));
        Add("devmap_hash key 8", S(BpfMapType.DevmapHash, 8, 8, 8));
        Add("cpumap ok", S(BpfMapType.Cpumap, 4, 4, 2));
        Add("cpumap value 12", S(BpfMapType.Cpumap, 4, 12, 2));
        Add("xskmap ok", S(BpfMapType.Xskmap, 4, 4, 8));
        Add("xskmap value 8", S(BpfMapType.Xskmap, 4, 8, 8));
        Add("ringbuf ok", S(BpfMapType.Ringbuf, 0, 0, 4096));
        Add("ringbuf not pow2", S(BpfMapType.Ringbuf, 0, 0, 3 * 4096));
        Add("ringbuf not page", S(BpfMapType.Ringbuf, 0, 0, 2048));
        Add("ringbuf key", S(BpfMapType.Ringbuf, 4, 0, 4096));
        Add("array of maps ok", S(BpfMapType.ArrayOfMaps, 4, 4, 4, 0, inner));
        Add("array of maps value 8", S(BpfMapType.ArrayOfMaps, 4, 8, 4, 0, inner));
        Add("hash of maps ok", S(BpfMapType.HashOfMaps, 4, 4, 4, 0, inner));
        Add("hash of maps key 0", S(BpfMapType.HashOfMaps, 0, 4, 4, 0, inner));
        return d;
    }

    [SkippableTheory]
    [MemberData(nameof(Specs))]
    public void CreateGivesTheKernelsErrno(string name, BpfMapSpec spec)
    {
        var why = SkipReason();
        Skip.If(why != null, why);
        int innerFd = 0;
        if (spec.Inner is { } i) innerFd = KCreate(i);
        int fd = KCreate(spec, innerFd);
        try
        {
            int kernel = fd < 0 ? fd : 0;
            Assert.True(kernel == BpfMapFactory.Check(spec, Cpus), $"{name}: kernel {kernel}, softnet {BpfMapFactory.Check(spec, Cpus)}");
            if (kernel == 0) Assert.NotNull(BpfMapFactory.Create(spec, Cpus));
            else Assert.Equal(-kernel, Assert.Throws<BpfMapException>(() => BpfMapFactory.Create(spec, Cpus)).Errno);
        }
        finally
        {
            BpfSyscall.Close(fd);
            BpfSyscall.Close(innerFd);
        }
    }

    private static HashSet<uint> Ifindexes()
        => Directory.Exists("/sys/class/net")
            ? Directory.GetDirectories("/sys/class/net").Select(d => uint.Parse(File.ReadAllText(Path.Combine(d, "ifindex")).Trim())).ToHashSet()
            : [];

    /// <summary>
    /// Runs <paramref name="ops"/> random user-space operations on both maps and compares each errno and result;
    /// then walks both maps with get_next_key and compares keys (in order unless <paramref name="sortWalk"/>) and values.
    /// </summary>
    private static void Drive(BpfMapSpec spec, int seed, int ops, Func<Random, byte[]> key, Func<Random, byte[]> value,
        bool compareNext = true, bool sortWalk = false, Action<BpfMap>? setup = null)
    {
        var ours = BpfMapFactory.Create(spec, Cpus);
        ours.Bind(new BpfRegionTable());
        setup?.Invoke(ours);
        int fd = KCreate(spec);
        Assert.True(fd >= 0, $"kernel refused {spec}: {fd}");
        try
        {
            var rng = new Random(seed);
            int vsize = ours.UserValueSize;
            for (int i = 0; i < ops; i++)
            {
                int op = rng.Next(4);
                var k = key(rng);
                string what = $"op {i} ({op}) key {Convert.ToHexString(k)}";
                switch (op)
                {
                    case 0:
                    {
                        var v = value(rng);
                        ulong flags = (ulong)(rng.Next(20) switch { < 8 => 0, < 13 => 1, < 19 => 2, _ => 5 });
                        long kr = KElem(2, fd, k, v, flags);
                        long our = ours.UserUpdate(k, v, flags);
                        Assert.True(kr == (kr < 0 ? our : 0) && (kr < 0 || our == 0), $"{what} update flags {flags}: kernel {kr}, softnet {our}");
                        break;
                    }
                    case 1:
                    {
                        var kv = new byte[vsize];
                        var ov = new byte[vsize];
                        long kr = KElem(1, fd, k, kv, 0);
                        long our = ours.UserLookupElem(k, ov);
                        Assert.True(kr == our, $"{what} lookup: kernel {kr}, softnet {our}");
                        if (kr == 0) Assert.True(kv.AsSpan().SequenceEqual(ov), $"{what} lookup value: kernel {Convert.ToHexString(kv)}, softnet {Convert.ToHexString(ov)}");
                        break;
                    }
                    case 2:
                    {
                        long kr = KElem(3, fd, k, null, 0);
                        long our = ours.UserDelete(k);
                        Assert.True(kr == our, $"{what} delete: kernel {kr}, softnet {our}");
                        break;
                    }
                    default:
                    {
                        if (!compareNext) break;
                        bool nullKey = rng.Next(4) == 0;
                        var kn = new byte[spec.KeySize];
                        var on = new byte[spec.KeySize];
                        long kr = KElem(4, fd, nullKey ? null : k, kn, 0);
                        bool our = ours.GetNextKey(nullKey ? default : k, on);
                        Assert.True((kr == 0) == our, $"{what} next_key: kernel {kr}, softnet {our}");
                        if (our) Assert.True(kn.AsSpan().SequenceEqual(on), $"{what} next_key: kernel {Convert.ToHexString(kn)}, softnet {Convert.ToHexString(on)}");
                        break;
                    }
                }
            }
            var kwalk = Walk(spec.KeySize, (p, n) => KElem(4, fd, p, n, 0) == 0);
            var owalk = Walk(spec.KeySize, (p, n) => ours.GetNextKey(p ?? default, n));
            if (sortWalk)
            {
                kwalk.Sort(StringComparer.Ordinal);
                owalk.Sort(StringComparer.Ordinal);
            }
            Assert.Equal(kwalk, owalk);
        }
        finally
        {
            BpfSyscall.Close(fd);
        }
    }

    private static List<string> Walk(int keySize, Func<byte[]?, byte[], bool> next)
    {
        var keys = new List<string>();
        byte[]? prev = null;
        var n = new byte[keySize];
        while (next(prev, n) && keys.Count < 100_000)
        {
            keys.Add(Convert.ToHexString(n));
            prev = (byte[])n.Clone();
        }
        return keys;
    }

    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static Func<Random, byte[]> Bytes(int n) => r =>
    {
        var b = new byte[n];
        r.NextBytes(b);
        return b;
    };

    private void Skip_()
    {
        var why = SkipReason();
        Skip.If(why != null, why);
    }

    [SkippableFact]
    public void ArrayAgrees() { Skip_(); Drive(S(BpfMapType.Array, 4, 12, 8), 1, 400, r => U32((uint)r.Next(10)), Bytes(12)); }

    [SkippableFact]
    public void PercpuArrayAgrees()
    {
        Skip_();
        Drive(S(BpfMapType.PercpuArray, 4, 12, 8), 2, 400, r => U32((uint)r.Next(10)), Bytes(16 * Cpus));
    }

    [SkippableFact]
    public void HashAgreesIncludingWalkOrderWithZeroSeed()
    {
        Skip_();
        Drive(S(BpfMapType.Hash, 4, 8, 16, BpfMapFlags.ZeroSeed), 3, 1500, r => U32((uint)r.Next(24)), Bytes(8));
        Drive(S(BpfMapType.Hash, 6, 3, 16, BpfMapFlags.ZeroSeed), 4, 1500, r => [(byte)r.Next(5), 0, (byte)r.Next(5), 0, 0, (byte)r.Next(2)], Bytes(3));
        Drive(S(BpfMapType.Hash, 13, 8, 32, BpfMapFlags.ZeroSeed | BpfMapFlags.NoPrealloc), 5, 1500, r => { var b = new byte[13]; b[r.Next(13)] = (byte)r.Next(4); return b; }, Bytes(8));
    }

    [SkippableFact]
    public void HashWithRandomSeedAgreesButForOrder()
    {
        Skip_();
        Drive(S(BpfMapType.Hash, 4, 8, 16), 6, 800, r => U32((uint)r.Next(24)), Bytes(8), compareNext: false, sortWalk: true);
    }

    [SkippableFact]
    public void PercpuHashAgrees()
    {
        Skip_();
        Drive(S(BpfMapType.PercpuHash, 4, 4, 16, BpfMapFlags.ZeroSeed), 7, 1500, r => U32((uint)r.Next(24)), Bytes(8 * Cpus));
    }

    [SkippableFact]
    public void LruHashAgreesWhileNotFull()
    {
        Skip_();
        // Fewer distinct keys than elements, and a large map, so the kernel's per-CPU free lists never force an eviction.
        Drive(S(BpfMapType.LruHash, 4, 8, 1024, BpfMapFlags.ZeroSeed), 8, 600, r => U32((uint)r.Next(20)), Bytes(8));
        Drive(S(BpfMapType.LruPercpuHash, 4, 8, 1024, BpfMapFlags.ZeroSeed), 9, 600, r => U32((uint)r.Next(20)), Bytes(8 * Cpus));
    }

    [SkippableFact]
    public void LpmTrieAgreesIncludingWalkOrder()
    {
        Skip_();
        static byte[] Key(Random r)
        {
            var b = new byte[8];
            BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)r.Next(0, 34)); // 33 > max_prefixlen: -EINVAL
            b[4] = (byte)(10 + r.Next(2));
            b[5] = (byte)r.Next(0, 256) ;
            b[5] &= 0xC3;
            b[6] = (byte)r.Next(2);
            return b;
        }
        Drive(S(BpfMapType.LpmTrie, 8, 4, 24, BpfMapFlags.NoPrealloc), 10, 2000, Key, Bytes(4));
    }

    [SkippableFact]
    public void DevmapsAndCpumapAgree()
    {
        Skip_();
        var ifs = Ifindexes();
        uint[] candidates = [0, 1, 2, 3, 999_999];
        Func<Random, byte[]> val4 = r => U32(candidates[r.Next(candidates.Length)]);
        Func<Random, byte[]> val8 = r => [.. U32(candidates[r.Next(candidates.Length)]), .. U32(r.Next(3) == 0 ? uint.MaxValue : 0)];
        Action<BpfMap> dev = m =>
        {
            if (m is BpfDevmapMap d) d.DeviceExists = ifs.Contains;
            if (m is BpfDevmapHashMap h) h.DeviceExists = ifs.Contains;
        };
        Drive(S(BpfMapType.Devmap, 4, 4, 8), 11, 600, r => U32((uint)r.Next(10)), val4, setup: dev);
        Drive(S(BpfMapType.Devmap, 4, 8, 8), 12, 600, r => U32((uint)r.Next(10)), val8, setup: dev);
        Drive(S(BpfMapType.DevmapHash, 4, 8, 6), 13, 1200, r => U32((uint)r.Next(12) * 3), val8, setup: dev);
        uint[] q = [0, 1, 64, 16384, 16385];
        Drive(S(BpfMapType.Cpumap, 4, 4, 4), 14, 600, r => U32((uint)r.Next(6)), r => U32(q[r.Next(q.Length)]));
    }

    [SkippableFact]
    public void FdMapsXskmapAndRingbufAgreeOnWhatUserSpaceCanDo()
    {
        Skip_();
        var inner = S(BpfMapType.Array, 4, 8, 4);
        foreach (var spec in new[]
                 {
                     S(BpfMapType.ProgArray, 4, 4, 4), S(BpfMapType.ArrayOfMaps, 4, 4, 4, 0, inner),
                     S(BpfMapType.HashOfMaps, 4, 4, 4, 0, inner), S(BpfMapType.Xskmap, 4, 4, 4),
                 })
        {
            int innerFd = spec.Inner is null ? 0 : KCreate(inner);
            int fd = KCreate(spec, innerFd);
            var ours = BpfMapFactory.Create(spec, Cpus);
            ours.Bind(new BpfRegionTable());
            try
            {
                Assert.True(fd >= 0);
                foreach (uint k in new uint[] { 0, 3, 4, 100 })
                {
                    var v = new byte[4];
                    var ov = new byte[4];
                    long kl = KElem(1, fd, U32(k), v, 0), ol = ours.UserLookupElem(U32(k), ov);
                    Assert.True(kl == ol, $"{spec.Type} lookup {k}: kernel {kl}, softnet {ol}");
                    long kd = KElem(3, fd, U32(k), null, 0), od = ours.UserDelete(U32(k));
                    Assert.True(kd == od, $"{spec.Type} delete {k}: kernel {kd}, softnet {od}");
                    // Bad flags are refused before the fd in the value is looked at.
                    long ku = KElem(2, fd, U32(k), U32(0), 7), ou = ours.UserUpdate(U32(k), U32(0), 7);
                    Assert.True(ku == ou, $"{spec.Type} update {k}: kernel {ku}, softnet {ou}");
                    var kn = new byte[4];
                    var on = new byte[4];
                    Assert.True((KElem(4, fd, U32(k), kn, 0) == 0) == ours.GetNextKey(U32(k), on), $"{spec.Type} next {k}");
                    Assert.Equal(kn, on);
                }
            }
            finally
            {
                BpfSyscall.Close(fd);
                BpfSyscall.Close(innerFd);
            }
        }
        var rbSpec = S(BpfMapType.Ringbuf, 0, 0, 4096);
        int rfd = KCreate(rbSpec);
        var rb = BpfMapFactory.Create(rbSpec, Cpus);
        try
        {
            Assert.Equal(KElem(1, rfd, [], new byte[8], 0), rb.UserLookupElem([], new byte[8]));
            Assert.Equal(KElem(2, rfd, [], [], 0), rb.UserUpdate([], [], 0));
            Assert.Equal(KElem(3, rfd, [], null, 0), rb.UserDelete([]));
        }
        finally
        {
            BpfSyscall.Close(rfd);
        }
    }
}
