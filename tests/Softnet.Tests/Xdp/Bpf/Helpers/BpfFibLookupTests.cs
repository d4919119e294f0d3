using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Tests.Topology;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Helpers;

/// <summary>bpf_fib_lookup against the Docker test scenario's host namespace (routes, a blackhole, a permanent
/// neighbour behind docker0, forwarding on).</summary>
public class BpfFibLookupTests
{
    private static (Namespace Host, NamespaceBpfFib Fib) Host()
    {
        var rig = new ScenarioRig("docker");
        var host = rig.Ns("host");
        return (host, new NamespaceBpfFib(host));
    }

    private static byte[] Params(int ifindex, byte a, byte b, byte c, byte d, int totLen)
    {
        var p = new byte[BpfFibLookup.Size];
        p[0] = BpfFibLookup.AfInet;
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(6), (ushort)totLen);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(8), (uint)ifindex);
        p[32] = a; p[33] = b; p[34] = c; p[35] = d;
        return p;
    }

    [Fact]
    public void A_forwarded_destination_with_a_neighbour_gets_the_egress_device_and_both_macs()
    {
        var (host, fib) = Host();
        int eth0 = host.Device("eth0")!.Ifindex, docker0 = host.Device("docker0")!.Ifindex;
        var p = Params(eth0, 172, 17, 0, 2, 100);
        Assert.Equal(BpfFibLookup.RetSuccess, BpfFibLookup.Lookup4(fib, p, 0));
        Assert.Equal((uint)docker0, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)));
        Assert.Equal("02:42:ac:11:00:01", Device.FormatMac(p.AsSpan(52, 6)));
        Assert.Equal("02:00:00:00:01:02", Device.FormatMac(p.AsSpan(58, 6)));
        Assert.Equal(1500, BinaryPrimitives.ReadUInt16LittleEndian(p.AsSpan(6))); // mtu_result
    }

    [Fact]
    public void Gateways_blackholes_mtu_local_and_unknown_devices_answer_as_the_kernel()
    {
        var (host, fib) = Host();
        int eth0 = host.Device("eth0")!.Ifindex;
        var viaGw = Params(eth0, 198, 51, 100, 7, 100);
        Assert.Equal(BpfFibLookup.RetNoNeigh, BpfFibLookup.Lookup4(fib, viaGw, 0));
        Assert.Equal(new byte[] { 192, 0, 2, 100 }, viaGw[32..36]); // the nexthop replaced the destination
        Assert.Equal((uint)eth0, BinaryPrimitives.ReadUInt32LittleEndian(viaGw.AsSpan(8)));
        Assert.Equal(BpfFibLookup.RetSuccess, BpfFibLookup.Lookup4(fib, Params(eth0, 198, 51, 100, 7, 100), BpfFibLookup.FlagSkipNeigh));
        Assert.Equal(BpfFibLookup.RetBlackhole, BpfFibLookup.Lookup4(fib, Params(eth0, 203, 0, 113, 5, 100), 0));
        var big = Params(eth0, 172, 17, 0, 2, 1600);
        Assert.Equal(BpfFibLookup.RetFragNeeded, BpfFibLookup.Lookup4(fib, big, 0));
        Assert.Equal(1500, BinaryPrimitives.ReadUInt16LittleEndian(big.AsSpan(6)));
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup4(fib, Params(eth0, 192, 0, 2, 1, 100), 0));
        Assert.Equal(BpfFibLookup.RetNotFwded, BpfFibLookup.Lookup4(fib, Params(eth0, 8, 8, 8, 8, 100), 0)); // no default route
        Assert.Equal(-19, BpfFibLookup.Lookup4(fib, Params(999, 172, 17, 0, 2, 100), 0));
    }

    [Fact]
    public void A_program_calls_it_through_the_run_context()
    {
        var (host, fib) = Host();
        int eth0 = host.Device("eth0")!.Ifindex;
        string text = $"""
            mov %r6, %r1
            mov %r2, 0
            stxdw [%r10-64], %r2
            stxdw [%r10-56], %r2
            stxdw [%r10-48], %r2
            stxdw [%r10-40], %r2
            stxdw [%r10-32], %r2
            stxdw [%r10-24], %r2
            stxdw [%r10-16], %r2
            stxdw [%r10-8], %r2
            stb [%r10-64], 2
            sth [%r10-58], 100
            stw [%r10-56], {eth0}
            stw [%r10-32], {BinaryPrimitives.ReadInt32LittleEndian(new byte[] { 172, 17, 0, 2 })}
            mov %r1, %r6
            mov %r2, %r10
            add %r2, -64
            mov %r3, 64
            mov %r4, 0
            call 69
            ldxw %r1, [%r10-56]
            lsh %r1, 8
            or %r0, %r1
            exit
            """;
        var prog = BpfVerifier.Verify(BpfAssembler.Assemble(text, "test"), BpfVerifierOptions.Xdp(BpfXdpHelpers.Table()));
        var buf = new byte[4096];
        var xdp = BpfXdpHelperTests.Frame(buf, 64);
        new BpfInterpreter().RunXdp(prog, ref xdp, (uint)eth0, new BpfRunContext { Fib = fib }, null, out var r);
        Assert.True(r.Ok);
        Assert.Equal(((ulong)host.Device("docker0")!.Ifindex << 8) | BpfFibLookup.RetSuccess, r.R0);
        // Without a namespace the device is unknown: -ENODEV (its high bits are all ones, so the or-ed ifindex vanishes).
        new BpfInterpreter().RunXdp(prog, ref xdp, (uint)eth0, new BpfRunContext(), null, out r);
        Assert.Equal(unchecked((ulong)-19L), r.R0);
    }
}
