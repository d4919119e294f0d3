using System.Globalization;
using Softnet.Ip;
using Softnet.Neigh;
using Softnet.Netfilter;
using Softnet.Packets;

namespace Softnet.Link;

/// <summary>One IPv4 address on a device (struct in_ifaddr).</summary>
public sealed record IfAddress(Device Device, uint Address, int PrefixLength, uint Broadcast)
{
    public uint Mask => Ipv4.Mask(PrefixLength);
    public uint Network => Address & Mask;
}

/// <summary>
/// A network namespace: devices, addresses, routes, neighbours, sysctls, and its netfilter state
/// (tables, conntrack, NAT). The path of <see cref="NetStack"/> runs against one of these (struct net).
/// </summary>
public sealed class Namespace : INetfilterHost
{
    public Namespace(string name)
    {
        Name = name;
        var lo = new Device(this, "lo", LinkKind.Get("loopback"), 1);
        Devices.Add(lo);
        Netfilter = new NetfilterTables();
        Netfilter.Host = this;
    }

    public string Name { get; }
    public List<Device> Devices { get; } = new();
    public List<IfAddress> Addresses { get; } = new();
    /// <summary>Routes added with `route add` (the main table's static part; connected routes are derived).</summary>
    public List<Route> StaticRoutes { get; } = new();
    public NeighbourTable Neighbours { get; } = new();
    public SysctlTable Sysctls { get; } = new();
    /// <summary>The namespace's netfilter state; tables are empty unless iptables.save was given.</summary>
    public NetfilterTables Netfilter { get; internal set; }
    /// <summary>An iptables.save was loaded (else iptables-save prints nothing, and no hook runs).</summary>
    public bool HasIptables { get; internal set; }

    /// <summary>The namespace's ip6tables tables, IPv6 conntrack and NAT66 (ns/NAME/ip6tables.save); null when it has none.</summary>
    public NetfilterTables? Netfilter6 { get; set; }
    public NamespaceCounters Counters { get; } = new();
    /// <summary>The namespace's SNMP MIB (net->mib): what nstat reads.</summary>
    public Telemetry.SnmpMib Mib { get; } = new();
    /// <summary>The key of TCP's initial sequence numbers and timestamp offsets (net_secret; the kernel's is random
    /// per boot, a scenario's fixed so replays repeat).</summary>
    public ulong TcpSecret { get; set; }
    /// <summary>The namespace's sockets (ns/NAME/sockets) and their lookup tables.</summary>
    public Transport.SocketTable Sockets { get; } = new();
    /// <summary>The namespace's IPv4 reassembly queues (net->ipv4.fqdir).</summary>
    public Ipv4Defrag Defrag { get; } = new();
    private int _nextIfindex = 2;

    internal int NextIfindex() => _nextIfindex++;

    public Device? Device(string name)
    {
        foreach (var d in Devices)
            if (d.Name == name) return d;
        return null;
    }

    // ---- sysctls ----

    public string? Sysctl(string key) => Sysctls.TryGetValue(key, out var v) ? v : null;

