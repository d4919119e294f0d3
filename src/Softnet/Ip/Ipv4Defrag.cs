using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;
using FragQueue = Softnet.Ip.InetFragQueue<Softnet.Ip.Ipv4Defrag.FragKey>;

namespace Softnet.Ip;

/// <summary>enum ip_defrag_users: who reassembles. A queue belongs to one user, so the same fragments seen by
/// nf_defrag_ipv4 and by ip_local_deliver would build two datagrams (they never do: the first one reassembles).</summary>
public static class DefragUser
{
    /// <summary>IP_DEFRAG_LOCAL_DELIVER: ip_local_deliver.</summary>
    public const uint LocalDeliver = 0;
    /// <summary>IP_DEFRAG_CONNTRACK_IN + zone: nf_defrag_ipv4 at PREROUTING.</summary>
    public const uint ConntrackIn = 2;
    /// <summary>IP_DEFRAG_CONNTRACK_OUT + zone: nf_defrag_ipv4 at LOCAL_OUT (CONNTRACK_IN + USHRT_MAX + 1).</summary>
    public const uint ConntrackOut = ConntrackIn + ushort.MaxValue + 1;

    /// <summary>frag_expire_skip_icmp: a conntrack queue sends "reassembly time exceeded" only for datagrams that were
    /// addressed to this host (RFC 792: an end host's message, not a router's).</summary>
    public static bool SkipsIcmpUnlessLocal(uint user) => user >= ConntrackIn && user <= ConntrackIn + ushort.MaxValue;
}

/// <summary>What <see cref="Ipv4Defrag.Defrag"/> did with a fragment.</summary>
public enum DefragResult : byte
{
    /// <summary>The fragment completed its datagram: the datagram (one skb, the others on its frag_list) goes on.</summary>
    Complete,
    /// <summary>The fragment waits in its queue (NF_STOLEN / ip_defrag's -EINPROGRESS).</summary>
    Held,
    /// <summary>The fragment was dropped (counted).</summary>
    Dropped,
}

/// <summary>
/// One namespace's IPv4 reassembly (net/ipv4/ip_fragment.c over net/ipv4/inet_fragment.c, net->ipv4.fqdir):
/// queues keyed as frag_v4_compare_key (saddr, daddr, id, protocol, defrag user, l3mdev vif), the placement and
/// RFC 5722 overlap rules of inet_frag_queue_insert over runs of adjacent fragments, the length checks of
/// ip_frag_queue, ipfrag_high_thresh on the truesize held, ipfrag_time on the replay clock (ip_expire) and
/// ipfrag_max_dist (ip_frag_too_far). A completed datagram is the first fragment's skb with the others chained on
/// its frag_list (inet_frag_reasm_finish): no copy. Queues come from a free list: nothing is allocated per packet
/// once the pools are warm.
/// </summary>
public sealed class Ipv4Defrag
{
    /// <summary>What a queue itself costs against ipfrag_high_thresh (inet_frag_alloc charges f->qsize,
    /// sizeof(struct ipq): about this much on x86-64).</summary>
    public const int QueueTrueSize = 192;

    private readonly Dictionary<FragKey, FragQueue> _queues = new();
    private readonly Stack<FragQueue> _free = new();
    // inet_peer's rid per source (vif 0): every fragment from the source takes the next number. A queue holds its
    // source's peer (qp->peer), so an entry lives while a queue from that source does: bounded by the queues.
    private readonly Dictionary<uint, Peer> _peers = new();

    private struct Peer
    {
        public uint Rid;
        public int Queues;
    }
    private int _confVersion = -1;
    private long _timeoutNs, _highThresh, _lowThresh;
    private uint _maxDist;

    /// <summary>frag_mem_limit: the truesize of held fragments plus each queue's own size.</summary>
    public long Memory { get; private set; }
    /// <summary>Queues open now.</summary>
    public int QueueCount => _queues.Count;
    /// <summary>net.ipv4.ipfrag_low_thresh as configured. Since the rhashtable rework (4.17) the kernel no longer
    /// evicts down to it; it only bounds ipfrag_high_thresh from below.</summary>
    public long LowThresh => _lowThresh;

    private long _nextDue = long.MaxValue;

