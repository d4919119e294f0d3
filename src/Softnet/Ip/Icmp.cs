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
    /// error, a non-first fragment, or a non-unicast packet; for the types in icmp_ratemask, limited by the namespace's
    /// bucket (icmp_msgs_per_sec, icmp_msgs_burst) and per destination (icmp_ratelimit, burst 6); source address the original destination when it was ours, else chosen by
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
        // __icmp_send: the namespace-wide bucket first (not for a datagram that came in on a loopback device, which
        // then escapes the per-destination limit too).
        bool applyRateLimit = false;
        if (!inDev.Kind.IsLoopback && !GlobalAllow(stack, ns, type, code, out applyRateLimit)) return;
        // __ip_options_echo: the error carries the options an answer takes (none when they cannot be answered), and
        // goes by a reversed source route's first hop.
        Span<byte> optData = stackalloc byte[Ipv4Options.MaxLength];
        IpOptions opt = default;
        if (original.IpOpt.OptLen != 0 && !Ipv4Options.Echo(o.Header, original.IpOpt, ns, optData, out opt)) return;
        uint replyTo = opt.Srr != 0 ? opt.Faddr : osrc;
        var back = ns.Routing.Lookup(replyTo);
        if (back == null || back.Type != RouteKind.Unicast || back.Device == null) return;
        // icmpv4_xrlim_allow: the per-destination limit where the global check applied it (none out of a loopback
        // device); a message it lets go takes its credits from the namespace bucket.
        if (!XrlimAllow(stack, ns, back.Device, replyTo, applyRateLimit)) return;
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

    /// <summary>
    /// __ip_do_redirect for a redirect that arrived on <paramref name="dev"/> from <paramref name="oldGw"/>, about a
    /// datagram of ours to <paramref name="daddr"/>: taken only for the net and host codes, when our route there goes by
    /// that very gateway, the device accepts redirects (accept_redirects, as IN_DEV_RX_REDIRECTS combines it), and the
    /// new gateway is a plain unicast address (on shared media: not one of ours nor a broadcast; otherwise on the old
    /// gateway's subnet and, with secure_redirects, already some route's gateway on the device). The new gateway's
    /// neighbour must be valid: an unknown one is asked for (neigh_event_send) and the redirect goes unused; a known
    /// one makes a nexthop exception, so what this host sends or forwards to <paramref name="daddr"/> goes by it.
    /// </summary>
    public static void ReceiveRedirect(NetStack stack, Device dev, uint oldGw, byte code, uint newGw, uint daddr)
    {
        if ((code & 7) > 3) return;
        var ns = dev.Namespace;
        var rt = ns.Routing.Lookup(daddr);
        if (rt is not { Type: RouteKind.Unicast, Device: { } outDev } || rt.Gateway == 0 || rt.Gateway != oldGw) return;
        if (newGw == oldGw || !ns.AcceptRedirects(dev) || (newGw >> 28) == 0xE || newGw == 0xFFFFFFFF || (newGw >> 24) == 0) return;
        if (!ns.SharedMedia(dev))
        {
            if (!ns.AddrOnlink(dev, newGw, oldGw)) return;
            if (ns.SecureRedirects(dev) && !IsGatewayOf(ns, newGw, dev)) return;
        }
        else if (ns.Routing.LookupLocal(newGw) != null) return;
        var n = ns.Neighbours.Find(outDev, newGw);
        if (n == null || !n.Valid)
        {
            // __neigh_event_send without a packet: an entry that is not already asking starts resolution.
            if (n is { State: Neigh.NudState.Incomplete }) return;
            n ??= ns.Neighbours.Create(outDev, newGw, Neigh.NudState.Incomplete);
            n.State = Neigh.NudState.Incomplete;
            n.Probes = 1;
            n.NextProbeNs = stack.Now + Neigh.NeighbourTable.RetransNs;
            stack.ArmNeighTimer(n.NextProbeNs);
            Neigh.Arp.Solicit(stack, n, 0);
            return;
        }
        if (ns.Routing.LookupFib(daddr) is { } fib) ns.Routing.AddRedirectException(daddr, fib, newGw, stack);
    }

    /// <summary>ip_fib_check_default: some route's nexthop is <paramref name="gw"/> through <paramref name="dev"/>.</summary>
    private static bool IsGatewayOf(Namespace ns, uint gw, Device dev)
    {
        // A rare path (a redirect off shared media): the walk over the compiled table may allocate.
        foreach (var r in ns.Routing.MainRoutes)
            if (r.Gateway == gw && r.Device == dev) return true;
        return false;
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

    /// <summary>icmpv4_mask_allow: types above NR_ICMP_TYPES, fragmentation needed (path MTU discovery) and types outside
    /// icmp_ratemask are never limited.</summary>
    private static bool MaskAllow(Namespace ns, byte type, byte code)
        => type > 18 || (type == 3 && code == 4) || ((ns.IcmpRateMask >> type) & 1) == 0;

    /// <summary>icmpv4_global_allow: a type the mask limits needs the namespace bucket (icmp_global_allow) to have credit
    /// or to refill; refused, it counts OutRateLimitGlobal. <paramref name="applyRateLimit"/>: the per-destination limit
    /// and the credit consumption apply afterwards.</summary>
    internal static bool GlobalAllow(NetStack stack, Namespace ns, byte type, byte code, out bool applyRateLimit)
    {
        applyRateLimit = false;
        if (MaskAllow(ns, type, code)) return true;
        if (ns.IcmpGlobal.Allow(stack.Now, ns.IcmpMsgsPerSec, ns.IcmpMsgsBurst)) { applyRateLimit = true; return true; }
        ns.Mib[SnmpCounter.IcmpOutRateLimitGlobal]++;
        return false;
    }

    /// <summary>icmpv4_xrlim_allow: where the global check applied the limit, the peer of <paramref name="daddr"/> pays
    /// icmp_ratelimit (not out of a loopback device); refused, OutRateLimitHost; let go, the bucket's credits are
    /// consumed (icmp_global_consume).</summary>
    internal static bool XrlimAllow(NetStack stack, Namespace ns, Device outDev, uint daddr, bool applyRateLimit)
    {
        if (!applyRateLimit) return true;
        if (!outDev.Kind.IsLoopback && !PeerAllow(stack, ns, daddr, ns.IcmpRateLimitMs, 6L * ns.IcmpRateLimitMs))
        {
            ns.Counters.IcmpRateLimited++;
            ns.Mib[SnmpCounter.IcmpOutRateLimitHost]++;
            return false;
        }
        ns.IcmpGlobal.Consume();
        return true;
    }

    /// <summary>inet_peer_xrlim_allow on the namespace's peer entry for <paramref name="address"/> (ip_error and
    /// icmp_send share it): tokens in ms, a new peer starts with a minute's worth, capped at the burst.</summary>
    private static bool PeerAllow(NetStack stack, Namespace ns, uint address, long costMs, long burstMs)
    {
        long now = stack.Now / 1_000_000;
        ref var p = ref InetPeer.Get(stack, ns, address, now);
        long tokens = p.RateTokens + (now - p.RateLastMs);
        p.RateLastMs = now;
        if (tokens > burstMs) tokens = burstMs;
        bool ok = tokens >= costMs;
        if (ok) tokens -= costMs;
        p.RateTokens = tokens;
        return ok;
    }

    /// <summary>ip_rt_redirect_number, ip_rt_redirect_load (HZ/50) and ip_rt_redirect_silence ((HZ/50) &lt;&lt; 10), in ms.</summary>
    private const int RedirectNumber = 9;
    private const long RedirectLoadMs = 20, RedirectSilenceMs = 20L << 10;

    /// <summary>
    /// ip_rt_send_redirect for a forwarded datagram (data at its IP header, TTL already decreased) that leaves by the
    /// device it came in on (<paramref name="dev"/>) towards <paramref name="gateway"/>: a host redirect to its source
    /// while send_redirects holds on the device, paced per source peer: after a redirect the next waits
    /// ip_rt_redirect_load doubled per redirect sent, at most ip_rt_redirect_number of them until the source has been
    /// quiet for ip_rt_redirect_silence. log_martians only logs here (the kernel's warning), so it changes nothing.
    /// </summary>
    public static void SendRedirect(NetStack stack, Device dev, Skb skb, uint gateway)
    {
        var ns = dev.Namespace;
        if (!ns.SendRedirects(dev)) return;
        long now = stack.Now / 1_000_000;
        uint src = BinaryPrimitives.ReadUInt32BigEndian(NetStack.L3(skb)[12..]);
        ref var p = ref InetPeer.Get(stack, ns, src, now);
        if (now > p.RateLastMs + RedirectSilenceMs)
        {
            p.RateTokens = 0;
            p.NRedirects = 0;
        }
        if (p.NRedirects >= RedirectNumber)
        {
            p.RateLastMs = now;
            return;
        }
        if (p.NRedirects == 0 || now > p.RateLastMs + (RedirectLoadMs << p.NRedirects))
        {
            p.RateLastMs = now;
            p.NRedirects++;
            Send(stack, ns, skb, dev, IcmpView.Redirect, 1, gateway, localDestination: false);
        }
    }
}

