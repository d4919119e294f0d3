using System.Globalization;
using System.Text;

namespace Softnet.Telemetry.Report;

/// <summary>One flow of a Sankey diagram: <see cref="Value"/> packets from node <see cref="From"/> to <see cref="To"/>.</summary>
public readonly record struct SankeyLink(string From, string To, long Value);

/// <summary>
/// The report's charts as inline SVG, drawn here so the report needs no script library and no network: a Sankey
/// diagram, horizontal bars, a step line chart and a histogram. Every mark carries a &lt;title&gt; (its tooltip).
/// </summary>
public static class SvgCharts
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly string[] Palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    /// <summary>A colour of the palette by index.</summary>
    public static string Colour(int i) => Palette[((i % Palette.Length) + Palette.Length) % Palette.Length];

    /// <summary>
    /// A Sankey diagram: nodes in columns by their longest distance from a source, each as tall as the larger of
    /// what flows in and out, flows as bands between them. <paramref name="nodeColour"/> picks a node's colour
    /// (drops red, say); a band takes its target's colour.
    /// </summary>
    public static string Sankey(IReadOnlyList<SankeyLink> links, Func<string, string>? nodeColour = null, int width = 1100, int height = 420)
    {
        links = links.Where(l => l.Value > 0 && l.From != l.To).ToList();
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart sankey\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        if (links.Count == 0)
        {
            sb.Append(Inv, $"<text x=\"{width / 2}\" y=\"{height / 2}\" text-anchor=\"middle\">no packets</text></svg>\n");
            return sb.ToString();
        }
        var names = new List<string>();
        foreach (var l in links)
        {
            if (!names.Contains(l.From)) names.Add(l.From);
            if (!names.Contains(l.To)) names.Add(l.To);
        }
        // Columns: the longest path from a source (cycles cut by the node count).
        var col = names.ToDictionary(n => n, _ => 0);
        for (int iter = 0; iter < names.Count; iter++)
        {
            bool changed = false;
            foreach (var l in links)
                if (col[l.To] < col[l.From] + 1 && col[l.From] + 1 < names.Count) { col[l.To] = col[l.From] + 1; changed = true; }
            if (!changed) break;
        }
        var inflow = names.ToDictionary(n => n, n => links.Where(l => l.To == n).Sum(l => l.Value));
        var outflow = names.ToDictionary(n => n, n => links.Where(l => l.From == n).Sum(l => l.Value));
        var value = names.ToDictionary(n => n, n => Math.Max(inflow[n], outflow[n]));
        int columns = col.Values.Max() + 1;
        const int nodeWidth = 14, gap = 12, top = 10, labelRoom = 190;
        double maxColumn = 0;
        int maxNodes = 1;
        for (int c = 0; c < columns; c++)
        {
            var nodes = names.Where(n => col[n] == c).ToList();
            maxColumn = Math.Max(maxColumn, nodes.Sum(n => (double)value[n]));
            maxNodes = Math.Max(maxNodes, nodes.Count);
        }
        double scale = (height - 2 * top - gap * (maxNodes - 1)) / Math.Max(1, maxColumn);
        double step = columns > 1 ? (width - nodeWidth - labelRoom - 10.0) / (columns - 1) : 0;
        var x = new Dictionary<string, double>();
        var y = new Dictionary<string, double>();
        for (int c = 0; c < columns; c++)
        {
            double cy = top;
            foreach (var n in names.Where(n => col[n] == c))
            {
                x[n] = 10 + c * step;
                y[n] = cy;
                cy += Math.Max(1, value[n] * scale) + gap;
            }
        }
        var outAt = names.ToDictionary(n => n, n => y[n]);
        var inAt = names.ToDictionary(n => n, n => y[n]);
        sb.Append("<g class=\"links\" fill-opacity=\"0.45\">\n");
        foreach (var l in links)
        {
            double h = Math.Max(0.5, l.Value * scale);
            double x0 = x[l.From] + nodeWidth, x1 = x[l.To], y0 = outAt[l.From], y1 = inAt[l.To], xm = (x0 + x1) / 2;
            outAt[l.From] += h;
            inAt[l.To] += h;
            string fill = nodeColour?.Invoke(l.To) ?? Colour(names.IndexOf(l.To));
            sb.Append(Inv, $"<path class=\"link\" d=\"M{x0:F1},{y0:F1} C{xm:F1},{y0:F1} {xm:F1},{y1:F1} {x1:F1},{y1:F1} L{x1:F1},{y1 + h:F1} C{xm:F1},{y1 + h:F1} {xm:F1},{y0 + h:F1} {x0:F1},{y0 + h:F1} Z\" fill=\"{fill}\">");
            sb.Append("<title>").Append(Html.Escape(l.From)).Append(" → ").Append(Html.Escape(l.To)).Append(": ").Append(l.Value.ToString("N0", Inv)).Append("</title></path>\n");
        }
        sb.Append("</g>\n<g class=\"nodes\">\n");
        foreach (var n in names)
        {
            double h = Math.Max(1, value[n] * scale);
            string fill = nodeColour?.Invoke(n) ?? Colour(names.IndexOf(n));
            sb.Append(Inv, $"<g class=\"node\"><rect x=\"{x[n]:F1}\" y=\"{y[n]:F1}\" width=\"{nodeWidth}\" height=\"{h:F1}\" fill=\"{fill}\" stroke=\"#333\" stroke-width=\"0.5\"/>");
            sb.Append("<title>").Append(Html.Escape(n)).Append(": ").Append(value[n].ToString("N0", Inv)).Append("</title>");
            bool last = col[n] == columns - 1;
            double tx = last ? x[n] + nodeWidth + 4 : x[n] + nodeWidth + 4;
            sb.Append(Inv, $"<text x=\"{tx:F1}\" y=\"{y[n] + Math.Min(h / 2, 12) + 4:F1}\">{Html.Escape(n)} {value[n].ToString("N0", Inv)}</text></g>\n");
        }
        sb.Append("</g>\n</svg>\n");
        return sb.ToString();
    }

    /// <summary>Horizontal bars, one per (label, value), with the value written after each bar.</summary>
    public static string Bars(IReadOnlyList<(string Label, double Value)> bars, string unit, int width = 900)
    {
        const int row = 22, labelWidth = 190, top = 6;
        int height = Math.Max(1, bars.Count) * row + 2 * top;
        double max = bars.Count == 0 ? 1 : Math.Max(1e-9, bars.Max(b => b.Value));
        double room = width - labelWidth - 120;
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart bars\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        for (int i = 0; i < bars.Count; i++)
        {
            var (label, v) = bars[i];
            double y = top + i * row;
            double w = Math.Max(v > 0 ? 1 : 0, v / max * room);
            sb.Append(Inv, $"<g class=\"bar\"><title>{Html.Escape(label)}: {v.ToString("F1", Inv)} {Html.Escape(unit)}</title>");
            sb.Append(Inv, $"<text x=\"{labelWidth - 6}\" y=\"{y + 15:F1}\" text-anchor=\"end\">{Html.Escape(label)}</text>");
            sb.Append(Inv, $"<rect x=\"{labelWidth}\" y=\"{y + 3:F1}\" width=\"{w:F1}\" height=\"{row - 6}\" fill=\"{Colour(i)}\"/>");
            sb.Append(Inv, $"<text x=\"{labelWidth + w + 6:F1}\" y=\"{y + 15:F1}\">{v.ToString("F1", Inv)} {Html.Escape(unit)}</text></g>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    /// <summary>Step lines over a shared x axis: one series per (name, points), x in <paramref name="xUnit"/>.</summary>
    public static string Lines(IReadOnlyList<(string Name, IReadOnlyList<(double X, double Y)> Points)> series, string xUnit, string yUnit, int width = 1000, int height = 300)
    {
        const int left = 60, right = 160, top = 10, bottom = 40;
        var all = series.SelectMany(s => s.Points).ToList();
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart lines\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        double x0 = all.Count > 0 ? all.Min(p => p.X) : 0, x1 = all.Count > 0 ? all.Max(p => p.X) : 1;
        double y1 = all.Count > 0 ? Math.Max(1, all.Max(p => p.Y)) : 1;
        if (x1 <= x0) x1 = x0 + 1;
        double pw = width - left - right, ph = height - top - bottom;
        double X(double v) => left + (v - x0) / (x1 - x0) * pw;
        double Y(double v) => top + ph - v / y1 * ph;
        sb.Append(Inv, $"<g class=\"axes\" stroke=\"#888\"><line x1=\"{left}\" y1=\"{top + ph}\" x2=\"{left + pw}\" y2=\"{top + ph}\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{top + ph}\"/></g>\n");
        sb.Append(Inv, $"<text x=\"{left - 6}\" y=\"{top + 10}\" text-anchor=\"end\">{y1.ToString("G4", Inv)}</text><text x=\"{left - 6}\" y=\"{top + ph}\" text-anchor=\"end\">0</text>\n");
        sb.Append(Inv, $"<text x=\"{left}\" y=\"{height - 12}\">{x0.ToString("G6", Inv)}</text><text x=\"{left + pw}\" y=\"{height - 12}\" text-anchor=\"end\">{x1.ToString("G6", Inv)} {Html.Escape(xUnit)}</text>\n");
        sb.Append(Inv, $"<text x=\"{left + pw / 2}\" y=\"{height - 12}\" text-anchor=\"middle\" fill=\"#555\">{Html.Escape(yUnit)} over {Html.Escape(xUnit)}</text>\n");
        for (int i = 0; i < series.Count; i++)
        {
            var (name, pts) = series[i];
            if (pts.Count == 0) continue;
            var d = new StringBuilder();
            d.Append(Inv, $"M{X(pts[0].X):F1},{Y(pts[0].Y):F1}");
            for (int k = 1; k < pts.Count; k++)
                d.Append(Inv, $" H{X(pts[k].X):F1} V{Y(pts[k].Y):F1}");
            sb.Append(Inv, $"<path class=\"series\" d=\"{d}\" fill=\"none\" stroke=\"{Colour(i)}\" stroke-width=\"1.6\"><title>{Html.Escape(name)}: max {pts.Max(p => p.Y).ToString("G6", Inv)}</title></path>\n");
            sb.Append(Inv, $"<rect x=\"{left + pw + 12}\" y=\"{top + i * 18}\" width=\"12\" height=\"12\" fill=\"{Colour(i)}\"/><text x=\"{left + pw + 30}\" y=\"{top + i * 18 + 11}\">{Html.Escape(name)}</text>\n");
        }
        if (all.Count == 0) sb.Append(Inv, $"<text x=\"{left + pw / 2}\" y=\"{top + ph / 2}\" text-anchor=\"middle\">no polls recorded</text>\n");
        sb.Append("</svg>\n");
        return sb.ToString();
    }

    /// <summary>Vertical bars over categories (a histogram).</summary>
    public static string Histogram(IReadOnlyList<(string Label, long Count)> bins, string yUnit, int width = 1000, int height = 260)
    {
        const int left = 60, top = 10, bottom = 36;
        var sb = new StringBuilder();
        sb.Append(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart histogram\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n");
        double pw = width - left - 20, ph = height - top - bottom;
        long max = bins.Count == 0 ? 1 : Math.Max(1, bins.Max(b => b.Count));
        double bw = bins.Count == 0 ? pw : pw / bins.Count;
        sb.Append(Inv, $"<g class=\"axes\" stroke=\"#888\"><line x1=\"{left}\" y1=\"{top + ph}\" x2=\"{left + pw}\" y2=\"{top + ph}\"/></g><text x=\"{left - 6}\" y=\"{top + 10}\" text-anchor=\"end\">{max.ToString("N0", Inv)}</text><text x=\"{left + 4}\" y=\"{top + 12}\" fill=\"#555\">{Html.Escape(yUnit)}</text>\n");
        for (int i = 0; i < bins.Count; i++)
        {
            var (label, count) = bins[i];
            double h = count == 0 ? 0 : Math.Max(1, (double)count / max * ph);
            double x = left + i * bw;
            sb.Append(Inv, $"<g class=\"bin\"><title>{Html.Escape(label)}: {count.ToString("N0", Inv)}</title><rect x=\"{x + 1:F1}\" y=\"{top + ph - h:F1}\" width=\"{Math.Max(1, bw - 2):F1}\" height=\"{h:F1}\" fill=\"{Colour(2)}\"/>");
            if (bins.Count <= 40 || i % (bins.Count / 20 + 1) == 0)
                sb.Append(Inv, $"<text x=\"{x + bw / 2:F1}\" y=\"{top + ph + 14}\" text-anchor=\"middle\">{Html.Escape(label)}</text>");
            sb.Append("</g>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
