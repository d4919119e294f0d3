using System.Globalization;
using System.Reflection;

namespace Softnet.Link;

/// <summary>How a sysctl write fails, as the errno the kernel's handler returns (sysctl prints its strerror).</summary>
public enum SysctlWriteError
{
    None,
    /// <summary>EINVAL: a value the handler cannot parse or that is out of its bounds; also any write to a read-only key
    /// (procps 4.0.2 reports it with this errno).</summary>
    InvalidArgument,
    /// <summary>ENOENT: a name the handler looks up and does not find (tcp_congestion_control, nf_log).</summary>
    NoSuchFile,
    /// <summary>EIO: stable_secret that is not an IPv6 address, or all's (which has none).</summary>
    IoError,
    /// <summary>EPERM: a congestion control a namespace other than the first may not make its default.</summary>
    NotPermitted,
    /// <summary>EBUSY: nf_hooks_lwtunnel, which cannot be turned off once on.</summary>
    Busy,
    /// <summary>EOVERFLOW: a CPU mask with bits beyond the machine's CPUs.</summary>
    Overflow,
}

/// <summary>
/// Every sysctl a network namespace of Linux 6.18 has, with the kernel's handler and bounds per key, read from the
/// embedded SysctlCatalogue.txt (made from the kernel's ctl_table definitions, checked against `sysctl -a`), and the
/// write check each handler makes (proc_dointvec_minmax, proc_douintvec_minmax, proc_doulongvec_minmax, the jiffies
/// conversions, proc_do_large_bitmap, the string lookups). Used when a scenario is loaded, never per packet.
/// </summary>
public static class SysctlCatalogue
{
    /// <summary>CONFIG_HZ and USER_HZ of the machine the catalogue mirrors.</summary>
    public const int Hz = 250, UserHz = 100;

    public sealed record Entry(string Key, string Handler, string[] Args)
    {
        /// <summary>A key outside the network namespace (kernel.*, vm.*, fs.*, the root namespace's net.core.*).</summary>
        public bool Host => Handler == "host";
        public bool ReadOnly => Handler == "readonly";
    }

    /// <summary>
    /// net_core_table's keys that shape the path (net/core/sysctl_net_core.c): one value for the whole kernel, registered
    /// for init_net alone, so a namespace other than the first does not see them (rmem_default and rmem_max it sees
    /// read-only). A scenario namespace that sets one speaks for the host, as the /etc/sysctl.conf it was copied from
    /// does: the value is checked with init_net's handler and bounds, and holds for every namespace of the replay.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, Entry> GlobalCore = new Dictionary<string, Entry>(StringComparer.Ordinal)
    {
        ["net.core.netdev_budget"] = new("net.core.netdev_budget", "proc_dointvec", []),
        // At least 2 jiffies since 6.14 (c180188ec022), 8000 at HZ=250.
        ["net.core.netdev_budget_usecs"] = new("net.core.netdev_budget_usecs", "proc_dointvec_minmax", [(2 * 1_000_000 / Hz).ToString(CultureInfo.InvariantCulture), "2147483647"]),
        ["net.core.netdev_max_backlog"] = new("net.core.netdev_max_backlog", "proc_dointvec", []),
        // proc_do_dev_weight: proc_dointvec_minmax from 1, then dev_rx_weight and dev_tx_weight follow.
        ["net.core.dev_weight"] = new("net.core.dev_weight", "proc_dointvec_minmax", ["1", "2147483647"]),
        // rps_sock_flow_sysctl: more than 1 << 29 entries is EINVAL (a negative int read as unsigned is too).
        ["net.core.rps_sock_flow_entries"] = new("net.core.rps_sock_flow_entries", "proc_dointvec_minmax", ["0", "536870912"]),
        // min_rcvbuf: SOCK_MIN_RCVBUF, TCP_SKB_MIN_TRUESIZE (2048 + an aligned struct sk_buff); 2303 refused on 6.18.
        ["net.core.rmem_default"] = new("net.core.rmem_default", "proc_dointvec_minmax", ["2304", "2147483647"]),
        ["net.core.rmem_max"] = new("net.core.rmem_max", "proc_dointvec_minmax", ["2304", "2147483647"]),
    };

