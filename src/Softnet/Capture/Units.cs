using System.Globalization;

namespace Softnet.Capture;

/// <summary>
/// A sending rate: bits per second (counted over whole Ethernet frames plus the 24 bytes of preamble,
/// inter-frame gap and FCS each frame occupies on the wire), packets per second, or "as fast as the
/// link goes". Exactly one of the three is in effect.
/// </summary>
public readonly record struct Rate(double BitsPerSecond, double PacketsPerSecond, bool IsMax)
{
    /// <summary>Back-to-back at line rate.</summary>
    public static Rate Max => new(0, 0, true);

    public static Rate FromBits(double bitsPerSecond) => new(bitsPerSecond, 0, false);

    public static Rate FromPackets(double packetsPerSecond) => new(0, packetsPerSecond, false);

    public bool IsPacketRate => !IsMax && PacketsPerSecond > 0;

    public override string ToString()
        => IsMax ? "max"
         : IsPacketRate ? Units.FormatSi(PacketsPerSecond) + "pps"
         : Units.FormatSi(BitsPerSecond) + "bit/s";
}

/// <summary>
/// Parsers for the size, rate and duration arguments the commands take, following iperf3's conventions:
/// sizes use K/M/G/T as 1024 multiples (iperf3's unit_atoi), rates use k/m/g/t as 1000 multiples
/// (unit_atof_rate), durations are seconds unless suffixed.
/// </summary>
public static class Units
{
    /// <summary>
    /// Parses a byte count: "1500", "512K", "20M", "1G", "1.5M". K/M/G/T (either case, optionally
    /// followed by "B" or "iB") are 1024 multiples, as in iperf3's -n and -l.
    /// </summary>
    public static long ParseBytes(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s.Length == 0) throw new FormatException("empty size; expected e.g. 1500, 512K, 20M or 1G");
        var (number, suffix) = Split(s);
        var unit = suffix.ToLowerInvariant() switch
        {
            "" or "b" => 1.0,
            "k" or "kb" or "kib" => 1024.0,
            "m" or "mb" or "mib" => 1024.0 * 1024,
            "g" or "gb" or "gib" => 1024.0 * 1024 * 1024,
            "t" or "tb" or "tib" => 1024.0 * 1024 * 1024 * 1024,
            _ => throw new FormatException($"size '{text}': unknown unit '{suffix}' (use K, M, G or T, 1024 multiples)"),
        };
        var value = ParseNumber(number, text, "size") * unit;
        if (value < 0) throw new ArgumentException($"size '{text}' is negative", nameof(text));
        if (value > long.MaxValue) throw new ArgumentException($"size '{text}' is too large", nameof(text));
        return (long)Math.Round(value);
    }

    /// <summary>
    /// Parses a rate: "10Gbit", "100Mbit", "1Gbps", "2.5G", "100M", "5000000" (bits per second, k/m/g/t
    /// as 1000 multiples; "bps", "bit", "bit/s", "b/s" accepted), "14.88Mpps" or "1000pps" (packets per
    /// second), or "max".
    /// </summary>
    public static Rate ParseRate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s.Length == 0) throw new FormatException("empty rate; expected e.g. 10Gbit, 100Mbit, 14.88Mpps or max");
        if (s.Equals("max", StringComparison.OrdinalIgnoreCase) || s.Equals("line", StringComparison.OrdinalIgnoreCase))
            return Rate.Max;
        var (number, suffix) = Split(s);
        var lower = suffix.ToLowerInvariant();
        double scale = 1;
        if (lower.Length > 0 && "kmgt".Contains(lower[0]))
        {
            scale = lower[0] switch { 'k' => 1e3, 'm' => 1e6, 'g' => 1e9, _ => 1e12 };
            lower = lower[1..];
        }
        bool packets;
        switch (lower)
        {
            case "" or "b" or "bit" or "bits" or "bps" or "bit/s" or "b/s" or "bits/s":
                packets = false;
                break;
            case "pps" or "p/s" or "packets/s":
                packets = true;
                break;
            default:
                throw new FormatException($"rate '{text}': unknown unit '{suffix}' (use e.g. 10Gbit, 100Mbps, 14.88Mpps or max)");
        }
        var value = ParseNumber(number, text, "rate") * scale;
        if (!(value > 0) || double.IsInfinity(value))
            throw new ArgumentException($"rate '{text}' must be positive", nameof(text));
        return packets ? Rate.FromPackets(value) : Rate.FromBits(value);
    }

    /// <summary>Parses a duration: "10" or "10s" (seconds), "500ms", "100us", "250ns", "2m", "1h", "1.5s".</summary>
    public static TimeSpan ParseDuration(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = text.Trim();
        if (s.Length == 0) throw new FormatException("empty duration; expected e.g. 10s, 500ms or 2m");
        var (number, suffix) = Split(s);
        double secondsPerUnit = suffix.ToLowerInvariant() switch
        {
            "" or "s" or "sec" => 1,
            "ms" => 1e-3,
            "us" or "µs" => 1e-6,
            "ns" => 1e-9,
            "m" or "min" => 60,
            "h" => 3600,
            _ => throw new FormatException($"duration '{text}': unknown unit '{suffix}' (use ns, us, ms, s, m or h)"),
        };
        var seconds = ParseNumber(number, text, "duration") * secondsPerUnit;
        if (seconds < 0) throw new ArgumentException($"duration '{text}' is negative", nameof(text));
        if (seconds > TimeSpan.MaxValue.TotalSeconds) throw new ArgumentException($"duration '{text}' is too long", nameof(text));
        return TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
    }

    /// <summary>Formats with an SI prefix: 1.5G, 100M, 14.88M.</summary>
    public static string FormatSi(double value)
    {
        string[] prefixes = ["", "K", "M", "G", "T"];
        int i = 0;
        while (Math.Abs(value) >= 1000 && i < prefixes.Length - 1) { value /= 1000; i++; }
        return value.ToString("0.###", CultureInfo.InvariantCulture) + prefixes[i];
    }

    /// <summary>Formats a byte count with 1024 multiples: 1.5 MiB.</summary>
    public static string FormatBytes(long bytes)
    {
        string[] prefixes = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        int i = 0;
        while (Math.Abs(v) >= 1024 && i < prefixes.Length - 1) { v /= 1024; i++; }
        return v.ToString(i == 0 ? "0" : "0.##", CultureInfo.InvariantCulture) + " " + prefixes[i];
    }

    private static (string Number, string Suffix) Split(string s)
    {
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.' || (i == 0 && (s[i] == '-' || s[i] == '+'))))
            i++;
        return (s[..i], s[i..].Trim());
    }

    private static double ParseNumber(string number, string text, string what)
    {
        if (number.Length == 0 || !double.TryParse(number, NumberStyles.AllowDecimalPoint | NumberStyles.AllowLeadingSign,
                CultureInfo.InvariantCulture, out var v))
            throw new FormatException($"{what} '{text}' does not start with a number");
        return v;
    }
}
