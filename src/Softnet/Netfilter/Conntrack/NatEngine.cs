using System.Buffers.Binary;
using System.Numerics;
using Softnet.Packets;

namespace Softnet.Netfilter.Conntrack;

/// <summary>Which end a NAT binding rewrites (enum nf_nat_manip_type).</summary>
public enum NatManip : byte
{
    Src = 0,
    Dst = 1,
}

/// <summary>NF_NAT_RANGE_* flags.</summary>
[Flags]
public enum NatRangeFlags : uint
{
    None = 0,
    MapIps = 1,
    ProtoSpecified = 2,
    ProtoRandom = 4,
    Persistent = 8,
    ProtoRandomFully = 16,
    ProtoOffset = 32,
}

/// <summary>nf_nat_range2 for IPv4 (host-order addresses and ports).</summary>
public struct NatRange
{
    public NatRangeFlags Flags;
    public uint MinIp, MaxIp;
    public ushort MinPort, MaxPort;
}

/// <summary>
/// NAT bindings and packet rewriting (nf_nat_core.c, nf_nat_proto.c): get_unique_tuple with the
/// find_appropriate_src / find_best_ips_proto / nf_nat_l4proto_unique_tuple steps, reply-tuple rewrite,
/// per-packet manipulation with incremental checksum updates, ICMP error translation.
/// </summary>
public sealed class NatEngine
{
    private readonly ConntrackTable _table;
    private readonly Func<uint> _random;
    // nf_nat_bysource: every connection that took a source binding, chained through Connection.NextBySource by the
    // (protocol, address, port, zone) of its original source, newest first, so find_appropriate_src can give a new
    // connection from that source the mapping an earlier one got. Sized as conntrack's table (nf_nat_htable_size is
    // nf_conntrack_htable_size), taken from the pool at the first binding.
    private Connection?[] _bySource = NoBySource;
    private static readonly Connection?[] NoBySource = new Connection?[1];
    // As conntrack's table has: one 16-bit summary per chain (bit hash&15 of each member), so a source with no earlier
    // binding is known without reading its chain.
    private ushort[] _bySourceFilter = NoFilter;
    private static readonly ushort[] NoFilter = new ushort[1];
    private long _now;

    public NatEngine(ConntrackTable table, Func<uint> random)
    {
        _table = table;
        _random = random;
        table.Nat = this;
    }

    public static bool Initialized(Connection ct, NatManip m)
        => (ct.Status & (m == NatManip.Src ? CtStatus.SrcNatDone : CtStatus.DstNatDone)) != 0;

    internal void SetClock(long nowNs) => _now = nowNs;

    /// <summary>hash_by_src: the original tuple's source address, port (ICMP id) and protocol, and the entry's zone id
    /// (nf_ct_zone(ct)->id, whichever direction the zone applies to).</summary>
    private uint SourceHash(in ConnTuple t, ushort zoneId)
        => new ConnTuple(t.Src, 0, t.Protocol, t.SrcPort, 0) { Zone = zoneId }.Hash(_table.Options.HashSeed);

    private int SourceBucket(uint hash) => (int)(((ulong)hash * (ulong)_bySource.Length) >> 32);

    /// <summary>nf_nat_setup_info for a source manip: the entry joins the head of its source's bysource chain.</summary>
    private void LinkBySource(Connection ct)
    {
        if (ct.InBySource) return;
        if (_bySource == NoBySource)
        {
            _bySource = BucketArrays<Connection?>.Rent(Math.Max(1, _table.Options.Buckets));
            _bySourceFilter = BucketArrays<ushort>.Rent(_bySource.Length);
        }
        ct.BySourceHash = SourceHash(ct.Original, ct.ZoneId);
        int b = SourceBucket(ct.BySourceHash);
        _bySourceFilter[b] |= ConntrackTable.FilterBit(ct.BySourceHash);
        ref Connection? head = ref _bySource[b];
        ct.NextBySource = head;
        head = ct;
        ct.InBySource = true;
    }

