using System.Buffers.Binary;

namespace Softnet.Xdp.Bpf.Helpers;

/// <summary>What a route lookup found, in the terms bpf_fib_lookup needs (the fib_result / fib6_result parts it reads).</summary>
public enum BpfFibRouteType : byte
{
    /// <summary>No route at all (-ENETUNREACH, or IPv6's null entry).</summary>
    None,
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
    /// <summary>Local, broadcast, multicast, anycast: not forwarded.</summary>
    Other,
}

/// <summary>A route's answer: its type, the egress device, the gateway (family 0 when the destination is on link).</summary>
public struct BpfFibRoute
{
    public BpfFibRouteType Type;
    public int Ifindex;
    public int Mtu;
    public uint Metric;
    /// <summary>0 (on link), 4 or 6.</summary>
    public byte GatewayFamily;
    /// <summary>Host byte order.</summary>
    public uint Gateway4;
    public UInt128 Gateway6;
}

/// <summary>
/// The routing and neighbour tables of the namespace an XDP program runs in, as bpf_fib_lookup consults them; the VM
/// reaches the scenario's namespace only through this. Addresses are in host byte order.
/// </summary>
public interface IBpfFib
{
    /// <summary>The device with <paramref name="ifindex"/> exists; its IPv4 and IPv6 forwarding settings.</summary>
    bool TryDevice(int ifindex, out bool forwarding4, out bool forwarding6);

    /// <summary>fib_lookup (<paramref name="mainOnly"/>: the main table alone, BPF_FIB_LOOKUP_DIRECT; <paramref name="oif"/>
    /// nonzero: only routes leaving by that device, as flowi4_oif makes fib_table_lookup choose, BPF_FIB_LOOKUP_OUTPUT).</summary>
    BpfFibRoute Route4(uint dst, bool mainOnly, int oif);
    BpfFibRoute Route6(UInt128 dst, bool mainOnly);

    /// <summary>A valid (NUD_VALID) neighbour entry's link-layer address.</summary>
    bool TryNeighbour4(int ifindex, uint addr, Span<byte> mac);
    bool TryNeighbour6(int ifindex, UInt128 addr, Span<byte> mac);

    /// <summary>The device's MAC address (dev->dev_addr).</summary>
    void DeviceMac(int ifindex, Span<byte> mac);
}

/// <summary>
/// bpf_fib_lookup(ctx, params, plen, flags) for XDP (bpf_xdp_fib_lookup → bpf_ipv4_fib_lookup / bpf_ipv6_fib_lookup
/// with the MTU check on). struct bpf_fib_lookup (uapi, 64 bytes): family 0, l4_protocol 1, sport 2, dport 4,
/// tot_len / mtu_result 6, ifindex 8, tos / flowinfo / rt_metric 12, src 16, dst 32, h_vlan_proto 48, h_vlan_TCI 50,
/// smac 52, dmac 58.
/// </summary>
public static class BpfFibLookup
{
    public const int Size = 64;
    public const int RetSuccess = 0, RetBlackhole = 1, RetUnreachable = 2, RetProhibit = 3, RetNotFwded = 4, RetFwdDisabled = 5,
        RetUnsuppLwt = 6, RetNoNeigh = 7, RetFragNeeded = 8, RetNoSrcAddr = 9;
    public const uint FlagDirect = 1, FlagOutput = 2, FlagSkipNeigh = 4, FlagTbid = 8, FlagSrc = 16, FlagMark = 32;
    public const int AfInet = 2, AfInet6 = 10;
    private const int EAFNOSUPPORT = 97, ENODEV = 19;

    private const int OffFamily = 0, OffTotLen = 6, OffIfindex = 8, OffMetric = 12, OffSrc = 16, OffDst = 32, OffVlanProto = 48,
        OffVlanTci = 50, OffSmac = 52, OffDmac = 58;

    internal static ulong Call(ref BpfMemory mem, ulong ctx, ulong paramsAddr, ulong plen, ulong flags, ulong r5)
    {
        if ((int)(uint)plen < Size) return Errno(BpfXdpHelpers.EINVAL);
        if ((flags & ~(ulong)(FlagDirect | FlagOutput | FlagSkipNeigh | FlagTbid | FlagSrc | FlagMark)) != 0) return Errno(BpfXdpHelpers.EINVAL);
        if (!mem.TryMap(paramsAddr, Size, true, out var p)) return Errno(BpfXdpHelpers.EINVAL);
        var fib = mem.Run?.Fib;
        return p[OffFamily] switch
        {
            AfInet => (ulong)(long)Lookup4(fib, p, (uint)flags),
            AfInet6 => (ulong)(long)Lookup6(fib, p, (uint)flags),
            _ => Errno(EAFNOSUPPORT),
        };
    }

    private static ulong Errno(int e) => (ulong)(long)-e;

