using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Softnet.Capture;
using Softnet.Packets.Headers;

namespace Softnet.Packets;

/// <summary>Protocols a decoded frame contains (outer headers; the VXLAN inner frame has its own set).</summary>
[Flags]
public enum ProtocolFlags : uint
{
    None = 0,
    Ethernet = 1,
    Vlan = 2,
    Arp = 4,
    Ipv4 = 8,
    Ipv6 = 16,
    Tcp = 32,
    Udp = 64,
    Icmp = 128,
    Icmpv6 = 256,
    Vxlan = 512,
    Fragment = 1024,
    Other = 2048,
    LinuxSll = 4096,
}

public static class ProtocolFlagsExtensions
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Has(this ProtocolFlags flags, ProtocolFlags f) => (flags & f) == f;

    /// <summary>IPv4 or IPv6.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsIp(this ProtocolFlags flags) => (flags & (ProtocolFlags.Ipv4 | ProtocolFlags.Ipv6)) != 0;
}

/// <summary>
/// Where every header of a frame starts. Offsets are from the start of the frame, and -1 when the layer is
/// absent. The top-level fields describe the outer headers; for VXLAN the Inner* fields describe the
/// encapsulated frame (absolute offsets too).
/// </summary>
public struct DecodedPacket
{
    public ProtocolFlags Protocols;
    /// <summary>Link header (Ethernet or SLL); -1 for raw IP.</summary>
    public int L2Offset;
    /// <summary>Network header (IPv4, IPv6, ARP, or the unknown EtherType's data).</summary>
    public int L3Offset;
    /// <summary>Upper-layer header after any IPv6 extension headers; -1 for non-first fragments.</summary>
    public int L4Offset;
    /// <summary>Data after the last decoded header (L4 payload; fragment data for non-first fragments).</summary>
    public int PayloadOffset;
    public int PayloadLength;
    /// <summary>EtherType of the network header, after any VLAN tags.</summary>
    public ushort EtherType;
    /// <summary>Upper-layer protocol (after IPv6 extension headers).</summary>
    public byte IpProtocol;
    public byte VlanCount;
    /// <summary>VID of the outermost VLAN tag (what hardware VLAN offload would put in skb->vlan_tci).</summary>
    public ushort VlanId;
    /// <summary>VID of the second tag (QinQ C-tag), 0 when fewer than two tags.</summary>
    public ushort InnerVlanId;

    /// <summary>IP datagram length (header + payload, without link padding); 0 when not IP.</summary>
    public int L3Length;
    /// <summary>TTL or hop limit.</summary>
    public byte Ttl;
    /// <summary>Fragment offset in bytes, MF flag and identification when <see cref="ProtocolFlags.Fragment"/> is set.</summary>
    public int FragmentOffset;
    public bool MoreFragments;
    public uint FragmentId;

    public ushort SourcePort, DestinationPort;
    public TcpFlags TcpFlags;
    public uint TcpSeq, TcpAck;
    public ushort TcpWindow;
    /// <summary>Parsed TCP options (valid when <see cref="ProtocolFlags.Tcp"/> is set).</summary>
    public TcpOptions TcpOptions;
    public byte IcmpType, IcmpCode;

    /// <summary>VXLAN network identifier when <see cref="ProtocolFlags.Vxlan"/> is set.</summary>
    public uint Vni;
    public ProtocolFlags InnerProtocols;
    public int InnerL2Offset, InnerL3Offset, InnerL4Offset, InnerPayloadOffset, InnerPayloadLength;
    public ushort InnerEtherType;
    public byte InnerIpProtocol;

