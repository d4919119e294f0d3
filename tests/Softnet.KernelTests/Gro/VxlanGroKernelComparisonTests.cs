using System.Buffers.Binary;
using Softnet.Gro;
using Softnet.KernelTests.Support;
using Softnet.Packets;
using Softnet.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Softnet.KernelTests.Gro;

/// <summary>
/// udp_tunnel GRO against the kernel: the GRO harness's veth pair (GRO on at the receiving end, see KernelGro.cs) with
/// a VXLAN device on UDP 8472 up in the receiving namespace, so its socket's vxlan_gro_receive is registered; VXLAN
/// frames of inner TCP flows are injected and the frames the receiving veth passes up (what tcpdump there shows, the
/// VXLAN device then decapsulating each) are compared byte for byte with Softnet's GRO given the same port. With the
/// VXLAN device down (no socket) the same frames must pass unmerged on both sides.
/// </summary>
[Trait("Category", "Kernel")]
public sealed class VxlanGroKernelComparisonTests(ITestOutputHelper output)
{
    private const ushort Port = 8472;
    private const int Mss = 1398;

    /// <summary>An inner TCP segment wrapped as a VXLAN sender puts it on the wire.</summary>
    private sealed record Vx(TcpFrame Inner, ushort OuterId, uint Vni = 1, ushort Sport = 45000, bool UdpCsum = false,
        bool OuterDf = false, ushort Dport = Port)
    {
        public Vx Next() => this with
        {
            Inner = Inner with { Seq = Inner.Seq + (uint)Inner.PayloadLength, IpId = (ushort)(Inner.IpId + 1) },
            OuterId = (ushort)(OuterId + 1),
        };

        public byte[] Build() => VxlanPackets.Frame(KernelGro.RxMac, KernelGro.TxMac,
            VxlanPackets.Datagram(Inner.Build(), [10, 99, 0, 1], [10, 99, 0, 2], Vni, Sport, Dport, id: OuterId, df: OuterDf,
                udpChecksum: UdpCsum));
    }

    private static Vx First(ushort innerPort = 1500, ushort outerId = 100, bool udpCsum = false)
        => new(new TcpFrame { SrcPort = innerPort, PayloadLength = Mss, TcpOptions = TcpOpt.Ts(1, 2), IpId = 1 }, outerId, UdpCsum: udpCsum);

    private static List<Vx> Train(Vx first, int n)
    {
        var l = new List<Vx> { first };
        while (l.Count < n) l.Add(l[^1].Next());
        return l;
    }

    /// <summary>The cases: name and one burst of frames each.</summary>
    private static List<(string Name, List<byte[]> Frames)> Cases()
    {
        var cases = new List<(string, List<byte[]>)>();
        void Add(string name, IEnumerable<Vx> frames) => cases.Add((name, frames.Select(f => f.Build()).ToList()));
        Add("one inner flow", Train(First(), 8));
        Add("outer checksum", Train(First(udpCsum: true), 8));
        var a = Train(First(), 4);
        Add("vni change", a.Concat(Train(a[^1].Next() with { Vni = 2 }, 4)));
        Add("checksum presence change", a.Concat(Train(a[^1].Next() with { UdpCsum = true }, 4)));
        // Two inner flows through one outer flow, each with its own run of outer IDs (a TSO sender's ID blocks).
        var x = Train(First(1500, 100), 6);
        var y = Train(First(1501, 2000), 6);
        Add("two inner flows", x.Zip(y).SelectMany(p => new[] { p.First, p.Second }));
        // The same with one ID counter for both (IDs advance by two within each inner flow).
        ushort id = 300;
        Add("shared outer ids", x.Zip(y).SelectMany(p => new[] { p.First with { OuterId = id++ }, p.Second with { OuterId = id++ } }));
        Add("outer id jump", Train(First(), 6).Select((f, i) => i < 3 ? f : f with { OuterId = (ushort)(f.OuterId + 40) }));
        Add("fixed outer id", Train(First(), 6).Select(f => f with { OuterId = 77 }));
        Add("fixed outer id with df", Train(First(), 6).Select(f => f with { OuterId = 77, OuterDf = true }));
        Add("fixed inner id", Train(First(), 6).Select(f => f with { Inner = f.Inner with { IpId = 5 } }));
        Add("other port", Train(First() with { Dport = 4789 }, 5));
        Add("size limit", Train(First(), 60));
        var s = Train(First(), 4);
        Add("short segment", s.Append(s[^1].Next() with { Inner = s[^1].Next().Inner with { PayloadLength = 300 } }));
        return cases;
    }

