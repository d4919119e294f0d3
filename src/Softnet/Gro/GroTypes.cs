namespace Softnet.Gro;

/// <summary>enum gro_result: what napi_gro_receive did with a packet.</summary>
public enum GroResult
{
    /// <summary>Merged into a held skb by chaining it on the frag_list; the skb now belongs to the held one.</summary>
    Merged,
    /// <summary>Merged by moving its data (head or frags) into the held skb; the skb shell was freed.</summary>
    MergedFree,
    /// <summary>Kept on a GRO list as the head of a new flow.</summary>
    Held,
    /// <summary>Passed up unmerged (queued on the gro_normal rx_list).</summary>
    Normal,
    /// <summary>Taken by a protocol handler (-EINPROGRESS); not produced by the handlers modelled here.</summary>
    Consumed,
}

/// <summary>Which GRO engine to run; all share the kernel's per-protocol rules.</summary>
public enum GroMode
{
    /// <summary>The kernel: 8 hash buckets of at most MAX_GRO_SKBS held skbs, oldest evicted.</summary>
    Linux,
    /// <summary>ethtool -K gro off: every packet is GRO_NORMAL.</summary>
    Off,
    /// <summary>Seed 002: a flow hash table (software 5-tuple hash, many buckets) with no MAX_GRO_SKBS eviction.</summary>
    Hash,
    /// <summary>Linux plus seed 002's pure-ACK coalescing: a run of pure ACKs of one flow with advancing ACK numbers
    /// is held as one skb and only the latest is delivered.</summary>
    Ack,
}

/// <summary>skb->ip_summed as the device hands packets to GRO.</summary>
public enum RxChecksum
{
    /// <summary>CHECKSUM_NONE: GRO verifies the TCP/UDP checksum itself (veth with an AF_PACKET sender).</summary>
    None,
    /// <summary>CHECKSUM_UNNECESSARY: the device verified the L4 checksum.</summary>
    Unnecessary,
    /// <summary>CHECKSUM_COMPLETE: the device supplies the sum of the packet from the network header on.</summary>
    Complete,
}

/// <summary>Why a held skb left the GRO lists (or why a merge was refused and the held flow completed).</summary>
public enum GroFlushReason
{
    /// <summary>napi_gro_flush(false) at the end of a poll.</summary>
    PollEnd,
    /// <summary>napi_gro_flush(true): held for more than a jiffy (or the configured flush interval).</summary>
    Aged,
    /// <summary>gro_flush_oldest: the bucket already held MAX_GRO_SKBS.</summary>
    EvictedOldest,
    /// <summary>TCP flags differ (or CWR set on the new segment).</summary>
    TcpFlags,
    /// <summary>The new segment carries PSH/FIN/URG/RST/SYN: merged, then the flow completes at once.</summary>
    PushFlags,
    /// <summary>ACK number changed.</summary>
    AckChanged,
    /// <summary>Sequence number is not the next expected byte (gap, reorder or retransmit).</summary>
    SeqGap,
    /// <summary>IPv4 ID neither incrementing nor fixed as the flow started.</summary>
    IpId,
    /// <summary>TTL/TOS or DF differ (IPv6: traffic class or hop limit).</summary>
    TtlTos,
    /// <summary>TCP options (or header length, window) differ.</summary>
    OptionsDiffer,
    /// <summary>Merging would reach gro_max_size / 64 KiB.</summary>
    SizeLimit,
    /// <summary>The new segment is longer than the flow's MSS (gso_size).</summary>
    MssExceeded,
    /// <summary>The new segment is shorter than the MSS: merged, then the flow completes.</summary>
    ShortSegment,
    /// <summary>The new packet of the same flow could not be merged at all (its own flush bit: IP length
    /// mismatch, bad checksum ...), which completes the held flow.</summary>
    SkbFlush,
    /// <summary>Pure-ACK variant: a duplicate or older ACK ended the coalesced run.</summary>
    AckRun,
}

