using System.Buffers.Binary;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;
using Xunit.Abstractions;
using static Softnet.KernelTests.Xdp.BpfTestFrames;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// Realistic XDP programs (tests/Softnet.Tests/Xdp/Bpf/Programs), each run on the generated frames that cover its
/// branches and on frames of the tcpdump corpus, in the kernel (BPF_PROG_TEST_RUN), our interpreter and our JIT:
/// the same return codes, the same output frames byte for byte and the same map contents at the end.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfProgramKernelTests(ITestOutputHelper output)
{
    private static byte[] U32(uint v) => BitConverter.GetBytes(v);

    /// <summary>Every frame through all three engines; maps compared after each frame when <paramref name="mapsEachFrame"/>.</summary>
    private Dictionary<uint, int> RunAll(BpfKernelCompare c, IEnumerable<(string Name, byte[] Frame)> frames, bool mapsEachFrame = false,
        Func<string, byte[], byte[]>? mask = null)
    {
        var verdicts = new Dictionary<uint, int>();
        foreach (var (name, frame) in frames)
        {
            uint v = c.Run(frame, name);
            verdicts[v] = verdicts.GetValueOrDefault(v) + 1;
            if (mapsEachFrame) c.AssertMapsEqual(mask);
        }
        c.AssertMapsEqual(mask);
        output.WriteLine($"{c.Section}: {c.Runs} frames, verdicts {string.Join(", ", verdicts.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}"))}");
        return verdicts;
    }

    [SkippableFact]
    public void Parse_headers()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("parse_headers");
        var v = RunAll(c, All(), mapsEachFrame: true);
        Assert.True(v.ContainsKey(1) && v.ContainsKey(2), "both the pass and the truncated-drop branches ran");
    }

    [SkippableFact]
    public void Port_filter()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("port_filter", setup: (obj, _) =>
        {
            var m = obj.Map("blocked_ports")!;
            foreach (ushort port in new ushort[] { 9, 22, 53 })
                Assert.Equal(0, m.UserUpdate(BitConverter.GetBytes(port), new byte[8], 0));
        });
        var v = RunAll(c, All());
        Assert.True(v.GetValueOrDefault(1u) >= 5, "drops happened");
    }

    [SkippableFact]
    public void Mac_swap_tx()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("mac_swap_tx");
        Assert.True(RunAll(c, All()).ContainsKey(3));
    }

    [SkippableFact]
    public void Percpu_counters()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("percpu_counters");
        RunAll(c, All(), mapsEachFrame: true);
        var byType = c.Kernel.ReadMap(c.Interp.Map("by_ethertype")!);
        Assert.NotNull(byType[0].PerCpu);
        Assert.True(BinaryPrimitives.ReadUInt64LittleEndian(byType[0].PerCpu![0]) > 5, "IPv4 frames counted on CPU 0");
    }

    private static byte[] Key4(int len, params byte[] addr) => [.. U32((uint)len), .. addr];
    private static byte[] Key6(int len, string addr) => [.. U32((uint)len), .. Addr6(addr)];
    private static byte[] Rule(uint action) => [.. U32(action), 0, 0, 0, 0, .. new byte[8]];

    [SkippableFact]
    public void Lpm_prefix_filter()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("lpm_prefix_filter", setup: (obj, _) =>
        {
            var p4 = obj.Map("prefixes4")!;
            Assert.Equal(0, p4.UserUpdate(Key4(8, 10, 0, 0, 0), Rule(0), 0));
            Assert.Equal(0, p4.UserUpdate(Key4(32, 10, 0, 0, 1), Rule(1), 0));
            Assert.Equal(0, p4.UserUpdate(Key4(16, 192, 168, 0, 0), Rule(2), 0));
            Assert.Equal(0, p4.UserUpdate(Key4(12, 172, 16, 0, 0), Rule(1), 0));
            Assert.Equal(0, p4.UserUpdate(Key4(24, 172, 16, 9, 0), Rule(0), 0));
            var p6 = obj.Map("prefixes6")!;
            Assert.Equal(0, p6.UserUpdate(Key6(32, "2001:db8::"), Rule(0), 0));
            Assert.Equal(0, p6.UserUpdate(Key6(48, "2001:db8:77::"), Rule(1), 0));
            Assert.Equal(0, p6.UserUpdate(Key6(128, "2001:db8::1"), Rule(2), 0));
            Assert.Equal(0, p6.UserUpdate(Key6(0, "::"), Rule(0), 0));
        });
        var v = RunAll(c, All(), mapsEachFrame: true);
        Assert.True(v.ContainsKey(1) && v.ContainsKey(2) && v.ContainsKey(3), "drop, pass and tx all ran");
    }

    [SkippableFact]
    public void Rate_limit()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        // The window is 10 s: every frame here falls in each source's first window whatever the clocks read, so
        // only the window start (the clock's own value) differs, and it is masked. Our clock ticks 1 µs a read.
        ulong now = 1_000_000_000;
        using var c = new BpfKernelCompare("rate_limit", clock: () => now += 1000);
        var frames = new List<(string, byte[])>();
        for (int i = 0; i < 6; i++) frames.Add(($"a#{i}", Udp4(53, V4A)));
        for (int i = 0; i < 2; i++) frames.Add(($"c#{i}", Tcp4(80, V4C)));
        frames.AddRange(All());
        var v = RunAll(c, frames, mask: (map, value) => map == "buckets" ? [.. new byte[8], .. value[8..]] : value);
        Assert.True(v.GetValueOrDefault(1u) >= 3);
    }

    [SkippableFact]
    public void Vlan_pop()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("vlan_pop");
        RunAll(c, All());
        var popped = c.Kernel.ReadMap(c.Interp.Map("popped")!);
        Assert.True(BinaryPrimitives.ReadUInt64LittleEndian(popped[5].Value) >= 1);
    }

    [SkippableFact]
    public void Csum_rewrite()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        static byte[] Key(byte[] addr, ushort port, byte proto) => [.. addr, (byte)(port >> 8), (byte)port, proto, 0];
        static byte[] To(byte[] addr, ushort port) => [.. addr, (byte)(port >> 8), (byte)port, 0, 0, .. new byte[8]];
        using var c = new BpfKernelCompare("csum_rewrite", setup: (obj, _) =>
        {
            var nat = obj.Map("nat")!;
            Assert.Equal(0, nat.UserUpdate(Key(V4B, 53, 17), To([192, 168, 50, 5], 5353), 0));
            Assert.Equal(0, nat.UserUpdate(Key(V4B, 80, 6), To([192, 168, 50, 6], 8080), 0));
            Assert.Equal(0, nat.UserUpdate(Key(V4C, 443, 6), To([10, 9, 8, 7], 8443), 0));
        });
        int rewritten = 0;
        foreach (var (name, frame) in All())
        {
            if (c.Run(frame, name) != 3) continue;
            rewritten++;
            // The kernel's output (equal to ours) carries valid checksums: the IPv4 header sums to zero and so does
            // the transport segment with its pseudo-header.
            var k = c.Kernel.TestRun(c.Section, frame, cpu: 0).Frame;
            Assert.Equal(0, Checksum(k.AsSpan(14, 20)));
            int l4Len = BinaryPrimitives.ReadUInt16BigEndian(k.AsSpan(16)) - 20;
            uint pseudo = (uint)(k[26] << 8 | k[27]) + (uint)(k[28] << 8 | k[29]) + (uint)(k[30] << 8 | k[31]) + (uint)(k[32] << 8 | k[33]) + k[23] + (uint)l4Len;
            bool noUdpSum = k[23] == 17 && k[40] == 0 && k[41] == 0;
            if (!noUdpSum) Assert.True(Checksum(k.AsSpan(34, l4Len), pseudo) == 0, $"{name}: transport checksum invalid after the rewrite");
        }
        Assert.True(rewritten >= 3, $"{rewritten} frames rewritten");
        // The extra kernel runs above counted hits twice in the kernel's map: compare all but the hit counts.
        c.AssertMapsEqual(mask: (map, value) => map == "nat" ? value[..8] : value);
    }

    [SkippableFact]
    public void Devmap_redirect()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        // Loopback (ifindex 1) exists in every namespace: the kernel's devmap update checks the device.
        using var c = new BpfKernelCompare("devmap_redirect", setup: (obj, _) =>
        {
            var m = obj.Map("tx_ports")!;
            Assert.Equal(0, m.UserUpdate(U32(2), U32(1), 0));   // MacA (..:0a) → slot 2
            Assert.Equal(0, m.UserUpdate(U32(6), U32(1), 0));
        });
        var frames = All();
        foreach (byte last in new byte[] { 0, 1, 3, 6, 0x0e, 0xff })
            frames.Add(($"dst ..:{last:x2}", Eth(EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 2)), dst: [2, 0, 0, 0, 0, last])));
        var v = RunAll(c, frames);
        Assert.True(v.ContainsKey(4) && v.ContainsKey(2), "redirects and fall-backs both ran");
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Tail_dispatch(bool ipv6Slot)
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("tail_dispatch", setup: (obj, load) =>
        {
            var t = (BpfProgArrayMap)obj.Map("by_ethertype")!;
            Assert.Equal(0, t.SetProgram(0, load("xdp/ipv4")));
            if (ipv6Slot) Assert.Equal(0, t.SetProgram(1, load("xdp/ipv6")));
        });
        RunAll(c, All());
    }

    [Fact]
    public void Corpus_frames_are_read_when_the_corpus_is_there()
    {
        var frames = Corpus();
        foreach (var g in frames.GroupBy(f => f.Name.Split('#')[0])) output.WriteLine($"{g.Key}: {g.Count()} frames");
        if (CorpusDir() is not null) Assert.True(frames.Count >= 200, $"only {frames.Count} corpus frames");
    }
}
