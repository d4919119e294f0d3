using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>
/// IPv6 fragmentation on output (net/ipv6/ip6_output.c ip6_fragment) for datagrams this host makes that are longer
/// than the device's MTU (an echo reply to a reassembled request): the unfragmentable part (the IPv6 header and a
/// hop-by-hop header) is repeated in every fragment, followed by a fragment header and at most
/// (MTU - unfragmentable - 8) &amp; ~7 bytes of the rest, copied into new skbs from the stack's pools. A datagram
/// nf_defrag_ipv6 gathered (IP6CB frag_max_size) is cut no larger than its largest fragment, in the very pieces it came
/// in when they fit (the frag_list path's geometry), or refused with a packet too big when that fragment exceeds the MTU.
/// Ip6FragOKs / Ip6FragCreates / Ip6FragFails as the kernel counts them. The identification is the kernel's
/// ipv6_select_ident (a keyed hash, random per boot): Softnet numbers them in turn.
/// </summary>
public static class Ipv6Fragment
{
    /// <summary>What ip6_finish_output2 does with one finished frame.</summary>
    public delegate DropReason FrameOutput(NetStack stack, Namespace ns, Skb skb, Device outDev, UInt128 nexthop, Device? inDev);

    private static uint s_ident;

    /// <summary>ip6_fragment: consumes <paramref name="skb"/>; returns None, <see cref="Ipv4Output.Queued"/> or why
    /// it was dropped.</summary>
    public static DropReason Fragment(NetStack stack, Namespace ns, Skb skb, Device outDev, UInt128 nexthop, Device? inDev, FrameOutput output)
    {
        var mib = ns.Mib;
        int mtu = Math.Max(Icmpv6.MinMtu, ns.Mtu6(outDev));
        if (skb.FragMaxSize != 0)
        {
            // Reassembled by conntrack: never cut larger than the largest fragment that came, and refused (packet too
            // big, fail_toobig) when that one would not fit the route now.
            if (skb.FragMaxSize > mtu)
            {
                Icmpv6.Send(stack, ns, skb, outDev, Icmpv6View.PacketTooBig, 0, (uint)mtu);
                mib[SnmpCounter.Ip6FragFails]++;
                skb.Free();
                return DropReason.Ipv6PacketTooBig;
            }
            mtu = Math.Max(Icmpv6.MinMtu, (int)skb.FragMaxSize);
        }
        var pkt = stack.Linearize(skb);
        // ip6_find_1stfragopt: a hop-by-hop header stays in front of the fragment header.
        int hlen = 40;
        byte nh = pkt[6];
        int nhoff = 6;
        if (nh == IpProtocols.HopByHop && pkt.Length >= 48)
        {
            nhoff = 40;
            nh = pkt[40];
            hlen = 40 + ((pkt[41] + 1) << 3);
        }
        int per = (mtu - hlen - Ipv6FragmentView.HeaderLength) & ~7;
        int data = pkt.Length - hlen;
        if (per < 8 || hlen > pkt.Length)
        {
            mib[SnmpCounter.Ip6FragFails]++;
            skb.Free();
            return DropReason.FragFailed;
        }
        uint id = ++s_ident;
        var result = DropReason.None;
        // The frag_list path: a reassembled datagram whose pieces already fit leaves in those very pieces (each
        // fragment as it came, in offset order); otherwise the slow path cuts it into equal pieces.
        int room = mtu - hlen - Ipv6FragmentView.HeaderLength;
        var piece = FragListFits(skb, hlen, room) ? skb.FragList : null;
        int first = piece != null ? skb.Len - FragListLen(skb) - hlen : 0;
        for (int off = 0, len; off < data; off += len)
        {
            if (piece == null) len = Math.Min(per, data - off);
            else if (off == 0) len = first;
            else
            {
                len = piece.Len;
                piece = piece.Next;
            }
            bool more = off + len < data;
            var f = stack.NewFrame(hlen + 8 + len);
            if (f == null)
            {
                mib[SnmpCounter.Ip6FragFails]++;
                skb.Free();
                return DropReason.SkbAllocFailed;
            }
            var p = f.LinearData;
            pkt[..hlen].CopyTo(p);
            p[nhoff] = IpProtocols.Fragment;
            BinaryPrimitives.WriteUInt16BigEndian(p[4..], (ushort)(hlen - 40 + 8 + len));
            var fh = p[hlen..];
            fh[0] = nh;
            fh[1] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(fh[2..], (ushort)(off | (more ? 1 : 0)));
            BinaryPrimitives.WriteUInt32BigEndian(fh[4..], id);
            pkt.Slice(hlen + off, len).CopyTo(p[(hlen + 8)..]);
            f.ResetNetworkHeader();
            f.Dst = skb.Dst;
            f.Mark = skb.Mark;
            f.Priority = skb.Priority;
            mib[SnmpCounter.Ip6FragCreates]++;
            var r = output(stack, ns, f, outDev, nexthop, off == 0 ? inDev : null);
            if (r != DropReason.None && r != Ipv4Output.Queued && result == DropReason.None) result = r;
        }
        mib[SnmpCounter.Ip6FragOKs]++;
        skb.Free();
        return result;
    }

    private static int FragListLen(Skb skb)
    {
        int n = 0;
        for (var m = skb.FragList; m != null; m = m.Next) n += m.Len;
        return n;
    }

    /// <summary>ip6_fragment's geometry check for the frag_list path: the head's own part and every chained skb at
    /// most <paramref name="room"/> (the MTU less the unfragmentable part and the fragment header), all but the last a
    /// multiple of 8, nothing shared.</summary>
    private static bool FragListFits(Skb skb, int hlen, int room)
    {
        if (skb.FragList == null || skb.Cloned || skb.HeadShared) return false;
        int first = skb.Len - FragListLen(skb) - hlen;
        if (first <= 0 || first > room || (first & 7) != 0) return false;
        for (var m = skb.FragList; m != null; m = m.Next)
            if (m.Len > room || ((m.Len & 7) != 0 && m.Next != null) || m.HeadShared || m.FragList != null) return false;
        return true;
    }
}
