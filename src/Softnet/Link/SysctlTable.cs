namespace Softnet.Link;

/// <summary>A namespace's sysctl values by key, with a version that changes on every write, so the path can cache
/// what it derives from them (per-device forwarding, rp_filter) and read no string-keyed table per packet.</summary>
public sealed class SysctlTable
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    /// <summary>Bumped by every change.</summary>
    public int Version { get; private set; }

    public string this[string key]
    {
        get => _values[key];
        set
        {
            _values[key] = value;
            Version++;
        }
    }

    public bool TryGetValue(string key, out string value) => _values.TryGetValue(key, out value!);
    public bool ContainsKey(string key) => _values.ContainsKey(key);
    public IEnumerable<string> Keys => _values.Keys;
    public int Count => _values.Count;

    public bool Remove(string key)
    {
        Version++;
        return _values.Remove(key);
    }
}
