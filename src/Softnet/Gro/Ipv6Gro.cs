using System.Buffers.Binary;
using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// ipv6_gro_receive / ipv6_gro_complete (net/ipv6/ip6_offload.c) and ipv6_gro_flush. Hop-by-hop, routing and
/// destination options headers (hop-by-hop always, the others as INET6_PROTO_GSO_EXTHDR offloads) are walked
/// and must match byte for byte between merged packets; a fragment header or any other next header has no GRO
/// handler, so such packets pass up unmerged. A different flow label makes a different flow; a different traffic class or hop limit flushes.
/// </summary>
public static class Ipv6Gro
{
    private const byte NextHdrHop = 0, NextHdrRouting = 43, NextHdrDest = 60;

    internal static Skb? Receive(GroEngine e, GroBucket bucket, Skb skb)
    {
        int off = skb.Gro.DataOffset;
        Skb? pp = null;
        int flush = 1;
        if (!GroEngine.MayPull(skb, off + 40))
        {
            e.NoteNormal(GroNormalReason.Truncated);
            goto Out;
        }
        if (skb.Gro.EncapMark != 0) skb.Gro.NetworkOffset1 = off;
        else skb.Gro.NetworkOffset0 = off;
        ReadOnlySpan<byte> iph = skb.LinearData.Slice(off, 40);
        if (e.Mode == GroMode.Ack && iph[6] == 6 && skb.Gro.EncapMark == 0)
        {
            int plen = GroEngine.Be16(iph, 4);
            if (plen + 40 < GroEngine.GroLen(skb)) skb.Trim(off + 40 + plen);
        }
        bool lenMismatch = GroEngine.Be16(iph, 4) != skb.Len - off - 40;
        flush += lenMismatch ? 1 : 0;
        if (lenMismatch) e.NoteNormal(GroNormalReason.LengthMismatch);
        byte proto = iph[6];
        int thoff = off + 40;
        if (proto != 6 && proto != 17)
        {
            // ipv6_gro_pull_exthdrs
            while (proto == NextHdrHop || proto == NextHdrRouting || proto == NextHdrDest)
            {
                if (!GroEngine.MayPull(skb, thoff + 2)) break;
                int optLen = (skb.LinearData[thoff + 1] + 1) * 8;
                if (!GroEngine.MayPull(skb, thoff + optLen)) break;
                proto = skb.LinearData[thoff];
                thoff += optLen;
            }
            if (proto != 6 && proto != 17)
            {
                e.NoteNormal(proto == 44 ? GroNormalReason.Fragment : GroNormalReason.NoHandler);
                goto Out;
            }
        }
        skb.Gro.DataOffset = thoff;
        skb.SetTransportHeader(thoff);
        skb.Gro.Proto = proto;
        flush--;
        int nlen = thoff - off;
        iph = skb.LinearData.Slice(off, nlen);
        uint first = GroEngine.Be32(iph, 0);
        for (Skb? p = bucket.Head; p != null; p = p.Next)
        {
            if (!p.Gro.SameFlow) continue;
            ReadOnlySpan<byte> iph2 = p.LinearData.Slice(off);
            // Version and flow label must match, as must addresses, next header and any extension headers.
            if (((first ^ GroEngine.Be32(iph2, 0)) & 0xF00FFFFF) != 0
                || !iph.Slice(8, 32).SequenceEqual(iph2.Slice(8, 32))
                || iph[6] != iph2[6]
                || (nlen > 40 && (iph2.Length < nlen || !iph.Slice(40, nlen - 40).SequenceEqual(iph2.Slice(40, nlen - 40)))))
            {
                p.Gro.SameFlow = false;
            }
        }
        skb.Gro.Flush |= (ushort)flush;
        GroEngine.PostPullRcsum(skb, iph);
        pp = proto == 6 ? TcpGro.Receive6(e, bucket, skb) : UdpGro.Receive(e, bucket, skb, true);
    Out:
        if (flush != 0) skb.Gro.Flush |= 1;
        return pp;
    }

    /// <summary>ipv6_gro_flush: traffic class and hop limit must match.</summary>
    internal static int NetworkFlush(ReadOnlySpan<byte> iph, ReadOnlySpan<byte> iph2)
    {
        uint first = GroEngine.Be32(iph, 0) ^ GroEngine.Be32(iph2, 0);
        return ((first & 0x0FF00000) != 0 || iph[7] != iph2[7]) ? 1 : 0;
    }

    /// <summary>ipv6_gro_complete: payload length for the merged packet, then the L4 part past the extension headers.</summary>
    internal static bool Complete(Skb skb, int nhoff)
    {
        if (skb.Encapsulation)
        {
            skb.InnerProtocol = EtherTypes.Ipv6;
            skb.InnerNetworkHeader = skb.Data + nhoff;
        }
        Span<byte> iph = skb.LinearData.Slice(nhoff);
        BinaryPrimitives.WriteUInt16BigEndian(iph.Slice(4), (ushort)(skb.Len - nhoff - 40));
        byte proto = iph[6];
        int thoff = nhoff + 40;
        while (proto == NextHdrHop || proto == NextHdrRouting || proto == NextHdrDest)
        {
            ReadOnlySpan<byte> d = skb.LinearData;
            proto = d[thoff];
            thoff += (d[thoff + 1] + 1) * 8;
        }
        return proto switch
        {
            6 => TcpGro.Complete6(skb, nhoff, thoff),
            17 => UdpGro.Complete6(skb, thoff),
            _ => false,
        };
    }
}
