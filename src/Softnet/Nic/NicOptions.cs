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

    /// <summary>Bytes per page-pool buffer including the 256-byte headroom. A frame longer than one buffer's data
    /// area spans several descriptors (multi-buffer receive).</summary>
    public int BufferSize { get; init; } = 2048;

    /// <summary>ETH_DATA_LEN, the default MTU.</summary>
    public const int DefaultMtu = 1500;
    /// <summary>Largest MTU accepted (a common switch jumbo limit; ice's own max_mtu is 9702).</summary>
    public const int MaxMtu = 9216;
    /// <summary>ETH_HLEN and VLAN_HLEN.</summary>
    public const int EthHlen = 14, VlanHlen = 4;
    /// <summary>Longest TCP aggregate the port takes whole (see <see cref="VirtualNic.Offer"/>): an IPv4 packet of
    /// 64 KB (its total length is 16 bits) behind an Ethernet header and two VLAN tags.</summary>
    public const int MaxAggregateFrame = 65535 + EthHlen + 2 * VlanHlen;

    /// <summary>The device MTU (ip link set DEV mtu N): the longest frame received is the MTU plus the Ethernet
    /// header plus 4 bytes for each VLAN tag the frame carries (up to two, ICE_ETH_PKT_HDR_PAD's allowance).
    /// Captures hold no FCS, so none is counted.</summary>
    public int Mtu { get; init; } = DefaultMtu;

    /// <summary>Take a TCP frame longer than the MTU allows whole, as a hardware-GRO aggregate (<see cref="TcpAggregate"/>):
    /// what captures taken on GRO/TSO hosts hold. Off, such frames are oversize drops like any other.</summary>
    public bool TcpAggregates { get; init; } = true;

    /// <summary>Receive checksum offload (ethtool -K DEV rx on|off, NETIF_F_RXCSUM; on by default, as ice has it): the port
    /// checks each frame's IP and TCP/UDP checksums and the driver marks the clean ones CHECKSUM_UNNECESSARY, so GRO and
    /// the stack sum nothing; see <see cref="RxChecksumOffload"/>. Off: every frame arrives CHECKSUM_NONE, as from a veth.</summary>
    public bool RxChecksum { get; init; } = true;

    /// <summary>The longest frame of all (two VLAN tags): the ring's rxmax.</summary>
    public int MaxFrameSize => Mtu + EthHlen + 2 * VlanHlen;

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

    /// <summary>A C# XDP program attached to every queue, or null.</summary>
    public XdpProgram? Xdp { get; init; }

    /// <summary>An attached program with a per-queue instance (an eBPF program: <see cref="XdpBpfAttachment"/>); wins
    /// over <see cref="Xdp"/>.</summary>
    public XdpAttachment? XdpAttachment { get; init; }

    /// <summary>The port's transmit side for XDP_TX (and redirects without a device of their own), e.g. a tx capture;
    /// null sends them nowhere (counted all the same).</summary>
    public IXdpTransmit? XdpTransmit { get; init; }

    /// <summary>What each queue runs: the attachment, or the C# program wrapped as one.</summary>
    public XdpAttachment? EffectiveXdp => XdpAttachment ?? (Xdp is { } p ? new DelegateXdpAttachment(p) : null);

    public int EffectivePoolBuffers => PoolBuffers > 0 ? PoolBuffers : RingSize * 2;

    public void Validate()
    {
        if (Queues is < 1 or > 256) throw new ArgumentException($"queues must be 1..256, got {Queues}");
        if (RingSize < 64 || RingSize > 32768 || !System.Numerics.BitOperations.IsPow2(RingSize))
            throw new ArgumentException($"ring size must be a power of two in 64..32768 (like ethtool -G), got {RingSize}");
        if (Weight is < 1 or > 1024) throw new ArgumentException($"weight must be 1..1024, got {Weight}");
        if (BufferSize < 512 + 256) throw new ArgumentException($"buffer size must be at least 768, got {BufferSize}");
        if (Mtu is < 68 or > MaxMtu) throw new ArgumentException($"mtu must be 68..{MaxMtu}, got {Mtu}");
        // ice keeps a frame within its chained-buffer limit; here the limit is the skb's frag slots, so a plain
        // frame always becomes head + frags (construct mode can use a frag for the first buffer's tail too).
        int data = BufferSize - 256;
        if ((MaxFrameSize + data - 1) / data > Packets.Skb.MaxFrags)
            throw new ArgumentException($"mtu {Mtu} needs more than {Packets.Skb.MaxFrags} buffers of {data} bytes: raise the buffer size");
        if (EffectivePoolBuffers < RingSize) throw new ArgumentException($"the page pool ({EffectivePoolBuffers}) must hold at least a ring ({RingSize}) of buffers");
    }
}
