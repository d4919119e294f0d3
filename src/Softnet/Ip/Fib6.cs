using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Ip;

/// <summary>One IPv6 FIB entry (struct fib6_info with its nexthop).</summary>
public sealed class Route6
{
    public UInt128 Prefix;
    public int PrefixLength;
    public RouteKind Type;
    /// <summary>Nexthop gateway, 0 for an on-link route.</summary>
    public UInt128 Gateway;
    public Device? Device;
    /// <summary>Preferred source (`src`), else 0.</summary>
    public UInt128 Source;
    /// <summary>proto kernel: derived from an address or a device.</summary>
    public bool Connected;

    public UInt128 Mask => Ipv6.Mask(PrefixLength);

    public bool Contains(UInt128 a) => (a & Mask) == (Prefix & Mask);

    public override string ToString()
    {
        string p = PrefixLength == 0 ? "default" : PrefixLength == 128 ? Ipv6.Format(Prefix) : $"{Ipv6.Format(Prefix)}/{PrefixLength}";
        string t = Type switch { RouteKind.Unicast => "", _ => Type.ToString().ToLowerInvariant() + " " };
        return $"{t}{p}{(Gateway != 0 ? " via " + Ipv6.Format(Gateway) : "")}{(Device != null ? " dev " + Device.Name : "")}";
    }
}

/// <summary>
/// The local and main IPv6 tables of a namespace (fib6_lookup with the default rules: local, then main). Longest-prefix
/// match over prefixes grouped by length, as <see cref="RouteTable"/> does for IPv4; lookups allocate nothing.
/// </summary>
public sealed class Route6Table
{
    private readonly Dictionary<UInt128, Route6>?[] _local = new Dictionary<UInt128, Route6>?[129];
    private readonly List<int> _localLengths = new();
    private readonly Dictionary<UInt128, Route6>?[] _main = new Dictionary<UInt128, Route6>?[129];
    private readonly List<int> _lengths = new();

    private static bool Add(Dictionary<UInt128, Route6>?[] table, List<int> lengths, Route6 r)
    {
        var d = table[r.PrefixLength] ??= new Dictionary<UInt128, Route6>();
        if (!d.TryAdd(r.Prefix & r.Mask, r)) return false;
        if (!lengths.Contains(r.PrefixLength))
        {
            lengths.Add(r.PrefixLength);
            lengths.Sort((a, b) => b.CompareTo(a));
        }
        return true;
    }

    private static Route6? Find(Dictionary<UInt128, Route6>?[] table, List<int> lengths, UInt128 dst)
    {
        foreach (int len in lengths)
            if (table[len]!.TryGetValue(dst & Ipv6.Mask(len), out var r)) return r;
        return null;
    }

    /// <summary>A local-table entry (local, anycast and multicast routes); false when it exists already.</summary>
    public bool AddLocal(Route6 r) => Add(_local, _localLengths, r);

    /// <summary>A main-table route; false when the same prefix exists already (RTNETLINK "File exists").</summary>
    public bool AddMain(Route6 r) => Add(_main, _lengths, r);

    public Route6? LookupLocal(UInt128 dst) => Find(_local, _localLengths, dst);

    public Route6? LookupMain(UInt128 dst) => Find(_main, _lengths, dst);

    /// <summary>fib6_lookup: the local table first, then the main table by longest prefix.</summary>
    public Route6? Lookup(UInt128 dst) => LookupLocal(dst) ?? LookupMain(dst);

    public IEnumerable<Route6> MainRoutes => _lengths.SelectMany(l => _main[l]!.Values);
    public IEnumerable<Route6> LocalRoutes => _localLengths.SelectMany(l => _local[l]!.Values);
}
