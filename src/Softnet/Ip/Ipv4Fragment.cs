using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>
/// IPv4 fragmentation on output (net/ipv4/ip_output.c ip_fragment, ip_do_fragment): a datagram longer than the
/// route's MTU, or one that was reassembled (IPCB frag_max_size set), is cut into fragments of at most
/// min(MTU, frag_max_size). A reassembled datagram whose chained fragments already have that geometry leaves as
/// those very skbs, each given a copy of the header (the fast path); anything else is copied into new skbs from the
/// stack's pools (the slow path). IpFragOKs / IpFragCreates / IpFragFails as the kernel counts them.
/// </summary>
public static class Ipv4Fragment
{
    /// <summary>LL_RESERVED_SPACE of an Ethernet device: the headroom a fragment needs in front of its IP header.</summary>
    private const int LinkReserved = 16;

    /// <summary>What ip_finish_output2 does with one finished frame (the neighbour, or loopback).</summary>
    public delegate DropReason FrameOutput(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, Device? inDev);

    /// <summary>
    /// ip_fragment: DF stops fragmentation (IpFragFails and an ICMP fragmentation needed with the MTU) unless the
    /// datagram was reassembled by conntrack (ignore_df) and none of its fragments was larger than the MTU.
    /// Consumes <paramref name="skb"/>; returns None, <see cref="Ipv4Output.Queued"/> or the reason it was dropped.
    /// <paramref name="inDev"/> goes with the first fragment only: the neighbour queue counts that one as the
    /// forwarded frame.
    /// </summary>
    public static DropReason Fragment(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, Device? inDev, FrameOutput output)
    {
        int mtu = outDev.Mtu;
        var iph = NetStack.L3(skb);
        if ((iph[6] & 0x40) != 0 && (!skb.IgnoreDf || (skb.FragMaxSize != 0 && skb.FragMaxSize > mtu)))
        {
            ns.Mib[SnmpCounter.IpFragFails]++;
            Icmp.Send(stack, ns, skb, inDev ?? outDev, 3, 4, (uint)mtu, localDestination: false);
            skb.Free();
            return DropReason.FragFailed;
        }
        return DoFragment(stack, ns, skb, outDev, nexthop, inDev, output);
    }

    /// <summary>ip_do_fragment.</summary>
    public static DropReason DoFragment(NetStack stack, Namespace ns, Skb skb, Device outDev, uint nexthop, Device? inDev, FrameOutput output)
    {
        var mib = ns.Mib;
        // skb_checksum_help: a checksum left to the device is finished before the data is cut.
        if (skb.IpSummed == CsumState.Partial) FinishPartialChecksum(stack, skb);
        int mtu = outDev.Mtu;
        if (skb.FragMaxSize != 0 && skb.FragMaxSize < mtu) mtu = skb.FragMaxSize;
        var iph = NetStack.L3(skb);
        int hlen = (iph[0] & 0xF) * 4;
        int room = mtu - hlen;
        if (room < 8)
        {
            mib[SnmpCounter.IpFragFails]++;
            skb.Free();
            return DropReason.FragFailed;
        }
        if (skb.FragList != null && FastPathFits(skb, hlen, room))
            return FastPath(stack, ns, skb, hlen, outDev, nexthop, inDev, output);
        return SlowPath(stack, ns, skb, hlen, room, outDev, nexthop, inDev, output);
    }

    /// <summary>The frag_list geometry check of ip_do_fragment: the head's own part and every chained skb fit the
    /// data room, all but the last a multiple of 8, the datagram not itself a fragment, nothing shared, headroom for
    /// the header and the link header in front of every piece.</summary>
    private static bool FastPathFits(Skb skb, int hlen, int room)
    {
        int listLen = 0;
        for (var m = skb.FragList; m != null; m = m.Next) listLen += m.Len;
        int first = skb.Len - listLen - hlen;
        var iph = NetStack.L3(skb);
        if (first > room || (first & 7) != 0 || (BinaryPrimitives.ReadUInt16BigEndian(iph[6..]) & 0x3FFF) != 0 || skb.HeadShared
            || skb.Headroom < LinkReserved)
            return false;
        for (var m = skb.FragList; m != null; m = m.Next)
        {
            if (m.Len > room || ((m.Len & 7) != 0 && m.Next != null) || m.Headroom < hlen + LinkReserved || m.HeadShared || m.FragList != null)
                return false;
        }
        return true;
    }

