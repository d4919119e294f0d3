using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.KernelTests.Support;

/// <summary>TCP flag bits as they sit in the 13th byte of the TCP header.</summary>
public static class TcpFlags
{
    public const byte Fin = 0x01, Syn = 0x02, Rst = 0x04, Psh = 0x08, Ack = 0x10, Urg = 0x20, Ece = 0x40, Cwr = 0x80;
}

/// <summary>An IPv6 extension header: its type (the Next Header value that names it) and the bytes after its
/// first two (next header, length). Hop-by-hop/destination/routing headers: 2 + Body.Length must be a multiple
/// of 8. Fragment header (44): Body is 6 bytes (offset/flags, identification).</summary>
public sealed record Ipv6Ext(byte Type, byte[] Body)
{
    public const byte HopByHop = 0, Routing = 43, Fragment = 44, DestOptions = 60;

    /// <summary>An 8-byte hop-by-hop or destination header whose 6 option bytes are <paramref name="fill"/>
    /// (0x00 bytes read as Pad1 options, so 0x00 and 0x11 patterns mirror the selftest's two payloads).</summary>
    public static Ipv6Ext Options(byte type, byte fill) => new(type, Enumerable.Repeat(fill, 6).ToArray());

    /// <summary>A fragment header at <paramref name="offset8"/> (8-byte units).</summary>
    public static Ipv6Ext Frag(int offset8, bool more, uint id)
    {
        var b = new byte[6];
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)((offset8 << 3) | (more ? 1 : 0)));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(2), id);
        return new(Fragment, b);
    }
}

/// <summary>
/// Describes one Ethernet + IPv4/IPv6 + TCP frame; <see cref="Build"/> lays it out with correct checksums
/// unless a checksum delta asks for a bad one. Defaults follow the kernel's GRO selftest (ports 1500 -> 8000,
/// seq/ack starting at 100, ACK set, window 65535, TTL/hop limit 8, DF set, 100 bytes of 'a').
/// </summary>
public sealed record TcpFrame
{
    public bool V6 { get; init; }
    public byte[] DstMac { get; init; } = KernelGro.RxMac;
    public byte[] SrcMac { get; init; } = KernelGro.TxMac;
    /// <summary>802.1Q tags, outermost first (VLAN ids 0-4095; PCP/DEI zero).</summary>
    public IReadOnlyList<ushort> Vlans { get; init; } = [];

    /// <summary>Source/destination addresses (4 or 16 bytes); null picks the defaults for the family.</summary>
    public byte[]? SrcIp { get; init; }
    public byte[]? DstIp { get; init; }

    public ushort SrcPort { get; init; } = 1500;
    public ushort DstPort { get; init; } = 8000;
    public uint Seq { get; init; } = 100;
    public uint Ack { get; init; } = 100;
    public byte Flags { get; init; } = TcpFlags.Ack;
    public ushort Window { get; init; } = 65535;
    public ushort Urgent { get; init; }
    /// <summary>Raw TCP option bytes; length must be a multiple of 4.</summary>
    public byte[] TcpOptions { get; init; } = [];
    public int PayloadLength { get; init; } = 100;
    public byte PayloadFill { get; init; } = (byte)'a';

    /// <summary>IPv4 TOS byte or IPv6 traffic class (DSCP and ECN).</summary>
    public byte Tos { get; init; }
    /// <summary>IPv4 TTL or IPv6 hop limit.</summary>
    public byte Ttl { get; init; } = 8;
    public ushort IpId { get; init; }
    public bool DontFragment { get; init; } = true;
    public bool MoreFragments { get; init; }
    /// <summary>IPv4 fragment offset in 8-byte units.</summary>
    public ushort FragmentOffset { get; init; }
    /// <summary>Raw IPv4 option bytes; length must be a multiple of 4.</summary>
    public byte[] Ipv4Options { get; init; } = [];
    public uint FlowLabel { get; init; }
    public IReadOnlyList<Ipv6Ext> ExtHeaders { get; init; } = [];

    /// <summary>Added to the correct TCP checksum; non-zero makes it wrong.</summary>
    public ushort TcpChecksumDelta { get; init; }
    /// <summary>Added to the correct IPv4 header checksum; non-zero makes it wrong.</summary>
    public ushort IpChecksumDelta { get; init; }