    /// <summary>Offset of the source address in the frame (-1 when not IP).</summary>
    public readonly int SourceAddressOffset
        => (Protocols & ProtocolFlags.Ipv4) != 0 ? L3Offset + 12 : (Protocols & ProtocolFlags.Ipv6) != 0 ? L3Offset + 8 : -1;
    public readonly int DestinationAddressOffset
        => (Protocols & ProtocolFlags.Ipv4) != 0 ? L3Offset + 16 : (Protocols & ProtocolFlags.Ipv6) != 0 ? L3Offset + 24 : -1;
    /// <summary>4 for IPv4, 16 for IPv6, 0 otherwise.</summary>
    public readonly int AddressLength
        => (Protocols & ProtocolFlags.Ipv4) != 0 ? 4 : (Protocols & ProtocolFlags.Ipv6) != 0 ? 16 : 0;
}

/// <summary>
/// Decodes every header of a captured frame in one straight pass, checking lengths as the kernel's receive
/// path would (eth_type_trans, ip_rcv_core, ipv6_rcv, tcp_v4_rcv, __udp4_lib_rcv). Never throws and never
/// allocates; a malformed frame yields the <see cref="DropReason"/> of the first bad header, with the
/// layers decoded before it left in the result.
/// </summary>
public static class PacketDecoder
{
    public static DropReason Decode(ReadOnlySpan<byte> frame, LinkType linkType, out DecodedPacket packet)
    {
        if (linkType == LinkType.Ethernet && TryDecodeEthernetIpv4(frame, out packet)) return DropReason.None;
        return DecodeLayers(frame, linkType, out packet);
    }

