using Softnet.Capture.Live;
using Xunit;

namespace Softnet.Tests.Capture.Live;

/// <summary>What PacketPort.Open refuses before it touches the kernel (the kernel side is in
/// Softnet.KernelTests/Live/PacketPortKernelTests).</summary>
public sealed class PacketPortTests
{
    [Theory]
    [InlineData(0, 2048, 4096, "queues")]
    [InlineData(65, 2048, 4096, "queues")]
    [InlineData(1, 100, 4096, "frame size")]
    [InlineData(1, 2056 + 4, 4096, "frame size")]
    [InlineData(1, 2048, 0, "ring frames")]
    public void Bad_options_are_refused_with_the_reason(int queues, int frameSize, int ringFrames, string reason)
    {
        var ex = Assert.Throws<LivePortException>(() => PacketPort.Open(new LivePortOptions
        {
            Interface = "eth0", Queues = queues, FrameSize = frameSize, RingFrames = ringFrames,
        }));
        Assert.Contains(reason, ex.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a-name-too-long-for-ifnamsiz")]
    public void Interface_names_that_cannot_exist_are_refused(string name)
    {
        var ex = Assert.Throws<LivePortException>(() => PacketPort.Open(new LivePortOptions { Interface = name }));
        Assert.Contains("not a valid interface name", ex.Message);
    }

    [Fact]
    public void The_lock_is_named_for_the_namespace_and_interface()
    {
        Assert.Equal("/run/softnet/host-eth0.lock", PacketPort.LockPath(null, "eth0"));
        Assert.Equal("/run/softnet/blue-veth1.lock", PacketPort.LockPath("blue", "veth1"));
    }
}
