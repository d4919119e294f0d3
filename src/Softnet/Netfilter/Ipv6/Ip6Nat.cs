using Softnet.Netfilter.Conntrack;
using System.Buffers.Binary;
using System.Numerics;
using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>nf_nat_range2 for IPv6: an address range (128-bit, host order of the big-endian value) and a port range.</summary>
public struct Nat6Range
{
    public NatRangeFlags Flags;
    public UInt128 MinIp, MaxIp;
    public ushort MinPort, MaxPort;
}

/// <summary>
/// NAT66 (nf_nat_core.c, nf_nat_proto.c for NFPROTO_IPV6): get_unique_tuple (the original tuple when it is in range and
/// free, else find_best_ips_proto's jhash2 choice and nf_nat_l4proto_unique_tuple's port search), the reply-tuple
/// rewrite, and the per-packet manipulation with incremental checksum updates (the transport checksums cover the IPv6
/// pseudo-header, ICMPv6's too). ICMPv6 errors RELATED to a NATed connection get nf_nat_icmpv6_reply_translation.
/// </summary>
public sealed class Ip6Nat
{
    private readonly Ip6Conntrack _table;
    private readonly Func<uint> _random;
    private long _now;
    // nf_nat_bysource: the connections that took a source binding, per original source (address, port or id, protocol,
    // zone), newest last; find_appropriate_src gives a new connection from that source the mapping an earlier one got.
    private readonly Dictionary<(UInt128 Addr, ushort Port, byte Proto, ushort Zone), List<Connection>> _bySource = new();
    private readonly Stack<List<Connection>> _lists = new();

    public Ip6Nat(Ip6Conntrack table, Func<uint> random)
    {
        _table = table;
        _random = random;
        table.Nat = this;
    }

    internal void SetClock(long nowNs) => _now = nowNs;

    /// <summary>nf_nat_used_tuple: another confirmed connection already answers to the reply of <paramref name="t"/>.</summary>
    private bool Used(in Conn6Tuple t, Connection ct)
    {
        t.TryInvert(out var reply);
        reply.Zone = ct.V6!.Reply.Zone;
        return _table.Taken(reply, ct, _now);
    }

    private static bool L4InRange(in Conn6Tuple t, NatManip m, ushort min, ushort max)
    {
        if (t.Protocol is not (IpProtocols.Icmpv6 or 6 or 17 or 132 or 136)) return true;
        ushort key = t.Protocol == IpProtocols.Icmpv6 ? t.SrcPort : m == NatManip.Src ? t.SrcPort : t.DstPort;
        return key >= min && key <= max;
    }

    private static bool InRange(in Conn6Tuple t, in Nat6Range r)
    {
        if ((r.Flags & NatRangeFlags.MapIps) != 0 && (t.Src < r.MinIp || t.Src > r.MaxIp)) return false;
        return (r.Flags & NatRangeFlags.ProtoSpecified) == 0 || L4InRange(t, NatManip.Src, r.MinPort, r.MaxPort);
    }

    /// <summary>nf_nat_setup_info: choose a unique tuple in the range, rewrite the reply tuple, set the NAT bits.</summary>
    public bool SetupInfo(Connection ct, in Nat6Range range, NatManip manip)
    {
        if (ct.V6 is not { } v6) return false;
        if (ct.Confirmed || NatEngine.Initialized(ct, manip)) return true;
        if (!v6.Reply.TryInvert(out var cur)) return false;
        var t = UniqueTuple(cur, range, ct, manip);
        if (!t.Equals(cur))
        {
            if (!t.TryInvert(out var reply)) return false;
            v6.Reply = reply;
            ct.Reply = new ConnTuple(0, 0, reply.Protocol, reply.SrcPort, reply.DstPort) { Zone = reply.Zone };
            ct.Status |= manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
        }
        if (manip == NatManip.Src) LinkBySource(ct);
        ct.Status |= manip == NatManip.Src ? CtStatus.SrcNatDone : CtStatus.DstNatDone;
        return true;
    }