    /// <summary>ip_fraglist_init / ip_fraglist_prepare: the head leaves with MF and its own part; each chained skb
    /// gets the header pushed in front (offset, MF but on the last, no DF) and the head's metadata.</summary>
    private static DropReason FastPath(NetStack stack, Namespace ns, Skb skb, int hlen, Device outDev, uint nexthop, Device? inDev, FrameOutput output)
    {
        var mib = ns.Mib;
        Span<byte> header = stackalloc byte[60];
        var iph = NetStack.L3(skb);
        iph[..hlen].CopyTo(header);
        var frag = skb.DetachFragList();
        int offset = skb.Len - hlen;
        BinaryPrimitives.WriteUInt16BigEndian(iph[2..], (ushort)skb.Len);
        BinaryPrimitives.WriteUInt16BigEndian(iph[6..], 0x2000);
        SetChecksum(iph[..hlen]);
        bool optionsDone = false;
        var r = output(stack, ns, skb, outDev, nexthop, inDev);
        // The neighbour queue took the first piece as the forwarded frame: the caller must not count it again.
        bool queued = r == Ipv4Output.Queued;
        while (true)
        {
            if (!Sent(r)) break;
            mib[SnmpCounter.IpFragCreates]++;
            if (frag == null) break;
            var cur = frag;
            frag = cur.Next;
            cur.Next = null;
            if (!optionsDone && hlen > 20) { Ipv4Options.Fragment(header[..hlen], hlen - 20); optionsDone = true; }
            var h = cur.Push(hlen);
            cur.ResetNetworkHeader();
            cur.SetTransportHeader(hlen);
            header[..hlen].CopyTo(h);
            BinaryPrimitives.WriteUInt16BigEndian(h[2..], (ushort)cur.Len);
            BinaryPrimitives.WriteUInt16BigEndian(h[6..], (ushort)((offset >> 3) | (frag != null ? 0x2000 : 0)));
            SetChecksum(h[..hlen]);
            offset += cur.Len - hlen;
            CopyMetadata(cur, skb);
            cur.IpSummed = CsumState.None;
            r = output(stack, ns, cur, outDev, nexthop, null);
            // A later piece's outcome does not make the first one queued.
            if (r == Ipv4Output.Queued) r = DropReason.None;
        }
        if (Sent(r))
        {
            mib[SnmpCounter.IpFragOKs]++;
            return queued ? Ipv4Output.Queued : DropReason.None;
        }
        while (frag != null)
        {
            var next = frag.Next;
            frag.Next = null;
            frag.Free();
            frag = next;
        }
        mib[SnmpCounter.IpFragFails]++;
        return r;
    }

    /// <summary>ip_frag_init / ip_frag_next: copies of the header and of up to the data room each, 8-aligned but the
    /// last; the offset continues the datagram's own (a fragment cut again), MF on all but the last (and on the last
    /// too when the datagram was not the last fragment), DF only when reassembly found the largest fragment had it;
    /// after the first piece the options that are not copied become NOPs (ip_options_fragment).</summary>
    private static DropReason SlowPath(NetStack stack, Namespace ns, Skb skb, int hlen, int room, Device outDev, uint nexthop, Device? inDev, FrameOutput output)
    {
        var mib = ns.Mib;
        Span<byte> header = stackalloc byte[60];
        NetStack.L3(skb)[..hlen].CopyTo(header);
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(header[6..]);
        int offset = (fo & 0x1FFF) << 3;
        bool notLast = (fo & 0x2000) != 0;
        bool df = skb.FragPmtu;
        int left = skb.Len - hlen;
        int ptr = hlen;
        bool first = true;
        var result = DropReason.None;
        while (left > 0)
        {
            int len = Math.Min(left, room);
            if (len < left) len &= ~7;
            var piece = stack.AllocSkb(hlen + len);
            if (piece == null) { result = DropReason.SkbAllocFailed; break; }
            var p = piece.Put(hlen + len);
            piece.ResetNetworkHeader();
            piece.SetTransportHeader(hlen);
            header[..hlen].CopyTo(p);
            skb.CopyBits(ptr, p.Slice(hlen, len));
            left -= len;
            ptr += len;
            BinaryPrimitives.WriteUInt16BigEndian(p[2..], (ushort)(hlen + len));
            BinaryPrimitives.WriteUInt16BigEndian(p[6..], (ushort)((offset >> 3) | (df ? 0x4000 : 0) | (left > 0 || notLast ? 0x2000 : 0)));
            SetChecksum(p[..hlen]);
            offset += len;
            CopyMetadata(piece, skb);
            piece.Id = first ? skb.Id : 0;
            piece.TraceId = skb.TraceId; // every piece of a traced datagram stays on its journey
            // ip_frag_next: only a datagram that starts at offset 0 has options to fix (a fragment's already are).
            if (first && hlen > 20 && (fo & 0x1FFF) == 0) Ipv4Options.Fragment(header[..hlen], hlen - 20);
            var r = output(stack, ns, piece, outDev, nexthop, first ? inDev : null);
            if (!first && r == Ipv4Output.Queued) r = DropReason.None;
            first = false;
            if (!Sent(r)) { result = r; break; }
            if (r == Ipv4Output.Queued) result = r;
            mib[SnmpCounter.IpFragCreates]++;
        }
        skb.Free();
        if (left > 0)
        {
            mib[SnmpCounter.IpFragFails]++;
            return result;
        }
        mib[SnmpCounter.IpFragOKs]++;
        return result;
    }

    private static bool Sent(DropReason r) => r == DropReason.None || r == Ipv4Output.Queued;

    /// <summary>ip_copy_metadata: what a fragment inherits from its datagram.</summary>
    private static void CopyMetadata(Skb to, Skb from)
    {
        to.PktType = from.PktType;
        to.Priority = from.Priority;
        to.Protocol = from.Protocol;
        to.Dst = from.Dst;
        to.Dev = from.Dev;
        to.Mark = from.Mark;
        to.Conntrack = from.Conntrack;
        to.CtInfo = from.CtInfo;
        to.TimestampNs = from.TimestampNs;
    }

    private static void SetChecksum(Span<byte> header)
    {
        header[10] = header[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(header[10..], Checksum.Compute(header));
    }

    /// <summary>skb_checksum_help for a linear datagram whose transport checksum is still partial.</summary>
    private static void FinishPartialChecksum(NetStack stack, Skb skb)
    {
        if (skb.IsNonlinear || skb.CsumStart < skb.Data) { skb.IpSummed = CsumState.None; return; }
        var data = skb.HeadBuffer[skb.CsumStart..skb.Tail];
        if (skb.CsumOffset + 2 <= data.Length)
        {
            ushort c = Checksum.Compute(data);
            BinaryPrimitives.WriteUInt16BigEndian(data[skb.CsumOffset..], c == 0 ? (ushort)0xFFFF : c);
        }
        skb.IpSummed = CsumState.None;
    }
}
