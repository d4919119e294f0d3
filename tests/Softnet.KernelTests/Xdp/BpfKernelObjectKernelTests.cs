using System.Buffers.Binary;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.KernelTests.Xdp;

/// <summary>
/// <see cref="BpfKernelObject"/>: the existing test objects (BTF and legacy maps, global data, BPF-to-BPF calls, tail
/// calls) load into the kernel as libbpf would load them, and each runs the same in the kernel, our interpreter and
/// our JIT, maps included.
/// </summary>
[Trait("Category", "Kernel")]
public class BpfKernelObjectKernelTests
{
    private static byte[] Udp4(ushort dport, int payload = 18, byte proto = 17)
    {
        var f = new byte[14 + 20 + 8 + payload];
        byte[] dst = [0x02, 0, 0, 0, 0, 0x01], src = [0x02, 0, 0, 0, 0, 0x02];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        f[12] = 0x08;
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(28 + payload));
        f[22] = 64; f[23] = proto;
        f[26] = 10; f[29] = 1; f[30] = 10; f[33] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(34), 12345);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(36), dport);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(38), (ushort)(8 + payload));
        return f;
    }

    [SkippableFact]
    public void Drop_port_agrees_on_verdicts_and_counters()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("drop_port");
        Assert.Equal(1u, c.Run(Udp4(9), "udp 9"));
        Assert.Equal(2u, c.Run(Udp4(53), "udp 53"));
        Assert.Equal(2u, c.Run(Udp4(9, proto: 6), "tcp 9"));
        Assert.Equal(2u, c.Run(Udp4(9)[..20], "short"));
        c.Run(Udp4(9), "udp 9 again");
        c.AssertMapsEqual();
        var v = c.Kernel.ReadMap(c.Interp.Map("verdicts")!);
        Assert.Equal(2ul, BinaryPrimitives.ReadUInt64LittleEndian(v[1].Value));
    }

    [SkippableFact]
    public void Counter_swaps_addresses_and_counts_bytes()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("counter", "xdp/counter");
        Assert.Equal(3u, c.Run(Udp4(1), "udp"));
        Assert.Equal(3u, c.Run(Udp4(1, payload: 1000), "long udp"));
        Assert.Equal(3u, c.Run(new byte[14], "bare Ethernet header")); // the test run takes no frame under ETH_HLEN
        c.AssertMapsEqual();
    }

    [SkippableFact]
    public void Global_data_starts_from_the_object_and_rodata_is_frozen()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("globals");
        Assert.Equal(1u, c.Run(new byte[59], "59 bytes"));
        Assert.Equal(2u, c.Run(new byte[60], "60 bytes"));
        Assert.Equal(2u, c.Run(new byte[1500], "1500 bytes"));
        c.AssertMapsEqual();
        var rodata = c.Interp.Maps.Single(m => m.Name.EndsWith(".rodata", StringComparison.Ordinal));
        var e = Assert.Throws<BpfSyscallException>(() => BpfSyscall.UpdateElem(c.Kernel.KernelMapFd(rodata), new byte[4], new byte[rodata.ValueSize]));
        Assert.Equal(1, e.Errno); // EPERM: frozen
        var data = c.Kernel.ReadMap(c.Interp.Maps.Single(m => m.Name.EndsWith(".data", StringComparison.Ordinal)));
        Assert.Equal(103ul, BinaryPrimitives.ReadUInt64LittleEndian(data[0].Value));
    }

    [SkippableTheory]
    [InlineData("xdp")]
    [InlineData("xdp.frags")]
    public void Subprograms_load_and_agree(string section)
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("subprog", section);
        for (int b = 0; b < 4; b++) c.Run([(byte)b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], $"first byte {b}");
    }

    [SkippableFact]
    public void Legacy_maps_count_by_queue()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("legacy_maps");
        for (int i = 0; i < 3; i++) c.Run(Udp4(1), "frame");
        c.AssertMapsEqual();
    }

    [SkippableFact]
    public void Tail_calls_go_through_the_kernel_prog_array_filled_from_ours()
    {
        var why = BpfKernelCompare.SkipReason();
        Skip.If(why != null, why);
        using var c = new BpfKernelCompare("tail_call", setup: (obj, load) =>
        {
            var t = (BpfProgArrayMap)obj.Map("jmp_table")!;
            Assert.Equal(0, t.SetProgram(0, load("xdp/udp")));
            Assert.Equal(0, t.SetProgram(1, load("xdp/tcp")));
        });
        Assert.Equal(1u, c.Run(Udp4(1), "udp"));
        Assert.Equal(3u, c.Run(Udp4(1, proto: 6), "tcp"));
        Assert.Equal(2u, c.Run(Udp4(1, proto: 1), "icmp"));
        c.AssertMapsEqual();

        // The self-tail-calling program: 34 runs in the kernel as here.
        using var loop = new BpfKernelCompare("tail_call", "xdp/loop", setup: (obj, load) =>
            Assert.Equal(0, ((BpfProgArrayMap)obj.Map("jmp_table")!).SetProgram(2, load("xdp/loop"))));
        Assert.Equal(1u, loop.Run(Udp4(1), "loop"));
        loop.AssertMapsEqual();
        Assert.Equal(34ul, BinaryPrimitives.ReadUInt64LittleEndian(loop.Kernel.ReadMap(loop.Interp.Map("hits")!)[2].Value));
    }
}
