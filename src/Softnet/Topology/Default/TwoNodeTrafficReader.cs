using System.Buffers.Binary;
using Softnet.Capture;

namespace Softnet.Topology.Default;

/// <summary>
/// The generated iperf3 clients placed where their frames enter the two-node scenario: frames from the sending pod's
/// subnet arrive on node A's end of the pod's veth (the pod transmitted them), the others on node B's eth0 (node A's
/// host sent them over the wire). Interfaces are named NS:DEV, which scenario replay resolves across namespaces.
/// </summary>
public sealed class TwoNodeTrafficReader(ICaptureReader inner, uint podNet, int podPrefix, string podDevice, string wireDevice) : ICaptureReader
{
    private readonly uint _podMask = podPrefix == 0 ? 0 : uint.MaxValue << (32 - podPrefix);

    public IReadOnlyList<CaptureInterface> Interfaces { get; } =
    [
        new(LinkType.Ethernet, 262144, wireDevice, 1_000_000_000),
        new(LinkType.Ethernet, 262144, podDevice, 1_000_000_000),
    ];

    public long Position => inner.Position;

    public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (!inner.TryRead(out meta, out data)) return false;
        bool fromPod = data.Length >= 34 && data[12] == 0x08 && data[13] == 0x00
                       && (BinaryPrimitives.ReadUInt32BigEndian(data[26..]) & _podMask) == (podNet & _podMask);
        meta = meta with { InterfaceId = fromPod ? 1 : 0 };
        return true;
    }

    public void Dispose() => inner.Dispose();
}