    private int SysctlInt(string key, int dflt)
        => Sysctls.TryGetValue(key, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i : dflt;

    /// <summary>net.ipv4.ip_forward (which sets conf.all.forwarding) or the device's own forwarding.</summary>
    public bool Forwarding(Device dev)
    {
        ref var c = ref DeviceConf(dev);
        return c.Forwarding;
    }

    /// <summary>rp_filter in effect on <paramref name="dev"/>: the maximum of conf.all and conf.DEV (0 off, 1 strict, 2 loose).</summary>
    public int RpFilter(Device dev) => DeviceConf(dev).RpFilter;

    /// <summary>IN_DEV_SOURCE_ROUTE: accept_source_route set in conf.all and on <paramref name="dev"/> (a device
    /// takes conf.default's value; the kernel's defaults are all 0, default 1).</summary>
    public bool AcceptSourceRoute(Device dev) => DeviceConf(dev).AcceptSourceRoute;

    /// <summary>The per-device values derived from the sysctls, recomputed when any sysctl changed.</summary>
    private ref Device.ConfCache DeviceConf(Device dev)
    {
        ref var c = ref dev.Conf;
        if (c.Version == Sysctls.Version + 1) return ref c;
        var own = Sysctl(dev.ConfKey(Link.Device.ConfForwarding, "forwarding"));
        c.Forwarding = own != null ? own == "1" : SysctlInt("net.ipv4.ip_forward", SysctlInt("net.ipv4.conf.all.forwarding", 0)) != 0;
        c.RpFilter = Math.Max(SysctlInt("net.ipv4.conf.all.rp_filter", 0), SysctlInt(dev.ConfKey(Link.Device.ConfRpFilter, "rp_filter"), SysctlInt("net.ipv4.conf.default.rp_filter", 0)));
        c.AcceptSourceRoute = SysctlInt("net.ipv4.conf.all.accept_source_route", 0) != 0
            && SysctlInt(dev.ConfKey(Link.Device.ConfAcceptSourceRoute, "accept_source_route"), SysctlInt("net.ipv4.conf.default.accept_source_route", 1)) != 0;
        c.Version = Sysctls.Version + 1;
        return ref c;
    }

    public int DefaultTtl => Conf.DefaultTtl;
    /// <summary>net.ipv4.icmp_ratelimit in milliseconds (token bucket per destination).</summary>
    public int IcmpRateLimitMs => Conf.IcmpRateLimitMs;
    public int IcmpRateMask => Conf.IcmpRateMask;
    public bool IcmpErrorsUseInboundIfaddr => Conf.IcmpErrorsUseInboundIfaddr;
    public bool BridgeNfCallIptables => Conf.BridgeNfCallIptables;
    public bool IcmpEchoIgnoreAll => Conf.IcmpEchoIgnoreAll;
    public bool IcmpEchoIgnoreBroadcasts => Conf.IcmpEchoIgnoreBroadcasts;
    /// <summary>net.ipv4.tcp_syncookies: 0 off, 1 when a listener's request queue overflows, 2 always.</summary>
    public int TcpSyncookies => Conf.TcpSyncookies;

    /// <summary>Namespace-wide sysctls the path reads, as numbers, re-read only when a sysctl changed.</summary>
    private ref NetConf Conf
    {
        get
        {
            if (_conf.Version != Sysctls.Version + 1)
            {
                _conf.DefaultTtl = SysctlInt("net.ipv4.ip_default_ttl", 64);
                _conf.IcmpRateLimitMs = SysctlInt("net.ipv4.icmp_ratelimit", 1000);
                _conf.IcmpRateMask = SysctlInt("net.ipv4.icmp_ratemask", 0x1818);
                _conf.IcmpErrorsUseInboundIfaddr = SysctlInt("net.ipv4.icmp_errors_use_inbound_ifaddr", 0) != 0;
                _conf.BridgeNfCallIptables = SysctlInt("net.bridge.bridge-nf-call-iptables", 0) != 0;
                _conf.IcmpEchoIgnoreAll = SysctlInt("net.ipv4.icmp_echo_ignore_all", 0) != 0;
                _conf.IcmpEchoIgnoreBroadcasts = SysctlInt("net.ipv4.icmp_echo_ignore_broadcasts", 1) != 0;
                _conf.TcpSyncookies = SysctlInt("net.ipv4.tcp_syncookies", 1);
                _conf.Version = Sysctls.Version + 1;
            }
            return ref _conf;
        }
    }

    private struct NetConf
    {
        public int Version, DefaultTtl, IcmpRateLimitMs, IcmpRateMask, TcpSyncookies;
        public bool IcmpErrorsUseInboundIfaddr, BridgeNfCallIptables, IcmpEchoIgnoreAll, IcmpEchoIgnoreBroadcasts;
    }

    private NetConf _conf;

    // ---- INetfilterHost over the namespace's addresses ----

    public RouteType AddressType(uint address, string? device)
    {
        if ((address >> 24) == 127) return RouteType.Local;
        if (address == 0xFFFFFFFF) return RouteType.Broadcast;
        if ((address >> 28) == 0xE) return RouteType.Multicast;
        var r = Routing.LookupLocal(address);
        if (r != null) return r.Type == RouteKind.Broadcast ? RouteType.Broadcast : RouteType.Local;
        return RouteType.Unicast;
    }

    public uint SelectAddress(string? device, uint nexthop) => SelectAddress(device is null ? null : Device(device), nexthop);

    /// <summary>inet_select_addr: an address of <paramref name="dev"/> on the subnet of <paramref name="dst"/>,
    /// else its first address, else any address of the namespace (not on lo).</summary>
    public uint SelectAddress(Device? dev, uint dst)
    {
        uint first = 0;
        if (dev != null)
            foreach (var a in Addresses)
            {
                if (a.Device != dev) continue;
                if (dst != 0 && (dst & a.Mask) == a.Network) return a.Address;
                if (first == 0) first = a.Address;
            }
        if (first != 0) return first;
        foreach (var a in Addresses)
            if (!a.Device.Kind.IsLoopback && (a.Address >> 24) != 127) return a.Address;
        return 0;
    }

    public uint DeviceAddress(string? device)
    {
        var dev = device is null ? null : Device(device);
        if (dev != null)
            foreach (var a in Addresses)
                if (a.Device == dev) return a.Address;
        return 0;
    }

    /// <summary>The routing tables, built from addresses, device state and static routes (<see cref="Compile"/>).</summary>
    public RouteTable Routing { get; private set; } = new();

    /// <summary>Rebuilds the local and main tables the way the kernel derives them (fib_add_ifaddr) plus the static routes.</summary>
    public void Compile()
    {
        var t = new RouteTable();
        foreach (var a in Addresses)
        {
            t.AddLocal(new Route { Prefix = a.Address, PrefixLength = 32, Type = RouteKind.Local, Device = a.Device, Source = a.Address });
            if (!a.Device.Up) continue;
            if (a.Broadcast != 0 && a.Broadcast != 0xFFFFFFFF)
                t.AddLocal(new Route { Prefix = a.Broadcast, PrefixLength = 32, Type = RouteKind.Broadcast, Device = a.Device, Source = a.Address });
            if (a.PrefixLength < 32 || a.Network != a.Address)
            {
                if (a.Network != 0)
                    t.AddMain(new Route { Prefix = a.Network, PrefixLength = a.PrefixLength, Type = a.Device.Kind.IsLoopback ? RouteKind.Local : RouteKind.Unicast, Device = a.Device, Source = a.Address, Connected = true });
                if (a.PrefixLength < 31)
                    t.AddLocal(new Route { Prefix = a.Network | ~a.Mask, PrefixLength = 32, Type = RouteKind.Broadcast, Device = a.Device, Source = a.Address });
            }
        }
        foreach (var r in StaticRoutes) t.AddMain(r);
        Routing = t;
    }

    public override string ToString() => Name;
}

/// <summary>Per-namespace counters of the IPv4 path. Conservation: every receive event on a device ends in
/// exactly one of delivered, forwarded, bridged, arp, or a drop.</summary>
public sealed class NamespaceCounters
{
    /// <summary>Frames received on a device of the namespace (a frame a bridge passes up counts again on the bridge).</summary>
    public long Received;
    public long Forwarded;
    public long Bridged;
    /// <summary>ARP frames handled (answered, learned from, or ignored).</summary>
    public long Arp;
    /// <summary>Packets generated here: ARP requests/replies, ICMP errors, TCP resets.</summary>
    public long Sent;
    /// <summary>Forwarded packets held in a neighbour queue when the replay ended (not yet resolved).</summary>
    public long NeighQueued;
    /// <summary>Fragments waiting in a reassembly queue now (held by ip_defrag, not yet merged or dropped).</summary>
    public long FragHeld;
    /// <summary>Fragments that became part of a reassembled datagram: the datagram travels on as one of them, the
    /// others end here.</summary>
    public long FragMerged;
    public Telemetry.DropCounters Drops { get; } = new();
    /// <summary>Delivered locally, by IP protocol number.</summary>
    public Dictionary<byte, long> Delivered { get; } = new();
    public long DeliveredTotal => Delivered.Values.Sum();
    /// <summary>ICMP echo requests to a local address, and the replies sent (icmp_echo).</summary>
    public long EchoRequests, EchoReplies;
    public long IcmpErrorsSent, IcmpRateLimited, TcpResetsSent;
    /// <summary>Delivered datagrams their transport protocol or socket then dropped (also in <see cref="Drops"/>).</summary>
    public long TransportDrops;

    public bool Conserved => Received == DeliveredTotal + Forwarded + Bridged + Arp + NeighQueued + FragHeld + FragMerged + Drops.Total - TransportDrops;
}