    /// <summary>A new entry's source chain, which its source binding (real or null) will write when it leaves the
    /// namespace: asked of memory when the entry is made (a hint, no kernel counterpart; zones other than the default
    /// only waste it).</summary>
    internal void PrefetchSource(in ConnTuple orig)
    {
        if (_bySource == NoBySource) return;
        int b = SourceBucket(SourceHash(orig, 0));
        ConntrackTable.Prefetch(ref _bySource[b]);
        ConntrackTable.Prefetch(ref _bySourceFilter[b]);
    }

    /// <summary>nf_nat_cleanup_conntrack: the entry leaves its bysource chain when it is destroyed.</summary>
    internal void Forget(Connection ct)
    {
        if (!ct.InBySource) return;
        int b = SourceBucket(ct.BySourceHash);
        ref Connection? link = ref _bySource[b];
        while (link != null)
        {
            if (link == ct) { link = ct.NextBySource; break; }
            link = ref link.NextBySource;
        }
        ushort f = 0;
        for (var c = _bySource[b]; c != null; c = c.NextBySource) f |= ConntrackTable.FilterBit(c.BySourceHash);
        _bySourceFilter[b] = f;
        ct.NextBySource = null;
        ct.InBySource = false;
    }

    /// <summary>The namespace goes away: the bysource array goes back to the pool (its entries go with the table).</summary>
    internal void Release()
    {
        if (_bySource != NoBySource) BucketArrays<Connection?>.Return(_bySource);
        if (_bySourceFilter != NoFilter) BucketArrays<ushort>.Return(_bySourceFilter);
        _bySource = NoBySource;
        _bySourceFilter = NoFilter;
    }

    /// <summary>find_appropriate_src: the newest connection from the same source whose mapping, with this tuple's
    /// destination, is in the range. Zones compare as nf_ct_zone_equal(.., IP_CT_DIR_ORIGINAL) does: the zone each
    /// entry applies to its original direction.</summary>
    private bool FindAppropriateSource(in ConnTuple orig, Connection ct, in NatRange range, out ConnTuple result)
    {
        ushort zone = ct.Original.Zone;
        uint h = SourceHash(orig, ct.ZoneId);
        int b = SourceBucket(h);
        result = default;
        if ((_bySourceFilter[b] & ConntrackTable.FilterBit(h)) == 0) return false;
        for (var c = _bySource[b]; c != null; c = c.NextBySource)
        {
            ref var o = ref c.Original;
            if (o.Src != orig.Src || o.SrcPort != orig.SrcPort || o.Protocol != orig.Protocol || o.Zone != zone) continue;
            result = orig;
            result.Src = c.Reply.Dst;
            result.SrcPort = orig.Protocol == 1 ? c.Reply.SrcPort : c.Reply.DstPort;
            if (InRange(result, range)) return true;
        }
        result = default;
        return false;
    }

    /// <summary>nf_nat_used_tuple: would this original-direction tuple's reply clash with another entry?</summary>
    private bool Used(in ConnTuple t, Connection ct)
    {
        if (!t.TryInvert(out var reply)) return true;
        return _table.TupleTaken(reply, ct, _now);
    }

    /// <summary>NF_NAT_HARDER_THRESH: in the last quarter of a search's attempts, a closing TCP entry may give way.</summary>
    private const uint HarderThreshold = 128 / 4;

    /// <summary>Whether <see cref="UsedHarder"/> could evict for this tuple at all: a TCP connection in SYN_SENT.</summary>
    private static bool MayEvict(in ConnTuple t, Connection ct) => t.Protocol == 6 && ct.TcpState == TcpCtState.SynSent;

