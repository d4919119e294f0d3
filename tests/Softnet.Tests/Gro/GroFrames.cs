using System.Buffers.Binary;
using Softnet.Gro;
using Softnet.Packets;

namespace Softnet.Tests.Gro;

/// <summary>One TCP segment in an Ethernet frame, every field settable, checksums filled in.</summary>
public sealed record TcpSeg
{
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, AckF = 0x10, Urg = 0x20, Ece = 0x40, Cwr = 0x80;

    public bool V6 { get; init; }
    public ushort Sport { get; init; } = 40000;
    public ushort Dport { get; init; } = 5201;
    public uint Seq { get; init; } = 1000;
    public uint Ack { get; init; } = 5000;
    public byte Flags { get; init; } = AckF;
    public ushort Window { get; init; } = 502;
    public ushort UrgPtr { get; init; }
    public byte[] TcpOptions { get; init; } = Ts(100, 200);
    public int PayloadLen { get; init; } = 100;
    public byte Tos { get; init; }
    public byte Ttl { get; init; } = 64;
    public ushort Id { get; init; } = 1;
    public bool Df { get; init; } = true;
    public byte[] IpOptions { get; init; } = [];
    public ushort FragBits { get; init; }
    public uint FlowLabel { get; init; }
    /// <summary>IPv6 extension headers: (type, bytes after the next-header/length pair); 2 + body must be a multiple of 8.</summary>
    public (byte Type, byte[] Body)[] Ext { get; init; } = [];
    public bool BadChecksum { get; init; }
    public int Padding { get; init; }
    public ushort? VlanTci { get; init; }
    public byte SrcMac { get; init; } = 1;
    public byte SrcIp { get; init; } = 1;

    /// <summary>NOP NOP timestamp.</summary>
    public static byte[] Ts(uint val, uint ecr)
    {
        var o = new byte[12];
        o[0] = 1; o[1] = 1; o[2] = 8; o[3] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(4), val);
        BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(8), ecr);
        return o;
    }

    /// <summary>Payload byte i of a segment at sequence <paramref name="seq"/>: a function of the stream position.</summary>
    public static byte PayloadByte(uint seq, int i) => (byte)((seq + (uint)i) * 7 + 3);

    /// <summary>The next segment of the same flow: sequence advanced by this payload, IP ID incremented.</summary>
    public TcpSeg Next(int? payloadLen = null) => this with { Seq = Seq + (uint)PayloadLen, Id = (ushort)(Id + 1), PayloadLen = payloadLen ?? PayloadLen };

    public byte[] Build()
    {
        int tcpLen = 20 + TcpOptions.Length + PayloadLen;
        var tcp = new byte[tcpLen];
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(0), Sport);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(2), Dport);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(4), Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp.AsSpan(8), Ack);
        tcp[12] = (byte)(((20 + TcpOptions.Length) / 4) << 4);
        tcp[13] = Flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(14), Window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(18), UrgPtr);
        TcpOptions.CopyTo(tcp, 20);
        for (int i = 0; i < PayloadLen; i++) tcp[20 + TcpOptions.Length + i] = PayloadByte(Seq, i);

        byte[] l3;
        byte[] src, dst;
        if (!V6)
        {
            int ihl = 20 + IpOptions.Length;
            l3 = new byte[ihl + tcpLen];
            l3[0] = (byte)(0x40 | (ihl / 4));
            l3[1] = Tos;
            BinaryPrimitives.WriteUInt16BigEndian(l3.AsSpan(2), (ushort)l3.Length);
            BinaryPrimitives.WriteUInt16BigEndian(l3.AsSpan(4), Id);
            BinaryPrimitives.WriteUInt16BigEndian(l3.AsSpan(6), (ushort)((Df ? 0x4000 : 0) | FragBits));
            l3[8] = Ttl;
            l3[9] = 6;
            src = [10, 0, 0, SrcIp];
            dst = [10, 0, 0, 2];
            src.CopyTo(l3, 12);
            dst.CopyTo(l3, 16);
            IpOptions.CopyTo(l3, 20);
            BinaryPrimitives.WriteUInt16BigEndian(l3.AsSpan(10), Checksum.Compute(l3.AsSpan(0, ihl)));
            ushort c = Checksum.Compute(tcp, Checksum.PseudoHeaderV4(src, dst, 6, tcpLen));
            BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), (ushort)(BadChecksum ? c ^ 0x0101 : c));
            tcp.CopyTo(l3, ihl);
        }
        else
        {
            int extLen = Ext.Sum(e => 2 + e.Body.Length);
            l3 = new byte[40 + extLen + tcpLen];
            BinaryPrimitives.WriteUInt32BigEndian(l3.AsSpan(0), 0x60000000u | ((uint)Tos << 20) | (FlowLabel & 0xFFFFF));
            BinaryPrimitives.WriteUInt16BigEndian(l3.AsSpan(4), (ushort)(extLen + tcpLen));
            l3[6] = Ext.Length > 0 ? Ext[0].Type : (byte)6;
            l3[7] = Ttl;
            src = Convert.FromHexString("fd000000000000000000000000000000");
            src[15] = SrcIp;
            dst = Convert.FromHexString("fd000000000000000000000000000002");
            src.CopyTo(l3, 8);
            dst.CopyTo(l3, 24);
            int at = 40;
            for (int i = 0; i < Ext.Length; i++)
            {
                l3[at] = i + 1 < Ext.Length ? Ext[i + 1].Type : (byte)6;
                l3[at + 1] = (byte)((2 + Ext[i].Body.Length) / 8 - 1);
                Ext[i].Body.CopyTo(l3, at + 2);
                at += 2 + Ext[i].Body.Length;
            }
            ushort c = Checksum.Compute(tcp, Checksum.PseudoHeaderV6(src, dst, 6, tcpLen));
            BinaryPrimitives.WriteUInt16BigEndian(tcp.AsSpan(16), (ushort)(BadChecksum ? c ^ 0x0101 : c));
            tcp.CopyTo(l3, at);
        }

        int vlan = VlanTci is null ? 0 : 4;
        var frame = new byte[14 + vlan + l3.Length + Padding];
        byte[] dmac = [2, 0, 0, 0, 0, 2];
        byte[] smac = [2, 0, 0, 0, 0, SrcMac];
        dmac.CopyTo(frame, 0);
        smac.CopyTo(frame, 6);
        ushort type = V6 ? (ushort)0x86DD : (ushort)0x0800;
        if (VlanTci is ushort tci)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(14), tci);
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), type);
        }
        else BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), type);
        l3.CopyTo(frame, 14 + vlan);
        return frame;
    }
}

