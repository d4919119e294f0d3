using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Neigh;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Ip;

/// <summary>
/// ICMPv6 (net/ipv6/icmp.c): icmpv6_rcv for what is delivered here (checksum, echo replies, errors handed to the
/// quoted protocol, neighbour discovery), and icmp6_send for the errors this host sends, with the rules on what not
/// to answer and icmpv6_xrlim_allow's per-destination rate limit.
/// </summary>
public static class Icmpv6
{
    /// <summary>The kernel's HZ here (jiffies of 4 ms): the rate limit's token bucket counts in them.</summary>
    private const long JiffyNs = 4_000_000;
    internal const int Hz = 250;

    /// <summary>IPV6_MIN_MTU: an error quotes at most this much less the two headers.</summary>
    public const int MinMtu = 1280;

    /// <summary>
    /// icmp6_send about <paramref name="original"/> (data at its IPv6 header; not consumed): nothing to a multicast
    /// destination or a frame not for this host (packet too big and parameter problem 2 on an option of type 10xxxxxx
    /// excepted), nothing from an unspecified or multicast source, nothing about an ICMPv6 error; rate limited per
    /// destination for the types of icmpv6_ratemask (all but packet too big and the informational ones); source the
    /// original destination when it is ours, else chosen on the arrival device.
    /// </summary>
    public static void Send(NetStack stack, Namespace ns, Skb original, Device inDev, byte type, byte code, uint info)
    {
        var pkt = stack.Linearize(original);
        if (pkt.Length < 40) return;
        var osrc = Ipv6.Read(pkt[8..]);
        var odst = Ipv6.Read(pkt[24..]);
        UInt128 saddr = 0;
        if (ns.FindAddress6(odst) is { } own && (own.Device == inDev || Ipv6.Scope(odst) > 2)) saddr = odst;
        else if (ns.Routing6.LookupLocal(odst) is { Type: RouteKind.Anycast } ac && ac.Device == inDev) saddr = odst;
        if (Ipv6.IsMulticast(odst) || original.PktType != PacketType.Host)
        {
            bool unrecognisedOption = type == Icmpv6View.ParameterProblem && code == 2 && info < pkt.Length && (pkt[(int)info] & 0xC0) == 0x80;
            if (type != Icmpv6View.PacketTooBig && !unrecognisedOption) return;
            saddr = 0;
        }
        if (osrc == 0 || Ipv6.IsMulticast(osrc)) return;
        if (IsIneligible(pkt)) return;
        // icmpv6_global_allow: the namespace's ICMP bucket (shared with IPv4), not for what came in on a loopback device.
        bool applyRateLimit = false;
        if (!inDev.Kind.IsLoopback && !GlobalAllow(stack, ns, type, out applyRateLimit)) return;
        var back = ns.Routing6.Lookup(osrc);
        if (!Allow(stack, ns, back, osrc, applyRateLimit)) return;
        if (back == null || back.Type is not (RouteKind.Unicast or RouteKind.Local) || back.Device == null) return;
        if (saddr == 0) saddr = ns.SelectAddress6(inDev, osrc);
        if (saddr == 0) return;
        int quoted = Math.Min(pkt.Length, MinMtu - 40 - 8);
        var skb = stack.NewFrame(40 + 8 + quoted);
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); ns.Mib[SnmpCounter.Icmp6OutErrors]++; return; }
        var p = skb.LinearData;
        Ipv6View.Write(p, 8 + quoted, IpProtocols.Icmpv6, (byte)ns.HopLimit6(back.Device), Span(saddr, stackalloc byte[16]), pkt[8..24],
            flowLabel: Ipv6FlowLabel.Make(ns, saddr, osrc, IpProtocols.Icmpv6, Ipv6FlowLabel.IcmpPorts(type, code)));
        var m = p[40..];
        m[0] = type;
        m[1] = code;
        m[2] = m[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(m[4..], info);
        pkt[..quoted].CopyTo(m[8..]);
        Finish(skb);
        skb.ResetNetworkHeader();
        ns.Counters.IcmpErrorsSent++;
        SendSkb(stack, ns, skb, type, inDev);
    }

    /// <summary>The 16 bytes of <paramref name="a"/> in <paramref name="buf"/>.</summary>
    internal static ReadOnlySpan<byte> Span(UInt128 a, Span<byte> buf)
    {
        Ipv6.Write(buf, a);
        return buf;
    }

    /// <summary>The ICMPv6 checksum of a message this host built (data at its IPv6 header, no extension headers).</summary>
    internal static void Finish(Skb skb)
    {
        var p = skb.LinearData;
        var m = p[40..];
        m[2] = m[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(m[2..], Checksum.Compute(m, Checksum.PseudoHeaderV6(p[8..24], p[24..40], IpProtocols.Icmpv6, m.Length)));
    }

    /// <summary>__ip6_make_skb's counters (OutRequests, Icmp6OutMsgs and the type's) and ip6_send_skb →
    /// ip6_local_out, out the arrival device for a link-local destination (flowi6_oif).</summary>
    private static void SendSkb(NetStack stack, Namespace ns, Skb skb, byte type, Device? oif)
    {
        ns.Mib[SnmpCounter.Ip6OutRequests]++;
        OutCount(ns.Mib, type);
        Ipv6Output.LocalOut(stack, ns, skb, oif, sendSkb: true);
    }

    /// <summary>An ICMPv6 error another part built (ip6t REJECT's nf_send_unreach6 goes through icmpv6_send): counted
    /// and sent as <see cref="SendSkb"/> does.</summary>
    internal static void SendBuilt(NetStack stack, Namespace ns, Skb skb, byte type) => SendSkb(stack, ns, skb, type, null);

    /// <summary>is_ineligible: an ICMPv6 error (or a datagram too short to say) is never answered.</summary>
    private static bool IsIneligible(ReadOnlySpan<byte> pkt)
    {
        if (!Ipv6ExtensionHeaderReader.TryWalk(pkt[40..], pkt[6], out var info, out _)) return false;
        if (info.UpperProtocol != IpProtocols.Icmpv6) return false;
        int at = 40 + info.UpperOffset;
        if (at >= pkt.Length) return !info.IsNonFirstFragment;
        return (pkt[at] & 0x80) == 0;
    }

    /// <summary>icmpv6_global_allow: a type in net.ipv6.icmp.ratemask needs the namespace bucket (icmp_global_allow,
    /// the one icmp_msgs_per_sec and icmp_msgs_burst shape); refused, it counts IPv4's OutRateLimitGlobal as the kernel
    /// does.</summary>
    private static bool GlobalAllow(NetStack stack, Namespace ns, byte type, out bool applyRateLimit)
    {
        applyRateLimit = false;
        if (!ns.Icmp6RateLimited(type)) return true;
        if (ns.IcmpGlobal.Allow(stack.Now, ns.IcmpMsgsPerSec, ns.IcmpMsgsBurst)) { applyRateLimit = true; return true; }
        ns.Mib[SnmpCounter.IcmpOutRateLimitGlobal]++;
        return false;
    }

    /// <summary>icmpv6_xrlim_allow where the global check applied the limit: the route back decides (none: OutNoRoutes;
    /// through lo: allowed) and the destination's inet_peer bucket pays ratelimit, less for wider routes (shifted right
    /// by (128 - prefix length) / 32), with a burst of six. A refusal is RateLimitHost; a message let go consumes the
    /// bucket's credits.</summary>
    private static bool Allow(NetStack stack, Namespace ns, Route6? back, UInt128 dst, bool applyRateLimit)
    {
        if (!applyRateLimit) return true;
        bool ok;
        if (back == null || back.Type is not (RouteKind.Unicast or RouteKind.Local))
        {
            ns.Mib[SnmpCounter.Ip6OutNoRoutes]++;
            ok = false;
        }
        else if (back.Type == RouteKind.Local || back.Device is { Kind.IsLoopback: true }) ok = true;
        else
        {
            long tmo = ((long)ns.Icmp6RateLimitMs * Hz + 999) / 1000;
            if (back.PrefixLength < 128) tmo >>= (128 - back.PrefixLength) >> 5;
            ok = PeerAllow(stack, ns, dst, tmo);
        }
        if (!ok) { ns.Counters.IcmpRateLimited++; ns.Mib[SnmpCounter.Icmp6OutRateLimitHost]++; }
        else ns.IcmpGlobal.Consume();
        return ok;
    }

    /// <summary>inet_peer_xrlim_allow on the IPv6 peer of <paramref name="address"/>, in jiffies: a new peer has had a
    /// minute to fill, capped at six timeouts.</summary>
    internal static bool PeerAllow(NetStack stack, Namespace ns, UInt128 address, long timeout)
    {
        long now = stack.Now / JiffyNs;
        var (tokens, last) = stack.InetPeers6.TryGetValue((ns, address), out var p) ? p : (0L, now - 60L * Hz);
        tokens += now - last;
        if (tokens > 6 * timeout) tokens = 6 * timeout;
        bool ok = tokens >= timeout;
        if (ok) tokens -= timeout;
        stack.InetPeers6[(ns, address)] = (tokens, now);
        return ok;
    }

    /// <summary>ICMP6MSGOUT_INC_STATS and ICMP6_MIB_OUTMSGS.</summary>
    public static void OutCount(SnmpMib mib, byte type)
    {
        mib[SnmpCounter.Icmp6OutMsgs]++;
        if (TypeCounter(type, outgoing: true) is { } c) mib[c]++;
    }

    /// <summary>The Icmp6 In/Out counter /proc/net/snmp6 prints by name for a message type, or null.</summary>
    public static SnmpCounter? TypeCounter(byte type, bool outgoing)
    {
        SnmpCounter first = outgoing ? SnmpCounter.Icmp6OutDestUnreachs : SnmpCounter.Icmp6InDestUnreachs;
        int i = type switch
        {
            1 => 0, 2 => 1, 3 => 2, 4 => 3, 128 => 4, 129 => 5, 130 => 6, 131 => 7, 132 => 8,
            133 => 9, 134 => 10, 135 => 11, 136 => 12, 137 => 13, 143 => 14, _ => -1,
        };
        return i < 0 ? null : first + i;
    }

    /// <summary>icmpv6_rcv on a delivered message (transport header at <paramref name="off"/>); the skb is consumed.</summary>
    public static void Receive(NetStack stack, Device dev, Skb skb, int off, bool anycast)
    {
        var ns = dev.Namespace;
        var mib = ns.Mib;
        mib[SnmpCounter.Icmp6InMsgs]++;
        var pkt = stack.Linearize(skb);
        var msg = pkt[off..];
        if (!Ipv4Input.ChecksumUnnecessary(skb)
            && !Checksum.Verify(msg, Checksum.PseudoHeaderV6(pkt[8..24], pkt[24..40], IpProtocols.Icmpv6, msg.Length)))
        {
            mib[SnmpCounter.Icmp6InCsumErrors]++;
            mib[SnmpCounter.Icmp6InErrors]++;
            Transport.InetProtocol.DropDelivered(ns, skb, DropReason.Icmpv6CsumError);
            return;
        }
        if (msg.Length < 8)
        {
            mib[SnmpCounter.Icmp6InErrors]++;
            Transport.InetProtocol.DropDelivered(ns, skb, DropReason.Icmpv6Truncated);
            return;
        }
        byte type = msg[0];
        if (TypeCounter(type, outgoing: false) is { } perType) mib[perType]++;
        switch (type)
        {
            case Icmpv6View.EchoRequest:
                ns.Counters.EchoRequests++;
                if (!ns.Icmp6EchoIgnoreAll) Echo(stack, dev, skb, pkt, off, anycast);
                skb.Free();
                return;
            case Icmpv6View.RouterSolicitation or Icmpv6View.RouterAdvertisement or Icmpv6View.NeighborSolicitation
                or Icmpv6View.NeighborAdvertisement or 137:
                Ndisc.Receive(stack, dev, skb, off);
                return;
            case Icmpv6View.PacketTooBig or Icmpv6View.DestinationUnreachable or Icmpv6View.TimeExceeded or Icmpv6View.ParameterProblem:
                if (!Notify(ns, msg[0], msg[1], msg[8..])) mib[SnmpCounter.Icmp6InErrors]++;
                skb.Free();
                return;
        }
        // Informational types without a handler here are ignored; an error of unknown type goes to icmpv6_notify.
        if ((type & 0x80) == 0 && !Notify(ns, msg[0], msg[1], msg[8..])) mib[SnmpCounter.Icmp6InErrors]++;
        skb.Free();
    }

    /// <summary>icmpv6_notify: the quoted header (40 bytes) and 8 bytes past its extension headers must be there; the
    /// quoted protocol's error handler then looks for the socket: udpv6_err and tcp_v6_err count InErrors (false here)
    /// when there is none.</summary>
    private static bool Notify(Namespace ns, byte type, byte code, ReadOnlySpan<byte> quoted)
    {
        if (quoted.Length < 40) return false;
        byte nh = quoted[6];
        int inner = 40;
        if (Ipv6ExtensionHeaderReader.IsExtensionHeader(nh))
        {
            if (!Ipv6ExtensionHeaderReader.TryWalk(quoted[40..], nh, out var info, out _)) return false;
            nh = info.UpperProtocol;
            inner = 40 + info.UpperOffset;
        }
        if (quoted.Length < inner + 8) return false;
        if (nh == IpProtocols.Udp)
        {
            var saddr = Ipv6.Read(quoted[8..]);
            ushort sport = BinaryPrimitives.ReadUInt16BigEndian(quoted[inner..]);
            return !ns.Sockets.IsEmpty && ns.Sockets.LookupUdp6(saddr, sport) != null;
        }
        if (nh != IpProtocols.Tcp) return true;
        // tcp_v6_err: the connection or request whose segment is quoted.
        if (ns.Sockets.IsEmpty) return false;
        var l4 = quoted[inner..];
        if (ns.Sockets.LookupEstablished6(Ipv6.Read(quoted[8..]), BinaryPrimitives.ReadUInt16BigEndian(l4), Ipv6.Read(quoted[24..]),
                BinaryPrimitives.ReadUInt16BigEndian(l4[2..])) is not { } sk)
            return false;
        sk.IcmpError6(type, code, BinaryPrimitives.ReadUInt32BigEndian(l4[4..]));
        return true;
    }

    /// <summary>icmpv6_echo_reply: the request's identifier, sequence and data under type 129, from the address it was
    /// sent to when that is a unicast address of ours (else chosen for the route back), with the request's traffic
    /// class, flow label 0, the output device's hop limit, out the arrival device. Rate limited only where ratemask
    /// names type 129.</summary>
    private static void Echo(NetStack stack, Device dev, Skb request, ReadOnlySpan<byte> pkt, int off, bool anycast)
    {
        var ns = dev.Namespace;
        var src = Ipv6.Read(pkt[8..]);
        var dst = Ipv6.Read(pkt[24..]);
        var message = pkt[off..];
        UInt128 saddr = !Ipv6.IsMulticast(dst) && !anycast ? dst : 0;
        var back = Ipv6.IsLinkLocal(src) ? null : ns.Routing6.Lookup(src);
        var outDev = Ipv6.IsLinkLocal(src) ? dev : back?.Device;
        if (!GlobalAllow(stack, ns, Icmpv6View.EchoReply, out bool applyRateLimit)) return;
        if (outDev == null || (back != null && back.Type is not (RouteKind.Unicast or RouteKind.Local)))
        {
            // ip6_dst_lookup_tail: no route at all (ip6_null_entry, ENETUNREACH) is OutNoRoutes.
            if (back == null) ns.Mib[SnmpCounter.Ip6OutNoRoutes]++;
            return;
        }
        if (applyRateLimit && !Allow(stack, ns, back ?? ns.Routing6.Lookup(src), src, true)) return;
        if (saddr == 0) saddr = ns.SelectAddress6(outDev, src);
        if (saddr == 0) return;
        var skb = stack.NewFrame(40 + message.Length);
        if (skb == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); ns.Mib[SnmpCounter.Icmp6OutErrors]++; return; }
        var p = skb.LinearData;
        byte tclass = (byte)(BinaryPrimitives.ReadUInt16BigEndian(pkt) >> 4);
        Ipv6View.Write(p, message.Length, IpProtocols.Icmpv6, (byte)ns.HopLimit6(outDev), Span(saddr, stackalloc byte[16]), pkt[8..24], tclass,
            Ipv6FlowLabel.Make(ns, saddr, src, IpProtocols.Icmpv6, Ipv6FlowLabel.IcmpPorts(Icmpv6View.EchoReply, 0)));
        message.CopyTo(p[40..]);
        p[40] = Icmpv6View.EchoReply;
        p[41] = 0;
        Finish(skb);
        skb.ResetNetworkHeader();
        ns.Counters.EchoReplies++;
        SendSkb(stack, ns, skb, Icmpv6View.EchoReply, dev);
    }
}
