using System.Globalization;
using Softnet.Capture;
using Softnet.Tests.Support;

namespace Softnet.Tests.Packets;

/// <summary>
/// Runs tshark once over a set of frames and keeps each frame's field values, so tests can compare a
/// header view field by field with Wireshark's dissection of the same bytes.
/// </summary>
public sealed class TsharkOracle
{
    private readonly List<Dictionary<string, string>> _rows = [];

    public bool Available { get; }
    public string? Error { get; }

    public TsharkOracle(IReadOnlyList<byte[]> frames, IReadOnlyList<string> fields, LinkType linkType = LinkType.Ethernet, params string[] prefs)
    {
        if (!ExternalTool.Exists("tshark")) return;
        var path = Path.Combine(Path.GetTempPath(), $"softnet-oracle-{Guid.NewGuid():N}.pcap");
        try
        {
            using (var w = PcapWriter.Create(path, linkType))
            {
                long t = 1_700_000_000_000_000_000;
                foreach (var f in frames) w.Write(t += 1000, f);
            }
            var args = new List<string> { "-r", path, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=\t" };
            foreach (var p in prefs) { args.Add("-o"); args.Add(p); }
            foreach (var f in fields) { args.Add("-e"); args.Add(f); }
            var (exit, stdout, stderr) = ExternalTool.Run("tshark", [.. args]);
            if (exit != 0)
            {
                Error = stderr;
                return;
            }
            foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var cols = line.TrimEnd('\r').Split('\t');
                var row = new Dictionary<string, string>();
                for (int i = 0; i < fields.Count; i++) row[fields[i]] = i < cols.Length ? cols[i] : "";
                _rows.Add(row);
            }
            Available = _rows.Count == frames.Count;
            if (!Available) Error = $"tshark returned {_rows.Count} rows for {frames.Count} frames: {stderr}";
        }
        finally
        {
            File.Delete(path);
        }
    }

    public Dictionary<string, string> this[int frame] => _rows[frame];

    /// <summary>All occurrences of a field (e.g. one per VLAN tag), parsed as numbers.</summary>
    public static long[] Numbers(string value)
        => value.Length == 0 ? [] : value.Split(',').Select(Number).ToArray();

    /// <summary>A tshark number: decimal, 0x-hex, or True/False.</summary>
    public static long Number(string v)
    {
        v = v.Trim();
        if (v.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return long.Parse(v.AsSpan(2), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        if (v.Equals("True", StringComparison.OrdinalIgnoreCase)) return 1;
        if (v.Equals("False", StringComparison.OrdinalIgnoreCase)) return 0;
        return long.Parse(v, CultureInfo.InvariantCulture);
    }

    /// <summary>MAC as tshark prints it (aa:bb:cc:dd:ee:ff).</summary>
    public static string Mac(ReadOnlySpan<byte> mac) => string.Join(":", mac.ToArray().Select(b => b.ToString("x2")));

    public static string Ipv4(ReadOnlySpan<byte> a) => $"{a[0]}.{a[1]}.{a[2]}.{a[3]}";

    public static string Ipv6(ReadOnlySpan<byte> a) => new System.Net.IPAddress(a).ToString();
}