/// <summary>Reads back what GRO delivered.</summary>
public static class Delivered
{
    public readonly record struct Seg(int Payload, uint Seq, byte Flags, int L3Offset, int L4Offset, bool V6, ushort Sport);

    public static Seg Parse(byte[] f)
    {
        int off = 14;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12));
        if (type == 0x8100)
        {
            type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            off = 18;
        }
        int l4, payload;
        bool v6 = type == 0x86DD;
        if (!v6)
        {
            int ihl = (f[off] & 0xF) * 4;
            l4 = off + ihl;
            payload = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 2)) - ihl - (f[l4 + 12] >> 4) * 4;
        }
        else
        {
            byte nh = f[off + 6];
            l4 = off + 40;
            while (nh is 0 or 43 or 44 or 60)
            {
                nh = f[l4];
                l4 += (f[l4 + 1] + 1) * 8;
            }
            payload = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(off + 4)) - (l4 - off - 40) - (f[l4 + 12] >> 4) * 4;
        }
        return new Seg(payload, BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(l4 + 4)), f[l4 + 13], off, l4, v6,
            BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(l4)));
    }

    public static int[] Payloads(IEnumerable<byte[]> frames) => frames.Select(f => Parse(f).Payload).ToArray();

    public static ReadOnlySpan<byte> PayloadBytes(byte[] f)
    {
        var s = Parse(f);
        int start = s.L4Offset + (f[s.L4Offset + 12] >> 4) * 4;
        return f.AsSpan(start, s.Payload);
    }
}

public static class GroRun
{
    /// <summary>One burst (one NAPI poll) through <see cref="GroReplay"/>.</summary>
    public static List<byte[]> One(GroOptions? options, params TcpSeg[] segs)
        => GroReplay.Run([segs.Select(s => s.Build()).ToList()], options ?? new GroOptions(), 0);

    public static List<byte[]> One(params TcpSeg[] segs) => One(null, segs);

    public static int[] Payloads(params TcpSeg[] segs) => Delivered.Payloads(One(segs));

    /// <summary>A run of <paramref name="n"/> back-to-back segments of one flow.</summary>
    public static TcpSeg[] Train(TcpSeg first, int n)
    {
        var a = new TcpSeg[n];
        a[0] = first;
        for (int i = 1; i < n; i++) a[i] = a[i - 1].Next();
        return a;
    }
}
