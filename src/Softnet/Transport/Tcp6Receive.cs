using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// tcp_v6_rcv for segments addressed to this namespace, as far as Softnet's TCP goes for IPv6: the header and
/// checksum checks (InSegs, InErrs, InCsumErrors), then — the TCP socket code being IPv4's — every segment finds no
/// socket and is answered by tcp_v6_send_reset.
/// </summary>
public static class Tcp6Receive
{
    public static void Receive(NetStack stack, Device dev, Skb skb, int off)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        if (skb.PktType != PacketType.Host) { InetProtocol.DropDelivered(ns, skb, DropReason.OtherHost); return; }
        mib[SnmpCounter.TcpInSegs]++;
        var pkt = stack.Linearize(skb);
        var l4 = pkt[off..];
        if (l4.Length < 20) { InetProtocol.DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        int doff = (l4[12] >> 4) * 4;
        if (doff < 20) { mib[SnmpCounter.TcpInErrs]++; InetProtocol.DropDelivered(ns, skb, DropReason.TcpBadDoff); return; }
        if (doff > l4.Length) { InetProtocol.DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        if (!Ipv4Input.ChecksumUnnecessary(skb)
            && !Checksum.Verify(l4, Checksum.PseudoHeaderV6(pkt[8..24], pkt[24..40], IpProtocols.Tcp, l4.Length)))
        {
            mib[SnmpCounter.TcpInCsumErrors]++;
            mib[SnmpCounter.TcpInErrs]++;
            InetProtocol.DropDelivered(ns, skb, DropReason.TcpCsumError);
            return;
        }
        SendReset(stack, dev, pkt, off, doff);
        InetProtocol.DropDelivered(ns, skb, DropReason.NoSocket);
    }

    /// <summary>tcp_v6_send_reset → tcp_v6_send_response: nothing for a RST or a segment not to a unicast address of
    /// ours; seq from the ACK, or RST|ACK of what the segment occupied; traffic class the segment's less ECN, flow label
    /// 0, the route's hop limit; OutSegs, OutRsts and ip6_xmit's OutRequests.</summary>
    private static void SendReset(NetStack stack, Device dev, ReadOnlySpan<byte> pkt, int off, int doff)
    {
        var ns = dev.Namespace;
        var th = pkt[off..];
        byte flags = th[13];
        if ((flags & 0x04) != 0) return;
        var daddr = Ipv6.Read(pkt[24..]);
        if (Ipv6.IsMulticast(daddr) || ns.Routing6.LookupLocal(daddr) is not { Type: RouteKind.Local }) return;
        var saddr = Ipv6.Read(pkt[8..]);
        var back = Ipv6.IsLinkLocal(saddr) ? null : ns.Routing6.Lookup(saddr);
        var outDev = Ipv6.IsLinkLocal(saddr) ? dev : back?.Device;
        if (outDev == null) return;
        var r = stack.NewFrame(40 + 20);
        if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = r.LinearData;
        byte tclass = (byte)((BinaryPrimitives.ReadUInt16BigEndian(pkt) >> 4) & ~0x03);
        Ipv6View.Write(p, 20, IpProtocols.Tcp, (byte)ns.HopLimit6(outDev), pkt[24..40], pkt[8..24], tclass);
        var t = p[40..];
        t.Clear();
        th[..2].CopyTo(t[2..]);
        th[2..4].CopyTo(t);
        uint seq = 0, ack = 0;
        if ((flags & 0x10) != 0) seq = BinaryPrimitives.ReadUInt32BigEndian(th[8..]);
        else ack = BinaryPrimitives.ReadUInt32BigEndian(th[4..]) + (uint)((flags & 0x02) != 0 ? 1 : 0) + (uint)(flags & 0x01)
                   + (uint)(pkt.Length - off - doff);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        t[12] = 5 << 4;
        t[13] = (byte)((flags & 0x10) != 0 ? 0x04 : 0x14);
        BinaryPrimitives.WriteUInt16BigEndian(t[16..], Checksum.Compute(t[..20], Checksum.PseudoHeaderV6(p[8..24], p[24..40], IpProtocols.Tcp, 20)));
        r.ResetNetworkHeader();
        ns.Mib[SnmpCounter.TcpOutSegs]++;
        ns.Mib[SnmpCounter.TcpOutRsts]++;
        ns.Mib[SnmpCounter.Ip6OutRequests]++;
        ns.Counters.TcpResetsSent++;
        Ipv6Output.LocalOut(stack, ns, r, dev, sendSkb: false);
    }
}
