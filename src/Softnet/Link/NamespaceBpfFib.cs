using Softnet.Ip;
using Softnet.Xdp.Bpf.Helpers;

namespace Softnet.Link;

/// <summary>
/// A scenario namespace's routes (ip route), neighbours (ip neigh) and devices as bpf_fib_lookup sees them: the
/// namespace of the device an XDP program is attached to. Route metrics are 0 (the scenario's routes carry none) and
/// the path MTU is the egress device's MTU (no per-route mtu metric).
/// </summary>
public sealed class NamespaceBpfFib(Namespace ns) : IBpfFib
{
    public Namespace Namespace { get; } = ns;

    private Device? ByIndex(int ifindex)
    {
        foreach (var d in Namespace.Devices)
            if (d.Ifindex == ifindex) return d;
        return null;
    }

    public bool TryDevice(int ifindex, out bool forwarding4, out bool forwarding6)
    {
        var d = ByIndex(ifindex);
        forwarding4 = d is not null && Namespace.Forwarding(d);
        forwarding6 = d is not null && Namespace.DeviceForwarding6(d);
        return d is not null;
    }

    private static BpfFibRouteType Kind(RouteKind k) => k switch
    {
        RouteKind.Unicast => BpfFibRouteType.Unicast,
        RouteKind.Blackhole => BpfFibRouteType.Blackhole,
        RouteKind.Unreachable => BpfFibRouteType.Unreachable,
        RouteKind.Prohibit => BpfFibRouteType.Prohibit,
        _ => BpfFibRouteType.Other,
    };

    public BpfFibRoute Route4(uint dst, bool mainOnly, int oif)
    {
        // BPF_FIB_LOOKUP_DIRECT asks the main table, but while no custom rules exist the kernel keeps the local table
        // merged into the main trie (fib_trie, fib_unmerge only on a first rule): local addresses answer there too.
        _ = mainOnly;
        var r = Namespace.Routing.Lookup(dst, oif);
        if (r is null) return default;
        var route = new BpfFibRoute { Type = Kind(r.Type) };
        if (r.Device is { } dev)
        {
            route.Ifindex = dev.Ifindex;
            route.Mtu = dev.Mtu;
        }
        else if (route.Type == BpfFibRouteType.Unicast) route.Type = BpfFibRouteType.None;
        if (r.Gateway != 0)
        {
            route.GatewayFamily = 4;
            route.Gateway4 = r.Gateway;
        }
        return route;
    }

    public BpfFibRoute Route6(UInt128 dst, bool mainOnly)
    {
        var r = mainOnly ? Namespace.Routing6.LookupMain(dst) : Namespace.Routing6.Lookup(dst);
        if (r is null) return default;
        var route = new BpfFibRoute { Type = Kind(r.Type) };
        if (r.Device is { } dev)
        {
            route.Ifindex = dev.Ifindex;
            route.Mtu = dev.Mtu;
        }
        else if (route.Type == BpfFibRouteType.Unicast) route.Type = BpfFibRouteType.None;
        if (r.Gateway != UInt128.Zero)
        {
            route.GatewayFamily = 6;
            route.Gateway6 = r.Gateway;
        }
        return route;
    }

    public bool TryNeighbour4(int ifindex, uint addr, Span<byte> mac)
    {
        if (ByIndex(ifindex) is not { } d || Namespace.Neighbours.Find(d, addr) is not { Valid: true } n) return false;
        n.Mac.AsSpan(0, 6).CopyTo(mac);
        return true;
    }

    public bool TryNeighbour6(int ifindex, UInt128 addr, Span<byte> mac)
    {
        if (ByIndex(ifindex) is not { } d || Namespace.Neighbours.Find6(d, addr) is not { Valid: true } n) return false;
        n.Mac.AsSpan(0, 6).CopyTo(mac);
        return true;
    }

    public void DeviceMac(int ifindex, Span<byte> mac)
    {
        if (ByIndex(ifindex) is { } d) d.Mac.AsSpan(0, 6).CopyTo(mac);
    }
}
