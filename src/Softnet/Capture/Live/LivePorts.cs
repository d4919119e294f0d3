namespace Softnet.Capture.Live;

/// <summary>Opens live ports by kind, after checking the capabilities they need (so a user is told which is missing
/// instead of getting EPERM from the first socket call).</summary>
public static class LivePorts
{
    private const int CapNetAdmin = 12, CapNetRaw = 13, CapSysAdmin = 21, CapBpf = 39;

    public static ILivePort Open(LivePortKind kind, LivePortOptions options)
    {
        if (MissingCapabilities(kind, options.Netns is not null) is { } why) throw new LivePortException(why, 1);
        return kind switch
        {
            LivePortKind.Packet => PacketPort.Open(options),
            LivePortKind.Xdp => XskPort.Open(options),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
    }

    /// <summary>What the process lacks to open a port of <paramref name="kind"/> (null: nothing), from the effective
    /// capability set in /proc/self/status.</summary>
    public static string? MissingCapabilities(LivePortKind kind, bool entersNetns)
    {
        ulong eff;
        try
        {
            string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
            if (line is null) return null;
            eff = Convert.ToUInt64(line[7..].Trim(), 16);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null; // cannot tell: let the kernel answer
        }
        var missing = new List<string>();
        void Need(int cap, string name, string why)
        {
            if ((eff & (1UL << cap)) == 0) missing.Add($"{name} ({why})");
        }
        Need(CapNetRaw, "CAP_NET_RAW", kind == LivePortKind.Xdp ? "AF_XDP sockets" : "AF_PACKET sockets");
        Need(CapNetAdmin, "CAP_NET_ADMIN", kind == LivePortKind.Xdp ? "attaching the XDP program" : "PACKET_QDISC_BYPASS and fanout");
        if (kind == LivePortKind.Xdp && (eff & (1UL << CapBpf)) == 0 && (eff & (1UL << CapSysAdmin)) == 0)
            missing.Add("CAP_BPF (loading the XDP redirect program and its XSKMAP)");
        if (entersNetns) Need(CapSysAdmin, "CAP_SYS_ADMIN", "entering the interface's network namespace; or run Softnet inside it with ip netns exec");
        return missing.Count == 0 ? null : $"a live {(kind == LivePortKind.Xdp ? "AF_XDP" : "AF_PACKET")} port needs {string.Join(", ", missing)}";
    }
}
