using System.Reflection;

namespace Softnet.Xdp.Bpf.Maps;

/// <summary>
/// BPF_MAP_CREATE for Softnet (map_create in kernel/bpf/syscall.c): the generic attribute checks, then the type's own
/// check (its <see cref="BpfMapKind"/>, found by reflection once as xtables extensions are in XtRegistry), then the map.
/// A spec the kernel refuses throws <see cref="BpfMapException"/> with the kernel's errno.
/// </summary>
public static class BpfMapFactory
{
    private static readonly Lazy<Dictionary<BpfMapType, BpfMapKind>> Kinds = new(Discover, LazyThreadSafetyMode.ExecutionAndPublication);

    private static Dictionary<BpfMapType, BpfMapKind> Discover()
    {
        var d = new Dictionary<BpfMapType, BpfMapKind>();
        foreach (var type in typeof(BpfMapFactory).Assembly.GetTypes())
        {
            if (type.IsAbstract || !typeof(BpfMapKind).IsAssignableFrom(type)) continue;
            var kind = (BpfMapKind)(Activator.CreateInstance(type, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, null, null, null)
                ?? throw new InvalidOperationException($"cannot create map kind {type.FullName}"));
            foreach (var t in kind.Types)
                if (!d.TryAdd(t, kind)) throw new InvalidOperationException($"BPF map type {t} registered twice ({type.FullName})");
        }
        return d;
    }

    /// <summary>
    /// num_possible_cpus(): how many CPUs /sys/devices/system/cpu/possible lists ("0-3,8" is 5), the count per-CPU map
    /// values come in through bpf(2); the processor count where the file is missing or unreadable.
    /// </summary>
    public static int PossibleCpus()
    {
        const string path = "/sys/devices/system/cpu/possible";
        try
        {
            if (!File.Exists(path)) return Environment.ProcessorCount;
            int n = 0;
            foreach (var part in File.ReadAllText(path).Trim().Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var r = part.Split('-');
                n += r.Length == 1 ? 1 : int.Parse(r[1], System.Globalization.CultureInfo.InvariantCulture) - int.Parse(r[0], System.Globalization.CultureInfo.InvariantCulture) + 1;
            }
            return n > 0 ? n : Environment.ProcessorCount;
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return Environment.ProcessorCount;
        }
    }

    /// <summary>The map types Softnet implements.</summary>
    public static IEnumerable<BpfMapType> SupportedTypes => Kinds.Value.Keys;

    /// <summary>0 when the kernel would create <paramref name="spec"/>, else its negative errno (no map is made).</summary>
    public static int Check(BpfMapSpec spec, int possibleCpus)
    {
        // bpf_get_file_flag: BPF_F_RDONLY and BPF_F_WRONLY together.
        if ((spec.Flags & (BpfMapFlags.Rdonly | BpfMapFlags.Wronly)) == (BpfMapFlags.Rdonly | BpfMapFlags.Wronly)) return -BpfErrno.EINVAL;
        if (spec.KeySize < 0 || spec.ValueSize < 0 || spec.MaxEntries < 0) return -BpfErrno.EINVAL;
        if (!Kinds.Value.TryGetValue(spec.Type, out var kind))
            return spec.Type is BpfMapType.Unspec || (uint)spec.Type > 33 ? -BpfErrno.EINVAL : -BpfErrno.EOPNOTSUPP;
        return kind.Check(spec, possibleCpus);
    }

    /// <summary>Creates the map <paramref name="spec"/> describes, per-CPU ones with <paramref name="possibleCpus"/> copies.</summary>
    public static BpfMap Create(BpfMapSpec spec, int possibleCpus)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(possibleCpus, 1);
        int err = Check(spec, possibleCpus);
        if (err == -BpfErrno.EOPNOTSUPP && !Kinds.Value.ContainsKey(spec.Type))
            throw new BpfMapException(BpfErrno.EOPNOTSUPP, $"map '{spec.Name}': type {spec.Type} is not supported by Softnet");
        if (err != 0)
            throw new BpfMapException(-err, $"map '{spec.Name}' ({spec.Type}, key {spec.KeySize}, value {spec.ValueSize}, max_entries {spec.MaxEntries}, flags 0x{spec.Flags:x}): BPF_MAP_CREATE would fail with errno {-err}");
        return Kinds.Value[spec.Type].Create(spec, possibleCpus);
    }
}