    /// <summary>
    /// What a stack that only counts asks of each frame: whether it decodes (the reason it does not) and the protocols it
    /// holds, <see cref="DecodedPacket.Protocols"/> of <see cref="Decode"/>. The commonest frames take the shortcut's
    /// checks without filling the offsets nobody reads (a 64-byte replay's decode stack spent about a third of its
    /// decode on them); every other frame is decoded in full.
    /// </summary>
    /// <remarks>Inlined into the stack's per-packet loop: its locals are not zeroed (SkipLocalsInit; the options are only
    /// parsed into) and the layered decode's whole-packet result lives in a call of its own, since zeroing that struct on
    /// every packet cost ~5% of a 64-byte replay.</remarks>
    [SkipLocalsInit]
    public static DropReason Classify(ReadOnlySpan<byte> frame, LinkType linkType, out ProtocolFlags protocols)
    {
        Unsafe.SkipInit(out TcpOptions options); // parsed into and not read: only the checks matter here
        if (linkType == LinkType.Ethernet && FastHeaders(frame, out byte proto, out _, out _, ref options))
        {
            protocols = proto == IpProtocols.Udp ? ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Udp
                : ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Tcp;
            return DropReason.None;
        }
        return ClassifyLayers(frame, linkType, out protocols);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static DropReason ClassifyLayers(ReadOnlySpan<byte> frame, LinkType linkType, out ProtocolFlags protocols)
    {
        var reason = DecodeLayers(frame, linkType, out var packet);
        protocols = packet.Protocols;
        return reason;
    }

    /// <summary>
    /// The commonest frames, Ethernet + option-less IPv4 (no fragment) + UDP not to the VXLAN port or TCP (with or
    /// without options), read off their fixed headers and filled once instead of layer by layer: on a replay of 64-byte
    /// frames the general walk cost some 8 ns of its 10 a frame (its views re-slice and re-check the span at every
    /// field). It accepts exactly the frames the layers would pass with these headers, and fills the same fields
    /// (PacketDecoderShortcutTests compares the two over mutated frames); anything else, every malformed frame
    /// included, returns false and takes <see cref="DecodeLayers"/>, which names the drop reason.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool TryDecodeEthernetIpv4(ReadOnlySpan<byte> frame, out DecodedPacket p)
    {
        p = default;
        const int l3 = EthernetView.HeaderLength, l4 = l3 + Ipv4View.MinHeaderLength;
        // The options are parsed straight into the result (a copy of the struct cost the bench parse ~10 %).
        if (!FastHeaders(frame, out byte proto, out int total, out int l4Header, ref p.TcpOptions))
        {
            p = default;
            return false;
        }
        int seg = total - Ipv4View.MinHeaderLength;
        if (proto == IpProtocols.Tcp)
        {
            var t = frame.Slice(l4, TcpView.MinHeaderLength);
            p.Protocols = ProtocolFlags.Tcp;
            p.TcpSeq = BinaryPrimitives.ReadUInt32BigEndian(t[4..]);
            p.TcpAck = BinaryPrimitives.ReadUInt32BigEndian(t[8..]);
            p.TcpFlags = (TcpFlags)t[13];
            p.TcpWindow = BinaryPrimitives.ReadUInt16BigEndian(t[14..]);
            p.PayloadOffset = l4 + l4Header;
            p.PayloadLength = seg - l4Header;
        }
        else
        {
            // The UDP length, not the IP one: a datagram may end before the IP payload does.
            p.PayloadOffset = l4 + UdpView.HeaderLength;
            p.PayloadLength = l4Header - UdpView.HeaderLength;
        }
        p.Protocols |= proto == IpProtocols.Udp ? ProtocolFlags.Ethernet | ProtocolFlags.Ipv4 | ProtocolFlags.Udp : ProtocolFlags.Ethernet | ProtocolFlags.Ipv4;
        p.L2Offset = 0;
        p.L3Offset = l3;
        p.EtherType = EtherTypes.Ipv4;
        p.L3Length = total;
        p.Ttl = frame[l3 + 8];
        p.IpProtocol = proto;
        p.L4Offset = l4;
        p.SourcePort = BinaryPrimitives.ReadUInt16BigEndian(frame[l4..]);
        p.DestinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(l4 + 2)..]);
        p.InnerL2Offset = p.InnerL3Offset = p.InnerL4Offset = p.InnerPayloadOffset = -1;
        return true;
    }

    /// <summary>The shortcut's checks, shared by <see cref="TryDecodeEthernetIpv4"/> and <see cref="Classify"/>: true for
    /// a frame the layers would pass with these headers. <paramref name="l4Header"/> is the UDP length or the TCP header
    /// length; the TCP options, when the header has any, are parsed into <paramref name="options"/> (left as they were
    /// otherwise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool FastHeaders(ReadOnlySpan<byte> frame, out byte proto, out int total, out int l4Header, ref TcpOptions options)
    {
        const int l3 = EthernetView.HeaderLength, l4 = l3 + Ipv4View.MinHeaderLength;
        proto = 0;
        total = l4Header = 0;
        if (frame.Length < l4 + UdpView.HeaderLength) return false;
        ReadOnlySpan<byte> h = frame[..(l4 + UdpView.HeaderLength)]; // fixed length: the reads below need no checks of their own
        // EtherType IPv4; version 4 with IHL 5; neither MF nor a fragment offset.
        if (BinaryPrimitives.ReadUInt16BigEndian(h[12..]) != EtherTypes.Ipv4 || h[l3] != 0x45
            || (BinaryPrimitives.ReadUInt16BigEndian(h[(l3 + 6)..]) & 0x3FFF) != 0)
            return false;
        // Ipv4View.TryParse's total length: within the frame.
        total = BinaryPrimitives.ReadUInt16BigEndian(h[(l3 + 2)..]);
        if (total > frame.Length - l3) return false;
        proto = h[l3 + 9];
        if (proto == IpProtocols.Udp)
        {
            // UdpView.TryParse's length: 8 up to the datagram's end; the VXLAN port's datagrams are decapsulated.
            l4Header = BinaryPrimitives.ReadUInt16BigEndian(h[(l4 + 4)..]);
            return l4Header >= UdpView.HeaderLength && l4Header <= total - Ipv4View.MinHeaderLength
                && BinaryPrimitives.ReadUInt16BigEndian(h[(l4 + 2)..]) != UdpView.VxlanPort;
        }
        if (proto != IpProtocols.Tcp) return false;
        // TcpView.TryParse: 20 bytes at least, the data offset from 20 up to the segment's end; options parsed.
        int seg = total - Ipv4View.MinHeaderLength;
        if (seg < TcpView.MinHeaderLength) return false;
        l4Header = (frame[l4 + 12] >> 4) << 2;
        if (l4Header < TcpView.MinHeaderLength || l4Header > seg) return false;
        return l4Header == TcpView.MinHeaderLength
            || TcpOptions.TryParse(frame.Slice(l4 + TcpView.MinHeaderLength, l4Header - TcpView.MinHeaderLength), out options, out _);
    }

    /// <summary>Every layer in turn: the general decode (and the reference the common-frame shortcut must match).</summary>
    internal static DropReason DecodeLayers(ReadOnlySpan<byte> frame, LinkType linkType, out DecodedPacket packet)
    {
        packet = default;
        packet.L2Offset = packet.L3Offset = packet.L4Offset = packet.PayloadOffset = -1;
        packet.InnerL2Offset = packet.InnerL3Offset = packet.InnerL4Offset = packet.InnerPayloadOffset = -1;
        switch (linkType)
        {
            case LinkType.Ethernet:
                return DecodeEthernet(frame, 0, ref packet, true);
            case LinkType.Raw:
                if (frame.Length == 0) return DropReason.IpHeaderTruncated;
                switch (frame[0] >> 4)
                {
                    case 4: return DecodeNetwork(frame, 0, EtherTypes.Ipv4, ref packet, true);
                    case 6: return DecodeNetwork(frame, 0, EtherTypes.Ipv6, ref packet, true);
                    default: return DropReason.IpBadVersion;
                }
            case LinkType.Ipv4:
                return DecodeNetwork(frame, 0, EtherTypes.Ipv4, ref packet, true);
            case LinkType.Ipv6:
                return DecodeNetwork(frame, 0, EtherTypes.Ipv6, ref packet, true);
            case LinkType.LinuxSll or LinkType.LinuxSll2:
                if (!LinuxSllView.TryParse(frame, linkType == LinkType.LinuxSll2, out var sll, out var sllReason)) return sllReason;
                packet.Protocols = ProtocolFlags.LinuxSll;
                packet.L2Offset = 0;
                return DecodeVlans(frame, sll.HeaderLength, sll.Protocol, ref packet, true);
            default:
                return DropReason.UnsupportedLinkType;
        }
    }

    private static DropReason DecodeEthernet(ReadOnlySpan<byte> frame, int start, ref DecodedPacket p, bool allowTunnel)
    {
        if (!EthernetView.TryParse(frame[start..], out var eth, out var reason)) return reason;
        p.Protocols |= ProtocolFlags.Ethernet;
        p.L2Offset = start;
        return DecodeVlans(frame, start + EthernetView.HeaderLength, eth.EtherType, ref p, allowTunnel);
    }

    /// <summary>Walks VLAN tags (if <paramref name="type"/> is a TPID) and then the network header.</summary>
    private static DropReason DecodeVlans(ReadOnlySpan<byte> frame, int off, ushort type, ref DecodedPacket p, bool allowTunnel)
    {
        if (EtherTypes.IsVlanTpid(type))
        {
            if (!VlanStackView.TryParse(frame, off, type, out var tags, out var reason)) return reason;
            p.VlanId = tags.Vid(0);
            if (tags.Count > 1) p.InnerVlanId = tags.Vid(1);
            p.VlanCount = (byte)tags.Count;
            p.Protocols |= ProtocolFlags.Vlan;
            type = tags.InnerEtherType;
            off = tags.PayloadOffset;
        }
        return DecodeNetwork(frame, off, type, ref p, allowTunnel);
    }

    private static DropReason DecodeNetwork(ReadOnlySpan<byte> frame, int off, ushort type, ref DecodedPacket p, bool allowTunnel)
    {
        p.EtherType = type;
        p.L3Offset = off;
        switch (type)
        {
            case EtherTypes.Ipv4:
                return DecodeIpv4(frame, off, ref p, allowTunnel);
            case EtherTypes.Ipv6:
                return DecodeIpv6(frame, off, ref p, allowTunnel);
            case EtherTypes.Arp:
                if (!ArpView.TryParse(frame[off..], out _, out var arpReason)) return arpReason;
                p.Protocols |= ProtocolFlags.Arp;
                return DropReason.None;
            default:
                // An unknown EtherType (or an 802.3 length, or a VLAN stack deeper than we walk) is passed on.
                p.Protocols |= ProtocolFlags.Other;
                p.PayloadOffset = off;
                p.PayloadLength = frame.Length - off;
                return DropReason.None;
        }
    }

    private static DropReason DecodeIpv4(ReadOnlySpan<byte> frame, int off, ref DecodedPacket p, bool allowTunnel)
    {
        if (!Ipv4View.TryParse(frame[off..], out var ip, out var reason)) return reason;
        p.Protocols |= ProtocolFlags.Ipv4;
        int hl = ip.HeaderLength;
        int total = ip.TotalLength;
        byte proto = ip.Protocol;
        p.L3Length = total;
        p.Ttl = ip.Ttl;
        p.IpProtocol = proto;
        if (ip.IsFragment)
        {
            p.Protocols |= ProtocolFlags.Fragment;
            p.FragmentOffset = ip.FragmentOffsetBytes;
            p.MoreFragments = ip.MoreFragments;
            p.FragmentId = ip.Identification;
            if (p.FragmentOffset != 0)
            {
                // Only the first fragment carries the transport header.
                p.PayloadOffset = off + hl;
                p.PayloadLength = total - hl;
                return DropReason.None;
            }
        }
        return DecodeTransport(frame[..(off + total)], off + hl, proto, false, ref p, allowTunnel);
    }

    private static DropReason DecodeIpv6(ReadOnlySpan<byte> frame, int off, ref DecodedPacket p, bool allowTunnel)
    {
        if (!Ipv6View.TryParse(frame[off..], out var ip, out var reason)) return reason;
        p.Protocols |= ProtocolFlags.Ipv6;
        var payload = ip.Payload;
        int end = off + Ipv6View.HeaderLength + payload.Length;
        p.L3Length = end - off;
        p.Ttl = ip.HopLimit;
        byte nh = ip.NextHeader;
        int l4 = off + Ipv6View.HeaderLength;
        if (Ipv6ExtensionHeaderReader.IsExtensionHeader(nh))
        {
            if (!Ipv6ExtensionHeaderReader.TryWalk(payload, nh, out var ext, out reason)) return reason;
            nh = ext.UpperProtocol;
            l4 += ext.UpperOffset;
            if (ext.HasFragmentHeader)
            {
                p.Protocols |= ProtocolFlags.Fragment;
                p.FragmentOffset = ext.FragmentOffset;
                p.MoreFragments = ext.MoreFragments;
                p.FragmentId = ext.FragmentId;
                if (ext.FragmentOffset != 0)
                {
                    p.IpProtocol = nh;
                    p.PayloadOffset = l4;
                    p.PayloadLength = end - l4;
                    return DropReason.None;
                }
            }
        }
        p.IpProtocol = nh;
        return DecodeTransport(frame[..end], l4, nh, true, ref p, allowTunnel);
    }

    /// <summary><paramref name="frame"/> ends where the IP datagram ends (link padding excluded).</summary>
    private static DropReason DecodeTransport(ReadOnlySpan<byte> frame, int l4, byte proto, bool v6, ref DecodedPacket p, bool allowTunnel)
    {
        p.L4Offset = l4;
        var seg = frame[l4..];
        DropReason reason;
        switch (proto)
        {
            case IpProtocols.Tcp:
            {
                if (!TcpView.TryParse(seg, out var tcp, out reason)) return reason;
                p.Protocols |= ProtocolFlags.Tcp;
                p.SourcePort = tcp.SourcePort;
                p.DestinationPort = tcp.DestinationPort;
                p.TcpSeq = tcp.SequenceNumber;
                p.TcpAck = tcp.AckNumber;
                p.TcpFlags = tcp.Flags;
                p.TcpWindow = tcp.Window;
                int hl = tcp.HeaderLength;
                p.PayloadOffset = l4 + hl;
                p.PayloadLength = seg.Length - hl;
                if (hl > TcpView.MinHeaderLength && !TcpOptions.TryParse(tcp.Options, out p.TcpOptions, out reason))
                    return reason;
                return DropReason.None;
            }
            case IpProtocols.Udp:
            {
                if (!UdpView.TryParse(seg, out var udp, out reason)) return reason;
                p.Protocols |= ProtocolFlags.Udp;
                p.SourcePort = udp.SourcePort;
                p.DestinationPort = udp.DestinationPort;
                int ulen = udp.Length;
                p.PayloadOffset = l4 + UdpView.HeaderLength;
                p.PayloadLength = ulen - UdpView.HeaderLength;
                if (allowTunnel && p.DestinationPort == UdpView.VxlanPort)
                    return DecodeVxlan(frame[..(l4 + ulen)], l4 + UdpView.HeaderLength, ref p);
                return DropReason.None;
            }
            case IpProtocols.Icmp when !v6:
            {
                if (!IcmpView.TryParse(seg, out var icmp, out reason)) return reason;
                p.Protocols |= ProtocolFlags.Icmp;
                p.IcmpType = icmp.Type;
                p.IcmpCode = icmp.Code;
                p.PayloadOffset = l4 + IcmpView.HeaderLength;
                p.PayloadLength = seg.Length - IcmpView.HeaderLength;
                return DropReason.None;
            }
            case IpProtocols.Icmpv6 when v6:
            {
                if (!Icmpv6View.TryParse(seg, out var icmp, out reason)) return reason;
                p.Protocols |= ProtocolFlags.Icmpv6;
                p.IcmpType = icmp.Type;
                p.IcmpCode = icmp.Code;
                p.PayloadOffset = l4 + Icmpv6View.HeaderLength;
                p.PayloadLength = seg.Length - Icmpv6View.HeaderLength;
                return DropReason.None;
            }
            case IpProtocols.NoNextHeader when v6:
                p.PayloadOffset = l4;
                p.PayloadLength = seg.Length;
                return DropReason.None;
            default:
                p.Protocols |= ProtocolFlags.Other;
                p.PayloadOffset = l4;
                p.PayloadLength = seg.Length;
                return DropReason.None;
        }
    }

    /// <summary>VXLAN header at <paramref name="off"/>; the inner Ethernet frame is decoded without further tunnels.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static DropReason DecodeVxlan(ReadOnlySpan<byte> frame, int off, ref DecodedPacket p)
    {
        if (!VxlanView.TryParse(frame[off..], out var vx, out var reason)) return reason;
        p.Protocols |= ProtocolFlags.Vxlan;
        p.Vni = vx.Vni;
        var inner = default(DecodedPacket);
        inner.L2Offset = inner.L3Offset = inner.L4Offset = inner.PayloadOffset = -1;
        reason = DecodeEthernet(frame, off + VxlanView.HeaderLength, ref inner, false);
        p.InnerProtocols = inner.Protocols;
        p.InnerL2Offset = inner.L2Offset;
        p.InnerL3Offset = inner.L3Offset;
        p.InnerL4Offset = inner.L4Offset;
        p.InnerPayloadOffset = inner.PayloadOffset;
        p.InnerPayloadLength = inner.PayloadLength;
        p.InnerEtherType = inner.EtherType;
        p.InnerIpProtocol = inner.IpProtocol;
        return reason;
    }
}
