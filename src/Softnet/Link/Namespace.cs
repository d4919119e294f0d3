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

/// <summary>One IPv6 address on a device (struct inet6_ifaddr); <paramref name="Kernel"/> for the link-local and
/// loopback addresses addrconf adds itself.</summary>
public sealed record Inet6Address(Device Device, UInt128 Address, int PrefixLength, bool NoDad, bool Kernel = false)
{
    public UInt128 Network => Address & Ipv6.Mask(PrefixLength);
}

/// <summary>
/// A network namespace: devices, addresses, routes, neighbours, sysctls, and its netfilter state
/// (tables, conntrack, NAT). The path of <see cref="NetStack"/> runs against one of these (struct net).
/// </summary>
public sealed class Namespace : INetfilterHost, Netfilter.IIp6NetfilterHost
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

    /// <summary>ns/NAME/cpuset: the CPUs its applications may run on (Docker's --cpuset-cpus); null: any.</summary>
    public IReadOnlyList<int>? CpuSet { get; set; }
    public List<IfAddress> Addresses { get; } = new();
    /// <summary>Routes added with `route add` (the main table's static part; connected routes are derived).</summary>
    public List<Route> StaticRoutes { get; } = new();
    /// <summary>IPv6 addresses added with `addr add` (the configured ones; <see cref="Addresses6"/> adds the kernel's).</summary>
    public List<Inet6Address> ConfiguredAddresses6 { get; } = new();
    /// <summary>Every IPv6 address in effect after <see cref="Compile"/>: configured, link-local, ::1.</summary>
    public List<Inet6Address> Addresses6 { get; private set; } = new();
    /// <summary>IPv6 routes added with `route add` / `-6 route add`.</summary>
    public List<Route6> StaticRoutes6 { get; } = new();
    public NeighbourTable Neighbours { get; } = new();
    public SysctlTable Sysctls { get; } = new();
    /// <summary>UDP ports a tunnel device of this namespace listens on (a VXLAN device's dstport).</summary>
    public List<ushort> UdpTunnelPorts { get; } = new();
    /// <summary>The namespace's netfilter state; tables are empty unless iptables.save was given.</summary>
    public NetfilterTables Netfilter { get; internal set; }
    /// <summary>An iptables.save was loaded (else iptables-save prints nothing, and no hook runs).</summary>
    public bool HasIptables { get; internal set; }

    /// <summary>The namespace's ip6tables tables, IPv6 conntrack and NAT66 (ns/NAME/ip6tables.save); null when it has none.</summary>
    public NetfilterTables? Netfilter6 { get; set; }
    public NamespaceCounters Counters { get; } = new();
    /// <summary>The namespace's SNMP MIB (net->mib): what nstat reads.</summary>
    public Telemetry.SnmpMib Mib { get; } = new();

    /// <summary>auto_flowlabels and flowlabel_state_ranges as numbers (<see cref="Ip.Ipv6FlowLabel"/>).</summary>
    internal Ip.Ipv6FlowLabel.Conf FlowLabelConf;
    /// <summary>The key of TCP's initial sequence numbers and timestamp offsets (net_secret; the kernel's is random
    /// per boot, a scenario's fixed so replays repeat).</summary>
    public ulong TcpSecret { get; set; }
    /// <summary>The namespace's sockets (ns/NAME/sockets) and their lookup tables.</summary>
    public Transport.SocketTable Sockets { get; } = new();
    /// <summary>The namespace's IPv4 reassembly queues (net->ipv4.fqdir).</summary>
    public Ipv4Defrag Defrag { get; } = new();
    /// <summary>The namespace's IPv6 reassembly queues (net->ipv6.fqdir).</summary>
    public Ipv6Defrag Defrag6 { get; } = new();
    /// <summary>The namespace's IPv6 conntrack reassembly queues (net->nf_frag.fqdir, nf_defrag_ipv6).</summary>
    public Netfilter.NfDefragIpv6 NfDefrag6 { get; } = new();
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

    /// <summary>Sysctls set by the scenario that Softnet keeps but does not act on, by key (the summary and the JSON
    /// report list them as "set, not modelled").</summary>
    public SortedDictionary<string, string> SysctlsNotModelled { get; } = new(StringComparer.Ordinal);

    /// <summary>
    /// Writes a sysctl with the side effects the kernel's handler has (the value is already checked):
    /// devinet_sysctl_forward/inet_forward_change — ip_forward and conf.all.forwarding are one value; writing it sets
    /// conf.default and every device (which then no longer follows default) and turns conf.all.accept_redirects to its
    /// negation; addrconf_fixup_forwarding/addrconf_disable_ipv6 — IPv6 all.forwarding and all.disable_ipv6 set default
    /// and every device. An IPv4 device key left unwritten follows conf.default (devinet_copy_dflt_conf); an IPv6 device
    /// took default's values when it was created and keeps them: writing default pins the value they had.
    /// <paramref name="createdBefore"/> tells the devices that existed when the write happened (the harness writes
    /// sysctl.conf before ip.batch makes the rest, which take default's values); null: all of them.
    /// </summary>
    public void WriteSysctl(string key, string value, Func<Device, bool>? createdBefore = null)
    {
        if (key is "net.ipv4.ip_forward" or "net.ipv4.conf.all.forwarding")
        {
            string old = Sysctl("net.ipv4.ip_forward") ?? Sysctl("net.ipv4.conf.all.forwarding") ?? "0";
            Sysctls["net.ipv4.ip_forward"] = value;
            Sysctls["net.ipv4.conf.all.forwarding"] = value;
            if (old == value) return;
            Sysctls["net.ipv4.conf.default.forwarding"] = value;
            Sysctls["net.ipv4.conf.all.accept_redirects"] = value == "0" ? "1" : "0";
            foreach (var d in Devices)
                if (createdBefore?.Invoke(d) != false) Sysctls[$"net.ipv4.conf.{d.Name}.forwarding"] = value;
            return;
        }
        if (key is "net.ipv6.conf.all.forwarding" or "net.ipv6.conf.all.disable_ipv6")
        {
            string what = key[(key.LastIndexOf('.') + 1)..];
            Sysctls[key] = value;
            Sysctls["net.ipv6.conf.default." + what] = value;
            foreach (var d in Devices)
                if (createdBefore?.Invoke(d) != false) Sysctls[$"net.ipv6.conf.{d.Name}.{what}"] = value;
            return;
        }
        const string v6dflt = "net.ipv6.conf.default.";
        if (key.StartsWith(v6dflt, StringComparison.Ordinal) && createdBefore != null)
        {
            // Each existing device without a value of its own keeps the one it took at creation: default's earlier
            // write, or (none yet) the kernel's initial value. A device's mtu is its own link's, never default's.
            string what = key[v6dflt.Length..];
            string? before = Sysctl(key);
            if (what != "mtu")
                foreach (var d in Devices)
                {
                    string own = $"net.ipv6.conf.{d.Name}.{what}";
                    if (!createdBefore(d) || Sysctls.ContainsKey(own)) continue;
                    if (before != null) Sysctls[own] = before;
                    else _v6Initial.Add(own);
                }
        }
        Sysctls[key] = value;
    }

    /// <summary>IPv6 device keys that keep the kernel's initial value although default was written after the device came.</summary>
    private readonly HashSet<string> _v6Initial = new(StringComparer.Ordinal);

    /// <summary>An IPv6 per-device value: the device's own, else (unless it predates a write of default) default's, else
    /// <paramref name="initial"/>.</summary>
    private int Sysctl6Dev(Device dev, int slot, string name, int initial)
    {
        string k = dev.ConfKey(slot, name);
        if (Sysctls.TryGetValue(k, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)) return i;
        if (_v6Initial.Contains(k)) return initial;
        return SysctlInt("net.ipv6.conf.default." + name, initial);
    }

    /// <summary>An IPv6 per-device key (idev->cnf.NAME) as the device holds it; see <see cref="Sysctl6Dev"/>. Not cached:
    /// for addrconf's bring-up, not the per-packet path.</summary>
    public int Conf6(Device dev, string name, int initial)
    {
        string k = $"net.ipv6.conf.{dev.Name}.{name}";
        if (Sysctls.TryGetValue(k, out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i)) return i;
        if (_v6Initial.Contains(k)) return initial;
        return SysctlInt("net.ipv6.conf.default." + name, initial);
    }

    /// <summary>A namespace-wide integer sysctl, <paramref name="dflt"/> when unset or not an integer.</summary>
    public int SysctlValue(string key, int dflt) => SysctlInt(key, dflt);

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
        // IN_DEV_FORWARD: the device's own value; one never written follows conf.default (a raw write of ip_forward, as
        // tests make, counts as all's).
        var own = Sysctl(dev.ConfKey(Link.Device.ConfForwarding, "forwarding")) ?? Sysctl("net.ipv4.conf.default.forwarding");
        c.Forwarding = own != null ? own != "0" : SysctlInt("net.ipv4.ip_forward", SysctlInt("net.ipv4.conf.all.forwarding", 0)) != 0;
        // IN_DEV_RPFILTER: IN_DEV_MAXCONF, the larger of conf.all and the device.
        c.RpFilter = Math.Max(SysctlInt("net.ipv4.conf.all.rp_filter", 0), Dev4(dev, Link.Device.ConfRpFilter, "rp_filter", 0));
        // IN_DEV_SOURCE_ROUTE: IN_DEV_ANDCONF (the kernel's defaults: all 0, default 1).
        c.AcceptSourceRoute = SysctlInt("net.ipv4.conf.all.accept_source_route", 0) != 0
            && Dev4(dev, Link.Device.ConfAcceptSourceRoute, "accept_source_route", 1) != 0;
        // IN_DEV_ACCEPT_LOCAL: IN_DEV_ORCONF.
        c.AcceptLocal = SysctlInt("net.ipv4.conf.all.accept_local", 0) != 0 || Dev4(dev, Link.Device.ConfAcceptLocal, "accept_local", 0) != 0;
        c.SendRedirects = SysctlInt("net.ipv4.conf.all.send_redirects", 1) != 0 || Dev4(dev, Link.Device.ConfSendRedirects, "send_redirects", 1) != 0;
        c.SharedMedia = SysctlInt("net.ipv4.conf.all.shared_media", 1) != 0 || Dev4(dev, Link.Device.ConfSharedMedia, "shared_media", 1) != 0;
        // IN_DEV_RX_REDIRECTS: a forwarding device wants accept_redirects in conf.all and on itself, a host in either
        // (conf.all's follows ip_forward: writing it sets all.accept_redirects to its negation).
        bool allRedirects = SysctlInt("net.ipv4.conf.all.accept_redirects", 1) != 0, devRedirects = Dev4(dev, Link.Device.ConfAcceptRedirects, "accept_redirects", 1) != 0;
        c.AcceptRedirects = c.Forwarding ? allRedirects && devRedirects : allRedirects || devRedirects;
        c.SecureRedirects = SysctlInt("net.ipv4.conf.all.secure_redirects", 1) != 0 || Dev4(dev, Link.Device.ConfSecureRedirects, "secure_redirects", 1) != 0;
        c.ArpIgnore = Math.Max(SysctlInt("net.ipv4.conf.all.arp_ignore", 0), Dev4(dev, Link.Device.ConfArpIgnore, "arp_ignore", 0));
        c.ArpAnnounce = Math.Max(SysctlInt("net.ipv4.conf.all.arp_announce", 0), Dev4(dev, Link.Device.ConfArpAnnounce, "arp_announce", 0));
        // IPv6: the device's own value (what writing `all` gave every device), else what default was when it came.
        // (disable_ipv6 and forwarding fall back to all's for tests that write all raw, without WriteSysctl.)
        c.Disable6 = Sysctl6Dev(dev, Link.Device.Conf6Disable, "disable_ipv6", SysctlInt("net.ipv6.conf.all.disable_ipv6", 0)) != 0;
        c.Forwarding6 = Sysctl6Dev(dev, Link.Device.Conf6Forwarding, "forwarding", SysctlInt("net.ipv6.conf.all.forwarding", 0)) != 0;
        c.HopLimit6 = Sysctl6Dev(dev, Link.Device.Conf6HopLimit, "hop_limit", 64);
        c.Mtu6 = SysctlInt($"net.ipv6.conf.{dev.Name}.mtu", 0);
        c.AddrGenMode6 = Sysctl6Dev(dev, Link.Device.Conf6AddrGenMode, "addr_gen_mode", 0);
        c.Version = Sysctls.Version + 1;
        return ref c;
    }

    /// <summary>An IPv4 per-device value: the device's own, else conf.default's (devinet_copy_dflt_conf), else the initial.</summary>
    private int Dev4(Device dev, int slot, string name, int initial)
        => SysctlInt(dev.ConfKey(slot, name), SysctlInt("net.ipv4.conf.default." + name, initial));

    /// <summary>IN_DEV_ACCEPT_LOCAL: conf.all or the device accepts packets whose source is one of this host's addresses.</summary>
    public bool AcceptLocal(Device dev) => DeviceConf(dev).AcceptLocal;

    /// <summary>IN_DEV_TX_REDIRECTS: send_redirects in conf.all or on the device.</summary>
    public bool SendRedirects(Device dev) => DeviceConf(dev).SendRedirects;

    /// <summary>IN_DEV_RX_REDIRECTS and IN_DEV_SEC_REDIRECTS on <paramref name="dev"/>.</summary>
    public bool AcceptRedirects(Device dev) => DeviceConf(dev).AcceptRedirects;
    public bool SecureRedirects(Device dev) => DeviceConf(dev).SecureRedirects;

    /// <summary>IN_DEV_SHARED_MEDIA: shared_media in conf.all or on the device (every host on the link reaches every other).</summary>
    public bool SharedMedia(Device dev) => DeviceConf(dev).SharedMedia;

    /// <summary>IN_DEV_ARP_IGNORE and IN_DEV_ARP_ANNOUNCE: the larger of conf.all and the device.</summary>
    public int ArpIgnore(Device dev) => DeviceConf(dev).ArpIgnore;
    public int ArpAnnounce(Device dev) => DeviceConf(dev).ArpAnnounce;

    /// <summary>inet_addr_onlink: an address of <paramref name="dev"/> whose subnet holds both <paramref name="a"/> and
    /// <paramref name="b"/>.</summary>
    public bool AddrOnlink(Device dev, uint a, uint b)
    {
        foreach (var ifa in Addresses)
            if (ifa.Device == dev && (a & ifa.Mask) == ifa.Network && (b & ifa.Mask) == ifa.Network) return true;
        return false;
    }

    /// <summary>disable_ipv6 in effect on <paramref name="dev"/> (ip6_rcv_core and ip6_output drop everything then).</summary>
    public bool Ipv6Disabled(Device dev) => DeviceConf(dev).Disable6;

    /// <summary>The device's own IPv6 forwarding (ndisc's router flag, the routers' groups and anycast).</summary>
    public bool DeviceForwarding6(Device dev) => DeviceConf(dev).Forwarding6;

    /// <summary>idev->cnf.mtu6: the device's net.ipv6.conf.DEV.mtu where written (it starts as, and follows changes of,
    /// the link MTU), the MTU ip6_mtu gives IPv6 routes out of the device.</summary>
    public int Mtu6(Device dev)
    {
        ref var c = ref DeviceConf(dev);
        return c.Mtu6 > 0 ? c.Mtu6 : dev.Mtu;
    }

    /// <summary>The device's hop_limit (ip6_dst_hoplimit for what this host sends out of it).</summary>
    public int HopLimit6(Device dev) => DeviceConf(dev).HopLimit6;

    /// <summary>net.ipv6.conf.all.forwarding: what ip6_forward checks.</summary>
    public bool Forwarding6 => Conf.Forwarding6;
    /// <summary>net.ipv6.icmp.ratelimit in milliseconds (default 100 on 6.18).</summary>
    public int Icmp6RateLimitMs => Conf.Icmp6RateLimitMs;
    /// <summary>net.ipv6.icmp.ratemask (a 256-bit map, "0-1,3-127" by default): the ICMPv6 types the rate limits apply to.</summary>
    public bool Icmp6RateLimited(byte type) => (Conf.Icmp6RateMask![type >> 6] >> (type & 63) & 1) != 0;
    public bool Icmp6EchoIgnoreAll => Conf.Icmp6EchoIgnoreAll;
    /// <summary>net.ipv6.ip6frag_time in seconds, and the memory thresholds.</summary>
    public int Ip6FragTime => Conf.Ip6FragTime;
    public long Ip6FragHighThresh => Conf.Ip6FragHighThresh;

    public int DefaultTtl => Conf.DefaultTtl;
    /// <summary>net.ipv4.icmp_ratelimit in milliseconds (token bucket per destination).</summary>
    public int IcmpRateLimitMs => Conf.IcmpRateLimitMs;
    public int IcmpRateMask => Conf.IcmpRateMask;
    /// <summary>net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst: the namespace's ICMP token bucket (<see cref="IcmpGlobal"/>).</summary>
    public int IcmpMsgsPerSec => Conf.IcmpMsgsPerSec;
    public int IcmpMsgsBurst => Conf.IcmpMsgsBurst;
    /// <summary>net->ipv4.icmp_global_credit and icmp_global_stamp.</summary>
    internal Ip.IcmpGlobalBucket IcmpGlobal = Ip.IcmpGlobalBucket.Create();
    /// <summary>net.ipv4.tcp_synack_retries: SYN-ACKs a request sends again before it is dropped;
    /// net.ipv4.tcp_max_syn_backlog: without syncookies, the last quarter of it is kept for proven peers.</summary>
    public int TcpSynackRetries => Conf.TcpSynackRetries;
    /// <summary>net.ipv4.tcp_fastopen: client (0x1) and server (0x2) flags, 0x200 no cookie needed, 0x400 every listener.</summary>
    public int TcpFastopen => Conf.TcpFastopen;
    /// <summary>net.ipv4.tcp_fastopen_key: the primary siphash key of Fast Open cookies and the backup one a cookie may
    /// also match. The kernel's is random until written; a scenario's is 0 until set, so a replay is reproducible.</summary>
    public (ulong K0, ulong K1, (ulong K0, ulong K1)? Backup) TcpFastopenKey => Conf.TcpFastopenKey;
    public int TcpMaxSynBacklog => Conf.TcpMaxSynBacklog;
    /// <summary>net.ipv4.tcp_dsack: D-SACK blocks in the ACKs of duplicate data.</summary>
    public bool TcpDsack => Conf.TcpDsack;
    public bool IcmpErrorsUseInboundIfaddr => Conf.IcmpErrorsUseInboundIfaddr;
    public bool BridgeNfCallIptables => Conf.BridgeNfCallIptables;
    /// <summary>net.bridge.bridge-nf-call-ip6tables: bridged IPv6 frames cross the IPv6 hooks (br_nf_pre_routing_ipv6).</summary>
    public bool BridgeNfCallIp6tables => Conf.BridgeNfCallIp6tables;
    public bool IcmpEchoIgnoreAll => Conf.IcmpEchoIgnoreAll;
    public bool IcmpEchoIgnoreBroadcasts => Conf.IcmpEchoIgnoreBroadcasts;
    /// <summary>net.core.rmem_default and rmem_max: the kernel's global values (init_net's, read-only in other
    /// namespaces); a scenario sets them once for every namespace (ScenarioLoader's global net.core keys).</summary>
    public int RmemDefault => Conf.RmemDefault;
    public int RmemMax => Conf.RmemMax;
    /// <summary>net.ipv4.tcp_rmem[1] and [2]: a TCP socket's initial receive buffer and the most it grows to.</summary>
    public int TcpRmemDefault => Conf.TcpRmem1;
    public int TcpRmemMax => Conf.TcpRmem2;
    /// <summary>net.ipv4.tcp_timestamps (0 off, 1 with a random offset per connection, 2 without), tcp_sack,
    /// tcp_window_scaling: what a SYN's options may turn on.</summary>
    public int TcpTimestamps => Conf.TcpTimestamps;
    public bool TcpSack => Conf.TcpSack;
    public bool TcpWindowScaling => Conf.TcpWindowScaling;
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
                _conf.IcmpMsgsPerSec = SysctlInt("net.ipv4.icmp_msgs_per_sec", 1000);
                _conf.IcmpMsgsBurst = SysctlInt("net.ipv4.icmp_msgs_burst", 50);
                _conf.TcpDsack = SysctlInt("net.ipv4.tcp_dsack", 1) != 0;
                _conf.TcpSynackRetries = SysctlInt("net.ipv4.tcp_synack_retries", 5);
                _conf.TcpFastopen = SysctlInt("net.ipv4.tcp_fastopen", 1);
                _conf.TcpFastopenKey = Transport.TcpFastOpen.ParseKey(Sysctl("net.ipv4.tcp_fastopen_key") ?? "") ?? default;
                // tcp_sk_init: max(128, ehash buckets / 128), 2048 on this host.
                _conf.TcpMaxSynBacklog = SysctlInt("net.ipv4.tcp_max_syn_backlog", 2048);
                _conf.IcmpErrorsUseInboundIfaddr = SysctlInt("net.ipv4.icmp_errors_use_inbound_ifaddr", 0) != 0;
                _conf.BridgeNfCallIptables = SysctlInt("net.bridge.bridge-nf-call-iptables", 0) != 0;
                _conf.BridgeNfCallIp6tables = SysctlInt("net.bridge.bridge-nf-call-ip6tables", 0) != 0;
                _conf.IcmpEchoIgnoreAll = SysctlInt("net.ipv4.icmp_echo_ignore_all", 0) != 0;
                _conf.IcmpEchoIgnoreBroadcasts = SysctlInt("net.ipv4.icmp_echo_ignore_broadcasts", 1) != 0;
                _conf.Forwarding6 = SysctlInt("net.ipv6.conf.all.forwarding", 0) != 0;
                _conf.Icmp6RateLimitMs = SysctlInt("net.ipv6.icmp.ratelimit", 100);
                _conf.Icmp6RateMask = LargeBitmap(Sysctl("net.ipv6.icmp.ratemask") ?? "0-1,3-127");
                _conf.Icmp6EchoIgnoreAll = SysctlInt("net.ipv6.icmp.echo_ignore_all", 0) != 0;
                _conf.Ip6FragTime = SysctlInt("net.ipv6.ip6frag_time", 60);
                _conf.Ip6FragHighThresh = SysctlInt("net.ipv6.ip6frag_high_thresh", 4 * 1024 * 1024);
                _conf.TcpSyncookies = SysctlInt("net.ipv4.tcp_syncookies", 1);
                // tcp_rmem as this host has it (tcp_init: the top end from the memory, 32 MB here).
                var rmem = (Sysctl("net.ipv4.tcp_rmem") ?? "").Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                _conf.TcpRmem1 = rmem.Length > 1 && int.TryParse(rmem[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int r1) ? r1 : 131072;
                _conf.TcpRmem2 = rmem.Length > 2 && int.TryParse(rmem[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out int r2) ? r2 : 33554432;
                _conf.TcpTimestamps = SysctlInt("net.ipv4.tcp_timestamps", 1);
                // The kernel's defaults (SK_RMEM_MAX); a host may have raised them (this one's rmem_max is 4 MB).
                _conf.RmemDefault = SysctlInt("net.core.rmem_default", 212992);
                _conf.RmemMax = SysctlInt("net.core.rmem_max", 212992);
                _conf.TcpSack = SysctlInt("net.ipv4.tcp_sack", 1) != 0;
                _conf.TcpWindowScaling = SysctlInt("net.ipv4.tcp_window_scaling", 1) != 0;
                _conf.Version = Sysctls.Version + 1;
            }
            return ref _conf;
        }
    }

    private struct NetConf
    {
        public ulong[]? Icmp6RateMask;
        public (ulong K0, ulong K1, (ulong K0, ulong K1)? Backup) TcpFastopenKey;
        public int IcmpMsgsPerSec, IcmpMsgsBurst, TcpSynackRetries, TcpMaxSynBacklog, TcpFastopen;
        public bool TcpDsack;
        public int Version, DefaultTtl, IcmpRateLimitMs, IcmpRateMask, TcpSyncookies, Icmp6RateLimitMs, Ip6FragTime, TcpRmem1, TcpRmem2, TcpTimestamps;
        public bool TcpSack, TcpWindowScaling;
        public int RmemDefault, RmemMax;
        public long Ip6FragHighThresh;
        public bool IcmpErrorsUseInboundIfaddr, BridgeNfCallIptables, BridgeNfCallIp6tables, IcmpEchoIgnoreAll, IcmpEchoIgnoreBroadcasts, Forwarding6, Icmp6EchoIgnoreAll;
    }

    private NetConf _conf;

    /// <summary>proc_do_large_bitmap's text (comma-separated numbers and ranges) as 256 bits.</summary>
    private static ulong[] LargeBitmap(string text)
    {
        var bits = new ulong[4];
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dash = part.IndexOf('-');
            if (!int.TryParse(dash < 0 ? part : part[..dash], NumberStyles.None, CultureInfo.InvariantCulture, out int lo)) continue;
            int hi = lo;
            if (dash >= 0 && !int.TryParse(part[(dash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out hi)) continue;
            for (int b = lo; b <= hi && b < 256; b++) bits[b >> 6] |= 1UL << (b & 63);
        }
        return bits;
    }

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
        Compile6();
    }

    /// <summary>The IPv6 tables and addresses (struct net's fib6 tables): what addrconf installs for an up device with
    /// IPv6 on — ::1 on lo, the EUI-64 link-local (addr_gen_mode 0) once the link has carrier, per address a local
    /// route and its prefix route, the subnet-router anycast while the device forwards, ff00::/8 — then the static routes.</summary>
    public Route6Table Routing6 { get; private set; } = new();

    private HashSet<(Device, UInt128)> _groups6 = new();
    private Dictionary<Device, Route6> _linkLocal6 = new();

    /// <summary>The fe80::/64 route of <paramref name="dev"/> (RT6_LOOKUP_F_IFACE for a link-local destination), or null.</summary>
    public Route6? LinkLocalRoute6(Device dev) => _linkLocal6.TryGetValue(dev, out var r) ? r : null;

    private void Compile6()
    {
        var t = new Route6Table();
        var all = new List<Inet6Address>();
        var groups = new HashSet<(Device, UInt128)>();
        var ll = new Dictionary<Device, Route6>();
        foreach (var dev in Devices)
        {
            if (!dev.Up || Ipv6Disabled(dev)) continue;
            if (dev.Kind.IsLoopback)
            {
                all.Add(new Inet6Address(dev, Ipv6.Loopback, 128, true, Kernel: true));
                t.AddLocal(new Route6 { Prefix = Ipv6.Loopback, PrefixLength = 128, Type = RouteKind.Local, Device = dev, Connected = true });
                continue;
            }
            bool carrier = dev.Carrier;
            foreach (var a in ConfiguredAddresses6)
                if (a.Device == dev) all.Add(a);
            if (carrier && DeviceConf(dev).AddrGenMode6 == 0)
                all.Add(new Inet6Address(dev, Ipv6.LinkLocalFromMac(dev.Mac), 64, false, Kernel: true));
            t.AddLocal(new Route6 { Prefix = Ipv6.Make(0xff00_0000_0000_0000UL, 0), PrefixLength = 8, Type = RouteKind.Multicast, Device = dev, Connected = true });
            groups.Add((dev, Ipv6.AllNodes));
            if (DeviceForwarding6(dev)) groups.Add((dev, Ipv6.AllRouters));
        }
        foreach (var a in all)
        {
            if (a.Device.Kind.IsLoopback) continue;
            t.AddLocal(new Route6 { Prefix = a.Address, PrefixLength = 128, Type = RouteKind.Local, Device = a.Device, Source = a.Address, Connected = true });
            groups.Add((a.Device, Ipv6.SolicitedNode(a.Address)));
            if (a.PrefixLength < 128)
            {
                var r = new Route6 { Prefix = a.Network, PrefixLength = a.PrefixLength, Type = RouteKind.Unicast, Device = a.Device, Connected = true };
                t.AddMain(r);
                // fe80::/64 is every such device's: the table keeps one, a link-local lookup takes the device's own.
                if (Ipv6.IsLinkLocal(a.Address) && a.PrefixLength == 64) ll[a.Device] = r;
            }
            if (a.PrefixLength < 127 && DeviceForwarding6(a.Device))
            {
                t.AddLocal(new Route6 { Prefix = a.Network, PrefixLength = 128, Type = RouteKind.Anycast, Device = a.Device, Connected = true });
                groups.Add((a.Device, Ipv6.SolicitedNode(a.Network)));
            }
        }
        foreach (var r in StaticRoutes6) t.AddMain(r);
        Addresses6 = all;
        _groups6 = groups;
        _linkLocal6 = ll;
        Routing6 = t;
    }

    /// <summary>MASQUERADE's and REJECT's ipv6_dev_get_saddr (ip6tables): <see cref="SelectAddress6"/> for the named
    /// output device.</summary>
    bool Netfilter.IIp6NetfilterHost.TrySelectSource(string? device, UInt128 dst, out UInt128 src)
    {
        src = SelectAddress6(device != null ? Device(device) : null, dst);
        return src != 0;
    }

    /// <summary>addrtype LOCAL for IPv6 (ipv6_chk_addr).</summary>
    bool Netfilter.IIp6NetfilterHost.IsLocal(UInt128 address) => FindAddress6(address) != null;

    /// <summary>ipv6_chk_mcast_addr: <paramref name="dev"/> has joined <paramref name="group"/>.</summary>
    public bool JoinedGroup6(Device dev, UInt128 group) => _groups6.Contains((dev, group));

    /// <summary>ipv6_chk_addr: <paramref name="a"/> is one of the namespace's IPv6 addresses (on <paramref name="dev"/> when given).</summary>
    public Inet6Address? FindAddress6(UInt128 a, Device? dev = null)
    {
        foreach (var x in Addresses6)
            if (x.Address == a && (dev == null || x.Device == dev)) return x;
        return null;
    }

    /// <summary>ipv6_dev_get_saddr, in short: an address of <paramref name="dev"/> of the destination's scope sharing the
    /// longest prefix with it, else of a wider scope, else any device's (lo's ::1 only for a loopback destination).
    /// 0 when there is none.</summary>
    public UInt128 SelectAddress6(Device? dev, UInt128 dst)
    {
        int want = Ipv6.Scope(dst);
        UInt128 best = 0;
        int bestScore = -1;
        foreach (var a in Addresses6)
        {
            if (a.Address == Ipv6.Loopback && dst != Ipv6.Loopback) continue;
            int scope = Ipv6.Scope(a.Address);
            // Rule 2: the destination's scope first, then a wider one, a narrower one last; rule 5: the outgoing
            // device; rule 8: the longest common prefix.
            int s = (scope == want ? 3 : scope > want ? 2 : 0) * 1000 + (a.Device == dev ? 500 : 0) + Ipv6.CommonPrefix(a.Address, dst);
            if (dev != null && a.Device != dev && scope <= 2) continue;
            if (s > bestScore) { best = a.Address; bestScore = s; }
        }
        return best;
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
