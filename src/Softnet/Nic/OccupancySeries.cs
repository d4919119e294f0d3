namespace Softnet.Nic;

/// <summary>
/// A queue's ring occupancy over time, as the descriptors waiting when each NAPI poll starts: a bounded series
/// for the report's chart. It keeps at most <see cref="Capacity"/> points; when full, neighbouring pairs merge
/// (the later time, the larger occupancy, so peaks survive) and from then on only every second poll is offered,
/// then every fourth ... Fixed arrays: recording allocates nothing. Written by the queue's poll thread only.
/// </summary>
public sealed class OccupancySeries
{
    public const int Capacity = 512;
    private readonly long[] _time = new long[Capacity];
    private readonly int[] _value = new int[Capacity];
    private int _count;
    private long _stride = 1, _skipped;
    private int _pendingMax;
    private long _lastTime;

    /// <summary>Polls between kept points (1, then doubling as the series compacts).</summary>
    public long Stride => _stride;
    public int Count => _count;

    /// <summary>One poll: <paramref name="occupancy"/> descriptors waiting, the oldest arrived at <paramref name="timeNs"/>
    /// (or 0: no time known, the last one is kept).</summary>
    public void Record(long timeNs, int occupancy)
    {
        if (timeNs > 0) _lastTime = timeNs;
        if (occupancy > _pendingMax) _pendingMax = occupancy;
        if (++_skipped < _stride) return;
        _skipped = 0;
        if (_count == Capacity) Compact();
        _time[_count] = _lastTime;
        _value[_count] = _pendingMax;
        _count++;
        _pendingMax = 0;
    }

    private void Compact()
    {
        int n = _count / 2;
        for (int i = 0; i < n; i++)
        {
            _time[i] = _time[2 * i + 1];
            _value[i] = Math.Max(_value[2 * i], _value[2 * i + 1]);
        }
        _count = n;
        _stride *= 2;
    }

    /// <summary>The kept points, in time order: (arrival time of the oldest waiting frame in ns, occupancy; the
    /// largest of the polls the point stands for).</summary>
    public (long TimeNs, int Occupancy)[] Points()
    {
        var p = new (long, int)[_count];
        for (int i = 0; i < _count; i++) p[i] = (_time[i], _value[i]);
        return p;
    }
}
