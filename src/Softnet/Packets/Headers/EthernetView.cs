using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>EtherType values the datapath recognises (IEEE registry; the kernel's ETH_P_*).</summary>
public static class EtherTypes
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    public const ushort Vlan = 0x8100;      // 802.1Q C-tag
    public const ushort QinQ = 0x88a8;      // 802.1ad S-tag
    public const ushort QinQLegacy = 0x9100; // pre-standard S-tag
    public const ushort Ipv6 = 0x86dd;

    /// <summary>Values below this are an 802.3 length field, not an EtherType.</summary>
    public const ushort MinEtherType = 0x0600;

    /// <summary>True for the TPIDs that introduce a VLAN tag (eth_type_vlan()).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsVlanTpid(ushort t) => t == Vlan || t == QinQ || t == QinQLegacy;
}

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
