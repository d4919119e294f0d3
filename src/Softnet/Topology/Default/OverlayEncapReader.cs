using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;

namespace Softnet.Topology.Default;

/// <summary>
/// The sending node's flannel.1 as seen on the wire: frames of a generated capture addressed into the overlay's pod
/// network are wrapped in outer Ethernet / IPv4 / UDP / VXLAN headers the way vxlan_xmit_one builds them for
/// flannel's device (no DF, TTL 64, TOS 0 with the inner ECN encapsulated, UDP checksum 0, source port from the
/// inner flow's hash as udp_flow_src_port scales it into ip_local_port_range); other frames pass unchanged.
/// </summary>
public sealed class OverlayEncapReader : ICaptureReader
{
    /// <summary>Outer Ethernet + IPv4 + UDP + VXLAN.</summary>
    public const int Overhead = 14 + 20 + 8 + 8;

    private readonly ICaptureReader _inner;
    private readonly byte[] _buffer;
    private readonly byte[] _srcMac, _dstMac;
    private readonly uint _srcIp, _dstIp, _podNet, _podMask, _vni;
    private readonly ushort _port;
    private ushort _ipId;

    /// <param name="podNet">Frames whose IPv4 destination is in <paramref name="podNet"/>/<paramref name="podPrefix"/>
    /// are encapsulated.</param>
    public OverlayEncapReader(ICaptureReader inner, uint podNet, int podPrefix, string srcMac, string dstMac,
        uint srcIp, uint dstIp, uint vni = 1, ushort port = 8472)
    {
        _inner = inner;
        _podMask = podPrefix == 0 ? 0 : uint.MaxValue << (32 - podPrefix);
        _podNet = podNet & _podMask;
        _srcMac = Convert.FromHexString(srcMac.Replace(":", ""));
        _dstMac = Convert.FromHexString(dstMac.Replace(":", ""));
        _srcIp = srcIp;
        _dstIp = dstIp;
        _vni = vni;
        _port = port;
        int snap = inner.Interfaces.Count > 0 ? inner.Interfaces[0].SnapLength : 65535;
        _buffer = new byte[snap + Overhead];
        Interfaces = [new CaptureInterface(LinkType.Ethernet, snap + Overhead, "eth0", 1_000_000_000)];
    }

    public IReadOnlyList<CaptureInterface> Interfaces { get; }
    public long Position => _inner.Position;

    /// <summary>Frames wrapped so far.</summary>
    public long Encapsulated { get; private set; }

    public bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (!_inner.TryRead(out meta, out data)) return false;
        if (data.Length < 34 || data[12] != 0x08 || data[13] != 0x00
            || (BinaryPrimitives.ReadUInt32BigEndian(data[30..]) & _podMask) != _podNet)
            return true;
        var f = _buffer.AsSpan(0, data.Length + Overhead);
        data.CopyTo(f[Overhead..]);
        _dstMac.CopyTo(f);
        _srcMac.CopyTo(f[6..]);
        f[12] = 0x08; f[13] = 0x00;
        var ip = f.Slice(14, 20);
        ip[0] = 0x45;
        // ip_tunnel_ecn_encap with tos 0: ECT and CE of the inner header become ECT(0) outside, nothing else.
        ip[1] = (byte)((data[15] & 3) != 0 ? 2 : 0);
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(f.Length - 14));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], _ipId++);
        ip[6] = 0; ip[7] = 0;
        ip[8] = 64;
        ip[9] = 17;
        ip[10] = 0; ip[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], _srcIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], _dstIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], (ushort)~Checksum.Sum(ip));
        var udp = f.Slice(34, 8);
        BinaryPrimitives.WriteUInt16BigEndian(udp, SourcePort(data));
        BinaryPrimitives.WriteUInt16BigEndian(udp[2..], _port);
        BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(f.Length - 34));
        udp[6] = 0; udp[7] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(f[42..], 0x0800_0000);
        BinaryPrimitives.WriteUInt32BigEndian(f[46..], _vni << 8);
        Encapsulated++;
        meta = meta with { OriginalLength = meta.OriginalLength + Overhead, InterfaceId = 0 };
        data = f;
        return true;
    }

    /// <summary>udp_flow_src_port over the default ip_local_port_range (32768..60999, its upper end included), on the
    /// software hash of the inner flow, as Softnet's own flannel.1 does (Link/Vxlan.cs).</summary>
    private static ushort SourcePort(ReadOnlySpan<byte> innerFrame)
    {
        const int min = 32768, max = 61000;
        uint hash = Gro.FlowHash.ComputeFrame(innerFrame);
        hash ^= hash << 16;
        return (ushort)((((ulong)hash * (uint)(max - min)) >> 32) + (uint)min);
    }

    public void Dispose() => _inner.Dispose();
}
