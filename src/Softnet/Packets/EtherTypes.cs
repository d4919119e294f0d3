using System.Runtime.CompilerServices;

namespace Softnet.Packets;

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