    /// <summary>nf_nat_alloc_null_binding: a binding to the current address, which still moves a clashing port.</summary>
    public bool AllocNullBinding(Connection ct, NatManip manip)
    {
        if (ct.V6 is not { } v6) return false;
        var ip = manip == NatManip.Src ? v6.Reply.Dst : v6.Reply.Src;
        var r = new Nat6Range { Flags = NatRangeFlags.MapIps, MinIp = ip, MaxIp = ip };
        return SetupInfo(ct, r, manip);
    }

    private static (UInt128, ushort, byte, ushort) SourceKey(in Conn6Tuple t, ushort zone) => (t.Src, t.SrcPort, t.Protocol, zone);

    /// <summary>The entry joins its source's bysource list (nf_nat_setup_info for a source manip).</summary>
    private void LinkBySource(Connection ct)
    {
        if (ct.InBySource) return;
        var key = SourceKey(ct.V6!.Original, ct.ZoneId);
        if (!_bySource.TryGetValue(key, out var list)) _bySource[key] = list = _lists.TryPop(out var l) ? l : new List<Connection>(1);
        list.Add(ct);
        ct.InBySource = true;
    }

    /// <summary>nf_nat_cleanup_conntrack: the entry leaves its bysource list.</summary>
    internal void Forget(Connection ct)
    {
        if (!ct.InBySource || ct.V6 is not { } v6) return;
        ct.InBySource = false;
        var key = SourceKey(v6.Original, ct.ZoneId);
        if (!_bySource.TryGetValue(key, out var list)) return;
        list.Remove(ct);
        if (list.Count == 0)
        {
            _bySource.Remove(key);
            _lists.Push(list);
        }
    }

    /// <summary>find_appropriate_src: the newest connection from the same source (protocol, address, port) whose
    /// mapping, with this connection's destination, is in the range.</summary>
    private bool FindAppropriateSource(in Conn6Tuple orig, Connection ct, in Nat6Range range, out Conn6Tuple result)
    {
        result = default;
        if (!_bySource.TryGetValue(SourceKey(orig, ct.ZoneId), out var list)) return false;
        for (int i = list.Count - 1; i >= 0; i--)
        {
            var other = list[i];
            if (other == ct || other.V6 is not { } v6) continue;
            v6.Reply.TryInvert(out result);
            result.Dst = orig.Dst;
            result.DstPort = orig.DstPort;
            result.Zone = orig.Zone;
            if (InRange(result, range)) return true;
        }
        return false;
    }

    private Conn6Tuple UniqueTuple(in Conn6Tuple orig, in Nat6Range range, Connection ct, NatManip manip)
    {
        bool randomAll = (range.Flags & (NatRangeFlags.ProtoRandom | NatRangeFlags.ProtoRandomFully)) != 0;
        if (manip == NatManip.Src && !randomAll)
        {
            if (InRange(orig, range))
            {
                if (!Used(orig, ct)) return orig;
            }
            else if (FindAppropriateSource(orig, ct, range, out var t0))
            {
                // The mapping another connection from this source got, if its reply is free.
                if (!Used(t0, ct)) return t0;
            }
        }
        var t = orig;
        BestIps(ref t, range, manip, ct.ZoneId);
        if (!randomAll)
        {
            if ((range.Flags & NatRangeFlags.ProtoSpecified) != 0)
            {
                if (L4InRange(t, manip, range.MinPort, range.MaxPort) && (range.MinPort == range.MaxPort || !Used(t, ct))) return t;
            }
            else if (!Used(t, ct)) return t;
        }
        UniquePort(ref t, range, manip, ct);
        return t;
    }

