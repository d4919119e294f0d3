namespace Softnet.Netfilter.Xtables;

/// <summary>jiffies on the packet clock: CONFIG_HZ ticks of the packet timestamps (250 on the reference kernel).</summary>
public static class XtClock
{
    /// <summary>CONFIG_HZ.</summary>
    public static int Hz { get; set; } = 250;

    public static long Jiffies(long ns) => ns / (1_000_000_000L / Hz);
}
