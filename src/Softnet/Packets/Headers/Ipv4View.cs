using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>
/// IPv4 header (RFC 791). <see cref="TryParse"/> applies the checks of the kernel's ip_rcv_core: version 4,
/// IHL at least 5 and present, total length covering the header and not beyond the data. Accessors then
/// read freely; <see cref="Payload"/> stops at the total length, dropping any link-layer padding.
/// </summary>
public readonly ref struct Ipv4View
{
    public const int MinHeaderLength = 20;

    private readonly ReadOnlySpan<byte> _data; // exactly TotalLength bytes

    private Ipv4View(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out Ipv4View view, out DropReason reason)
    {
        view = default;
        if (data.Length < MinHeaderLength)
        {
            reason = DropReason.IpHeaderTruncated;
            return false;
        }
        byte vihl = data[0];
        if (vihl >> 4 != 4)
        {
            reason = DropReason.IpBadVersion;
            return false;
        }
        int hl = (vihl & 0x0F) << 2;
        if (hl < MinHeaderLength)
        {
            reason = DropReason.IpBadIhl;
            return false;
        }
        if (hl > data.Length)
        {
            reason = DropReason.IpHeaderTruncated;
            return false;
        }
        int total = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        if (total < hl || total > data.Length)
        {
            reason = DropReason.IpBadTotalLength;
            return false;
        }
        view = new Ipv4View(data[..total]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>
    /// The header alone, as a NIC parser or the flow dissector reads it: version 4, IHL at least 5 and the header
    /// present; the total length is not checked (a truncated or padded packet still parses). The view covers the
    /// data up to the total length (at least the header, at most the data).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParseHeader(ReadOnlySpan<byte> data, out Ipv4View view)
    {
        view = default;
        if (data.Length < MinHeaderLength || data[0] >> 4 != 4) return false;
        int hl = (data[0] & 0x0F) << 2;
        if (hl < MinHeaderLength || hl > data.Length) return false;
        int total = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
        view = new Ipv4View(data[..(total < hl ? hl : Math.Min(total, data.Length))]);
        return true;
    }

    /// <summary>
    /// ip_rcv_core's checks in its order: version and IHL, the header present, the header checksum, then the total
    /// length against <paramref name="packetLength"/>, the whole datagram's length (the linear bytes may end
    /// before it: a GSO skb's payload continues in frags). The view covers the linear bytes up to tot_len.
    /// </summary>
    public static bool TryParseReceived(ReadOnlySpan<byte> linear, int packetLength, out Ipv4View view, out DropReason reason, bool verifyChecksum = true)
    {
        view = default;
        if (linear.Length < MinHeaderLength) { reason = DropReason.IpHeaderTruncated; return false; }
        if (linear[0] >> 4 != 4) { reason = DropReason.IpBadVersion; return false; }
        int hl = (linear[0] & 0x0F) << 2;
        if (hl < MinHeaderLength) { reason = DropReason.IpBadIhl; return false; }
        if (hl > linear.Length) { reason = DropReason.IpHeaderTruncated; return false; }
        if (verifyChecksum && !Checksum.Verify(linear[..hl])) { reason = DropReason.IpCsumError; return false; }
        int total = BinaryPrimitives.ReadUInt16BigEndian(linear[2..]);
        if (total < hl || total > packetLength) { reason = DropReason.IpBadTotalLength; return false; }
        view = new Ipv4View(linear[..Math.Min(total, linear.Length)]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>A header ip_rcv_core already checked (the skb's network header once Ipv4Input.ValidateHeader has
    /// passed it, or a datagram this stack built): no check is repeated. The view covers the linear bytes up to tot_len.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Ipv4View Checked(ReadOnlySpan<byte> linear)
        => new(linear[..Math.Min(BinaryPrimitives.ReadUInt16BigEndian(linear[2..]), linear.Length)]);

    public byte Version => (byte)(_data[0] >> 4);
    /// <summary>Header length in 32-bit words.</summary>
    public byte Ihl => (byte)(_data[0] & 0x0F);
    public int HeaderLength => (_data[0] & 0x0F) << 2;
    public byte Tos => _data[1];
    public byte Dscp => (byte)(_data[1] >> 2);
    public byte Ecn => (byte)(_data[1] & 3);
    public ushort TotalLength => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public ushort Identification => BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    /// <summary>The three flag bits (reserved, DF, MF) as the top bits of a 3-bit value.</summary>
    public byte Flags => (byte)(_data[6] >> 5);
    public bool ReservedFlag => (_data[6] & 0x80) != 0;
    public bool DontFragment => (_data[6] & 0x40) != 0;
    public bool MoreFragments => (_data[6] & 0x20) != 0;
    /// <summary>Fragment offset in 8-byte units.</summary>
    public ushort FragmentOffset => (ushort)(BinaryPrimitives.ReadUInt16BigEndian(_data[6..]) & 0x1FFF);
    public int FragmentOffsetBytes => FragmentOffset << 3;
    /// <summary>True for any fragment (MF set or a non-zero offset), ip_is_fragment().</summary>
    public bool IsFragment => (BinaryPrimitives.ReadUInt16BigEndian(_data[6..]) & 0x3FFF) != 0;
    public byte Ttl => _data[8];
    public byte Protocol => _data[9];
    public ushort HeaderChecksum => BinaryPrimitives.ReadUInt16BigEndian(_data[10..]);
    /// <summary>True when the header checksum is correct (ip_fast_csum == 0).</summary>
    public bool VerifyChecksum() => Checksum.Verify(_data[..HeaderLength]);
    public ReadOnlySpan<byte> Source => _data.Slice(12, 4);
    public ReadOnlySpan<byte> Destination => _data.Slice(16, 4);
    /// <summary>Source address as a big-endian number (a.b.c.d = a&lt;&lt;24 | ...).</summary>
    public uint SourceAddress => BinaryPrimitives.ReadUInt32BigEndian(_data[12..]);
    public uint DestinationAddress => BinaryPrimitives.ReadUInt32BigEndian(_data[16..]);
    public ReadOnlySpan<byte> Options => _data[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Header => _data[..HeaderLength];
    /// <summary>The bytes after the header up to the total length.</summary>
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];

    /// <summary>Writes a 20-byte header without options, checksum filled in.</summary>
    public static void Write(Span<byte> dst, int totalLength, ushort id, bool dontFragment, byte ttl, byte protocol,
        uint source, uint destination, byte tos = 0, bool moreFragments = false, ushort fragmentOffset8 = 0)
    {
        dst[0] = 0x45;
        dst[1] = tos;
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], (ushort)((dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | (fragmentOffset8 & 0x1FFF)));
        dst[8] = ttl;
        dst[9] = protocol;
        dst[10] = dst[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(dst[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(dst[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(dst[10..], Checksum.Compute(dst[..20]));
    }
}
