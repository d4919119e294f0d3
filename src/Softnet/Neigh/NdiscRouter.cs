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
/// link MTU), takes its prefixes (accept_ra_pinfo: on-link routes, SLAAC addresses), stops router solicitation; the
/// router's source link-layer option makes its neighbour entry STALE whatever accept_ra says. Not modelled: route and
/// address lifetimes past zero or not, reachable time and retrans timer, route information options.
/// </summary>
public static class NdiscRouter
{
    public const byte RouterAdvertisement = 134;
    private const byte OptMtu = 5, OptPrefix = 3;
    private const int PrefixInfoLength = 32;
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
        if (!accept) return DropReason.None;
        if (ns.Conf6(dev, "accept_ra_pinfo", 1) != 0)
            for (var o = opts; o.Length >= 2 && o[1] != 0 && o[1] << 3 <= o.Length; o = o[(o[1] << 3)..])
                if (o[0] == OptPrefix && o[1] << 3 >= PrefixInfoLength) Prefix(stack, dev, o[..PrefixInfoLength]);
        if (ns.Conf6(dev, "accept_ra_mtu", 1) != 0 && Mtu(opts) is uint mtu)
        {
            if (mtu >= Icmpv6.MinMtu && mtu <= (uint)dev.Mtu && ns.Mtu6(dev) != (int)mtu)
                ns.WriteSysctl($"net.ipv6.conf.{dev.Name}.mtu", mtu.ToString(CultureInfo.InvariantCulture));
        }
        return DropReason.None;
    }

    /// <summary>addrconf_prefix_rcv for one prefix information option: not for a multicast or link-local prefix, nor
    /// with a preferred lifetime past the valid one; on-link (L): the prefix route, removed by a zero valid lifetime;
    /// autonomous (A) with conf autoconf: a /64's address from the prefix and the EUI-64 interface identifier (addr_gen_mode
    /// eui64 or none; stable privacy and random are not modelled), which goes through addrconf_dad_start. Lifetimes
    /// are not modelled past zero or not.</summary>
    private static void Prefix(NetStack stack, Device dev, ReadOnlySpan<byte> o)
    {
        var ns = dev.Namespace;
        int plen = o[2];
        bool onlink = (o[3] & 0x80) != 0, autoconf = (o[3] & 0x40) != 0;
        uint valid = BinaryPrimitives.ReadUInt32BigEndian(o[4..]), preferred = BinaryPrimitives.ReadUInt32BigEndian(o[8..]);
        var prefix = Ipv6.Read(o[16..]);
        if (plen > 128 || Ipv6.IsMulticast(prefix) || Ipv6.IsLinkLocal(prefix) || preferred > valid) return;
        bool changed = false;
        if (onlink)
        {
            var net = prefix & Ipv6.Mask(plen);
            int at = ns.StaticRoutes6.FindIndex(r => r.PrefixLength == plen && r.Prefix == net && r.Gateway == 0 && r.Device == dev);
            if (at >= 0 && valid == 0) { ns.StaticRoutes6.RemoveAt(at); changed = true; }
            else if (at < 0 && valid != 0)
            {
                ns.StaticRoutes6.Add(new Route6 { Prefix = net, PrefixLength = plen, Type = RouteKind.Unicast, Device = dev });
                changed = true;
            }
        }
        Inet6Address? added = null;
        if (autoconf && plen == 64 && valid != 0 && ns.Conf6(dev, "autoconf", 1) != 0 && ns.Conf6(dev, "addr_gen_mode", 0) is 0 or 1)
        {
            var addr = (prefix & Ipv6.Mask(64)) | (Ipv6.LinkLocalFromMac(dev.Mac) & ~Ipv6.Mask(64));
            if (ns.FindAddress6(addr, dev) == null)
            {
                added = new Inet6Address(dev, addr, 64, false, Kernel: true);
                ns.ConfiguredAddresses6.Add(added);
                changed = true;
            }
        }
        // DAD starts before the tables are remade: a device whose bring-up Softnet did not run takes its settled state
        // from the addresses it had.
        if (added != null) Ipv6Addrconf.AddressAdded(stack, added);
        if (changed) ns.Compile();
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
