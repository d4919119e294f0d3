using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Netfilter;

namespace Softnet.Ip;

/// <summary>
/// IPCB(skb)->opt (struct ip_options): where each option the kernel acts on sits in the IPv4 header, as an offset
/// from the header's first byte (0: absent), and what the receive path still owes them. Filled by
/// <see cref="Ipv4Options.Compile"/>; lives on the skb, so nothing is allocated per packet.
/// </summary>
public struct IpOptions
{
    /// <summary>opt->faddr: the first hop of a reversed source route (where an answer goes).</summary>
    public uint Faddr;
    /// <summary>opt->nexthop: the source route's next hop (ip_options_rcv_srr).</summary>
    public uint Nexthop;
    /// <summary>opt->optlen: the header's option bytes (IHL * 4 - 20).</summary>
    public byte OptLen;
    public byte Srr, Rr, Ts, RouterAlert, Cipso;
    public bool IsStrictRoute, SrrIsHit, IsChanged, RrNeedAddr, TsNeedTime, TsNeedAddr;
}

/// <summary>
/// IPv4 options as net/ipv4/ip_options.c handles them on received datagrams: ip_options_compile (validation,
/// record route and timestamps filled in place), __ip_options_echo and ip_options_build (the options of an answer),
/// ip_forward_options and ip_options_rcv_srr's source route walk. Nothing here allocates or throws.
/// </summary>
public static class Ipv4Options
{
    public const byte End = 0, Nop = 1, Rr = 7, Timestamp = 68, Sec = 130, Lsrr = 131, Cipso = 134, Sid = 136, Ssrr = 137, RouterAlert = 148;
    public const int TsOnly = 0, TsAndAddr = 1, TsPrespec = 3;
    /// <summary>MAX_IPOPTLEN.</summary>
    public const int MaxLength = 40;

    /// <summary>inet_current_timestamp: milliseconds since midnight UTC of <paramref name="nowNs"/> (Unix time).</summary>
    public static uint Timestamp32(long nowNs)
    {
        long sec = nowNs / 1_000_000_000L, ns = nowNs % 1_000_000_000L;
        if (ns < 0) { ns += 1_000_000_000L; sec--; }
        long day = sec % 86400;
        if (day < 0) day += 86400;
        return (uint)(day * 1000 + ns / 1_000_000);
    }

    /// <summary>inet_addr_type(net, addr) == RTN_UNICAST: not one of ours, nor a broadcast or multicast address.</summary>
    public static bool IsUnicastAddress(Namespace? ns, uint addr)
    {
        if ((addr >> 24) == 0 || addr == 0xFFFFFFFF || (addr >> 28) == 0xE) return false;
        return ns == null || ns.AddressType(addr, null) == RouteType.Unicast;
    }

