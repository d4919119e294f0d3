using System.Buffers.Binary;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Nic;

/// <summary>
/// Turns completed RX descriptors into skbs, by the two ice driver paths:
/// <list type="bullet">
/// <item><see cref="BuildSkb(PagePool, in RxDescriptor, int, int, int)"/> (ice_build_skb, the usual one): the ring buffer
/// itself becomes the skb head, data starting after the headroom. Nothing is copied.</item>
/// <item><see cref="ConstructSkb(PagePool, in RxDescriptor, int)"/> (ice_construct_skb, used when the buffer has
/// no room for build_skb or legacy-rx is set): a small head comes from a separate head pool (napi_alloc_skb's
/// page_frag cache), the headers (eth_get_headlen, at most <see cref="RxHdrSize"/> bytes) are copied into it
/// and the rest of the ring buffer is attached as frag 0.</item>
/// </list>
/// Either way the skb takes over the caller's reference on the ring buffer, so the buffer goes back to the
/// pool, and from there into the ring's next refill, when the last skb or clone that uses it is freed
/// (page reuse). Failures drop the packet, release the buffer and count <see cref="AllocFailed"/>
/// (<see cref="DropReason.PoolExhausted"/>).
/// <para>A frame that spans several descriptors (multi-buffer receive) is built the same way from its first
/// buffer, and every following buffer is attached as the next page frag (ice_add_rx_frag / skb_add_rx_frag),
/// charged a whole buffer of truesize; a buffer the hardware left empty is recycled at once, as ice_add_rx_frag
/// skips a zero size. Only a hardware-GRO aggregate can need more buffers than MAX_SKB_FRAGS slots: the rest
/// go on the frag_list as skbs built around each buffer, the shape skb_gro_receive gives an skb it cannot
/// extend with frags (a plain frame never gets there: <see cref="NicOptions.Validate"/> keeps the largest one
/// within the frag slots).</para>
/// </summary>
public sealed class SkbBuilder
{
    /// <summary>ICE_RX_HDR_SIZE: most bytes copied into a constructed head.</summary>
    public const int RxHdrSize = 256;

    private readonly SkbPool _skbs;
    private readonly PagePool? _heads;
    private long _allocFailed;

    /// <param name="skbs">skb cache of this NAPI context</param>
    /// <param name="headPool">small buffers for constructed heads (data area at least <see cref="RxHdrSize"/>);
    /// only needed for <see cref="ConstructSkb(PagePool, in RxDescriptor, int)"/></param>
    public SkbBuilder(SkbPool skbs, PagePool? headPool = null)
    {
        if (headPool != null && headPool.DataSize < RxHdrSize)
            throw new ArgumentException($"head pool data area must hold {RxHdrSize} bytes", nameof(headPool));
        _skbs = skbs;
        _heads = headPool;
    }

    /// <summary>A head pool sized for <see cref="ConstructSkb(PagePool, in RxDescriptor, int)"/>: 512-byte buffers,
    /// 64 bytes of headroom (NET_SKB_PAD) in front of the 256 header bytes.</summary>
    public static PagePool CreateHeadPool(int capacity) => new(capacity, 512, 64, "skb_heads");

    /// <summary>Packets dropped because no skb or head buffer was available.</summary>
    public long AllocFailed => Volatile.Read(ref _allocFailed);

    /// <summary>Frames whose checksum the port found wrong (ice's hw_csum_rx_error; ethtool -S rx_csum_bad.nic). Written
    /// only by the queue's NAPI context.</summary>
    public long ChecksumErrors => Volatile.Read(ref _csumBad);
    private long _csumBad;

    /// <summary>ice_build_skb with the frame at <paramref name="dataOffset"/> (from the buffer start) and
    /// <paramref name="length"/> bytes long, as XDP may have moved them (bpf_xdp_adjust_head/tail).</summary>
    public Skb? BuildSkb(PagePool ringPool, in RxDescriptor d, int queue, int dataOffset, int length)
        => BuildSkb(ringPool, in d, queue, dataOffset, length, Thread.CurrentThread);

