using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;
using FragQueue6 = Softnet.Ip.InetFragQueue<Softnet.Ip.Ipv6Defrag.FragKey6>;

namespace Softnet.Ip;

/// <summary>
/// One namespace's IPv6 reassembly for datagrams addressed to it (net/ipv6/reassembly.c over inet_fragment.c,
/// net->ipv6.fqdir): ipv6_frag_rcv's header checks, queues keyed as fq_find keys them (identification, source,
/// destination, and the arrival device for a link-local or multicast destination), ip6_frag_queue's length rules
/// (a middle fragment not a multiple of 8 and a datagram past 65535 are parameter problems), the RFC 5722 overlap
/// rule of inet_frag_queue_insert (an overlap drops the whole queue), ip6frag_high_thresh, ip6frag_time on the replay
/// clock with ICMPv6 time exceeded 1 when the first fragment is in (ip6_frag_expire). A completed datagram is the
/// first fragment's skb, its fragment header taken out, the others chained on its frag_list: no copy.
/// </summary>
public sealed class Ipv6Defrag
{
    /// <summary>What a queue itself costs against ip6frag_high_thresh (sizeof(struct frag_queue)).</summary>
    public const int QueueTrueSize = 200;

    /// <summary>frag_v6_compare_key: identification, addresses, the arrival device for a link-local or multicast
    /// destination (else 0), and the defrag user (0 for ipv6_frag_rcv; nf_ct_frag6's are in <see cref="Netfilter.NfDefragIpv6"/>).</summary>
    internal readonly record struct FragKey6(UInt128 Saddr, UInt128 Daddr, uint Id, int Iif, uint User = 0);

    private readonly Dictionary<FragKey6, FragQueue6> _queues = new();
    private readonly Stack<FragQueue6> _free = new();
    private long _nextDue = long.MaxValue;

    /// <summary>frag_mem_limit of the IPv6 fqdir: held truesize plus the queues' own.</summary>
    public long Memory { get; private set; }
    public int QueueCount => _queues.Count;

