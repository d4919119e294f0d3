using System.Reflection;

namespace Softnet.Netfilter.Xtables;

/// <summary>
/// Every match and target extension of the assembly, by name: the non-abstract subclasses of
/// <see cref="XtMatchExtension"/> and <see cref="XtTargetExtension"/>, instantiated once on first use
/// (reflection at load time only, never per packet).
/// </summary>
public static class XtRegistry
{
    private sealed class Tables
    {
        public readonly Dictionary<string, XtMatchExtension> Matches = new(StringComparer.Ordinal);
        public readonly Dictionary<string, XtTargetExtension> Targets = new(StringComparer.Ordinal);
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
                Add(t.Matches, ext.Name, ext, type);
                foreach (var alias in ext.Aliases) Add(t.Matches, alias, ext, type);
            }
            else if (typeof(XtTargetExtension).IsAssignableFrom(type))
            {
                var ext = (XtTargetExtension)Instantiate(type);
                Add(t.Targets, ext.Name, ext, type);
                foreach (var alias in ext.Aliases) Add(t.Targets, alias, ext, type);
            }
        }
        return t;
    }

    private static object Instantiate(Type type)
        => Activator.CreateInstance(type, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, null, null, null)
           ?? throw new InvalidOperationException($"cannot create extension {type.FullName}");

    private static void Add<T>(Dictionary<string, T> map, string name, T ext, Type type)
    {
        if (!map.TryAdd(name, ext))
            throw new InvalidOperationException($"xtables extension name '{name}' registered twice ({type.FullName})");
    }

    /// <summary>The match extension loaded by -m NAME, or null.</summary>
    public static XtMatchExtension? FindMatch(string name) => All.Value.Matches.GetValueOrDefault(name);

    /// <summary>The target extension loaded by -j NAME, or null.</summary>
    public static XtTargetExtension? FindTarget(string name) => All.Value.Targets.GetValueOrDefault(name);

    /// <summary>Registered match names (aliases included).</summary>
    public static IEnumerable<string> MatchNames => All.Value.Matches.Keys;

    /// <summary>Registered target names (aliases included).</summary>
    public static IEnumerable<string> TargetNames => All.Value.Targets.Keys;
}
