using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// tcp_v6_rcv for segments addressed to this namespace: the header and checksum checks (InSegs, InErrs,
/// InCsumErrors), then the IPv6 connection or request of the four-tuple, else an IPv6 listener of the port
/// (tcp_v6_conn_request: the SYN-ACK through ip6_xmit, cookies by cookie_v6_init_sequence), else tcp_v6_send_reset.
/// From there on a connection is the one <see cref="TcpSock"/> of either family: only the addresses, the headers it
/// writes (<see cref="TcpSock.WriteHeaders"/>), its advertised MSS (route MTU − 60) and its keyed ISN differ.
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
        var sockets = ns.Sockets;
        if (!sockets.IsEmpty)
        {
            var saddr = Ipv6.Read(pkt[8..]);
            var daddr = Ipv6.Read(pkt[24..]);
            ushort sport = BinaryPrimitives.ReadUInt16BigEndian(l4);
            ushort dport = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
            if (!TcpOptions.TryParse(l4[20..doff], out var opt, out _)) opt = default;
            if (sockets.LookupEstablished6(daddr, dport, saddr, sport) is { } sk)
            {
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Socket(skb.TraceId, ns, "tcp", sk.Line);
                // nf_reset_ct: the socket's queues hold no conntrack reference.
                skb.Conntrack = null;
                int truesize = Sock.ChargeSize(dev, skb);
                if (sk.State == TcpState.SynRecv) TcpReceive.CheckRequest(stack, sk, skb, pkt, l4, opt, truesize);
                else sk.Receive(stack, skb, l4, opt, truesize);
                return;
            }
            if (sockets.LookupListener6(daddr, dport) is TcpListenSock listener)
            {
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Socket(skb.TraceId, ns, "tcp listen", listener.Line);
                // tcp_v6_cookie_check: an ACK (not SYN, not RST) to a listener that sent cookies lately.
                if ((l4[13] & 0x16) == 0x10 && ns.TcpSyncookies != 0 && listener.CookiesRecent(stack.Now)
                    && CookieCheck(stack, dev, listener, skb, l4, opt, daddr, dport, saddr, sport))
                    return;
                Listen(stack, dev, listener, skb, pkt, off, l4, opt, daddr, dport, saddr, sport);
                return;
            }
        }
        SendReset(stack, ns, dev, pkt, off, doff);
        InetProtocol.DropDelivered(ns, skb, DropReason.NoSocket);
    }

    /// <summary>The device a reply to <paramref name="peer"/> leaves by: the arrival device for a link-local peer,
    /// else the route's (ip6_route_output).</summary>
    private static Device? RouteDevice(Namespace ns, Device dev, UInt128 peer)
        => Ipv6.IsLinkLocal(peer) ? dev : ns.Routing6.Lookup(peer)?.Device;

    /// <summary>tcp_rcv_state_process in LISTEN for IPv6: as <see cref="TcpReceive"/>'s, with tcp_v6_conn_request's
    /// checks (a v4-mapped source counts Ip6InHdrErrors and is dropped) and the request's route by the IPv6 table.</summary>
    private static void Listen(NetStack stack, Device dev, TcpListenSock listener, Skb skb, ReadOnlySpan<byte> pkt, int off,
        ReadOnlySpan<byte> tcp, in TcpOptions opt, UInt128 daddr, ushort dport, UInt128 saddr, ushort sport)
    {
        var ns = listener.Namespace;
        byte flags = tcp[13];
        int doff = (tcp[12] >> 4) * 4;
        if ((flags & 0x10) != 0) { SendReset(stack, ns, dev, pkt, off, doff); InetProtocol.DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        if ((flags & 0x04) != 0 || (flags & 0x02) == 0 || (flags & 0x01) != 0) { InetProtocol.DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        if ((saddr >> 32) == 0xFFFF)
        {
            ns.Mib[SnmpCounter.Ip6InHdrErrors]++;
            InetProtocol.DropDelivered(ns, skb, DropReason.TcpFlags);
            return;
        }
        bool wantCookie = false;
        int syncookies = ns.TcpSyncookies;
        if (syncookies == 2 || listener.RequestCount > listener.Backlog)
        {
            if (syncookies == 0)
            {
                ns.Mib[SnmpCounter.TcpExtTCPReqQFullDrop]++;
                ns.Mib[SnmpCounter.TcpExtListenDrops]++;
                InetProtocol.DropDelivered(ns, skb, DropReason.TcpReqQueueFull);
                return;
            }
            ns.Mib[SnmpCounter.TcpExtTCPReqQFullDoCookies]++;
            wantCookie = true;
        }
        if (listener.AcceptQueueFull)
        {
            ns.Mib[SnmpCounter.TcpExtListenOverflows]++;
            ns.Mib[SnmpCounter.TcpExtListenDrops]++;
            InetProtocol.DropDelivered(ns, skb, DropReason.TcpListenOverflow);
            return;
        }
        var outDev = RouteDevice(ns, dev, saddr);
        int mtu = outDev?.Mtu ?? 1500;
        uint synSeq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        if (wantCookie)
        {
            var c = listener.CookieScratch6(daddr, dport, saddr, sport, outDev);
            c.InitCookieRequest(opt, synSeq, mtu, ns.TcpSecret, stack.Now);
            listener.LastCookieNs = stack.Now;
            ns.Mib[SnmpCounter.TcpExtSyncookiesSent]++;
            TcpReceive.SendSynAck(stack, c);
            skb.Free();
            return;
        }
        var req = new TcpSock(listener, daddr, dport, saddr, sport, outDev);
        req.InitRequest(opt, synSeq, mtu, ns.TcpSecret, stack.Now);
        ns.Sockets.Hash(req);
        // tcp_try_fastopen (tcp_conn_request is shared): the cookie keyed over the SYN's two addresses.
        if (TcpFastOpen.Try(ns, listener, tcp, pkt[8..40], out var cookie))
        {
            TcpReceive.FastOpenChild(stack, dev, listener, req, skb, tcp, cookie);
            return;
        }
        listener.RequestAdded(req);
        TcpReceive.SendSynAck(stack, req, cookie);
        req.ArmRequestTimer(stack);
        skb.Free();
    }

    /// <summary>cookie_v6_check: as cookie_v4_check, with the IPv6 cookie hash and MSS table.</summary>
    private static bool CookieCheck(NetStack stack, Device dev, TcpListenSock listener, Skb skb, ReadOnlySpan<byte> tcp,
        in TcpOptions opt, UInt128 daddr, ushort dport, UInt128 saddr, ushort sport)
    {
        var ns = listener.Namespace;
        var mib = ns.Mib;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]), ack = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        int mss = TcpSyncookies.Check6(ns.TcpSecret, saddr, daddr, sport, dport, seq, ack, stack.Now);
        if (mss == 0) { mib[SnmpCounter.TcpExtSyncookiesFailed]++; return false; }
        mib[SnmpCounter.TcpExtSyncookiesRecv]++;
        if (listener.AcceptQueueFull)
        {
            mib[SnmpCounter.TcpExtListenOverflows]++;
            mib[SnmpCounter.TcpExtListenDrops]++;
            InetProtocol.DropDelivered(ns, skb, DropReason.TcpListenOverflow);
            return true;
        }
        skb.Conntrack = null;
        var outDev = RouteDevice(ns, dev, saddr);
        var child = new TcpSock(listener, daddr, dport, saddr, sport, outDev);
        child.InitCookieChild(opt, seq, ack, mss, outDev?.Mtu ?? 1500, ns.TcpSecret, stack.Now);
        ns.Sockets.Hash(child);
        mib[SnmpCounter.TcpPassiveOpens]++;
        child.Establish(BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]), stack.Now, opt.HasTimestamps ? opt.TsEcr : 0);
        listener.QueueForAccept(stack, child);
        child.ReceiveThirdAck(stack, skb, tcp, opt, Sock.ChargeSize(dev, skb));
        return true;
    }

    /// <summary>tcp_v6_send_reset → tcp_v6_send_response: nothing for a RST or a segment not to a unicast address of
    /// ours; seq from the ACK, or RST|ACK of what the segment occupied; traffic class the segment's less ECN, flow label
    /// 0, the route's hop limit; OutSegs, OutRsts and ip6_xmit's OutRequests. <paramref name="dev"/> is the device a
    /// link-local sender is answered on.</summary>
    internal static void SendReset(NetStack stack, Namespace ns, Device? dev, ReadOnlySpan<byte> pkt, int off, int doff)
    {
        var th = pkt[off..];
        byte flags = th[13];
        if ((flags & 0x04) != 0) return;
        var daddr = Ipv6.Read(pkt[24..]);
        if (Ipv6.IsMulticast(daddr) || ns.Routing6.LookupLocal(daddr) is not { Type: RouteKind.Local }) return;
        var saddr = Ipv6.Read(pkt[8..]);
        var outDev = Ipv6.IsLinkLocal(saddr) ? dev : ns.Routing6.Lookup(saddr)?.Device;
        if (outDev == null) return;
        var r = stack.NewFrame(40 + 20);
        if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = r.LinearData;
        byte tclass = (byte)((BinaryPrimitives.ReadUInt16BigEndian(pkt) >> 4) & ~0x03);
        Ipv6View.Write(p, 20, IpProtocols.Tcp, (byte)ns.HopLimit6(outDev), pkt[24..40], pkt[8..24], tclass,
            Ipv6FlowLabel.Make(ns, daddr, saddr, IpProtocols.Tcp, (uint)BinaryPrimitives.ReadUInt16BigEndian(th[2..]) << 16 | BinaryPrimitives.ReadUInt16BigEndian(th)));
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
