using System.Buffers.Binary;
using CsCheck;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Maps;

/// <summary>
/// The maps against plain models: a hash against a Dictionary with the kernel's flag and capacity rules, an LPM trie
/// against a scan of every stored prefix for the longest match, and an LRU hash that never holds more than
/// max_entries and always keeps what was just written.
/// </summary>
public class BpfMapPropertyTests
{
    private static byte[] U32(uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        return b;
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    private static T Bound<T>(T map) where T : BpfMap
    {
        new BpfRegionTable().AddMap(map);
        return map;
    }

    private static readonly Gen<(int Op, uint Key, ulong Value, ulong Flags)> HashOp =
        Gen.Select(Gen.Int[0, 3], Gen.UInt[0, 15], Gen.ULong, Gen.Int[0, 9].Select(f => f < 5 ? 0ul : f < 8 ? 1ul : 2ul));

    [Fact]
    public void HashMapBehavesLikeADictionaryWithTheKernelsRules()
    {
        HashOp.Array[1, 200].Sample(ops =>
        {
            const int max = 8;
            var map = Bound(new BpfHashMap(new BpfMapSpec("h", BpfMapType.Hash, 4, 8, max)));
            var model = new Dictionary<uint, ulong>();
            var v = new byte[8];
            foreach (var (op, key, value, flags) in ops)
            {
                var k = U32(key);
                switch (op)
                {
                    case 0:
                    {
                        bool has = model.ContainsKey(key);
                        long want = has && flags == 1 ? -17 : !has && flags == 2 ? -2 : !has && model.Count == max ? -7 : 0;
                        if (want == 0) model[key] = value;
                        Assert.Equal(want, map.UserUpdate(k, U64(value), flags));
                        break;
                    }
                    case 1:
                        Assert.Equal(model.TryGetValue(key, out var mv), map.UserLookup(k, v));
                        if (model.ContainsKey(key)) Assert.Equal(mv, BinaryPrimitives.ReadUInt64LittleEndian(v));
                        break;
                    case 2:
                        Assert.Equal(model.Remove(key) ? 0 : -2, map.Delete(k));
                        break;
                    default:
                    {
                        // Program-side lookup agrees with user space.
                        Assert.Equal(model.ContainsKey(key), map.Lookup(k, 0) != 0);
                        break;
                    }
                }
                Assert.Equal(model.Count, map.Count);
            }
            var walked = new List<uint>();
            var prev = Array.Empty<byte>();
            var next = new byte[4];
            while (map.GetNextKey(prev, next))
            {
                walked.Add(BinaryPrimitives.ReadUInt32LittleEndian(next));
                prev = (byte[])next.Clone();
            }
            Assert.Equal(model.Keys.Order(), walked.Order());
        });
    }

    private static readonly Gen<(uint Addr, int Len)> Prefix = Gen.Select(Gen.UInt[0, 0xFFFF].Select(x => 0x0A000000u | (x << 8)), Gen.Int[0, 32]);

    private static byte[] LpmKey(uint addr, int len)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)len);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), addr);
        return b;
    }

    private static uint Mask(int len) => len == 0 ? 0 : uint.MaxValue << (32 - len);

    [Fact]
    public void LpmTrieFindsTheLongestStoredPrefix()
    {
        Gen.Select(Prefix.Array[1, 60], Gen.Int[0, 59].Array[0, 20], Gen.UInt[0, 0xFFFF].Select(x => 0x0A000000u | (x << 8) | (x & 0xFF)).Array[1, 40])
            .Sample((prefixes, deletes, probes) =>
            {
                var map = Bound(new BpfLpmTrieMap(new BpfMapSpec("lpm", BpfMapType.LpmTrie, 8, 4, 64, BpfMapFlags.NoPrealloc)));
                var model = new Dictionary<(uint, int), uint>();
                uint n = 0;
                foreach (var (addr, len) in prefixes)
                {
                    n++;
                    var key = (addr & Mask(len), len);
                    model[key] = n;
                    Assert.Equal(0, map.UserUpdate(LpmKey(addr, len), U32(n), 0));
                }
                foreach (int d in deletes)
                {
                    if (d >= prefixes.Length) continue;
                    var (addr, len) = prefixes[d];
                    bool had = model.Remove((addr & Mask(len), len));
                    Assert.Equal(had ? 0 : -2, map.Delete(LpmKey(addr, len)));
                }
                Assert.Equal(model.Count, map.Count);
                var v = new byte[4];
                foreach (uint probe in probes)
                {
                    var best = model.Where(e => (probe & Mask(e.Key.Item2)) == e.Key.Item1).OrderByDescending(e => e.Key.Item2).FirstOrDefault();
                    bool found = map.UserLookup(LpmKey(probe, 32), v);
                    Assert.Equal(best.Value != 0, found);
                    if (found) Assert.Equal(best.Value, BinaryPrimitives.ReadUInt32LittleEndian(v));
                }
                // get_next_key visits every prefix once, more specific before any prefix containing it.
                var walked = new List<(uint, int)>();
                var prev = Array.Empty<byte>();
                var next = new byte[8];
                while (map.GetNextKey(prev, next))
                {
                    walked.Add((BinaryPrimitives.ReadUInt32BigEndian(next.AsSpan(4)) & Mask((int)BinaryPrimitives.ReadUInt32LittleEndian(next)),
                        (int)BinaryPrimitives.ReadUInt32LittleEndian(next)));
                    prev = (byte[])next.Clone();
                }
                Assert.Equal(model.Keys.OrderBy(k => k), walked.OrderBy(k => k));
                for (int i = 0; i < walked.Count; i++)
                    for (int j = i + 1; j < walked.Count; j++)
                        Assert.False(walked[j].Item2 > walked[i].Item2 && (walked[j].Item1 & Mask(walked[i].Item2)) == walked[i].Item1,
                            "a longer prefix came after a prefix containing it");
            });
    }

    [Fact]
    public void LruHashNeverExceedsMaxEntriesAndKeepsWhatWasJustWritten()
    {
        // Which keys the kernel's bpf_lru evicts is checked against the kernel itself (BpfLruTests, and KernelTests
        // Xdp/BpfProgramKernelTests.Lru_flows); here, what holds whatever it evicts.
        Gen.Select(Gen.Int[0, 2], Gen.UInt[0, 40], Gen.Int[0, 1]).Array[1, 300].Sample(ops =>
        {
            const int max = 6;
            var map = Bound(new BpfLruHashMap(new BpfMapSpec("lru", BpfMapType.LruHash, 4, 8, max), 2));
            var model = new Dictionary<uint, ulong>();
            foreach (var (op, key, cpu) in ops)
            {
                var k = U32(key);
                if (op == 0)
                {
                    Assert.Equal(0, map.Update(k, U64(key * 3), 0, cpu));
                    model[key] = key * 3;
                    var v = new byte[8];
                    Assert.True(map.UserLookup(k, v));
                    Assert.Equal(key * 3, BinaryPrimitives.ReadUInt64LittleEndian(v));
                }
                else if (op == 1) map.Lookup(k, cpu);
                else map.Delete(k);
                if (op == 2) model.Remove(key);
                Assert.True(map.Count <= max);
                // Whatever is still there has the value last written.
                foreach (var (kk, vv) in model)
                {
                    var v = new byte[8];
                    if (map.UserLookup(U32(kk), v)) Assert.Equal(vv, BinaryPrimitives.ReadUInt64LittleEndian(v));
                }
            }
        });
    }
}
