using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>ICMP errors this host sends (net/ipv4/icmp.c __icmp_send, route.c ip_error) and the answers of the
/// REJECT target (nf_send_reset, nf_send_unreach).</summary>
public static class Icmp
{
    /// <summary>
    /// __icmp_send about <paramref name="original"/> (data at its IP header; not consumed): no error about an ICMP
    /// error, a non-first fragment, or a non-unicast packet; rate limited per destination (icmp_ratelimit, burst 6)
    /// for the types in icmp_ratemask; source address the original destination when it was ours, else chosen by
    /// the route back.
    /// </summary>
    public static void Send(NetStack stack, Namespace ns, Skb original, Device inDev, byte type, byte code, uint info, bool localDestination)
    {
        var c = ns.Counters;
        // No replies to link-level broadcast or multicast, nor to a broadcast or multicast destination.
        if (original.PktType != PacketType.Host) return;
        if (!Ipv4View.TryParseReceived(NetStack.L3(original), original.Len, out var o, out _, verifyChecksum: false)) return;
        if (o.FragmentOffset != 0) return;
        if (o.Protocol == IpProtocols.Icmp)
        {
            // Never an error about an error (or an unknown type).
            if (o.Payload.Length < 1) return;
            byte t = o.Payload[0];
            if (t > 18 || PacketContext.IsIcmpError(t)) return;
        }
        uint osrc = o.SourceAddress;
        uint odst = o.DestinationAddress;
        if (original.Dst is { Type: RouteKind.Broadcast } || (odst >> 28) == 0xE) return;
        if (osrc == 0 || (osrc >> 28) == 0xE || osrc == 0xFFFFFFFF) return;
        // __ip_options_echo: the error carries the options an answer takes (none when they cannot be answered), and
        // goes by a reversed source route's first hop.
        Span<byte> optData = stackalloc byte[Ipv4Options.MaxLength];
        IpOptions opt = default;
        if (original.IpOpt.OptLen != 0 && !Ipv4Options.Echo(o.Header, original.IpOpt, ns, optData, out opt)) return;
        uint replyTo = opt.Srr != 0 ? opt.Faddr : osrc;
        var back = ns.Routing.Lookup(replyTo);
        if (back == null || back.Type != RouteKind.Unicast || back.Device == null) return;
        // icmpv4_mask_allow, then icmpv4_xrlim_allow: the per-destination limit (none out of a loopback device).
        // The namespace-wide icmp_msgs_per_sec bucket (OutRateLimitGlobal) is not modelled: the kernel takes a random
        // 0..2 credits per message from a burst of 50, so only a burst of more than ~17 errors could reach it.
        bool limited = ((ns.IcmpRateMask >> type) & 1) != 0 && !(type == 3 && code == 4) && !back.Device.Kind.IsLoopback;
        if (limited && !PeerAllow(stack, ns, replyTo, ns.IcmpRateLimitMs, 6L * ns.IcmpRateLimitMs))
        {
            c.IcmpRateLimited++;
            ns.Mib[SnmpCounter.IcmpOutRateLimitHost]++;
            return;
        }
        uint saddr = localDestination ? odst
            : ns.IcmpErrorsUseInboundIfaddr ? ns.SelectAddress(inDev, osrc)
            : 0;
        if (saddr == 0) saddr = back.Source != 0 ? back.Source : ns.SelectAddress(back.Device, back.Gateway != 0 ? back.Gateway : replyTo);
        var quoted = stack.Linearize(original);
        int length = PacketFactory.IcmpErrorLength(quoted.Length, back.Device.Mtu, opt.OptLen);
        if (length == 0) return;
        var skb = stack.NewFrame(length);
        // icmp_push_reply: ip_append_data failing counts OutErrors.
        if (skb == null) { c.Drops.Add(DropReason.SkbAllocFailed); ns.Mib[SnmpCounter.IcmpOutErrors]++; return; }
        if (opt.OptLen == 0)
            PacketFactory.WriteIcmpError(skb.LinearData, quoted, type, code, info, saddr, osrc, (byte)ns.DefaultTtl, stack.IcmpErrorIpId);
        else
            PacketFactory.WriteIcmpError(skb.LinearData, quoted, type, code, info, saddr, replyTo, (byte)ns.DefaultTtl, stack.IcmpErrorIpId,
                opt, optData, osrc, Ipv4Options.Timestamp32(stack.Now));
        skb.ResetNetworkHeader();
        c.IcmpErrorsSent++;
        OutCount(ns.Mib, type);
        Ipv4Output.LocalOut(stack, ns, skb, null, CtInfo.None, sendSkb: true);
    }

