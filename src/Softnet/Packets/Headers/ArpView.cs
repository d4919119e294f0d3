using System.Buffers.Binary;

namespace Softnet.Packets.Headers;

/// <summary>
/// ARP packet (RFC 826). The fixed 8-byte part names the address sizes; <see cref="TryParse"/> checks
/// that the four variable-length addresses fit, so the address accessors work for any hardware/protocol
/// pair, and the Ethernet/IPv4 form (the only one arp_rcv accepts on Ethernet) has numeric shortcuts.
/// </summary>
public readonly ref struct ArpView
{
    public const int FixedLength = 8;
    /// <summary>Length of the Ethernet/IPv4 form.</summary>
    public const int EthernetIpv4Length = 28;

    public const ushort OpRequest = 1;
    public const ushort OpReply = 2;

    private readonly ReadOnlySpan<byte> _data;

    private ArpView(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out ArpView view, out DropReason reason)
    {
        view = default;
        if (data.Length < FixedLength)
        {
            reason = DropReason.ArpTruncated;
            return false;
        }
        int need = FixedLength + 2 * (data[4] + data[5]);
        if (data.Length < need)
        {
            reason = DropReason.ArpTruncated;
            return false;
        }
        view = new ArpView(data);
        reason = DropReason.None;
        return true;
    }

    public ushort HardwareType => BinaryPrimitives.ReadUInt16BigEndian(_data);
    public ushort ProtocolType => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public byte HardwareLength => _data[4];
    public byte ProtocolLength => _data[5];
    public ushort Operation => BinaryPrimitives.ReadUInt16BigEndian(_data[6..]);

    /// <summary>Hardware type 1 (Ethernet), protocol IPv4, 6-byte and 4-byte addresses.</summary>
    public bool IsEthernetIpv4 => HardwareType == 1 && ProtocolType == EtherTypes.Ipv4 && HardwareLength == 6 && ProtocolLength == 4;

    /// <summary>Length of the packet as its address sizes define it.</summary>
    public int Length => FixedLength + 2 * (HardwareLength + ProtocolLength);

    public ReadOnlySpan<byte> SenderHardwareAddress => _data.Slice(FixedLength, HardwareLength);
    public ReadOnlySpan<byte> SenderProtocolAddress => _data.Slice(FixedLength + HardwareLength, ProtocolLength);
    public ReadOnlySpan<byte> TargetHardwareAddress => _data.Slice(FixedLength + HardwareLength + ProtocolLength, HardwareLength);
    public ReadOnlySpan<byte> TargetProtocolAddress => _data.Slice(FixedLength + 2 * HardwareLength + ProtocolLength, ProtocolLength);

    /// <summary>Sender MAC (Ethernet/IPv4 form only; otherwise 0).</summary>
    public ulong SenderMac => IsEthernetIpv4 ? EthernetView.ReadMac(SenderHardwareAddress) : 0;
    public ulong TargetMac => IsEthernetIpv4 ? EthernetView.ReadMac(TargetHardwareAddress) : 0;
    /// <summary>Sender IPv4 address, big-endian numeric (Ethernet/IPv4 form only; otherwise 0).</summary>
    public uint SenderIp => IsEthernetIpv4 ? BinaryPrimitives.ReadUInt32BigEndian(SenderProtocolAddress) : 0;
    public uint TargetIp => IsEthernetIpv4 ? BinaryPrimitives.ReadUInt32BigEndian(TargetProtocolAddress) : 0;

    /// <summary>Writes a 28-byte Ethernet/IPv4 ARP packet.</summary>
    public static void WriteEthernetIpv4(Span<byte> dst, ushort op, ulong senderMac, uint senderIp, ulong targetMac, uint targetIp)
    {
        BinaryPrimitives.WriteUInt16BigEndian(dst, 1);
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], EtherTypes.Ipv4);
        dst[4] = 6;
        dst[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(dst[6..], op);
        EthernetView.WriteMac(dst[8..], senderMac);
        BinaryPrimitives.WriteUInt32BigEndian(dst[14..], senderIp);
        EthernetView.WriteMac(dst[18..], targetMac);
        BinaryPrimitives.WriteUInt32BigEndian(dst[24..], targetIp);
    }
}