    internal Skb? BuildSkb(PagePool ringPool, in RxDescriptor d, int queue, int dataOffset, int length, Thread current)
    {
        Skb? skb = _skbs.Build(ringPool, d.BufferIndex, dataOffset, length, current);
        if (skb is null) return Fail(ringPool, d.BufferIndex);
        FillFields(skb, in d, queue);
        return skb;
    }

    /// <summary>ice_construct_skb for an untouched descriptor.</summary>
    public Skb? ConstructSkb(PagePool ringPool, in RxDescriptor d, int queue)
        => ConstructSkb(ringPool, in d, queue, ringPool.Headroom, d.Length);

    /// <summary>ice_construct_skb with an explicit frame position (after XDP).</summary>
    public Skb? ConstructSkb(PagePool ringPool, in RxDescriptor d, int queue, int dataOffset, int length)
    {
        if (_heads is null) throw new InvalidOperationException("ConstructSkb needs a head pool");
        ReadOnlySpan<byte> frame = ringPool.Slice(d.BufferIndex, dataOffset, length);
        int headLen = length <= RxHdrSize ? length : EthGetHeadlen(frame, RxHdrSize);
        Skb? skb = _skbs.Alloc(_heads);
        if (skb is null) return Fail(ringPool, d.BufferIndex);
        frame.Slice(0, headLen).CopyTo(skb.Put(headLen));
        if (length > headLen)
            skb.AddFrag(ringPool, d.BufferIndex, dataOffset + headLen, length - headLen, ringPool.BufferSize);
        else
            ringPool.Return(d.BufferIndex); // everything was copied: the page goes straight back for reuse
        FillFields(skb, in d, queue);
        return skb;
    }

    /// <summary>ice_build_skb for a frame spread over <paramref name="frame"/> (its descriptors in ring order, EOP
    /// last): the first buffer is the head, with the frame start at <paramref name="dataOffset"/> and
    /// <paramref name="headLength"/> bytes (as XDP left them), the others follow as frags.</summary>
    public Skb? BuildSkb(PagePool ringPool, ReadOnlySpan<RxDescriptor> frame, int queue, int dataOffset, int headLength)
        => BuildSkb(ringPool, frame, queue, dataOffset, headLength, Thread.CurrentThread);

    internal Skb? BuildSkb(PagePool ringPool, ReadOnlySpan<RxDescriptor> frame, int queue, int dataOffset, int headLength, Thread current)
    {
        Skb? skb = _skbs.Build(ringPool, frame[0].BufferIndex, dataOffset, headLength, current);
        if (skb is null) return Fail(ringPool, frame, current);
        if (!AddRxFrags(skb, ringPool, frame.Slice(1), current)) return null;
        FillFields(skb, in frame[^1], queue);
        return skb;
    }

    /// <summary>ice_construct_skb for a frame spread over several descriptors: the headers of the first buffer
    /// are copied into a new head, the rest of that buffer becomes frag 0 and the following buffers the next frags.</summary>
    public Skb? ConstructSkb(PagePool ringPool, ReadOnlySpan<RxDescriptor> frame, int queue, int dataOffset, int headLength)
    {
        if (_heads is null) throw new InvalidOperationException("ConstructSkb needs a head pool");
        Thread current = Thread.CurrentThread;
        int first = frame[0].BufferIndex;
        ReadOnlySpan<byte> data = ringPool.Slice(first, dataOffset, headLength);
        int headLen = headLength <= RxHdrSize ? headLength : EthGetHeadlen(data, RxHdrSize);
        Skb? skb = _skbs.Alloc(_heads);
        if (skb is null) return Fail(ringPool, frame, current);
        data.Slice(0, headLen).CopyTo(skb.Put(headLen));
        if (headLength > headLen)
            skb.AddFrag(ringPool, first, dataOffset + headLen, headLength - headLen, ringPool.BufferSize);
        else
            ringPool.Return(first, current);
        if (!AddRxFrags(skb, ringPool, frame.Slice(1), current)) return null;
        FillFields(skb, in frame[^1], queue);
        return skb;
    }

