using System.Buffers.Binary;

namespace Softnet.Packets.Headers;

/// <summary>ICMPv6 header (RFC 4443): type, code, checksum, then a 4-byte type-specific word (icmpv6_rcv pulls 8 bytes).</summary>
public readonly ref struct Icmpv6View
{
    public const int HeaderLength = 8;

    public const byte DestinationUnreachable = 1;
    public const byte PacketTooBig = 2;
    public const byte TimeExceeded = 3;
    public const byte ParameterProblem = 4;
    public const byte EchoRequest = 128;
    public const byte EchoReply = 129;
    public const byte RouterSolicitation = 133;
    public const byte RouterAdvertisement = 134;
    public const byte NeighborSolicitation = 135;
    public const byte NeighborAdvertisement = 136;

    private readonly ReadOnlySpan<byte> _data;

    private Icmpv6View(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out Icmpv6View view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.Icmpv6Truncated;
            return false;
        }
        view = new Icmpv6View(data);
        reason = DropReason.None;
        return true;
    }

    public byte Type => _data[0];
    public byte Code => _data[1];
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public uint RestOfHeader => BinaryPrimitives.ReadUInt32BigEndian(_data[4..]);
    public ushort Identifier => BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    public ushort SequenceNumber => BinaryPrimitives.ReadUInt16BigEndian(_data[6..]);
    /// <summary>Error messages have the high bit of the type clear.</summary>
    public bool IsError => Type < 128;
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];
    public ReadOnlySpan<byte> Message => _data;
    /// <summary>Checks the checksum given the IPv6 pseudo-header sum (next header 58).</summary>
    public bool VerifyChecksum(uint pseudoHeaderSum) => Packets.Checksum.Verify(_data, pseudoHeaderSum);
}
