using System.Buffers.Binary;
using Softnet.Capture.Generator;
using Softnet.Packets;

namespace Softnet.Tests.Capture.Generator;

/// <summary>A generated frame decoded just enough for assertions (independently of the generator's writers).</summary>
public sealed record GenFrame(long TimestampNs, byte[] Bytes)
{
    public int L3 => Vlan is null ? 14 : 18;
    public int? Vlan => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(12)) == 0x8100
        ? BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(14)) & 0xFFF : null;
    public ushort EtherType => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L3 - 2));
    public bool V6 => EtherType == 0x86DD;
    public int IpHeaderLength => V6 ? 40 : 20;
    public int L4 => L3 + IpHeaderLength;
    public byte Protocol => V6 ? Bytes[L3 + 6] : Bytes[L3 + 9];
    public bool Tcp => Protocol == 6;
    public int IpPayloadLength => V6
        ? BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L3 + 4))
        : BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L3 + 2)) - 20;
    public ReadOnlySpan<byte> Src => V6 ? Bytes.AsSpan(L3 + 8, 16) : Bytes.AsSpan(L3 + 12, 4);
    public ReadOnlySpan<byte> Dst => V6 ? Bytes.AsSpan(L3 + 24, 16) : Bytes.AsSpan(L3 + 16, 4);
    public ushort IpId => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L3 + 4));
    public uint FlowLabel => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(L3)) & 0xFFFFF;
    public int SrcPort => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L4));
    public int DstPort => BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L4 + 2));
    public uint Seq => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(L4 + 4));
    public uint AckNo => BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(L4 + 8));
    public int TcpHeaderLength => (Bytes[L4 + 12] >> 4) * 4;
    public byte Flags => Bytes[L4 + 13];
    public bool Syn => (Flags & 0x02) != 0;
    public bool Fin => (Flags & 0x01) != 0;
    public bool Psh => (Flags & 0x08) != 0;
    public bool IsAck => (Flags & 0x10) != 0;
    public int L4HeaderLength => Tcp ? TcpHeaderLength : 8;
    public ReadOnlySpan<byte> Payload => Bytes.AsSpan(L4 + L4HeaderLength, IpPayloadLength - L4HeaderLength);
    public bool FromClient => SrcPort != 5201 && SrcPort != 5202;
    public int ClientPort => FromClient ? SrcPort : DstPort;

    public bool L4ChecksumOk
    {
        get
        {
            var l4 = Bytes.AsSpan(L4, IpPayloadLength);
            uint pseudo = V6 ? Checksum.PseudoHeaderV6(Src, Dst, Protocol, l4.Length) : Checksum.PseudoHeaderV4(Src, Dst, Protocol, l4.Length);
            return Checksum.Verify(l4, pseudo);
        }
    }

    public bool IpChecksumOk => V6 || Checksum.Verify(Bytes.AsSpan(L3, 20));
}

/// <summary>Collects a generator's whole output.</summary>
public static class GenFrames
{
    public static List<GenFrame> All(TrafficGenerator g)
    {
        var list = new List<GenFrame>();
        var buffer = new byte[g.MaxFrameLength];
        while (g.TryNext(buffer, out int length, out long ts))
            list.Add(new GenFrame(ts, buffer.AsSpan(0, length).ToArray()));
        return list;
    }

    public static List<GenFrame> All(GeneratorOptions o) => All(new TrafficGenerator(o));
}
