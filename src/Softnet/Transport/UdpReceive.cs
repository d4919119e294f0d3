using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// udp_rcv (__udp4_lib_rcv) for datagrams addressed to this namespace: the length checks, then a broadcast or
/// multicast datagram goes to every socket bound to its port (__udp4_lib_mcast_deliver), a unicast one to the best
/// socket (__udp4_lib_lookup) or, with none, ICMP port unreachable (counted as NoPorts).
/// </summary>
public sealed class UdpReceive : InetProtocol
{
    public override byte Protocol => IpProtocols.Udp;

    public override void Receive(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        // A GRO aggregate (a UDP tunnel's: CHECKSUM_PARTIAL, its checksum known good) is not copied out: only its
        // headers, which GRO left linear, are read.
        bool aggregate = skb.IsGso;
        var pkt = aggregate ? skb.LinearData : stack.Linearize(skb);
        int ihl = (pkt[0] & 0xF) * 4;
        int l4Len = (aggregate ? skb.Len : pkt.Length) - ihl;
        if (l4Len < UdpView.HeaderLength || pkt.Length < ihl + UdpView.HeaderLength) { mib[SnmpCounter.UdpInErrors]++; DropDelivered(ns, skb, DropReason.UdpHeaderTruncated); return; }
        int ulen = BinaryPrimitives.ReadUInt16BigEndian(pkt[(ihl + 4)..]);
        // short_packet: a length beyond the datagram, or below the header (UDP validates it; pskb_trim_rcsum would
        // drop what follows it).
        if (ulen > l4Len || ulen < UdpView.HeaderLength) { mib[SnmpCounter.UdpInErrors]++; DropDelivered(ns, skb, DropReason.UdpBadLength); return; }
        if (ulen < l4Len)
        {
            skb.Trim(ihl + ulen);
            pkt = aggregate ? skb.LinearData : stack.Linearize(skb);
        }
        var udp = aggregate ? pkt.Slice(ihl, UdpView.HeaderLength) : pkt.Slice(ihl, ulen);
        uint daddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(udp[2..]);
        var sockets = ns.Sockets;
        if (skb.Dst is { Type: RouteKind.Broadcast } || daddr == 0xFFFFFFFF || (daddr >> 28) == 0xE)
        {
            McastDeliver(stack, ns, skb, daddr, dport);
            return;
        }
        if (ns.UdpTunnelPorts.Count != 0 && ns.UdpTunnelPorts.Contains(dport))
        {
            // A tunnel device's kernel socket holds the port (udp_tunnel_sock): udp_queue_rcv_one_skb checks the
            // checksum before handing the datagram to its encap_rcv (vxlan_rcv).
            if (!ChecksumOk(skb, pkt, udp))
            {
                mib[SnmpCounter.UdpInCsumErrors]++;
                mib[SnmpCounter.UdpInErrors]++;
                DropDelivered(ns, skb, DropReason.UdpCsumError);
                return;
            }
            if (VxlanLink.Receive(stack, ns, skb, ihl, dport))
            {
                // encap_rcv consumed it: udp_queue_rcv_one_skb counts it delivered, dropped or not.
                mib[SnmpCounter.UdpInDatagrams]++;
                return;
            }
        }
        if (!sockets.IsEmpty && sockets.LookupUdp4(daddr, dport) is { } sk)
        {
            QueueToSocket(stack, sk, skb);
            return;
        }
        // No socket: a datagram with a bad checksum is dropped silently (udp_lib_checksum_complete; 0 is none).
        if (!ChecksumOk(skb, pkt, udp))
        {
            mib[SnmpCounter.UdpInCsumErrors]++;
            mib[SnmpCounter.UdpInErrors]++;
            DropDelivered(ns, skb, DropReason.UdpCsumError);
            return;
        }
        mib[SnmpCounter.UdpNoPorts]++;
        // nf_reset_ct, then icmp_send: the error finds the datagram's connection itself (RELATED) in OUTPUT.
        Icmp.Send(stack, ns, skb, dev, 3, 3, 0, localDestination: true);
        DropDelivered(ns, skb, DropReason.NoSocket);
    }

    /// <summary>udp4_csum_init + udp_lib_checksum_complete: checksum 0 means none on IPv4; a checksum the device or
    /// GRO verified is not checked again.</summary>
    internal static bool ChecksumOk(Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> udp)
    {
        if (BinaryPrimitives.ReadUInt16BigEndian(udp[6..]) == 0 || Ipv4Input.ChecksumUnnecessary(skb)) return true;
        return Checksum.Verify(udp, Checksum.PseudoHeaderV4(pkt[12..16], pkt[16..20], IpProtocols.Udp, udp.Length));
    }

    /// <summary>udp_queue_rcv_one_skb → __udp_queue_rcv_skb: queue for the reader, or count the full receive buffer
    /// (RcvbufErrors and InErrors, SKB_DROP_REASON_SOCKET_RCVBUFF).</summary>
    internal static void QueueToSocket(NetStack stack, UdpSock sk, Skb skb)
    {
        // nf_reset_ct: the socket queue holds no conntrack reference.
        skb.Conntrack = null;
        if (!sk.Enqueue(skb))
        {
            var mib = sk.Namespace.Mib;
            bool v6 = NetStack.L3(skb)[0] >> 4 == 6;
            mib[v6 ? SnmpCounter.Udp6RcvbufErrors : SnmpCounter.UdpRcvbufErrors]++;
            mib[v6 ? SnmpCounter.Udp6InErrors : SnmpCounter.UdpInErrors]++;
            DropDelivered(sk.Namespace, skb, DropReason.SocketRcvBuff);
            return;
        }
        if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Socket(skb.TraceId, sk.Namespace, "udp", sk.Line);
        stack.WakeReader(sk);
    }

    /// <summary>__udp4_lib_mcast_deliver: a clone to every matching socket but the first, which takes the datagram;
    /// with none, IgnoredMulti.</summary>
    private static void McastDeliver(NetStack stack, Namespace ns, Skb skb, uint daddr, ushort dport)
    {
        UdpSock? first = null;
        if (!ns.Sockets.IsEmpty)
            foreach (var sk in ns.Sockets.UdpMulticastTargets(daddr, dport))
            {
                if (first == null) { first = sk; continue; }
                var clone = stack.Clone(skb);
                if (clone == null)
                {
                    sk.Drops++;
                    ns.Mib[SnmpCounter.UdpRcvbufErrors]++;
                    ns.Mib[SnmpCounter.UdpInErrors]++;
                    continue;
                }
                QueueToSocket(stack, sk, clone);
            }
        if (first != null) { QueueToSocket(stack, first, skb); return; }
        ns.Mib[SnmpCounter.UdpIgnoredMulti]++;
        DropDelivered(ns, skb, DropReason.NoSocket);
    }
}
