using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>
/// UDP header (RFC 768). <see cref="TryParse"/> mirrors __udp4_lib_rcv: 8 bytes present and the length field
/// between 8 and the data available. <see cref="Payload"/> stops at the UDP length.
/// </summary>
public readonly ref struct UdpView
{
    public const int HeaderLength = 8;
    public const ushort VxlanPort = 4789;

    private readonly ReadOnlySpan<byte> _data; // exactly Length bytes

    private UdpView(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out UdpView view, out DropReason reason)
    {
        view = default;
        if (data.Length < HeaderLength)
        {
            reason = DropReason.UdpHeaderTruncated;
            return false;
        }
        int len = BinaryPrimitives.ReadUInt16BigEndian(data[4..]);
        if (len < HeaderLength || len > data.Length)
        {
            reason = DropReason.UdpBadLength;
            return false;
        }
        view = new UdpView(data[..len]);
        reason = DropReason.None;
        return true;
    }

    /// <summary>The 8-byte header alone, its length field unchecked (what xt_tcpudp reads: ports only; conntrack's
    /// udp_error judges the length). The view's payload is empty.</summary>
    public static bool TryParseHeader(ReadOnlySpan<byte> data, out UdpView view, out DropReason reason)
    {
        view = default;
        if (data.Length < HeaderLength)
        {
            reason = DropReason.UdpHeaderTruncated;
            return false;
        }
        view = new UdpView(data[..HeaderLength]);
        reason = DropReason.None;
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_data);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public ushort Length => BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_data[6..]);
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];
    public ReadOnlySpan<byte> Datagram => _data;

    /// <summary>Checks the checksum given the pseudo-header sum; a zero checksum (none, IPv4 only) passes.</summary>
    public bool VerifyChecksum(uint pseudoHeaderSum) => Checksum == 0 || Packets.Checksum.Verify(_data, pseudoHeaderSum);

    /// <summary>Writes the 8-byte header (checksum 0 = none).</summary>
    public static void Write(Span<byte> dst, ushort sourcePort, ushort destinationPort, int length, ushort checksum = 0)
    {
        BinaryPrimitives.WriteUInt16BigEndian(dst, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], destinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], checksum);
    }
}
