using Softnet.Xdp;

namespace Softnet.Nic;

/// <summary>How the driver turns a completed RX buffer into an skb.</summary>
public enum SkbBuildMode
{
    /// <summary>ice_build_skb: wrap the ring buffer, zero copy.</summary>
    Build,
    /// <summary>ice_construct_skb: copy the headers into a new head, the rest as a frag.</summary>
    Construct,
}

/// <summary>Configuration of the virtual NIC (what ethtool -L/-G/-X/-C and ip link xdp set on a real one).</summary>
public sealed record NicOptions
{
    /// <summary>RX queues (ethtool -L combined N).</summary>
    public int Queues { get; init; } = 1;

    /// <summary>Descriptors per RX ring, a power of two (ethtool -G rx N).</summary>
    public int RingSize { get; init; } = RxRing.DefaultSize;

    /// <summary>Bytes per page-pool buffer including the 256-byte headroom; bounds the frame size.</summary>
    public int BufferSize { get; init; } = 2048;

    /// <summary>Buffers per queue's page pool; 0 means twice the ring size (ring plus skbs in flight).</summary>
    public int PoolBuffers { get; init; }

    public SkbBuildMode SkbMode { get; init; } = SkbBuildMode.Build;

    /// <summary>NAPI weight per queue.</summary>
    public int Weight { get; init; } = 64;

    /// <summary>Interrupt moderation (ethtool -C rx-usecs / rx-frames). The default is the ice driver's
    /// (ICE_DFLT_RX_ITR: 50 µs), so a poll sees the frames of a moderation interval together, as on real hardware.</summary>
    public InterruptModeration Moderation { get; init; } = new(50, 0);

    /// <summary>RSS key; null for the standard 40-byte key.</summary>
    public byte[]? RssKey { get; init; }

    /// <summary>Indirection table weights (ethtool -X weight); null spreads evenly over the queues.</summary>
    public uint[]? RssWeights { get; init; }

    /// <summary>Per-queue IRQ affinity (smp_affinity); null spreads queue i to CPU list[i % n].</summary>
    public IReadOnlyList<CpuMask>? Affinity { get; init; }

    /// <summary>An XDP program attached to every queue, or null.</summary>
    public XdpProgram? Xdp { get; init; }

    public int EffectivePoolBuffers => PoolBuffers > 0 ? PoolBuffers : RingSize * 2;

    public void Validate()
    {
        if (Queues is < 1 or > 256) throw new ArgumentException($"queues must be 1..256, got {Queues}");
        if (RingSize < 64 || RingSize > 32768 || !System.Numerics.BitOperations.IsPow2(RingSize))
            throw new ArgumentException($"ring size must be a power of two in 64..32768 (like ethtool -G), got {RingSize}");
        if (Weight is < 1 or > 1024) throw new ArgumentException($"weight must be 1..1024, got {Weight}");
        if (BufferSize < 512 + 256) throw new ArgumentException($"buffer size must be at least 768, got {BufferSize}");
        if (EffectivePoolBuffers < RingSize) throw new ArgumentException($"the page pool ({EffectivePoolBuffers}) must hold at least a ring ({RingSize}) of buffers");
    }
}