    /// <summary>
    /// __ip_options_compile for a received datagram (skb and route set): <paramref name="header"/> is the whole IP
    /// header (IHL * 4 bytes), changed in place as the kernel changes it: record route and timestamp slots filled
    /// with <paramref name="specDst"/> (fib_compute_spec_dst) and <paramref name="now"/> (inet_current_timestamp),
    /// their pointers moved on, a full timestamp's overflow counted, bytes after EOL zeroed. The header checksum is
    /// not redone (is_changed says it is stale). False with <paramref name="problem"/> the offset an ICMP
    /// parameter problem points at; <paramref name="opt"/> then holds what was compiled before the bad option.
    /// </summary>
    public static bool Compile(Span<byte> header, ref IpOptions opt, uint specDst, uint now, Namespace? ns, out int problem)
    {
        opt = default;
        problem = 0;
        if (header.Length < 20 || header.Length > 60) { problem = 0; return header.Length == 20; }
        opt.OptLen = (byte)(header.Length - 20);
        int p = 20, l = opt.OptLen;
        while (l > 0)
        {
            byte type = header[p];
            if (type == End)
            {
                for (p++, l--; l > 0; p++, l--)
                    if (header[p] != End) { header[p] = End; opt.IsChanged = true; }
                return true;
            }
            if (type == Nop) { p++; l--; continue; }
            if (l < 2) { problem = p; return false; }
            int optlen = header[p + 1];
            if (optlen < 2 || optlen > l) { problem = p; return false; }
            var o = header.Slice(p, optlen);
            switch (type)
            {
                case Ssrr:
                case Lsrr:
                    if (optlen < 3) { problem = p + 1; return false; }
                    if (o[2] < 4) { problem = p + 2; return false; }
                    // RFC 1812 5.2.4.1: one source route only.
                    if (opt.Srr != 0) { problem = p; return false; }
                    opt.IsStrictRoute = type == Ssrr;
                    opt.Srr = (byte)p;
                    break;
                case Rr:
                    if (opt.Rr != 0) { problem = p; return false; }
                    if (optlen < 3) { problem = p + 1; return false; }
                    if (o[2] < 4) { problem = p + 2; return false; }
                    if (o[2] <= optlen)
                    {
                        if (o[2] + 3 > optlen) { problem = p + 2; return false; }
                        BinaryPrimitives.WriteUInt32BigEndian(o[(o[2] - 1)..], specDst);
                        opt.IsChanged = true;
                        o[2] += 4;
                        opt.RrNeedAddr = true;
                    }
                    opt.Rr = (byte)p;
                    break;
                case Timestamp:
                    if (opt.Ts != 0) { problem = p; return false; }
                    if (optlen < 4) { problem = p + 1; return false; }
                    if (o[2] < 5) { problem = p + 2; return false; }
                    if (o[2] <= optlen)
                    {
                        int ptr = o[2], timeAt = -1;
                        if (ptr + 3 > optlen) { problem = p + 2; return false; }
                        switch (o[3] & 0xF)
                        {
                            case TsOnly:
                                timeAt = ptr - 1;
                                opt.TsNeedTime = true;
                                o[2] += 4;
                                break;
                            case TsAndAddr:
                                if (ptr + 7 > optlen) { problem = p + 2; return false; }
                                BinaryPrimitives.WriteUInt32BigEndian(o[(ptr - 1)..], specDst);
                                timeAt = ptr + 3;
                                opt.TsNeedAddr = opt.TsNeedTime = true;
                                o[2] += 8;
                                break;
                            case TsPrespec:
                                if (ptr + 7 > optlen) { problem = p + 2; return false; }
                                // Only the named address stamps it.
                                if (IsUnicastAddress(ns, BinaryPrimitives.ReadUInt32BigEndian(o[(ptr - 1)..]))) break;
                                timeAt = ptr + 3;
                                opt.TsNeedTime = true;
                                o[2] += 8;
                                break;
                        }
                        if (timeAt >= 0)
                        {
                            BinaryPrimitives.WriteUInt32BigEndian(o[timeAt..], now);
                            opt.IsChanged = true;
                        }
                    }
                    else if ((o[3] & 0xF) != TsPrespec)
                    {
                        // No room: the overflow count in the high nibble goes up, up to 15.
                        int overflow = o[3] >> 4;
                        if (overflow == 15) { problem = p + 3; return false; }
                        o[3] = (byte)((o[3] & 0xF) | ((overflow + 1) << 4));
                        opt.IsChanged = true;
                    }
                    opt.Ts = (byte)p;
                    break;
                case RouterAlert:
                    if (optlen < 4) { problem = p + 1; return false; }
                    if (o[2] == 0 && o[3] == 0) opt.RouterAlert = (byte)p;
                    break;
                case Cipso:
                    if (opt.Cipso != 0) { problem = p; return false; }
                    opt.Cipso = (byte)p;
                    // cipso_v4_validate with NetLabel configured with no DOI: a short option at its length, any other
                    // at its DOI.
                    problem = optlen < 8 ? p + 1 : p + 2;
                    return false;
                default:
                    // IPOPT_SEC, IPOPT_SID and unknown options are carried unread.
                    break;
            }
            l -= optlen;
            p += optlen;
        }
        return true;
    }

