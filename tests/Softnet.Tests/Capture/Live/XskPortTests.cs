using Softnet.Capture.Live;
using Xunit;

namespace Softnet.Tests.Capture.Live;

/// <summary>What the AF_XDP port refuses before it touches the kernel, and the interface lock's path (shared with the
/// AF_PACKET port, so two Softnets of either kind exclude each other).</summary>
public class XskPortTests
{
    [Theory]
    [InlineData(0, 256, 2048, "Queues")]
    [InlineData(1, 300, 2048, "power of two")]
    [InlineData(1, 256, 3000, "FrameSize")]
    [InlineData(1, 256, 1024, "FrameSize")]
    public void BadOptionsAreRefusedWithALivePortException(int queues, int ringFrames, int frameSize, string says)
    {
        var e = Assert.Throws<LivePortException>(() => XskPort.Open(new LivePortOptions
        {
            Interface = "eth0", Queues = queues, RingFrames = ringFrames, FrameSize = frameSize,
        }));
        Assert.Contains(says, e.Message);
    }

    [Fact]
    public void ALongInterfaceNameIsRefused()
        => Assert.Throws<LivePortException>(() => XskPort.Open(new LivePortOptions { Interface = "a-name-longer-than-ifnamsiz" }));

    [Theory]
    [InlineData(null, "eth0", "/run/softnet/host-eth0.lock")]
    [InlineData("", "eth0", "/run/softnet/host-eth0.lock")]
    [InlineData("lab1", "veth3", "/run/softnet/lab1-veth3.lock")]
    public void TheInterfaceLockIsNamedForNamespaceAndInterface(string? netns, string ifname, string path)
        => Assert.Equal(path, XskSyscalls.LockPath(netns, ifname));
}