    // ice_add_rx_frag for each buffer after the first. On failure (no skb for a frag_list member) the skb and
    // every buffer not yet attached are released, and the drop is counted.
    private bool AddRxFrags(Skb skb, PagePool ringPool, ReadOnlySpan<RxDescriptor> rest, Thread current)
    {
        Skb tail = skb;
        int offset = ringPool.Headroom, trueSize = ringPool.BufferSize;
        for (int i = 0; i < rest.Length; i++)
        {
            ref readonly RxDescriptor d = ref rest[i];
            if (d.Length == 0)
            {
                ringPool.Return(d.BufferIndex, current);
                continue;
            }
            if (tail.AddFrag(ringPool, d.BufferIndex, offset, d.Length, trueSize))
            {
                if (tail != skb) skb.AddNonlinearLen(d.Length, trueSize);
                continue;
            }
            // No frag slot left (an aggregate only): the buffer heads a frag_list member.
            Skb? member = _skbs.Build(ringPool, d.BufferIndex, offset, d.Length, current);
            if (member is null)
            {
                skb.Free(current);
                Fail(ringPool, rest.Slice(i), current);
                return false;
            }
            skb.AppendFragList(member);
            tail = member;
        }
        return true;
    }

    /// <summary>Build skbs for a polled batch. Skbs are written densely to <paramref name="output"/> (which must be
    /// at least as long as the number of frames); returns how many. A frame over several descriptors becomes one
    /// skb with frags; the batch must end with an EOP descriptor. Failures are dropped and counted.</summary>
    internal int BuildBatch(RxRing ring, ReadOnlySpan<RxDescriptor> batch, Span<Skb?> output, bool construct = false)
    {
        if (batch.Length > 0 && !batch[^1].Eop) throw new ArgumentException("the batch ends inside a frame", nameof(batch));
        int n = 0, first = 0;
        Thread current = Thread.CurrentThread; // once per batch, not per packet
        PagePool pool = ring.Pool;
        for (int i = 0; i < batch.Length; i++)
        {
            if (!batch[i].Eop) continue;
            ReadOnlySpan<RxDescriptor> frame = batch.Slice(first, i - first + 1);
            first = i + 1;
            Skb? skb = frame.Length == 1
                ? (construct
                    ? ConstructSkb(pool, in frame[0], ring.QueueId)
                    : BuildSkb(pool, in frame[0], ring.QueueId, pool.Headroom, frame[0].Length, current))
                : (construct
                    ? ConstructSkb(pool, frame, ring.QueueId, pool.Headroom, frame[0].Length)
                    : BuildSkb(pool, frame, ring.QueueId, pool.Headroom, frame[0].Length, current));
            if (skb != null) output[n++] = skb;
        }
        return n;
    }

    // ice_process_skb_fields, minus eth_type_trans (which belongs to the next stage): the MAC header is at
    // skb->data and skb->protocol is still unset.
    private void FillFields(Skb skb, in RxDescriptor d, int queue)
    {
        skb.TimestampNs = d.TimestampNs;
        skb.Ifindex = d.Ifindex;
        skb.TraceId = d.TraceId;
        if (d.HashType != PktHashType.None) skb.SetHash(d.RssHash, d.HashType);
        skb.QueueMapping = (ushort)queue; // skb_record_rx_queue
        skb.ResetMacHeader();
        if ((d.Status & RxDescriptor.L3L4Processed) != 0) RxCsum(skb, d.Status);
        if (d.GsoSize != 0) SetAggregate(skb, in d);
    }

    // ice_rx_csum: a frame the port checked is CHECKSUM_UNNECESSARY unless a check failed; a failure is counted
    // (hw_csum_rx_error) and the frame left CHECKSUM_NONE, for the stack to verify and drop.
    private void RxCsum(Skb skb, int status)
    {
        if ((status & (RxDescriptor.IpChecksumError | RxDescriptor.L4ChecksumError)) != 0)
        {
            _csumBad++;
            return;
        }
        skb.IpSummed = CsumState.Unnecessary;
        skb.CsumLevel = 0;
    }

