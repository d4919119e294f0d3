using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// tcp_v4_rcv for segments addressed to this namespace: the header and checksum checks (InSegs, InErrs,
/// InCsumErrors), then the connection or request of the four-tuple, else a listener (tcp_v4_conn_request: the
/// SYN-ACK), else tcp_v4_send_reset.
/// </summary>
public sealed class TcpReceive : InetProtocol
{
    public override byte Protocol => IpProtocols.Tcp;

    public override void Receive(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        if (skb.PktType != PacketType.Host) { DropDelivered(ns, skb, DropReason.OtherHost); return; }
        mib[SnmpCounter.TcpInSegs]++;
        var pkt = stack.Linearize(skb);
        int ihl = (pkt[0] & 0xF) * 4;
        var l4 = pkt[ihl..];
        if (l4.Length < 20) { DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        int doff = (l4[12] >> 4) * 4;
        if (doff < 20) { mib[SnmpCounter.TcpInErrs]++; DropDelivered(ns, skb, DropReason.TcpBadDoff); return; }
        if (doff > l4.Length) { DropDelivered(ns, skb, DropReason.TcpHeaderTruncated); return; }
        if (!Ipv4Input.ChecksumUnnecessary(skb)
            && !Checksum.Verify(l4, Checksum.PseudoHeaderV4(pkt[12..16], pkt[16..20], IpProtocols.Tcp, l4.Length)))
        {
            mib[SnmpCounter.TcpInCsumErrors]++;
            mib[SnmpCounter.TcpInErrs]++;
            DropDelivered(ns, skb, DropReason.TcpCsumError);
            return;
        }
        uint saddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        uint daddr = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(l4);
        ushort dport = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
        var sockets = ns.Sockets;
        if (!sockets.IsEmpty)
        {
            if (!TcpOptions.TryParse(l4[20..doff], out var opt, out _)) opt = default;
            if (sockets.LookupEstablished(daddr, dport, saddr, sport) is { } sk)
            {
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Socket(skb.TraceId, ns, "tcp", sk.Line);
                // nf_reset_ct: the socket's queues hold no conntrack reference.
                skb.Conntrack = null;
                int truesize = Sock.ChargeSize(dev, skb);
                if (sk.State == TcpState.SynRecv) CheckRequest(stack, sk, skb, pkt, l4, opt, truesize);
                // sock_owned_by_user: the reader is inside recvmsg; the segment waits in the socket's backlog.
                else if (sk.LockedAtNs != long.MaxValue && stack.ReaderCpus is { } readers && readers.Owns(sk, stack.Now))
                    sk.AddBacklog(skb, pkt, l4, truesize);
                else sk.Receive(stack, skb, l4, opt, truesize);
                return;
            }
            if (sockets.LookupListener4(daddr, dport) is TcpListenSock listener)
            {
                if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Socket(skb.TraceId, ns, "tcp listen", listener.Line);
                // tcp_v4_cookie_check: an ACK (not SYN, not RST) to a listener that sent cookies lately.
                if ((l4[13] & 0x16) == 0x10 && ns.TcpSyncookies != 0 && listener.CookiesRecent(stack.Now)
                    && CookieCheck(stack, dev, listener, skb, pkt, l4, opt, daddr, dport, saddr, sport))
                    return;
                Listen(stack, dev, listener, skb, pkt, l4, opt, daddr, dport, saddr, sport);
                return;
            }
        }
        // No socket: a RST answers anything but a RST.
        SendReset(stack, ns, skb, pkt);
        DropDelivered(ns, skb, DropReason.NoSocket);
    }

    /// <summary>sk_backlog_rcv (tcp_v4_do_rcv) for a segment the socket's backlog held: the header and options read
    /// again from the skb (data at the IP header), then the connection's receive path.</summary>
    internal static void BacklogRcv(NetStack stack, TcpSock sk, Skb skb, int truesize)
    {
        var pkt = stack.Linearize(skb);
        var l4 = pkt[((pkt[0] & 0xF) * 4)..];
        int doff = (l4[12] >> 4) * 4;
        if (!TcpOptions.TryParse(l4[20..doff], out var opt, out _)) opt = default;
        sk.Receive(stack, skb, l4, opt, truesize);
    }

    /// <summary>tcp_rcv_state_process in LISTEN: an ACK is answered with a RST, a RST dropped, a SYN (without FIN)
    /// opens a request (tcp_conn_request) unless the accept queue is full.</summary>
    private static void Listen(NetStack stack, Device dev, TcpListenSock listener, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> tcp,
        in TcpOptions opt, uint daddr, ushort dport, uint saddr, ushort sport)
    {
        var ns = listener.Namespace;
        byte flags = tcp[13];
        if ((flags & 0x10) != 0) { SendReset(stack, ns, skb, pkt); DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        if ((flags & 0x04) != 0 || (flags & 0x02) == 0 || (flags & 0x01) != 0) { DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        // tcp_v4_conn_request: no connections to broadcast or multicast.
        if (skb.Dst is { Type: RouteKind.Broadcast } || (daddr >> 28) == 0xE) { DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        // tcp_conn_request: a request queue over the backlog (or tcp_syncookies 2) answers with a cookie, or drops.
        bool wantCookie = false;
        int syncookies = ns.TcpSyncookies;
        if (syncookies == 2 || listener.RequestCount > listener.Backlog)
        {
            if (syncookies == 0)
            {
                ns.Mib[SnmpCounter.TcpExtTCPReqQFullDrop]++;
                ns.Mib[SnmpCounter.TcpExtListenDrops]++;
                DropDelivered(ns, skb, DropReason.TcpReqQueueFull);
                return;
            }
            ns.Mib[SnmpCounter.TcpExtTCPReqQFullDoCookies]++;
            wantCookie = true;
        }
        if (listener.AcceptQueueFull)
        {
            ns.Mib[SnmpCounter.TcpExtListenOverflows]++;
            ns.Mib[SnmpCounter.TcpExtListenDrops]++;
            DropDelivered(ns, skb, DropReason.TcpListenOverflow);
            return;
        }
        // tcp_conn_request without syncookies: once fewer than a quarter of tcp_max_syn_backlog's requests are left, only
        // peers with TCP metrics (tcp_peer_is_proven; none here) may open one.
        int maxSyn = ns.TcpMaxSynBacklog;
        if (!wantCookie && syncookies == 0 && maxSyn - listener.RequestCount < (maxSyn >> 2))
        {
            ns.Mib[SnmpCounter.TcpExtListenDrops]++;
            DropDelivered(ns, skb, DropReason.TcpReqQueueFull);
            return;
        }
        var back = ns.Routing.Lookup(saddr);
        int mtu = back?.Device?.Mtu ?? 1500;
        uint synSeq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        if (wantCookie)
        {
            // Stateless: the listener's scratch request answers and is forgotten (nothing to retransmit).
            var c = listener.CookieScratch(daddr, dport, saddr, sport);
            if (skb.IpOpt.OptLen != 0) c.SaveIpOptions(pkt[..((pkt[0] & 0xF) * 4)], skb.IpOpt);
            c.InitCookieRequest(opt, synSeq, mtu, ns.TcpSecret, stack.Now);
            listener.LastCookieNs = stack.Now;
            ns.Mib[SnmpCounter.TcpExtSyncookiesSent]++;
            SendSynAck(stack, c);
            skb.Free();
            return;
        }
        var req = new TcpSock(listener, daddr, dport, saddr, sport);
        // tcp_v4_init_req: the SYN's IP options, echoed, go on every segment of the connection.
        if (skb.IpOpt.OptLen != 0) req.SaveIpOptions(pkt[..((pkt[0] & 0xF) * 4)], skb.IpOpt);
        req.InitRequest(opt, synSeq, mtu, ns.TcpSecret, stack.Now);
        ns.Sockets.Hash(req);
        // tcp_try_fastopen: the SYN's source and destination addresses, as they stand in the header, key the cookie.
        if (TcpFastOpen.Try(ns, listener, tcp, pkt[12..20], out var cookie))
        {
            FastOpenChild(stack, dev, listener, req, skb, tcp, cookie);
            return;
        }
        listener.RequestAdded(req);
        SendSynAck(stack, req, cookie);
        req.ArmRequestTimer(stack);
        skb.Free();
    }

    /// <summary>tcp_try_fastopen → tcp_fastopen_create_child: a full socket in SYN_RECV takes the SYN's data
    /// (tcp_create_openreq_child counts the passive open), its SYN-ACK acknowledges the data, and it goes to the
    /// accept queue at once (the reader has the data before the handshake completes).</summary>
    internal static void FastOpenChild(NetStack stack, Device dev, TcpListenSock listener, TcpSock req, Skb skb, ReadOnlySpan<byte> tcp,
        in FastOpenCookie cookie)
    {
        req.Namespace.Mib[SnmpCounter.TcpPassiveOpens]++;
        listener.FastOpenQlen++;
        skb.Conntrack = null;
        req.InitFastOpenChild(stack, skb, tcp, Sock.ChargeSize(dev, skb));
        SendSynAck(stack, req, cookie);
        listener.QueueForAccept(stack, req);
        req.ArmRequestTimer(stack);
    }

    /// <summary>cookie_v4_check: a valid cookie (SyncookiesRecv) becomes a child as the third ACK would have made it
    /// (PassiveOpens, accept queue) and the child processes the segment; a bad one (SyncookiesFailed) returns false
    /// and the listener answers it.</summary>
    private static bool CookieCheck(NetStack stack, Device dev, TcpListenSock listener, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> tcp,
        in TcpOptions opt, uint daddr, ushort dport, uint saddr, ushort sport)
    {
        var ns = listener.Namespace;
        var mib = ns.Mib;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]), ack = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        int mss = TcpSyncookies.Check(ns.TcpSecret, saddr, daddr, sport, dport, seq, ack, stack.Now);
        if (mss == 0) { mib[SnmpCounter.TcpExtSyncookiesFailed]++; return false; }
        mib[SnmpCounter.TcpExtSyncookiesRecv]++;
        if (listener.AcceptQueueFull)
        {
            // tcp_v4_syn_recv_sock refuses the child.
            mib[SnmpCounter.TcpExtListenOverflows]++;
            mib[SnmpCounter.TcpExtListenDrops]++;
            DropDelivered(ns, skb, DropReason.TcpListenOverflow);
            return true;
        }
        skb.Conntrack = null;
        int mtu = ns.Routing.Lookup(saddr)?.Device?.Mtu ?? 1500;
        var child = new TcpSock(listener, daddr, dport, saddr, sport);
        // cookie_v4_check: the options of the SYN are gone; the ACK's are echoed instead.
        if (skb.IpOpt.OptLen != 0) child.SaveIpOptions(pkt[..((pkt[0] & 0xF) * 4)], skb.IpOpt);
        child.InitCookieChild(opt, seq, ack, mss, mtu, ns.TcpSecret, stack.Now);
        ns.Sockets.Hash(child);
        mib[SnmpCounter.TcpPassiveOpens]++;
        child.Establish(BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]), stack.Now, opt.HasTimestamps ? opt.TsEcr : 0);
        listener.QueueForAccept(stack, child);
        child.ReceiveThirdAck(stack, skb, tcp, opt, Sock.ChargeSize(dev, skb));
        return true;
    }

