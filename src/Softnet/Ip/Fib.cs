using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Ip;

/// <summary>Route types a scenario uses (RTN_*).</summary>
public enum RouteKind : byte
{
    Unicast,
    Local,
    Broadcast,
    Blackhole,
    Unreachable,
    Prohibit,
    /// <summary>IPv6 subnet-router anycast (local table, installed while forwarding).</summary>
    Anycast,
    /// <summary>IPv6 ff00::/8 of an up device (local table): ip6_mc_input.</summary>
    Multicast,
}

/// <summary>One FIB entry (struct fib_alias + its nexthop).</summary>
public sealed class Route
{
    public uint Prefix;
    public int PrefixLength;
    public RouteKind Type;
    /// <summary>Nexthop gateway, 0 for an on-link route.</summary>
    public uint Gateway;
    public Device? Device;
    /// <summary>Preferred source (`src`), else 0.</summary>
    public uint Source;
    /// <summary>Derived from an address (proto kernel scope link).</summary>
    public bool Connected;

    public uint Mask => Ipv4.Mask(PrefixLength);

    public bool Contains(uint a) => (a & Mask) == (Prefix & Mask);

    public override string ToString()
    {
        string p = PrefixLength == 0 ? "default" : PrefixLength == 32 ? Ipv4.Format(Prefix) : $"{Ipv4.Format(Prefix)}/{PrefixLength}";
        string t = Type switch { RouteKind.Unicast => "", _ => Type.ToString().ToLowerInvariant() + " " };
        return $"{t}{p}{(Gateway != 0 ? " via " + Ipv4.Format(Gateway) : "")}{(Device != null ? " dev " + Device.Name : "")}";
    }
}

/// <summary>
/// The local and main tables of one namespace (fib_lookup with the default rules: local, then main).
/// Longest-prefix match over prefixes grouped by length; lookups allocate nothing.
/// </summary>
public sealed class RouteTable
{
    private readonly Dictionary<uint, Route> _local = new();
    // Index = prefix length; each a map from masked prefix to its route.
    private readonly Dictionary<uint, Route>?[] _main = new Dictionary<uint, Route>?[33];
    private readonly List<int> _lengths = new();

    public void AddLocal(Route r) => _local.TryAdd(r.Prefix, r);

    /// <summary>Adds a main-table route; false when the same prefix exists already (RTNETLINK "File exists").</summary>
    public bool AddMain(Route r)
    {
        var d = _main[r.PrefixLength] ??= new Dictionary<uint, Route>();
        if (!d.TryAdd(r.Prefix & r.Mask, r)) return false;
        if (!_lengths.Contains(r.PrefixLength))
        {
            _lengths.Add(r.PrefixLength);
            _lengths.Sort((a, b) => b.CompareTo(a));
        }
        return true;
    }

    /// <summary>The local table alone: local and broadcast addresses of the namespace.</summary>
    public Route? LookupLocal(uint dst) => _local.TryGetValue(dst, out var r) ? r : null;

    /// <summary>fib_lookup: local table first, then the main table by longest prefix.</summary>
    public Route? Lookup(uint dst)
    {
        if (_local.TryGetValue(dst, out var l)) return l;
        return LookupMain(dst);
    }

    public Route? LookupMain(uint dst) => WithException(dst, LookupFib(dst));

    /// <summary>The main table alone, without the nexthop exceptions (fib_table_lookup).</summary>
    public Route? LookupFib(uint dst)
    {
        foreach (int len in _lengths)
            if (_main[len]!.TryGetValue(dst & Ipv4.Mask(len), out var r)) return r;
        return null;
    }

    // Nexthop exceptions (fib_nh_exception) by destination: the route they hang off, the route a lookup gets instead,
    // and when it stops (fnhe_expires, on the clock of the stack that learned it).
    private Dictionary<uint, (Route Base, Route Via, long ExpiresNs)>? _exceptions;
    private NetStack? _clock;

    /// <summary>ip_rt_gc_timeout (RT_GC_TIMEOUT, 300 s): how long a learned redirect lasts. The kernel's
    /// net.ipv4.route.gc_timeout is global, not in a namespace's sysctls, so a scenario cannot change it.</summary>
    public const long RedirectLifetimeNs = 300_000_000_000;

    /// <summary>update_or_create_fnhe for an accepted redirect: <paramref name="dst"/>, while <paramref name="fib"/> is
    /// its route, goes by <paramref name="gateway"/> until ip_rt_gc_timeout from now (a later redirect renews it; route.c
    /// binds the exception to the nexthop; a rebuilt table drops them, as a route change flushes the kernel's).</summary>
    public void AddRedirectException(uint dst, Route fib, uint gateway, NetStack stack)
    {
        _exceptions ??= new();
        _clock = stack;
        _exceptions[dst] = (fib, new Route { Prefix = dst, PrefixLength = 32, Type = fib.Type, Gateway = gateway, Device = fib.Device, Source = fib.Source },
            stack.Now + RedirectLifetimeNs);
    }

    /// <summary>find_exception: the destination's exception while it lasts; one past fnhe_expires (time_after) is
    /// ignored, as the kernel deletes it on that lookup (ip_del_fnhe). Kept rather than removed so a lookup never
    /// writes the table other CPUs read.</summary>
    private Route? WithException(uint dst, Route? r)
        => r != null && _exceptions != null && _exceptions.TryGetValue(dst, out var e) && e.Base == r && _clock!.Now <= e.ExpiresNs ? e.Via : r;

    /// <summary>
    /// fib_lookup with flowi4_oif set (bpf_fib_lookup's BPF_FIB_LOOKUP_OUTPUT): fib_lookup_good_nhc passes over a
    /// route whose nexthop leaves by another device, so a shorter prefix may answer; blackhole, unreachable and
    /// prohibit routes have no nexthop and answer whatever the device. <paramref name="oif"/> 0 is <see cref="Lookup(uint)"/>.
    /// </summary>
    public Route? Lookup(uint dst, int oif)
    {
        if (_local.TryGetValue(dst, out var l) && LeavesBy(l, oif)) return l;
        return LookupMain(dst, oif);
    }

    public Route? LookupMain(uint dst, int oif)
    {
        foreach (int len in _lengths)
            if (_main[len]!.TryGetValue(dst & Ipv4.Mask(len), out var r) && LeavesBy(r, oif)) return WithException(dst, r);
        return null;
    }

    private static bool LeavesBy(Route r, int oif)
        => oif == 0 || r.Type is RouteKind.Blackhole or RouteKind.Unreachable or RouteKind.Prohibit || r.Device?.Ifindex == oif;

    public IEnumerable<Route> MainRoutes => _lengths.SelectMany(l => _main[l]!.Values);
    public IEnumerable<Route> LocalRoutes => _local.Values;
}
