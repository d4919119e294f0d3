using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// tcp_v4_rcv for segments addressed to this namespace. No sockets are modelled yet, so every segment takes the
/// "no socket" path: a bad checksum is counted and dropped (TCP CsumErrors, InErrs); otherwise tcp_v4_send_reset
/// answers anything but a RST.
/// </summary>
public sealed class TcpReceive : InetProtocol
{
    public override byte Protocol => IpProtocols.Tcp;

    public override void Receive(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        if (skb.PktType != PacketType.Host) { DropDelivered(ns, skb, DropReason.OtherHost); return; }
        var pkt = stack.Linearize(skb);
        int ihl = (pkt[0] & 0xF) * 4;
        var l4 = pkt[ihl..];
        if (l4.Length < 20) { DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        int doff = (l4[12] >> 4) * 4;
        if (doff < 20) { ns.Mib[SnmpCounter.TcpInErrs]++; DropDelivered(ns, skb, DropReason.TcpBadDoff); return; }
        if (doff > l4.Length) { DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        if (!Ipv4Input.ChecksumUnnecessary(skb)
            && !Checksum.Verify(l4, Checksum.PseudoHeaderV4(pkt[12..16], pkt[16..20], IpProtocols.Tcp, l4.Length)))
        {
            ns.Mib[SnmpCounter.TcpInCsumErrors]++;
            ns.Mib[SnmpCounter.TcpInErrs]++;
            DropDelivered(ns, skb, DropReason.TcpCsumError);
            return;
        }
        SendReset(stack, ns, skb, pkt);
        DropDelivered(ns, skb, DropReason.NoSocket);
    }

    /// <summary>tcp_v4_send_reset with no socket: nothing for a RST, nor for a segment not routed to a local address;
    /// otherwise the reset of <see cref="PacketFactory.WriteTcpReset"/> (seq from the ACK, or ACK of what the segment
    /// occupied) with the segment's TOS less its ECN bits (ip_send_unicast_reply), DF and IP ID 0 (the per-CPU
    /// control socket does path MTU discovery and has no peer), TTL the default, a complete checksum.</summary>
    private static void SendReset(NetStack stack, Namespace ns, Skb skb, ReadOnlySpan<byte> pkt)
    {
        if (skb.Dst is not { Type: RouteKind.Local }) return;
        var r = stack.NewFrame(PacketFactory.TcpResetLength);
        if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = r.LinearData;
        if (!PacketFactory.WriteTcpReset(p, pkt, (byte)ns.DefaultTtl)) { r.Free(); return; }
        p[1] = (byte)(pkt[1] & ~0x03);
        p[10] = p[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(p[10..], Checksum.Compute(p[..20]));
        r.ResetNetworkHeader();
        ns.Mib[SnmpCounter.TcpOutRsts]++;
        Ipv4Output.LocalOut(stack, ns, r, null, CtInfo.None);
    }
}
