using System.Buffers.Binary;

namespace Softnet.Packets.Headers;

/// <summary>VXLAN header (RFC 7348): flags (I bit = VNI valid), 24-bit VNI; the inner Ethernet frame follows.</summary>
public readonly ref struct VxlanView
{
    public const int HeaderLength = 8;
    public const byte FlagI = 0x08;

    private readonly ReadOnlySpan<byte> _data;

    private VxlanView(ReadOnlySpan<byte> data) => _data = data;

    public static bool TryParse(ReadOnlySpan<byte> data, out VxlanView view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.VxlanTruncated;
            return false;
        }
        view = new VxlanView(data);
        reason = DropReason.None;
        return true;
    }

    public byte Flags => _data[0];
    /// <summary>The I flag: the VNI is valid (vxlan_rcv drops frames without it).</summary>
    public bool VniValid => (_data[0] & FlagI) != 0;
    public uint Vni => BinaryPrimitives.ReadUInt32BigEndian(_data[4..]) >> 8;
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];

    public static void Write(Span<byte> dst, uint vni)
    {
        BinaryPrimitives.WriteUInt32BigEndian(dst, (uint)FlagI << 24);
        BinaryPrimitives.WriteUInt32BigEndian(dst[4..], vni << 8);
    }
}
