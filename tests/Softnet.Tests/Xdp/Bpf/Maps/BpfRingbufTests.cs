using Softnet.Xdp.Bpf.Maps;
using Xunit;

namespace Softnet.Tests.Xdp.Bpf.Maps;

/// <summary>The ring buffer's space rule (__bpf_ringbuf_reserve): the producer stays at most size - 1 bytes ahead of the
/// consumer, so the record that would fill the ring to its last byte is refused — as the kernel refused it in KernelTests
/// Xdp/BpfProgramKernelTests.Ringbuf_events.</summary>
public class BpfRingbufTests
{
    [Fact]
    public void The_record_that_would_fill_the_ring_exactly_is_refused()
    {
        var rb = (BpfRingbufMap)BpfMapFactory.Create(new BpfMapSpec("rb", BpfMapType.Ringbuf, 0, 0, 4096), 2);
        var ev = new byte[8]; // 16 bytes a record with its header
        for (int i = 0; i < 255; i++) Assert.Equal(0, rb.Output(ev, 0));
        Assert.Equal(-11, rb.Output(ev, 0)); // 256 × 16 = 4096: -EAGAIN
        Assert.Equal(255, rb.Drain(_ => { }));
        Assert.Equal(0, rb.Output(ev, 0));
    }
}
