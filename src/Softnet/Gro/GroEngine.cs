using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Softnet.Packets;

namespace Softnet.Gro;

/// <summary>Receives the skbs GRO passes up (netif_receive_skb_list_internal), a batch at a time. The sink owns
/// each skb it gets and must free it.</summary>
public interface IGroSink
{
    void Deliver(ReadOnlySpan<Skb> batch);
}

/// <summary>
/// The GRO state of one NAPI instance (struct gro_node): hash buckets of held skbs, youngest first, and the
/// gro_normal rx_list. <see cref="Receive"/> is napi_gro_receive/dev_gro_receive, <see cref="Flush"/> is
/// napi_gro_flush and <see cref="PollComplete"/> is the GRO part of napi_complete_done / __napi_poll.
/// Completed skbs go to the <see cref="IGroSink"/> in exactly the order the kernel passes them up.
/// Single-threaded, like the NAPI context it belongs to.
/// </summary>
public sealed class GroEngine
{
    /// <summary>GRO_HASH_BUCKETS.</summary>
    public const int GroHashBuckets = 8;
    /// <summary>GRO_LEGACY_MAX_SIZE.</summary>
    public const int GroLegacyMaxSize = 65536;

    private readonly GroBucket[] _buckets;
    private readonly ulong[] _bitmask;
    private readonly int _maxPerBucket;
    private readonly long _jiffyNs;
    private readonly Skb[] _rxList;
    private int _rxListLen, _rxCount;
    private int _deferCount;
    private IGroSink? _sink;
    // The thread running the current poll, looked up on first need and forgotten when the poll ends (or rx_list
    // is passed up): the per-packet frees of merged shells then skip the thread-static lookup.
    private Thread? _pollThread;

    // Per-packet scratch set by the protocol handlers (one packet in flight at a time).
    internal GroFlushReason PendingReason;
    internal GroNormalReason NormalReason;
    internal Skb? AckReplace;
    internal long Now;

    public GroEngine(GroOptions options, IGroSink? sink = null)
    {
        Options = options;
        int buckets = options.Mode == GroMode.Hash ? options.HashBuckets : GroHashBuckets;
        if (buckets < 1 || !BitOperations.IsPow2(buckets)) throw new ArgumentException("bucket count must be a power of two", nameof(options));
        if (options.Hz < 1) throw new ArgumentException("Hz must be positive", nameof(options));
        _buckets = new GroBucket[buckets];
        for (int i = 0; i < buckets; i++) _buckets[i] = new GroBucket();
        _bitmask = new ulong[(buckets + 63) / 64];
        _maxPerBucket = options.Mode == GroMode.Hash ? options.HashBucketDepth : options.MaxGroSkbs;
        _jiffyNs = 1_000_000_000L / options.Hz;
        _rxList = new Skb[Math.Max(options.GroNormalBatch, 1) + 1];
        _sink = sink;
        _mode = options.Mode;
        MaxSize = options.EffectiveMaxSize;
        FixedIdRequiresDf = options.FixedIdRequiresDf;
        _normalBatch = options.GroNormalBatch;
        Stats = new GroStats(options);
    }

    public GroOptions Options { get; }
    public GroStats Stats { get; }
    public GroMode Mode => _mode;

    // Options read per packet, copied out of the (init-only) options object: one load instead of two.
    private readonly GroMode _mode;
    internal readonly int MaxSize;
    internal readonly bool FixedIdRequiresDf;
    private readonly int _normalBatch;

    /// <summary>Where completed skbs go; set before the first packet.</summary>
    public IGroSink? Sink { get => _sink; set => _sink = value; }

    // ------------------------------------------------------------------ UDP tunnel sockets

    private struct TunnelEntry
    {
        public ushort Port;
        public int Ifindex;
        public int Refs;
        public UdpTunnelGro Handler;
    }

    private TunnelEntry[] _tunnels = [];
    private int _tunnelCount;

    /// <summary>Whether any UDP tunnel handler is registered (udp_encap_needed_key: without one, UDP GRO does no
    /// socket lookup at all).</summary>
    public bool HasUdpTunnels => _tunnelCount != 0;