/// <summary>Why a packet went up unmerged (GRO_NORMAL).</summary>
public enum GroNormalReason
{
    None,
    /// <summary>GRO disabled.</summary>
    Off,
    /// <summary>No GRO handler for the EtherType or IP protocol.</summary>
    NoHandler,
    /// <summary>IPv4 header not version 4 with IHL 5 (options), or bad IPv4 header checksum.</summary>
    IpHeader,
    /// <summary>IP fragment.</summary>
    Fragment,
    /// <summary>IP length disagrees with the received length (e.g. Ethernet padding).</summary>
    LengthMismatch,
    /// <summary>TCP/UDP checksum failed verification.</summary>
    BadChecksum,
    /// <summary>No payload (pure ACK) or a segment ending the flow at once (PSH, FIN, RST, SYN, URG).</summary>
    TcpFinal,
    /// <summary>UDP without a GRO-enabled socket or forwarding GRO.</summary>
    Udp,
    /// <summary>Unreadable headers (truncated packet).</summary>
    Truncated,
    /// <summary>Mismatched IPv6 extension headers or hop-by-hop options.</summary>
    ExtHeader,
}

/// <summary>GRO settings of one NAPI instance (sysctls and device attributes in the kernel).</summary>
public sealed record GroOptions
{
    public GroMode Mode { get; init; } = GroMode.Linux;
    /// <summary>CONFIG_VLAN_8021Q: vlan_gro_receive is registered for 802.1Q/802.1ad. Kernels built without it
    /// (like the CI machines') pass tagged frames up unmerged.</summary>
    public bool VlanGro { get; init; } = true;
    /// <summary>CONFIG_HZ: jiffies per second (ageing unit).</summary>
    public int Hz { get; init; } = 1000;
    /// <summary>Age at which napi_gro_flush(flush_old) completes a held skb; 0 keeps the kernel's rule (held in an
    /// earlier jiffy).</summary>
    public long FlushIntervalNs { get; init; }
    /// <summary>/sys/class/net/DEV/gro_flush_timeout (ns): keep held skbs past the end of a poll, flushing only old ones.</summary>
    public long GroFlushTimeoutNs { get; init; }
    /// <summary>/sys/class/net/DEV/napi_defer_hard_irqs.</summary>
    public int NapiDeferHardIrqs { get; init; }
    /// <summary>net.core.gro_normal_batch: segments queued on rx_list before they are passed up.</summary>
    public int GroNormalBatch { get; init; } = 8;
    /// <summary>dev->gro_max_size (and gro_ipv4_max_size); values above 65536 (BIG TCP) are not modelled and act as 65536.</summary>
    public int GroMaxSize { get; init; } = GroEngine.GroLegacyMaxSize;
    /// <summary>MAX_GRO_SKBS: held skbs per bucket in Linux and Ack modes.</summary>
    public int MaxGroSkbs { get; init; } = 8;
    /// <summary>Buckets of the Hash variant (power of two).</summary>
    public int HashBuckets { get; init; } = 1024;
    /// <summary>Held skbs per bucket in the Hash variant before the oldest is evicted (only collisions reach it).</summary>
    public int HashBucketDepth { get; init; } = 64;
    /// <summary>skb->ip_summed of received packets.</summary>
    public RxChecksum RxChecksum { get; init; } = RxChecksum.None;
    /// <summary>IPv4 fixed-ID flows merge only with DF set (kernels before the late-2025 GRO/GSO IP ID rework,
    /// whose selftest expects "DF=0, Fixed - should not coalesce"). Off by default: the current rule merges
    /// fixed IDs whatever DF says.</summary>
    public bool FixedIdRequiresDf { get; init; }
    /// <summary>Keep per-flow merge statistics (one dictionary entry per flow, none per packet).</summary>
    public bool PerFlowStats { get; init; } = true;

    internal int EffectiveMaxSize => Math.Min(GroMaxSize, GroEngine.GroLegacyMaxSize);
}
