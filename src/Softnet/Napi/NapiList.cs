namespace Softnet.Napi;

/// <summary>
/// A FIFO of NAPI instances (the kernel's poll_list / repoll list_heads) on a growable circular array,
/// so moving instances between lists never allocates once capacity covers the queues.
/// </summary>
internal sealed class NapiList
{
    private NapiStruct?[] _items;
    private int _head;
    private int _count;

    public NapiList(int capacity = 8) => _items = new NapiStruct?[Math.Max(4, capacity)];

    public int Count => _count;

    public void AddTail(NapiStruct n)
    {
        if (_count == _items.Length) Grow();
        _items[(_head + _count) % _items.Length] = n;
        _count++;
    }

    public NapiStruct PopFront()
    {
        if (_count == 0) throw new InvalidOperationException("empty NAPI list");
        var n = _items[_head]!;
        _items[_head] = null;
        _head = (_head + 1) % _items.Length;
        _count--;
        return n;
    }

    /// <summary>Moves every entry of <paramref name="other"/> to our tail, leaving it empty (list_splice_tail_init).</summary>
    public void SpliceTailFrom(NapiList other)
    {
        while (other._count > 0) AddTail(other.PopFront());
    }

    private void Grow()
    {
        var bigger = new NapiStruct?[_items.Length * 2];
        for (int i = 0; i < _count; i++) bigger[i] = _items[(_head + i) % _items.Length];
        _items = bigger;
        _head = 0;
    }
}