    /// <summary>
    /// A UDP tunnel socket's GRO callbacks (setup_udp_tunnel_sock with udp_tunnel_sock_cfg's gro_receive): datagrams
    /// to <paramref name="port"/> go to <paramref name="handler"/> instead of being flushed. The kernel finds the
    /// socket in the namespace of the receiving device; <paramref name="ifindex"/> (the interface the packets arrive
    /// on, -1 for any) stands for that when one NIC feeds several namespaces. Sockets sharing a port (devices sharing
    /// one vxlan_sock) register it again: it stays until each has removed it.
    /// </summary>
    public void AddUdpTunnel(ushort port, UdpTunnelGro handler, int ifindex = -1)
    {
        ArgumentNullException.ThrowIfNull(handler);
        for (int i = 0; i < _tunnelCount; i++)
        {
            ref TunnelEntry t = ref _tunnels[i];
            if (t.Port != port || t.Ifindex != ifindex) continue;
            if (!ReferenceEquals(t.Handler, handler))
                throw new InvalidOperationException($"UDP port {port} already has the {t.Handler.Name} GRO handler");
            t.Refs++;
            return;
        }
        if (_tunnelCount == _tunnels.Length) Array.Resize(ref _tunnels, Math.Max(4, _tunnels.Length * 2));
        _tunnels[_tunnelCount++] = new TunnelEntry { Port = port, Ifindex = ifindex, Refs = 1, Handler = handler };
    }

    /// <summary>The socket closed (udp_tunnel_sock_release): one registration of the port goes. False if there was none.</summary>
    public bool RemoveUdpTunnel(ushort port, int ifindex = -1)
    {
        for (int i = 0; i < _tunnelCount; i++)
        {
            ref TunnelEntry t = ref _tunnels[i];
            if (t.Port != port || t.Ifindex != ifindex) continue;
            if (--t.Refs == 0)
            {
                _tunnels[i] = _tunnels[--_tunnelCount];
                _tunnels[_tunnelCount] = default;
            }
            return true;
        }
        return false;
    }

    /// <summary>The registered tunnel ports: (port, interface or -1, handler name).</summary>
    public IReadOnlyList<(ushort Port, int Ifindex, string Handler)> UdpTunnels
        => _tunnels.Take(_tunnelCount).Select(t => (t.Port, t.Ifindex, t.Handler.Name)).ToList();

    /// <summary>udp4_gro_lookup_skb for a tunnel socket: the handler for a destination port on this interface.</summary>
    internal UdpTunnelGro? LookupUdpTunnel(ushort port, int ifindex)
    {
        for (int i = 0; i < _tunnelCount; i++)
        {
            ref TunnelEntry t = ref _tunnels[i];
            if (t.Port == port && (t.Ifindex < 0 || t.Ifindex == ifindex)) return t.Handler;
        }
        return null;
    }

    /// <summary>Skbs currently held on the lists.</summary>
    public int HeldCount { get; private set; }

    /// <summary>When the gro_flush_timeout hrtimer armed by the last <see cref="PollComplete"/> fires (ns), or null.</summary>
    public long? TimerDeadlineNs { get; private set; }

    /// <summary>jiffies on the path's clock.</summary>
    public long Jiffies(long nowNs) => nowNs / _jiffyNs;

    // ------------------------------------------------------------------ receive

    /// <summary>
    /// napi_gro_receive. The skb's data starts at the MAC header (as the driver built it; eth_type_trans is done
    /// here) or, if the caller already ran eth_type_trans, at the network header with <see cref="Skb.Protocol"/>
    /// set. The engine owns the skb afterwards whatever the result.
    /// </summary>
    /// <summary>The trace id of the held skb the last merge went into (0: an untraced packet), for the tracer's
    /// "merged into #N".</summary>
    public int LastMergeTraceId { get; internal set; }

