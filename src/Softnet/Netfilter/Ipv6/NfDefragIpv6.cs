using System.Buffers.Binary;
using System.Globalization;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using FragKey6 = Softnet.Ip.Ipv6Defrag.FragKey6;
using FragQueue6 = Softnet.Ip.InetFragQueue<Softnet.Ip.Ipv6Defrag.FragKey6>;

namespace Softnet.Netfilter;

/// <summary>
/// nf_defrag_ipv6 (net/ipv6/netfilter/nf_defrag_ipv6_hooks.c ipv6_defrag, priority NF_IP6_PRI_CONNTRACK_DEFRAG -400
/// at PREROUTING and LOCAL_OUT) over nf_ct_frag6_gather (nf_conntrack_reasm.c): one namespace's conntrack reassembly,
/// its own fqdir (net->nf_frag.fqdir) beside the IPv6 stack's. It runs where <see cref="Ip6Netfilter.Defrags"/> says
/// (IPv6 conntrack is on: the kernel enables nf_defrag_ipv6 with nf_ct_netns_get for NFPROTO_IPV6, as the IPv4 side
/// enables nf_defrag_ipv4). The IPv6 path calls <see cref="Gather"/> before the PREROUTING / LOCAL_OUT hooks, so
/// conntrack, NAT and the rules see the whole datagram, without its fragment header, once (frag_max_size and
/// ignore_df set for ip6_fragment on output).
/// <para>Where it differs from ipv6_frag_rcv (<see cref="Ipv6Defrag"/>): the queue key carries the defrag user
/// (IP6_DEFRAG_CONNTRACK_IN / _OUT + zone); no Ip6Reasm* counter moves while gathering and no ICMPv6 parameter problem
/// is sent; a first fragment without its upper-layer header, and a middle fragment not a multiple of 8 (its queue
/// killed), pass on as they are (the stack's own reassembly answers them); a fragment that contradicts the length
/// already known is dropped but leaves its queue alone; an overlap drops the queue (RFC 5722); a duplicate is
/// swallowed. Timed-out queues go through ip6frag_expire_frag_queue like the stack's: Ip6ReasmFails, Ip6ReasmTimeout
/// and an ICMPv6 time exceeded 1 when the first fragment is in, forwarded datagrams included
/// (nf_conntrack_frag6_timeout, 60 s by default). Memory is bounded by nf_conntrack_frag6_high_thresh (a fragment
/// that would open or join a queue above it is dropped, counted as <see cref="DropReason.FragMemoryLimit"/>).</para>
/// </summary>
public sealed class NfDefragIpv6
{
    /// <summary>enum ip6_defrag_users: IP6_DEFRAG_CONNTRACK_IN + zone (PREROUTING).</summary>
    public const uint ConntrackIn = 1;
    /// <summary>IP6_DEFRAG_CONNTRACK_OUT + zone (LOCAL_OUT).</summary>
    public const uint ConntrackOut = ConntrackIn + ushort.MaxValue + 1;

    private readonly Dictionary<FragKey6, FragQueue6> _queues = new();
    private readonly Stack<FragQueue6> _free = new();
    private int _confVersion = -1;
    private long _timeoutNs, _highThresh;

    /// <summary>The earliest expiry of this namespace's queues (long.MaxValue: none).</summary>
    internal long NextDue = long.MaxValue;

    /// <summary>frag_mem_limit of net->nf_frag.fqdir: held truesize plus the queues' own.</summary>
    public long Memory { get; private set; }
    /// <summary>Queues open now.</summary>
    public int QueueCount => _queues.Count;

