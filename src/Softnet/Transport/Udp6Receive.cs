using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// udpv6_rcv (__udp6_lib_rcv) for datagrams addressed to this namespace: the length checks (Udp6InErrors), a zero
/// checksum refused (IPv6 requires one), a multicast datagram to every IPv6 socket of its port, a unicast one to the
/// best IPv6 socket or, with none, ICMPv6 port unreachable (Udp6NoPorts). Counted in the Udp6 MIB.
/// </summary>
public static class Udp6Receive
{
    /// <summary>The datagram's UDP header is at <paramref name="off"/> from the IPv6 header; the skb is consumed.</summary>
    public static void Receive(NetStack stack, Device dev, Skb skb, int off)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        var pkt = stack.Linearize(skb);
        var l4 = pkt[off..];
        if (l4.Length < UdpView.HeaderLength) { mib[SnmpCounter.Udp6InErrors]++; InetProtocol.DropDelivered(ns, skb, DropReason.UdpHeaderTruncated); return; }
        int ulen = BinaryPrimitives.ReadUInt16BigEndian(l4[4..]);
        if (ulen > l4.Length) { mib[SnmpCounter.Udp6InErrors]++; InetProtocol.DropDelivered(ns, skb, DropReason.UdpBadLength); return; }
        if (ulen == 0) ulen = l4.Length;
        if (ulen < UdpView.HeaderLength) { mib[SnmpCounter.Udp6InErrors]++; InetProtocol.DropDelivered(ns, skb, DropReason.UdpBadLength); return; }
        if (ulen < l4.Length)
        {
            skb.Trim(off + ulen);
            pkt = stack.Linearize(skb);
            l4 = pkt[off..];
        }
        var udp = l4[..ulen];
        var daddr = Ipv6.Read(pkt[24..]);
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(udp[2..]);
        bool zero = BinaryPrimitives.ReadUInt16BigEndian(udp[6..]) == 0;
        if (Ipv6.IsMulticast(daddr))
        {
            McastDeliver(stack, ns, skb, daddr, dport);
            return;
        }
        if (!ns.Sockets.IsEmpty && ns.Sockets.LookupUdp6(daddr, dport) is { } sk)
        {
            if (zero) { CsumError(ns, skb); return; }
            UdpReceive.QueueToSocket(stack, sk, skb);
            return;
        }
        if (zero || !ChecksumOk(skb, pkt, udp)) { CsumError(ns, skb); return; }
        mib[SnmpCounter.Udp6NoPorts]++;
        Icmpv6.Send(stack, ns, skb, dev, Icmpv6View.DestinationUnreachable, 4, 0);
        InetProtocol.DropDelivered(ns, skb, DropReason.NoSocket);
    }

    private static void CsumError(Link.Namespace ns, Skb skb)
    {
        ns.Mib[SnmpCounter.Udp6InCsumErrors]++;
        ns.Mib[SnmpCounter.Udp6InErrors]++;
        InetProtocol.DropDelivered(ns, skb, DropReason.UdpCsumError);
    }

    /// <summary>udp6_csum_init + udp_lib_checksum_complete over the pseudo-header; a checksum the device or GRO verified
    /// is not checked again.</summary>
    internal static bool ChecksumOk(Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> udp)
    {
        if (Ipv4Input.ChecksumUnnecessary(skb)) return true;
        return Checksum.Verify(udp, Checksum.PseudoHeaderV6(pkt[8..24], pkt[24..40], IpProtocols.Udp, udp.Length));
    }

    /// <summary>__udp6_lib_mcast_deliver: a clone to every matching socket but the first, which takes the datagram;
    /// with none, IgnoredMulti.</summary>
    private static void McastDeliver(NetStack stack, Link.Namespace ns, Skb skb, UInt128 daddr, ushort dport)
    {
        UdpSock? first = null;
        if (!ns.Sockets.IsEmpty)
            foreach (var sk in ns.Sockets.UdpMulticastTargets6(daddr, dport))
            {
                if (first == null) { first = sk; continue; }
                var clone = stack.Clone(skb);
                if (clone == null) { ns.Mib[SnmpCounter.Udp6RcvbufErrors]++; ns.Mib[SnmpCounter.Udp6InErrors]++; continue; }
                UdpReceive.QueueToSocket(stack, sk, clone);
            }
        if (first != null) { UdpReceive.QueueToSocket(stack, first, skb); return; }
        ns.Mib[SnmpCounter.Udp6IgnoredMulti]++;
        InetProtocol.DropDelivered(ns, skb, DropReason.NoSocket);
    }
}