    private static readonly Dictionary<string, Entry> Exact = new(StringComparer.Ordinal);
    /// <summary>Per-device templates by their prefix ("net.ipv4.conf.") and the name after the device.</summary>
    private static readonly Dictionary<(string Prefix, string Name), Entry> PerDevice = new();

    /// <summary>The per-device trees: net.ipv4.conf.DEV, net.ipv6.conf.DEV, net.ipv4.neigh.DEV, net.ipv6.neigh.DEV.</summary>
    public static readonly string[] DevicePrefixes = ["net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh."];

    static SysctlCatalogue()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("Softnet.Link.SysctlCatalogue.txt")
            ?? throw new InvalidOperationException("SysctlCatalogue.txt is not embedded");
        using var r = new StreamReader(s);
        while (r.ReadLine() is { } line)
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var e = new Entry(f[0], f[1], f[2..]);
            int dev = f[0].IndexOf(".<dev>.", StringComparison.Ordinal);
            if (dev >= 0) PerDevice[(f[0][..(dev + 1)], f[0][(dev + 7)..])] = e;
            else Exact[f[0]] = e;
        }
    }

    /// <summary>All keys of a namespace whose devices are <paramref name="devices"/> (lo included by the caller),
    /// each per-device template once for all, default and every device.</summary>
    public static IEnumerable<string> Keys(IEnumerable<string> devices)
    {
        foreach (var k in Exact.Keys) yield return k;
        var devs = new[] { "all", "default" }.Concat(devices).ToList();
        foreach (var (prefix, name) in PerDevice.Keys)
            foreach (var d in devs)
            {
                // The neighbour trees have `default` but no `all` (neigh_sysctl_register for the table's parms).
                if (d == "all" && prefix.EndsWith("neigh.", StringComparison.Ordinal)) continue;
                yield return prefix + d + "." + name;
            }
    }

    /// <summary>The entry for <paramref name="key"/> (dotted), or null when the kernel has no such file;
    /// <paramref name="device"/> is the device a per-device key names (all/default included), else null.</summary>
    public static Entry? Find(string key, Func<string, bool> deviceExists, out string? device)
    {
        device = null;
        if (Exact.TryGetValue(key, out var e)) return e;
        foreach (var prefix in DevicePrefixes)
        {
            if (!key.StartsWith(prefix, StringComparison.Ordinal)) continue;
            // The key's last component is the setting; what lies between is the device (whose name may hold dots: eth0.10).
            int dot = key.LastIndexOf('.');
            if (dot <= prefix.Length) return null;
            string dev = key[prefix.Length..dot];
            if (!PerDevice.TryGetValue((prefix, key[(dot + 1)..]), out e)) return null;
            bool neigh = prefix.EndsWith("neigh.", StringComparison.Ordinal);
            if (!(dev == "default" || (dev == "all" && !neigh) || deviceExists(dev))) return null;
            device = dev;
            return e;
        }
        return null;
    }

    /// <summary>
    /// The kernel's answer to writing <paramref name="value"/> (what sysctl writes: the value then a newline) to the key
    /// of <paramref name="e"/>. <paramref name="current"/> reads another key's value (bounds that point at one, like
    /// ipfrag_low_thresh's); <paramref name="deviceMtu"/> is the MTU of the device a per-device key names (0 for all/default).
    /// </summary>
    public static SysctlWriteError Check(Entry e, string? device, string value, Func<string, string?> current, int deviceMtu)
    {
        var a = e.Args;
        switch (e.Handler)
        {
            case "host" or "proc_dostring" or "ipv4_sysctl_rtcache_flush": return SysctlWriteError.None;
            case "readonly": return SysctlWriteError.InvalidArgument;
            case "proc_dointvec": return Ints(value, Conv.Int, long.MinValue, long.MaxValue, a.Length > 0 ? Int(a[0]) : 1, null);
            case "ipv6_sysctl_rtcache_flush": return Ints(value, Conv.Int, long.MinValue, long.MaxValue, 1, null);
            case "proc_dointvec_minmax": return Ints(value, Conv.Int, Bound(a[0], current), Bound(a[1], current), a.Length > 2 ? Int(a[2]) : 1, null);
            case "proc_douintvec_minmax" or "proc_dou8vec_minmax" or "proc_doulongvec_minmax":
                return Ints(value, e.Handler == "proc_doulongvec_minmax" ? Conv.ULong : Conv.UInt, Bound(a[0], current), Bound(a[1], current), a.Length > 2 ? Int(a[2]) : 1, null);
            case "proc_dointvec_jiffies": return Ints(value, Conv.Jiffies, long.MinValue, long.MaxValue, 1, null);
            case "proc_dointvec_userhz_jiffies": return Ints(value, Conv.UserHzJiffies, long.MinValue, long.MaxValue, 1, null);
            case "proc_dointvec_ms_jiffies": return Ints(value, Conv.MsJiffies, long.MinValue, long.MaxValue, 1, null);
            case "proc_dointvec_ms_jiffies_minmax": return Ints(value, Conv.MsJiffies, Bound(a[0], current), Bound(a[1], current), 1, null);
            case "proc_do_large_bitmap": return Bitmap(value, Int(a[0]));
            case "proc_tcp_congestion_control":
                // tcp_set_default_congestion_control: unknown is ENOENT; outside the first namespace only the algorithms
                // tcp_allowed_congestion_control lists (non-restricted) may be the default, others are EPERM.
                if (a[0].Split(',').Contains(value.Trim())) return SysctlWriteError.None;
                return a.Length > 1 && a[1].Split(',').Contains(value.Trim()) ? SysctlWriteError.NotPermitted : SysctlWriteError.NoSuchFile;
            case "nf_hooks_lwtunnel_sysctl_handler":
            {
                // 0..1; the static key is on (some namespace turned it on) and cannot be turned off: 0 is EBUSY.
                long[] v = new long[1];
                var err = Ints(value, Conv.Int, 0, 1, 1, v);
                return err != SysctlWriteError.None ? err : v[0] == 0 ? SysctlWriteError.Busy : SysctlWriteError.None;
            }
            case "proc_path_manager" or "proc_scheduler" or "nf_log_proc_dostring":
                // A name the kernel looks up (and cannot find: ENOENT); nf_log also takes NONE.
                return a[0].Split(',').Contains(value.Trim()) ? SysctlWriteError.None : SysctlWriteError.NoSuchFile;
            case "proc_tcp_fastopen_key": return FastopenKey(value);
            case "ipv4_local_port_range":
            {
                // ipv4_local_port_range: two ports in 1..65535, low <= high, low at or above ip_unprivileged_port_start.
                long lowFloor = Bound("@net.ipv4.ip_unprivileged_port_start", current);
                // A write of one port changes the low end only: the other stays.
                var now = (current("net.ipv4.ip_local_port_range") ?? "32768 60999").Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                long[] v = [long.Parse(now[0], CultureInfo.InvariantCulture), long.Parse(now[1], CultureInfo.InvariantCulture)];
                var err = Ints(value, Conv.Int, 1, 65535, 2, v);
                if (err != SysctlWriteError.None) return err;
                return v[1] < v[0] || v[0] < lowFloor ? SysctlWriteError.InvalidArgument : SysctlWriteError.None;
            }
            case "ipv4_privileged_ports":
            {
                // ipv4_privileged_ports: 0..65535 and not above the local port range's low end.
                var range = (current("net.ipv4.ip_local_port_range") ?? "32768 60999").Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                return Ints(value, Conv.Int, 0, Math.Min(65535, long.Parse(range[0], CultureInfo.InvariantCulture)), 1, null);
            }
            case "addrconf_sysctl_mtu":
                // IPV6_MIN_MTU up to the device's own MTU (all and default: no upper bound).
                return Ints(value, Conv.Int, 1280, deviceMtu > 0 ? deviceMtu : int.MaxValue, 1, null);
            case "addrconf_sysctl_addr_gen_mode":
            {
                // 0..3; a device takes stable_privacy (2) only with a stable_secret, its own or default's.
                long[] v = new long[1];
                var err = Ints(value, Conv.UInt, 0, 3, 1, v);
                if (err != SysctlWriteError.None) return err;
                bool secret = current($"net.ipv6.conf.{device}.stable_secret") != null || current("net.ipv6.conf.default.stable_secret") != null;
                return v[0] == 2 && device is not ("all" or "default") && !secret ? SysctlWriteError.InvalidArgument : SysctlWriteError.None;
            }
            case "addrconf_sysctl_stable_secret":
                if (device == "all") return SysctlWriteError.IoError;
                return System.Net.IPAddress.TryParse(value.Trim(), out var ip) && ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
                    ? SysctlWriteError.None : SysctlWriteError.IoError;
            case "rps_default_mask_sysctl": return CpuMask(value, Environment.ProcessorCount);
        }
        throw new InvalidOperationException($"sysctl catalogue: no check for handler '{e.Handler}' ({e.Key})");
    }

    /// <summary>
    /// What reading the key back gives after a successful write of <paramref name="value"/> (the kernel keeps the parsed
    /// number, so "0x10" reads 16, a millisecond value reads back in whole jiffies): numbers as the handler stores them, a
    /// vector's unwritten tail kept from <paramref name="old"/>; other handlers keep the text.
    /// </summary>
    public static string Normalize(Entry e, string value, string? old)
    {
        Conv? conv = e.Handler switch
        {
            "proc_dointvec" or "proc_dointvec_minmax" or "ipv4_local_port_range" or "ipv4_privileged_ports" or "addrconf_sysctl_mtu" => Conv.Int,
            "proc_douintvec_minmax" or "proc_dou8vec_minmax" or "addrconf_sysctl_addr_gen_mode" => Conv.UInt,
            "proc_doulongvec_minmax" => Conv.ULong,
            "proc_dointvec_jiffies" => Conv.Jiffies,
            "proc_dointvec_userhz_jiffies" => Conv.UserHzJiffies,
            "proc_dointvec_ms_jiffies" or "proc_dointvec_ms_jiffies_minmax" => Conv.MsJiffies,
            _ => null,
        };
        if (conv == null) return value;
        int count = e.Handler == "ipv4_local_port_range" ? 2 : e.Args.Length > 2 ? Int(e.Args[2]) : e.Handler == "proc_dointvec" && e.Args.Length > 0 ? Int(e.Args[0]) : 1;
        var into = new long[count];
        // A vector written in part keeps the rest: the kernel's initial values where nothing was written before
        // (tcp_init: what a fresh namespace of this host shows; rmem's top end comes from the host's memory).
        old ??= e.Key switch
        {
            "net.ipv4.tcp_rmem" => "4096 131072 33554432",
            "net.ipv4.tcp_wmem" => "4096 16384 4194304",
            "net.ipv4.ip_local_port_range" => "32768 60999",
            "net.ipv4.ping_group_range" => "1 0",
            _ => "",
        };
        var olds = old.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        for (int i = 0; i < count; i++) into[i] = long.MinValue;
        Ints(value, conv.Value, long.MinValue, long.MaxValue, count, into);
        var parts = new string[count];
        for (int i = 0; i < count; i++)
        {
            if (into[i] == long.MinValue) parts[i] = i < olds.Length ? olds[i] : "0";
            // jiffies_to_msecs: a millisecond value reads back as the jiffies it became, times 4 (HZ=250).
            else parts[i] = (conv == Conv.MsJiffies ? into[i] * (1000 / Hz) : into[i]).ToString(CultureInfo.InvariantCulture);
        }
        return string.Join('\t', parts);
    }

    /// <summary>The values of a fresh namespace for the keys other keys' bounds point at.</summary>
    private static readonly Dictionary<string, string> Initial = new(StringComparer.Ordinal)
    {
        ["net.ipv4.ipfrag_low_thresh"] = "3145728",
        ["net.ipv4.ipfrag_high_thresh"] = "4194304",
        ["net.ipv6.ip6frag_low_thresh"] = "3145728",
        ["net.ipv6.ip6frag_high_thresh"] = "4194304",
        ["net.netfilter.nf_conntrack_frag6_low_thresh"] = "3145728",
        ["net.netfilter.nf_conntrack_frag6_high_thresh"] = "4194304",
        ["net.ipv4.ip_unprivileged_port_start"] = "1024",
        ["net.ipv4.tcp_max_reordering"] = "300",
    };

    private static int Int(string s) => int.Parse(s, CultureInfo.InvariantCulture);

    private static long Bound(string s, Func<string, string?> current)
    {
        if (s[0] == '@')
        {
            string? v = current(s[1..]) ?? Initial.GetValueOrDefault(s[1..]);
            return v != null && long.TryParse(v.Trim().Split([' ', '\t'])[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long x) ? x : 0;
        }
        // 18446744073709551615 (ULONG_MAX) does not fit a long: the ulong handler takes it as "no upper bound".
        return ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out ulong u) && u > long.MaxValue ? long.MaxValue
            : long.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
    }

    private enum Conv { Int, UInt, ULong, Jiffies, UserHzJiffies, MsJiffies }

    /// <summary>
    /// __do_proc_dointvec and its siblings: up to <paramref name="count"/> whitespace-separated numbers, each converted
    /// as the handler converts and checked against [min, max]; what follows the last one the vector takes is left
    /// unread (the write is short and sysctl's second write, at a non-zero offset, is ignored: sysctl_writes_strict).
    /// </summary>
    private static SysctlWriteError Ints(string value, Conv conv, long min, long max, int count, long[]? into)
    {
        string s = value + "\n";
        int p = 0;
        for (int i = 0; i < count; i++)
        {
            SkipSpaces(s, ref p);
            if (p >= s.Length)
                return i == 0 ? SysctlWriteError.InvalidArgument : SysctlWriteError.None;
            if (!GetLong(s, ref p, out bool neg, out ulong v, " \t\n")) return SysctlWriteError.InvalidArgument;
            long x;
            switch (conv)
            {
                case Conv.Int:
                    // do_proc_dointvec_conv: a C int.
                    if (neg ? v > 1UL + int.MaxValue : v > int.MaxValue) return SysctlWriteError.InvalidArgument;
                    x = neg ? -(long)v : (long)v;
                    break;
                case Conv.UInt:
                    // do_proc_douintvec_conv: no sign, 32 bits.
                    if (neg || v > uint.MaxValue) return SysctlWriteError.InvalidArgument;
                    x = (long)v;
                    break;
                case Conv.ULong:
                    // __do_proc_doulongvec_minmax: no sign.
                    if (neg) return SysctlWriteError.InvalidArgument;
                    x = v > long.MaxValue ? long.MaxValue : (long)v;
                    break;
                case Conv.Jiffies:
                    // do_proc_dointvec_jiffies_conv: seconds, refused when seconds * HZ would overflow an int.
                    if (v > int.MaxValue / Hz) return SysctlWriteError.InvalidArgument;
                    x = neg ? -(long)v : (long)v;
                    break;
                case Conv.UserHzJiffies:
                    // do_proc_dointvec_userhz_jiffies_conv: USER_HZ ticks, bounded by LONG_MAX / HZ * USER_HZ.
                    if (v > (ulong)(long.MaxValue / Hz) * UserHz) return SysctlWriteError.InvalidArgument;
                    x = neg ? -(long)v : (long)v;
                    break;
                default:
                {
                    // do_proc_dointvec_ms_jiffies_conv: msecs_to_jiffies takes the (negated) value as an unsigned int;
                    // one that is negative as an int maps to MAX_JIFFY_OFFSET, above INT_MAX: refused. HZ=250: 4 ms a jiffy.
                    uint ms = unchecked((uint)(neg ? 0UL - v : v));
                    if ((int)ms < 0) return SysctlWriteError.InvalidArgument;
                    x = (ms + 3L) / 4;
                    break;
                }
            }
            if (x < min || x > max) return SysctlWriteError.InvalidArgument;
            if (into != null) into[i] = x;
        }
        return SysctlWriteError.None;
    }

    private static void SkipSpaces(string s, ref int p)
    {
        while (p < s.Length && s[p] is ' ' or '\t' or '\n' or '\r' or '\v' or '\f') p++;
    }

    /// <summary>
    /// proc_get_long: an optional '-', then a number as strtoul with base 0 reads it (0x hex, leading 0 octal), at most
    /// 21 characters, ending at the end or at a character of <paramref name="terminators"/>.
    /// </summary>
    private static bool GetLong(string s, ref int p, out bool neg, out ulong v, string terminators)
    {
        neg = false;
        v = 0;
        int start = p;
        if (p < s.Length && s[p] == '-')
        {
            neg = true;
            p++;
        }
        if (p >= s.Length || !char.IsAsciiDigit(s[p])) return false;
        int b = 10;
        if (s[p] == '0')
        {
            if (p + 2 < s.Length && (s[p + 1] | 0x20) == 'x' && char.IsAsciiHexDigit(s[p + 2]))
            {
                b = 16;
                p += 2;
            }
            else b = 8;
        }
        while (p < s.Length)
        {
            int d = char.IsAsciiDigit(s[p]) ? s[p] - '0' : char.IsAsciiHexDigit(s[p]) ? (s[p] | 0x20) - 'a' + 10 : 99;
            if (d >= b) break;
            try { v = checked(v * (ulong)b + (ulong)d); }
            catch (OverflowException) { return false; }
            p++;
        }
        // A number that fills the kernel's 22-byte buffer is refused: it cannot tell what follows.
        if (p - start >= 21) return false;
        return p >= s.Length || terminators.Contains(s[p]);
    }

    /// <summary>proc_do_large_bitmap: comma-separated bits and ranges (a-b) below <paramref name="bits"/>; empty clears.</summary>
    private static SysctlWriteError Bitmap(string value, int bits)
    {
        string s = value + "\n";
        int p = 0;
        SkipSpaces(s, ref p);
        while (p < s.Length)
        {
            if (!GetLong(s, ref p, out bool neg, out ulong a, "-,\n") || neg || a >= (ulong)bits) return SysctlWriteError.InvalidArgument;
            if (s[p] == '-')
            {
                p++;
                if (!GetLong(s, ref p, out neg, out ulong b, ",\n") || neg || b >= (ulong)bits || b < a) return SysctlWriteError.InvalidArgument;
            }
            if (s[p] == '\n') break;
            p++; // ','
        }
        return SysctlWriteError.None;
    }

    /// <summary>
    /// bitmap_parse as cpumask_parse calls it, for <paramref name="cpus"/> bits: 32-bit hex chunks read from the end,
    /// separated by commas or blanks; one chunk more than the mask holds is EOVERFLOW (found before it is read), a
    /// character that is not hex EINVAL, a ninth digit EOVERFLOW, then a bit at or above the CPU count EOVERFLOW.
    /// </summary>
    private static SysctlWriteError CpuMask(string value, int cpus)
    {
        static bool EndOfRegion(char c) => c is ' ' or '\t' or '\n' or '\r' or '\v' or '\f' or ',';
        int chunks = (cpus + 31) / 32, end = value.Length - 1, chunk = 0;
        bool beyond = false;
        while (true)
        {
            while (end >= 0 && EndOfRegion(value[end])) end--;
            if (end < 0) break;
            if (chunks-- == 0) return SysctlWriteError.Overflow;
            uint bits = 0;
            for (int i = 0; ; i += 4)
            {
                if (i == 32)
                {
                    if (char.IsAsciiHexDigit(value[end--])) return SysctlWriteError.Overflow;
                    break;
                }
                char c = value[end--];
                if (!char.IsAsciiHexDigit(c)) return SysctlWriteError.InvalidArgument;
                bits |= (uint)Convert.ToInt32(c.ToString(), 16) << i;
                if (end < 0 || EndOfRegion(value[end])) break;
            }
            for (int b = 0; b < 32; b++)
                if ((bits >> b & 1) != 0 && chunk * 32 + b >= cpus) beyond = true;
            chunk++;
        }
        return beyond ? SysctlWriteError.Overflow : SysctlWriteError.None;
    }

    /// <summary>proc_tcp_fastopen_key: one or two keys (primary, backup), each four 32-bit hex words joined by '-'.</summary>
    private static SysctlWriteError FastopenKey(string value)
    {
        var keys = value.Trim().Split(',');
        if (keys.Length > 2) return SysctlWriteError.InvalidArgument;
        foreach (var k in keys)
        {
            var w = k.Split('-');
            if (w.Length != 4) return SysctlWriteError.InvalidArgument;
            foreach (var x in w)
                if (x.Length is 0 or > 8 || !x.All(char.IsAsciiHexDigit)) return SysctlWriteError.InvalidArgument;
        }
        return SysctlWriteError.None;
    }
}
