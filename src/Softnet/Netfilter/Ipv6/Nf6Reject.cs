using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Netfilter;

/// <summary>
/// The answers of ip6tables REJECT (net/ipv6/netfilter/nf_reject_ipv6.c): nf_send_unreach6 (an ICMPv6 destination
/// unreachable through icmpv6_send) and nf_send_reset6 (a TCP RST), built here and handed to ip6_local_out
/// (<see cref="Ip.Ipv6Output.LocalOut"/>). The builders write into a span, so tests can check the bytes.
/// </summary>
public static class Nf6Reject
{
    /// <summary>IPV6_MIN_MTU: an ICMPv6 error quotes as much of the packet as keeps it within 1280 bytes.</summary>
    public const int MinMtu = 1280;
    /// <summary>The hop limit of both answers: ip6_dst_hoplimit of a route without its own, the hop_limit sysctl (64).</summary>
    public const byte HopLimit = 64;
    public const int TcpResetLength = Ipv6View.HeaderLength + 20;

    /// <summary>REJECT's answer for the packet the rule dropped (<paramref name="skb"/>, data at its IPv6 header; not consumed).</summary>
    public static void Send(NetStack stack, Namespace ns, NetfilterTables t, HookPoint hook, Skb skb, Device? inDev, ref PacketContext ctx)
    {
        var pkt = NetStack.L3(skb);
        if (pkt.Length > ctx.Length) pkt = pkt[..ctx.Length];
        bool csumOk = skb.IpSummed is CsumState.Unnecessary or CsumState.Partial || skb.IsGso;
        if (ctx.Reject == RejectWith.TcpReset)
        {
            var r = stack.NewFrame(TcpResetLength);
            if (r == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
            if (!WriteTcpReset(r.LinearData, pkt, csumOk)) { r.Free(); return; }
            r.ResetNetworkHeader();
            ns.Counters.TcpResetsSent++;
            // nf_ct_attach: the reset travels as part of the original's connection, in the other direction.
            r.Conntrack = ctx.Ct;
            r.CtInfo = (byte)(ctx.Ct == null ? CtInfo.None
                : ctx.CtInfo is CtInfo.EstablishedReply or CtInfo.RelatedReply ? CtInfo.Related : CtInfo.RelatedReply);
            Ip.Ipv6Output.LocalOut(stack, ns, r);
            return;
        }
        if (skb.PktType != PacketType.Host) return;
        int len = Math.Min(pkt.Length, MinMtu - Ipv6View.HeaderLength - Icmpv6View.HeaderLength) + Ipv6View.HeaderLength + Icmpv6View.HeaderLength;
        var e = stack.NewFrame(len);
        if (e == null) { ns.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        int n = WriteUnreach(e.LinearData, pkt, csumOk, ctx.Reject, t.Host6, inDev?.Name);
        if (n == 0) { e.Free(); return; }
        if (n < len) e.Trim(n);
        e.ResetNetworkHeader();
        ns.Counters.IcmpErrorsSent++;
        // nf_send_unreach6 → icmpv6_send: Ip6OutRequests, Icmp6OutMsgs, Icmp6OutDestUnreachs.
        Ip.Icmpv6.SendBuilt(stack, ns, e, 1);
    }

    /// <summary>reject6_csum_ok: a packet whose transport checksum is wrong gets no answer (a checksum already verified
    /// is trusted; UDP without a checksum, SCTP, AH, ESP, UDP-Lite and DCCP are not checked); nor does a fragment
    /// other than the first.</summary>
    public static bool Reject6ChecksumOk(ReadOnlySpan<byte> pkt, bool verified)
    {
        if (verified) return true;
        if (!Ipv6View.TryParseHeader(pkt, out var ip)) return false;
        var ext = new Ipv6ExtensionHeaderReader(ip.Payload, ip.NextHeader);
        bool nonFirst = false;
        while (ext.MoveNext())
            if (ext.Type == IpProtocols.Fragment && (ext.Data[2] << 8 | ext.Data[3] & 0xF8) != 0) nonFirst = true;
        int thoff = Ipv6View.HeaderLength + ext.NextOffset;
        // ipv6_skip_exthdr: no upper-layer header behind "no next header" (59).
        if (ext.Error != DropReason.None || nonFirst || thoff >= pkt.Length || ext.NextHeader == 59) return false;
        byte proto = ext.NextHeader;
        var l4 = pkt[thoff..];
        if (proto is 51 or 50 or 132 or 136 or 33) return true;
        if (proto == IpProtocols.Udp && (l4.Length < 8 || BinaryPrimitives.ReadUInt16BigEndian(l4[6..]) == 0)) return true;
        uint seed = Checksum.PseudoHeaderV6(pkt[8..24], pkt[24..40], proto, l4.Length);
        return Checksum.Verify(l4, seed);
    }

    /// <summary>
    /// nf_send_unreach6 for <paramref name="orig"/> (the packet REJECT dropped): reject6_csum_ok, then icmp6_send's
    /// source choice (the packet's destination when it is the host's, else the source <paramref name="host"/> selects
    /// towards the packet's source on <paramref name="routeBackDevice"/>) and message. The length written, 0 for none.
    /// </summary>
    public static int WriteUnreach(Span<byte> dst, ReadOnlySpan<byte> orig, bool verified, RejectWith with, IIp6NetfilterHost host, string? routeBackDevice)
    {
        if (!Reject6ChecksumOk(orig, verified) || !Ipv6View.TryParseHeader(orig, out var o)) return 0;
        var osrc = Ip6Addr.Read(o.Source);
        var odst = Ip6Addr.Read(o.Destination);
        UInt128 saddr = odst;
        if (!host.IsLocal(odst) && !host.TrySelectSource(routeBackDevice, osrc, out saddr)) return 0;
        byte code = Xtables.Reject6Target.Code(with);
        int n = WriteUnreach(dst, orig, code, saddr);
        // nf_send_unreach6 sends through icmpv6_send: the namespace's automatic flow label.
        if (n > 0 && host is Link.Namespace ns)
            Ip.Ipv6FlowLabel.Write(dst, Ip.Ipv6FlowLabel.Make(ns, saddr, osrc, IpProtocols.Icmpv6, Ip.Ipv6FlowLabel.IcmpPorts(Icmpv6View.DestinationUnreachable, code)));
        return n;
    }

    /// <summary>
    /// icmp6_send's checks and message for a destination unreachable about <paramref name="orig"/>: no error about an
    /// ICMPv6 error or a redirect, none to a multicast or unspecified source nor about a multicast destination. Writes
    /// the IPv6 header (traffic class and flow label 0, hop limit 64), the ICMPv6 header and the quoted packet into
    /// <paramref name="dst"/>; returns the length written, 0 when no error may be sent.
    /// </summary>
    public static int WriteUnreach(Span<byte> dst, ReadOnlySpan<byte> orig, byte code, UInt128 saddr)
    {
        if (!Ipv6View.TryParseHeader(orig, out var o)) return 0;
        var osrc = Ip6Addr.Read(o.Source);
        var odst = Ip6Addr.Read(o.Destination);
        if ((byte)(odst >> 120) == 0xFF) return 0;
        if (osrc == UInt128.Zero || (byte)(osrc >> 120) == 0xFF) return 0;
        // is_ineligible: never an error about an ICMPv6 error (or a redirect), nor about an unreadable one.
        var ext = new Ipv6ExtensionHeaderReader(o.Payload, o.NextHeader);
        bool nonFirst = false;
        while (ext.MoveNext())
            if (ext.Type == IpProtocols.Fragment && (ext.Data[2] << 8 | ext.Data[3] & 0xF8) != 0) nonFirst = true;
        if (ext.NextHeader == IpProtocols.Icmpv6 && !nonFirst)
        {
            int at = Ipv6View.HeaderLength + ext.NextOffset;
            if (at >= orig.Length) return 0;
            byte type = orig[at];
            if (type < 128 || type == 137) return 0;
        }
        int quote = Math.Min(orig.Length, MinMtu - Ipv6View.HeaderLength - Icmpv6View.HeaderLength);
        int plen = Icmpv6View.HeaderLength + quote;
        if (dst.Length < Ipv6View.HeaderLength + plen) return 0;
        Span<byte> s = stackalloc byte[16];
        Ip6Addr.Write(s, saddr);
        Ipv6View.Write(dst, plen, IpProtocols.Icmpv6, HopLimit, s, o.Source);
        var icmp = dst.Slice(Ipv6View.HeaderLength, plen);
        icmp[0] = Icmpv6View.DestinationUnreachable;
        icmp[1] = code;
        icmp[2] = icmp[3] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(icmp[4..], 0);
        orig[..quote].CopyTo(icmp[Icmpv6View.HeaderLength..]);
        uint seed = Checksum.PseudoHeaderV6(dst[8..24], dst[24..40], IpProtocols.Icmpv6, plen);
        BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp, seed));
        return Ipv6View.HeaderLength + plen;
    }