    public static readonly byte[] DefaultSrc4 = [192, 168, 1, 200];
    public static readonly byte[] DefaultDst4 = [192, 168, 1, 100];
    public static readonly byte[] DefaultSrc6 = [0xfd, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    public static readonly byte[] DefaultDst6 = [0xfd, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    public byte[] Build()
    {
        if (TcpOptions.Length % 4 != 0) throw new ArgumentException("TCP options must be padded to 4 bytes");
        if (Ipv4Options.Length % 4 != 0) throw new ArgumentException("IPv4 options must be padded to 4 bytes");
        byte[] src = SrcIp ?? (V6 ? DefaultSrc6 : DefaultSrc4);
        byte[] dst = DstIp ?? (V6 ? DefaultDst6 : DefaultDst4);
        int ethLen = 14 + 4 * Vlans.Count;
        int extLen = ExtHeaders.Sum(e => 2 + e.Body.Length);
        int ipLen = V6 ? 40 + extLen : 20 + Ipv4Options.Length;
        int tcpHdr = 20 + TcpOptions.Length;
        int l4Len = tcpHdr + PayloadLength;
        var f = new byte[ethLen + ipLen + l4Len];
        var s = f.AsSpan();

        DstMac.CopyTo(s);
        SrcMac.CopyTo(s[6..]);
        int o = 12;
        foreach (var vid in Vlans)
        {
            BinaryPrimitives.WriteUInt16BigEndian(s[o..], 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(s[(o + 2)..], vid);
            o += 4;
        }
        BinaryPrimitives.WriteUInt16BigEndian(s[o..], V6 ? (ushort)0x86DD : (ushort)0x0800);

        var ip = s.Slice(ethLen, ipLen);
        if (V6)
        {
            uint first = (6u << 28) | ((uint)Tos << 20) | (FlowLabel & 0xFFFFF);
            BinaryPrimitives.WriteUInt32BigEndian(ip, first);
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(extLen + l4Len));
            ip[6] = ExtHeaders.Count > 0 ? ExtHeaders[0].Type : (byte)6;
            ip[7] = Ttl;
            src.CopyTo(ip[8..]);
            dst.CopyTo(ip[24..]);
            int e = 40;
            for (int i = 0; i < ExtHeaders.Count; i++)
            {
                var x = ExtHeaders[i];
                int len = 2 + x.Body.Length;
                ip[e] = i + 1 < ExtHeaders.Count ? ExtHeaders[i + 1].Type : (byte)6;
                if (x.Type == Ipv6Ext.Fragment)
                {
                    if (len != 8) throw new ArgumentException("fragment header is 8 bytes");
                    ip[e + 1] = 0;
                }
                else
                {
                    if (len % 8 != 0) throw new ArgumentException("extension header length must be a multiple of 8");
                    ip[e + 1] = (byte)(len / 8 - 1);
                }
                x.Body.CopyTo(ip[(e + 2)..]);
                e += len;
            }
        }
        else
        {
            ip[0] = (byte)(0x40 | (ipLen / 4));
            ip[1] = Tos;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(ipLen + l4Len));
            BinaryPrimitives.WriteUInt16BigEndian(ip[4..], IpId);
            ushort frag = (ushort)((DontFragment ? 0x4000 : 0) | (MoreFragments ? 0x2000 : 0) | (FragmentOffset & 0x1FFF));
            BinaryPrimitives.WriteUInt16BigEndian(ip[6..], frag);
            ip[8] = Ttl;
            ip[9] = 6;
            src.CopyTo(ip[12..]);
            dst.CopyTo(ip[16..]);
            Ipv4Options.CopyTo(ip[20..]);
            ushort ipsum = (ushort)(Checksum.Compute(ip) + IpChecksumDelta);
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], ipsum);
        }

        var tcp = s[(ethLen + ipLen)..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, SrcPort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], DstPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], Seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], Ack);
        tcp[12] = (byte)((tcpHdr / 4) << 4);
        tcp[13] = Flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], Window);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[18..], Urgent);
        TcpOptions.CopyTo(tcp[20..]);
        tcp.Slice(tcpHdr, PayloadLength).Fill(PayloadFill);
        uint pseudo = V6 ? Checksum.PseudoHeaderV6(src, dst, 6, l4Len) : Checksum.PseudoHeaderV4(src, dst, 6, l4Len);
        ushort sum = (ushort)(Checksum.Compute(tcp, pseudo) + TcpChecksumDelta);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], sum);
        return f;
    }
}

/// <summary>TCP option byte strings used by the cases.</summary>
public static class TcpOpt
{
    public const byte Nop = 1, WindowScale = 3, Timestamp = 8, Mss = 2;

    /// <summary>The 12-byte {NOP, NOP, TS} block in one of the selftest's three orders
    /// (0: NOP NOP TS, 1: NOP TS NOP, 2: TS NOP NOP).</summary>
    public static byte[] Ts(uint tsval, uint tsecr = 0, int order = 0)
    {
        var ts = new byte[10];
        ts[0] = Timestamp;
        ts[1] = 10;
        BinaryPrimitives.WriteUInt32BigEndian(ts.AsSpan(2), tsval);
        BinaryPrimitives.WriteUInt32BigEndian(ts.AsSpan(6), tsecr);
        return order switch
        {
            0 => [Nop, Nop, .. ts],
            1 => [Nop, .. ts, Nop],
            2 => [.. ts, Nop, Nop],
            _ => throw new ArgumentOutOfRangeException(nameof(order)),
        };
    }

    /// <summary>NOP + window scale (4 bytes).</summary>
    public static byte[] Wscale(byte shift = 0) => [Nop, WindowScale, 3, shift];

    /// <summary>MSS option (4 bytes).</summary>
    public static byte[] MssOpt(ushort mss)
    {
        var b = new byte[] { Mss, 4, 0, 0 };
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), mss);
        return b;
    }

    /// <summary>The IPv4 timestamp option the selftest inserts (glibc's struct ip_timestamp: type 68, length 40,
    /// pointer 5, timestamps only, nine empty slots).</summary>
    public static byte[] Ipv4Timestamp()
    {
        var b = new byte[40];
        b[0] = 68;
        b[1] = 40;
        b[2] = 5;
        return b;
    }
}
