using Softnet.Packets;

namespace Softnet.Telemetry;

/// <summary>
/// Drop counts indexed by <see cref="DropReason"/>: one plain long per reason, no dictionary on the hot path
/// (the kernel keeps per-reason counts the same way for its drop monitor).
/// </summary>
public sealed class DropCounters
{
    private readonly long[] _counts = new long[DropReasons.Count];

    public void Add(DropReason reason, long n = 1) => _counts[(int)reason] += n;

    public long this[DropReason reason] => _counts[(int)reason];

    public long Total
    {
        get
        {
            long t = 0;
            for (int i = 1; i < _counts.Length; i++) t += _counts[i];
            return t;
        }
    }

    /// <summary>Non-zero reasons with their counts, most frequent first.</summary>
    public IEnumerable<(DropReason Reason, long Count)> NonZero()
        => Enumerable.Range(1, _counts.Length - 1)
            .Where(i => _counts[i] != 0)
            .Select(i => ((DropReason)i, _counts[i]))
            .OrderByDescending(t => t.Item2).ThenBy(t => t.Item1);

    public void AddFrom(DropCounters other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
    }
}
