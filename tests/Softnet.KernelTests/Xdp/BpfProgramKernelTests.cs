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
        if (Environment.ProcessorCount < 2) return;
        // The same frames again on CPU 1: each CPU's slot holds what ran there, in the kernel as here.
        c.Cpu = 1;
        RunAll(c, Generated(), mapsEachFrame: true);
        byType = c.Kernel.ReadMap(c.Interp.Map("by_ethertype")!);
        Assert.True(BinaryPrimitives.ReadUInt64LittleEndian(byType[0].PerCpu![1]) > 5, "IPv4 frames counted on CPU 1");
        Assert.Equal(1u, BitConverter.ToUInt32(c.Kernel.ReadMap(c.Interp.Map("last_cpu")!)[0].Value));
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

    [SkippableFact]
    public void Ipv6_ext_loop()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("ipv6_ext_loop");
        var frames = All();
        // Chains of 0..7 extension headers (hop-by-hop first, then destination options, routing, a fragment header).
        for (int depth = 0; depth <= 7; depth++)
        {
            var ext = new List<byte>();
            byte[] kinds = [60, 43, 44, 60, 43, 60, 60];
            for (int i = 0; i < depth; i++)
            {
                byte next = i + 1 < depth ? kinds[i] : (byte)17;
                ext.AddRange(i < depth - 1 && kinds[i] == 44 ? [next, 0, 0, 0, 0, 0, 0, 1] : [next, (byte)(i % 2), .. new byte[6 + 8 * (i % 2)]]);
            }
            byte first = depth == 0 ? (byte)17 : (byte)0;
            frames.Add(($"{depth} extension headers", Eth(EtherIpv6, Ipv6(first, V6A, V6B, Udp(1, 53), ext: [.. ext], l4Proto: 17))));
        }
        RunAll(c, frames);
    }

    [SkippableFact]
    public void Map_in_map()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        int cpus = BpfKernelObject.PossibleCpus();
        using var c = new BpfKernelCompare("map_in_map", setup: (obj, _) =>
        {
            var byProto = (BpfArrayOfMapsMap)obj.Map("by_proto")!;
            Assert.Equal(0, byProto.SetMap(0, BpfMapFactory.Create(byProto.Spec.Inner! with { Name = "udp_sources" }, cpus)));
            var byType = (BpfHashOfMapsMap)obj.Map("by_ethertype")!;
            foreach (ushort t in new ushort[] { 0x0800, 0x86dd, 0x8100 })
                Assert.Equal(0, byType.SetMap(BitConverter.GetBytes(t), BpfMapFactory.Create(byType.Spec.Inner! with { Name = $"type_{t:x4}" }, cpus)));
        });
        RunAll(c, All(), mapsEachFrame: true);
        var udp = c.Kernel.ReadMap(((BpfArrayOfMapsMap)c.Interp.Map("by_proto")!).MapAt(0)!);
        // The built frames have two UDP sources; the corpus adds more.
        Assert.True(udp.Count >= (CorpusDir() is null ? 2 : 3), $"{udp.Count} UDP sources");
    }

    [SkippableFact]
    public void Redirect_flags()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("redirect_flags", setup: (obj, _) =>
        {
            // Loopback (ifindex 1) is the one device every namespace has.
            Assert.Equal(0, obj.Map("tx_ports")!.UserUpdate(U32(2), U32(1), 0));
            Assert.Equal(0, obj.Map("tx_ports")!.UserUpdate(U32(5), U32(1), 0));
            Assert.Equal(0, obj.Map("ports_by_key")!.UserUpdate(U32(3), U32(1), 0));
            Assert.Equal(0, obj.Map("cpus")!.UserUpdate(U32(1), [.. U32(256), .. U32(0)], 0));
        });
        var frames = new List<(string, byte[])>();
        foreach (byte flags in new byte[] { 0, 1, 2, 3, 4, 7, 8, 9, 16, 24, 25, 32, 0x80 })
            foreach (byte sel in new byte[] { 0, 2, 5, 7, 0x10, 0x13, 0x17, 0x20, 0x21, 0x23 })
                frames.Add(($"flags {flags:x} sel {sel:x}", Eth(EtherIpv4, Ipv4(17, V4A, V4B, Udp(1, 2)), dst: [2, 0, 0, 0, flags, sel])));
        var v = RunAll(c, frames);
        Assert.True(v.ContainsKey(4) && v.ContainsKey(0), "redirects and aborts both ran");
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
        // In CI the corpus must be there: the comparisons would otherwise run on the built frames alone, silently.
        if (CorpusDir() is null && Environment.GetEnvironmentVariable("CI") is { Length: > 0 })
            Assert.Fail("CI without the tcpdump corpus (shared/corpus beside the clone or /work/shared/corpus)");
        if (CorpusDir() is not null) Assert.True(frames.Count >= 200, $"only {frames.Count} corpus frames");
    }

    [SkippableFact]
    public void Meta_trim()
    {
        var why = BpfKernelCompare.AdjustMetaRefused();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("meta_trim");
        var frames = All();
        frames.Add(("udp4 with a 20-byte trailer", [.. Udp4(53), .. new byte[20]]));
        frames.Add(("tcp4 with Ethernet padding", [.. Eth(EtherIpv4, Ipv4(6, V4A, V4B, Tcp(1, 2, payload: 0))), .. new byte[6]]));
        frames.Add(("bare 14 bytes", Eth(0x88b5, [])));
        RunAll(c, frames, mapsEachFrame: true);
    }

    [SkippableFact]
    public void Ipip_encap()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        static byte[] Backend(byte[] addr, byte[] src, ushort vlan) => [.. addr, .. src, 2, 0, 0, 0, 0, 0x99, (byte)vlan, (byte)(vlan >> 8), .. new byte[8]];
        using var c = new BpfKernelCompare("ipip_encap", setup: (obj, _) =>
        {
            var vips = obj.Map("vips")!;
            Assert.Equal(0, vips.UserUpdate(V4B, Backend([192, 168, 9, 1], [192, 168, 9, 254], 0), 0));
            Assert.Equal(0, vips.UserUpdate(V4D, Backend([192, 168, 9, 2], [192, 168, 9, 254], 300), 0));
        });
        var v = RunAll(c, All());
        Assert.True(v.GetValueOrDefault(3u) >= 10, "frames were encapsulated");
        // The outer header the kernel built (and ours, equal) sums to zero.
        var k = c.Kernel.TestRun(c.Section, Udp4(53), cpu: 0).Frame;
        Assert.Equal(0x0800, k[12] << 8 | k[13]);
        Assert.Equal(0, Checksum(k.AsSpan(14, 20)));
        Assert.Equal(4, k[23]);
    }

    [SkippableFact]
    public void Ringbuf_events()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("ringbuf_events");
        // 16-byte records in a 4096-byte ring: the ring fills, then refuses; drained, it takes records again.
        var frames = new List<(string, byte[])>();
        for (int i = 0; i < 300; i++) frames.Add(($"event {i}", Udp4(53, [10, 0, 0, (byte)i], payload: i)));
        var v = RunAll(c, frames);
        Assert.True(v.GetValueOrDefault(1u) > 0, "the ring filled up");
        var kernel = c.Kernel.DrainRingbuf(c.Interp.Map("events")!);
        var ours = new List<byte[]>();
        ((BpfRingbufMap)c.Interp.Map("events")!).Drain(r => ours.Add(r.ToArray()));
        var jit = new List<byte[]>();
        ((BpfRingbufMap)c.Jit.Map("events")!).Drain(r => jit.Add(r.ToArray()));
        Assert.True(kernel.Count > 100, $"{kernel.Count} records");
        Assert.Equal(kernel.Select(Convert.ToHexString), ours.Select(Convert.ToHexString));
        Assert.Equal(kernel.Select(Convert.ToHexString), jit.Select(Convert.ToHexString));
        RunAll(c, Generated());
        Assert.Equal(c.Kernel.DrainRingbuf(c.Interp.Map("events")!).Count, ((BpfRingbufMap)c.Interp.Map("events")!).Drain(_ => { }));
    }

    [SkippableFact]
    public void Lru_flows()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("lru_flows");
        var frames = new List<(string, byte[])>();
        // 40 flows from 12 sources, some seen again, then every built and corpus frame: all three LRU maps overflow,
        // and the same keys are evicted here as in the kernel.
        for (int round = 0; round < 3; round++)
            for (int i = 0; i < 40; i += round + 1)
                frames.Add(($"round {round} flow {i}", Udp4((ushort)(1000 + i), [10, 0, 0, (byte)(i % 12)], payload: 10 + i)));
        frames.AddRange(All());
        RunAll(c, frames, mapsEachFrame: true);
        if (Environment.ProcessorCount < 2) return;
        // Then on CPU 1, alternating with CPU 0: each CPU's local free and pending lists, and stealing between them.
        for (int i = 0; i < 60; i++)
        {
            c.Cpu = i % 3 == 0 ? 0 : 1;
            c.Run(Udp4((ushort)(2000 + i), [10, 0, 1, (byte)(i % 20)], payload: 10 + i), $"cpu {c.Cpu} flow {i}");
            c.AssertMapsEqual();
        }
    }

    /// <summary>A router namespace r between a (eth0) and b (eth1), as a scenario folder both the kernel harness and
    /// Softnet's loader read: connected routes, a gateway route with its neighbour and one without, blackhole,
    /// unreachable and prohibit routes, eth1 with MTU 1400, IPv6 alongside.</summary>
    private static string FibScenario(bool forwarding)
    {
        string dir = Directory.CreateTempSubdirectory("softnet-xdp-fib-").FullName;
        File.WriteAllText(Path.Combine(dir, "links.batch"), """
            netns add r
            netns add a
            netns add b
            link add name eth0 netns r type veth peer name eth0 netns a
            link add name eth1 netns r type veth peer name eth0 netns b

            """);
        foreach (var ns in new[] { "r", "a", "b" }) Directory.CreateDirectory(Path.Combine(dir, "ns", ns));
        string fwd = forwarding ? "1" : "0";
        File.WriteAllText(Path.Combine(dir, "ns", "r", "sysctl.conf"), $"""
            net.ipv4.ip_forward = {fwd}
            net.ipv6.conf.all.forwarding = {fwd}
            net.ipv6.conf.default.accept_dad = 0
            net.ipv6.conf.all.router_solicitations = 0
            net.ipv6.conf.default.router_solicitations = 0

            """);
        File.WriteAllText(Path.Combine(dir, "ns", "r", "ip.batch"), """
            link set lo up
            link set eth0 address 02:00:00:00:01:01
            addr add 10.1.0.1/24 dev eth0
            link set eth0 up
            link set eth1 address 02:00:00:00:02:01
            link set eth1 mtu 1400
            addr add 10.2.0.1/24 dev eth1
            link set eth1 up
            neigh add 10.1.0.2 lladdr 02:00:00:00:01:02 dev eth0 nud permanent
            neigh add 10.2.0.2 lladdr 02:00:00:00:02:02 dev eth1 nud permanent
            route add 10.3.0.0/16 via 10.2.0.2 dev eth1
            route add 10.4.0.0/16 via 10.2.0.9 dev eth1
            route add blackhole 10.5.0.0/16
            route add unreachable 10.6.0.0/16
            route add prohibit 10.7.0.0/16
            addr add 2001:db8:1::1/64 dev eth0 nodad
            addr add 2001:db8:2::1/64 dev eth1 nodad
            neigh add 2001:db8:1::2 lladdr 02:00:00:00:01:02 dev eth0 nud permanent
            neigh add 2001:db8:2::2 lladdr 02:00:00:00:02:02 dev eth1 nud permanent
            -6 route add 2001:db8:3::/48 via 2001:db8:2::2 dev eth1
            -6 route add 2001:db8:4::/48 via 2001:db8:2::9 dev eth1
            -6 route add blackhole 2001:db8:5::/48

            """);
        foreach (var ns in new[] { "a", "b" })
        {
            File.WriteAllText(Path.Combine(dir, "ns", ns, "sysctl.conf"), """
                net.ipv6.conf.all.disable_ipv6 = 1
                net.ipv6.conf.default.disable_ipv6 = 1

                """);
            File.WriteAllText(Path.Combine(dir, "ns", ns, "ip.batch"), """
                link set lo up
                link set eth0 up

                """);
        }
        return dir;
    }

    /// <summary>Frames from a (10.1.0.2 / 2001:db8:1::2) to every kind of destination the router has.</summary>
    private static List<(string, byte[])> FibFrames()
    {
        byte[] a = [10, 1, 0, 2];
        var l = new List<(string, byte[])>();
        foreach (var (name, dst) in new (string, byte[])[]
        {
            ("via gateway", [10, 3, 0, 5]), ("connected with neighbour", [10, 2, 0, 2]), ("connected without neighbour", [10, 2, 0, 7]),
            ("gateway without neighbour", [10, 4, 0, 1]), ("blackhole", [10, 5, 0, 1]), ("unreachable", [10, 6, 0, 1]),
            ("prohibit", [10, 7, 0, 1]), ("local address", [10, 1, 0, 1]), ("no route", [8, 8, 8, 8]), ("other local address", [10, 2, 0, 1]),
            ("broadcast", [10, 2, 0, 255]), ("multicast", [224, 0, 0, 5]), ("limited broadcast", [255, 255, 255, 255]),
        })
        {
            l.Add(($"udp4 {name}", Udp4(53, a, dst)));
            l.Add(($"tcp4 {name}", Tcp4(80, a, dst)));
        }
        l.Add(("over eth1's mtu", Udp4(53, a, [10, 3, 0, 5], payload: 1400)));
        l.Add(("at eth1's mtu", Udp4(53, a, [10, 3, 0, 5], payload: 1400 - 28)));
        l.Add(("ttl 1", Eth(EtherIpv4, Ipv4(17, a, [10, 3, 0, 5], Udp(1, 2), ttl: 1))));
        l.Add(("ttl 2", Eth(EtherIpv4, Ipv4(17, a, [10, 3, 0, 5], Udp(1, 2), ttl: 2))));
        l.Add(("tos 0x10", Eth(EtherIpv4, Ipv4(17, a, [10, 3, 0, 5], Udp(1, 2), tos: 0x10))));
        byte[] a6 = Addr6("2001:db8:1::2");
        foreach (var (name, dst) in new (string, string)[]
        {
            ("via gateway", "2001:db8:3::5"), ("connected with neighbour", "2001:db8:2::2"), ("connected without neighbour", "2001:db8:2::7"),
            ("gateway without neighbour", "2001:db8:4::1"), ("blackhole", "2001:db8:5::1"), ("no route", "2001:db8:99::1"),
            ("local address", "2001:db8:1::1"), ("link-local", "fe80::1"), ("multicast", "ff02::1"), ("global multicast", "ff0e::1"),
            ("loopback", "::1"), ("unspecified", "::"), ("v4-mapped", "::ffff:10.3.0.5"),
        })
            l.Add(($"udp6 {name}", Eth(EtherIpv6, Ipv6(17, a6, Addr6(dst), Udp(1, 53)))));
        l.Add(("udp6 from link-local", Eth(EtherIpv6, Ipv6(17, Addr6("fe80::2"), Addr6("2001:db8:3::5"), Udp(1, 53)))));
        l.Add(("udp6 from multicast", Eth(EtherIpv6, Ipv6(17, Addr6("ff02::2"), Addr6("2001:db8:3::5"), Udp(1, 53)))));
        l.Add(("udp6 over eth1's mtu", Eth(EtherIpv6, Ipv6(17, a6, Addr6("2001:db8:3::5"), Udp(1, 53, 1400)))));
        l.Add(("udp6 hop limit 1", Eth(EtherIpv6, Ipv6(17, a6, Addr6("2001:db8:3::5"), Udp(1, 53), hopLimit: 1))));
        return l;
    }

    [SkippableTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Fib_forward_against_a_namespace(bool forwarding)
    {
        var why = BpfKernelCompare.SkipReason() ?? Support.Netns.Unavailable("sysctl");
        Skip.If(why != null, why);
        string dir = FibScenario(forwarding);
        string prefix = Support.Netns.UniqueName("snfib");
        var created = new List<string>();
        try
        {
            var folder = Support.ScenarioFolder.Load(dir);
            Support.KernelScenario.Build(folder, prefix, Directory.CreateTempSubdirectory("softnet-xdp-fib-work-").FullName, created);
            var scenario = Softnet.Topology.ScenarioLoader.Load(dir);
            var r = scenario.Namespace("r")!;
            string kr = Support.KernelScenario.KernelName(prefix, "r");
            uint Kernel(string dev)
            {
                using var j = System.Text.Json.JsonDocument.Parse(Support.Proc.Check("ip", "-n", kr, "-j", "link", "show", "dev", dev));
                return (uint)j.RootElement[0].GetProperty("ifindex").GetInt32();
            }
            uint eth0 = Kernel("eth0"), eth1 = Kernel("eth1");
            Assert.True(eth0 == (uint)r.Device("eth0")!.Ifindex && eth1 == (uint)r.Device("eth1")!.Ifindex,
                $"ifindexes differ: kernel eth0 {eth0} eth1 {eth1}, Softnet {r.Device("eth0")!.Ifindex} {r.Device("eth1")!.Ifindex}");

            string path = $"/run/netns/{kr}";
            foreach (var section in new[] { "xdp", "xdp/output", "xdp/direct", "xdp/skip_neigh" })
            {
                using var c = new BpfKernelCompare("fib_forward", section, fib: new Softnet.Link.NamespaceBpfFib(r));
                var verdicts = new Dictionary<uint, int>();
                foreach (var (name, frame) in FibFrames().Concat(All()))
                {
                    uint v = c.Run(frame, $"{section} eth0: {name}", eth0, netnsPath: path);
                    verdicts[v] = verdicts.GetValueOrDefault(v) + 1;
                    c.AssertMapsEqual();
                }
                // From b's side: back to a.
                c.Run(Udp4(53, [10, 2, 0, 2], [10, 1, 0, 2]), $"{section} eth1: to a", eth1, netnsPath: path);
                c.Run(Eth(EtherIpv6, Ipv6(17, Addr6("2001:db8:2::2"), Addr6("2001:db8:1::2"), Udp(1, 53))), $"{section} eth1: udp6 to a", eth1, netnsPath: path);
                c.AssertMapsEqual();
                output.WriteLine($"forwarding {forwarding} {section}: {c.Runs} frames, verdicts {string.Join(", ", verdicts.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}×{kv.Value}"))}");
                foreach (var e in c.Kernel.ReadMap(c.Interp.Map("answers")!).Where(e => e.Value.AsSpan().IndexOfAnyExcept((byte)0) >= 0))
                    output.WriteLine($"  rc {BitConverter.ToUInt32(e.Key)}: {e}");
                if (forwarding && section == "xdp") Assert.True(verdicts.GetValueOrDefault(4u) >= 4, "frames were forwarded");
            }
        }
        finally
        {
            foreach (var ns in created) Support.Proc.Run("ip", "netns", "del", ns);
            Directory.Delete(dir, true);
        }
    }
}
