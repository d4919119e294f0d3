using System.Globalization;
using Softnet.Link;
using Softnet.Nic;
using Softnet.Steering;

namespace Softnet.Topology;

/// <summary>
/// ns/NAME/sysfs: values written to the namespace's /sys, one <c>PATH = VALUE</c> a line ('#' comments), PATH under
/// /sys (a leading <c>/sys/</c> may be written), as <c>echo VALUE &gt; /sys/PATH</c> inside the namespace would write
/// it. Known files: <c>class/net/DEV/queues/rx-0/rps_cpus</c> (a hex CPU mask, comma-separated 32-bit groups as the
/// kernel prints it) and <c>class/net/DEV/queues/rx-0/rps_flow_cnt</c> (a count; the kernel rounds it up to a power of
/// two). A scenario device has one RX queue, rx-0. Written after ip.batch, so the devices exist. What the kernel would
/// refuse (no such device or file, a bad value) is rejected with file:line.
/// </summary>
public static class SysfsFile
{
    /// <summary>The writable queue files: name → how a value is stored (an error message, or null when taken).</summary>
    private static readonly Dictionary<string, Func<RxQueueRps, string, string?>> s_queueFiles = new(StringComparer.Ordinal)
    {
        ["rps_cpus"] = (q, v) =>
        {
            if (!CpuMask.TryParse(v, out var m)) return $"'{v}' is not a hex CPU mask: write error: Invalid argument";
            q.RpsCpus = m;
            return null;
        },
        ["rps_flow_cnt"] = (q, v) =>
        {
            // rps_dev_flow_table_cnt: an unsigned long, at most 2^27 entries on a 64-bit kernel here.
            if (!long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out long n)) return $"'{v}' is not a count: write error: Invalid argument";
            if (n > 1 << 27) return $"rps_flow_cnt {n} is too large: write error: Invalid argument";
            q.RpsFlowCnt = (int)n;
            return null;
        },
    };

    public static void Load(Namespace ns, string path)
    {
        var lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = SocketsFile.StripComment(lines[i]);
            if (line.Length == 0) continue;
            ScenarioFormatException Err(string why) => new(path, i + 1, why);
            int eq = line.IndexOf('=');
            if (eq < 0) throw Err("expected PATH = VALUE (e.g. class/net/eth0/queues/rx-0/rps_cpus = 2)");
            string key = line[..eq].Trim();
            string value = line[(eq + 1)..].Trim();
            if (key.StartsWith("/sys/", StringComparison.Ordinal)) key = key[5..];
            var p = key.Split('/');
            if (p.Length != 6 || p[0] != "class" || p[1] != "net" || p[3] != "queues")
                throw Err($"/sys/{key}: not a file Softnet writes (known: class/net/DEV/queues/rx-0/{string.Join('|', s_queueFiles.Keys)})");
            var dev = ns.Device(p[2]) ?? throw Err($"/sys/{key}: No such file or directory (no device '{p[2]}' in namespace '{ns.Name}')");
            if (p[4] != "rx-0") throw Err($"/sys/{key}: No such file or directory ({dev.Name} has one RX queue, rx-0)");
            if (!s_queueFiles.TryGetValue(p[5], out var set))
                throw Err($"/sys/{key}: not a file Softnet writes (known: {string.Join(", ", s_queueFiles.Keys)})");
            var q = dev.RpsRx ??= new RxQueueRps();
            if (set(q, value) is { } why) throw Err($"/sys/{key}: {why}");
        }
    }
}