    public GroResult Receive(Skb skb, long nowNs)
    {
        Now = nowNs;
        if (skb.Data == skb.MacHeader && !EthGro.TypeTrans(skb))
        {
            // Shorter than an Ethernet header: nothing to merge, pass it up as it is.
            skb.Gro.Reset();
            return FinishNormal(skb, GroNormalReason.Truncated);
        }
        Stats.Received++;
        skb.Gro.Reset();
        if (_mode == GroMode.Off) return FinishNormal(skb, GroNormalReason.Off);

        uint key = _mode == GroMode.Hash ? FlowHash.Compute(skb) : skb.Hash;
        skb.Gro.FlowKey = key;
        int bucketIndex = (int)(key & (uint)(_buckets.Length - 1));
        GroBucket bucket = _buckets[bucketIndex];
        // An empty bucket has nothing to mark (every packet of a flow GRO never holds, such as plain UDP).
        if (bucket.Head != null) EthGro.ListPrepare(bucket, skb, key);

        ushort type = skb.Protocol;
        if (type != EtherTypes.Ipv4 && type != EtherTypes.Ipv6 && type != EtherTypes.Vlan && type != EtherTypes.QinQ)
            return FinishNormal(skb, GroNormalReason.NoHandler);

        skb.SetNetworkHeader(0);
        skb.Gro.Count = 1;
        skb.Gro.Flush = (ushort)(skb.FragList != null ? 1 : 0);
        if (skb.GsoSize != 0)
        {
            // skb_is_gso (a hardware-GRO aggregate from the driver): it counts as its segments, and only a TCP
            // one that is not SKB_GSO_DODGY may merge.
            skb.Gro.Count = (ushort)skb.GsoSegs;
            if ((skb.GsoType & (GsoType.TcpV4 | GsoType.TcpV6)) == 0 || (skb.GsoType & GsoType.Dodgy) != 0) skb.Gro.Flush = 1;
        }
        switch (skb.IpSummed)
        {
            case CsumState.Complete:
                skb.Gro.Csum = skb.Csum;
                skb.Gro.CsumValid = true;
                break;
            case CsumState.Unnecessary:
                skb.Gro.CsumCnt = (byte)(skb.CsumLevel + 1);
                break;
        }
        PendingReason = GroFlushReason.PollEnd;
        NormalReason = GroNormalReason.None;
        AckReplace = null;

        Skb? pp = DispatchL3(type, bucket, skb);

        bool sameFlow = skb.Gro.SameFlow;
        GroResult ret = skb.Gro.Free != GroFree.None ? GroResult.MergedFree : GroResult.Merged;
        if (pp != null)
        {
            bucket.Remove(pp);
            HeldCount--;
            Complete(pp, PendingReason);
        }
        if (sameFlow)
        {
            Stats.Merged++;
            if (ret == GroResult.MergedFree) skb.Free(_pollThread ??= Thread.CurrentThread); // napi_skb_finish: the shell (and an unstolen head) goes back
            if (pp != null) UpdateMask(bucketIndex, bucket); // a plain merge leaves the bucket's count as it was
            return ret;
        }
        if (AckReplace is { } old)
        {
            // Pure-ACK variant: the new ACK supersedes the held one, which is dropped unseen.
            bucket.Remove(old);
            HeldCount--;
            skb.Gro.Count = (ushort)Math.Min(old.Gro.Count + 1, ushort.MaxValue);
            skb.Gro.Age = old.Gro.Age;
            Stats.AcksCoalesced++;
            old.Free();
        }
        else if (skb.Gro.Flush != 0)
        {
            // Only a completed pp changed the bucket (every unmerged UDP datagram and flushed packet comes here).
            if (pp != null) UpdateMask(bucketIndex, bucket);
            return FinishNormal(skb, NormalReason == GroNormalReason.None ? GroNormalReason.TcpFinal : NormalReason);
        }

        if (bucket.Count >= _maxPerBucket)
        {
            // gro_flush_oldest: the tail is the oldest.
            Skb oldest = bucket.Tail!;
            bucket.Remove(oldest);
            HeldCount--;
            Complete(oldest, GroFlushReason.EvictedOldest);
        }
        if (AckReplace == null) skb.Gro.Age = nowNs;
        skb.Gro.Last = skb;
        if (skb.GsoSize == 0) skb.GsoSize = skb.Len - skb.Gro.DataOffset; // a GSO skb keeps its own gso_size
        bucket.AddHead(skb);
        HeldCount++;
        Stats.Held++;
        UpdateMask(bucketIndex, bucket);
        return GroResult.Held;
    }

    /// <summary>Calls the GRO receive handler for an EtherType (the offload_base walk / gro_find_receive_by_type).</summary>
    internal Skb? DispatchL3(ushort type, GroBucket bucket, Skb skb)
    {
        switch (type)
        {
            case EtherTypes.Ipv4: return Ipv4Gro.Receive(this, bucket, skb);
            case EtherTypes.Ipv6: return Ipv6Gro.Receive(this, bucket, skb);
            case EtherTypes.Vlan or EtherTypes.QinQ when Options.VlanGro: return VlanGro.Receive(this, bucket, skb);
            default:
                skb.Gro.Flush |= 1;
                NoteNormal(GroNormalReason.NoHandler);
                return null;
        }
    }

