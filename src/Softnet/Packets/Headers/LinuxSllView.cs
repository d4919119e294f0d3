using System.Buffers.Binary;

namespace Softnet.Packets.Headers;

/// <summary>
/// The "cooked" capture headers of Linux any-device captures: SLL (LINKTYPE_LINUX_SLL, 16 bytes, protocol at
/// offset 14) and SLL2 (LINKTYPE_LINUX_SLL2, 20 bytes, protocol at offset 0). The protocol is an EtherType.
/// </summary>
public readonly ref struct LinuxSllView
{
    public const int SllLength = 16;
    public const int Sll2Length = 20;

    private readonly ReadOnlySpan<byte> _data;
    private readonly bool _v2;

    private LinuxSllView(ReadOnlySpan<byte> data, bool v2)
    {
        _data = data;
        _v2 = v2;
    }

    public static bool TryParse(ReadOnlySpan<byte> data, bool sll2, out LinuxSllView view, out DropReason reason)
    {
        if (data.Length < (sll2 ? Sll2Length : SllLength))
        {
            view = default;
            reason = DropReason.SllTruncated;
            return false;
        }
        view = new LinuxSllView(data, sll2);
        reason = DropReason.None;
        return true;
    }

    public bool IsSll2 => _v2;
    public int HeaderLength => _v2 ? Sll2Length : SllLength;
    public ushort Protocol => BinaryPrimitives.ReadUInt16BigEndian(_v2 ? _data : _data[14..]);
    /// <summary>PACKET_HOST (0), BROADCAST (1), MULTICAST (2), OTHERHOST (3), OUTGOING (4).</summary>
    public ushort PacketType => _v2 ? _data[10] : BinaryPrimitives.ReadUInt16BigEndian(_data);
    /// <summary>ARPHRD_* type of the device.</summary>
    public ushort HardwareType => BinaryPrimitives.ReadUInt16BigEndian(_v2 ? _data[8..] : _data[2..]);
    public int AddressLength => _v2 ? _data[11] : BinaryPrimitives.ReadUInt16BigEndian(_data[4..]);
    /// <summary>Link-layer source address (up to 8 bytes stored).</summary>
    public ReadOnlySpan<byte> Address => _data.Slice(_v2 ? 12 : 6, Math.Min(AddressLength, 8));
    /// <summary>Interface index (SLL2 only; 0 for SLL).</summary>
    public uint InterfaceIndex => _v2 ? BinaryPrimitives.ReadUInt32BigEndian(_data[4..]) : 0;
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];
}