    /// <summary>ip_error: with forwarding on, an ICMP unreachable (rate limited per source, burst 5, 1/s) and the
    /// drop. Consumes <paramref name="skb"/>.</summary>
    public static void IpError(NetStack stack, Device dev, Skb skb, byte code, DropReason reason)
    {
        var ns = dev.Namespace;
        ns.Counters.Drops.Add(reason);
        if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.Drop(skb.TraceId, ns, reason);
        // -ENETUNREACH (no route at all) is the one error ip_error counts with forwarding on.
        if (code == 0) ns.Mib[SnmpCounter.IpExtInNoRoutes]++;
        // The peer's token goes whatever the packet type; __icmp_send then refuses all but PACKET_HOST.
        uint src = BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(skb)[12..]);
        if (PeerAllow(stack, ns, src, 1000, 5000)) Send(stack, ns, skb, dev, 3, code, 0, localDestination: false);
        skb.Free();
    }

    /// <summary>icmp_out_count (from __ip_make_skb, as the message is built): OutMsgs and the type's Out counter.</summary>
    public static void OutCount(SnmpMib mib, byte type)
    {
        mib[SnmpCounter.IcmpOutMsgs]++;
        if (TypeCounter(type, outgoing: true) is { } c) mib[c]++;
    }

    /// <summary>The Icmp In/Out counter of a message type (/proc/net/snmp prints them from the per-type icmpmsg
    /// counts), or null for a type without one.</summary>
    public static SnmpCounter? TypeCounter(byte type, bool outgoing) => type switch
    {
        0 => outgoing ? SnmpCounter.IcmpOutEchoReps : SnmpCounter.IcmpInEchoReps,
        3 => outgoing ? SnmpCounter.IcmpOutDestUnreachs : SnmpCounter.IcmpInDestUnreachs,
        4 => outgoing ? SnmpCounter.IcmpOutSrcQuenchs : SnmpCounter.IcmpInSrcQuenchs,
        5 => outgoing ? SnmpCounter.IcmpOutRedirects : SnmpCounter.IcmpInRedirects,
        8 => outgoing ? SnmpCounter.IcmpOutEchos : SnmpCounter.IcmpInEchos,
        11 => outgoing ? SnmpCounter.IcmpOutTimeExcds : SnmpCounter.IcmpInTimeExcds,
        12 => outgoing ? SnmpCounter.IcmpOutParmProbs : SnmpCounter.IcmpInParmProbs,
        13 => outgoing ? SnmpCounter.IcmpOutTimestamps : SnmpCounter.IcmpInTimestamps,
        14 => outgoing ? SnmpCounter.IcmpOutTimestampReps : SnmpCounter.IcmpInTimestampReps,
        17 => outgoing ? SnmpCounter.IcmpOutAddrMasks : SnmpCounter.IcmpInAddrMasks,
        18 => outgoing ? SnmpCounter.IcmpOutAddrMaskReps : SnmpCounter.IcmpInAddrMaskReps,
        _ => null,
    };

    /// <summary>REJECT: nf_send_reset or nf_send_unreach for the packet the rule dropped (not consumed).</summary>
    public static void SendReject(NetStack stack, Device inDev, Skb skb, ref PacketContext ctx, bool localDestination)
    {
        var ns = inDev.Namespace;
        var pkt = stack.Linearize(skb);
        if (!Ipv4View.TryParse(pkt, out var ip, out _) || ip.FragmentOffset != 0) return;
        // nf_ip_checksum: a checksum the device or GRO already verified is trusted.
        if (!Ipv4Input.ChecksumUnnecessary(skb) && !PacketFactory.TransportChecksumOk(pkt)) return;
        if (ctx.Reject == RejectWith.TcpReset)
        {
            if (ip.Protocol != IpProtocols.Tcp) return;
            var r = stack.NewFrame(PacketFactory.TcpResetLength);
            if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
            if (!PacketFactory.WriteTcpReset(r.LinearData, pkt, (byte)ns.DefaultTtl)) { r.Free(); return; }
            r.ResetNetworkHeader();
            ns.Counters.TcpResetsSent++;
            // nf_ct_attach: the reset travels as part of the original's connection, reply direction.
            var info = ctx.Ct == null ? CtInfo.None
                : ctx.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? CtInfo.Related : CtInfo.RelatedReply;
            Ipv4Output.LocalOut(stack, ns, r, ctx.Ct, info);
            return;
        }
        byte code = ctx.Reject switch
        {
            RejectWith.IcmpNetUnreachable => 0,
            RejectWith.IcmpHostUnreachable => 1,
            RejectWith.IcmpPortUnreachable => 3,
            RejectWith.IcmpProtoUnreachable => 2,
            RejectWith.IcmpNetProhibited => 9,
            RejectWith.IcmpHostProhibited => 10,
            _ => 13,
        };
        Send(stack, ns, skb, inDev, 3, code, 0, localDestination);
    }

    /// <summary>inet_peer_xrlim_allow on the namespace's peer entry for <paramref name="address"/> (ip_error and
    /// icmp_send share it): tokens in ms, a new peer starts with a minute's worth, capped at the burst.</summary>
    private static bool PeerAllow(NetStack stack, Namespace ns, uint address, long costMs, long burstMs)
    {
        long now = stack.Now / 1_000_000;
        var (tokens, last) = stack.InetPeers.TryGetValue((ns, address), out var p) ? p : (0L, now - 60_000);
        tokens += now - last;
        if (tokens > burstMs) tokens = burstMs;
        bool ok = tokens >= costMs;
        if (ok) tokens -= costMs;
        stack.InetPeers[(ns, address)] = (tokens, now);
        return ok;
    }
}
