using Softnet.Link;

namespace Softnet.Topology;

/// <summary>An `ip link add NAME [netns N] [address MAC] [mtu N] type KIND ...` line, up to its kind's arguments.</summary>
internal sealed record IpLinkAdd(Scenario Scenario, Namespace? Current, Namespace Target, string Name, byte[]? Mac, int Mtu, ScenarioLoader.Line Args);

/// <summary>
/// The iproute2 half of a link kind (ip/link_veth.c, ip/iplink_bridge.c): parses the kind's arguments and creates
/// the devices; the kernel half is the <see cref="LinkKind"/> of the same name. Every concrete subclass is
/// registered by its kind name, so a new kind is a new file here and one in Link/.
/// </summary>
internal abstract class IpLinkKind
{
    public abstract string Kind { get; }

    public abstract void Add(IpLinkAdd a);

    private static Dictionary<string, IpLinkKind>? _kinds;

    public static IpLinkKind? Find(string kind)
    {
        _kinds ??= typeof(IpLinkKind).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && t.IsSubclassOf(typeof(IpLinkKind)))
            .Select(t => (IpLinkKind)Activator.CreateInstance(t)!)
            .ToDictionary(k => k.Kind, StringComparer.Ordinal);
        return _kinds.GetValueOrDefault(kind);
    }

    public static IEnumerable<string> Names
    {
        get
        {
            Find("");
            return _kinds!.Keys.Order(StringComparer.Ordinal);
        }
    }
}