    /// <summary>
    /// __ip_options_echo: the options of an answer to the received datagram <paramref name="header"/> (compiled as
    /// <paramref name="sopt"/>) into <paramref name="data"/> (40 bytes): record route and timestamp copied with room
    /// taken for our entry, a source route reversed (its first hop in <see cref="IpOptions.Faddr"/>), CIPSO copied,
    /// END padding to a word. False (-EINVAL) when the answer must not be sent.
    /// </summary>
    public static bool Echo(ReadOnlySpan<byte> header, in IpOptions sopt, Namespace? ns, Span<byte> data, out IpOptions dopt)
    {
        dopt = default;
        data[..MaxLength].Clear();
        if (sopt.OptLen == 0) return true;
        if (!Fits(header, sopt.Rr) || !Fits(header, sopt.Ts) || !Fits(header, sopt.Srr) || !Fits(header, sopt.Cipso, 2)) return false;
        int d = 0;
        if (sopt.Rr != 0)
        {
            int optlen = header[sopt.Rr + 1], soffset = header[sopt.Rr + 2];
            if (d + optlen > MaxLength) return false;
            dopt.Rr = (byte)(d + 20);
            header.Slice(sopt.Rr, optlen).CopyTo(data[d..]);
            if (sopt.RrNeedAddr && soffset <= optlen)
            {
                if (soffset + 3 > optlen) return false;
                data[d + 2] = (byte)(soffset + 4);
                dopt.RrNeedAddr = true;
            }
            d += optlen;
        }
        if (sopt.Ts != 0)
        {
            int optlen = header[sopt.Ts + 1], soffset = header[sopt.Ts + 2];
            if (d + optlen > MaxLength) return false;
            dopt.Ts = (byte)(d + 20);
            header.Slice(sopt.Ts, optlen).CopyTo(data[d..]);
            if (soffset <= optlen)
            {
                if (sopt.TsNeedAddr)
                {
                    if (soffset + 3 > optlen) return false;
                    dopt.TsNeedAddr = true;
                    soffset += 4;
                }
                if (sopt.TsNeedTime)
                {
                    if (soffset + 3 > optlen) return false;
                    if ((data[d + 3] & 0xF) != TsPrespec)
                    {
                        dopt.TsNeedTime = true;
                        soffset += 4;
                    }
                    else if (soffset + 7 <= optlen
                        && !IsUnicastAddress(ns, BinaryPrimitives.ReadUInt32BigEndian(data[(d + soffset - 1)..])))
                    {
                        dopt.TsNeedTime = true;
                        soffset += 8;
                    }
                }
                data[d + 2] = (byte)soffset;
            }
            d += optlen;
        }
        if (sopt.Srr != 0)
        {
            var start = header[sopt.Srr..];
            int optlen = start[1], soffset = start[2], doffset = 0;
            uint faddr = 0;
            if (d + optlen > MaxLength) return false;
            if (soffset > optlen) soffset = optlen + 1;
            soffset -= 4;
            if (soffset > 3)
            {
                // The last hop passed becomes the destination; the others go in reverse order.
                faddr = BinaryPrimitives.ReadUInt32BigEndian(start[(soffset - 1)..]);
                for (soffset -= 4, doffset = 4; soffset > 3; soffset -= 4, doffset += 4)
                    start.Slice(soffset - 1, 4).CopyTo(data[(d + doffset - 1)..]);
                // RFC 1812: a route through the sender itself is cut short.
                if (header.Slice(12, 4).SequenceEqual(start.Slice(soffset + 3, 4))) doffset -= 4;
            }
            if (doffset > 3)
            {
                dopt.Faddr = faddr;
                data[d] = start[0];
                data[d + 1] = (byte)(doffset + 3);
                data[d + 2] = 4;
                dopt.Srr = (byte)(d + 20);
                d += doffset + 3;
                dopt.IsStrictRoute = sopt.IsStrictRoute;
            }
        }
        if (sopt.Cipso != 0)
        {
            int optlen = header[sopt.Cipso + 1];
            if (d + optlen > MaxLength) return false;
            dopt.Cipso = (byte)(d + 20);
            header.Slice(sopt.Cipso, optlen).CopyTo(data[d..]);
            d += optlen;
        }
        while ((d & 3) != 0) data[d++] = End;
        dopt.OptLen = (byte)d;
        return true;
    }

