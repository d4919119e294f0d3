namespace Softnet.Nic;

/// <summary>
/// The RSS indirection table (RETA): the NIC picks the RX queue as <c>table[hash mod size]</c>.
/// Filled like <c>ethtool -X dev equal N</c> (also the kernel default, ethtool_rxfh_indir_default)
/// or <c>ethtool -X dev weight w0 w1 ...</c>.
/// </summary>
public sealed class RssIndirectionTable
{
    /// <summary>The common table size (ixgbe, mlx4 and many others; ice and mlx5 use larger tables).</summary>
    public const int DefaultSize = 128;

    /// <summary>Largest table accepted (mlx5 and ice go up to 2048; ETH_RXFH_INDIR size is a u32 in ethtool).</summary>
    public const int MaxSize = 65536;

    private readonly int[] _entries;
    private readonly uint _mask; // size - 1 when the size is a power of two, else 0

    /// <summary>A table of <paramref name="size"/> entries spread evenly over <paramref name="queues"/> queues.</summary>
    public RssIndirectionTable(int size = DefaultSize, int queues = 1)
    {
        if (size < 1 || size > MaxSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"indirection table size must be 1..{MaxSize}");
        _entries = new int[size];
        _mask = (size & (size - 1)) == 0 ? (uint)size - 1 : 0;
        FillEqual(queues);
    }

    /// <summary>ethtool -X equal N on a table of <paramref name="size"/> entries.</summary>
    public static RssIndirectionTable Equal(int queues, int size = DefaultSize) => new(size, queues);

    /// <summary>ethtool -X weight w0 w1 ... on a table of <paramref name="size"/> entries.</summary>
    public static RssIndirectionTable Weighted(ReadOnlySpan<uint> weights, int size = DefaultSize)
    {
        var t = new RssIndirectionTable(size);
        t.FillWeights(weights);
        return t;
    }

    /// <summary>Number of entries.</summary>
    public int Size => _entries.Length;

    /// <summary>The entries (queue index per slot).</summary>
    public ReadOnlySpan<int> Entries => _entries;

    /// <summary>One entry, settable like <c>ethtool -X</c> on a single slot would be.</summary>
    public int this[int index]
    {
        get => _entries[index];
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _entries[index] = value;
        }
    }

    /// <summary>Highest queue referenced plus one: how many RX queues the table needs.</summary>
    public int QueueCount
    {
        get
        {
            int max = 0;
            foreach (int q in _entries) max = Math.Max(max, q);
            return max + 1;
        }
    }

    /// <summary>entry i = i mod <paramref name="queues"/> (ethtool's "equal", the kernel's default table).</summary>
    public void FillEqual(int queues)
    {
        if (queues < 1)
            throw new ArgumentOutOfRangeException(nameof(queues), queues, "number of queues must be at least 1");
        for (int i = 0; i < _entries.Length; i++)
            _entries[i] = i % queues;
    }

    /// <summary>
    /// Spreads queues over the table in proportion to their weights, as ethtool's fill_indir_table does:
    /// the table is cut into consecutive runs, queue j taking the slots up to size * (w0 + ... + wj) / sum
    /// (integer division). Zero weights give a queue no slots.
    /// </summary>
    /// <exception cref="ArgumentException">all weights zero, or their sum exceeds the table size (ethtool's two checks).</exception>
    public void FillWeights(ReadOnlySpan<uint> weights)
    {
        ulong sum = 0;
        foreach (uint w in weights) sum += w;
        if (sum == 0)
            throw new ArgumentException("at least one weight must be non-zero", nameof(weights));
        if (sum > (ulong)_entries.Length)
            throw new ArgumentException($"total weight {sum} exceeds the size of the indirection table ({_entries.Length})", nameof(weights));

        ulong size = (ulong)_entries.Length;
        ulong partial = 0;
        int queue = -1;
        for (int i = 0; i < _entries.Length; i++)
        {
            // Advance to the queue whose cumulative share boundary lies beyond slot i.
            while ((ulong)i >= size * partial / sum)
                partial += weights[++queue];
            _entries[i] = queue;
        }
    }

    /// <summary>The RX queue for <paramref name="hash"/>: the low bits of the hash index the table.</summary>
    public int QueueFor(uint hash) => _entries[IndexFor(hash)];

    /// <summary>The table slot for <paramref name="hash"/> (hash &amp; (size-1) for power-of-two sizes, else hash mod size).</summary>
    public int IndexFor(uint hash) => _mask != 0 || _entries.Length == 1
        ? (int)(hash & _mask)
        : (int)(hash % (uint)_entries.Length);
}
