using System.Buffers.Binary;
using CsCheck;
using Softnet.Tests.Xdp.Bpf.Elf;
using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Elf;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf;

/// <summary>
/// Packet accesses the verifier proved inside the range a comparison with data_end established are compiled without a
/// bounds test (as the kernel's JIT compiles them): in an XDP run they give the interpreter's verdicts and frames; a run
/// where R1 is not the context or the context table disagrees with the packet bounds takes the fully tested code and
/// faults exactly where the interpreter does, never reading outside the packet.
/// </summary>
public class BpfJitProvenAccessTests
{
    private static BpfProgram DropPort()
    {
        var obj = BpfObject.Load(BpfTestPrograms.Bytes("drop_port"), "drop_port.o", 2);
        return obj.LoadProgram(null, BpfTestPrograms.MapHelpers());
    }

    [Fact]
    public void Proven_accesses_give_the_interpreters_verdicts_and_frames()
    {
        var prog = DropPort();
        var jit = BpfJit.Compile(prog);
        Assert.True(jit.ElidedChecks > 0, "the verifier proved no packet access of drop_port");
        var vm = new BpfInterpreter();
        var stack = new BpfJitStack();
        Gen.Select(Gen.Int[0, 100], Gen.UShort[0, 20], Gen.Byte[0x44, 0x46], Gen.Bool).Sample((len, port, verIhl, udp) =>
        {
            var frame = BpfTestPrograms.Udp4(port, 60);
            frame[14] = verIhl;
            if (!udp) frame[23] = 6;
            frame = frame[..Math.Min(len, frame.Length)];
            var b1 = new byte[256 + frame.Length + 320];
            var b2 = new byte[256 + frame.Length + 320];
            frame.CopyTo(b1, 256);
            frame.CopyTo(b2, 256);
            var x1 = new XdpBuff(b1, 256, frame.Length, 0, 320);
            var x2 = new XdpBuff(b2, 256, frame.Length, 0, 320);
            var want = vm.RunXdp(prog, ref x1, 1, new BpfRunContext(), prog.Options.Maps, out var r1);
            var got = jit.RunXdp(stack, ref x2, 1, new BpfRunContext(), prog.Options.Maps, out var r2);
            Assert.Equal(want, got);
            Assert.Equal(r1, r2);
            Assert.True(b1.AsSpan().SequenceEqual(b2), "frames differ");
        }, iter: 500, threads: 1);
    }

    /// <summary>A memory whose context table claims <paramref name="claimedEnd"/> bytes of packet while the packet region
    /// holds <paramref name="realEnd"/>.</summary>
    private static BpfMemory Lying(byte[] stack, byte[] packet, byte[] ctx, int claimedEnd, int realEnd)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(ctx.AsSpan(XdpMd.Data * 2), BpfMemory.Address(BpfMemory.PacketRegion, 0));
        BinaryPrimitives.WriteUInt64LittleEndian(ctx.AsSpan(XdpMd.DataEnd * 2), BpfMemory.Address(BpfMemory.PacketRegion, claimedEnd));
        BinaryPrimitives.WriteUInt64LittleEndian(ctx.AsSpan(XdpMd.DataMeta * 2), BpfMemory.Address(BpfMemory.PacketRegion, 0));
        return new BpfMemory(stack, packet, 0, realEnd) { Ctx = ctx };
    }

    [Fact]
    public void A_context_that_disagrees_with_the_packet_takes_the_tested_code()
    {
        var prog = DropPort();
        var jit = BpfJit.Compile(prog);
        Assert.True(jit.ElidedChecks > 0);
        var packet = new byte[64];
        BpfTestPrograms.Udp4(9, 22).CopyTo(packet, 0);
        ulong ctxPointer = BpfMemory.Address(BpfMemory.CtxRegion, 0);
        // data_end claimed at 64, the packet region ending at 20: the program's own tests pass, its reads must fault.
        var m1 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], packet, new byte[XdpMd.TableSize], 64, 20);
        var m2 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], packet, new byte[XdpMd.TableSize], 64, 20);
        var want = new BpfInterpreter().Run(prog, ref m1, ctxPointer);
        var got = jit.Run(ref m2, ctxPointer);
        Assert.Equal(BpfFault.MemoryAccess, want.Fault);
        Assert.Equal(want, got);
        // Consistent bounds through the same entry: the proven code, the interpreter's answer.
        var m3 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], packet, new byte[XdpMd.TableSize], 64, 64);
        var m4 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], packet, new byte[XdpMd.TableSize], 64, 64);
        Assert.Equal(new BpfInterpreter().Run(prog, ref m3, ctxPointer), jit.Run(ref m4, ctxPointer));
    }

    [Fact]
    public void R1_other_than_the_context_takes_the_tested_code()
    {
        var prog = DropPort();
        var jit = BpfJit.Compile(prog);
        var packet = new byte[64];
        BpfTestPrograms.Udp4(9, 22).CopyTo(packet, 0);
        foreach (ulong r1 in new[] { BpfMemory.Address(BpfMemory.PacketRegion, 0), BpfMemory.Address(BpfMemory.PacketRegion, 8), 0UL })
        {
            var m1 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], (byte[])packet.Clone(), new byte[XdpMd.TableSize], 64, 64);
            var m2 = Lying(new byte[BpfOp.MaxCallFrames * BpfOp.StackSize], (byte[])packet.Clone(), new byte[XdpMd.TableSize], 64, 64);
            Assert.Equal(new BpfInterpreter().Run(prog, ref m1, r1), jit.Run(ref m2, r1));
        }
    }
}
