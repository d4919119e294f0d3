using System.Buffers.Binary;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Maps;

/// <summary>
/// The LRU maps evict as kernel/bpf/bpf_lru.c does (the whole sequence is compared with the kernel by KernelTests
/// Xdp/BpfProgramKernelTests.Lru_flows): with 8 elements on 2 CPUs a CPU takes target_free = 2 elements at a time, so
/// the ninth key flushes the pending elements into the inactive list and evicts its two oldest unreferenced keys;
/// a key a program looked up in between is moved to the active list and spared.
/// </summary>
public class BpfLruTests
{
    private static byte[] K(uint v) => BitConverter.GetBytes(v);

    private static BpfLruHashMap Map(uint flags = 0)
    {
        var m = new BpfLruHashMap(new BpfMapSpec("lru", BpfMapType.LruHash, 4, 8, 8, flags), possibleCpus: 2);
        m.Bind(new BpfRegionTable());
        return m;
    }

    private static uint[] Keys(BpfMap m)
        => Enumerable.Range(0, 64).Select(i => (uint)i).Where(k => m.UserLookup(K(k), new byte[8])).ToArray();

    [Fact]
    public void The_ninth_key_evicts_the_two_oldest()
    {
        var m = Map();
        for (uint k = 1; k <= 9; k++) Assert.Equal(0, m.Update(K(k), new byte[8], 0, cpu: 0));
        Assert.Equal([3u, 4, 5, 6, 7, 8, 9], Keys(m));
        Assert.Equal(0, m.Update(K(10), new byte[8], 0, cpu: 0)); // the second freed element: no eviction
        Assert.Equal(8, m.Count);
    }

    [Fact]
    public void A_key_looked_up_since_is_spared()
    {
        var m = Map();
        for (uint k = 1; k <= 8; k++) Assert.Equal(0, m.Update(K(k), new byte[8], 0, cpu: 0));
        Assert.NotEqual(0ul, m.Lookup(K(1), 0));
        Assert.Equal(0, m.Update(K(9), new byte[8], 0, cpu: 0));
        Assert.Equal([1u, 4, 5, 6, 7, 8, 9], Keys(m));
    }

    [Fact]
    public void A_replacing_update_still_takes_an_element_and_may_evict()
    {
        var m = Map();
        for (uint k = 1; k <= 8; k++) Assert.Equal(0, m.Update(K(k), new byte[8], 0, cpu: 0));
        var v = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(v, 77);
        Assert.Equal(0, m.Update(K(8), v, 0, cpu: 0));
        Assert.Equal([3u, 4, 5, 6, 7, 8], Keys(m));
        Assert.True(m.UserLookup(K(8), v));
        Assert.Equal(77ul, BinaryPrimitives.ReadUInt64LittleEndian(v));
    }

    [Fact]
    public void Without_a_common_lru_each_cpu_evicts_from_its_own_share()
    {
        var m = Map(BpfMapFlags.NoCommonLru);
        // CPU 0 owns four elements: its fifth key evicts within them and CPU 1's keys stay.
        for (uint k = 1; k <= 4; k++) Assert.Equal(0, m.Update(K(k), new byte[8], 0, cpu: 0));
        for (uint k = 11; k <= 14; k++) Assert.Equal(0, m.Update(K(k), new byte[8], 0, cpu: 1));
        Assert.Equal(0, m.Update(K(5), new byte[8], 0, cpu: 0));
        var keys = Keys(m);
        Assert.Contains(5u, keys);
        Assert.True(keys.Count(k => k >= 11) == 4, string.Join(",", keys));
        Assert.True(keys.Count(k => k <= 5) <= 4, string.Join(",", keys));
    }
}