    /// <summary>Calls the gro_complete handler for an EtherType at <paramref name="nhoff"/> from skb->data.</summary>
    internal static bool DispatchComplete(ushort type, Skb skb, int nhoff) => type switch
    {
        EtherTypes.Ipv4 => Ipv4Gro.Complete(skb, nhoff),
        EtherTypes.Ipv6 => Ipv6Gro.Complete(skb, nhoff),
        EtherTypes.Vlan or EtherTypes.QinQ => VlanGro.Complete(skb, nhoff),
        _ => false,
    };

    internal void NoteNormal(GroNormalReason reason)
    {
        if (NormalReason == GroNormalReason.None) NormalReason = reason;
    }

    internal void NoteFlush(GroFlushReason reason) => PendingReason = reason;

    private GroResult FinishNormal(Skb skb, GroNormalReason reason)
    {
        if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.GroNormal(skb.TraceId, reason);
        Stats.CountNormal(reason);
        NormalOne(skb, 1);
        return GroResult.Normal;
    }

    // ------------------------------------------------------------------ completion and delivery

    /// <summary>napi_gro_complete: fix up the headers of a merged skb and queue it on rx_list.</summary>
    private void Complete(Skb skb, GroFlushReason reason)
    {
        skb.Next = skb.Prev = null;
        int count = skb.Gro.Count;
        Stats.CountFlush(reason, skb);
        if (skb.TraceId != 0) Telemetry.PacketTracer.Current?.GroFlushed(skb.TraceId, reason, count);
        if (count == 1 || skb.Gro.PureAck)
        {
            skb.GsoSize = 0;
        }
        else if (!DispatchComplete(skb.Protocol, skb, 0))
        {
            // The kernel frees an skb whose gro_complete failed; unreachable for the handlers here.
            Stats.CompleteFailed++;
            skb.Free();
            return;
        }
        NormalOne(skb, skb.Gro.PureAck ? 1 : count);
    }

    /// <summary>gro_normal_one: queue on rx_list; pass the list up once it counts gro_normal_batch segments.</summary>
    private void NormalOne(Skb skb, int segs)
    {
        Stats.CountDelivered(skb, segs);
        _rxList[_rxListLen++] = skb;
        _rxCount += segs;
        if (_rxCount >= _normalBatch || _rxListLen == _rxList.Length) NormalList();
    }

    /// <summary>gro_normal_list: pass the queued skbs up.</summary>
    public void NormalList()
    {
        _pollThread = null;
        if (_rxListLen == 0) return;
        int n = _rxListLen;
        _rxListLen = 0;
        _rxCount = 0;
        Stats.Batches++;
        if (_sink is null)
        {
            for (int i = 0; i < n; i++) _rxList[i].Free();
        }
        else
        {
            _sink.Deliver(_rxList.AsSpan(0, n));
        }
        Array.Clear(_rxList, 0, n);
    }

    // ------------------------------------------------------------------ flushing

    /// <summary>
    /// napi_gro_flush: complete held skbs bucket by bucket, oldest first. With <paramref name="flushOld"/> only
    /// those held before the current jiffy (or longer than <see cref="GroOptions.FlushIntervalNs"/>) go; a bucket
    /// stops at its first young skb. Completed skbs are queued on rx_list (call <see cref="NormalList"/> or
    /// <see cref="PollComplete"/> to pass them up).
    /// </summary>
    public void Flush(bool flushOld, long nowNs)
    {
        Now = nowNs;
        _pollThread = null;
        for (int w = 0; w < _bitmask.Length; w++)
        {
            ulong bits = _bitmask[w];
            while (bits != 0)
            {
                int i = w * 64 + BitOperations.TrailingZeroCount(bits);
                bits &= bits - 1;
                FlushChain(i, flushOld, nowNs);
            }
        }
    }

    private void FlushChain(int index, bool flushOld, long nowNs)
    {
        GroBucket bucket = _buckets[index];
        Skb? skb = bucket.Tail;
        while (skb != null)
        {
            Skb? prev = skb.Prev;
            if (flushOld && IsYoung(skb.Gro.Age, nowNs)) break;
            bucket.Remove(skb);
            HeldCount--;
            Complete(skb, flushOld ? GroFlushReason.Aged : GroFlushReason.PollEnd);
            skb = prev;
        }
        UpdateMask(index, bucket);
    }

    private bool IsYoung(long ageNs, long nowNs)
        => Options.FlushIntervalNs > 0 ? nowNs - ageNs < Options.FlushIntervalNs : ageNs / _jiffyNs == nowNs / _jiffyNs;