    private static List<List<byte[]>> Softnet(List<(string Name, List<byte[]> Frames)> cases, bool socket)
        => cases.Select(c => GroReplay.Run([c.Frames], new GroOptions { VlanGro = KernelGro.HasVlanGro }, 0,
            socket ? e => e.AddUdpTunnel(Port, VxlanGro.Instance) : null)).ToList();

    private static string? Diff(string name, List<byte[]> kernel, List<byte[]> softnet)
    {
        string Sizes(List<byte[]> l) => string.Join(",", l.Select(f => f.Length));
        if (kernel.Count != softnet.Count)
            return $"{name}: kernel passed up {kernel.Count} frames ({Sizes(kernel)}), softnet {softnet.Count} ({Sizes(softnet)})";
        for (int i = 0; i < kernel.Count; i++)
        {
            if (kernel[i].AsSpan().SequenceEqual(softnet[i])) continue;
            int at = 0;
            while (at < Math.Min(kernel[i].Length, softnet[i].Length) && kernel[i][at] == softnet[i][at]) at++;
            return $"{name}: frame {i} differs at byte {at} (kernel {kernel[i].Length} bytes, softnet {softnet[i].Length}); sizes kernel {Sizes(kernel)}, softnet {Sizes(softnet)}";
        }
        return null;
    }

    [SkippableFact]
    public void Softnet_vxlan_gro_matches_the_kernel()
    {
        string? skip = KernelGro.Unavailable();
        Skip.If(skip != null, skip);
        var cases = Cases();
        using var topo = KernelGroTopology.Create();
        string rxns = topo.RxNamespace;
        // The VXLAN device (and so its UDP socket, with vxlan_gro_receive) in the receiving namespace.
        Proc.Check("ip", "-n", rxns, "addr", "add", "10.99.0.2/24", "dev", KernelGroTopology.RxDev);
        Proc.Check("ip", "-n", rxns, "link", "add", "snvx0", "type", "vxlan", "id", "1", "dstport", Port.ToString(),
            "dev", KernelGroTopology.RxDev, "nolearning");
        Proc.Check("ip", "-n", rxns, "link", "set", "snvx0", "up");
        long Stat(string name) => long.Parse(Proc.Check("ip", "netns", "exec", rxns, "cat", $"/sys/class/net/snvx0/statistics/{name}").Trim());
        long packets0 = Stat("rx_packets"), bytes0 = Stat("rx_bytes");
        var kernelUp = topo.RunMany(cases.Select(c => (IReadOnlyList<IReadOnlyList<byte[]>>)[c.Frames]).ToList());
        // What the VXLAN device (flannel.1's part) received: one skb per aggregate, as long as the inner frame less its
        // Ethernet header (vxlan_rcv counts after eth_type_trans).
        long devPackets = Stat("rx_packets") - packets0, devBytes = Stat("rx_bytes") - bytes0;
        // The device down closes the socket: VXLAN is plain UDP to GRO again.
        Proc.Check("ip", "-n", rxns, "link", "set", "snvx0", "down");
        var kernelDown = topo.RunMany(cases.Select(c => (IReadOnlyList<IReadOnlyList<byte[]>>)[c.Frames]).ToList());

        var withSocket = Softnet(cases, true);
        var withoutSocket = Softnet(cases, false);
        var problems = new List<string>();
        for (int i = 0; i < cases.Count; i++)
        {
            output.WriteLine($"{cases[i].Name}: {cases[i].Frames.Count} frames in; kernel up {string.Join(",", kernelUp[i].Select(f => f.Length))}; " +
                             $"softnet {string.Join(",", withSocket[i].Select(f => f.Length))}; kernel down {kernelDown[i].Count}, softnet {withoutSocket[i].Count}");
            if (Diff(cases[i].Name, kernelUp[i], withSocket[i]) is { } d) problems.Add(d);
            if (Diff(cases[i].Name + " (device down)", kernelDown[i], withoutSocket[i]) is { } d2) problems.Add(d2);
        }
        // Softnet's aggregates that the device takes (VNI 1 on its port) against the kernel device's counters.
        var decapsulated = withSocket.SelectMany(l => l).Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(36)) == Port
            && (BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(46)) >> 8) == 1).ToList();
        output.WriteLine($"vxlan device: kernel rx {devPackets} skbs {devBytes} bytes; softnet {decapsulated.Count} skbs {decapsulated.Sum(f => f.Length - 64)} bytes");
        Assert.Equal(decapsulated.Count, devPackets);
        Assert.Equal(decapsulated.Sum(f => (long)f.Length - 64), devBytes);
        // The kernel merged something (the harness works), and so did Softnet.
        Assert.True(kernelUp[0].Count < cases[0].Frames.Count, $"the kernel did not merge VXLAN: {kernelUp[0].Count} frames");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