    /// <summary>
    /// nf_send_reset6: both addresses unicast, a TCP segment that is not a fragment, not a RST, with a good checksum
    /// (unless <paramref name="verified"/>). The RST goes back with the ports swapped; after an ACK its sequence is that
    /// ACK, else it ACKs the segment (seq + SYN + FIN + payload). IPv6 header: traffic class and flow label 0, hop limit 64.
    /// </summary>
    public static bool WriteTcpReset(Span<byte> dst, ReadOnlySpan<byte> orig, bool verified)
    {
        if (dst.Length < TcpResetLength || !Ipv6View.TryParseHeader(orig, out var o)) return false;
        var osrc = Ip6Addr.Read(o.Source);
        var odst = Ip6Addr.Read(o.Destination);
        if (osrc == UInt128.Zero || odst == UInt128.Zero || (byte)(osrc >> 120) == 0xFF || (byte)(odst >> 120) == 0xFF) return false;
        var ext = new Ipv6ExtensionHeaderReader(o.Payload, o.NextHeader);
        while (ext.MoveNext())
            if (ext.Type == IpProtocols.Fragment && (ext.Data[2] << 8 | ext.Data[3] & 0xF8) != 0) return false;
        if (ext.Error != DropReason.None || ext.NextHeader != IpProtocols.Tcp) return false;
        int thoff = Ipv6View.HeaderLength + ext.NextOffset;
        if (thoff > orig.Length) return false;
        var tcpBytes = orig[thoff..];
        if (!TcpView.TryParse(tcpBytes, out var tcp, out _)) return false;
        if ((tcp.Flags & TcpFlags.Rst) != 0) return false;
        if (!verified)
        {
            uint seed = Checksum.PseudoHeaderV6(orig[8..24], orig[24..40], IpProtocols.Tcp, tcpBytes.Length);
            if (!Checksum.Verify(tcpBytes, seed)) return false;
        }
        Ipv6View.Write(dst, 20, IpProtocols.Tcp, HopLimit, o.Destination, o.Source);
        var h = dst.Slice(Ipv6View.HeaderLength, 20);
        h.Clear();
        BinaryPrimitives.WriteUInt16BigEndian(h, tcp.DestinationPort);
        BinaryPrimitives.WriteUInt16BigEndian(h[2..], tcp.SourcePort);
        byte flags = 0x04;
        if ((tcp.Flags & TcpFlags.Ack) != 0) BinaryPrimitives.WriteUInt32BigEndian(h[4..], tcp.AckNumber);
        else
        {
            int syn = (tcp.Flags & TcpFlags.Syn) != 0 ? 1 : 0, fin = (tcp.Flags & TcpFlags.Fin) != 0 ? 1 : 0;
            uint ack = tcp.SequenceNumber + (uint)(syn + fin + tcpBytes.Length - tcp.HeaderLength);
            BinaryPrimitives.WriteUInt32BigEndian(h[8..], ack);
            flags |= 0x10;
        }
        h[12] = 5 << 4;
        h[13] = flags;
        uint s = Checksum.PseudoHeaderV6(dst[8..24], dst[24..40], IpProtocols.Tcp, 20);
        BinaryPrimitives.WriteUInt16BigEndian(h[16..], Checksum.Compute(h, s));
        return true;
    }
}
