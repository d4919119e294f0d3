using System.Runtime.CompilerServices;

namespace Softnet.Netfilter.Conntrack;

/// <summary>
/// The nf_conn slab (nf_conntrack_cachep): connections a table no longer holds come back here and are handed out
/// again, so a replay that opens connections at a steady rate allocates nothing once warm. A table gives entries
/// back only at a quiescent point (no packet in flight can still point at them, as RCU waits out readers) or when
/// its namespace goes away. Bounded: past <see cref="Capacity"/> objects are left to the GC.
/// </summary>
public static class ConnectionCache
{
    public const int Capacity = 1 << 20;
    private static readonly Lock Gate = new();
    private static Connection[] _free = new Connection[1024];
    private static int _count;

    /// <summary>Objects waiting for reuse.</summary>
    public static int Count => Volatile.Read(ref _count);

    internal static Connection? Rent()
    {
        lock (Gate)
        {
            if (_count == 0) return null;
            var c = _free[--_count];
            _free[_count] = null!;
            return c;
        }
    }

    /// <summary>Returns this large (a namespace going away, a mass expiry) are sorted; the small batches of a steady
    /// replay's quiescent points are not.</summary>
    private const int SortFrom = 1024;

    internal static void Return(List<Connection> list)
    {
        if (list.Count == 0) return;
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list);
        if (span.Length >= SortFrom)
        {
            // A slab hands out free objects in address order: sort what comes back by where it lies (highest first,
            // as the stack pops from the end), so a burst of new connections writes memory in one direction
            // instead of at random (the table gives entries back in hash order). Keys are read once: a GC moving
            // objects meanwhile only makes the order less good.
            var keys = System.Buffers.ArrayPool<long>.Shared.Rent(span.Length);
            for (int i = 0; i < span.Length; i++) keys[i] = -(long)Unsafe.As<Connection, nint>(ref span[i]);
            keys.AsSpan(0, span.Length).Sort(span);
            System.Buffers.ArrayPool<long>.Shared.Return(keys);
        }
        lock (Gate)
        {
            foreach (var c in list)
            {
                if (_count == Capacity) break;
                if (_count == _free.Length) Array.Resize(ref _free, Math.Min(Capacity, _free.Length * 2));
                c.Generation++;
                _free[_count++] = c;
            }
        }
        list.Clear();
    }
}

/// <summary>Hash bucket arrays (conntrack's and NAT's bysource) kept for reuse by exact length, cleared: a table that
/// grows, or a namespace that goes away, hands its old array back (up to 16 per length are kept).</summary>
internal static class BucketArrays<T>
{
    private const int PerLength = 16;
    private static readonly Lock Gate = new();
    private static readonly Dictionary<int, Stack<T[]>> Free = new();

    public static T[] Rent(int length)
    {
        lock (Gate)
            if (Free.TryGetValue(length, out var s) && s.Count > 0) return s.Pop();
        return new T[length];
    }

    public static void Return(T[] array)
    {
        Array.Clear(array);
        lock (Gate)
        {
            if (!Free.TryGetValue(array.Length, out var s)) Free.Add(array.Length, s = new Stack<T[]>());
            if (s.Count < PerLength) s.Push(array);
        }
    }
}
