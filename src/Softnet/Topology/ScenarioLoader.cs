using Softnet.Link;
using Softnet.Neigh;
using System.Globalization;
using Softnet.Ip;
using Softnet.Netfilter;
using Softnet.Netfilter.Conntrack;
using Softnet.Packets;

namespace Softnet.Topology;

/// <summary>A scenario file Softnet cannot load, naming file and line.</summary>
public sealed class ScenarioFormatException(string file, int line, string reason) : Exception($"{file}:{line}: {reason}")
{
    public string File { get; } = file;
    public int Line { get; } = line;
    public string Reason { get; } = reason;
}

/// <summary>
/// Loads a scenario folder — the same files the kernel-comparison harness feeds to iproute2, iptables-restore
/// and sysctl:
/// <list type="bullet">
/// <item>links.batch: `ip -batch` lines run in the caller's namespace: `netns add N` and
/// `link add NAME netns N [address MAC] [mtu N] type veth peer name P netns M [address MAC] [mtu N]`
/// (both ends need `netns`, or the kernel would create them in the harness's own namespace);</item>
/// <item>ns/NAME/ip.batch: `ip -batch` lines run inside NAME: `link add NAME [address MAC] type bridge
/// [mcast_snooping 0|1] [stp_state 0]`, veth pairs, `link set [dev] DEV up|down|master BR|nomaster|address MAC|mtu N`,
/// `addr add A/len [brd +|B] dev DEV`, `route add default|PREFIX via GW [dev DEV] [src A]`,
/// `route add PREFIX dev DEV [src A]`, `route add blackhole|unreachable|prohibit PREFIX`,
/// `neigh add A lladdr MAC dev DEV [nud permanent]`; IPv6 versions of addr/route/neigh add, told by their addresses
/// or a leading `-6` (`addr add 2001:db8::1/64 dev eth0 [nodad]`, `route add PREFIX|default via GW [dev DEV]`,
/// `route add unreachable|prohibit|blackhole PREFIX`, `neigh add ...`), the link-local address and the kernel's routes
/// derived as addrconf derives them (<see cref="Namespace.Compile"/>);</item>
/// <item>ns/NAME/sysctl.conf as `sysctl -p` reads it: every key a network namespace of Linux 6.18 has (and host keys
/// such as kernel.* and vm.*), checked as the kernel checks it (<see cref="SysctlCatalogue"/>); the keys Softnet does
/// not act on are kept and reported as "set, not modelled";</item>
/// <item>ns/NAME/iptables.save, ns/NAME/sockets (<see cref="SocketsFile"/>) and ns/NAME/sysfs (<see cref="SysfsFile"/>:
/// RPS/RFS on a device's RX queue), all optional.</item>
/// </list>
/// Anything else is rejected with file:line, as are commands the kernel itself would refuse (a gateway
/// that is not on a connected subnet, a route via a down device, a duplicate address or route).
/// </summary>
public static class ScenarioLoader
{
    public static Scenario Load(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"scenario folder '{dir}' does not exist");
        var sc = new Scenario { Directory = dir };
        string links = Path.Combine(dir, "links.batch");
        if (!File.Exists(links)) throw new ScenarioFormatException(links, 0, "links.batch is missing (it creates the namespaces)");
        RunBatch(sc, null, links);
        string nsDir = Path.Combine(dir, "ns");
        if (System.IO.Directory.Exists(nsDir))
        {
            var names = System.IO.Directory.GetDirectories(nsDir).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
            // The kernel harness writes sysctl.conf after links.batch and before ip.batch: an IPv6 device links.batch made
            // predates the writes to conf.default, one ip.batch makes takes default's values.
            var early = sc.Namespaces.SelectMany(n => n.Devices).ToHashSet();
            foreach (var name in names)
            {
                var ns = sc.Namespace(name!) ?? throw new ScenarioFormatException(Path.Combine(nsDir, name!), 0, $"namespace '{name}' is not created by links.batch (netns add {name})");
                string batch = Path.Combine(nsDir, name!, "ip.batch");
                if (File.Exists(batch)) RunBatch(sc, ns, batch);
                string bridge = Path.Combine(nsDir, name!, "bridge.batch");
                if (File.Exists(bridge)) BridgeBatch.Run(ns, bridge);
            }
            foreach (var name in names)
            {
                var ns = sc.Namespace(name!)!;
                string sysctl = Path.Combine(nsDir, name!, "sysctl.conf");
                if (File.Exists(sysctl)) LoadSysctl(ns, sysctl, early.Contains);
                string ipt = Path.Combine(nsDir, name!, "iptables.save");
                if (File.Exists(ipt)) LoadIptables(ns, ipt);
                string ip6t = Path.Combine(nsDir, name!, "ip6tables.save");
                if (File.Exists(ip6t)) LoadIp6tables(ns, ip6t);
                ApplyConntrackSysctls(ns);
                string sysfs = Path.Combine(nsDir, name!, "sysfs");
                if (File.Exists(sysfs)) SysfsFile.Load(ns, sysfs);
                foreach (var f in System.IO.Directory.GetFiles(Path.Combine(nsDir, name!)))
                {
                    string fn = Path.GetFileName(f);
                    if (fn is not ("ip.batch" or "bridge.batch" or "sysctl.conf" or "iptables.save" or "ip6tables.save" or "ipset.save" or "nfacct.list" or "sockets" or "cpuset" or "sysfs"))
                        throw new ScenarioFormatException(f, 0, "unknown file in a namespace folder (expected ip.batch, bridge.batch, sysctl.conf, iptables.save, ip6tables.save, ipset.save, nfacct.list, sockets, cpuset, sysfs)");
                }
            }
        }
        sc.NetCore = NetCoreSysctls.Gather(sc, nsDir);
        sc.Compile();
        // Sockets bind to addresses the compiled routing tables know.
        foreach (var ns in sc.Namespaces)
        {
            string cpuset = Path.Combine(nsDir, ns.Name, "cpuset");
            if (File.Exists(cpuset)) ns.CpuSet = LoadCpuSet(cpuset);
            string sockets = Path.Combine(nsDir, ns.Name, "sockets");
            if (File.Exists(sockets)) SocketsFile.Load(ns, sockets);
        }
        return sc;
    }

    // ---------------- cpuset ----------------

    /// <summary>
    /// ns/NAME/cpuset: the CPUs the namespace's applications may run on, in cpuset.cpus' list format (<c>0-3,6</c>), as
    /// Docker's <c>--cpuset-cpus</c> writes it into the container's cgroup. '#' comments; one list.
    /// </summary>
    public static int[] LoadCpuSet(string path)
    {
        var lines = File.ReadAllLines(path);
        int[]? set = null;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = SocketsFile.StripComment(lines[i]);
            if (line.Length == 0) continue;
            if (set != null) throw new ScenarioFormatException(path, i + 1, "a cpuset file holds one CPU list");
            set = ParseCpuList(line) ?? throw new ScenarioFormatException(path, i + 1,
                $"'{line}' is not a CPU list (cpuset.cpus format: 0-3,6; writing it to cpuset.cpus would fail with EINVAL)");
        }
        return set ?? throw new ScenarioFormatException(path, 0, "the cpuset file is empty (an empty cpuset.cpus leaves no CPU to run on)");
    }

    /// <summary>A list like <c>0-3,6</c>, sorted and without repeats; null when malformed or past CPU 1023.</summary>
    public static int[]? ParseCpuList(string text)
    {
        var cpus = new SortedSet<int>();
        foreach (var part in text.Split(','))
        {
            string p = part.Trim();
            int dash = p.IndexOf('-');
            string a = dash < 0 ? p : p[..dash], b = dash < 0 ? p : p[(dash + 1)..];
            if (!int.TryParse(a, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int lo)
                || !int.TryParse(b, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int hi)
                || hi < lo || hi > 1023)
                return null;
            for (int c = lo; c <= hi; c++) cpus.Add(c);
        }
        return cpus.Count == 0 ? null : [.. cpus];
    }

    // ---------------- ip -batch ----------------

    internal sealed class Line(string file, int number, List<string> tokens)
    {
        public readonly string File = file;
        public readonly int Number = number;
        public readonly List<string> Tokens = tokens;
        public int Pos;
        public bool AtEnd => Pos >= Tokens.Count;
        public string Peek() => Pos < Tokens.Count ? Tokens[Pos] : "";
        public string Take() => Tokens[Pos++];
        public string Next(string what) => Pos < Tokens.Count ? Tokens[Pos++] : throw Error($"'{what}' needs an argument");
        public ScenarioFormatException Error(string reason) => new(File, Number, reason);
    }

    /// <summary>A batch line's words, up to a `#` comment (ip -batch and bridge -batch split lines alike).</summary>
    internal static List<string> Tokens(string line)
    {
        var tokens = new List<string>();
        foreach (var t in line.TrimEnd('\r').Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (t.StartsWith('#')) break;
            tokens.Add(t);
        }
        return tokens;
    }

    /// <summary>Runs the `ip -batch` lines of <paramref name="path"/> in <paramref name="ns"/> (null: the caller's namespace, links.batch).</summary>
    private static void RunBatch(Scenario sc, Namespace? ns, string path)
    {
        var lines = File.ReadAllText(path).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            var tokens = Tokens(lines[i]);
            if (tokens.Count == 0) continue;
            var l = new Line(path, i + 1, tokens);
            string obj = l.Take();
            // `-6 route add ...`: the family option ip takes before the object (IPv6 is also told by the addresses).
            bool v6 = false;
            if (obj is "-6" or "-4")
            {
                v6 = obj == "-6";
                if (l.AtEnd) throw l.Error($"'{obj}' needs a command after it");
                obj = l.Take();
            }
            if (obj.StartsWith('-'))
                throw l.Error($"option '{obj}' is not supported in a batch line (ip -batch takes commands only; put namespace commands in ns/NAME/ip.batch)");
            if (obj == "ip") throw l.Error("batch lines start with the object ('link', 'addr', ...), not 'ip'");
            string cmd = l.AtEnd ? "" : l.Take();
            switch (obj, cmd)
            {
                case ("netns", "add"):
                    if (ns != null) throw l.Error("'netns add' belongs in links.batch");
                    NetnsAdd(sc, l);
                    break;
                case ("link", "add"):
                    LinkAdd(sc, ns, l);
                    break;
                case ("link", "set"):
                    if (ns == null) throw l.Error("'link set' runs inside a namespace: put it in ns/NAME/ip.batch");
                    LinkSet(ns, l);
                    break;
                case ("addr" or "address" or "a", "add"):
                    if (ns == null) throw l.Error("'addr add' runs inside a namespace: put it in ns/NAME/ip.batch");
                    if (v6 || IsV6Arg(l)) AddrAdd6(ns, l); else AddrAdd(ns, l);
                    break;
                case ("route" or "r", "add"):
                    if (ns == null) throw l.Error("'route add' runs inside a namespace: put it in ns/NAME/ip.batch");
                    if (v6 || IsV6Arg(l)) RouteAdd6(ns, l); else RouteAdd(ns, l);
                    break;
                case ("neigh" or "neighbour" or "neighbor", "add"):
                    if (ns == null) throw l.Error("'neigh add' runs inside a namespace: put it in ns/NAME/ip.batch");
                    if (v6 || IsV6Arg(l)) NeighAdd6(ns, l); else NeighAdd(ns, l);
                    break;
                default:
                    throw l.Error($"unsupported command '{obj} {cmd}'".TrimEnd() + " (supported: netns add, link add, link set, addr add, route add, neigh add)");
            }
        }
    }

    /// <summary>The command's address (the first argument that is not a route type) is an IPv6 one.</summary>
    private static bool IsV6Arg(Line l)
    {
        for (int i = l.Pos; i < l.Tokens.Count; i++)
        {
            if (l.Tokens[i] is "blackhole" or "unreachable" or "prohibit" or "unicast" or "local") continue;
            // `default` is either family's: the gateway says which (as iproute2 infers it).
            if (l.Tokens[i] == "default")
            {
                int via = l.Tokens.IndexOf("via", i + 1);
                return via > 0 && via + 1 < l.Tokens.Count && l.Tokens[via + 1].Contains(':');
            }
            return l.Tokens[i].Contains(':');
        }
        return false;
    }

    private static (UInt128 Address, int Length) Cidr6(Line l, string s, bool allowDefault)
    {
        if (allowDefault && s is "default" or "::/0") return (0, 0);
        int slash = s.IndexOf('/');
        string a = slash < 0 ? s : s[..slash];
        int len = 128;
        if (!Ipv6.TryParse(a, out var addr)) throw l.Error($"invalid IPv6 address '{a}'");
        if (slash >= 0 && (!int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out len) || len > 128))
            throw l.Error($"invalid prefix '{s}'");
        return (addr, len);
    }

    /// <summary>`addr add A/len dev D [nodad]` for IPv6 (inet6_addr_add).</summary>
    private static void AddrAdd6(Namespace ns, Line l)
    {
        var (addr, len) = Cidr6(l, l.Next("addr add"), false);
        Device? dev = null;
        bool nodad = false;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "dev": dev = DevArg(ns, l); break;
                case "nodad": nodad = true; break;
                default: throw l.Error($"unsupported IPv6 'addr add' option '{o}' (supported: dev, nodad)");
            }
        }
        if (dev == null) throw l.Error("'addr add' needs 'dev DEV'");
        if (addr == 0 || Ipv6.IsMulticast(addr) || addr == Ipv6.Loopback) throw l.Error($"'{Ipv6.Format(addr)}' cannot be an interface address");
        if (len == 0) throw l.Error("Error: Invalid prefix length (RTNETLINK answers: Invalid argument)");
        if (ns.ConfiguredAddresses6.Any(x => x.Device == dev && x.Address == addr))
            throw l.Error("RTNETLINK answers: File exists");
        ns.ConfiguredAddresses6.Add(new Inet6Address(dev, addr, len, nodad));
    }

    /// <summary>`[-6] route add PREFIX|default [via GW] [dev D]`, and blackhole/unreachable/prohibit (ip6_route_add).</summary>
    private static void RouteAdd6(Namespace ns, Line l)
    {
        var r = new Route6 { Type = RouteKind.Unicast };
        string first = l.Next("route add");
        if (first is "blackhole" or "unreachable" or "prohibit" or "unicast")
        {
            r.Type = first switch { "blackhole" => RouteKind.Blackhole, "unreachable" => RouteKind.Unreachable, "prohibit" => RouteKind.Prohibit, _ => RouteKind.Unicast };
            first = l.Next(first);
        }
        (r.Prefix, r.PrefixLength) = Cidr6(l, first, true);
        if ((r.Prefix & ~r.Mask) != 0) throw l.Error("Error: Invalid prefix for given prefix length.");
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "via":
                {
                    string g = l.Next(o);
                    if (g == "inet6") g = l.Next(o);
                    if (!Ipv6.TryParse(g, out r.Gateway)) throw l.Error($"invalid IPv6 gateway '{g}'");
                    break;
                }
                case "dev": r.Device = DevArg(ns, l); break;
                case "src":
                {
                    string s = l.Next(o);
                    if (!Ipv6.TryParse(s, out r.Source)) throw l.Error($"invalid source '{s}'");
                    if (!ns.ConfiguredAddresses6.Any(a => a.Address == r.Source)) throw l.Error("Error: Invalid source address.");
                    break;
                }
                case "metric" or "proto" when !l.AtEnd:
                    l.Take();
                    break;
                default: throw l.Error($"unsupported IPv6 'route add' option '{o}' (supported: via, dev, src)");
            }
        }
        if (r.Type != RouteKind.Unicast)
        {
            if (r.Gateway != 0) throw l.Error($"a {first} route takes no gateway");
        }
        else if (r.Gateway != 0)
        {
            // ip6_validate_gw: not a local address; a link-local gateway needs the device, another one an on-link
            // (connected) route.
            if (r.Device is { Up: false }) throw l.Error("Error: Nexthop device is not up.");
            if (ns.ConfiguredAddresses6.Any(a => a.Address == r.Gateway)) throw l.Error("Error: Gateway can not be a local address.");
            if (Ipv6.IsMulticast(r.Gateway)) throw l.Error("Error: Invalid gateway address.");
            if (Ipv6.IsLinkLocal(r.Gateway))
            {
                if (r.Device == null) throw l.Error("Error: Nexthop has invalid gateway or device mismatch.");
            }
            else
            {
                var onLink = ns.ConfiguredAddresses6.FirstOrDefault(a => a.Device.Up && (r.Device == null || a.Device == r.Device)
                                                                         && a.PrefixLength < 128 && (r.Gateway & Ipv6.Mask(a.PrefixLength)) == a.Network)
                             ?? throw l.Error("Error: Nexthop has invalid gateway.");
                r.Device ??= onLink.Device;
            }
        }
        else
        {
            if (r.Device == null) throw l.Error("a unicast route needs 'via GW' or 'dev DEV'");
            if (!r.Device.Up) throw l.Error("Error: Nexthop device is not up.");
        }
        if (ns.StaticRoutes6.Any(x => x.Prefix == r.Prefix && x.PrefixLength == r.PrefixLength))
            throw l.Error("RTNETLINK answers: File exists");
        ns.StaticRoutes6.Add(r);
    }

    /// <summary>`[-6] neigh add A lladdr MAC dev D [nud permanent]`: an nd_tbl entry.</summary>
    private static void NeighAdd6(Namespace ns, Line l)
    {
        string a = l.Next("neigh add");
        if (!Ipv6.TryParse(a, out var addr)) throw l.Error($"invalid IPv6 address '{a}'");
        if (Ipv6.IsMulticast(addr) || addr == 0) throw l.Error($"'{a}' cannot be a neighbour");
        byte[]? mac = null;
        Device? dev = null;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "lladdr":
                {
                    string s = l.Next(o);
                    if (!Device.TryParseMac(s, out mac)) throw l.Error($"invalid MAC address '{s}'");
                    break;
                }
                case "dev": dev = DevArg(ns, l); break;
                case "nud":
                    if (l.Next(o) != "permanent") throw l.Error("only 'nud permanent' entries are supported");
                    break;
                default: throw l.Error($"unsupported 'neigh add' option '{o}' (supported: lladdr, dev, nud permanent)");
            }
        }
        if (dev == null) throw l.Error("'neigh add' needs 'dev DEV'");
        if (mac == null) throw l.Error("'neigh add' needs 'lladdr MAC'");
        if (ns.Neighbours.Find6(dev, addr) != null) throw l.Error("RTNETLINK answers: File exists");
        ns.Neighbours.Create6(dev, addr, NudState.Permanent).Mac = mac;
    }

    private static void NetnsAdd(Scenario sc, Line l)
    {
        string name = l.Next("netns add");
        if (!l.AtEnd) throw l.Error($"unexpected '{l.Peek()}' after the namespace name");
        if (name.Contains('/') || name is "." or "..") throw l.Error($"invalid namespace name '{name}'");
        if (sc.Namespace(name) != null) throw l.Error($"namespace '{name}' exists already");
        sc.Namespaces.Add(new Namespace(name));
    }

    internal static Namespace NsArg(Scenario sc, Line l)
    {
        string n = l.Next("netns");
        return sc.Namespace(n) ?? throw l.Error($"namespace '{n}' does not exist (netns add it first)");
    }

    internal static void CheckName(Line l, Namespace ns, string name)
    {
        if (name.Length is 0 or > 15 || name.Contains('/') || name.Contains(':') || name.Any(char.IsWhiteSpace))
            throw l.Error($"invalid device name '{name}'");
        if (ns.Device(name) != null) throw l.Error($"device '{name}' exists already in namespace '{ns.Name}' (RTNETLINK answers: File exists)");
    }

    internal static byte[] MacArg(Line l)
    {
        string s = l.Next("address");
        if (!Device.TryParseMac(s, out var mac)) throw l.Error($"invalid MAC address '{s}'");
        if ((mac[0] & 1) != 0 || mac.All(b => b == 0)) throw l.Error($"'{s}' is not a valid unicast MAC address");
        return mac;
    }

    internal static int MtuArg(Line l)
    {
        string s = l.Next("mtu");
        if (!int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out int mtu) || mtu < 68 || mtu > 65535)
            throw l.Error($"invalid mtu '{s}' (68..65535)");
        return mtu;
    }

    private static void LinkAdd(Scenario sc, Namespace? ns, Line l)
    {
        string name = l.Peek() == "name" ? (l.Take() is var _ ? l.Next("name") : "") : l.Next("link add");
        Namespace? target = ns;
        byte[]? mac = null;
        int mtu = 0;
        while (!l.AtEnd && l.Peek() != "type")
        {
            string o = l.Take();
            switch (o)
            {
                case "netns": target = NsArg(sc, l); break;
                case "address": mac = MacArg(l); break;
                case "mtu": mtu = MtuArg(l); break;
                default: throw l.Error($"unsupported link attribute '{o}' (supported before 'type': netns, address, mtu)");
            }
        }
        if (l.AtEnd) throw l.Error("'link add' needs 'type veth' or 'type bridge'");
        l.Take();
        string kind = l.Next("type");
        if (target == null)
            throw l.Error($"'{name}' would be created in the harness's own namespace: give 'netns NS'");
        CheckName(l, target, name);
        var ipl = IpLinkKind.Find(kind) ?? throw l.Error($"unsupported link type '{kind}' (supported: {string.Join(", ", IpLinkKind.Names)})");
        ipl.Add(new IpLinkAdd(sc, ns, target, name, mac, mtu, l));
    }

    internal static Device AddDevice(Namespace ns, string name, LinkKind kind, byte[]? mac, int mtu)
    {
        var d = new Device(ns, name, kind, ns.NextIfindex());
        d.Mac = mac ?? Device.DeriveMac(ns.Name, name);
        d.MacSet = mac != null;
        if (mtu != 0) d.Mtu = mtu;
        ns.Devices.Add(d);
        return d;
    }

    private static Device DevArg(Namespace ns, Line l, string option = "dev")
    {
        string n = l.Next(option);
        return ns.Device(n) ?? throw l.Error($"Cannot find device \"{n}\" in namespace '{ns.Name}'");
    }

    /// <summary>idev->cnf.mtu6 = dev->mtu (NETDEV_CHANGEMTU, and NETDEV_UP where they differ), for a link MTU IPv6 takes.</summary>
    private static void SyncMtu6(Namespace ns, Device dev)
    {
        string key = $"net.ipv6.conf.{dev.Name}.mtu";
        if (dev.Mtu >= 1280 && ns.Sysctl(key) != null) ns.Sysctls[key] = dev.Mtu.ToString(CultureInfo.InvariantCulture);
    }

    private static void LinkSet(Namespace ns, Line l)
    {
        if (l.Peek() == "dev") l.Take();
        var dev = DevArg(ns, l, "link set");
        if (l.AtEnd) throw l.Error("'link set' needs an attribute (up, down, master, nomaster, address, mtu)");
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "up": dev.Up = true; break;
                case "down": dev.Up = false; break;
                case "master":
                {
                    var br = DevArg(ns, l, "master");
                    if (!br.Kind.IsBridge) throw l.Error($"'{br.Name}' is not a bridge");
                    if (dev == br || dev.Kind.IsBridge) throw l.Error("a bridge cannot be a port");
                    dev.Master?.Ports.Remove(dev);
                    dev.Master = br;
                    br.Ports.Add(dev);
                    break;
                }
                case "nomaster":
                    dev.Master?.Ports.Remove(dev);
                    dev.Master = null;
                    break;
                case "address":
                    dev.Mac = MacArg(l);
                    dev.MacSet = true;
                    break;
                case "mtu":
                    dev.Mtu = MtuArg(l);
                    // NETDEV_CHANGEMTU: the device's IPv6 MTU (conf.DEV.mtu) follows its new link MTU.
                    SyncMtu6(ns, dev);
                    break;
                default:
                    throw l.Error($"unsupported 'link set' attribute '{o}' (supported: up, down, master BR, nomaster, address MAC, mtu N)");
            }
        }
    }

    private static (uint Address, int Length) Cidr(Line l, string s, bool allowDefault)
    {
        if (allowDefault && s is "default" or "0/0" or "0.0.0.0/0") return (0, 0);
        int slash = s.IndexOf('/');
        string a = slash < 0 ? s : s[..slash];
        int len = 32;
        if (!Ipv4.TryParse(a, out uint addr)) throw l.Error($"invalid IPv4 address '{a}' (IPv6 addresses: give `-6` or an address with ':')");
        if (slash >= 0 && (!int.TryParse(s[(slash + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out len) || len > 32))
            throw l.Error($"invalid prefix '{s}'");
        return (addr, len);
    }

    private static void AddrAdd(Namespace ns, Line l)
    {
        var (addr, len) = Cidr(l, l.Next("addr add"), false);
        Device? dev = null;
        uint brd = 0;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "dev": dev = DevArg(ns, l); break;
                case "brd" or "broadcast":
                {
                    string b = l.Next(o);
                    if (b == "+") brd = len < 31 ? addr | ~Ipv4.Mask(len) : 0;
                    else if (b == "-") brd = len < 31 ? addr & Ipv4.Mask(len) : 0;
                    else if (!Ipv4.TryParse(b, out brd)) throw l.Error($"invalid broadcast '{b}'");
                    break;
                }
                default: throw l.Error($"unsupported 'addr add' option '{o}' (supported: brd, dev)");
            }
        }
        if (dev == null) throw l.Error("'addr add' needs 'dev DEV'");
        if (addr == 0 || (addr >> 28) >= 0xE) throw l.Error($"'{Ipv4.Format(addr)}' cannot be an interface address");
        if (ns.Addresses.Any(x => x.Device == dev && x.Address == addr && x.PrefixLength == len))
            throw l.Error("RTNETLINK answers: File exists");
        ns.Addresses.Add(new IfAddress(dev, addr, len, brd));
    }

    private static void RouteAdd(Namespace ns, Line l)
    {
        var r = new Route { Type = RouteKind.Unicast };
        string first = l.Next("route add");
        if (first is "blackhole" or "unreachable" or "prohibit" or "unicast")
        {
            r.Type = first switch { "blackhole" => RouteKind.Blackhole, "unreachable" => RouteKind.Unreachable, "prohibit" => RouteKind.Prohibit, _ => RouteKind.Unicast };
            first = l.Next(first);
        }
        (r.Prefix, r.PrefixLength) = Cidr(l, first, true);
        if ((r.Prefix & ~r.Mask) != 0) throw l.Error("Error: Invalid prefix for given prefix length.");
        bool onlink = false;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "via":
                {
                    string g = l.Next(o);
                    if (g == "inet") g = l.Next(o);
                    if (!Ipv4.TryParse(g, out r.Gateway)) throw l.Error($"invalid gateway '{g}'");
                    break;
                }
                case "dev": r.Device = DevArg(ns, l); break;
                case "src":
                {
                    string s = l.Next(o);
                    if (!Ipv4.TryParse(s, out r.Source)) throw l.Error($"invalid source '{s}'");
                    if (!ns.Addresses.Any(a => a.Address == r.Source)) throw l.Error("Error: Invalid prefsrc address.");
                    break;
                }
                case "scope" when l.Peek() is "link" or "global":
                    l.Take();
                    break;
                // RTNH_F_ONLINK: the gateway is taken as on the device's link without a connected subnet (flannel's
                // `10.244.0.0/24 via 10.244.0.0 dev flannel.1 onlink`).
                case "onlink": onlink = true; break;
                default: throw l.Error($"unsupported 'route add' option '{o}' (supported: via, dev, src, scope link|global, onlink)");
            }
        }
        if (r.Type != RouteKind.Unicast)
        {
            if (r.Gateway != 0) throw l.Error($"a {first} route takes no gateway");
        }
        else if (r.Gateway != 0 && onlink)
        {
            // fib_check_nh_v4_gw with RTNH_F_ONLINK: a device is needed and must be up; the gateway must be unicast.
            if (r.Device == null) throw l.Error("Error: Nexthop device required for onlink.");
            if (!r.Device.Up) throw l.Error("Error: Nexthop device is not up.");
            if (r.Gateway >= 0xe0000000u || r.Gateway == 0xffffffffu) throw l.Error("Error: Nexthop has invalid gateway.");
            if (ns.Addresses.Any(a => a.Address == r.Gateway)) throw l.Error("Error: Gateway can not be a local address.");
        }
        else if (r.Gateway != 0)
        {
            // fib_check_nh_v4_gw: the gateway must be on a connected subnet of an up device.
            var onLink = ns.Addresses.FirstOrDefault(a => a.Device.Up && (r.Device == null || a.Device == r.Device)
                                                          && a.PrefixLength < 32 && (r.Gateway & a.Mask) == a.Network);
            if (r.Device is { Up: false }) throw l.Error("Error: Nexthop device is not up.");
            if (onLink == null) throw l.Error("Error: Nexthop has invalid gateway.");
            if (ns.Addresses.Any(a => a.Address == r.Gateway)) throw l.Error("Error: Gateway can not be a local address.");
            r.Device ??= onLink.Device;
        }
        else
        {
            if (r.Device == null) throw l.Error("a unicast route needs 'via GW' or 'dev DEV'");
            if (!r.Device.Up) throw l.Error("Error: Device for nexthop is not up.");
        }
        if (ns.StaticRoutes.Any(x => x.Prefix == r.Prefix && x.PrefixLength == r.PrefixLength))
            throw l.Error("RTNETLINK answers: File exists");
        ns.StaticRoutes.Add(r);
    }

    private static void NeighAdd(Namespace ns, Line l)
    {
        string a = l.Next("neigh add");
        if (!Ipv4.TryParse(a, out uint addr)) throw l.Error($"invalid IPv4 address '{a}'");
        byte[]? mac = null;
        Device? dev = null;
        while (!l.AtEnd)
        {
            string o = l.Take();
            switch (o)
            {
                case "lladdr":
                {
                    string s = l.Next(o);
                    if (!Device.TryParseMac(s, out mac)) throw l.Error($"invalid MAC address '{s}'");
                    break;
                }
                case "dev": dev = DevArg(ns, l); break;
                case "nud":
                    if (l.Next(o) != "permanent") throw l.Error("only 'nud permanent' entries are supported");
                    break;
                default: throw l.Error($"unsupported 'neigh add' option '{o}' (supported: lladdr, dev, nud permanent)");
            }
        }
        if (dev == null) throw l.Error("'neigh add' needs 'dev DEV'");
        if (mac == null) throw l.Error("'neigh add' needs 'lladdr MAC'");
        if (ns.Neighbours.Find(dev, addr) != null) throw l.Error("RTNETLINK answers: File exists");
        ns.Neighbours.Create(dev, addr, NudState.Permanent).Mac = mac;
    }

    // ---------------- sysctl.conf ----------------

    private static readonly string[] ConntrackTcpTimeouts =
        ["", "syn_sent", "syn_recv", "established", "fin_wait", "close_wait", "last_ack", "time_wait", "close", "", "max_retrans", "unacknowledged"];

    /// <summary>
    /// ns/NAME/sysctl.conf as `sysctl -p` reads it (procps-ng 4.0.2): `key = value` (spaces optional, the value trimmed,
    /// possibly empty), comments starting with # or ;, `-key = value` for a key whose failure is ignored, keys with '/'
    /// or '.' separators, globs (* ? over the keys that exist) and `-key` lines that exclude keys from a glob. A key the
    /// kernel does not have or a value it refuses is rejected with file:line and sysctl's own words; a line without '='
    /// is skipped (sysctl warns and goes on). Keys Softnet does not act on are kept and listed as "set, not modelled".
    /// </summary>
    private static void LoadSysctl(Namespace ns, string path, Func<Device, bool> createdBefore) => LoadSysctl(ns, path, createdBefore, null);

    /// <summary>Reads <paramref name="path"/> into <paramref name="ns"/>; with <paramref name="onError"/> it goes on past a
    /// refused line as `sysctl -p` does (the kernel comparisons collect every message), else the first one throws.</summary>
    internal static void LoadSysctl(Namespace ns, string path, Func<Device, bool> createdBefore, Action<ScenarioFormatException>? onError)
    {
        var settings = new List<(int Line, string Path, string Value, bool IgnoreFailure)>();
        var excludes = new List<string>();
        var lines = File.ReadAllText(path).Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            // getline keeps the newline: a line of under two bytes with it is skipped, and lstrip takes the newline too.
            string raw = lines[i];
            bool lastWithoutNewline = i == lines.Length - 1;
            if (raw.Length + (lastWithoutNewline ? 0 : 1) < 2) continue;
            string key = raw.TrimStart(SysctlSpaces);
            if (key.Length + (lastWithoutNewline || key.Length == 0 ? 0 : 1) < 2) continue;
            if (key[0] is '#' or ';') continue;
            int eq = key.IndexOf('=');
            if (eq < 0)
            {
                if (key[0] == '-') excludes.Add(SysctlPath(key[1..].TrimEnd(SysctlSpaces)));
                continue;
            }
            string value = key[(eq + 1)..].Trim(SysctlSpaces);
            key = key[..eq].TrimEnd(SysctlSpaces);
            bool ignore = key.StartsWith('-');
            if (ignore) key = key[1..];
            settings.Add((i + 1, SysctlPath(key), value, ignore));
        }
        // The devices sysctl sees: those links.batch made (ip.batch runs after sysctl.conf in the harness), and lo.
        var devices = ns.Devices.Where(createdBefore).Select(d => d.Name).Append("lo").ToHashSet(StringComparer.Ordinal);
        bool DeviceExists(string d) => devices.Contains(d);
        void Write(int line, string p, string value, bool ignore)
        {
            try
            {
                WriteOneSysctl(ns, path, line, p, value, ignore, DeviceExists, createdBefore);
            }
            catch (ScenarioFormatException e) when (onError != null)
            {
                onError(e);
            }
        }
        foreach (var (line, p, value, ignore) in settings)
        {
            if (p.IndexOfAny(['*', '?', '[']) >= 0)
            {
                // glob(3) over /proc/sys: every existing key the pattern matches, in sorted order, except those another
                // line names exactly or an exclusion matches.
                var rx = new System.Text.RegularExpressions.Regex("^" + System.Text.RegularExpressions.Regex.Escape(p).Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "$");
                foreach (var k in SysctlCatalogue.Keys(devices).Select(k => k.Replace('.', '/')).Where(k => rx.IsMatch(k)).OrderBy(k => k, StringComparer.Ordinal))
                {
                    if (settings.Any(s => s.Path == k) || excludes.Any(x => GlobMatch(x, k))) continue;
                    Write(line, k, value, ignore);
                }
                continue;
            }
            Write(line, p, value, ignore);
        }
    }

    private static readonly char[] SysctlSpaces = [' ', '\t', '\r', '\n', '\v', '\f'];

    /// <summary>procps' slashdot: a key whose first separator is '.' swaps '.' and '/' to make the /proc/sys path (so a
    /// device named eth0.10 is written net/ipv4/conf/eth0/10/...); repeated separators collapse as the path lookup does.</summary>
    private static string SysctlPath(string key)
    {
        int first = key.IndexOfAny(['.', '/']);
        string p = first >= 0 && key[first] == '.' ? new string(key.Select(c => c == '.' ? '/' : c == '/' ? '.' : c).ToArray()) : key;
        return string.Join('/', p.Split('/', StringSplitOptions.RemoveEmptyEntries));
    }

    private static bool GlobMatch(string pattern, string path)
        => new System.Text.RegularExpressions.Regex("^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "$").IsMatch(path);

    private static void WriteOneSysctl(Namespace ns, string file, int line, string procPath, string value, bool ignore,
        Func<string, bool> deviceExists, Func<Device, bool> createdBefore)
    {
        // The key as sysctl prints it: the path with '/' and '.' swapped back.
        string shown = new(procPath.Select(c => c == '/' ? '.' : c == '.' ? '/' : c).ToArray());
        ScenarioFormatException Err(string m) => new(file, line, m);
        // The store's key: the path's components joined by '.' (a device's own dots stay, as Device.ConfKey makes them).
        string key = procPath.Replace('/', '.');
        var e = SysctlCatalogue.Find(key, deviceExists, out string? dev);
        // A global net.core key is written as on the host (NetCoreSysctls).
        if (e != null && SysctlCatalogue.GlobalCore.TryGetValue(key, out var global)) e = global;
        if (e == null)
        {
            if (ignore) return;
            // A directory of /proc/sys (net.ipv4): fopen succeeds, the write fails.
            if (SysctlCatalogue.Keys([]).Any(k => k.StartsWith(key + ".", StringComparison.Ordinal)))
                throw Err($"sysctl: setting key \"{shown}\": Invalid argument");
            throw Err($"sysctl: cannot stat /proc/sys/{procPath}: No such file or directory");
        }
        int mtu = dev is null or "all" or "default" ? 0 : dev == "lo" ? 65536 : ns.Device(dev)?.Mtu ?? 0;
        var err = SysctlCatalogue.Check(e, dev, value, ns.Sysctl, mtu);
        if (err != SysctlWriteError.None)
        {
            if (ignore) return;
            string why = err switch
            {
                SysctlWriteError.NoSuchFile => "No such file or directory",
                SysctlWriteError.IoError => "Input/output error",
                SysctlWriteError.NotPermitted => "Operation not permitted",
                SysctlWriteError.Busy => "Device or resource busy",
                SysctlWriteError.Overflow => "Value too large for defined data type",
                _ => "Invalid argument",
            };
            throw Err($"sysctl: setting key \"{shown}\": {why}");
        }
        string stored = SysctlCatalogue.Normalize(e, value, ns.Sysctl(key));
        // addrconf_notify (NETDEV_UP) sets an IPv6 MTU that differs from the link's back to it when the device comes up,
        // which ip.batch does after sysctl.conf in the harness's order: a device that is up by now kept its link MTU.
        if (dev is not (null or "all" or "default") && key.StartsWith("net.ipv6.conf.", StringComparison.Ordinal) && key.EndsWith(".mtu", StringComparison.Ordinal)
            && ns.Device(dev) is { Up: true, Mtu: >= 1280 } up)
            stored = up.Mtu.ToString(CultureInfo.InvariantCulture);
        ns.WriteSysctl(key, stored, createdBefore);
        if (!Modelled(key, stored)) ns.SysctlsNotModelled[key] = stored;
        else ns.SysctlsNotModelled.Remove(key);
    }

    /// <summary>The sysctls some part of Softnet reads (Namespace's conf caches, Ipv4Defrag, Ipv6Defrag, NfDefragIpv6,
    /// conntrack's options); every other key is kept and reported as "set, not modelled".</summary>
    internal static bool Modelled(string key, string value)
    {
        // Link-local addresses are made as eui64 (0) or not at all (1); stable privacy and random are not.
        if (key.StartsWith("net.ipv6.conf.", StringComparison.Ordinal) && key.EndsWith(".addr_gen_mode", StringComparison.Ordinal))
            return value is "0" or "1";
        switch (key)
        {
            case "net.ipv4.ip_forward" or "net.ipv4.ip_default_ttl" or "net.ipv4.icmp_ratelimit" or "net.ipv4.icmp_ratemask"
                or "net.ipv4.icmp_msgs_per_sec" or "net.ipv4.icmp_msgs_burst" or "net.ipv4.tcp_dsack" or "net.ipv4.tcp_synack_retries"
                or "net.ipv4.tcp_max_syn_backlog"
                or "net.ipv4.icmp_errors_use_inbound_ifaddr" or "net.ipv4.icmp_echo_ignore_all" or "net.ipv4.icmp_echo_ignore_broadcasts"
                or "net.ipv4.ipfrag_time" or "net.ipv4.ipfrag_high_thresh" or "net.ipv4.ipfrag_low_thresh" or "net.ipv4.ipfrag_max_dist"
                or "net.ipv4.tcp_syncookies" or "net.ipv4.tcp_rmem" or "net.ipv4.tcp_timestamps" or "net.ipv4.tcp_sack" or "net.ipv4.tcp_window_scaling"
                or "net.bridge.bridge-nf-call-iptables"
                or "net.ipv6.icmp.ratelimit" or "net.ipv6.icmp.ratemask" or "net.ipv6.icmp.echo_ignore_all" or "net.ipv6.ip6frag_time" or "net.ipv6.ip6frag_high_thresh"
                or "net.ipv6.ip6frag_low_thresh"
                or "net.netfilter.nf_conntrack_max" or "net.netfilter.nf_conntrack_tcp_loose" or "net.netfilter.nf_conntrack_tcp_be_liberal"
                or "net.netfilter.nf_conntrack_checksum" or "net.netfilter.nf_conntrack_tcp_max_retrans" or "net.netfilter.nf_conntrack_udp_timeout"
                or "net.netfilter.nf_conntrack_udp_timeout_stream" or "net.netfilter.nf_conntrack_icmp_timeout"
                or "net.netfilter.nf_conntrack_icmpv6_timeout" or "net.netfilter.nf_conntrack_generic_timeout"
                or "net.netfilter.nf_conntrack_frag6_timeout" or "net.netfilter.nf_conntrack_frag6_high_thresh" or "net.netfilter.nf_conntrack_frag6_low_thresh"
                or "net.netfilter.nf_conntrack_acct" or "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst" or "net.netfilter.nf_conntrack_timestamp"
                or "net.netfilter.nf_conntrack_gre_timeout" or "net.netfilter.nf_conntrack_gre_timeout_stream":
                return true;
            // nf_log of invalid packets only logs (nothing a replay shows): honoured by doing nothing, as log_martians.
            // Events go to ctnetlink listeners (`conntrack -E`), which a replay has none of; expect_max bounds
            // expectations, which only conntrack helpers create and Softnet runs none (see Helper.cs): each is honoured
            // by doing nothing, as a kernel without those listeners or helpers does.
            case "net.netfilter.nf_conntrack_log_invalid" or "net.netfilter.nf_conntrack_events" or "net.netfilter.nf_conntrack_expect_max":
                return true;
            // ip6_make_flowlabel on what Softnet builds (Ipv6FlowLabel).
            case "net.ipv6.auto_flowlabels" or "net.ipv6.flowlabel_state_ranges": return true;
            // The server side with or without cookies (TcpFastOpen; the client bits have no active opens to act on), the
            // cookies keyed by tcp_fastopen_key.
            case "net.ipv4.tcp_fastopen" or "net.ipv4.tcp_fastopen_key": return true;
            // The send buffer (sk_sndbuf: tcp_init_sock, tcp_sndbuf_expand) bounds what a writer queues; the readers
            // write nothing and what the server sends (ACKs, FIN) does not wait on it, so it is honoured by doing nothing.
            case "net.ipv4.tcp_wmem": return true;
            // The kernel's global net.core values (NetCoreSysctls): the replay's NAPI budget, backlogs, RFS table and
            // every socket's receive buffer.
            case "net.core.netdev_budget" or "net.core.netdev_budget_usecs" or "net.core.netdev_max_backlog" or "net.core.dev_weight"
                or "net.core.rps_sock_flow_entries" or "net.core.rmem_default" or "net.core.rmem_max":
                return true;
            // br_netfilter's IPv6 hooks (BridgeNetfilter.Ipv6.cs). Bridged ARP would cross NF_ARP_FORWARD
            // (br_nf_forward_arp), where only legacy arptables' filter table hooks (nft's arp family has input and
            // output chains only, so arptables-nft never sees it): Softnet has no arptables, so there are no ARP
            // rules and the key is honoured as a kernel with empty arp tables honours it: every frame accepted.
            case "net.bridge.bridge-nf-call-ip6tables" or "net.bridge.bridge-nf-call-arptables": return true;
        }
        if (key.StartsWith("net.netfilter.nf_conntrack_tcp_timeout_", StringComparison.Ordinal))
            return Array.IndexOf(ConntrackTcpTimeouts, key["net.netfilter.nf_conntrack_tcp_timeout_".Length..]) > 0;
        // The SCTP tracker's state timeouts (SctpTracker), one key per state but NONE.
        if (key.StartsWith("net.netfilter.nf_conntrack_sctp_timeout_", StringComparison.Ordinal))
            return SctpStateOfTimeoutKey(key["net.netfilter.nf_conntrack_sctp_timeout_".Length..]) > 0;
        var parts = key.Split('.');
        if (parts.Length >= 5 && parts[0] == "net" && parts[2] == "conf")
        {
            string what = parts[^1];
            // log_martians only logs (nothing a replay shows), so it is honoured by doing nothing.
            if (parts[1] == "ipv4") return what is "forwarding" or "rp_filter" or "accept_source_route" or "accept_local"
                or "send_redirects" or "shared_media" or "log_martians" or "arp_ignore" or "arp_announce" or "accept_redirects"
                or "secure_redirects";
            if (parts[1] == "ipv6") return what is "disable_ipv6" or "forwarding" or "hop_limit" or "addr_gen_mode" || what == "mtu"
                || Ip.Ipv6Addrconf.Honours(what);
        }
        return false;
    }

    /// <summary>The SCTP state whose timeout an nf_conntrack_sctp_timeout_ suffix names, or 0.</summary>
    private static int SctpStateOfTimeoutKey(string suffix)
    {
        for (int i = 1; i < (int)SctpCtState.Max; i++)
            if (SctpTracker.TimeoutKey(i) == suffix) return i;
        return 0;
    }

    private static void ApplyConntrackSysctls(Namespace ns)
    {
        var d = new ConntrackOptions();
        long S(string k, long dflt) => ns.Sysctl("net.netfilter.nf_conntrack_" + k) is { } s ? long.Parse(s, CultureInfo.InvariantCulture) : dflt;
        var tcp = d.TcpTimeoutsNs.ToArray();
        for (int i = 1; i < ConntrackTcpTimeouts.Length; i++)
            if (ConntrackTcpTimeouts[i].Length > 0)
                tcp[i] = S("tcp_timeout_" + ConntrackTcpTimeouts[i], tcp[i] / 1_000_000_000L) * 1_000_000_000L;
        var sctp = d.SctpTimeoutsNs.ToArray();
        for (int i = 1; i < sctp.Length; i++)
            sctp[i] = S("sctp_timeout_" + SctpTracker.TimeoutKey(i), sctp[i] / 1_000_000_000L) * 1_000_000_000L;
        var o = new ConntrackOptions
        {
            Max = (int)S("max", d.Max),
            TcpLoose = S("tcp_loose", 1) != 0,
            TcpBeLiberal = S("tcp_be_liberal", 0) != 0,
            Checksum = S("checksum", 1) != 0,
            TcpMaxRetrans = (int)S("tcp_max_retrans", d.TcpMaxRetrans),
            TcpIgnoreInvalidRst = S("tcp_ignore_invalid_rst", 0) != 0,
            UdpTimeout = TimeSpan.FromSeconds(S("udp_timeout", (long)d.UdpTimeout.TotalSeconds)),
            UdpStreamTimeout = TimeSpan.FromSeconds(S("udp_timeout_stream", (long)d.UdpStreamTimeout.TotalSeconds)),
            IcmpTimeout = TimeSpan.FromSeconds(S("icmp_timeout", (long)d.IcmpTimeout.TotalSeconds)),
            Icmpv6Timeout = TimeSpan.FromSeconds(S("icmpv6_timeout", (long)d.Icmpv6Timeout.TotalSeconds)),
            GenericTimeout = TimeSpan.FromSeconds(S("generic_timeout", (long)d.GenericTimeout.TotalSeconds)),
            GreTimeout = TimeSpan.FromSeconds(S("gre_timeout", (long)d.GreTimeout.TotalSeconds)),
            GreStreamTimeout = TimeSpan.FromSeconds(S("gre_timeout_stream", (long)d.GreStreamTimeout.TotalSeconds)),
            TcpTimeoutsNs = tcp,
            SctpTimeoutsNs = sctp,
        };
        ns.Netfilter.UseConntrack(o);
        ns.Netfilter6?.UseConntrack(o);
        // nf_conntrack_acct: every new entry counts packets and bytes (as connbytes turns it on for its own).
        if (S("acct", 0) != 0) ns.Netfilter.Conntrack.Accounting = true;
        // nf_conntrack_timestamp: every new entry records its start (`conntrack -L`'s delta-time=).
        ns.Netfilter.Conntrack.Timestamps = S("timestamp", 0) != 0;
    }

    // ---------------- ip6tables.save ----------------

    /// <summary>ns/NAME/ip6tables.save (`ip6tables-save` output) into the namespace's IPv6 tables; errors name file:line.
    /// Conntrack runs for IPv6 once the ruleset needs it, as for IPv4.</summary>
    private static void LoadIp6tables(Namespace ns, string path)
    {
        NetfilterTables t;
        try
        {
            t = IptablesSaveParser.ParseFile(path, NetfilterTables.CreateIpv6());
        }
        catch (IptablesParseException e)
        {
            throw new ScenarioFormatException(e.File, e.Line, e.Reason);
        }
        t.Host = ns;
        t.ConntrackEnabled = NeedsConntrack(t);
        ns.Netfilter6 = t;
    }

    // ---------------- iptables.save ----------------

    private static void LoadIptables(Namespace ns, string path)
    {
        NetfilterTables t;
        try
        {
            // ns/NAME/ipset.save (`ipset save` output) first: -m set rules need their sets to exist.
            var into = new NetfilterTables();
            string ipset = Path.Combine(Path.GetDirectoryName(path)!, "ipset.save");
            if (File.Exists(ipset)) into.Ipsets.LoadFile(ipset);
            // ns/NAME/nfacct.list: the accounting objects -m nfacct rules count into (`nfacct add`), one name a line.
            string nfacct = Path.Combine(Path.GetDirectoryName(path)!, "nfacct.list");
            if (File.Exists(nfacct)) into.Nfacct.Load(File.ReadAllText(nfacct));
            t = IptablesSaveParser.ParseFile(path, into);
        }
        catch (IptablesParseException e)
        {
            throw new ScenarioFormatException(e.File, e.Line, e.Reason);
        }
        t.Host = ns;
        t.ConntrackEnabled = NeedsConntrack(t);
        ns.Netfilter = t;
        ns.HasIptables = true;
    }

    /// <summary>
    /// nf_ct_netns_get: conntrack runs in a namespace only once something needs it — the nat table, a
    /// conntrack/state/connmark match, or a CT/NOTRACK/CONNMARK/NAT target. A filter-only ruleset leaves
    /// `conntrack -L` empty in the kernel, and here.
    /// </summary>
    internal static bool NeedsConntrack(NetfilterTables t)
    {
        if (t[TableKind.Nat] != null) return true;
        foreach (var table in t.Tables)
            foreach (var c in table.Chains)
                foreach (var r in c.Rules)
                {
                    if (r.Matches.Any(m => m.UsesConntrack)) return true;
                    if (r.Target?.UsesConntrack == true) return true;
                }
        return false;
    }
}
