using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>
/// IPv6 fixed header (RFC 8200). <see cref="TryParse"/> mirrors ipv6_rcv's checks: 40 bytes present,
/// version 6, payload length within the data. A zero payload length with a hop-by-hop header is taken as
/// a jumbogram (RFC 2675) spanning the rest of the data. <see cref="Payload"/> excludes link padding.
/// </summary>
public readonly ref struct Ipv6View
{
    public const int HeaderLength = 40;

    private readonly ReadOnlySpan<byte> _data; // 40 + payload length bytes

    private Ipv6View(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out Ipv6View view, out DropReason reason)
    {
        view = default;
        if (data.Length < HeaderLength)
        {
            reason = DropReason.Ipv6HeaderTruncated;
            return false;
        }
        if (data[0] >> 4 != 6)
        {
            reason = DropReason.Ipv6BadVersion;
            return false;
        }
        int plen = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        if (plen == 0 && data[6] == IpProtocols.HopByHop)
            plen = data.Length - HeaderLength;
        else if (plen > data.Length - HeaderLength)
        {
            reason = DropReason.Ipv6BadPayloadLength;
            return false;
        }
        view = new Ipv6View(data[..(HeaderLength + plen)]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// The fixed header alone, as a NIC parser reads it: 40 bytes present and version 6. The view covers the
    /// data up to the payload length (all of it for a zero payload length, a jumbogram, or a truncated packet).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParseHeader(ReadOnlySpan<byte> data, out Ipv6View view)
    {
        view = default;
        if (data.Length < HeaderLength || data[0] >> 4 != 6) return false;
        int plen = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        view = new Ipv6View(plen == 0 ? data : data[..Math.Min(data.Length, HeaderLength + plen)]);
        return true;
    }

    public byte Version => (byte)(_data[0] >> 4);
    public byte TrafficClass => (byte)(BinaryPrimitives.ReadUInt16BigEndian(_data) >> 4);
    public byte Dscp => (byte)(TrafficClass >> 2);
    public byte Ecn => (byte)(TrafficClass & 3);
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(_data) & 0x000F_FFFF;
    /// <summary>The payload length field as stored (0 for a jumbogram).</summary>
    public ushort PayloadLength => BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    public byte NextHeader => _data[6];
    public byte HopLimit => _data[7];
    public ReadOnlySpan<byte> Source => _data.Slice(8, 16);
    public ReadOnlySpan<byte> Destination => _data.Slice(24, 16);
    /// <summary>Extension headers and upper-layer data.</summary>
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];

    /// <summary>Writes the 40-byte fixed header.</summary>
    public static void Write(Span<byte> dst, int payloadLength, byte nextHeader, byte hopLimit,
        ReadOnlySpan<byte> source, ReadOnlySpan<byte> destination, byte trafficClass = 0, uint flowLabel = 0)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, 6u << 28 | (uint)trafficClass << 20 | (flowLabel & 0xFFFFF));
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], (ushort)payloadLength);
        dst[6] = nextHeader;
        dst[7] = hopLimit;
        source[..16].CopyTo(dst[8..]);
        destination[..16].CopyTo(dst[24..]);
    }
}

/// <summary>What a walk over an IPv6 extension-header chain found.</summary>
public struct Ipv6ExtInfo
{
    /// <summary>The protocol after the last extension header (TCP, UDP, ICMPv6, 59 = none, ...).</summary>
    public byte UpperProtocol;
    /// <summary>Offset of the upper-layer header (or of fragment data), relative to the IPv6 payload.</summary>
    public int UpperOffset;
    /// <summary>Number of extension headers walked.</summary>
    public int HeaderCount;
    public bool HasHopByHop, HasRouting, HasDestinationOptions, HasAh;
    public bool HasFragmentHeader;
    /// <summary>Fragment offset in bytes (from the fragment header).</summary>
    public int FragmentOffset;
    public bool MoreFragments;
    public uint FragmentId;
    /// <summary>Offset of the fragment header relative to the IPv6 payload (-1 when absent).</summary>
    public int FragmentHeaderOffset;

    /// <summary>A fragment other than the first: the upper-layer header is not in this packet.</summary>
    public readonly bool IsNonFirstFragment => HasFragmentHeader && FragmentOffset != 0;
    /// <summary>Any fragment, including an atomic one (offset 0, M clear).</summary>
    public readonly bool IsFragment => HasFragmentHeader;
}

