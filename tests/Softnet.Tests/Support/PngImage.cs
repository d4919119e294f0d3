using System.Buffers.Binary;
using System.IO.Compression;

namespace Softnet.Tests.Support;

/// <summary>
/// Just enough of a PNG decoder to look at a browser's screenshot: 8-bit greyscale, RGB or RGBA (with or without
/// alpha), not interlaced; the IDAT stream inflated with zlib and each scanline unfiltered (PNG filters 0-4).
/// </summary>
public sealed class PngImage
{
    public int Width { get; }
    public int Height { get; }
    /// <summary>RGB triples, row by row.</summary>
    public byte[] Rgb { get; }

    private PngImage(int w, int h, byte[] rgb)
    {
        Width = w;
        Height = h;
        Rgb = rgb;
    }

    public static PngImage Load(string path) => Decode(File.ReadAllBytes(path));

    public static PngImage Decode(byte[] png)
    {
        ReadOnlySpan<byte> sig = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0d, 0x0a, 0x1a, 0x0a];
        if (png.Length < 8 || !png.AsSpan(0, 8).SequenceEqual(sig)) throw new InvalidDataException("not a PNG");
        int pos = 8, width = 0, height = 0, colourType = 0;
        var idat = new MemoryStream();
        while (pos + 8 <= png.Length)
        {
            int len = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, len);
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    if (data[8] != 8) throw new NotSupportedException($"bit depth {data[8]}");
                    colourType = data[9];
                    if (data[12] != 0) throw new NotSupportedException("interlaced");
                    break;
                case "IDAT": idat.Write(data); break;
                case "IEND": pos = png.Length; continue;
            }
            pos += 12 + len;
        }
        int channels = colourType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new NotSupportedException($"colour type {colourType}") };
        int stride = width * channels;
        var raw = new byte[(stride + 1) * height];
        idat.Position = 0;
        using (var z = new ZLibStream(idat, CompressionMode.Decompress)) z.ReadExactly(raw);
        var pixels = new byte[stride * height];
        for (int y = 0; y < height; y++)
        {
            byte filter = raw[y * (stride + 1)];
            var line = raw.AsSpan(y * (stride + 1) + 1, stride);
            var cur = pixels.AsSpan(y * stride, stride);
            var prev = y > 0 ? pixels.AsSpan((y - 1) * stride, stride) : default;
            for (int i = 0; i < stride; i++)
            {
                int a = i >= channels ? cur[i - channels] : 0;
                int b = y > 0 ? prev[i] : 0;
                int c = y > 0 && i >= channels ? prev[i - channels] : 0;
                int pred = filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"filter {filter}"),
                };
                cur[i] = (byte)(line[i] + pred);
            }
        }
        var rgb = new byte[width * height * 3];
        for (int p = 0; p < width * height; p++)
        {
            int s = p * channels;
            if (channels <= 2) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = pixels[s];
            else
            {
                rgb[3 * p] = pixels[s];
                rgb[3 * p + 1] = pixels[s + 1];
                rgb[3 * p + 2] = pixels[s + 2];
            }
        }
        return new PngImage(width, height, rgb);
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Pixels whose channels differ by more than <paramref name="spread"/>: colour (charts), not the page's
    /// white, grey or black text.</summary>
    public long ColouredPixels(int spread = 60)
    {
        long n = 0;
        for (int p = 0; p < Rgb.Length; p += 3)
        {
            int max = Math.Max(Rgb[p], Math.Max(Rgb[p + 1], Rgb[p + 2])), min = Math.Min(Rgb[p], Math.Min(Rgb[p + 1], Rgb[p + 2]));
            if (max - min > spread) n++;
        }
        return n;
    }

    public int DistinctColours()
    {
        var set = new HashSet<int>();
        for (int p = 0; p < Rgb.Length; p += 3) set.Add(Rgb[p] << 16 | Rgb[p + 1] << 8 | Rgb[p + 2]);
        return set.Count;
    }

    /// <summary>Coloured pixels (see <see cref="ColouredPixels"/>) inside a box of the image.</summary>
    public long ColouredPixelsIn(int x0, int y0, int width, int height, int spread = 60)
    {
        long n = 0;
        for (int y = Math.Max(0, y0); y < Math.Min(Height, y0 + height); y++)
            for (int x = Math.Max(0, x0); x < Math.Min(Width, x0 + width); x++)
            {
                int p = (y * Width + x) * 3;
                int max = Math.Max(Rgb[p], Math.Max(Rgb[p + 1], Rgb[p + 2])), min = Math.Min(Rgb[p], Math.Min(Rgb[p + 1], Rgb[p + 2]));
                if (max - min > spread) n++;
            }
        return n;
    }
}