    // A hardware-GRO completion: the driver marks the skb as the GSO packet it is (skb_shinfo gso_size, gso_segs,
    // gso_type) and, as bnxt and mlx5 do by calling tcp_gro_complete, leaves it CHECKSUM_PARTIAL with csum_start at
    // the TCP header. A capture taken after GRO already holds the pseudo-header sum tcp_gro_complete wrote.
    private static void SetAggregate(Skb skb, in RxDescriptor d)
    {
        skb.GsoSize = d.GsoSize;
        skb.GsoSegs = d.GsoSegs;
        skb.GsoType = d.GsoType;
        skb.IpSummed = CsumState.Partial;
        skb.CsumStart = skb.Data + d.L4Offset;
        skb.CsumOffset = 16;
    }

    private Skb? Fail(PagePool ringPool, int index)
    {
        ringPool.Return(index);
        Interlocked.Increment(ref _allocFailed);
        return null;
    }

    private Skb? Fail(PagePool ringPool, ReadOnlySpan<RxDescriptor> buffers, Thread current)
    {
        foreach (ref readonly RxDescriptor d in buffers) ringPool.Return(d.BufferIndex, current);
        Interlocked.Increment(ref _allocFailed);
        return null;
    }

    /// <summary>
    /// eth_get_headlen: length of the protocol headers at the start of <paramref name="frame"/> (Ethernet, up to
    /// two VLAN tags, IPv4 or IPv6 with extension headers, then the TCP/UDP/SCTP/ICMP header), at most
    /// <paramref name="max"/>. Stops at the last header it could read completely, like the flow dissector.
    /// </summary>
    public static int EthGetHeadlen(ReadOnlySpan<byte> frame, int max)
    {
        int len = Math.Min(frame.Length, max);
        if (len < EthernetView.HeaderLength) return len;
        ReadOnlySpan<byte> f = frame[..len];
        const int MaxTags = 2;
        bool complete = VlanStackView.TryParse(f, out var tags, out _);
        int off = Math.Min(tags.PayloadOffset, EthernetView.HeaderLength + MaxTags * VlanView.HeaderLength);
        if (!complete || tags.Count > MaxTags) return off;

        byte proto;
        if (tags.InnerEtherType == EtherTypes.Ipv4)
        {
            if (!Ipv4View.TryParseHeader(f[off..], out var ip)) return off;
            proto = ip.Protocol;
            off += ip.HeaderLength;
            if (ip.FragmentOffset != 0) return off; // no L4 header in a later fragment
        }
        else if (tags.InnerEtherType == EtherTypes.Ipv6)
        {
            if (!Ipv6View.TryParseHeader(f[off..], out var ip)) return off;
            off += Ipv6View.HeaderLength;
            // Hop-by-hop, routing, destination options and fragment headers, as the dissector follows them.
            var chain = f[off..];
            var ext = new Ipv6ExtensionHeaderReader(chain, ip.NextHeader);
            while (ext.Count < 8 && ext.NextHeader != IpProtocols.Ah && ext.MoveNext())
            {
                if (ext.Type == IpProtocols.Fragment && Ipv6FragmentView.TryParse(ext.Data, out var frag, out _) && frag.FragmentOffset != 0)
                    return off + ext.NextOffset;
            }
            if (ext.Error != DropReason.None)
                return chain.Length - ext.NextOffset < 8 ? off + ext.NextOffset : len;
            proto = ext.NextHeader;
            off += ext.NextOffset;
        }
        else return off;

        int l4;
        if (proto == IpProtocols.Tcp)
        {
            // A TCP header that is cut short (or malformed) takes the rest of the bytes looked at.
            if (TcpView.TryParse(f[off..], out var tcp, out _)) l4 = tcp.HeaderLength;
            else l4 = len - off >= 13 ? len - off : 0;
        }
        else
        {
            l4 = proto switch
            {
                IpProtocols.Udp or 136 => UdpView.HeaderLength,  // UDP, UDP-Lite
                132 => 12,                                        // SCTP common header
                IpProtocols.Icmp or IpProtocols.Icmpv6 => 8,      // ICMP, ICMPv6
                _ => 0,
            };
        }
        return Math.Min(off + l4, len);
    }
}
