using System.Buffers.Binary;

namespace Softnet.Packets.Headers;

/// <summary>ICMPv4 header (RFC 792): type, code, checksum and the 4-byte rest-of-header (icmp_rcv pulls 8 bytes).</summary>
public readonly ref struct IcmpView
{
    public const int HeaderLength = 8;

    public const byte EchoReply = 0;
    public const byte DestinationUnreachable = 3;
    public const byte Redirect = 5;
    public const byte EchoRequest = 8;
    public const byte TimeExceeded = 11;
    public const byte ParameterProblem = 12;

    private readonly ReadOnlySpan<byte> _data;

    private IcmpView(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out IcmpView view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.IcmpTruncated;
            return false;
        }
        view = new IcmpView(data);
        reason = DropReason.None;
        return true;
    }

    public byte Type => _data[0];
    public byte Code => _data[1];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    /// <summary>The 4 bytes after the checksum (id+sequence for echo, next-hop MTU, pointer, gateway ...).</summary>
    public uint RestOfHeader => BinaryPrimitives.ReadUInt32BigEndian(_data[4..]);
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_data[6..]);
    /// <summary>True for the error types that quote the offending IP header.</summary>
    public bool IsError => Type is DestinationUnreachable or Redirect or TimeExceeded or ParameterProblem or 4;
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];
    public bool VerifyChecksum() => Packets.Checksum.Verify(_data);

    /// <summary>Writes the 8-byte header with the checksum over header plus <paramref name="payload"/>.</summary>
    public static void Write(Span<byte> dst, byte type, byte code, uint restOfHeader, ReadOnlySpan<byte> payload)
    {
        dst[0] = type;
        dst[1] = code;
        dst[2] = dst[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(dst[4..], restOfHeader);
        uint sum = Packets.Checksum.Add(Packets.Checksum.Sum(dst[..HeaderLength]), Packets.Checksum.Sum(payload));
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)~sum);
    }
}
