using System.Buffers.Binary;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// icmp_rcv (net/ipv4/icmp.c) for datagrams addressed to this namespace: the checksum, the broadcast rules, and
/// icmp_echo's reply (icmp_reply). Other types are taken and consumed (errors reach no socket yet).
/// </summary>
public sealed class IcmpReceive : InetProtocol
{
    public override byte Protocol => IpProtocols.Icmp;

    public override void Receive(NetStack stack, Device dev, Skb skb, ref PacketContext ctx)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        var mib = ns.Mib;
        var pkt = stack.Linearize(skb);
        int ihl = (pkt[0] & 0xF) * 4;
        var icmp = pkt[ihl..];
        mib[SnmpCounter.IcmpInMsgs]++;
        // skb_checksum_simple_validate: unless the device or GRO vouched for it.
        if (!Ipv4Input.ChecksumUnnecessary(skb) && !Checksum.Verify(icmp))
        {
            mib[SnmpCounter.IcmpInCsumErrors]++;
            mib[SnmpCounter.IcmpInErrors]++;
            DropDelivered(ns, skb, DropReason.IcmpCsumError);
            return;
        }
        if (icmp.Length < 8) { mib[SnmpCounter.IcmpInErrors]++; DropDelivered(ns, skb, DropReason.IcmpTruncated); return; }
        byte type = icmp[0];
        // ICMPMSGIN_INC_STATS: the type's In counter, before the type is judged.
        if (Icmp.TypeCounter(type, outgoing: false) is { } perType) mib[perType]++;
        // RFC 1122 3.2.2: unknown types are silently discarded.
        if (type > 18) { mib[SnmpCounter.IcmpInErrors]++; DropDelivered(ns, skb, DropReason.UnhandledProtocol); return; }
        if (skb.Dst is { Type: RouteKind.Broadcast } || (BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]) >> 28) == 0xE
            || BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]) == 0xFFFFFFFF)
        {
            bool echoOrTimestamp = type is IcmpView.EchoRequest or 13;
            if ((echoOrTimestamp && ns.IcmpEchoIgnoreBroadcasts) || !(echoOrTimestamp || type is 17 or 18))
            {
                mib[SnmpCounter.IcmpInErrors]++;
                DropDelivered(ns, skb, DropReason.InvalidProto);
                return;
            }
        }
        bool redirects = false;
        if (type is 3 or 4 or 5 or 11 or 12 && !ErrorReachesSocket(ns, type, icmp, out redirects)) mib[SnmpCounter.IcmpInErrors]++;
        else if (type == IcmpView.Redirect && redirects)
            Icmp.ReceiveRedirect(stack, dev, BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]), icmp[1], BinaryPrimitives.ReadUInt32BigEndian(icmp[4..]),
                BinaryPrimitives.ReadUInt32BigEndian(icmp[(8 + 16)..]));
        // icmp_timestamp wants the three timestamps' first word (the reply itself is not modelled).
        if (type == 13 && icmp.Length < 12) mib[SnmpCounter.IcmpInErrors]++;
        if (type == IcmpView.EchoRequest)
        {
            c.EchoRequests++;
            if (!ns.IcmpEchoIgnoreAll) Echo(stack, dev, skb, pkt);
        }
        skb.Free();
    }

    /// <summary>
    /// icmp_unreach (types 3, 4, 11, 12) and icmp_redirect (5), then icmp_socket_deliver: false where they count
    /// InErrors. The quoted datagram must hold an IPv4 header with a sane IHL (icmp_unreach; icmp_redirect only asks
    /// for 20 bytes) and 8 bytes past it (icmp_socket_deliver); then the quoted protocol's error handler looks for the
    /// socket that sent it: udp_err (__udp4_lib_err) the UDP socket bound to its source, tcp_v4_err the connection or
    /// request of its four-tuple; none is InErrors. A destination-unreachable code above 15 and a
    /// fragment-reassembly time exceeded stop before delivery (as does a fragmentation-needed under ip_no_pmtu_disc=2,
    /// which Softnet does not read: it assumes the default 0).
    /// </summary>
    /// <param name="redirects">The handler that took it acts on a redirect: icmp_err (a quoted echo reply:
    /// ipv4_redirect), udp_err on the socket found (ipv4_sk_redirect), tcp_v4_err on the connection (do_redirect).</param>
    private static bool ErrorReachesSocket(Namespace ns, byte type, ReadOnlySpan<byte> icmp, out bool redirects)
    {
        redirects = false;
        var quoted = icmp[8..];
        if (quoted.Length < 20) return false;
        int qihl = (quoted[0] & 0xF) * 4;
        if (type != 5 && qihl < 20) return false;
        if (type == 3 && icmp[1] > 15) return true;
        if (type == 11 && icmp[1] == 1) return true;
        if (quoted.Length < qihl + 8) return false;
        if (quoted[9] is not (IpProtocols.Udp or IpProtocols.Tcp))
        {
            // icmp_err acts only for an echo reply the kernel sent; any other quoted ICMP goes to ping_err's sockets.
            redirects = quoted[9] == IpProtocols.Icmp && quoted[qihl] == IcmpView.EchoReply;
            return true;
        }
        uint src = BinaryPrimitives.ReadUInt32BigEndian(quoted[12..]), dst = BinaryPrimitives.ReadUInt32BigEndian(quoted[16..]);
        var l4 = quoted[qihl..];
        ushort sport = BinaryPrimitives.ReadUInt16BigEndian(l4), dport = BinaryPrimitives.ReadUInt16BigEndian(l4[2..]);
        if (quoted[9] == IpProtocols.Udp) return redirects = ns.Sockets.LookupUdp4(src, sport) != null;
        if (ns.Sockets.LookupEstablished(src, sport, dst, dport) is not { } sk) return false;
        // A request (tcp_req_err) ignores redirects, a connection those quoting a sequence outside its window.
        redirects = sk.IcmpError(type, icmp[1], BinaryPrimitives.ReadUInt32BigEndian(l4[4..]));
        return true;
    }

    /// <summary>
    /// icmp_echo → icmp_reply: the request's identifier, sequence and data under type 0, from the address it was
    /// sent to (fib_compute_spec_dst; a broadcast's answer takes the device's address facing the sender), with the
    /// request's TOS byte, the route's TTL, no DF (the ICMP socket does not do path MTU discovery, so the IP ID is the
    /// per-destination one the kernel keys randomly), mark 0. Echo replies are outside icmp_ratemask's default.
    /// </summary>
    private static void Echo(NetStack stack, Device dev, Skb request, ReadOnlySpan<byte> pkt)
    {
        var ns = dev.Namespace;
        int ihl = (pkt[0] & 0xF) * 4;
        int total = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(pkt[2..]), pkt.Length);
        var message = pkt[ihl..total];
        uint src = BinaryPrimitives.ReadUInt32BigEndian(pkt[12..]);
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(pkt[16..]);
        // icmp_reply: ip_options_echo first (no answer when the options cannot be answered); a reversed source route
        // sends the reply to its first hop.
        Span<byte> optData = stackalloc byte[Ipv4Options.MaxLength];
        IpOptions opt = default;
        if (request.IpOpt.OptLen != 0 && !Ipv4Options.Echo(pkt[..ihl], request.IpOpt, ns, optData, out opt)) return;
        uint daddr = opt.Srr != 0 ? opt.Faddr : src;
        // The rate limits where icmp_ratemask names echo replies: the namespace bucket, then the route's peer.
        if (!Icmp.GlobalAllow(stack, ns, IcmpView.EchoReply, 0, out bool applyRateLimit)) return;
        if (applyRateLimit && ns.Routing.Lookup(daddr) is { Device: { } outDev } && !Icmp.XrlimAllow(stack, ns, outDev, daddr, true)) return;
        uint saddr = request.Dst is { Type: RouteKind.Local } ? dst : ns.SelectAddress(dev, src);
        if (saddr == 0) return;
        int hl = 20 + opt.OptLen;
        var skb = stack.NewFrame(hl + message.Length);
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); ns.Mib[SnmpCounter.IcmpOutErrors]++; return; }
        var p = skb.LinearData;
        PacketFactory.Ipv4HeaderWithOptions(p, pkt[1], p.Length, stack.IcmpErrorIpId, false, (byte)ns.DefaultTtl, IpProtocols.Icmp, saddr, daddr,
            opt, optData, src, Ipv4Options.Timestamp32(stack.Now));
        var reply = p[hl..];
        message.CopyTo(reply);
        reply[0] = IcmpView.EchoReply;
        reply[1] = 0;
        reply[2] = reply[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(reply[2..], Checksum.Compute(reply));
        skb.ResetNetworkHeader();
        ns.Counters.EchoReplies++;
        Icmp.OutCount(ns.Mib, IcmpView.EchoReply);
        Ipv4Output.LocalOut(stack, ns, skb, null, CtInfo.None, sendSkb: true);
    }
}
