using System.Text;

namespace Softnet.KernelTests.Support;

/// <summary>Compares two GRO outputs flow by flow: the order across flows may differ (it depends on hashing and
/// flush order), the order inside a flow may not.</summary>
public static class GroCompare
{
    /// <summary>Null when every flow has the same frames, byte for byte, in the same order; otherwise a
    /// description of the first difference (flow, frame index, field, both frames in hex) and both outputs.</summary>
    public static string? Diff(IReadOnlyList<byte[]> kernel, IReadOnlyList<byte[]> softnet)
    {
        var k = ByFlow(kernel);
        var s = ByFlow(softnet);
        string? first = null;
        foreach (var key in k.Keys.Concat(s.Keys).Distinct())
        {
            var kf = k.GetValueOrDefault(key) ?? [];
            var sf = s.GetValueOrDefault(key) ?? [];
            for (int i = 0; i < Math.Max(kf.Count, sf.Count) && first == null; i++)
            {
                if (i >= kf.Count) { first = $"flow [{key}]: softnet has an extra frame #{i}: {sf[i]}"; break; }
                if (i >= sf.Count) { first = $"flow [{key}]: softnet is missing frame #{i}: {kf[i]}"; break; }
                first = FrameDiff(key, i, kf[i], sf[i]);
            }
            if (first != null) break;
        }
        if (first == null) return null;
        var sb = new StringBuilder(first).AppendLine();
        sb.AppendLine($"kernel ({kernel.Count} frames):");
        foreach (var f in kernel) sb.AppendLine("  " + new FrameInfo(f));
        sb.AppendLine($"softnet ({softnet.Count} frames):");
        foreach (var f in softnet) sb.AppendLine("  " + new FrameInfo(f));
        return sb.ToString();
    }

    private static Dictionary<string, List<FrameInfo>> ByFlow(IReadOnlyList<byte[]> frames)
    {
        var d = new Dictionary<string, List<FrameInfo>>();
        foreach (var f in frames)
        {
            var info = new FrameInfo(f);
            if (!d.TryGetValue(info.FlowKey, out var list)) d[info.FlowKey] = list = [];
            list.Add(info);
        }
        return d;
    }

    private static string? FrameDiff(string key, int index, FrameInfo k, FrameInfo s)
    {
        var a = k.Bytes;
        var b = s.Bytes;
        int n = Math.Min(a.Length, b.Length);
        int at = -1;
        for (int i = 0; i < n; i++)
            if (a[i] != b[i]) { at = i; break; }
        if (at < 0 && a.Length == b.Length) return null;
        var sb = new StringBuilder();
        sb.Append($"flow [{key}] frame #{index}: ");
        if (at < 0)
            sb.Append($"length differs: kernel {a.Length} bytes, softnet {b.Length} bytes (equal up to {n})");
        else
            sb.Append($"first difference at byte {at} ({k.FieldAt(at)}): kernel 0x{a[at]:x2}, softnet 0x{b[at]:x2}; lengths {a.Length}/{b.Length}");
        sb.AppendLine();
        sb.AppendLine($"  kernel : {k}");
        sb.AppendLine($"  softnet: {s}");
        int from = Math.Max(0, (at < 0 ? n : at) - 16) & ~15;
        sb.AppendLine($"  kernel  [{from}..]: {Convert.ToHexString(a.AsSpan(from, Math.Min(48, Math.Max(0, a.Length - from))))}");
        sb.Append($"  softnet [{from}..]: {Convert.ToHexString(b.AsSpan(from, Math.Min(48, Math.Max(0, b.Length - from))))}");
        return sb.ToString();
    }
}
