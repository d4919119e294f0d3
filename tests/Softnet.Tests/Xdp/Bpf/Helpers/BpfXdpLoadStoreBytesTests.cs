using Softnet.Xdp;
using Softnet.Xdp.Bpf;
using Softnet.Xdp.Bpf.Helpers;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Helpers;

/// <summary>bpf_xdp_get_buff_len, bpf_xdp_load_bytes and bpf_xdp_store_bytes (bpf_xdp_pointer's limits: -EFAULT for an
/// offset or length over 0xffff, -EINVAL past the frame's end); compared with the kernel by the meta_trim program in
/// KernelTests Xdp/BpfProgramKernelTests.</summary>
public class BpfXdpLoadStoreBytesTests
{
    private static (ulong R0, byte[] Frame) Run(string text, int length = 64)
    {
        var buf = new byte[4096];
        var xdp = BpfXdpHelperTests.Frame(buf, length);
        new BpfInterpreter().RunXdp(BpfXdpHelperTests.Load(text), ref xdp, 1, new BpfRunContext(), null, out var r);
        Assert.True(r.Ok, r.ToString());
        return (r.R0, xdp.Packet.ToArray());
    }

    // Loads LEN bytes at OFFSET to the stack, then stores them at offset 0; returns the helper results or'ed.
    private static string CopyTo0(int offset, int len) => $"""
        mov %r6, %r1
        mov %r2, {offset}
        mov %r3, %r10
        add %r3, -16
        mov %r4, {len}
        call {BpfXdpHelpers.XdpLoadBytes}
        jne %r0, 0, +6
        mov %r1, %r6
        mov %r2, 0
        mov %r3, %r10
        add %r3, -16
        mov %r4, {len}
        call {BpfXdpHelpers.XdpStoreBytes}
        exit
        """;

    [Fact]
    public void Get_buff_len_is_the_frame_length()
        => Assert.Equal(77UL, Run($"call {BpfXdpHelpers.XdpGetBuffLen}\nexit", 77).R0);

    [Fact]
    public void Load_then_store_copies_frame_bytes()
    {
        var (r0, frame) = Run(CopyTo0(60, 4));
        Assert.Equal(0UL, r0);
        Assert.Equal(new byte[] { 61, 62, 63, 64 }, frame[..4]);
        Assert.Equal(5, frame[4]);
    }

    [Theory]
    [InlineData(61, 4, -22)]       // past the end
    [InlineData(0x10000, 4, -14)]  // offset over 0xffff
    public void Out_of_range_is_refused_and_nothing_changes(int offset, int len, long errno)
    {
        var (r0, frame) = Run(CopyTo0(offset, len));
        Assert.Equal(unchecked((ulong)errno), r0);
        Assert.Equal(1, frame[0]);
    }
}
