using System.Buffers.Binary;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Netfilter;

/// <summary>
/// What netfilter sees of one IPv4 packet: the fields matches read, the conntrack attachment (skb->_nfct)
/// and the mark. Filled by <see cref="FromIpv4"/> from packet bytes, or by hand in tests. Addresses are
/// host-order uints. No allocation: interface names are references to strings the caller owns.
/// </summary>
public struct PacketContext
{
    public uint Src;
    public uint Dst;
    public byte Protocol;
    public ushort SrcPort;
    public ushort DstPort;
    /// <summary>TCP flag byte (FIN 0x01 .. CWR 0x80).</summary>
    public byte TcpFlags;
    public byte IcmpType;
    public byte IcmpCode;
    /// <summary>ICMP echo / timestamp identifier.</summary>
    public ushort IcmpId;
    /// <summary>Fragment offset is non-zero (the -f match; such packets carry no L4 header).</summary>
    public bool IsFragment;
    /// <summary>IP datagram length (skb->len at L3), used for byte counters.</summary>
    public int Length;
    public string? InInterface;
    public string? OutInterface;
    public uint Mark;
    /// <summary>Packet time in nanoseconds; drives conntrack timeouts.</summary>
    public long TimestampNs;
    /// <summary>IPv4 TTL and TOS byte.</summary>
    public byte Ttl;
    public byte Tos;
    /// <summary>IP header length in bytes (where the L4 header starts in <see cref="Packet"/>).</summary>
    public byte IpHeaderLength;
    /// <summary>skb->pkt_type as eth_type_trans set it (PACKET_HOST for locally generated packets).</summary>
    public PacketType PktType;
    /// <summary>Ethernet source address of the received frame (48 bits, big-endian order), 0 when none.</summary>
    public ulong SrcMac;
    /// <summary>br_netfilter's nf_bridge_info, filled by the bridge path: the bridge port the frame came in on and
    /// the one it leaves by (null until known; a frame being bridged has a PhysOut), for -m physdev.</summary>
    public string? PhysIn;
    public string? PhysOut;
    /// <summary>The packet has a br_netfilter nf_bridge_info (it crossed a bridge with bridge-nf-call-iptables).</summary>
    public bool HasBridgeInfo;

    // TCP fields conntrack's window tracking needs.
    public uint TcpSeq;
    public uint TcpAck;
    public ushort TcpWindow;
    /// <summary>TCP payload length (segment data without headers).</summary>
    public int TcpPayloadLength;
    /// <summary>Window scale option value, or -1 when absent.</summary>
    public sbyte TcpWindowScale;
    public bool TcpSackPermitted;
    /// <summary>Highest SACK right edge, when the packet carries SACK blocks.</summary>
    public uint TcpSackMax;
    public bool TcpHasSack;

    // ICMP error: the embedded header's tuple, as sent (the kernel's icmp_error / nf_conntrack_inet_error).
    public bool HasInner;
    public uint InnerSrc;
    public uint InnerDst;
    public byte InnerProtocol;
    public ushort InnerSrcPort;
    public ushort InnerDstPort;
    public byte InnerIcmpType;
    public byte InnerIcmpCode;
    public ushort InnerIcmpId;

    /// <summary>The conntrack entry attached to this packet, if any.</summary>
    public Connection? Ct;
    public CtInfo CtInfo;
    /// <summary>Set by REJECT: what the stack should answer with when the verdict is Drop.</summary>
    public RejectWith Reject;
    /// <summary>Why the packet was dropped, when a hook returns Drop.</summary>
    public DropReason DropReason;
    /// <summary>Set by a match that cannot decide (xt_action_param.hotdrop: a malformed header, a full table): the
    /// table walk stops and drops the packet.</summary>
    public bool HotDrop;

    // The IPv4 datagram's linear bytes, attached by NetfilterTables.Hook for the duration of the hook
    // (the caller's span is pinned there; datapath packet memory is pinned pool memory anyway).
    private unsafe byte* _packet;
    private int _packetLength;

    /// <summary>The IPv4 datagram (from the IP header on) for matches that read beyond the parsed fields
    /// (u32, string, length, tcpmss); empty outside a hook or when the caller passed no bytes.</summary>
    public readonly unsafe ReadOnlySpan<byte> Packet => new(_packet, _packetLength);

    /// <summary>The same bytes, writable, for targets that rewrite the packet (TCPMSS, DSCP, TTL...).</summary>
    public readonly unsafe Span<byte> WritablePacket => new(_packet, _packetLength);

    /// <summary>Six address bytes as the 48-bit number <see cref="SrcMac"/> holds.</summary>
    public static ulong MacOf(ReadOnlySpan<byte> mac)
    {
        ulong v = 0;
        for (int i = 0; i < 6; i++) v = v << 8 | mac[i];
        return v;
    }

    /// <summary>The TTL as the header holds it now (after forwarding decremented it), else the parsed one.</summary>
    public readonly byte CurrentTtl => _packetLength > 8 ? Packet[8] : Ttl;

    /// <summary>The TOS byte as the header holds it now, else the parsed one.</summary>
    public readonly byte CurrentTos => _packetLength > 1 ? Packet[1] : Tos;