    /// <summary>
    /// nf_nat_used_tuple_harder: late in a port search, a new TCP connection (SYN_SENT) may take the port of an
    /// entry found by its reply tuple that is closing (TIME_WAIT, CLOSE or SYN_SENT2), was source-NATed, has no fixed
    /// timeout, and whose original-direction sequence space the new SYN has passed: that entry is killed and the
    /// tuple is free. Everywhere else the plain nf_nat_used_tuple answer.
    /// </summary>
    private bool UsedHarder(in ConnTuple t, Connection ct, uint attemptsLeft)
    {
        if (attemptsLeft > HarderThreshold || !MayEvict(t, ct)) return Used(t, ct);
        if (!t.TryInvert(out var reply)) return true;
        var old = _table.FindNoStats(reply, _now, out int dir);
        if (old == null) return false;
        if (dir == 0 || old == ct) return true;
        // nf_nat_may_kill
        if ((old.Status & (CtStatus.FixedTimeout | CtStatus.Dying)) != 0 || old.TcpState < TcpCtState.TimeWait
            || (old.Status & CtStatus.SrcNat) == 0) return true;
        // nf_seq_has_advanced: the new SYN's end beyond the old connection's, in the original direction.
        if ((int)(ct.Seen0.End - old.Seen0.End) <= 0) return true;
        _table.Delete(old);
        return false;
    }

    /// <summary>l4proto_in_range: the manip's key (ICMP id, or port) in [min, max]; protocols without one always are.</summary>
    private static bool L4InRange(in ConnTuple t, NatManip m, ushort min, ushort max)
    {
        if (t.Protocol is not (1 or 6 or 17 or 132 or 136)) return true;
        ushort key = t.Protocol == 1 ? t.SrcPort : m == NatManip.Src ? t.SrcPort : t.DstPort;
        return key >= min && key <= max;
    }

    private static bool InRange(in ConnTuple t, in NatRange r)
    {
        if ((r.Flags & NatRangeFlags.MapIps) != 0 && (t.Src < r.MinIp || t.Src > r.MaxIp)) return false;
        return (r.Flags & NatRangeFlags.ProtoSpecified) == 0 || L4InRange(t, NatManip.Src, r.MinPort, r.MaxPort);
    }

    /// <summary>nf_nat_setup_info: choose a unique tuple in the range, rewrite the reply tuple, set the NAT bits.</summary>
    public bool SetupInfo(Connection ct, in NatRange range, NatManip manip)
    {
        // A confirmed entry is hashed by its reply tuple: the kernel leaves it alone (NF_ACCEPT), and so must we.
        if (ct.Confirmed || Initialized(ct, manip)) return true;
        // The tuple the packet would have after the other manip already bound: invert of the current reply.
        if (!ct.Reply.TryInvert(out var cur)) return false;
        var t = UniqueTuple(cur, range, ct, manip);
        if (!t.Equals(cur))
        {
            if (!t.TryInvert(out var reply)) return false;
            ct.Reply = reply;
            ct.Status |= manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
            // The reply tuple confirm will link, unless a source binding changes it again.
            _table.PrefetchBucket(reply.Hash(_table.Options.HashSeed));
        }
        if (manip == NatManip.Src) LinkBySource(ct);
        ct.Status |= manip == NatManip.Src ? CtStatus.SrcNatDone : CtStatus.DstNatDone;
        return true;
    }

    /// <summary>nf_nat_alloc_null_binding: a binding to the current address, which still moves a clashing port.</summary>
    public bool AllocNullBinding(Connection ct, NatManip manip)
    {
        uint ip = manip == NatManip.Src ? ct.Reply.Dst : ct.Reply.Src;
        var r = new NatRange { Flags = NatRangeFlags.MapIps, MinIp = ip, MaxIp = ip };
        return SetupInfo(ct, r, manip);
    }

    private ConnTuple UniqueTuple(in ConnTuple orig, in NatRange range, Connection ct, NatManip manip)
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

    /// <summary>find_best_ips_proto: a stable choice inside an address range, from jhash2 over the source address
    /// (the 16-byte nf_inet_addr, IPv4 in its first word) seeded with the destination's first word and the zone id
    /// (0 with --persistent), scaled into the range (reciprocal_scale). The same client maps to the same address
    /// across runs and reboots, as the kernel's does.</summary>
    private static void BestIps(ref ConnTuple t, in NatRange r, NatManip manip, ushort zoneId)
    {
        if ((r.Flags & NatRangeFlags.MapIps) == 0) return;
        ref uint var = ref manip == NatManip.Src ? ref t.Src : ref t.Dst;
        if (r.MinIp == r.MaxIp) { var = r.MinIp; return; }
        // The words as the kernel loads them: network-order bytes read as a little-endian u32.
        uint seed = (r.Flags & NatRangeFlags.Persistent) != 0 ? 0 : BinaryPrimitives.ReverseEndianness(t.Dst) ^ zoneId;
        uint j = Jhash2Ipv4(BinaryPrimitives.ReverseEndianness(t.Src), seed);
        // A u32 distance, as the kernel's: the whole address space wraps it to 0 and so picks the range's start.
        uint dist = r.MaxIp - r.MinIp + 1;
        var = r.MinIp + (uint)(((ulong)j * dist) >> 32);
    }

