using System.Buffers.Binary;
using Softnet.Capture;
using Softnet.Packets;

namespace Softnet.Tests.Topology;

/// <summary>
/// The sending node's flannel.1 as seen on the wire: frames of a generated capture addressed into the overlay's pod
/// network are wrapped in outer Ethernet / IPv4 / UDP / VXLAN headers the way vxlan_xmit_one builds them for
/// flannel's device (no DF, TTL 64, TOS 0 with the inner ECN encapsulated, UDP checksum 0, source port from the
/// inner flow's hash as udp_flow_src_port scales it into ip_local_port_range); other frames pass unchanged.
/// <para>The outer IP ID is what a TSO sender's tunnel gives: iptunnel_xmit runs __ip_select_ident once per GSO skb,
/// reserving as many IDs as the skb has segments from the counter of the outer (saddr, daddr, protocol), and the
/// segments number themselves up from there. So each inner flow's frames carry consecutive outer IDs for one TSO
/// skb's worth of segments (tcp_tso_autosize at these rates: GSO_LEGACY_MAX_SIZE less MAX_TCP_HEADER per skb), and
/// the IDs jump where another flow reserved in between — which is where the receiver's GRO, checking that the outer
/// ID counts up, starts a new aggregate.</para>
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
    // Per inner flow (its software hash): the next outer ID of the current TSO skb and how many of its segments are left.
    private readonly Dictionary<uint, (ushort Next, int Left)> _tsoIds = new();

    /// <summary>Bytes a sender puts in one TSO skb at high rates: GSO_LEGACY_MAX_SIZE - 1 - MAX_TCP_HEADER (320).</summary>
    public const int TsoBytes = 65536 - 1 - 320;

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
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], OuterId(data));
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

    /// <summary>The outer IP ID of the next segment of the frame's inner flow (see the class remarks).</summary>
    private ushort OuterId(ReadOnlySpan<byte> innerFrame)
    {
        uint flow = Softnet.Gro.FlowHash.ComputeFrame(innerFrame);
        _tsoIds.TryGetValue(flow, out var t);
        if (t.Left == 0)
        {
            int payload = TcpPayload(innerFrame);
            int segs = payload > 0 ? Math.Max(1, TsoBytes / payload) : 1;
            t = (_ipId, segs);
            _ipId += (ushort)segs;
        }
        ushort id = t.Next;
        _tsoIds[flow] = ((ushort)(t.Next + 1), t.Left - 1);
        return id;
    }

    /// <summary>TCP payload bytes of an Ethernet/IPv4 frame (0 for anything else).</summary>
    private static int TcpPayload(ReadOnlySpan<byte> f)
    {
        if (f.Length < 34 || f[23] != IpProtocols.Tcp) return 0;
        int ihl = (f[14] & 0xF) * 4;
        if (f.Length < 14 + ihl + 20) return 0;
        int thl = (f[14 + ihl + 12] >> 4) * 4;
        return Math.Max(0, BinaryPrimitives.ReadUInt16BigEndian(f[16..]) - ihl - thl);
    }

    /// <summary>udp_flow_src_port over the default ip_local_port_range (32768..60999, its upper end included), on the
    /// software hash of the inner flow, as Softnet's own flannel.1 does (Link/Vxlan.cs).</summary>
    private static ushort SourcePort(ReadOnlySpan<byte> innerFrame)
    {
        const int min = 32768, max = 61000;
        uint hash = Softnet.Gro.FlowHash.ComputeFrame(innerFrame);
        hash ^= hash << 16;
        return (ushort)((((ulong)hash * (uint)(max - min)) >> 32) + (uint)min);
    }

    public void Dispose() => _inner.Dispose();
}