    /// <summary>find_best_ips_proto for IPv6: jhash2 over the four source words, seeded with the destination's last word
    /// and the zone (0 with --persistent); each word of the result is scaled into the range while the words before it sit
    /// at the range's maximum, and takes any value after that.</summary>
    private static void BestIps(ref Conn6Tuple t, in Nat6Range r, NatManip manip, ushort zoneId)
    {
        if ((r.Flags & NatRangeFlags.MapIps) == 0) return;
        ref UInt128 var = ref manip == NatManip.Src ? ref t.Src : ref t.Dst;
        if (r.MinIp == r.MaxIp) { var = r.MinIp; return; }
        bool persistent = (r.Flags & NatRangeFlags.Persistent) != 0;
        uint seed = persistent ? 0 : Word(t.Dst, 3) ^ zoneId;
        uint j = Jhash2(Word(t.Src, 0), Word(t.Src, 1), Word(t.Src, 2), Word(t.Src, 3), seed);
        bool full = false;
        UInt128 result = 0;
        for (int i = 0; i < 4; i++)
        {
            uint minw, dist;
            if (!full)
            {
                minw = HostWord(r.MinIp, i);
                dist = HostWord(r.MaxIp, i) - minw + 1;
            }
            else { minw = 0; dist = ~0u; }
            uint w = minw + (uint)(((ulong)j * dist) >> 32);
            result |= (UInt128)w << (96 - 32 * i);
            if (w != HostWord(r.MaxIp, i)) full = true;
            if (!persistent) j ^= Word(t.Dst, i);
        }
        var = result;
    }

    /// <summary>Word <paramref name="i"/> of the address in host order (ntohl of all[i]).</summary>
    private static uint HostWord(UInt128 a, int i) => (uint)(a >> (96 - 32 * i));

    /// <summary>Word <paramref name="i"/> as the kernel loads it raw: network bytes read as a little-endian u32.</summary>
    private static uint Word(UInt128 a, int i) => BinaryPrimitives.ReverseEndianness(HostWord(a, i));

