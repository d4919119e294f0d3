using System.Reflection;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Every match and target extension of the assembly, by family and name as xt_find_match / xt_find_target look them
/// up: the non-abstract subclasses of <see cref="XtMatchExtension"/> and <see cref="XtTargetExtension"/>, instantiated
/// once on first use (reflection at load time only, never per packet). An extension registers for its
/// <see cref="XtMatchExtension.Family"/> (NFPROTO_IPV4 like ipt_REJECT, NFPROTO_IPV6 like ip6t_REJECT, or
/// NFPROTO_UNSPEC for both, like xt_comment); a lookup tries the family first, then NFPROTO_UNSPEC.
/// </summary>
public static class XtRegistry
{
    private sealed class Tables
    {
        public readonly Dictionary<(NfProto, string), XtMatchExtension> Matches = new();
        public readonly Dictionary<(NfProto, string), XtTargetExtension> Targets = new();
    }

    private static readonly Lazy<Tables> All = new(Discover, LazyThreadSafetyMode.ExecutionAndPublication);

    private static Tables Discover()
    {
        var t = new Tables();
        foreach (var type in typeof(XtRegistry).Assembly.GetTypes())
        {
            if (type.IsAbstract || type.IsGenericTypeDefinition) continue;
            if (typeof(XtMatchExtension).IsAssignableFrom(type))
            {
                var ext = (XtMatchExtension)Instantiate(type);
                Add(t.Matches, (ext.Family, ext.Name), ext, type);
                foreach (var alias in ext.Aliases) Add(t.Matches, (ext.Family, alias), ext, type);
            }
            else if (typeof(XtTargetExtension).IsAssignableFrom(type))
            {
                var ext = (XtTargetExtension)Instantiate(type);
                Add(t.Targets, (ext.Family, ext.Name), ext, type);
                foreach (var alias in ext.Aliases) Add(t.Targets, (ext.Family, alias), ext, type);
            }
        }
        return t;
    }

    private static object Instantiate(Type type)
        => Activator.CreateInstance(type, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, null, null, null)
           ?? throw new InvalidOperationException($"cannot create extension {type.FullName}");

    private static void Add<T>(Dictionary<(NfProto, string), T> map, (NfProto Family, string Name) key, T ext, Type type)
    {
        if (!map.TryAdd(key, ext))
            throw new InvalidOperationException($"xtables extension name '{key.Name}' registered twice for family {key.Family} ({type.FullName})");
    }

    private static T? Find<T>(Dictionary<(NfProto, string), T> map, string name, NfProto family) where T : class
        => map.GetValueOrDefault((family, name)) ?? map.GetValueOrDefault((NfProto.Unspec, name));

    /// <summary>The match extension loaded by -m NAME in <paramref name="family"/> (iptables: IPv4), or null.</summary>
    public static XtMatchExtension? FindMatch(string name, NfProto family = NfProto.Ipv4) => Find(All.Value.Matches, name, family);

    /// <summary>The target extension loaded by -j NAME in <paramref name="family"/> (iptables: IPv4), or null.</summary>
    public static XtTargetExtension? FindTarget(string name, NfProto family = NfProto.Ipv4) => Find(All.Value.Targets, name, family);

    /// <summary>Match names usable in <paramref name="family"/> (aliases included).</summary>
    public static IEnumerable<string> MatchNamesOf(NfProto family)
        => All.Value.Matches.Keys.Where(k => k.Item1 == family || k.Item1 == NfProto.Unspec).Select(k => k.Item2).Distinct();

    /// <summary>Target names usable in <paramref name="family"/> (aliases included).</summary>
    public static IEnumerable<string> TargetNamesOf(NfProto family)
        => All.Value.Targets.Keys.Where(k => k.Item1 == family || k.Item1 == NfProto.Unspec).Select(k => k.Item2).Distinct();

    /// <summary>Registered IPv4 match names (aliases included).</summary>
    public static IEnumerable<string> MatchNames => MatchNamesOf(NfProto.Ipv4);

    /// <summary>Registered IPv4 target names (aliases included).</summary>
    public static IEnumerable<string> TargetNames => TargetNamesOf(NfProto.Ipv4);
}