    internal unsafe void AttachPacket(byte* data, int length)
    {
        _packet = data;
        _packetLength = data == null ? 0 : length;
    }

    /// <summary>True for ICMP types that carry an embedded datagram (dest unreachable, source quench,
    /// redirect, time exceeded, parameter problem).</summary>
    public static bool IsIcmpError(byte type) => type is 3 or 4 or 5 or 11 or 12;

    /// <summary>
    /// Fills a context from an IPv4 datagram. Returns false with a reason for headers too short to read;
    /// L4 fields stay zero for non-first fragments.
    /// </summary>
    public static bool FromIpv4(ReadOnlySpan<byte> ip, out PacketContext ctx, out DropReason reason)
    {
        ctx = default;
        ctx.TcpWindowScale = -1;
        reason = DropReason.None;
        if (ip.Length < 20 || (ip[0] >> 4) != 4) { reason = DropReason.IpHeaderTruncated; return false; }
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (ihl < 20 || ihl > ip.Length) { reason = DropReason.IpBadIhl; return false; }
        if (total < ihl || total > ip.Length) { reason = DropReason.IpBadTotalLength; return false; }
        ip = ip[..total];
        ctx.Length = total;
        ctx.Ttl = ip[8];
        ctx.Tos = ip[1];
        ctx.IpHeaderLength = (byte)ihl;
        ctx.Protocol = ip[9];
        ctx.Src = BinaryPrimitives.ReadUInt32BigEndian(ip[12..]);
        ctx.Dst = BinaryPrimitives.ReadUInt32BigEndian(ip[16..]);
        ctx.IsFragment = (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) != 0;
        if (ctx.IsFragment) return true;
        var l4 = ip[ihl..];
        switch (ctx.Protocol)
        {
            case 6:
                if (l4.Length < 20) { reason = DropReason.TcpHeaderTruncated; return false; }
                ctx.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                ctx.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
                ctx.TcpSeq = BinaryPrimitives.ReadUInt32BigEndian(l4[4..]);
                ctx.TcpAck = BinaryPrimitives.ReadUInt32BigEndian(l4[8..]);
                int doff = (l4[12] >> 4) * 4;
                ctx.TcpFlags = l4[13];
                ctx.TcpWindow = BinaryPrimitives.ReadUInt16BigEndian(l4[14..]);
                if (doff < 20 || doff > l4.Length) { reason = DropReason.TcpBadDoff; return false; }
                ctx.TcpPayloadLength = l4.Length - doff;
                ParseTcpOptions(l4[20..doff], ref ctx);
                break;
            case 17:
                if (l4.Length < 8) { reason = DropReason.UdpHeaderTruncated; return false; }
                ctx.SrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
                ctx.DstPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
                break;
            case 1:
                if (l4.Length < 8) { reason = DropReason.IcmpTruncated; return false; }
                ctx.IcmpType = l4[0];
                ctx.IcmpCode = l4[1];
                ctx.IcmpId = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
                if (IsIcmpError(ctx.IcmpType)) ParseInner(l4[8..], ref ctx);
                break;
        }
        return true;
    }

    private static void ParseInner(ReadOnlySpan<byte> inner, ref PacketContext ctx)
    {
        if (inner.Length < 20 || (inner[0] >> 4) != 4) return;
        int ihl = (inner[0] & 0xF) * 4;
        if (ihl < 20 || inner.Length < ihl + 8) return;
        ctx.InnerProtocol = inner[9];
        ctx.InnerSrc = BinaryPrimitives.ReadUInt32BigEndian(inner[12..]);
        ctx.InnerDst = BinaryPrimitives.ReadUInt32BigEndian(inner[16..]);
        var l4 = inner[ihl..];
        if (ctx.InnerProtocol is 6 or 17)
        {
            ctx.InnerSrcPort = BinaryPrimitives.ReadUInt16BigEndian(l4);
            ctx.InnerDstPort = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
        }
        else if (ctx.InnerProtocol == 1)
        {
            ctx.InnerIcmpType = l4[0];
            ctx.InnerIcmpCode = l4[1];
            ctx.InnerIcmpId = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
        }
        else return;
        ctx.HasInner = true;
    }

    private static void ParseTcpOptions(ReadOnlySpan<byte> opts, ref PacketContext ctx)
    {
        int i = 0;
        while (i < opts.Length)
        {
            byte kind = opts[i];
            if (kind == 0) return;
            if (kind == 1) { i++; continue; }
            if (i + 1 >= opts.Length) return;
            int len = opts[i + 1];
            if (len < 2 || i + len > opts.Length) return;
            if (kind == 3 && len == 3) ctx.TcpWindowScale = (sbyte)Math.Min((int)opts[i + 2], 14);
            else if (kind == 4 && len == 2) ctx.TcpSackPermitted = true;
            else if (kind == 5 && len >= 10 && (len - 2) % 8 == 0)
            {
                for (int b = i + 2; b + 8 <= i + len; b += 8)
                {
                    uint right = BinaryPrimitives.ReadUInt32BigEndian(opts[(b + 4)..]);
                    if (!ctx.TcpHasSack || (int)(right - ctx.TcpSackMax) > 0) ctx.TcpSackMax = right;
                    ctx.TcpHasSack = true;
                }
            }
            i += len;
        }
    }
}
