using System.Globalization;
using System.Text;

namespace Softnet.Telemetry.Report;

/// <summary>
/// A flamegraph drawn from collapsed stacks, as flamegraph.pl draws one: the root at the bottom, each frame a
/// rectangle as wide as its inclusive time, its callees stacked above it, siblings in name order; each frame's
/// &lt;title&gt; gives its name, time and share (the tooltip). Plain SVG, no script: it stands alone as a file and
/// inside the HTML report. No frame is left out for being narrow, so every stage that ran has its rectangle.
/// </summary>
public static class FlamegraphSvg
{
    private sealed class Node(string name)
    {
        public string Name { get; } = name;
        public long Total;
        public SortedDictionary<string, Node> Children { get; } = new(StringComparer.Ordinal);
    }

    public const int Width = 1200;
    private const int FrameHeight = 17, Pad = 10, TitleSpace = 34;
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The SVG document for <paramref name="stacks"/>.</summary>
    public static string Render(CpuStacks stacks, string title = "CPU time by call path")
    {
        var root = new Node("all");
        foreach (var (stack, ns) in stacks.Lines)
        {
            root.Total += ns;
            var n = root;
            foreach (var frame in stack.Split(';'))
            {
                if (!n.Children.TryGetValue(frame, out var c)) n.Children.Add(frame, c = new Node(frame));
                c.Total += ns;
                n = c;
            }
        }
        int depth = Depth(root);
        int height = TitleSpace + (depth + 1) * FrameHeight + Pad * 2;
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flamegraph\" width=\"{Width}\" height=\"{height}\" viewBox=\"0 0 {Width} {height}\" font-family=\"Verdana, sans-serif\" font-size=\"12\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"0\" y=\"0\" width=\"{Width}\" height=\"{height}\" fill=\"#f8f4ec\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">{Html.Escape(title)}</text>\n");
        if (root.Total == 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"{TitleSpace + FrameHeight}\" text-anchor=\"middle\">no sampled packets: nothing to draw</text>\n");
        }
        else
        {
            double scale = (Width - 2.0 * Pad) / root.Total;
            Draw(sb, root, Pad, 0, depth, height, scale, root.Total);
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    private static int Depth(Node n)
    {
        int d = 0;
        foreach (var c in n.Children.Values) d = Math.Max(d, 1 + Depth(c));
        return d;
    }

    private static void Draw(StringBuilder sb, Node n, double x, int level, int depth, int height, double scale, long all)
    {
        double w = n.Total * scale;
        double y = height - Pad - (level + 1) * FrameHeight;
        string pct = (100.0 * n.Total / all).ToString("F2", Inv);
        sb.Append("<g class=\"frame\"><title>").Append(Html.Escape(n.Name)).Append(" (")
          .Append(n.Total.ToString("N0", Inv)).Append(' ').Append(CpuStacks.Unit).Append(", ").Append(pct).Append("%)</title>");
        sb.Append(Inv, $"<rect x=\"{x:F2}\" y=\"{y:F1}\" width=\"{Math.Max(w, 0.01):F2}\" height=\"{FrameHeight - 1}\" rx=\"2\" fill=\"{Colour(n.Name)}\"/>");
        // A label as far as it fits (about 7 px a character), as flamegraph.pl trims with "..".
        int chars = (int)((w - 6) / 7);
        if (chars >= 3)
        {
            string label = n.Name.Length <= chars ? n.Name : n.Name[..(chars - 2)] + "..";
            sb.Append(Inv, $"<text x=\"{x + 3:F2}\" y=\"{y + FrameHeight - 5:F1}\">{Html.Escape(label)}</text>");
        }
        sb.Append("</g>\n");
        double cx = x;
        foreach (var c in n.Children.Values)
        {
            Draw(sb, c, cx, level + 1, depth, height, scale, all);
            cx += c.Total * scale;
        }
    }

    /// <summary>flamegraph.pl's "hot" palette, from a hash of the name so a frame keeps its colour between runs.</summary>
    private static string Colour(string name)
    {
        uint h = 2166136261;
        foreach (char ch in name) h = (h ^ ch) * 16777619;
        int r = 205 + (int)(h % 50), g = (int)((h >> 8) % 230), b = (int)((h >> 16) % 55);
        return $"rgb({r},{g},{b})";
    }
}

/// <summary>Escaping for text and attribute values in the report's HTML and SVG.</summary>
public static class Html
{
    public static string Escape(string s)
    {
        bool plain = true;
        foreach (char c in s)
            if (c is '<' or '>' or '&' or '"' or '\'' || (c < ' ' && c != '\n' && c != '\t')) { plain = false; break; }
        if (plain) return s;
        var sb = new StringBuilder(s.Length + 16);
        foreach (char c in s)
        {
            // Control characters have no place in XML 1.0 (an SVG that would not parse): left out.
            if (c < ' ' && c != '\n' && c != '\t') continue;
            sb.Append(c switch { '<' => "&lt;", '>' => "&gt;", '&' => "&amp;", '"' => "&quot;", '\'' => "&#39;", _ => c.ToString() });
        }
        return sb.ToString();
    }
}
