using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>
/// Ethernet II header (destination MAC, source MAC, EtherType). After <see cref="TryParse"/> the 14 bytes
/// are known present, so every accessor is safe.
/// </summary>
public readonly ref struct EthernetView
{
    public const int HeaderLength = 14;

    private readonly ReadOnlySpan<byte> _data;

    private EthernetView(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out EthernetView view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.EthTruncated;
            return false;
        }
        view = new EthernetView(data);
        reason = DropReason.None;
        return true;
    }

    public ReadOnlySpan<byte> Destination => _data[..6];
    public ReadOnlySpan<byte> Source => _data.Slice(6, 6);

    /// <summary>Destination MAC as a 48-bit number (first octet most significant).</summary>
    public ulong DestinationMac => ReadMac(_data);
    public ulong SourceMac => ReadMac(_data[6..]);

    public ushort EtherType => BinaryPrimitives.ReadUInt16BigEndian(_data[12..]);

    /// <summary>True when the destination has the group bit set (multicast or broadcast).</summary>
    public bool IsMulticast => (_data[0] & 1) != 0;
    public bool IsBroadcast => DestinationMac == 0xFFFF_FFFF_FFFFUL;

    /// <summary>Everything after the 14-byte header (a VLAN tag or the network header).</summary>
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReadMac(ReadOnlySpan<byte> mac)
        => (ulong)BinaryPrimitives.ReadUInt32BigEndian(mac) << 16 | BinaryPrimitives.ReadUInt16BigEndian(mac[4..]);

    public static void WriteMac(Span<byte> dst, ulong mac)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, (uint)(mac >> 16));
        BinaryPrimitives.WriteUInt16BigEndian(dst[4..], (ushort)mac);
    }

    /// <summary>Writes a 14-byte Ethernet II header.</summary>
    public static void Write(Span<byte> dst, ulong destination, ulong source, ushort etherType)
    {
        WriteMac(dst, destination);
        WriteMac(dst[6..], source);
        BinaryPrimitives.WriteUInt16BigEndian(dst[12..], etherType);
    }
}
