using System.Runtime.InteropServices;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// The LRU maps filled past max_entries from user space (bpf(2) updates, deletes and lookups on a thread pinned to
/// CPU 0, as Softnet's user-side calls take CPU 0): after every operation the kernel's map and Softnet's hold the same
/// keys and values, and every call returns the same errno — so evictions, which bpf_lru makes in batches from the
/// inactive list, pick the same keys. (Programs' lookups, which set the reference bit, are covered by
/// BpfProgramKernelTests.Lru_flows.)
/// </summary>
[Trait("Category", "Kernel")]
public class BpfLruKernelTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern unsafe int sched_setaffinity(int pid, nint size, byte* mask);

    private static unsafe void PinToCpu0()
    {
        byte* mask = stackalloc byte[128];
        new Span<byte>(mask, 128).Clear();
        mask[0] = 1;
        Assert.Equal(0, sched_setaffinity(0, 128, mask));
    }

    private static long KUpdate(int fd, byte[] key, byte[] value, ulong flags)
    {
        try { BpfSyscall.UpdateElem(fd, key, value, flags); return 0; }
        catch (BpfSyscallException e) { return -e.Errno; }
    }

    [SkippableTheory]
    [InlineData(BpfMapType.LruHash, 0u, 16)]
    [InlineData(BpfMapType.LruHash, 0u, 300)]
    [InlineData(BpfMapType.LruHash, BpfMapFlags.NoCommonLru, 16)]
    [InlineData(BpfMapType.LruPercpuHash, 0u, 16)]
    [InlineData(BpfMapType.LruPercpuHash, BpfMapFlags.NoCommonLru, 24)]
    public void Lru_maps_evict_the_same_keys_as_the_kernel(BpfMapType type, uint flags, int maxEntries)
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        int cpus = BpfKernelObject.PossibleCpus();
        var spec = new BpfMapSpec("lru", type, 4, 8, maxEntries, flags);
        var ours = BpfMapFactory.Create(spec, cpus);
        ours.Bind(new BpfRegionTable());
        Exception? failure = null;
        var t = new Thread(() =>
        {
            try
            {
                PinToCpu0();
                int fd = BpfSyscall.CreateMap((uint)type, 4, 8, (uint)maxEntries, flags);
                try { Drive(fd, ours, maxEntries); }
                finally { BpfSyscall.Close(fd); }
            }
            catch (Exception e) { failure = e; }
        });
        t.Start();
        t.Join();
        if (failure is not null) throw new Xunit.Sdk.XunitException($"{type} flags 0x{flags:x} max {maxEntries}: {failure.Message}\n{failure.StackTrace}");
    }

    private static void Drive(int fd, BpfMap ours, int maxEntries)
    {
        var rng = new Random(maxEntries * 7 + (int)ours.Type);
        int keys = maxEntries * 3;
        int valueSize = ours.UserValueSize;
        for (int op = 0; op < 1500; op++)
        {
            var key = BitConverter.GetBytes((uint)rng.Next(keys));
            int kind = rng.Next(10);
            string what;
            if (kind < 7)
            {
                ulong f = (ulong)rng.Next(3);
                var value = new byte[valueSize];
                rng.NextBytes(value);
                // Per-CPU values carry padding up to 8 bytes a CPU; the key size is 8 here, so none.
                long k = KUpdate(fd, key, value, f), o = ours.UserUpdate(key, value, f);
                what = $"op {op}: update {BitConverter.ToUInt32(key)} flags {f}";
                Assert.True(k == o, $"{what}: kernel {k}, softnet {o}");
            }
            else if (kind < 9)
            {
                bool k = BpfSyscall.DeleteElem(fd, key);
                long o = ours.UserDelete(key);
                what = $"op {op}: delete {BitConverter.ToUInt32(key)}";
                Assert.True(k == (o == 0), $"{what}: kernel {(k ? 0 : -2)}, softnet {o}");
            }
            else
            {
                var kv = new byte[valueSize];
                var ov = new byte[valueSize];
                bool k = BpfSyscall.LookupElem(fd, key, kv), o = ours.UserLookup(key, ov);
                what = $"op {op}: lookup {BitConverter.ToUInt32(key)}";
                Assert.True(k == o && kv.AsSpan().SequenceEqual(ov), $"{what}: kernel {k}, softnet {o}");
            }
            var kernel = Contents(fd, valueSize);
            var softnet = BpfKernelObject.ReadOurs(ours).Select(e => $"{BitConverter.ToUInt32(e.Key)}={Convert.ToHexString(e.Value)}").Order(StringComparer.Ordinal).ToList();
            Assert.True(kernel.SequenceEqual(softnet), $"{what}: contents differ\n kernel  {string.Join(" ", kernel)}\n softnet {string.Join(" ", softnet)}");
        }
    }

    private static List<string> Contents(int fd, int valueSize)
    {
        var list = new List<string>();
        var key = Array.Empty<byte>();
        var next = new byte[4];
        while (BpfSyscall.GetNextKey(fd, key, next))
        {
            key = (byte[])next.Clone();
            var v = new byte[valueSize];
            if (BpfSyscall.LookupElem(fd, key, v)) list.Add($"{BitConverter.ToUInt32(key)}={Convert.ToHexString(v)}");
        }
        list.Sort(StringComparer.Ordinal);
        return list;
    }
}