    /// <summary>jhash2 (Bob Jenkins' lookup3 as include/linux/jhash.h has it) of the four words {addr, 0, 0, 0}.</summary>
    internal static uint Jhash2Ipv4(uint addrWord, uint initval)
    {
        uint a, b, c;
        a = b = c = 0xdeadbeef + (4u << 2) + initval;
        a += addrWord;
        // __jhash_mix over the first three words
        a -= c; a ^= BitOperations.RotateLeft(c, 4); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 6); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 8); b += a;
        a -= c; a ^= BitOperations.RotateLeft(c, 16); c += b;
        b -= a; b ^= BitOperations.RotateLeft(a, 19); a += c;
        c -= b; c ^= BitOperations.RotateLeft(b, 4); b += a;
        // the fourth word is zero; __jhash_final
        c ^= b; c -= BitOperations.RotateLeft(b, 14);
        a ^= c; a -= BitOperations.RotateLeft(c, 11);
        b ^= a; b -= BitOperations.RotateLeft(a, 25);
        c ^= b; c -= BitOperations.RotateLeft(b, 16);
        a ^= c; a -= BitOperations.RotateLeft(c, 4);
        b ^= a; b -= BitOperations.RotateLeft(a, 14);
        c ^= b; c -= BitOperations.RotateLeft(b, 24);
        return c;
    }

    /// <summary>nf_nat_l4proto_unique_tuple: try ports from a random offset, 128 attempts, halving on retry.</summary>
    private void UniquePort(ref ConnTuple t, in NatRange range, NatManip manip, Connection ct)
    {
        uint min, size;
        bool icmp = t.Protocol == 1;
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
                uint lo = range.MinPort, hi = range.MaxPort;
                if (hi < lo) (lo, hi) = (hi, lo);
                min = lo;
                size = hi - lo + 1;
            }
        }
        else return;

        // The offset is a u16, as the kernel's: counting past 65535 wraps to 0.
        ushort off = randomOrSrc(range, manip) ? (ushort)_random() : (ushort)0;
        if (size == 1 && !MayEvict(t, ct))
        {
            // One port to choose from: it is the answer whether or not it is taken (the loop below would try it once
            // and stop), and with no TIME_WAIT entry to evict for it, the clash lookup can change nothing.
            if (icmp || manip == NatManip.Src) t.SrcPort = (ushort)min; else t.DstPort = (ushort)min;
            return;
        }
        uint attempts = Math.Min(size, 128u);
        while (true)
        {
            for (uint i = 0; i < attempts; i++, off++)
            {
                ushort v = (ushort)(min + off % size);
                if (icmp || manip == NatManip.Src) t.SrcPort = v; else t.DstPort = v;
                if (!UsedHarder(t, ct, attempts - i)) return;
            }
            if (attempts >= size || attempts < 16) return;
            attempts /= 2;
            off = (ushort)_random();
        }

        static bool randomOrSrc(in NatRange r, NatManip m)
            => (r.Flags & (NatRangeFlags.ProtoRandom | NatRangeFlags.ProtoRandomFully)) != 0 || m != NatManip.Dst;
    }

    /// <summary>nf_nat_packet: apply this hook's manip when the connection has that kind of NAT for the packet's direction.</summary>
    public void Packet(Connection ct, CtInfo info, NatManip manip, ref PacketContext p, Span<byte> packet)
    {
        int dir = info is CtInfo.EstablishedReply or CtInfo.RelatedReply ? 1 : 0;
        var bit = manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
        if (dir == 1) bit = bit == CtStatus.SrcNat ? CtStatus.DstNat : CtStatus.SrcNat;
        if ((ct.Status & bit) == 0) return;
        // Target: the inverse of the other direction's tuple.
        ct.Tuple(1 - dir).TryInvert(out var target);
        Manip(ref p, packet, target, manip);
    }

    /// <summary>nf_nat_ipv4_manip_pkt: rewrite one end of the packet (context fields and bytes).</summary>
    internal static void Manip(ref PacketContext p, Span<byte> packet, in ConnTuple target, NatManip manip)
    {
        uint newAddr = manip == NatManip.Src ? target.Src : target.Dst;
        ushort newPort = p.Protocol == 1 ? target.SrcPort : manip == NatManip.Src ? target.SrcPort : target.DstPort;
        uint oldAddr = manip == NatManip.Src ? p.Src : p.Dst;
        if (packet.Length >= 20)
        {
            int ihl = (packet[0] & 0xF) * 4;
            RewriteL4(packet, ihl, p.Protocol, p.IsFragment, p.Protocol == 1 ? PacketContext.IsIcmpError(p.IcmpType) : false,
                oldAddr, newAddr, manip, newPort, pseudo: true);
            ReplaceAddress(packet, 0, manip, newAddr);
        }
        if (manip == NatManip.Src) p.Src = newAddr; else p.Dst = newAddr;
        if (!p.IsFragment)
        {
            if (p.Protocol is 6 or 17 or 132 or 136)
            {
                if (manip == NatManip.Src) p.SrcPort = newPort; else p.DstPort = newPort;
            }
            else if (p.Protocol == 1 && !PacketContext.IsIcmpError(p.IcmpType)) p.IcmpId = newPort;
        }
    }

    /// <summary>Sets the source or destination address of the IPv4 header at <paramref name="off"/>, updating its checksum.</summary>
    private static void ReplaceAddress(Span<byte> packet, int off, NatManip manip, uint newAddr)
    {
        int at = off + (manip == NatManip.Src ? 12 : 16);
        uint oldAddr = BinaryPrimitives.ReadUInt32BigEndian(packet[at..]);
        ushort check = BinaryPrimitives.ReadUInt16BigEndian(packet[(off + 10)..]);
        check = Checksum.Update16(check, (ushort)(oldAddr >> 16), (ushort)(newAddr >> 16));
        check = Checksum.Update16(check, (ushort)oldAddr, (ushort)newAddr);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(off + 10)..], check);
        BinaryPrimitives.WriteUInt32BigEndian(packet[at..], newAddr);
    }

    /// <summary>The transport part of a manip: ports or ICMP id, and the checksum for the pseudo-header address change.</summary>
    private static void RewriteL4(Span<byte> packet, int l4, byte proto, bool fragment, bool icmpError, uint oldAddr, uint newAddr,
        NatManip manip, ushort newPort, bool pseudo)
    {
        if (fragment) return;
        var h = packet[l4..];
        switch (proto)
        {
            case 6:
            {
                if (h.Length < 4) return;
                int portAt = manip == NatManip.Src ? 0 : 2;
                ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(h[portAt..]);
                BinaryPrimitives.WriteUInt16BigEndian(h[portAt..], newPort);
                if (h.Length < 20) return; // a quoted header inside an ICMP error may be cut short: ports only
                ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[16..]);
                if (pseudo)
                {
                    c = Checksum.Update16(c, (ushort)(oldAddr >> 16), (ushort)(newAddr >> 16));
                    c = Checksum.Update16(c, (ushort)oldAddr, (ushort)newAddr);
                }
                c = Checksum.Update16(c, oldPort, newPort);
                BinaryPrimitives.WriteUInt16BigEndian(h[16..], c);
                break;
            }
            case 17:
            {
                if (h.Length < 8) return;
                int portAt = manip == NatManip.Src ? 0 : 2;
                ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(h[portAt..]);
                BinaryPrimitives.WriteUInt16BigEndian(h[portAt..], newPort);
                ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[6..]);
                if (c == 0) return; // no checksum in use
                if (pseudo)
                {
                    c = Checksum.Update16(c, (ushort)(oldAddr >> 16), (ushort)(newAddr >> 16));
                    c = Checksum.Update16(c, (ushort)oldAddr, (ushort)newAddr);
                }
                c = Checksum.Update16(c, oldPort, newPort);
                BinaryPrimitives.WriteUInt16BigEndian(h[6..], c == 0 ? (ushort)0xFFFF : c);
                break;
            }
            case IpProtocols.Sctp:
                SctpTracker.ManipPort(h, manip == NatManip.Src, newPort);
                break;
            case 1:
            {
                if (icmpError || h.Length < 8) return;
                byte type = h[0];
                if (type is not (0 or 8 or 13 or 14 or 15 or 16 or 17 or 18)) return;
                ushort oldId = BinaryPrimitives.ReadUInt16BigEndian(h[4..]);
                ushort c = BinaryPrimitives.ReadUInt16BigEndian(h[2..]);
                BinaryPrimitives.WriteUInt16BigEndian(h[2..], Checksum.Update16(c, oldId, newPort));
                BinaryPrimitives.WriteUInt16BigEndian(h[4..], newPort);
                break;
            }
        }
    }

    /// <summary>
    /// nf_nat_icmp_reply_translation: for an ICMP error RELATED to a NATed connection, rewrite the quoted
    /// datagram back the opposite way (so the receiver recognises its own packet), recompute the ICMP
    /// checksum, then rewrite the outer header like a reply.
    /// </summary>
    public bool IcmpReplyTranslation(Connection ct, CtInfo info, NatManip manip, ref PacketContext p, Span<byte> packet)
    {
        int dir = info == CtInfo.RelatedReply ? 1 : 0;
        if (p.IcmpType == 5)
        {
            var done = CtStatus.SrcNatDone | CtStatus.DstNatDone;
            if ((ct.Status & done) != done || (ct.Status & (CtStatus.SrcNat | CtStatus.DstNat)) != 0) return false;
        }
        var bit = manip == NatManip.Src ? CtStatus.SrcNat : CtStatus.DstNat;
        if (dir == 1) bit = bit == CtStatus.SrcNat ? CtStatus.DstNat : CtStatus.SrcNat;
        if ((ct.Status & bit) == 0) return true;

        var inverseManip = manip == NatManip.Src ? NatManip.Dst : NatManip.Src;
        ref var other = ref ct.Tuple(1 - dir);
        // Inner datagram: apply the opposite manip with the other direction's tuple itself.
        uint innerNew = inverseManip == NatManip.Src ? other.Src : other.Dst;
        ushort innerPort = p.InnerProtocol == 1 ? other.SrcPort : inverseManip == NatManip.Src ? other.SrcPort : other.DstPort;
        if (packet.Length >= 20)
        {
            int ihl = (packet[0] & 0xF) * 4;
            int inner = ihl + 8;
            if (packet.Length >= inner + 20)
            {
                int innerIhl = (packet[inner] & 0xF) * 4;
                uint innerOld = BinaryPrimitives.ReadUInt32BigEndian(packet[(inner + (inverseManip == NatManip.Src ? 12 : 16))..]);
                RewriteL4(packet, inner + innerIhl, p.InnerProtocol, false, false, innerOld, innerNew, inverseManip, innerPort, pseudo: true);
                ReplaceAddress(packet, inner, inverseManip, innerNew);
                var icmp = packet[ihl..];
                BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], 0);
                BinaryPrimitives.WriteUInt16BigEndian(icmp[2..], Checksum.Compute(icmp));
            }
        }
        if (inverseManip == NatManip.Src) { p.InnerSrc = innerNew; } else { p.InnerDst = innerNew; }
        if (p.InnerProtocol == 1) p.InnerIcmpId = innerPort;
        else if (inverseManip == NatManip.Src) p.InnerSrcPort = innerPort; else p.InnerDstPort = innerPort;

        // Outer header: addresses only (an ICMP error has no id to translate).
        other.TryInvert(out var target);
        Manip(ref p, packet, target, manip);
        return true;
    }
}