    /// <summary>tcp_check_req for a segment to a request sock: a retransmitted SYN gets the SYN-ACK again, a wrong
    /// ACK a RST (the request stays), RST or SYN kill the request, the right ACK creates the child
    /// (tcp_create_openreq_child: PassiveOpens) and queues it for accept, then it processes the segment.</summary>
    internal static void CheckRequest(NetStack stack, TcpSock req, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> tcp, in TcpOptions opt, int truesize)
    {
        var ns = req.Namespace;
        var mib = ns.Mib;
        byte flags = tcp[13];
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        uint ack = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        if (req.FastOpenChild)
        {
            // A Fast Open child is a full socket in SYN_RECV (tcp_rcv_state_process, not tcp_check_req): the ACK of its
            // SYN-ACK makes it ESTABLISHED (it was counted and queued for accept when it was made).
            if ((flags & 0x16) == 0x10 && ack == req.SndIsn + 1)
            {
                if (opt.HasTimestamps && req.TstampOk && (int)(opt.TsVal - req.TsRecent) >= 0) req.TsRecent = opt.TsVal;
                req.Establish(BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]), stack.Now, opt.HasTimestamps ? opt.TsEcr : 0);
                req.ReceiveThirdAck(stack, skb, tcp, opt, truesize);
                return;
            }
            req.Receive(stack, skb, tcp, opt, truesize);
            return;
        }
        if (seq == req.RcvIsn && (flags & 0x17) == 0x02)
        {
            // A retransmitted SYN: inet_rtx_syn_ack.
            req.RetransmitSynAck(stack);
            skb.Free();
            return;
        }
        if ((flags & 0x10) != 0 && ack != req.SndIsn + 1)
        {
            // Returned to the listener, which resets: the request is untouched.
            ResetFor(stack, req, skb, pkt, tcp);
            DropDelivered(ns, skb, DropReason.TcpFlags);
            return;
        }
        int len = tcp.Length - (tcp[12] >> 4) * 4;
        uint end = seq + (uint)len + ((flags & 0x03) != 0 ? 1u : 0u);
        // tcp_in_window against the request's window.
        bool inWindow = !(TcpSock.Before(end, req.RcvNxt) || TcpSock.After(seq, req.RcvNxt + req.RcvWnd)) || seq == req.RcvNxt;
        if (!inWindow)
        {
            // Out of window: an ACK (tcp_v4_reqsk_send_ack), rate limited unless the segment carries data.
            if ((flags & 0x04) == 0)
                req.SendRequestAck(stack, len > 0 && (flags & 0x02) == 0, req.V6 ? (byte)(BinaryPrimitives.ReadUInt16BigEndian(pkt) >> 4) : pkt[1]);
            DropDelivered(ns, skb, DropReason.TcpOldSequence);
            return;
        }
        if ((flags & 0x06) != 0)
        {
            // RST or SYN in window: the embryonic connection dies (a SYN is answered with a RST).
            mib[SnmpCounter.TcpAttemptFails]++;
            if ((flags & 0x04) == 0) ResetFor(stack, req, skb, pkt, tcp);
            mib[SnmpCounter.TcpExtEmbryonicRsts]++;
            req.DropRequest();
            DropDelivered(ns, skb, DropReason.TcpReset);
            return;
        }
        if ((flags & 0x10) == 0) { DropDelivered(ns, skb, DropReason.TcpFlags); return; }
        if (req.Listener.AcceptQueueFull)
        {
            mib[SnmpCounter.TcpExtListenOverflows]++;
            mib[SnmpCounter.TcpExtListenDrops]++;
            DropDelivered(ns, skb, DropReason.TcpListenOverflow);
            return;
        }
        if (opt.HasTimestamps && req.TstampOk && (int)(opt.TsVal - req.TsRecent) >= 0) req.TsRecent = opt.TsVal;
        mib[SnmpCounter.TcpPassiveOpens]++;
        req.Establish(BinaryPrimitives.ReadUInt16BigEndian(tcp[14..]), stack.Now, opt.HasTimestamps ? opt.TsEcr : 0);
        req.Listener.QueueForAccept(stack, req);
        // The child processes the third ACK itself: a pure ACK, or data queued.
        req.ReceiveThirdAck(stack, skb, tcp, opt, truesize);
    }

    /// <summary>The reset tcp_v4_send_reset or tcp_v6_send_reset sends for a segment to a request.</summary>
    private static void ResetFor(NetStack stack, TcpSock req, Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> tcp)
    {
        if (req.V6) Tcp6Receive.SendReset(stack, req.Namespace, req.OutDev6, pkt, pkt.Length - tcp.Length, (tcp[12] >> 4) * 4);
        else SendReset(stack, req.Namespace, skb, pkt);
    }

    /// <summary>tcp_make_synack through ip_build_and_send_pkt: IP ID 0 with DF (a request sock has no ID counter),
    /// TOS 0 (the listener's), TTL the default; TCP options in tcp_options_write's order: MSS, SACK-permitted packed
    /// with timestamps (or after a NOP pair without them), window scale behind a NOP, the Fast Open cookie; the window
    /// field unscaled.
    /// An IPv6 request's goes by tcp_v6_send_synack → ip6_xmit (<see cref="TcpSock.WriteHeaders"/>).</summary>
    internal static void SendSynAck(NetStack stack, TcpSock req, in FastOpenCookie cookie = default)
    {
        var ns = req.Namespace;
        int opt = 4 + (req.TstampOk ? 12 : 0) + (req.WscaleOk ? 4 : 0) + (req.SackOk && !req.TstampOk ? 4 : 0) + cookie.OptionSpace;
        var skb = stack.NewFrame(req.IpHeaderLength + 20 + opt);
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = skb.LinearData;
        var t = req.WriteHeaders(p, 0, req.SndIsn, 0x12, (ushort)Math.Min(req.RcvWnd, 65535u), stack.Now);
        int o = 20;
        t[o] = TcpOptionKinds.Mss; t[o + 1] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(t[(o + 2)..], (ushort)req.AdvMss);
        o += 4;
        if (req.TstampOk)
        {
            if (req.SackOk) { t[o] = TcpOptionKinds.SackPermitted; t[o + 1] = 2; }
            else { t[o] = 1; t[o + 1] = 1; }
            t[o + 2] = TcpOptionKinds.Timestamps; t[o + 3] = 10;
            BinaryPrimitives.WriteUInt32BigEndian(t[(o + 4)..], req.CookieTsVal ?? TcpSecure.TsVal(stack.Now, req.TsOffset));
            BinaryPrimitives.WriteUInt32BigEndian(t[(o + 8)..], req.TsRecent);
            o += 12;
        }
        // tcp_options_write: SACK-permitted alone (no timestamps to share a word with) before the window scale.
        if (req.SackOk && !req.TstampOk)
        {
            t[o] = 1; t[o + 1] = 1; t[o + 2] = TcpOptionKinds.SackPermitted; t[o + 3] = 2;
            o += 4;
        }
        if (req.WscaleOk)
        {
            t[o] = 1; t[o + 1] = TcpOptionKinds.WindowScale; t[o + 2] = 3; t[o + 3] = req.RcvWscale;
            o += 4;
        }
        // The first SYN-ACK of a request carries the Fast Open cookie tcp_try_fastopen chose (tcp_synack_options);
        // a retransmitted one has none (tcp_rtx_synack passes no cookie).
        TcpFastOpen.Write(t[o..], cookie);
        req.FinishChecksum(p);
        ns.Mib[SnmpCounter.TcpOutSegs]++;
        req.LocalOut(stack, skb);
    }

    /// <summary>tcp_v4_send_reset from the per-namespace control socket: nothing for a RST, nor for a segment not
    /// routed to a local address; otherwise the reset of <see cref="PacketFactory.WriteTcpReset"/> (seq from the ACK,
    /// or ACK of what the segment occupied) with the segment's TOS less its ECN bits (ip_send_unicast_reply), DF and IP
    /// ID 0, TTL the default, a complete checksum.</summary>
    internal static void SendReset(NetStack stack, Namespace ns, Skb skb, ReadOnlySpan<byte> pkt)
    {
        if (skb.Dst is not { Type: RouteKind.Local }) return;
        // ip_send_unicast_reply: the segment's IP options echoed (none sent when they cannot be answered; the reset
        // still counts), the reply routed by a reversed source route's first hop.
        Span<byte> optData = stackalloc byte[Ipv4Options.MaxLength];
        IpOptions opt = default;
        if (skb.IpOpt.OptLen != 0 && !Ipv4Options.Echo(pkt[..((pkt[0] & 0xF) * 4)], skb.IpOpt, ns, optData, out opt))
        {
            if ((pkt[((pkt[0] & 0xF) * 4) + 13] & 0x04) == 0) { ns.Mib[SnmpCounter.TcpOutRsts]++; ns.Mib[SnmpCounter.TcpOutSegs]++; }
            return;
        }
        var r = stack.NewFrame(PacketFactory.TcpResetLength + opt.OptLen);
        if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var p = r.LinearData;
        if (!PacketFactory.WriteTcpReset(p[..PacketFactory.TcpResetLength], pkt, (byte)ns.DefaultTtl)) { r.Free(); return; }
        if (opt.OptLen != 0)
        {
            // The TCP header moves behind the options; its checksum keeps the sender as the pseudo-header's destination.
            p.Slice(20, 20).CopyTo(p[(20 + opt.OptLen)..]);
            uint src = BinaryPrimitives.ReadUInt32BigEndian(p[12..]), dst = BinaryPrimitives.ReadUInt32BigEndian(p[16..]);
            PacketFactory.Ipv4HeaderWithOptions(p, (byte)(pkt[1] & ~0x03), p.Length, 0, true, (byte)ns.DefaultTtl, IpProtocols.Tcp, src,
                opt.Srr != 0 ? opt.Faddr : dst, opt, optData, dst, Ipv4Options.Timestamp32(stack.Now));
        }
        else
        {
            p[1] = (byte)(pkt[1] & ~0x03);
            p[10] = p[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(p[10..], Checksum.Compute(p[..20]));
        }
        r.ResetNetworkHeader();
        ns.Mib[SnmpCounter.TcpOutRsts]++;
        ns.Mib[SnmpCounter.TcpOutSegs]++;
        Ipv4Output.LocalOut(stack, ns, r, null, CtInfo.None);
    }
}
