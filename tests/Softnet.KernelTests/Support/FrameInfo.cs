using System.Buffers.Binary;
using System.Net;

namespace Softnet.KernelTests.Support;

/// <summary>A forgiving decode of an Ethernet [+802.1Q] + IPv4/IPv6 [+ext headers] + TCP frame, for test
/// assertions and diff messages (not the datapath parser: it never fails, it just stops where it cannot go on).</summary>
public sealed class FrameInfo
{
    public byte[] Bytes { get; }
    public List<ushort> Vlans { get; } = [];
    public ushort EtherType { get; }
    public int IpOffset { get; } = -1;
    public int IpVersion { get; }
    public int IpHeaderLength { get; }
    /// <summary>Offset of the transport header (after IPv6 extension headers), or -1.</summary>
    public int L4Offset { get; } = -1;
    public byte Protocol { get; }
    public string Src { get; } = "";
    public string Dst { get; } = "";
    public ushort SrcPort { get; }
    public ushort DstPort { get; }
    public int TcpHeaderLength { get; }
    public bool IsFragment { get; }

    public bool IsTcp => Protocol == 6 && L4Offset >= 0 && !IsFragment && Bytes.Length >= L4Offset + 20;
    public int IpTotalLength => IpVersion == 4 ? BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(IpOffset + 2))
        : IpVersion == 6 ? 40 + BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(IpOffset + 4)) : 0;
    public uint Seq => IsTcp ? BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(L4Offset + 4)) : 0;
    public byte TcpFlagsByte => IsTcp ? Bytes[L4Offset + 13] : (byte)0;
    public ushort TcpChecksum => IsTcp ? BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(L4Offset + 16)) : (ushort)0;
    /// <summary>TCP payload bytes according to the IP length (Ethernet padding excluded).</summary>
    public int TcpPayloadLength => IsTcp ? IpOffset + IpTotalLength - L4Offset - TcpHeaderLength : 0;

    /// <summary>The 5-tuple plus VLAN tags, as a readable flow key; non-TCP frames get their own keys.</summary>
    public string FlowKey => IsTcp
        ? $"{(IpVersion == 4 ? "v4" : "v6")} {Src}:{SrcPort} > {Dst}:{DstPort}{string.Concat(Vlans.Select(v => $" vlan{v & 0xFFF}"))}"
        : IpVersion != 0 ? $"v{IpVersion} {Src} > {Dst} proto {Protocol}{(IsFragment ? " frag" : "")}{string.Concat(Vlans.Select(v => $" vlan{v & 0xFFF}"))}"
        : $"ethertype 0x{EtherType:x4}";

    public FrameInfo(byte[] frame)
    {
        Bytes = frame;
        var s = frame.AsSpan();
        if (s.Length < 14) return;
        int o = 12;
        ushort et = BinaryPrimitives.ReadUInt16BigEndian(s[o..]);
        while ((et == 0x8100 || et == 0x88A8) && s.Length >= o + 6)
        {
            Vlans.Add(BinaryPrimitives.ReadUInt16BigEndian(s[(o + 2)..]));
            o += 4;
            et = BinaryPrimitives.ReadUInt16BigEndian(s[o..]);
        }
        EtherType = et;
        int ip = o + 2;
        if (et == 0x0800 && s.Length >= ip + 20)
        {
            IpOffset = ip;
            IpVersion = 4;
            IpHeaderLength = (s[ip] & 0xF) * 4;
            Protocol = s[ip + 9];
            Src = new IPAddress(s.Slice(ip + 12, 4)).ToString();
            Dst = new IPAddress(s.Slice(ip + 16, 4)).ToString();
            IsFragment = (BinaryPrimitives.ReadUInt16BigEndian(s[(ip + 6)..]) & 0x3FFF) != 0;
            L4Offset = ip + IpHeaderLength;
        }
        else if (et == 0x86DD && s.Length >= ip + 40)
        {
            IpOffset = ip;
            IpVersion = 6;
            IpHeaderLength = 40;
            Src = new IPAddress(s.Slice(ip + 8, 16)).ToString();
            Dst = new IPAddress(s.Slice(ip + 24, 16)).ToString();
            byte nh = s[ip + 6];
            int e = ip + 40;
            while ((nh is 0 or 43 or 44 or 60) && s.Length >= e + 8)
            {
                if (nh == 44) IsFragment = true;
                byte next = s[e];
                e += nh == 44 ? 8 : (s[e + 1] + 1) * 8;
                nh = next;
            }
            Protocol = nh;
            L4Offset = e;
        }
        if (L4Offset >= 0 && (Protocol == 6 || Protocol == 17) && s.Length >= L4Offset + 4)
        {
            SrcPort = BinaryPrimitives.ReadUInt16BigEndian(s[L4Offset..]);
            DstPort = BinaryPrimitives.ReadUInt16BigEndian(s[(L4Offset + 2)..]);
        }
        if (Protocol == 6 && L4Offset >= 0 && s.Length >= L4Offset + 20)
            TcpHeaderLength = (s[L4Offset + 12] >> 4) * 4;
    }

    /// <summary>Names the header field that holds byte <paramref name="offset"/>.</summary>
    public string FieldAt(int offset)
    {
        if (offset < 6) return "eth.dst";
        if (offset < 12) return "eth.src";
        if (IpOffset < 0) return "eth.payload";
        if (offset < IpOffset - 2) return "vlan";
        if (offset < IpOffset) return "eth.type";
        int r = offset - IpOffset;
        if (IpVersion == 4 && r < IpHeaderLength)
            return r switch
            {
                0 => "ip.version/ihl",
                1 => "ip.tos",
                2 or 3 => "ip.len",
                4 or 5 => "ip.id",
                6 or 7 => "ip.flags/frag_offset",
                8 => "ip.ttl",
                9 => "ip.proto",
                10 or 11 => "ip.checksum",
                < 16 => "ip.src",
                < 20 => "ip.dst",
                _ => "ip.options",
            };
        if (IpVersion == 6 && offset < L4Offset)
            return r switch
            {
                < 4 => "ipv6.version/tclass/flowlabel",
                4 or 5 => "ipv6.payload_len",
                6 => "ipv6.nxt",
                7 => "ipv6.hlim",
                < 24 => "ipv6.src",
                < 40 => "ipv6.dst",
                _ => "ipv6.ext_headers",
            };
        if (Protocol != 6 || L4Offset < 0) return "l4";
        int t = offset - L4Offset;
        return t switch
        {
            < 2 => "tcp.srcport",
            < 4 => "tcp.dstport",
            < 8 => "tcp.seq",
            < 12 => "tcp.ack",
            12 => "tcp.hdr_len",
            13 => "tcp.flags",
            14 or 15 => "tcp.window",
            16 or 17 => "tcp.checksum",
            18 or 19 => "tcp.urgent",
            _ when t < TcpHeaderLength => "tcp.options",
            _ => "tcp.payload",
        };
    }

    /// <summary>One line: flow, seq, flags, payload length and frame length.</summary>
    public override string ToString()
        => IsTcp ? $"{FlowKey} seq={Seq} flags=0x{TcpFlagsByte:x2} payload={TcpPayloadLength} len={Bytes.Length}"
                 : $"{FlowKey} len={Bytes.Length}";
}
