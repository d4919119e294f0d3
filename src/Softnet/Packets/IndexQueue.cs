using System.Runtime.CompilerServices;

namespace Softnet.Packets;

/// <summary>
/// Bounded lock-free queue of int indices (Vyukov's sequence-numbered ring). Any thread may enqueue or
/// dequeue; in the common case one owner dequeues and a few threads enqueue, so each operation is one
/// uncontended compare-exchange. Used as the free list of <see cref="PagePool"/> and <see cref="SkbPool"/>:
/// the pool belongs to one RX queue, but buffers and skbs are freed wherever the packet ends up
/// (another CPU after RPS, a socket reader).
/// </summary>
internal sealed class IndexQueue
{
    private struct Cell
    {
        public long Sequence;
        public int Value;
    }

    private readonly Cell[] _cells;
    private readonly int _mask;
    // Head and tail on their own cache lines: the owner moves head, remote freers move tail.
    private PaddedLong _head;
    private PaddedLong _tail;

    public IndexQueue(int minCapacity)
    {
        if (minCapacity < 1) throw new ArgumentOutOfRangeException(nameof(minCapacity));
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)minCapacity);
        _cells = new Cell[size];
        _mask = size - 1;
        for (int i = 0; i < size; i++) _cells[i].Sequence = i;
    }

    public int Size => _cells.Length;

    /// <summary>Total successful dequeues since creation.</summary>
    public long Dequeued => Volatile.Read(ref _head.Value);

    /// <summary>Total successful enqueues since creation.</summary>
    public long Enqueued => Volatile.Read(ref _tail.Value);

    /// <summary>Items currently queued (a snapshot; exact when no operation is in flight).</summary>
    public int Count => (int)(Enqueued - Dequeued);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryEnqueue(int value)
    {
        long pos = Volatile.Read(ref _tail.Value);
        while (true)
        {
            ref Cell cell = ref _cells[(int)pos & _mask];
            long seq = Volatile.Read(ref cell.Sequence);
            long diff = seq - pos;
            if (diff == 0)
            {
                long seen = Interlocked.CompareExchange(ref _tail.Value, pos + 1, pos);
                if (seen == pos)
                {
                    cell.Value = value;
                    Volatile.Write(ref cell.Sequence, pos + 1);
                    return true;
                }
                pos = seen;
            }
            else if (diff < 0)
            {
                if (!ReleasePending(pos)) return false; // full
                Thread.SpinWait(1);
                pos = Volatile.Read(ref _tail.Value);
            }
            else
            {
                pos = Volatile.Read(ref _tail.Value);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryDequeue(out int value)
    {
        long pos = Volatile.Read(ref _head.Value);
        while (true)
        {
            ref Cell cell = ref _cells[(int)pos & _mask];
            long seq = Volatile.Read(ref cell.Sequence);
            long diff = seq - (pos + 1);
            if (diff == 0)
            {
                long seen = Interlocked.CompareExchange(ref _head.Value, pos + 1, pos);
                if (seen == pos)
                {
                    value = cell.Value;
                    Volatile.Write(ref cell.Sequence, pos + _mask + 1);
                    return true;
                }
                pos = seen;
            }
            else if (diff < 0)
            {
                if (!PublishPending(pos))
                {
                    value = -1;
                    return false; // empty
                }
                Thread.SpinWait(1);
                pos = Volatile.Read(ref _head.Value);
            }
            else
            {
                pos = Volatile.Read(ref _head.Value);
            }
        }
    }

    // A cell at the tail that still holds the previous lap's value is either a full queue or a consumer that has
    // claimed it (moved the head) but not yet released it; the second is a wait, not "full". Likewise a cell at
    // the head not yet published is an empty queue or a producer between claiming and writing it.
    private bool ReleasePending(long tailPos) => tailPos - Volatile.Read(ref _head.Value) < _cells.Length;

    private bool PublishPending(long headPos) => Volatile.Read(ref _tail.Value) > headPos;

    /// <summary>Enqueues a prefix of <paramref name="values"/> with one compare-exchange: as many as there are
    /// free cells in a row at the tail (a cell still being released ends the batch; the caller puts the rest in after
    /// it). Returns how many went in (0 only when full).</summary>
    public int TryEnqueueBatch(ReadOnlySpan<int> values)
    {
        long pos = Volatile.Read(ref _tail.Value);
        while (true)
        {
            int n = 0;
            // A cell is free for position pos+i when its sequence says the consumer of the previous lap left it.
            while (n < values.Length && Volatile.Read(ref _cells[(int)(pos + n) & _mask].Sequence) == pos + n) n++;
            if (n == 0)
            {
                long seq = Volatile.Read(ref _cells[(int)pos & _mask].Sequence);
                if (seq < pos)
                {
                    if (!ReleasePending(pos)) return 0; // full
                    Thread.SpinWait(1);
                }
                pos = Volatile.Read(ref _tail.Value); // another producer moved on, or the cell is being released
                continue;
            }
            long seen = Interlocked.CompareExchange(ref _tail.Value, pos + n, pos);
            if (seen != pos)
            {
                pos = seen;
                continue;
            }
            for (int i = 0; i < n; i++)
            {
                ref Cell cell = ref _cells[(int)(pos + i) & _mask];
                cell.Value = values[i];
                Volatile.Write(ref cell.Sequence, pos + i + 1);
            }
            return n;
        }
    }

    /// <summary>Dequeues up to <c>destination.Length</c> values with one compare-exchange: the published cells in a
    /// row at the head. Returns how many (0 only when empty).</summary>
    public int TryDequeueBatch(Span<int> destination)
    {
        long pos = Volatile.Read(ref _head.Value);
        while (true)
        {
            int n = 0;
            while (n < destination.Length && Volatile.Read(ref _cells[(int)(pos + n) & _mask].Sequence) == pos + n + 1) n++;
            if (n == 0)
            {
                long seq = Volatile.Read(ref _cells[(int)pos & _mask].Sequence);
                if (seq <= pos)
                {
                    if (!PublishPending(pos)) return 0; // empty
                    Thread.SpinWait(1);
                }
                pos = Volatile.Read(ref _head.Value); // another consumer moved on, or the cell is being published
                continue;
            }
            long seen = Interlocked.CompareExchange(ref _head.Value, pos + n, pos);
            if (seen != pos)
            {
                pos = seen;
                continue;
            }
            for (int i = 0; i < n; i++)
            {
                ref Cell cell = ref _cells[(int)(pos + i) & _mask];
                destination[i] = cell.Value;
                Volatile.Write(ref cell.Sequence, pos + i + _mask + 1);
            }
            return n;
        }
    }
}

/// <summary>A long alone on a 128-byte span so two of them never share a cache line (or its pair).</summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
internal struct PaddedLong
{
    [System.Runtime.InteropServices.FieldOffset(64)] public long Value;
}