    /// <summary>bpf_ipv4_fib_lookup on <paramref name="p"/>; returns BPF_FIB_LKUP_RET_* or -errno.</summary>
    public static int Lookup4(IBpfFib? fib, Span<byte> p, uint flags)
    {
        int ifindex = (int)BinaryPrimitives.ReadUInt32LittleEndian(p[OffIfindex..]);
        if (fib is null || !fib.TryDevice(ifindex, out bool fwd, out _)) return -ENODEV;
        // The ingress device's forwarding setting counts for BPF_FIB_LOOKUP_OUTPUT too.
        if (!fwd) return RetFwdDisabled;
        uint dst = BinaryPrimitives.ReadUInt32BigEndian(p[OffDst..]);
        // BPF_FIB_LOOKUP_OUTPUT looks up as a locally sent packet would, out of params->ifindex.
        var r = fib.Route4(dst, (flags & FlagDirect) != 0, (flags & FlagOutput) != 0 ? ifindex : 0);
        if (Forwardable(p, r) is int ret) return ret;
        bool viaV6 = false;
        if (r.GatewayFamily == 4) BinaryPrimitives.WriteUInt32BigEndian(p[OffDst..], r.Gateway4);
        else if (r.GatewayFamily == 6)
        {
            // An IPv4 route through an IPv6 nexthop (RFC 5549): the answer's family becomes AF_INET6.
            p[OffFamily] = AfInet6;
            BinaryPrimitives.WriteUInt128BigEndian(p[OffDst..], r.Gateway6);
            viaV6 = true;
        }
        if ((flags & FlagSkipNeigh) == 0)
        {
            bool found = viaV6
                ? fib.TryNeighbour6(r.Ifindex, r.Gateway6, p.Slice(OffDmac, 6))
                : fib.TryNeighbour4(r.Ifindex, BinaryPrimitives.ReadUInt32BigEndian(p[OffDst..]), p.Slice(OffDmac, 6));
            if (!found) return RetNoNeigh;
            fib.DeviceMac(r.Ifindex, p.Slice(OffSmac, 6));
        }
        SetFwdParams(p, r.Mtu);
        return RetSuccess;
    }

    /// <summary>bpf_ipv6_fib_lookup on <paramref name="p"/>.</summary>
    public static int Lookup6(IBpfFib? fib, Span<byte> p, uint flags)
    {
        // Link-local, multicast and loopback addresses are never forwarded (rt6_need_strict on either address),
        // checked before the device is.
        if (NeedStrict(BinaryPrimitives.ReadUInt128BigEndian(p[OffDst..])) || NeedStrict(BinaryPrimitives.ReadUInt128BigEndian(p[OffSrc..])))
            return RetNotFwded;
        int ifindex = (int)BinaryPrimitives.ReadUInt32LittleEndian(p[OffIfindex..]);
        if (fib is null || !fib.TryDevice(ifindex, out _, out bool fwd6)) return -ENODEV;
        if (!fwd6) return RetFwdDisabled;
        UInt128 dst = BinaryPrimitives.ReadUInt128BigEndian(p[OffDst..]);
        var r = fib.Route6(dst, (flags & FlagDirect) != 0);
        if (Forwardable(p, r) is int ret) return ret;
        if (r.GatewayFamily == 6) BinaryPrimitives.WriteUInt128BigEndian(p[OffDst..], r.Gateway6);
        if ((flags & FlagSkipNeigh) == 0)
        {
            if (!fib.TryNeighbour6(r.Ifindex, BinaryPrimitives.ReadUInt128BigEndian(p[OffDst..]), p.Slice(OffDmac, 6))) return RetNoNeigh;
            fib.DeviceMac(r.Ifindex, p.Slice(OffSmac, 6));
        }
        SetFwdParams(p, r.Mtu);
        return RetSuccess;
    }

    /// <summary>
    /// What both families do with the route: a blackhole, unreachable or prohibit route, or any other than unicast,
    /// answers at once; a packet longer than the route's MTU gets FRAG_NEEDED with tot_len set to the MTU; otherwise
    /// the answer's metric and egress ifindex are written and null lets the lookup go on to the neighbour.
    /// </summary>
    private static int? Forwardable(Span<byte> p, in BpfFibRoute r)
    {
        switch (r.Type)
        {
            case BpfFibRouteType.Blackhole: return RetBlackhole;
            case BpfFibRouteType.Unreachable: return RetUnreachable;
            case BpfFibRouteType.Prohibit: return RetProhibit;
            case BpfFibRouteType.Unicast: break;
            default: return RetNotFwded;
        }
        int totLen = BinaryPrimitives.ReadUInt16LittleEndian(p[OffTotLen..]);
        if (totLen > r.Mtu)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(p[OffTotLen..], (ushort)r.Mtu);
            return RetFragNeeded;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(p[OffMetric..], r.Metric);
        BinaryPrimitives.WriteUInt32LittleEndian(p[OffIfindex..], (uint)r.Ifindex);
        return null;
    }

    /// <summary>rt6_need_strict: ipv6_addr_type gives multicast (ff00::/8), link-local (fe80::/10) or loopback (::1).</summary>
    internal static bool NeedStrict(UInt128 a)
        => (a >> 120) == 0xff || (a >> 118) == (0xfe80 >> 6) || a == UInt128.One;

    // bpf_fib_set_fwd_params: no VLAN on the egress, the MTU into the tot_len union.
    private static void SetFwdParams(Span<byte> p, int mtu)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(p[OffVlanTci..], 0);
        BinaryPrimitives.WriteUInt16LittleEndian(p[OffVlanProto..], 0);
        if (mtu != 0) BinaryPrimitives.WriteUInt16LittleEndian(p[OffTotLen..], (ushort)mtu);
    }
}