    private void ReadSysctls(Namespace ns)
    {
        if (_confVersion == ns.Sysctls.Version) return;
        long Get(string key, long dflt)
            => ns.Sysctl(key) is { } v && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long x) ? x : dflt;
        _timeoutNs = Get("net.ipv4.ipfrag_time", 30) * 1_000_000_000L;
        _highThresh = Get("net.ipv4.ipfrag_high_thresh", 4L * 1024 * 1024);
        _lowThresh = Get("net.ipv4.ipfrag_low_thresh", 3L * 1024 * 1024);
        _maxDist = (uint)Get("net.ipv4.ipfrag_max_dist", 64);
        _confVersion = ns.Sysctls.Version;
    }

    /// <summary>ip_is_fragment: MF set or a non-zero offset (the header at the skb's network header).</summary>
    public static bool IsFragment(Skb skb) => (BinaryPrimitives.ReadUInt16BigEndian(NetStack.L3(skb)[6..]) & 0x3FFF) != 0;

    /// <summary>
    /// ip_defrag(net, skb, user) for <paramref name="skb"/> (data at its IP header, header checked and the skb
    /// trimmed to tot_len by ip_rcv_core) received on <paramref name="dev"/>. On <see cref="DefragResult.Complete"/>
    /// <paramref name="datagram"/> is the reassembled datagram (data at its IP header); otherwise the skb is gone
    /// (held or dropped, each counted).
    /// </summary>
    public DefragResult Defrag(NetStack stack, Namespace ns, Device? dev, Skb skb, uint user, out Skb? datagram)
    {
        datagram = null;
        var mib = ns.Mib;
        mib[SnmpCounter.IpReasmReqds]++;
        ReadSysctls(ns);
        var ip = NetStack.L3(skb);
        var key = new FragKey(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), BinaryPrimitives.ReadUInt32BigEndian(ip[16..]),
            BinaryPrimitives.ReadUInt16BigEndian(ip[4..]), ip[9], user, 0);
        // inet_frag_find: no new fragment at all while the memory held is above ipfrag_high_thresh (or it is 0).
        if (_highThresh == 0 || Memory > _highThresh)
        {
            mib[SnmpCounter.IpReasmFails]++;
            NetStack.Drop(ns, skb, DropReason.FragMemoryLimit);
            return DefragResult.Dropped;
        }
        if (!_queues.TryGetValue(key, out var q))
        {
            q = _free.Count > 0 ? _free.Pop() : new FragQueue();
            q.Init(key, stack.Now + _timeoutNs);
            _queues.Add(key, q);
            CollectionsMarshal.GetValueRefOrAddDefault(_peers, key.Saddr, out _).Queues++;
            Memory += QueueTrueSize;
            if (q.ExpiresNs < _nextDue) _nextDue = q.ExpiresNs;
            stack.ArmDefragTimer(q.ExpiresNs);
        }
        return Queue(stack, ns, q, dev, skb, out datagram);
    }

    /// <summary>ip_frag_queue: place one fragment, then reassemble when first, last and every byte between are in.</summary>
    private DefragResult Queue(NetStack stack, Namespace ns, FragQueue q, Device? dev, Skb skb, out Skb? datagram)
    {
        datagram = null;
        var mib = ns.Mib;
        var ip = NetStack.L3(skb);
        if (TooFar(q, ns))
        {
            // ip_frag_reinit: the held fragments go and the queue starts over, its timer rearmed.
            Memory -= q.DropHeld(ns, DropReason.FragTooFar);
            q.Restart(stack.Now + _timeoutNs);
            if (q.ExpiresNs < _nextDue) _nextDue = q.ExpiresNs;
            stack.ArmDefragTimer(q.ExpiresNs);
        }

        byte ecn = (byte)(1 << (ip[1] & 3));
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
        int offset = (fo & 0x1FFF) << 3;
        bool more = (fo & 0x2000) != 0;
        int ihl = (ip[0] & 0xF) * 4;
        int end = offset + skb.Len - ihl;
        if (!more)
        {
            // The last fragment: nothing may lie past it, and a second last fragment must end at the same place.
            if (end < q.Len || (q.LastIn && end != q.Len)) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
            q.LastIn = true;
            q.Len = end;
        }
        else
        {
            // A middle fragment is cut to a multiple of 8 (its tail is not trusted; its checksum no longer covers it).
            if ((end & 7) != 0)
            {
                end &= ~7;
                if (skb.IpSummed != CsumState.Unnecessary) skb.IpSummed = CsumState.None;
            }
            if (end > q.Len)
            {
                if (q.LastIn) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
                q.Len = end;
            }
        }
        if (end == offset) return DiscardQueue(ns, q, skb, DropReason.FragInvalid);
        // pskb_trim_rcsum to the fragment's data (the header stays in front, at the network header, so an expired
        // queue can quote its first fragment).
        skb.Trim(ihl + end - offset);

        switch (q.Insert(skb, offset, end))
        {
            case FragInsertResult.Duplicate:
                // Ignored: the skb goes, the queue stays for later reassembly.
                NetStack.Drop(ns, skb, DropReason.FragDuplicate);
                return DefragResult.Dropped;
            case FragInsertResult.Overlap:
                mib[SnmpCounter.IpExtReasmOverlaps]++;
                return DiscardQueue(ns, q, skb, DropReason.FragOverlap);
        }
        ns.Counters.FragHeld++;
        // A fragment other than the first keeps no conntrack reference (only the head's survives reassembly).
        if (offset != 0)
        {
            skb.Conntrack = null;
            skb.CtInfo = 0;
        }
        if (dev != null) q.Iif = dev;
        q.Stamp = skb.TimestampNs;
        q.Meat += end - offset;
        q.Ecn |= ecn;
        Memory += skb.TrueSize;
        if (offset == 0) q.FirstIn = true;
        int fragSize = end - offset + ihl;
        if (fragSize > q.MaxSize) q.MaxSize = fragSize;
        if ((fo & 0x4000) != 0 && fragSize > q.MaxDfSize) q.MaxDfSize = fragSize;

        if (q.FirstIn && q.LastIn && q.Meat == q.Len)
            return Reassemble(ns, q, skb, dev, out datagram);
        // skb_dst_drop: a held fragment keeps no route.
        skb.Dst = null;
        return DefragResult.Held;
    }

    /// <summary>ip_frag_too_far: the source's fragment counter moved more than ipfrag_max_dist since this queue's
    /// last fragment (counted as a reassembly failure).</summary>
    private bool TooFar(FragQueue q, Namespace ns)
    {
        if (_maxDist == 0) return false;
        ref Peer peer = ref CollectionsMarshal.GetValueRefOrNullRef(_peers, q.Key.Saddr);
        uint start = q.Rid;
        uint end = ++peer.Rid;
        q.Rid = end;
        bool far = q.Count > 0 && end - start > _maxDist;
        if (far) ns.Mib[SnmpCounter.IpReasmFails]++;
        return far;
    }

    /// <summary>ip_frag_reasm (inet_frag_reasm_prepare/finish): the datagram is the offset-0 fragment with the others
    /// chained behind it in offset order; its header gets the full length, the ECN of all fragments and DF only when
    /// the largest fragment had DF (IPSKB_FRAG_PMTU), and IPCB frag_max_size for the output path.</summary>
    private DefragResult Reassemble(Namespace ns, FragQueue q, Skb last, Device? dev, out Skb? datagram)
    {
        datagram = null;
        var mib = ns.Mib;
        Unlink(q);
        byte ecn = EcnOf(q.Ecn);
        var head = q.Frag(0).Skb;
        int ihl = (NetStack.L3(head)[0] & 0xF) * 4;
        int len = ihl + q.Len;
        if (ecn == 0xFF || len > 65535)
        {
            mib[SnmpCounter.IpReasmFails]++;
            Memory -= q.DropHeld(ns, DropReason.FragReasmFailed);
            Release(q);
            return DefragResult.Dropped;
        }
        int n = q.Count;
        var summed = head.IpSummed;
        for (int i = 1; i < n; i++)
        {
            var f = q.Frag(i).Skb;
            // The fragment's own header goes: it is chained as data only.
            f.Pull((NetStack.L3(f)[0] & 0xF) * 4);
            if (f.IpSummed != summed) summed = CsumState.None;
            head.AppendFragList(f);
        }
        // CHECKSUM_COMPLETE sums are not carried across: the transport checks in software.
        head.IpSummed = summed == CsumState.Complete ? CsumState.None : summed;
        head.Dev = dev ?? head.Dev;
        head.Dst = last.Dst;
        head.TimestampNs = q.Stamp;
        head.FragMaxSize = (ushort)Math.Max(q.MaxDfSize, q.MaxSize);
        var iph = NetStack.L3(head);
        BinaryPrimitives.WriteUInt16BigEndian(iph[2..], (ushort)len);
        iph[1] |= ecn;
        bool df = q.MaxDfSize == q.MaxSize;
        head.FragPmtu = df;
        BinaryPrimitives.WriteUInt16BigEndian(iph[6..], (ushort)(df ? 0x4000 : 0));
        iph[10] = iph[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(iph[10..], Checksum.Compute(iph[..ihl]));
        mib[SnmpCounter.IpReasmOKs]++;
        ns.Counters.FragHeld -= n;
        ns.Counters.FragMerged += n - 1;
        Memory -= head.TrueSize;
        q.Clear();
        Release(q);
        datagram = head;
        return DefragResult.Complete;
    }

    /// <summary>ip_frag_ecn_table: not-ECT mixed with ECT or CE is invalid (0xFF); CE with ECT makes CE.</summary>
    private static byte EcnOf(byte seen)
    {
        const byte notEct = 0x01, ect1 = 0x02, ect0 = 0x04, ce = 0x08;
        if ((seen & notEct) != 0 && (seen & (ect1 | ect0 | ce)) != 0) return 0xFF;
        return (seen & ce) != 0 && (seen & (ect1 | ect0)) != 0 ? (byte)3 : (byte)0;
    }

    /// <summary>discard_qp: the fragment and the whole queue go (inet_frag_kill), a reassembly failure.</summary>
    private DefragResult DiscardQueue(Namespace ns, FragQueue q, Skb skb, DropReason reason)
    {
        Unlink(q);
        Memory -= q.DropHeld(ns, reason);
        Release(q);
        ns.Mib[SnmpCounter.IpReasmFails]++;
        NetStack.Drop(ns, skb, reason);
        return DefragResult.Dropped;
    }

    private void Unlink(FragQueue q) => _queues.Remove(q.Key);

    private void Release(FragQueue q)
    {
        ref Peer peer = ref CollectionsMarshal.GetValueRefOrNullRef(_peers, q.Key.Saddr);
        if (--peer.Queues == 0) _peers.Remove(q.Key.Saddr);
        Memory -= QueueTrueSize;
        q.Clear();
        _free.Push(q);
    }

    // ---------------- timers ----------------

    /// <summary>Runs the reassembly timers of every namespace due up to <paramref name="nowNs"/>, each at its own time.</summary>
    public static void RunTimers(NetStack stack, long nowNs)
    {
        if (nowNs < stack.DefragTimerDue) return;
        long next = long.MaxValue;
        var all = stack.Namespaces;
        for (int i = 0; i < all.Count; i++)
        {
            var d = all[i].Defrag;
            if (d._nextDue <= nowNs) d.Expire(stack, all[i], nowNs);
            if (d._nextDue < next) next = d._nextDue;
        }
        stack.DefragTimerDue = next;
    }

    /// <summary>Expires this namespace's queues due by <paramref name="nowNs"/>, earliest first.</summary>
    private void Expire(NetStack stack, Namespace ns, long nowNs)
    {
        while (true)
        {
            var due = FragQueue.EarliestDue(_queues, nowNs, out _nextDue);
            if (due == null) return;
            stack.SetClock(due.ExpiresNs);
            IpExpire(stack, ns, due);
            stack.Drain();
        }
    }

    /// <summary>ip_expire: the queue dies (a reassembly failure and a timeout); if its first fragment is in, the route
    /// is looked up again and an ICMP time exceeded, fragment reassembly time exceeded (11/1) quoting that fragment
    /// goes back to the sender — by a conntrack queue only for a datagram addressed to this host.</summary>
    private void IpExpire(NetStack stack, Namespace ns, FragQueue q)
    {
        Unlink(q);
        ns.Mib[SnmpCounter.IpReasmFails]++;
        ns.Mib[SnmpCounter.IpReasmTimeout]++;
        if (q.FirstIn && q.Count > 0 && q.Frag(0).Offset == 0 && q.Iif is { } dev)
        {
            var head = q.Frag(0).Skb;
            var route = ns.Routing.Lookup(BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(head)[16..]));
            bool local = route is { Type: RouteKind.Local };
            if (route != null && (local || !DefragUser.SkipsIcmpUnlessLocal(q.Key.User)))
            {
                head.Dst = route;
                Icmp.Send(stack, ns, head, dev, 11, 1, 0, localDestination: local);
            }
        }
        Memory -= q.DropHeld(ns, DropReason.FragReasmTimeout);
        Release(q);
    }

    // ---------------- queue ----------------

    internal readonly record struct FragKey(uint Saddr, uint Daddr, ushort Id, byte Protocol, uint User, int Vif);

}
