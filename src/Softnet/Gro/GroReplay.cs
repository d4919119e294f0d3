using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>
/// The contract the kernel-comparison tests call: frames through build_skb and GRO as a veth receiving from an
/// AF_PACKET sender would put them — no RSS hash (all flows in bucket 0), no VLAN offload, and
/// skb->ip_summed = CHECKSUM_NONE unless <see cref="GroOptions.RxChecksum"/> says otherwise (veth stopped
/// promoting CHECKSUM_NONE to CHECKSUM_UNNECESSARY, so GRO verifies every TCP checksum and a bad one is never
/// merged). Checked by hand on the 6.18 kernel of the build machine (veth pair with GRO on, AF_PACKET sender,
/// gro_flush_timeout set): a bad-checksum segment went up first and unmerged, then the held flow, then the next
/// segment alone; DF=0 fixed-ID segments coalesced (so <see cref="GroOptions.FixedIdRequiresDf"/> stays off).
/// </summary>
public static class GroReplay
{
    /// <summary>Nanoseconds between bursts on the replay clock (several jiffies, so nothing ages inside a burst).</summary>
    public const long BurstSpacingNs = 10_000_000;

    /// <summary>Runs Ethernet frames through build_skb + GRO, burst by burst: each burst is received within one
    /// NAPI poll, then the poll completes (flush). Returns the frames as delivered (as tcpdump on the receiving
    /// device would show them), in delivery order. With
    /// <paramref name="rxBufferSize"/> &gt; 0 every frame is received as the NIC receives it, through an RX ring of
    /// buffers that size (256 bytes of headroom included): a frame longer than one buffer spans several
    /// descriptors and reaches GRO as a head plus page frags (ice's multi-buffer receive and build_skb).</summary>
    /// <param name="created">Called with the engine before the first frame (to register UDP tunnel handlers).</param>
    public static List<byte[]> Run(IReadOnlyList<IReadOnlyList<byte[]>> bursts, GroOptions options, int rxBufferSize, Action<GroEngine>? created = null)
    {
        int frames = 0, maxLen = 64;
        foreach (var b in bursts)
        {
            frames += b.Count;
            foreach (var f in b) maxLen = Math.Max(maxLen, f.Length);
        }
        int bufferSize = rxBufferSize > 0 ? rxBufferSize : Math.Max(PagePool.DefaultHeadroom + maxLen + 64, PagePool.DefaultBufferSize);
        int perFrame = rxBufferSize > 0 ? (maxLen + bufferSize - PagePool.DefaultHeadroom - 1) / (bufferSize - PagePool.DefaultHeadroom) : 1;
        int ringSize = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(64, perFrame + 2));
        var pool = new PagePool(Math.Max(frames, 1) * perFrame + ringSize + 8, bufferSize);
        var skbs = new SkbPool(Math.Max(frames, 1) * perFrame + 8);
        Nic.RxRing? ring = rxBufferSize > 0 ? new Nic.RxRing(pool, ringSize) { MaxFrameSize = maxLen } : null;
        var builder = new Nic.SkbBuilder(skbs);
        var descs = new Nic.RxDescriptor[ringSize];
        var sink = new CollectingSink();
        var engine = new GroEngine(options, sink);
        created?.Invoke(engine);
        long now = BurstSpacingNs;
        foreach (var burst in bursts)
        {
            foreach (var frame in burst)
            {
                Skb skb;
                if (ring is null)
                {
                    if (!pool.TryRent(out int index)) throw new InvalidOperationException("replay page pool exhausted");
                    frame.CopyTo(pool.Slice(index, pool.Headroom, frame.Length));
                    skb = skbs.Build(pool, index, pool.Headroom, frame.Length) ?? throw new InvalidOperationException("replay skb pool exhausted");
                }
                else
                {
                    if (!ring.TryReceive(frame, now, 0, PktHashType.None)) throw new InvalidOperationException("replay RX ring refused a frame");
                    int n = ring.Poll(descs, 1);
                    skb = builder.BuildSkb(pool, descs.AsSpan(0, n), 0, pool.Headroom, descs[0].Length)
                        ?? throw new InvalidOperationException("replay skb pool exhausted");
                }
                skb.ResetMacHeader();
                skb.TimestampNs = now;
                SetChecksumState(skb, options.RxChecksum);
                engine.Receive(skb, now);
            }
            // The burst fits one poll (work below budget): napi_complete_done flushes.
            engine.PollComplete(burst.Count, int.MaxValue, now);
            while (engine.TimerDeadlineNs is long deadline)
            {
                now = Math.Max(now, deadline);
                engine.TimerFired(now);
            }
            now += BurstSpacingNs;
        }
        return sink.Frames;
    }

    /// <summary>Sets skb->ip_summed (and skb->csum for CHECKSUM_COMPLETE: the sum from the network header on) for a
    /// frame whose data still starts at the Ethernet header.</summary>
    public static void SetChecksumState(Skb skb, RxChecksum state)
    {
        switch (state)
        {
            case RxChecksum.Unnecessary:
                skb.IpSummed = CsumState.Unnecessary;
                skb.CsumLevel = 0;
                break;
            case RxChecksum.Complete:
                skb.IpSummed = CsumState.Complete;
                skb.Csum = skb.HeadLen > EthGro.EthHlen ? Checksum.Sum(skb.LinearData.Slice(EthGro.EthHlen)) : 0;
                break;
            default:
                skb.IpSummed = CsumState.None;
                break;
        }
    }

    private sealed class CollectingSink : IGroSink
    {
        public readonly List<byte[]> Frames = new();

        public void Deliver(ReadOnlySpan<Skb> batch)
        {
            foreach (Skb skb in batch)
            {
                Frames.Add(GroTap.ToArray(skb));
                skb.Free();
            }
        }
    }
}