/// <summary>
/// Iterates the extension headers of an IPv6 payload (hop-by-hop, routing, fragment, destination options,
/// AH), checking each length before exposing it, as ipv6_skip_exthdr does. Stops at the first upper-layer
/// protocol, at ESP / no-next-header, or after a non-first fragment header.
/// </summary>
public ref struct Ipv6ExtensionHeaderReader
{
    /// <summary>A chain longer than this is not followed further (the upper protocol is then the next header).</summary>
    public const int MaxHeaders = 16;

    private readonly ReadOnlySpan<byte> _payload;
    private int _next;
    private byte _nextHeader;
    private int _count;
    private bool _stop;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Ipv6ExtensionHeaderReader(ReadOnlySpan<byte> payload, byte firstNextHeader)
    {
        _payload = payload;
        _nextHeader = firstNextHeader;
    }

    /// <summary>Type of the current extension header (its protocol number).</summary>
    public byte Type { get; private set; }
    /// <summary>Offset of the current header relative to the IPv6 payload.</summary>
    public int Offset { get; private set; }
    /// <summary>Length of the current header in bytes.</summary>
    public int Length { get; private set; }
    /// <summary>The protocol after the current header; after the walk ends, the upper-layer protocol.</summary>
    public readonly byte NextHeader => _nextHeader;
    /// <summary>Offset after the current header; after the walk ends, the upper-layer offset.</summary>
    public readonly int NextOffset => _next;
    /// <summary>Why the walk stopped early, or None.</summary>
    public DropReason Error { get; private set; }
    /// <summary>The current header's bytes.</summary>
    public readonly ReadOnlySpan<byte> Data => _payload.Slice(Offset, Length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsExtensionHeader(byte nh)
        => nh is IpProtocols.HopByHop or IpProtocols.Routing or IpProtocols.Fragment
            or IpProtocols.DestinationOptions or IpProtocols.Ah;

    /// <summary>Moves to the next extension header; false at the upper layer or on an error (see <see cref="Error"/>).</summary>
    public bool MoveNext()
    {
        if (_stop || !IsExtensionHeader(_nextHeader) || _count >= MaxHeaders)
            return false;
        int remaining = _payload.Length - _next;
        if (remaining < 8)
        {
            Error = DropReason.Ipv6ExtHeaderTruncated;
            _stop = true;
            return false;
        }
        var h = _payload[_next..];
        int len = _nextHeader switch
        {
            IpProtocols.Fragment => 8,
            IpProtocols.Ah => (h[1] + 2) << 2,
            _ => (h[1] + 1) << 3,
        };
        if (len > remaining)
        {
            Error = DropReason.Ipv6ExtHeaderTruncated;
            _stop = true;
            return false;
        }
        Type = _nextHeader;
        Offset = _next;
        Length = len;
        _nextHeader = h[0];
        _next += len;
        _count++;
        // After a non-first fragment the rest is fragment data, not headers.
        if (Type == IpProtocols.Fragment && (BinaryPrimitives.ReadUInt16BigEndian(h[2..]) & 0xFFF8) != 0)
            _stop = true;
        return true;
    }

    /// <summary>Number of extension headers walked so far.</summary>
    public readonly int Count => _count;

    /// <summary>Walks the whole chain at once with <see cref="MoveNext"/>, collecting what the datapath needs.</summary>
    public static bool TryWalk(ReadOnlySpan<byte> payload, byte nextHeader, out Ipv6ExtInfo info, out DropReason reason)
    {
        info = default;
        info.FragmentHeaderOffset = -1;
        var reader = new Ipv6ExtensionHeaderReader(payload, nextHeader);
        while (reader.MoveNext())
        {
            switch (reader.Type)
            {
                case IpProtocols.Fragment:
                    var h = reader.Data;
                    info.HasFragmentHeader = true;
                    info.FragmentHeaderOffset = reader.Offset;
                    ushort fo = BinaryPrimitives.ReadUInt16BigEndian(h[2..]);
                    info.FragmentOffset = fo & 0xFFF8;
                    info.MoreFragments = (fo & 1) != 0;
                    info.FragmentId = BinaryPrimitives.ReadUInt32BigEndian(h[4..]);
                    break;
                case IpProtocols.Ah:
                    info.HasAh = true;
                    break;
                case IpProtocols.HopByHop:
                    info.HasHopByHop = true;
                    break;
                case IpProtocols.Routing:
                    info.HasRouting = true;
                    break;
                default:
                    info.HasDestinationOptions = true;
                    break;
            }
        }
        if (reader.Error != DropReason.None)
        {
            reason = reader.Error;
            return false;
        }
        info.UpperProtocol = reader.NextHeader;
        info.UpperOffset = reader.NextOffset;
        info.HeaderCount = reader.Count;
        reason = DropReason.None;
        return true;
    }
}

/// <summary>The IPv6 fragment extension header (8 bytes).</summary>
public readonly ref struct Ipv6FragmentView
{
    public const int HeaderLength = 8;
    private readonly ReadOnlySpan<byte> _data;
    private Ipv6FragmentView(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out Ipv6FragmentView view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.Ipv6ExtHeaderTruncated;
            return false;
        }
        view = new Ipv6FragmentView(data);
        reason = DropReason.None;
        return true;
    }

    public byte NextHeader => _data[0];
    /// <summary>Offset of this fragment's data in bytes.</summary>
    public int FragmentOffset => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]) & 0xFFF8;
    public bool MoreFragments => (_data[3] & 1) != 0;
    public uint Identification => BinaryPrimitives.ReadUInt32BigEndian(_data[4..]);
}

/// <summary>The IPv6 routing extension header's fixed part (next header, length, type, segments left).</summary>
public readonly ref struct Ipv6RoutingView
{
    private readonly ReadOnlySpan<byte> _data;
    private Ipv6RoutingView(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out Ipv6RoutingView view, out DropReason reason)
    {
        view = default;
        if (data.Length < 8 || data.Length < (data[1] + 1) << 3)
        {
            reason = DropReason.Ipv6ExtHeaderTruncated;
            return false;
        }
        view = new Ipv6RoutingView(data[..((data[1] + 1) << 3)]);
        reason = DropReason.None;
        return true;
    }

    public byte NextHeader => _data[0];
    /// <summary>Length in 8-octet units, not counting the first 8 octets.</summary>
    public byte HeaderExtLength => _data[1];
    public byte RoutingType => _data[2];
    public byte SegmentsLeft => _data[3];
    /// <summary>Type-specific data after the first 4 bytes.</summary>
    public ReadOnlySpan<byte> TypeData => _data[4..];
}
