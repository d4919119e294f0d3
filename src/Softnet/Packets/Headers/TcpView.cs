using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>TCP header flag bits as they sit in byte 13 of the header.</summary>
[Flags]
public enum TcpFlags : byte
{
    None = 0,
    Fin = 0x01,
    Syn = 0x02,
    Rst = 0x04,
    Psh = 0x08,
    Ack = 0x10,
    Urg = 0x20,
    Ece = 0x40,
    Cwr = 0x80,
}

/// <summary>
/// TCP header (RFC 9293). <see cref="TryParse"/> does tcp_v4_rcv's length checks: the 20-byte header is
/// present and the data offset is at least 5 and within the data. Options are read with
/// <see cref="TcpOptionReader"/> or parsed at once into <see cref="TcpOptions"/>.
/// </summary>
public readonly ref struct TcpView
{
    public const int MinHeaderLength = 20;

    private readonly ReadOnlySpan<byte> _data;

    private TcpView(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out TcpView view, out DropReason reason)
    {
        view = default;
        if (data.Length < MinHeaderLength)
        {
            reason = DropReason.TcpHeaderTruncated;
            return false;
        }
        int doff = (data[12] >> 4) << 2;
        if (doff < MinHeaderLength || doff > data.Length)
        {
            reason = DropReason.TcpBadDoff;
            return false;
        }
        view = new TcpView(data);
        reason = DropReason.None;
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_data);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public uint SequenceNumber => BinaryPrimitives.ReadUInt32BigEndian(_data[4..]);
    public uint AckNumber => BinaryPrimitives.ReadUInt32BigEndian(_data[8..]);
    /// <summary>Data offset in 32-bit words.</summary>
    public byte DataOffset => (byte)(_data[12] >> 4);
    public int HeaderLength => (_data[12] >> 4) << 2;
    /// <summary>The three reserved bits plus the historic NS/AE bit (low nibble of byte 12).</summary>
    public byte Reserved => (byte)(_data[12] & 0x0F);
    public TcpFlags Flags => (TcpFlags)_data[13];
    public bool Cwr => (_data[13] & 0x80) != 0;
    public bool Ece => (_data[13] & 0x40) != 0;
    public bool Urg => (_data[13] & 0x20) != 0;
    public bool Ack => (_data[13] & 0x10) != 0;
    public bool Psh => (_data[13] & 0x08) != 0;
    public bool Rst => (_data[13] & 0x04) != 0;
    public bool Syn => (_data[13] & 0x02) != 0;
    public bool Fin => (_data[13] & 0x01) != 0;
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_data[14..]);
    public ushort Checksum => BinaryPrimitives.ReadUInt16BigEndian(_data[16..]);
    public ushort UrgentPointer => BinaryPrimitives.ReadUInt16BigEndian(_data[18..]);
    public ReadOnlySpan<byte> Options => _data[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];
    /// <summary>The whole segment (header and payload) the view was parsed over.</summary>
    public ReadOnlySpan<byte> Segment => _data;

    /// <summary>Checks the checksum over the whole segment given the IP pseudo-header sum.</summary>
    public bool VerifyChecksum(uint pseudoHeaderSum) => Packets.Checksum.Verify(_data, pseudoHeaderSum);

    /// <summary>Parses the options the kernel's tcp_parse_options understands.</summary>
    public bool TryParseOptions(out TcpOptions options, out DropReason reason)
        => TcpOptions.TryParse(Options, out options, out reason);

    /// <summary>Writes a 20-byte header without options (checksum 0; fill it afterwards).</summary>
    public static void Write(Span<byte> dst, ushort sourcePort, ushort destinationPort, uint seq, uint ack,
        TcpFlags flags, ushort window, int headerLength = MinHeaderLength, ushort urgentPointer = 0)
    {
        BinaryPrimitives.WriteUInt16BigEndian(dst, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(dst[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(dst[8..], ack);
        dst[12] = (byte)((headerLength >> 2) << 4);
        dst[13] = (byte)flags;
        BinaryPrimitives.WriteUInt16BigEndian(dst[14..], window);
        dst[16] = dst[17] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(dst[18..], urgentPointer);
    }
}