    /// <summary>
    /// The GRO part of ending a NAPI poll. When the poll used its whole budget the instance stays scheduled and
    /// __napi_poll flushes only old skbs (all of them if HZ &lt; 1000); otherwise napi_complete_done runs: with
    /// gro_flush_timeout set (after work, or while napi_defer_hard_irqs lasts) only old skbs are flushed and the
    /// timer is armed (<see cref="TimerDeadlineNs"/>), else everything is flushed. rx_list is passed up either way.
    /// </summary>
    public void PollComplete(int workDone, int budget, long nowNs)
    {
        Now = nowNs;
        _pollThread = null;
        if (workDone >= budget)
        {
            Flush(Options.Hz >= 1000, nowNs);
            NormalList();
            return;
        }
        long timeout = 0;
        if (workDone > 0)
        {
            if (HeldCount > 0) timeout = Options.GroFlushTimeoutNs;
            _deferCount = Options.NapiDeferHardIrqs;
        }
        if (_deferCount > 0)
        {
            _deferCount--;
            timeout = Options.GroFlushTimeoutNs;
        }
        Flush(timeout != 0, nowNs);
        NormalList();
        TimerDeadlineNs = timeout != 0 ? nowNs + timeout : null;
    }

    /// <summary>The gro_flush_timeout hrtimer fired: napi_watchdog schedules the instance, whose poll finds no
    /// work and completes.</summary>
    public void TimerFired(long nowNs)
    {
        TimerDeadlineNs = null;
        PollComplete(0, 1, nowNs);
    }

    private void UpdateMask(int index, GroBucket bucket)
    {
        ref ulong word = ref _bitmask[index >> 6];
        ulong bit = 1UL << (index & 63);
        if (bucket.Count != 0) word |= bit;
        else word &= ~bit;
    }

    // ------------------------------------------------------------------ helpers shared by the handlers

    /// <summary>skb_gro_len.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int GroLen(Skb skb) => skb.Len - skb.Gro.DataOffset;

    /// <summary>
    /// __skb_gro_checksum_validate for TCP/UDP: verifies the L4 checksum unless the device already did
    /// (CHECKSUM_UNNECESSARY levels) and records the result as the kernel does. True if the checksum is bad.
    /// </summary>
    internal static bool ChecksumBad(Skb skb, uint pseudo, bool zeroOkay, ushort check)
    {
        bool needed = ChecksumNeeded(skb, zeroOkay, check);
        if (needed)
        {
            if (!(skb.Gro.CsumValid && Checksum.Add(pseudo, skb.Gro.Csum) == 0xFFFF))
            {
                // All of it in the head (every unmerged small packet): one sum, no frag walk.
                uint sum = skb.DataLen == 0 ? SumLinear(skb) : SumRange(skb, skb.Gro.DataOffset, GroLen(skb));
                skb.Gro.Csum = sum;
                skb.Gro.CsumValid = true;
                if (Checksum.Add16(pseudo, sum) != 0xFFFF) return true;
            }
        }
        // skb_gro_incr_csum_unnecessary
        if (skb.Gro.CsumCnt > 0) skb.Gro.CsumCnt--;
        else if (skb.IpSummed == CsumState.Unnecessary) { if (skb.CsumLevel < 3) skb.CsumLevel++; }
        else if (skb.IpSummed == CsumState.None) { skb.IpSummed = CsumState.Unnecessary; skb.CsumLevel = 0; }
        return false;
    }

    /// <summary>skb_checksum over the GRO payload of a linear skb (skb_gro_offset to the end of the head), read in place.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe uint SumLinear(Skb skb)
    {
        int len = GroLen(skb);
        byte* p = skb.DataAddress + skb.Gro.DataOffset;
        return len < Checksum.ShortMax ? Checksum.SumShort(p, len) : Checksum.Sum(new ReadOnlySpan<byte>(p, len));
    }

    /// <summary>inet_gro_compute_pseudo: the pseudo-header of the innermost IPv4 header parsed, for
    /// <paramref name="proto"/> over skb_gro_len, read in place (the header was made linear when it was parsed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe uint PseudoV4(Skb skb, byte proto)
    {
        byte* iph = skb.DataAddress + skb.Gro.InnermostNetworkOffset;
        // The addresses as two 32-bit words: their sum folds to the same 16-bit value as the four 16-bit halves.
        return Checksum.Fold64((ulong)Be32(iph + 12) + Be32(iph + 16) + proto + (uint)GroLen(skb));
    }

