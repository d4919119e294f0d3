using System.Numerics;
using System.Text;

namespace Softnet.Nic;

/// <summary>
/// A set of CPUs in the kernel's cpumask text form, as /proc/irq/N/smp_affinity shows it: hex, least significant
/// CPU in the lowest bit, optionally split into comma-separated 32-bit groups ("3", "00000001", "ff,00000000").
/// Immutable.
/// </summary>
public sealed class CpuMask : IEquatable<CpuMask>
{
    /// <summary>Largest CPU count accepted (the kernel's usual NR_CPUS upper bound).</summary>
    public const int MaxCpus = 8192;

    private readonly ulong[] _words;

    private CpuMask(ulong[] words)
    {
        int n = words.Length;
        while (n > 0 && words[n - 1] == 0) n--;
        _words = n == words.Length ? words : words[..n];
    }

    /// <summary>The mask holding exactly <paramref name="cpus"/>.</summary>
    public static CpuMask Of(params ReadOnlySpan<int> cpus)
    {
        int max = -1;
        foreach (int c in cpus)
        {
            if ((uint)c >= MaxCpus) throw new ArgumentOutOfRangeException(nameof(cpus), c, "CPU id out of range");
            max = Math.Max(max, c);
        }
        var words = new ulong[max / 64 + 1];
        foreach (int c in cpus) words[c >> 6] |= 1UL << (c & 63);
        return new CpuMask(words);
    }

    /// <summary>CPUs 0 .. <paramref name="count"/>-1.</summary>
    public static CpuMask FirstN(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxCpus);
        var words = new ulong[(count + 63) / 64];
        for (int c = 0; c < count; c++) words[c >> 6] |= 1UL << (c & 63);
        return new CpuMask(words);
    }

    public bool IsEmpty => _words.Length == 0;

    public bool Contains(int cpu) => cpu >= 0 && (cpu >> 6) < _words.Length && (_words[cpu >> 6] & (1UL << (cpu & 63))) != 0;

    /// <summary>Lowest CPU in the mask, or -1 when empty.</summary>
    internal int Lowest
    {
        get
        {
            for (int i = 0; i < _words.Length; i++)
                if (_words[i] != 0) return i * 64 + BitOperations.TrailingZeroCount(_words[i]);
            return -1;
        }
    }

    /// <summary>Highest CPU in the mask, or -1 when empty.</summary>
    public int Highest => _words.Length == 0 ? -1 : (_words.Length - 1) * 64 + 63 - BitOperations.LeadingZeroCount(_words[^1]);

    /// <summary>The CPUs in ascending order.</summary>
    public int[] ToArray()
    {
        var list = new List<int>();
        for (int i = 0; i < _words.Length; i++)
            for (ulong w = _words[i]; w != 0; w &= w - 1)
                list.Add(i * 64 + BitOperations.TrailingZeroCount(w));
        return [.. list];
    }

    /// <summary>Parses the smp_affinity form; throws <see cref="FormatException"/> when malformed.</summary>
    internal static CpuMask Parse(string text)
        => TryParse(text, out var mask) ? mask : throw new FormatException($"not a CPU mask: '{text}'");

    /// <summary>
    /// Parses hex masks: "3", "0x3", "00000001", "ff,00000000" (each comma group is 32 bits and at most
    /// 8 digits, like bitmap_parse). Whitespace around the text is ignored.
    /// </summary>
    public static bool TryParse(string? text, out CpuMask mask)
    {
        mask = null!;
        if (text is null) return false;
        var s = text.AsSpan().Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (s.IsEmpty) return false;
        var words = new ulong[MaxCpus / 64];
        bool grouped = s.Contains(',');
        int group = 0;
        int end = s.Length;
        while (true)
        {
            int comma = s[..end].LastIndexOf(',');
            var chunk = s[(comma + 1)..end];
            if (chunk.IsEmpty || (grouped && chunk.Length > 8)) return false;
            for (int j = 0; j < chunk.Length; j++)
            {
                int nibble = HexValue(chunk[chunk.Length - 1 - j]);
                if (nibble < 0) return false;
                if (nibble == 0) continue;
                long bit = group * 32L + j * 4L;
                if (bit >= MaxCpus) return false;
                words[bit >> 6] |= (ulong)nibble << (int)(bit & 63);
            }
            if (comma < 0) break;
            end = comma;
            group++;
        }
        mask = new CpuMask(words);
        return true;
    }

    /// <summary>
    /// The kernel's text for a machine with <paramref name="nrCpus"/> CPUs: comma-separated 32-bit groups, full
    /// groups as 8 digits, the top group only as wide as its bits need (2 CPUs → "3", 32 → "00000001",
    /// 40 → "00,00000001"). Widened if the mask holds a CPU at or above <paramref name="nrCpus"/>.
    /// </summary>
    public string Format(int nrCpus)
    {
        int bits = Math.Max(Math.Max(nrCpus, Highest + 1), 1);
        int groups = (bits + 31) / 32;
        int topBits = bits - (groups - 1) * 32;
        var sb = new StringBuilder(groups * 9);
        for (int g = groups - 1; g >= 0; g--)
        {
            uint v = Group(g);
            if (g == groups - 1) sb.Append(v.ToString("x" + ((topBits + 3) / 4)));
            else sb.Append(',').Append(v.ToString("x8"));
        }
        return sb.ToString();
    }

    /// <summary>The mask as wide as its highest CPU needs.</summary>
    public override string ToString() => Format(Highest + 1);

    public bool Equals(CpuMask? other) => other is not null && _words.AsSpan().SequenceEqual(other._words);

    public override bool Equals(object? obj) => Equals(obj as CpuMask);

    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var w in _words) h.Add(w);
        return h.ToHashCode();
    }

    private uint Group(int g)
    {
        int word = g >> 1;
        if (word >= _words.Length) return 0;
        return (uint)(_words[word] >> ((g & 1) * 32));
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