    private void ReadSysctls(Namespace ns)
    {
        if (_confVersion == ns.Sysctls.Version) return;
        long Get(string key, long dflt)
            => ns.Sysctl(key) is { } v && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out long x) ? x : dflt;
        _timeoutNs = Get("net.netfilter.nf_conntrack_frag6_timeout", 60) * 1_000_000_000L;
        _highThresh = Get("net.netfilter.nf_conntrack_frag6_high_thresh", 4L * 1024 * 1024);
        _confVersion = ns.Sysctls.Version;
    }

    /// <summary>
    /// ipv6_defrag → nf_ct_frag6_gather for <paramref name="skb"/> (data at its IPv6 header, checked by ip6_rcv_core
    /// or built by this host) on <paramref name="dev"/> (null for a locally made packet), as <paramref name="user"/>.
    /// <see cref="DefragResult.Complete"/>: go on with <paramref name="datagram"/> (the skb itself when it was no
    /// fragment or passes as it is, else the reassembled datagram). Held (NF_STOLEN) or Dropped (NF_DROP, counted):
    /// the skb is gone.
    /// </summary>
    public DefragResult Gather(NetStack stack, Namespace ns, Device? dev, Skb skb, uint user, out Skb? datagram)
    {
        datagram = skb;
        var pkt = NetStack.L3(skb);
        // A jumbogram has no fragment header to look for.
        if (BinaryPrimitives.ReadUInt16BigEndian(pkt[4..]) == 0) return DefragResult.Complete;
        if (!FindFragmentHeader(skb, out int nhoff, out int fhoff)) return DefragResult.Complete;
        if (!skb.MayPull(fhoff + 8))
        {
            datagram = null;
            NetStack.Drop(ns, skb, DropReason.Ipv6FragInvalid);
            return DefragResult.Dropped;
        }
        pkt = NetStack.L3(skb);
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(pkt[(fhoff + 2)..]);
        // RFC 8200 4.5: a first fragment without the upper-layer header is left to the stack (ipv6_frag_rcv drops it).
        if ((fo & 0xFFF8) == 0 && Ipv6Defrag.FirstTruncated(stack, skb, fhoff)) return DefragResult.Complete;
        ReadSysctls(ns);
        pkt = NetStack.L3(skb);
        var daddr = Ipv6.Read(pkt[24..]);
        var key = new FragKey6(Ipv6.Read(pkt[8..]), daddr, BinaryPrimitives.ReadUInt32BigEndian(pkt[(fhoff + 4)..]),
            dev != null && (Ipv6.IsLinkLocal(daddr) || Ipv6.IsMulticast(daddr)) ? dev.Ifindex : 0, user);
        datagram = null;
        // inet_frag_find: no queue found or made above nf_conntrack_frag6_high_thresh (or with it 0): NF_DROP.
        if (_highThresh == 0 || Memory > _highThresh)
        {
            NetStack.Drop(ns, skb, DropReason.FragMemoryLimit);
            return DefragResult.Dropped;
        }
        if (!_queues.TryGetValue(key, out var q))
        {
            q = _free.Count > 0 ? _free.Pop() : new FragQueue6();
            q.Init(key, stack.Now + _timeoutNs);
            _queues.Add(key, q);
            Memory += Ipv6Defrag.QueueTrueSize;
            if (q.ExpiresNs < NextDue) NextDue = q.ExpiresNs;
            stack.ArmDefrag6Timer(q.ExpiresNs);
        }
        var r = Queue(ns, dev, q, skb, fhoff, nhoff, out datagram);
        if (r == DefragResult.Complete && datagram == null) datagram = skb;
        return r;
    }

    /// <summary>find_prev_fhdr: walks the extension headers (hop-by-hop, routing, destination options, AH) to a
    /// fragment header; false when there is none (another header, no next header, or the walk runs off the packet).</summary>
    private static bool FindFragmentHeader(Skb skb, out int nhoff, out int fhoff)
    {
        var pkt = NetStack.L3(skb);
        byte nh = pkt[6];
        nhoff = 6;
        fhoff = 40;
        int len = skb.Len - 40;
        while (nh != IpProtocols.Fragment)
        {
            if (nh is not (IpProtocols.HopByHop or IpProtocols.Routing or IpProtocols.DestinationOptions or 51)) return false;
            if (len < 2 || !skb.MayPull(fhoff + 2)) return false;
            pkt = NetStack.L3(skb);
            int hlen = nh == 51 ? (pkt[fhoff + 1] + 2) << 2 : (pkt[fhoff + 1] + 1) << 3;
            nhoff = fhoff;
            nh = pkt[fhoff];
            len -= hlen;
            fhoff += hlen;
        }
        return len >= 0;
    }

    /// <summary>nf_ct_frag6_queue: place one fragment (its headers stay in front of its data until reassembly), then
    /// reassemble once first, last and every byte between are in. Complete with a null <paramref name="datagram"/>:
    /// the fragment itself goes on (-EPROTO).</summary>
    private DefragResult Queue(Namespace ns, Device? dev, FragQueue6 q, Skb skb, int fhoff, int nhoff, out Skb? datagram)
    {
        datagram = null;
        var pkt = NetStack.L3(skb);
        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(pkt[(fhoff + 2)..]);
        int offset = fo & 0xFFF8;
        bool more = (fo & 1) != 0;
        int payloadLen = BinaryPrimitives.ReadUInt16BigEndian(pkt[4..]);
        int end = offset + payloadLen - (fhoff + 8 - 40);
        if (end > 65535) return DropFragment(ns, skb, DropReason.Ipv6FragInvalid);
        byte ecn = (byte)(1 << ((pkt[1] >> 4) & 3));
        if (!more)
        {
            if (end < q.Len || (q.LastIn && end != q.Len)) return DropFragment(ns, skb, DropReason.FragInvalid);
            q.LastIn = true;
            q.Len = end;
        }
        else
        {
            if ((end & 7) != 0)
            {
                // The queue dies and the fragment goes on untouched (ipv6_frag_rcv answers it with a parameter problem
                // where it is delivered).
                Kill(ns, q, DropReason.FragInvalid);
                return DefragResult.Complete;
            }
            if (end > q.Len)
            {
                if (q.LastIn) return DropFragment(ns, skb, DropReason.FragInvalid);
                q.Len = end;
            }
        }
        if (end == offset) return DropFragment(ns, skb, DropReason.FragInvalid);
        skb.Trim(fhoff + 8 + end - offset);
        switch (q.Insert(skb, offset, end))
        {
            case FragInsertResult.Duplicate:
                // "pretend they got queued": freed, NF_STOLEN.
                NetStack.Drop(ns, skb, DropReason.FragDuplicate);
                return DefragResult.Held;
            case FragInsertResult.Overlap:
                Kill(ns, q, DropReason.FragOverlap);
                return DropFragment(ns, skb, DropReason.FragOverlap);
        }
        ns.Counters.FragHeld++;
        skb.SetTransportHeader(fhoff + 8);
        if (dev != null) q.Iif = dev;
        q.Stamp = skb.TimestampNs;
        q.Meat += end - offset;
        q.Ecn |= ecn;
        Memory += skb.TrueSize;
        // max_size is the largest payload_len; frag_max_size adds the IPv6 header back.
        if (40 + payloadLen > q.MaxSize) q.MaxSize = 40 + payloadLen;
        if (offset == 0)
        {
            q.FirstIn = true;
            q.NhOff = nhoff;
        }
        if (q.FirstIn && q.LastIn && q.Meat == q.Len)
            return Reassemble(ns, dev, q, out datagram);
        skb.Dst = null;
        return DefragResult.Held;
    }

    /// <summary>nf_ct_frag6_reasm: the datagram without its fragment header, ignore_df set and frag_max_size the
    /// largest fragment received (ip6_fragment cuts it again no larger). A failure (ECN, length) kills the queue with
    /// its fragments, the last one included (it was queued: NF_STOLEN).</summary>
    private DefragResult Reassemble(Namespace ns, Device? dev, FragQueue6 q, out Skb? datagram)
    {
        datagram = null;
        _queues.Remove(q.Key);
        int n = q.Count;
        if (!Ipv6Defrag.CanJoin(q))
        {
            Memory -= q.DropHeld(ns, DropReason.FragReasmFailed);
            Release(q);
            return DefragResult.Held;
        }
        var head = Ipv6Defrag.Join(q, dev);
        head.FragMaxSize = (ushort)q.MaxSize;
        head.IgnoreDf = true;
        ns.Counters.FragHeld -= n;
        ns.Counters.FragMerged += n - 1;
        Memory -= head.TrueSize;
        q.Clear();
        Release(q);
        datagram = head;
        return DefragResult.Complete;
    }

    /// <summary>The err path: the fragment is dropped (NF_DROP), its queue stays.</summary>
    private static DefragResult DropFragment(Namespace ns, Skb skb, DropReason reason)
    {
        NetStack.Drop(ns, skb, reason);
        return DefragResult.Dropped;
    }

    /// <summary>inet_frag_kill: the queue and its held fragments go (no counter: nf_ct_frag6 counts nothing here).</summary>
    private void Kill(Namespace ns, FragQueue6 q, DropReason reason)
    {
        _queues.Remove(q.Key);
        Memory -= q.DropHeld(ns, reason);
        Release(q);
    }

    private void Release(FragQueue6 q)
    {
        Memory -= Ipv6Defrag.QueueTrueSize;
        q.Clear();
        _free.Push(q);
    }

    /// <summary>nf_ct_frag6_expire for every queue due by <paramref name="nowNs"/>, earliest first (run from
    /// <see cref="Ipv6Defrag.RunTimers"/>).</summary>
    internal void Expire(NetStack stack, Namespace ns, long nowNs)
    {
        while (true)
        {
            var due = FragQueue6.EarliestDue(_queues, nowNs, out NextDue);
            if (due == null) return;
            stack.SetClock(due.ExpiresNs);
            _queues.Remove(due.Key);
            Ipv6Defrag.ExpireQueue(stack, ns, due);
            Memory -= due.DropHeld(ns, DropReason.FragReasmTimeout);
            Release(due);
            stack.Drain();
        }
    }
}
