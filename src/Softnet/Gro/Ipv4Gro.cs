using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// inet_gro_receive / inet_gro_complete (net/ipv4/af_inet.c) and the IPv4 half of the network-layer flush
/// (inet_gro_flush in include/net/gro.h, called from tcp_gro_receive).
/// </summary>
public static class Ipv4Gro
{
    private const uint IpDf = 0x4000;

    internal static unsafe Skb? Receive(GroEngine e, GroBucket bucket, Skb skb)
    {
        int off = skb.Gro.DataOffset;
        Skb? pp = null;
        int flush = 1;
        if (!GroEngine.MayPull(skb, off + 20))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            goto Out;
        }
        byte* iph = skb.DataAddress + off;
        byte proto = iph[9];
        if (proto != 6 && proto != 17)
        {
            e.NoteNormal(GroNormalReason.NoHandler);
            goto Out;
        }
        // Version 4 with a 20-byte header only: options are never merged.
        if (iph[0] != 0x45)
        {
            e.NoteNormal(GroNormalReason.IpHeader);
            goto Out;
        }
        if ((GroEngine.Be16(iph + 6) & 0x3FFF) != 0)
        {
            e.NoteNormal(GroNormalReason.Fragment);
            goto Out;
        }
        if (!Checksum.Ipv4HeaderOk(iph))
        {
            e.NoteNormal(GroNormalReason.IpHeader);
            goto Out;
        }
        if (e.Mode == GroMode.Ack && proto == 6 && skb.Gro.EncapMark == 0)
        {
            // Pure-ACK variant: drop Ethernet padding first (as ip_rcv would), so 60-byte ACKs can be compared.
            int totLen = GroEngine.Be16(iph + 2);
            if (totLen >= 40 && totLen < GroEngine.GroLen(skb)) skb.Trim(off + totLen);
            iph = skb.DataAddress + off;
        }
        skb.Gro.Proto = proto;
        uint word0 = GroEngine.Be32(iph), word1 = GroEngine.Be32(iph + 4);
        // Total length must equal what arrived; the reserved/MF/offset bits must be clear (DF may be set).
        flush = (ushort)((word0 ^ (uint)GroEngine.GroLen(skb)) | (word1 & ~IpDf));
        if (flush != 0)
        {
            e.NoteNormal((word0 & 0xFFFF) != (uint)GroEngine.GroLen(skb) ? GroNormalReason.LengthMismatch : GroNormalReason.Fragment);
        }
        // Source and destination address as one 8-byte word.
        ulong addrs = GroEngine.Raw64(iph + 12);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            // A held skb still marked same-flow came down the same link-layer path, so its IPv4 header sits at
            // the same offset and was made linear when it arrived.
            byte* iph2 = p.DataAddress + off;
            if (iph2[9] != proto || GroEngine.Raw64(iph2 + 12) != addrs)
                p.Gro.SameFlow = false;
        }
        skb.Gro.Flush |= (ushort)(flush != 0 ? 1 : 0);
        // network_offsets[encap_mark]: the outer header, or the one inside a UDP tunnel.
        if (skb.Gro.EncapMark != 0) skb.Gro.NetworkOffset1 = off;
        else skb.Gro.NetworkOffset0 = off;
        skb.Gro.DataOffset += 20;
        skb.SetTransportHeader(skb.Gro.DataOffset);
        pp = proto == 6 ? TcpGro.Receive4(e, bucket, skb) : UdpGro.Receive(e, bucket, skb, false);
    Out:
        if (flush != 0) skb.Gro.Flush |= 1;
        return pp;
    }

    /// <summary>inet_gro_flush: TTL, TOS and DF must match; the ID must advance by the number of merged
    /// segments, unless the flow's second packet repeated the first one's ID, which makes it a fixed-ID flow
    /// whose IDs must then stay equal. An encapsulated flow keeps that choice per header (<paramref name="inner"/>:
    /// ip_fixedid's outer and inner bits), so a tunnel whose outer IDs count up carries inner headers with a fixed
    /// ID and the other way round. Kernels before the 2025 "remove unnecessary df checks" change only accepted fixed
    /// IDs with DF set, kept one fixed-ID bit for both headers, and did not check the outer ID of an encapsulated
    /// packet with DF set at all (<see cref="GroOptions.FixedIdRequiresDf"/>).</summary>
    internal static unsafe int NetworkFlush(byte* iph, byte* iph2, Skb p, bool fixedIdRequiresDf, bool inner, out GroFlushReason reason)
    {
        uint id = GroEngine.Be32(iph + 4), id2 = GroEngine.Be32(iph2 + 4);
        ushort ipidOffset = (ushort)((id >> 16) - (id2 >> 16));
        ushort count = p.Gro.Count;
        uint df = id & IpDf;
        reason = GroFlushReason.TtlTos;
        if (iph[8] != iph2[8] || iph[1] != iph2[1] || ((id ^ id2) & IpDf) != 0) return 1;
        reason = GroFlushReason.IpId;
        if (fixedIdRequiresDf)
        {
            if (p.Gro.EncapMark != 0 && !inner && df != 0) return 0;
            if (count == 1 && df != 0 && ipidOffset == 0) p.Gro.IpFixedId = true;
            if (p.Gro.IpFixedId && df != 0) return ipidOffset;
            return ipidOffset ^ count;
        }
        ref bool fixedId = ref inner ? ref p.Gro.IpFixedIdInner : ref p.Gro.IpFixedId;
        if (count == 1 && ipidOffset == 0) fixedId = true;
        return ipidOffset ^ (fixedId ? 0 : count);
    }

    /// <summary>inet_gro_complete: total length and header checksum for the merged packet, then the L4 part.</summary>
    internal static bool Complete(Skb skb, int nhoff)
    {
        if (skb.Encapsulation)
        {
            skb.InnerProtocol = EtherTypes.Ipv4;
            skb.InnerNetworkHeader = skb.Data + nhoff;
        }
        Span<byte> iph = skb.LinearData.Slice(nhoff, 20);
        ushort oldLen = BinaryPrimitives.ReadUInt16BigEndian(iph.Slice(2));
        ushort newLen = (ushort)(skb.Len - nhoff);
        BinaryPrimitives.WriteUInt16BigEndian(iph.Slice(2), newLen);
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(iph.Slice(10));
        BinaryPrimitives.WriteUInt16BigEndian(iph.Slice(10), Checksum.Update16(check, oldLen, newLen));
        return iph[9] switch
        {
            6 => TcpGro.Complete4(skb, nhoff, nhoff + 20),
            17 => UdpGro.Complete4(skb, nhoff + 20),
            _ => false,
        };
    }
}