    /// <summary>
    /// ipv6_frag_rcv on the fragment header at <paramref name="off"/>, named by the field at <paramref name="nhoff"/>.
    /// <paramref name="fragmented"/>: the datagram already went through a fragment header (IP6SKB_FRAGMENTED).
    /// Complete hands back the datagram (<paramref name="datagram"/>, data at its IPv6 header) with the header that
    /// follows (<paramref name="next"/> at <paramref name="nextOff"/>, named by the field now at <paramref name="nhoff"/>);
    /// otherwise the skb is held or dropped, counted.
    /// </summary>
    public DefragResult Receive(NetStack stack, Device dev, Skb skb, int off, ref int nhoff, bool fragmented,
        out Skb? datagram, out byte next, out int nextOff)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        datagram = null;
        next = 0;
        nextOff = 0;
        if (fragmented) return FailHeader(stack, dev, skb, off);
        mib[SnmpCounter.Ip6ReasmReqds]++;
        var pkt = NetStack.L3(skb);
        if (BinaryPrimitives.ReadUInt16BigEndian(pkt[4..]) == 0 || skb.Len < off + 8 || !skb.MayPull(off + 8))
            return FailHeader(stack, dev, skb, off);
        pkt = NetStack.L3(skb);
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(pkt[(off + 2)..]);
        if ((fo & 0xFFF9) == 0)
        {
            // Not fragmented at all (offset 0, M clear): the fragment header is skipped.
            mib[SnmpCounter.Ip6ReasmOKs]++;
            next = pkt[off];
            nhoff = off;
            nextOff = off + 8;
            datagram = skb;
            return DefragResult.Complete;
        }
        // ipv6frag_thdr_truncated: a first fragment must hold the upper-layer header (RFC 8200 4.5).
        if ((fo & 0xFFF8) == 0 && FirstTruncated(stack, skb, off))
        {
            // Counted as a header error on 6.18.
            mib[SnmpCounter.Ip6InHdrErrors]++;
            Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.ParameterProblem, 3, 0);
            NetStack.Drop(ns, skb, DropReason.Ipv6FragInvalid);
            return DefragResult.Dropped;
        }
        var saddr = Ipv6.Read(pkt[8..]);
        var daddr = Ipv6.Read(pkt[24..]);
        var key = new FragKey6(saddr, daddr, BinaryPrimitives.ReadUInt32BigEndian(pkt[(off + 4)..]),
            Ipv6.IsLinkLocal(daddr) || Ipv6.IsMulticast(daddr) ? dev.Ifindex : 0);
        long high = ns.Ip6FragHighThresh;
        if (high == 0 || Memory > high)
        {
            mib[SnmpCounter.Ip6ReasmFails]++;
            NetStack.Drop(ns, skb, DropReason.FragMemoryLimit);
            return DefragResult.Dropped;
        }
        if (!_queues.TryGetValue(key, out var q))
        {
            q = _free.Count > 0 ? _free.Pop() : new FragQueue6();
            q.Init(key, stack.Now + ns.Ip6FragTime * 1_000_000_000L);
            _queues.Add(key, q);
            Memory += QueueTrueSize;
            if (q.ExpiresNs < _nextDue) _nextDue = q.ExpiresNs;
            stack.ArmDefrag6Timer(q.ExpiresNs);
        }
        q.Iif = dev;
        var r = Queue(stack, ns, dev, q, skb, off, nhoff, out datagram, out int headNhoff);
        if (r == DefragResult.Complete)
        {
            var d = NetStack.L3(datagram!);
            nhoff = headNhoff;
            next = d[headNhoff];
            nextOff = off;
        }
        return r;
    }

    /// <summary>fail_hdr: InHdrErrors and a parameter problem pointing at the fragment header.</summary>
    private static DefragResult FailHeader(NetStack stack, Device dev, Skb skb, int off)
    {
        dev.Namespace.Mib[SnmpCounter.Ip6InHdrErrors]++;
        Icmpv6.Send(stack, dev.Namespace, skb, dev, Icmpv6View.ParameterProblem, 0, (uint)off);
        NetStack.Drop(dev.Namespace, skb, DropReason.Ipv6FragInvalid);
        return DefragResult.Dropped;
    }

    /// <summary>ipv6frag_thdr_truncated over the first fragment: the headers after the fragment header and the first
    /// bytes of the upper layer (TCP 20, UDP 8, ICMPv6 8, else 1) must be in it.</summary>
    internal static bool FirstTruncated(NetStack stack, Skb skb, int off)
    {
        var pkt = stack.Linearize(skb);
        if (!Ipv6ExtensionHeaderReader.TryWalk(pkt[(off + 8)..], pkt[off], out var info, out _)) return false;
        int end = off + 8 + info.UpperOffset + info.UpperProtocol switch
        {
            IpProtocols.Tcp => 20,
            IpProtocols.Udp => 8,
            IpProtocols.Icmpv6 => 8,
            _ => 1,
        };
        return end > pkt.Length;
    }

    /// <summary>ip6_frag_queue: place one fragment (its headers stay in front of its data until reassembly), then
    /// reassemble once first, last and every byte between are in.</summary>
    private DefragResult Queue(NetStack stack, Namespace ns, Device dev, FragQueue6 q, Skb skb, int off, int nhoff, out Skb? datagram, out int headNhoff)
    {
        datagram = null;
        headNhoff = 0;
        var mib = ns.Mib;
        var pkt = NetStack.L3(skb);
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(pkt[(off + 2)..]);
        int offset = fo & 0xFFF8;
        bool more = (fo & 1) != 0;
        int end = offset + BinaryPrimitives.ReadUInt16BigEndian(pkt[4..]) - (off + 8 - 40);
        if (end > 65535)
        {
            mib[SnmpCounter.Ip6InHdrErrors]++;
            Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.ParameterProblem, 0, (uint)(off + 2));
            NetStack.Drop(ns, skb, DropReason.Ipv6FragInvalid);
            return DefragResult.Dropped;
        }
        byte ecn = (byte)(1 << ((pkt[1] >> 4) & 3));
        if (!more)
        {
            if (end < q.Len || (q.LastIn && end != q.Len)) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
            q.LastIn = true;
            q.Len = end;
        }
        else
        {
            if ((end & 7) != 0)
            {
                // RFC 2460: always a parameter problem, at the payload length; the queue stays.
                mib[SnmpCounter.Ip6InHdrErrors]++;
                Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.ParameterProblem, 0, 4);
                NetStack.Drop(ns, skb, DropReason.Ipv6FragInvalid);
                return DefragResult.Dropped;
            }
            if (end > q.Len)
            {
                if (q.LastIn) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
                q.Len = end;
            }
        }
        if (end == offset) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
        skb.Trim(off + 8 + end - offset);
        switch (q.Insert(skb, offset, end))
        {
            case FragInsertResult.Duplicate:
                NetStack.Drop(ns, skb, DropReason.FragDuplicate);
                return DefragResult.Dropped;
            case FragInsertResult.Overlap:
                return DiscardQueue(ns, q, skb, DropReason.FragOverlap);
        }
        ns.Counters.FragHeld++;
        // The held fragment remembers where its data starts (its own headers stay in front).
        skb.SetTransportHeader(off + 8);
        q.Iif = dev;
        q.Stamp = skb.TimestampNs;
        q.Meat += end - offset;
        q.Ecn |= ecn;
        Memory += skb.TrueSize;
        int fragSize = off + 8 + end - offset;
        if (fragSize > q.MaxSize) q.MaxSize = fragSize;
        if (offset == 0)
        {
            q.FirstIn = true;
            q.NhOff = nhoff;
        }
        if (q.FirstIn && q.LastIn && q.Meat == q.Len)
            return Reassemble(ns, dev, q, out datagram, out headNhoff);
        skb.Dst = null;
        return DefragResult.Held;
    }

    /// <summary>ip6_frag_reasm: the first fragment becomes the datagram, its fragment header removed (the headers in
    /// front of it move up and the field that named it takes its next header), the others chained behind it; payload
    /// length redone, the ECN of all fragments folded in (not-ECT with ECT fails the queue), frag_max_size kept.</summary>
    private DefragResult Reassemble(Namespace ns, Device dev, FragQueue6 q, out Skb? datagram, out int nhoff)
    {
        nhoff = q.NhOff;
        var mib = ns.Mib;
        _queues.Remove(q.Key);
        int n = q.Count;
        if (!CanJoin(q))
        {
            mib[SnmpCounter.Ip6ReasmFails]++;
            Memory -= q.DropHeld(ns, DropReason.FragReasmFailed);
            Release(q);
            datagram = null;
            return DefragResult.Dropped;
        }
        var head = Join(q, dev);
        head.FragMaxSize = (ushort)q.MaxSize;
        mib[SnmpCounter.Ip6ReasmOKs]++;
        ns.Counters.FragHeld -= n;
        ns.Counters.FragMerged += n - 1;
        Memory -= head.TrueSize;
        q.Clear();
        Release(q);
        datagram = head;
        return DefragResult.Complete;
    }

    /// <summary>The checks before a complete queue is joined (ip6_frag_reasm, nf_ct_frag6_reasm): the fragments' ECN
    /// may combine (ip_frag_ecn_table) and the payload stays within 65535.</summary>
    internal static bool CanJoin(FragQueue6 q)
    {
        var head = q.Frag(0).Skb;
        int off = head.TransportHeader - head.NetworkHeader - 8;
        return EcnOf(q.Ecn) != 0xFF && off - 40 + q.Len <= 65535;
    }

    /// <summary>The reassembly both IPv6 reassemblers share (ip6_frag_reasm / nf_ct_frag6_reasm over
    /// inet_frag_reasm_finish): the offset-0 fragment becomes the datagram, the others chained on its frag_list in
    /// offset order (no copy); its fragment header goes (what is in front of it moves up 8 bytes and the field at
    /// nhoffset takes the next header); payload length and ECN redone; device and timestamp those of the queue's last
    /// fragment. The caller checked <see cref="CanJoin"/> and settles counters and memory.</summary>
    internal static Skb Join(FragQueue6 q, Device? dev)
    {
        int nhoff = q.NhOff;
        var head = q.Frag(0).Skb;
        int off = head.TransportHeader - head.NetworkHeader - 8;
        byte ecn = EcnOf(q.Ecn);
        int payload = off - 40 + q.Len;
        int n = q.Count;
        var summed = head.IpSummed;
        for (int i = 1; i < n; i++)
        {
            var f = q.Frag(i).Skb;
            f.Pull(f.TransportHeader - f.Data);
            if (f.IpSummed != summed) summed = CsumState.None;
            head.AppendFragList(f);
        }
        head.IpSummed = summed == CsumState.Complete ? CsumState.None : summed;
        // Take the fragment header out: what is in front of it moves up 8 bytes.
        var buf = head.HeadBuffer;
        var l3 = NetStack.L3(head);
        l3[nhoff] = l3[off];
        int start = head.MacHeaderWasSet ? Math.Min(head.MacHeader, head.NetworkHeader) : head.NetworkHeader;
        int moved = head.NetworkHeader + off - start;
        buf.Slice(start, moved).CopyTo(buf.Slice(start + 8, moved));
        if (head.MacHeaderWasSet) head.MacHeader += 8;
        head.Pull(8);
        head.ResetNetworkHeader();
        head.SetTransportHeader(off);
        var ip = NetStack.L3(head);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)payload);
        ip[1] |= (byte)(ecn << 4);
        if (dev != null) head.Dev = dev;
        head.TimestampNs = q.Stamp;
        return head;
    }

    /// <summary>ip_frag_ecn_table, as IPv4 reassembly reads it.</summary>
    internal static byte EcnOf(byte seen)
    {
        const byte notEct = 0x01, ect1 = 0x02, ect0 = 0x04, ce = 0x08;
        if ((seen & notEct) != 0 && (seen & (ect1 | ect0 | ce)) != 0) return 0xFF;
        return (seen & ce) != 0 && (seen & (ect1 | ect0)) != 0 ? (byte)3 : (byte)0;
    }

    /// <summary>discard_fq: the fragment and the whole queue go (inet_frag_kill), a reassembly failure.</summary>
    private DefragResult DiscardQueue(Namespace ns, FragQueue6 q, Skb skb, DropReason reason)
    {
        _queues.Remove(q.Key);
        Memory -= q.DropHeld(ns, reason);
        Release(q);
        ns.Mib[SnmpCounter.Ip6ReasmFails]++;
        NetStack.Drop(ns, skb, reason);
        return DefragResult.Dropped;
    }

    private void Release(FragQueue6 q)
    {
        Memory -= QueueTrueSize;
        q.Clear();
        _free.Push(q);
    }

    /// <summary>Runs the IPv6 reassembly timers of every namespace due by <paramref name="nowNs"/>, each at its own time.</summary>
    public static void RunTimers(NetStack stack, long nowNs)
    {
        if (nowNs < stack.Defrag6TimerDue) return;
        long next = long.MaxValue;
        var all = stack.Namespaces;
        for (int i = 0; i < all.Count; i++)
        {
            var d = all[i].Defrag6;
            if (d._nextDue <= nowNs) d.Expire(stack, all[i], nowNs);
            if (d._nextDue < next) next = d._nextDue;
            // net->nf_frag.fqdir (nf_conntrack_reasm.c) shares the timer.
            var nf = all[i].NfDefrag6;
            if (nf.NextDue <= nowNs) nf.Expire(stack, all[i], nowNs);
            if (nf.NextDue < next) next = nf.NextDue;
        }
        stack.Defrag6TimerDue = next;
    }

    private void Expire(NetStack stack, Namespace ns, long nowNs)
    {
        while (true)
        {
            var due = FragQueue6.EarliestDue(_queues, nowNs, out _nextDue);
            if (due == null) return;
            stack.SetClock(due.ExpiresNs);
            FragExpire(stack, ns, due);
            stack.Drain();
        }
    }

    /// <summary>ip6frag_expire_frag_queue, which ip6_frag_expire and nf_ct_frag6_expire both call: with the arrival
    /// device known, a reassembly failure and a timeout; with the first fragment in, ICMPv6 time exceeded 1 quoting it
    /// back to the sender from that device. The caller frees the queue.</summary>
    internal static void ExpireQueue(NetStack stack, Namespace ns, FragQueue6 q)
    {
        if (q.Iif is not { } dev) return;
        ns.Mib[SnmpCounter.Ip6ReasmFails]++;
        ns.Mib[SnmpCounter.Ip6ReasmTimeout]++;
        if (q.FirstIn && q.Count > 0 && q.Frag(0).Offset == 0)
            Icmpv6.Send(stack, ns, q.Frag(0).Skb, dev, Icmpv6View.TimeExceeded, 1, 0);
    }

    /// <summary>ip6_frag_expire: a reassembly failure and a timeout; with the first fragment in, ICMPv6 time exceeded 1
    /// quoting it back to the sender, from the arrival device.</summary>
    private void FragExpire(NetStack stack, Namespace ns, FragQueue6 q)
    {
        _queues.Remove(q.Key);
        ExpireQueue(stack, ns, q);
        Memory -= q.DropHeld(ns, DropReason.FragReasmTimeout);
        Release(q);
    }
}
