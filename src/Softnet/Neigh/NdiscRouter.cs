using System.Buffers.Binary;
using System.Globalization;
using Softnet.Ip;
using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Neigh;

/// <summary>
/// A host's side of router discovery (ndisc_router_discovery): a router advertisement accepted on a device
/// (<see cref="Ipv6Addrconf.AcceptRa"/>: accept_ra 1 on a host, 2 also while forwarding) installs or removes the
/// default route through its link-local source (accept_ra_defrtr, not from one of this host's addresses unless
/// accept_ra_from_local, lifetime at least accept_ra_min_lft), takes its current hop limit as the device's hop_limit
/// (not below accept_ra_min_hop_limit) and its MTU option as the device's IPv6 mtu (accept_ra_mtu, between 1280 and the
/// link MTU), stops router solicitation; the router's source link-layer option makes its neighbour entry STALE
/// whatever accept_ra says. Not modelled: the route's expiry, reachable time and retrans timer, prefix information
/// (on-link routes, SLAAC addresses) and route information options.
/// </summary>
public static class NdiscRouter
{
    public const byte RouterAdvertisement = 134;
    private const byte OptMtu = 5;
    private const int RaHeader = 16;

    /// <summary>ndisc_router_discovery for the advertisement <paramref name="msg"/> (the IPv6 datagram is
    /// <paramref name="pkt"/>).</summary>
    internal static DropReason Receive(NetStack stack, Device dev, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> msg)
    {
        var ns = dev.Namespace;
        var saddr = Ipv6.Read(pkt[8..]);
        if (!Ipv6.IsLinkLocal(saddr)) return DropReason.NdiscInvalid;
        if (msg.Length < RaHeader) return DropReason.NdiscInvalid;
        var opts = msg[RaHeader..];
        if (!Ndisc.ParseOptions(opts, Ndisc.OptSourceLl, out var lladdr)) return DropReason.NdiscInvalid;
        bool accept = Ipv6Addrconf.AcceptRa(ns, dev);
        if (accept)
        {
            stack.Addrconf6?.RaReceived(dev);
            if (ns.Conf6(dev, "accept_ra_defrtr", 1) != 0 && (ns.Conf6(dev, "accept_ra_from_local", 0) != 0 || ns.FindAddress6(saddr, dev) == null))
                DefaultRouter(ns, dev, saddr, msg);
        }
        // Learn the router's link-layer address (NUD_STALE, overriding).
        if (!lladdr.IsEmpty) Ndisc.LearnStale(stack, dev, saddr, lladdr);
        if (accept && ns.Conf6(dev, "accept_ra_mtu", 1) != 0 && Mtu(opts) is uint mtu)
        {
            if (mtu >= Icmpv6.MinMtu && mtu <= (uint)dev.Mtu && ns.Mtu6(dev) != (int)mtu)
                ns.WriteSysctl($"net.ipv6.conf.{dev.Name}.mtu", mtu.ToString(CultureInfo.InvariantCulture));
        }
        return DropReason.None;
    }

    /// <summary>The default route through <paramref name="router"/> (rt6_add_dflt_router, removed by a zero lifetime)
    /// and the current hop limit.</summary>
    private static void DefaultRouter(Namespace ns, Device dev, UInt128 router, ReadOnlySpan<byte> msg)
    {
        int lifetime = BinaryPrimitives.ReadUInt16BigEndian(msg[6..]);
        if (lifetime == 0 || lifetime >= ns.Conf6(dev, "accept_ra_min_lft", 0))
        {
            var existing = ns.StaticRoutes6.FindIndex(r => r.PrefixLength == 0 && r.Gateway == router && r.Device == dev);
            bool changed = false;
            if (existing >= 0 && lifetime == 0) { ns.StaticRoutes6.RemoveAt(existing); changed = true; }
            else if (existing < 0 && lifetime != 0 && !ns.StaticRoutes6.Exists(r => r.PrefixLength == 0))
            {
                ns.StaticRoutes6.Add(new Route6 { Prefix = 0, PrefixLength = 0, Type = RouteKind.Unicast, Gateway = router, Device = dev });
                changed = true;
            }
            if (changed) ns.Compile();
        }
        byte hop = msg[4];
        if (hop != 0 && ns.Conf6(dev, "accept_ra_min_hop_limit", 1) <= hop && ns.HopLimit6(dev) != hop)
            ns.WriteSysctl($"net.ipv6.conf.{dev.Name}.hop_limit", hop.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>The first MTU option's value (ndisc_parse_options warns about a duplicate and keeps the first), or
    /// null.</summary>
    private static uint? Mtu(ReadOnlySpan<byte> opts)
    {
        while (opts.Length >= 2)
        {
            int l = opts[1] << 3;
            if (l == 0 || l > opts.Length) break;
            if (opts[0] == OptMtu && l >= 8) return BinaryPrimitives.ReadUInt32BigEndian(opts[4..]);
            opts = opts[l..];
        }
        return null;
    }
}