/// <summary>struct inet_peer's rate state for one address of a namespace: the ICMP token bucket (rate_tokens, rate_last,
/// shared by icmp_send and ip_error) and ip_rt_send_redirect's count (n_redirects; it reads and moves rate_last too).
/// Times in ms.</summary>
internal struct InetPeer
{
    public long RateTokens, RateLastMs;
    public int NRedirects;

    /// <summary>inet_getpeer_v4: the entry, made on first use with rate_last a minute back (inet_peer's creation).</summary>
    public static ref InetPeer Get(NetStack stack, Namespace ns, uint address, long nowMs)
    {
        ref var p = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(stack.InetPeers, (ns, address), out bool exists);
        if (!exists) p.RateLastMs = nowMs - 60_000;
        return ref p;
    }
}

/// <summary>
/// The namespace's ICMP token bucket (icmp_global_allow / icmp_global_consume, per netns since 6.12): credit refills at
/// icmp_msgs_per_sec, at most icmp_msgs_burst, only once 20 ms (HZ/50) have passed since the last refill, and a refill
/// lets the message go even when it leaves no credit; each message sent then takes 0, 1 or 2 credits at random (the
/// kernel's get_random_u32_below(3)). Softnet draws them from a fixed-seed generator so a replay repeats itself.
/// </summary>
internal struct IcmpGlobalBucket
{
    private const int Hz = Icmpv6.Hz;
    private int _credit;
    private long _stamp;
    private bool _stamped;
    private uint _rng;

    public static IcmpGlobalBucket Create() => new() { _rng = 0x9E3779B9u };

    /// <summary>icmp_global_allow at <paramref name="nowNs"/>.</summary>
    public bool Allow(long nowNs, int perSec, int burst)
    {
        if (_credit > 0) return true;
        long now = nowNs / (1_000_000_000L / Hz);
        // The stamp starts at 0 and jiffies far from it: the first refill is a whole second's.
        long delta = _stamped ? Math.Min((uint)(now - _stamp), Hz) : Hz;
        if (delta < Hz / 50) return false;
        long incr = (long)perSec * delta / Hz;
        if (incr == 0) return false;
        _stamp = now;
        _stamped = true;
        _credit = (int)Math.Min(_credit + incr, burst);
        return true;
    }

    /// <summary>icmp_global_consume: 0..2 credits (the credit may go negative).</summary>
    public void Consume()
    {
        // xorshift32, reduced to [0, 3) as get_random_u32_below reduces its draw.
        uint x = _rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        _rng = x;
        _credit -= (int)(((ulong)x * 3) >> 32);
    }
}