    /// <summary>ip_options_build for a datagram this host sends (not a fragment): the option bytes behind the
    /// 20-byte header, the real destination <paramref name="daddr"/> as a source route's last hop, our
    /// <paramref name="saddr"/> in record route and timestamp (ip_rt_get_source on an output route), the time.</summary>
    public static void Build(Span<byte> header, in IpOptions opt, ReadOnlySpan<byte> data, uint daddr, uint saddr, uint now)
    {
        data[..opt.OptLen].CopyTo(header[20..]);
        if (!Fits(header, opt.Rr) || !Fits(header, opt.Ts) || !Fits(header, opt.Srr)) return;
        if (opt.Srr != 0) Put(header, opt.Srr + header[opt.Srr + 1] - 4, daddr);
        if (opt.RrNeedAddr) Put(header, opt.Rr + header[opt.Rr + 2] - 5, saddr);
        if (opt.TsNeedAddr) Put(header, opt.Ts + header[opt.Ts + 2] - 9, saddr);
        if (opt.TsNeedTime) Put(header, opt.Ts + header[opt.Ts + 2] - 5, now);
    }

    /// <summary>ip_forward_options: record route (and, on a source route hit, the route's slot and the timestamp's
    /// address) take the outgoing address <paramref name="outAddr"/> (ip_rt_get_source); a source route hit moves the
    /// destination to the next hop; the header checksum is redone when anything changed.</summary>
    public static void Forward(Span<byte> header, ref IpOptions opt, uint outAddr)
    {
        if (!Fits(header, opt.Rr) || !Fits(header, opt.Ts) || !Fits(header, opt.Srr)) return;
        if (opt.RrNeedAddr)
        {
            Put(header, opt.Rr + header[opt.Rr + 2] - 5, outAddr);
            opt.IsChanged = true;
        }
        if (opt.SrrIsHit)
        {
            var o = header[opt.Srr..];
            int srrptr, srrspace = o[1];
            for (srrptr = Math.Max((int)o[2], 4); srrptr <= srrspace; srrptr += 4)
            {
                if (srrptr + 3 > srrspace) break;
                if (BinaryPrimitives.ReadUInt32BigEndian(o[(srrptr - 1)..]) == opt.Nexthop) break;
            }
            if (srrptr + 3 <= srrspace)
            {
                opt.IsChanged = true;
                BinaryPrimitives.WriteUInt32BigEndian(header[16..], opt.Nexthop);
                Put(o, srrptr - 1, outAddr);
                o[2] = (byte)(srrptr + 4);
            }
            if (opt.TsNeedAddr)
            {
                Put(header, opt.Ts + header[opt.Ts + 2] - 9, outAddr);
                opt.IsChanged = true;
            }
        }
        if (opt.IsChanged)
        {
            opt.IsChanged = false;
            header[10] = header[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(header[10..], Packets.Checksum.Compute(header));
        }
    }

    /// <summary>A 32-bit value at <paramref name="at"/>, when that slot lies inside <paramref name="header"/>.</summary>
    private static void Put(Span<byte> header, int at, uint value)
    {
        if (at >= 0 && at + 4 <= header.Length) BinaryPrimitives.WriteUInt32BigEndian(header[at..], value);
    }

    /// <summary>An option compiled at <paramref name="at"/> (0: none) still lies whole inside <paramref name="header"/>
    /// with its pointer byte: a guard, so options compiled for another header can never index past this one.</summary>
    private static bool Fits(ReadOnlySpan<byte> header, byte at, int minLength = 3)
        => at == 0 || (at + 2 <= header.Length && header[at + 1] >= minLength && at + header[at + 1] <= header.Length);

    /// <summary>ip_options_fragment: in the header later fragments take, the options without the copied bit become
    /// NOPs (walking at most <paramref name="optlen"/> option bytes).</summary>
    public static void Fragment(Span<byte> header, int optlen)
    {
        int i = 20, l = Math.Min(optlen, header.Length - 20);
        while (l > 0)
        {
            byte type = header[i];
            if (type == End) return;
            if (type == Nop) { i++; l--; continue; }
            if (l < 2) return;
            int len = header[i + 1];
            if (len < 2 || len > l) return;
            if ((type & 0x80) == 0) header.Slice(i, len).Fill(Nop);
            l -= len;
            i += len;
        }
    }
}