    /// <summary>jhash2 (lookup3 as include/linux/jhash.h) of four words.</summary>
    internal static uint Jhash2(uint k0, uint k1, uint k2, uint k3, uint initval)
    {
        uint a, b, c;
        a = b = c = 0xdeadbeef + (4u << 2) + initval;
        a += k0; b += k1; c += k2;
        a -= c; a ^= BitOperations.RotateLeft(c, 4); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 6); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 8); b += a;
        a -= c; a ^= BitOperations.RotateLeft(c, 16); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 19); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 4); b += a;
        a += k3;
        c ^= b; c -= BitOperations.RotateLeft(b, 14);
        a ^= c; a -= BitOperations.RotateLeft(c, 11);
        b ^= a; b -= BitOperations.RotateLeft(a, 25);
        c ^= b; c -= BitOperations.RotateLeft(b, 16);
        a ^= c; a -= BitOperations.RotateLeft(c, 4);
        b ^= a; b -= BitOperations.RotateLeft(a, 14);
        c ^= b; c -= BitOperations.RotateLeft(b, 24);
        return c;
    }

    /// <summary>nf_nat_l4proto_unique_tuple: ports (or the ICMPv6 id) from a random offset, 128 attempts, halving.</summary>
    private void UniquePort(ref Conn6Tuple t, in Nat6Range range, NatManip manip, Connection ct)
    {
        uint min, size;
        bool icmp = t.Protocol == IpProtocols.Icmpv6;
        if (icmp)
        {
            if ((range.Flags & NatRangeFlags.ProtoSpecified) == 0) { min = 0; size = 65536; }
            else { min = range.MinPort; size = (uint)range.MaxPort - range.MinPort + 1; }
        }
        else if (t.Protocol is 6 or 17 or 132 or 136)
        {
            if ((range.Flags & NatRangeFlags.ProtoSpecified) == 0)
            {
                if (manip == NatManip.Dst) return;
                ushort port = t.SrcPort;
                if (port < 1024)
                {
                    if (port < 512) { min = 1; size = 511; }
                    else { min = 600; size = 1023 - 600 + 1; }
                }
                else { min = 1024; size = 65535 - 1024 + 1; }
            }
            else
            {
                min = range.MinPort;
                size = (uint)range.MaxPort - range.MinPort + 1;
            }
        }
        else return;
        bool random = (range.Flags & (NatRangeFlags.ProtoRandom | NatRangeFlags.ProtoRandomFully)) != 0 || manip != NatManip.Dst;
        ushort off = random ? (ushort)_random() : (ushort)0;
        uint attempts = Math.Min(size, 128u);
        while (true)
        {
            for (uint i = 0; i < attempts; i++, off++)
            {
                ushort v = (ushort)(min + off % size);
                if (icmp || manip == NatManip.Src) t.SrcPort = v; else t.DstPort = v;
                if (!Used(t, ct)) return;
            }
            if (attempts >= size || attempts < 16) return;
            attempts /= 2;
            off = (ushort)_random();
        }
    }

    /// <summary>nf_nat_packet: apply this hook's manip when the connection has that kind of NAT for the packet's direction.</summary>
    public void Packet(Connection ct, CtInfo info, NatManip manip, ref PacketContext p, Span<byte> packet)
    {
        int dir = info is CtInfo.EstablishedReply or CtInfo.RelatedReply ? 1 : 0;
        var bit = manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
        if (dir == 1) bit = bit == CtStatus.SrcNat ? CtStatus.DstNat : CtStatus.SrcNat;
        if ((ct.Status & bit) == 0 || ct.V6 is not { } v6) return;
        v6.Tuple(1 - dir).TryInvert(out var target);
        Manip(ref p, packet, target, manip);
    }

    /// <summary>nf_nat_ipv6_manip_pkt: rewrite one end of the packet (context fields and bytes).</summary>
    internal static void Manip(ref PacketContext p, Span<byte> packet, in Conn6Tuple target, NatManip manip)
    {
        var newAddr = manip == NatManip.Src ? target.Src : target.Dst;
        bool icmp = p.Protocol == IpProtocols.Icmpv6;
        ushort newPort = icmp ? target.SrcPort : manip == NatManip.Src ? target.SrcPort : target.DstPort;
        if (packet.Length >= 40 && p.TransportOffset <= packet.Length)
        {
            RewriteL4(packet, p.TransportOffset, p.Protocol, p.IsFragment, 0, manip, newAddr, newPort);
            Ip6Addr.Write(packet.Slice(manip == NatManip.Src ? 8 : 24, 16), newAddr);
        }
        if (manip == NatManip.Src) p.Src6 = newAddr; else p.Dst6 = newAddr;
        if (p.IsFragment) return;
        if (p.Protocol is 6 or 17 or 132 or 136)
        {
            if (manip == NatManip.Src) p.SrcPort = newPort; else p.DstPort = newPort;
        }
        else if (icmp && p.IcmpType is 128 or 129) p.IcmpId = newPort;
    }

    /// <summary>The transport part of a manip on the IPv6 header at <paramref name="ipOff"/> whose upper-layer header
    /// is at <paramref name="l4"/>: ports or the echo id, and the checksum for the pseudo-header address change.</summary>
    private static void RewriteL4(Span<byte> packet, int l4, byte proto, bool fragment, int ipOff, NatManip manip, UInt128 newAddr,
        ushort newPort)
    {
        if (fragment) return;
        var oldAddrBytes = packet.Slice(ipOff + (manip == NatManip.Src ? 8 : 24), 16);
        var h = packet[l4..];
        if (proto == IpProtocols.Sctp) { SctpTracker.ManipPort(h, manip == NatManip.Src, newPort); return; }
        int checkAt;
        switch (proto)
        {
            case 6: if (h.Length < 4) return; checkAt = h.Length >= 18 ? 16 : -1; break;
            case 17: if (h.Length < 8) return; checkAt = 6; break;
            case IpProtocols.Icmpv6: if (h.Length < 8) return; checkAt = 2; break;
            default: return;
        }
        bool udpNoCheck = proto == 17 && BinaryPrimitives.ReadUInt16BigEndian(h[6..]) == 0;
        if (checkAt >= 0 && !udpNoCheck)
        {
            ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[checkAt..]);
            for (int i = 0; i < 16; i += 2)
            {
                ushort o = BinaryPrimitives.ReadUInt16BigEndian(oldAddrBytes[i..]);
                ushort n = (ushort)(newAddr >> (112 - 8 * i));
                c = Checksum.Update16(c, o, n);
            }
            BinaryPrimitives.WriteUInt16BigEndian(h[checkAt..], c);
        }
        if (proto is 6 or 17)
        {
            int portAt = manip == NatManip.Src ? 0 : 2;
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(h[portAt..]);
            BinaryPrimitives.WriteUInt16BigEndian(h[portAt..], newPort);
            if (checkAt < 0 || udpNoCheck) return;
            ushort c = Checksum.Update16(BinaryPrimitives.ReadUInt16BigEndian(h[checkAt..]), oldPort, newPort);
            if (proto == 17 && c == 0) c = 0xFFFF;
            BinaryPrimitives.WriteUInt16BigEndian(h[checkAt..], c);
        }
        else if (h[0] is 128 or 129)
        {
            ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(h[4..]);
            ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[2..]);
            BinaryPrimitives.WriteUInt16BigEndian(h[2..], Checksum.Update16(c, oldId, newPort));
            BinaryPrimitives.WriteUInt16BigEndian(h[4..], newPort);
        }
    }

    /// <summary>
    /// nf_nat_icmpv6_reply_translation: for an ICMPv6 error RELATED to a NATed connection, rewrite the quoted packet the
    /// opposite way (so the receiver recognises its own packet), recompute the ICMPv6 checksum over the pseudo-header,
    /// then rewrite the outer header as the other direction's packets are.
    /// </summary>
    public bool IcmpReplyTranslation(Connection ct, CtInfo info, NatManip manip, ref PacketContext p, Span<byte> packet)
    {
        if (ct.V6 is not { } v6) return true;
        int dir = info == CtInfo.RelatedReply ? 1 : 0;
        var bit = manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
        if (dir == 1) bit = bit == CtStatus.SrcNat ? CtStatus.DstNat : CtStatus.SrcNat;
        if ((ct.Status & bit) == 0) return true;
        var inverseManip = manip == NatManip.Src ? NatManip.Dst : NatManip.Src;
        ref var other = ref v6.Tuple(1 - dir);
        var innerNew = inverseManip == NatManip.Src ? other.Src : other.Dst;
        ushort innerPort = p.InnerProtocol == IpProtocols.Icmpv6 ? other.SrcPort : inverseManip == NatManip.Src ? other.SrcPort : other.DstPort;
        int icmpOff = p.TransportOffset;
        int inner = icmpOff + 8;
        if (packet.Length >= inner + 40 && p.Length <= packet.Length)
        {
            var ext = new Packets.Headers.Ipv6ExtensionHeaderReader(packet[(inner + 40)..p.Length], packet[inner + 6]);
            while (ext.MoveNext()) { }
            if (ext.Error == DropReason.None)
            {
                RewriteL4(packet, inner + 40 + ext.NextOffset, ext.NextHeader, false, inner, inverseManip, innerNew, innerPort);
                Ip6Addr.Write(packet.Slice(inner + (inverseManip == NatManip.Src ? 8 : 24), 16), innerNew);
            }
        }
        if (inverseManip == NatManip.Src) p.InnerSrc6 = innerNew; else p.InnerDst6 = innerNew;
        if (p.InnerProtocol == IpProtocols.Icmpv6) p.InnerIcmpId = innerPort;
        else if (inverseManip == NatManip.Src) p.InnerSrcPort = innerPort; else p.InnerDstPort = innerPort;
        // The outer header: addresses only (an error has no id to translate), then the ICMPv6 checksum over the result.
        other.TryInvert(out var target);
        Manip(ref p, packet, target, manip);
        if (packet.Length >= icmpOff + 8 && p.Length <= packet.Length)
        {
            var icmp = packet[icmpOff..p.Length];
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
            uint seed = Checksum.PseudoHeaderV6(packet[8..24], packet[24..40], IpProtocols.Icmpv6, icmp.Length);
            BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp, seed));
        }
        return true;
    }
}