    /// <summary>Whether <see cref="ChecksumBad"/> has to verify the sum (and so needs the pseudo-header) or only
    /// records that the device did.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool ChecksumNeeded(Skb skb, bool zeroOkay, ushort check)
        => skb.IpSummed != CsumState.Partial && skb.Gro.CsumCnt == 0 && (!zeroOkay || check != 0);

    /// <summary>skb_checksum over [offset, offset+len) of the linear part, frags and frag_list (big-endian word sum).</summary>
    internal static uint SumRange(Skb skb, int offset, int len)
    {
        int headLen = skb.HeadLen;
        // All of it in the linear part (every unmerged small packet): one sum, no walk.
        if ((uint)offset <= (uint)headLen && len <= headLen - offset) return Checksum.Sum(skb.LinearData.Slice(offset, len));
        uint acc = 0;
        int pos = 0;
        if (offset < headLen)
        {
            int n = Math.Min(headLen - offset, len);
            acc = AddChunk(acc, skb.LinearData.Slice(offset, n), ref pos);
            len -= n;
            offset = 0;
        }
        else offset -= headLen;
        for (int i = 0; i < skb.NrFrags && len > 0; i++)
        {
            Span<byte> f = skb.FragData(i);
            if (offset >= f.Length) { offset -= f.Length; continue; }
            int n = Math.Min(f.Length - offset, len);
            acc = AddChunk(acc, f.Slice(offset, n), ref pos);
            len -= n;
            offset = 0;
        }
        for (Skb? m = skb.FragList; m != null && len > 0; m = m.Next)
        {
            if (offset >= m.Len) { offset -= m.Len; continue; }
            int n = Math.Min(m.Len - offset, len);
            uint s = SumRange(m, offset, n);
            if ((pos & 1) != 0) s = Swap16(s);
            acc = Checksum.Add(acc, s);
            pos += n;
            len -= n;
            offset = 0;
        }
        return acc;
    }

    private static uint AddChunk(uint acc, ReadOnlySpan<byte> data, ref int pos)
    {
        uint s = Checksum.Sum(data);
        // A chunk starting at an odd position contributes its bytes in swapped lanes.
        if ((pos & 1) != 0) s = Swap16(s);
        pos += data.Length;
        return Checksum.Add(acc, s);
    }

    private static uint Swap16(uint s) => (uint)(((s & 0xFF) << 8) | ((s >> 8) & 0xFF));

    /// <summary>Ones'-complement subtraction of a header's sum from a CHECKSUM_COMPLETE value (skb_gro_postpull_rcsum).</summary>
    internal static void PostPullRcsum(Skb skb, ReadOnlySpan<byte> header)
    {
        if (skb.Gro.CsumValid)
            skb.Gro.Csum = Checksum.Add(skb.Gro.Csum, (ushort)~Checksum.Sum(header));
    }

    /// <summary>skb_gro_header: make <paramref name="hlen"/> bytes from skb->data linear; false if the packet is shorter.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool MayPull(Skb skb, int hlen) => skb.HeadLen >= hlen || skb.MayPull(hlen);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe uint Be32(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<uint>(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe ushort Be16(byte* p) => BinaryPrimitives.ReverseEndianness(Unsafe.ReadUnaligned<ushort>(p));
    /// <summary>Eight bytes as one word in memory order, for equality tests.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe ulong Raw64(byte* p) => Unsafe.ReadUnaligned<ulong>(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Be32(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32BigEndian(s.Slice(at));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort Be16(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt16BigEndian(s.Slice(at));
}

/// <summary>One gro_hash[] entry: a list of held skbs, youngest at <see cref="Head"/>, linked by Skb.Next/Prev.</summary>
internal sealed class GroBucket
{
    public Skb? Head, Tail;
    public int Count;

    public void AddHead(Skb skb)
    {
        skb.Prev = null;
        skb.Next = Head;
        if (Head != null) Head.Prev = skb;
        else Tail = skb;
        Head = skb;
        Count++;
    }

    public void Remove(Skb skb)
    {
        if (skb.Prev != null) skb.Prev.Next = skb.Next;
        else Head = skb.Next;
        if (skb.Next != null) skb.Next.Prev = skb.Prev;
        else Tail = skb.Prev;
        skb.Next = skb.Prev = null;
        Count--;
    }
}
