using System.Runtime.CompilerServices;

namespace Softnet.Packets;

/// <summary>skb->ip_summed: what is known about the L4 checksum (CHECKSUM_NONE/UNNECESSARY/COMPLETE/PARTIAL).</summary>
public enum CsumState : byte
{
    /// <summary>Nothing verified; software must check.</summary>
    None,
    /// <summary>The device (or an earlier stage) verified it; <see cref="Skb.CsumLevel"/> says how many encapsulation levels.</summary>
    Unnecessary,
    /// <summary><see cref="Skb.Csum"/> holds the ones'-complement sum of the packet from skb->data on.</summary>
    Complete,
    /// <summary>Checksum still to be filled in (locally generated or GRO-built packets).</summary>
    Partial,
}

/// <summary>PKT_HASH_TYPE_*: what the flow hash covers. An L4 hash sets skb->l4_hash.</summary>
public enum PktHashType : byte { None, L2, L3, L4 }

/// <summary>skb->pkt_type (PACKET_HOST ...), set by eth_type_trans from the destination MAC.</summary>
public enum PacketType : byte { Host = 0, Broadcast = 1, Multicast = 2, OtherHost = 3, Outgoing = 4, Loopback = 5 }

/// <summary>skb_shinfo(skb)->gso_type bits (SKB_GSO_*), as GRO completion sets them.</summary>
[Flags]
public enum GsoType : uint
{
    None = 0,
    TcpV4 = 1 << 0,
    Dodgy = 1 << 1,
    TcpEcn = 1 << 2,
    TcpFixedId = 1 << 3,
    TcpV6 = 1 << 4,
    /// <summary>SKB_GSO_UDP_TUNNEL: a UDP tunnel (VXLAN) aggregate whose outer UDP checksum is zero.</summary>
    UdpTunnel = 1 << 10,
    /// <summary>SKB_GSO_UDP_TUNNEL_CSUM: the same with an outer UDP checksum to fill per segment.</summary>
    UdpTunnelCsum = 1 << 11,
    /// <summary>SKB_GSO_TCP_FIXEDID_INNER: the inner IPv4 header of an encapsulated aggregate keeps one ID
    /// (<see cref="TcpFixedId"/> then speaks of the outer header only).</summary>
    TcpFixedIdInner = 1u << 31,
    /// <summary>The tunnel bits iptunnel_pull_offloads clears on decapsulation (NETIF_F_GSO_ENCAP_ALL).</summary>
    EncapAll = UdpTunnel | UdpTunnelCsum,
}

/// <summary>NAPI_GRO_FREE / NAPI_GRO_FREE_STOLEN_HEAD: what dev_gro_receive does with a merged skb.</summary>
public enum GroFree : byte { None = 0, Free = 1, StolenHead = 2 }

/// <summary>
/// One page fragment of a non-linear skb (skb_frag_t): a slice of a pool buffer. The skb holds one reference on
/// the buffer per frag.
/// </summary>
public struct SkbFrag
{
    public PagePool? Pool;
    public int Index;
    /// <summary>Offset from the buffer start.</summary>
    public int Offset;
    public int Size;

    public readonly Span<byte> Span => Pool!.Slice(Index, Offset, Size);
}

/// <summary>skb_shinfo(skb)->frags: MAX_SKB_FRAGS slots inline in the skb.</summary>
[InlineArray(Skb.MaxFrags)]
public struct SkbFragArray
{
    private SkbFrag _element0;
}

/// <summary>
/// struct napi_gro_cb: the GRO scratch area in skb->cb. Only the fields GRO needs; <see cref="Reset"/> clears
/// it the way dev_gro_receive does before each packet.
/// </summary>
public struct GroCb
{
    /// <summary>Offset from skb->data of the header being examined (skb_gro_offset).</summary>
    public int DataOffset;
    /// <summary>Packets merged into this one (1 = just itself).</summary>
    public ushort Count;
    /// <summary>Non-zero: this skb must be flushed rather than merged (bits OR-ed by each layer).</summary>
    public ushort Flush;
    /// <summary>IPv4 ID mismatch signal (flush_id).</summary>
    public ushort FlushId;
    /// <summary>On a held skb: it matches the incoming one. On the incoming skb: it was merged.</summary>
    public bool SameFlow;
    public GroFree Free;
    /// <summary>IPv4 DF set with ID not incrementing (is_atomic).</summary>
    public bool IsAtomic;
    public bool IsIpv6;
    /// <summary>Merged by chaining whole skbs on frag_list (fraglist GRO).</summary>
    public bool IsFlist;
    /// <summary>Encapsulation depth seen so far (encap_mark).</summary>
    public byte EncapMark;
    public bool CsumValid;
    public byte CsumCnt;
    public uint Csum;
    /// <summary>L3 protocol (ETH_P_*) of the innermost header parsed.</summary>
    public ushort Proto;
    /// <summary>When the skb was first held (ns on the path's clock), for flush by age.</summary>
    public long Age;
    /// <summary>Last skb chained on this one's frag_list (NAPI_GRO_CB(p)->last).</summary>
    public Skb? Last;
    /// <summary>network_offsets[encap_mark]: outer and inner L3 offsets from skb->data.</summary>
    public int NetworkOffset0, NetworkOffset1;
    /// <summary>ip_fixedid: the held IPv4 flow keeps one IP ID (DF set) instead of incrementing it. For an
    /// encapsulated flow this is the outer header's bit; <see cref="IpFixedIdInner"/> is the inner one's.</summary>
    public bool IpFixedId;
    public bool IpFixedIdInner;
    /// <summary>Flow key the engine compares in place of skb->hash (the raw hash, or a software flow hash).</summary>
    public uint FlowKey;
    /// <summary>Engine bookkeeping: this held skb is a pure ACK kept by the pure-ACK coalescing variant.</summary>
    public bool PureAck;
    /// <summary>The UDP tunnel handler udp_gro_receive passed this skb to (the socket udp_gro_complete finds again).</summary>
    public Gro.UdpTunnelGro? Tunnel;

    /// <summary>network_offsets[encap_mark]: the innermost IP header parsed so far (the one TCP's pseudo-header uses).</summary>
    public readonly int InnermostNetworkOffset => EncapMark != 0 ? NetworkOffset1 : NetworkOffset0;

    public void Reset() => this = default;
}

/// <summary>
/// The packet (struct sk_buff). The head is a pool buffer: <see cref="Data"/>..<see cref="Tail"/> is the linear
/// part, <see cref="HeadLen"/> bytes long. Up to <see cref="MaxFrags"/> page fragments follow, then a chain of
/// whole skbs on <see cref="FragList"/>. <see cref="Len"/> counts all of it, <see cref="DataLen"/> the
/// non-linear part (frags plus frag_list), so Len == HeadLen + DataLen always.
/// <para>Skbs come from an <see cref="SkbPool"/> and go back there on <see cref="Free"/>, which also drops the
/// references the skb holds on its head and frag buffers. Header offsets (mac/network/transport) are measured
/// from the head buffer start, as in the kernel, so push/pull do not move them. An skb is used by one thread at
/// a time.</para>
/// </summary>
public sealed class Skb
{
    /// <summary>MAX_SKB_FRAGS (17 with 4 KiB pages).</summary>
    public const int MaxFrags = 17;
    /// <summary>Value of an unset header offset (the kernel's (u16)~0).</summary>
    public const int Unset = -1;

    /// <summary>The scalar metadata whose reset value is zero, kept together so freeing an skb (once per packet,
    /// and once more per GRO-merged shell) clears it with a few wide stores instead of one store per field.
    /// Declared before <see cref="Gro"/>: the CLR places struct fields after the scalars in declaration order.</summary>
    private struct Meta
    {
        public long TimestampNs;
        public int Data, End, Len, DataLen, NrFrags, TrueSize;
        public uint Hash, Mark, Csum;
        public int Ifindex, GsoSize, GsoSegs, CsumStart, CsumOffset;
        public GsoType GsoType;
        public ushort QueueMapping, Protocol, VlanTci, VlanProto;
        public PktHashType HashType;
        public PacketType PktType;
        public CsumState IpSummed;
        public byte CsumLevel, CtInfo;
        public bool HeadFrag, Cloned;
        public long Id;
        public int TraceId;
        public uint Priority;
        public ushort FragMaxSize;
        public bool IgnoreDf, FragPmtu;
        public bool Encapsulation;
        public ushort InnerProtocol;
        public int InnerMacHeader, InnerNetworkHeader, InnerTransportHeader;
    }

    private Meta _m;

    internal readonly SkbPool Owner;
    internal readonly int Slot;
    internal bool InPool = true;

    private Skb? _fragListTail;
    // The head buffer's address and size, cached from HeadPool (pinned memory) so header views cost one load.
    private unsafe byte* _head;
    private int _headSize;

    internal Skb(SkbPool owner, int slot)
    {
        Owner = owner;
        Slot = slot;
        ResetFields();
    }

    // ---- head and lengths ----
    /// <summary>The pool of the head buffer; null when the skb has no head.</summary>
    public unsafe PagePool? HeadPool
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _head != null ? _headPool : null;
    }

    // Left pointing at the last head's pool when the head goes (freed or stolen by GRO): the next head almost
    // always comes from the same pool, and an unchanged reference needs no store, so no GC write barrier per packet.
    private PagePool? _headPool;
    public int HeadIndex { get; private set; }
    /// <summary>skb->data as an offset into the head buffer.</summary>
    public int Data { get => _m.Data; private set => _m.Data = value; }
    /// <summary>skb->end: the usable size of the head buffer.</summary>
    public int End { get => _m.End; private set => _m.End = value; }
    public int Len { get => _m.Len; private set => _m.Len = value; }
    public int DataLen { get => _m.DataLen; private set => _m.DataLen = value; }
    public int HeadLen => Len - DataLen;
    /// <summary>skb->tail as an offset into the head buffer.</summary>
    public int Tail => Data + HeadLen;
    public int Headroom => Data;
    /// <summary>Room after the tail; 0 for a non-linear skb, as skb_tailroom says.</summary>
    public int Tailroom => DataLen != 0 ? 0 : End - Tail;
    public bool IsNonlinear => DataLen != 0;
    public int NrFrags { get => _m.NrFrags; private set => _m.NrFrags = value; }
    /// <summary>First skb chained on skb_shinfo(skb)->frag_list; members are linked by <see cref="Next"/>.</summary>
    public Skb? FragList { get; private set; }
    /// <summary>Memory charged to this skb (skb->truesize).</summary>
    public int TrueSize { get => _m.TrueSize; set => _m.TrueSize = value; }
    /// <summary>The head is a page fragment that GRO may steal into a frag (skb->head_frag).</summary>
    public bool HeadFrag { get => _m.HeadFrag; set => _m.HeadFrag = value; }
    /// <summary>This skb was cloned or is a clone (skb_cloned). Sticky; <see cref="HeadShared"/> says whether the
    /// head is still shared right now. Before writing into a shared head (Push, Put, header rewrites) call
    /// <see cref="UnshareHead"/> (skb_cow_head); <see cref="MayPull"/> does so itself.</summary>
    public bool Cloned { get => _m.Cloned; internal set => _m.Cloned = value; }

    /// <summary>Another skb (a clone) holds the same head buffer.</summary>
    public bool HeadShared => HeadPool != null && HeadPool.RefCount(HeadIndex) > 1;

    // ---- list linkage (GRO lists, backlogs, frag_list members) ----
    public Skb? Next;
    public Skb? Prev;
    /// <summary>In a TCP socket's backlog (tcp_add_backlog): the truesize this skb charges when processed (its own,
    /// or what skb_try_coalesce added to the tail it joined), and whether it was coalesced into the skb before it.
    /// Set on every enqueue, so never reset.</summary>
    internal int BacklogCharge;
    internal bool BacklogCoalesced;

    // ---- headers ----
    public int MacHeader;
    public int NetworkHeader;
    public int TransportHeader;

    // ---- metadata ----
    public uint Hash { get => _m.Hash; set => _m.Hash = value; }
    public PktHashType HashType { get => _m.HashType; set => _m.HashType = value; }
    public uint Mark { get => _m.Mark; set => _m.Mark = value; }
    /// <summary>skb->tstamp in nanoseconds (receive time on the path's clock).</summary>
    public long TimestampNs { get => _m.TimestampNs; set => _m.TimestampNs = value; }
    public ushort QueueMapping { get => _m.QueueMapping; set => _m.QueueMapping = value; }
    /// <summary>skb->protocol: the EtherType in host order (0x0800, 0x86DD ...).</summary>
    public ushort Protocol { get => _m.Protocol; set => _m.Protocol = value; }
    public PacketType PktType { get => _m.PktType; set => _m.PktType = value; }
    /// <summary>skb->skb_iif: ifindex of the receiving device.</summary>
    public int Ifindex { get => _m.Ifindex; set => _m.Ifindex = value; }
    public ushort VlanTci { get => _m.VlanTci; set => _m.VlanTci = value; }
    /// <summary>Non-zero when a VLAN tag was taken out of the frame (skb_vlan_tag_present).</summary>
    public ushort VlanProto { get => _m.VlanProto; set => _m.VlanProto = value; }
    public CsumState IpSummed { get => _m.IpSummed; set => _m.IpSummed = value; }
    public uint Csum { get => _m.Csum; set => _m.Csum = value; }
    public byte CsumLevel { get => _m.CsumLevel; set => _m.CsumLevel = value; }
    /// <summary>GRO control block (NAPI_GRO_CB); a field so callers can take <c>ref skb.Gro</c>.</summary>
    public GroCb Gro;
    // After the GRO control block: the CLR lays struct fields out in declaration order after the scalars, and
    // GRO reads the header fields and NAPI_GRO_CB of every held skb per packet, so they share cache lines while
    // the 400-byte frag array follows.
    private SkbFragArray _frags;
    /// <summary>Conntrack entry (skb->_nfct), typed by the netfilter stage.</summary>
    public object? Conntrack;
    /// <summary>enum ip_conntrack_info for <see cref="Conntrack"/>.</summary>
    public byte CtInfo { get => _m.CtInfo; set => _m.CtInfo = value; }
    /// <summary>skb->nf_bridge's physindev and physoutdev: the bridge ports of a frame br_netfilter passed through the
    /// IPv6 hooks (-m physdev reads them); null when it did not. Cleared by skb_scrub_packet (skb_ext_reset).</summary>
    public Link.Device? NfBridgePhysIn, NfBridgePhysOut;
    /// <summary>skb->dev: the device the packet is on (received on, or leaving by).</summary>
    public Link.Device? Dev;
    /// <summary>skb_dst: the routing decision (ip_route_input / ip_route_output).</summary>
    public Ip.Route? Dst;
    /// <summary>A packet id a tracer follows from the port to the packet's end (0: not assigned). Kept by clones
    /// and across namespaces, as pwru follows the skb address.</summary>
    public long Id { get => _m.Id; set => _m.Id = value; }
    /// <summary>The journey number a <see cref="Telemetry.PacketTracer"/> gave the frame this skb carries (0: not traced).
    /// Set from the RX descriptor at skb build, kept by clones, fragments and NAT, so every stage can tell with one
    /// compare whether to record what it did.</summary>
    public int TraceId { get => _m.TraceId; set => _m.TraceId = value; }
    /// <summary>skb->priority.</summary>
    public uint Priority { get => _m.Priority; set => _m.Priority = value; }

    public bool L4Hash => HashType == PktHashType.L4;

    // ---- IPCB(skb) and skb->ignore_df: what IPv4 reassembly leaves for the output path ----
    /// <summary>IPCB(skb)->frag_max_size: the largest fragment a reassembled datagram was built from (0: it was
    /// never reassembled). ip_do_fragment cuts it again at no more than this.</summary>
    public ushort FragMaxSize { get => _m.FragMaxSize; set => _m.FragMaxSize = value; }
    /// <summary>skb->ignore_df: DF does not stop fragmentation (set on datagrams nf_defrag_ipv4 reassembled).</summary>
    public bool IgnoreDf { get => _m.IgnoreDf; set => _m.IgnoreDf = value; }
    /// <summary>IPCB(skb)->flags IPSKB_FRAG_PMTU: the largest original fragment had DF, so the fragments cut on
    /// output carry DF again.</summary>
    public bool FragPmtu { get => _m.FragPmtu; set => _m.FragPmtu = value; }
    /// <summary>IPCB(skb)->opt: the IPv4 options ip_rcv_options compiled (offsets into the header).</summary>
    public Ip.IpOptions IpOpt;

    // ---- skb_shinfo GSO fields and CHECKSUM_PARTIAL offsets (set by GRO completion) ----
    /// <summary>gso_size: payload bytes per segment (the MSS GRO saw).</summary>
    public int GsoSize { get => _m.GsoSize; set => _m.GsoSize = value; }
    /// <summary>gso_segs: segments merged into this skb.</summary>
    public int GsoSegs { get => _m.GsoSegs; set => _m.GsoSegs = value; }
    public GsoType GsoType { get => _m.GsoType; set => _m.GsoType = value; }
    /// <summary>csum_start as an offset into the head buffer (CHECKSUM_PARTIAL).</summary>
    public int CsumStart { get => _m.CsumStart; set => _m.CsumStart = value; }
    /// <summary>csum_offset: where the checksum field lies from <see cref="CsumStart"/>.</summary>
    public int CsumOffset { get => _m.CsumOffset; set => _m.CsumOffset = value; }
    public bool IsGso => GsoSize != 0 && GsoSegs > 1;

    // ---- skb->encapsulation and the inner_* headers (set by tunnel GRO completion, cleared by decapsulation) ----
    /// <summary>skb->encapsulation: the headers at data are a tunnel's; the inner_* offsets locate the packet inside.</summary>
    public bool Encapsulation { get => _m.Encapsulation; set => _m.Encapsulation = value; }
    /// <summary>skb->inner_protocol: the EtherType of the inner network header.</summary>
    public ushort InnerProtocol { get => _m.InnerProtocol; set => _m.InnerProtocol = value; }
    /// <summary>Inner header offsets into the head buffer (like <see cref="MacHeader"/>); meaningful only with
    /// <see cref="Encapsulation"/> set.</summary>
    public int InnerMacHeader { get => _m.InnerMacHeader; set => _m.InnerMacHeader = value; }
    public int InnerNetworkHeader { get => _m.InnerNetworkHeader; set => _m.InnerNetworkHeader = value; }
    public int InnerTransportHeader { get => _m.InnerTransportHeader; set => _m.InnerTransportHeader = value; }

    /// <summary>skb_set_hash.</summary>
    public void SetHash(uint hash, PktHashType type)
    {
        Hash = hash;
        HashType = type;
    }

    public void ClearHash()
    {
        Hash = 0;
        HashType = PktHashType.None;
    }

    public bool MacHeaderWasSet => MacHeader != Unset;
    public void ResetMacHeader() => MacHeader = Data;
    public void ResetNetworkHeader() => NetworkHeader = Data;
    public void ResetTransportHeader() => TransportHeader = Data;
    public void SetMacHeader(int offsetFromData) => MacHeader = Data + offsetFromData;
    public void SetNetworkHeader(int offsetFromData) => NetworkHeader = Data + offsetFromData;
    public void SetTransportHeader(int offsetFromData) => TransportHeader = Data + offsetFromData;
    /// <summary>skb_network_offset: network header relative to data (negative once pulled past it).</summary>
    public int NetworkOffset => NetworkHeader - Data;
    public int TransportOffset => TransportHeader - Data;
    public int MacLen => NetworkHeader - MacHeader;

    // ---- views ----

    /// <summary>The whole head buffer, headroom included; header offsets index into it.</summary>
    public Span<byte> HeadBuffer
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get { unsafe { return new Span<byte>(HeadPtr, _headSize); } }
    }

    /// <summary>The linear data (skb->data, headlen bytes).</summary>
    public Span<byte> LinearData
    {
        // Data..Tail lies inside the head buffer by construction (every length change is checked).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get { unsafe { return new Span<byte>(HeadPtr + Data, Len - DataLen); } }
    }

    /// <summary>The head buffer's address (pinned pool memory), for per-packet header parsing without span bounds
    /// checks. Callers stay within what they made linear (MayPull) and re-read it after anything that may replace
    /// the head (MayPull on a shared head, UnshareHead).</summary>
    internal unsafe byte* HeadAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => HeadPtr;
    }

    /// <summary>skb->data as an address; see <see cref="HeadAddress"/>.</summary>
    internal unsafe byte* DataAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => HeadPtr + Data;
    }

    private unsafe byte* HeadPtr
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if (_head == null) ThrowNoHead();
            return _head;
        }
    }

    private static void ThrowNoHead() => throw new NullReferenceException("skb has no head buffer");

    public ref SkbFrag Frag(int i)
    {
        if ((uint)i >= (uint)NrFrags) throw new ArgumentOutOfRangeException(nameof(i));
        return ref _frags[i];
    }

    public Span<byte> FragData(int i) => Frag(i).Span;

    // ---- skb_reserve / skb_put / skb_push / skb_pull ----

    /// <summary>skb_reserve: move data and tail forward on an empty skb to make headroom.</summary>
    public void Reserve(int n)
    {
        if (Len != 0) throw new InvalidOperationException("skb_reserve on a non-empty skb");
        if (n < 0 || Data + n > End) throw new InvalidOperationException("skb_reserve past the end of the head");
        Data += n;
    }

    /// <summary>skb_put: extend the linear data at the tail; returns the new bytes. Over-running the head is a
    /// bug (skb_over_panic) and throws.</summary>
    public Span<byte> Put(int n)
    {
        if (DataLen != 0) throw new InvalidOperationException("skb_put on a non-linear skb");
        int tail = Tail;
        if (n < 0 || tail + n > End) throw new InvalidOperationException($"skb_over_panic: put {n} with tailroom {End - tail}");
        Len += n;
        return HeadPool!.Slice(HeadIndex, tail, n);
    }

    /// <summary>skb_push: extend the data at the front into the headroom; returns the new front. Running out of
    /// headroom is a bug (skb_under_panic) and throws.</summary>
    public Span<byte> Push(int n)
    {
        if (n < 0 || n > Data) throw new InvalidOperationException($"skb_under_panic: push {n} with headroom {Data}");
        Data -= n;
        Len += n;
        return HeadPool!.Slice(HeadIndex, Data, n);
    }

    /// <summary>skb_pull: remove <paramref name="n"/> bytes from the front of the linear data. False (nothing
    /// changed) if fewer linear bytes exist: the caller should <see cref="MayPull"/> first.</summary>
    public bool Pull(int n)
    {
        if ((uint)n > (uint)HeadLen) return false;
        Data += n;
        Len -= n;
        return true;
    }

    /// <summary>pskb_may_pull: make sure the first <paramref name="n"/> bytes are linear, copying them from the
    /// page frags into the head's tailroom if needed (__pskb_pull_tail). False if the skb is shorter, the head
    /// has no room, or the bytes would come from the frag_list.</summary>
    public bool MayPull(int n)
    {
        int headLen = HeadLen;
        if (n <= headLen) return true;
        if (n > Len) return false;
        int need = n - headLen;
        if (End - Tail < need) return false;
        int inFrags = 0;
        for (int i = 0; i < NrFrags && inFrags < need; i++) inFrags += _frags[i].Size;
        if (inFrags < need) return false;
        if (HeadShared && !UnshareHead()) return false;

        Span<byte> dst = HeadPool!.Slice(HeadIndex, Tail, need);
        int copied = 0, eaten = 0;
        while (copied < need)
        {
            ref SkbFrag f = ref _frags[eaten];
            int take = Math.Min(f.Size, need - copied);
            f.Span.Slice(0, take).CopyTo(dst.Slice(copied));
            copied += take;
            if (take == f.Size)
            {
                f.Pool!.Return(f.Index);
                eaten++;
            }
            else
            {
                f.Offset += take;
                f.Size -= take;
            }
        }
        if (eaten > 0)
        {
            for (int i = eaten; i < NrFrags; i++) _frags[i - eaten] = _frags[i];
            for (int i = NrFrags - eaten; i < NrFrags; i++) _frags[i] = default;
            NrFrags -= eaten;
        }
        DataLen -= need; // Len unchanged: the bytes moved from the paged part to the linear part
        return true;
    }

    /// <summary>pskb_expand_head without growth: give this skb a private copy of its head from
    /// <paramref name="pool"/> (default: the current head's pool; must have buffers at least as large), at the same
    /// offsets so header offsets stay valid, and drop its reference on the shared head. True if the head was not
    /// shared or the copy succeeded; false if no buffer was free (nothing changed).</summary>
    public bool UnshareHead(PagePool? pool = null)
    {
        if (!HeadShared) return true;
        pool ??= HeadPool!;
        if (pool.BufferSize < End) throw new ArgumentException("head pool buffers too small", nameof(pool));
        if (!pool.TryRent(out int index)) return false;
        // Copy headroom too: pushed-back headers (MAC after a pull) stay readable.
        HeadPool!.Slice(HeadIndex, 0, Tail).CopyTo(pool.Buffer(index));
        HeadPool.Return(HeadIndex);
        SetHead(pool, index);
        End = Math.Min(End, pool.BufferSize);
        return true;
    }

    /// <summary>pskb_trim: cut the packet to <paramref name="len"/> bytes (e.g. Ethernet padding after the IP
    /// total length), dropping frags and frag_list members past the cut.</summary>
    public void Trim(int len)
    {
        if (len < 0) throw new ArgumentOutOfRangeException(nameof(len));
        if (len >= Len) return;
        int headLen = HeadLen;
        if (len <= headLen)
        {
            ReleaseFrags(0);
            FreeFragList();
            DataLen = 0;
            Len = len;
            return;
        }
        int remaining = len - headLen;
        int i = 0;
        for (; i < NrFrags && remaining > 0; i++)
        {
            ref SkbFrag f = ref _frags[i];
            if (f.Size >= remaining) f.Size = remaining;
            remaining -= f.Size;
        }
        ReleaseFrags(i);
        if (remaining == 0)
        {
            FreeFragList();
        }
        else
        {
            Skb? prev = null;
            Skb? m = FragList;
            while (m != null && remaining > 0)
            {
                if (m.Len > remaining) m.Trim(remaining);
                remaining -= m.Len;
                prev = m;
                m = m.Next;
            }
            // m and what follows lie past the cut.
            if (prev != null) prev.Next = null;
            _fragListTail = prev;
            while (m != null)
            {
                Skb? next = m.Next;
                m.Next = null;
                m.Free();
                m = next;
            }
        }
        DataLen = len - headLen;
        Len = len;
    }

    // ---- frags and frag_list ----

    /// <summary>skb_add_rx_frag: append a slice of a pool buffer as the next frag. The skb takes over one
    /// reference the caller holds on the buffer. False (nothing taken) when all <see cref="MaxFrags"/> are used.</summary>
    public bool AddFrag(PagePool pool, int index, int offset, int size, int trueSize)
    {
        if (NrFrags >= MaxFrags) return false;
        if (offset < 0 || size < 0 || offset + size > pool.BufferSize) throw new ArgumentOutOfRangeException(nameof(size));
        ref SkbFrag f = ref _frags[NrFrags++];
        f.Pool = pool;
        f.Index = index;
        f.Offset = offset;
        f.Size = size;
        Len += size;
        DataLen += size;
        TrueSize += trueSize;
        return true;
    }

    /// <summary>Chain a whole skb on the frag_list (as skb_gro_receive_list does); its bytes count in this one's
    /// len and data_len from now on and it is freed with this skb.</summary>
    public void AppendFragList(Skb member)
    {
        if (member == this || member.Next != null || member.InPool) throw new InvalidOperationException("frag_list member must be a live, unlinked skb");
        LinkFragList(member);
        Len += member.Len;
        DataLen += member.Len;
        TrueSize += member.TrueSize;
    }

    /// <summary>Takes the whole frag_list chain off this skb (ip_fraglist_init's skb_frag_list_init): the members
    /// stay linked by <see cref="Next"/> and belong to the caller; this skb's lengths and truesize drop by theirs.
    /// Null when there is none.</summary>
    public Skb? DetachFragList()
    {
        Skb? first = FragList;
        if (first == null) return null;
        int len = 0, truesize = 0;
        for (Skb? m = first; m != null; m = m.Next)
        {
            len += m.Len;
            truesize += m.TrueSize;
        }
        FragList = _fragListTail = null;
        Len -= len;
        DataLen -= len;
        TrueSize -= truesize;
        return first;
    }

    internal void LinkFragList(Skb member)
    {
        if (_fragListTail == null) FragList = member;
        else _fragListTail.Next = member;
        _fragListTail = member;
    }

    /// <summary>Adjust lengths after a frag or frag_list member was grown/shrunk in place by the caller
    /// (GRO updates of a held skb).</summary>
    public void AddNonlinearLen(int delta, int trueSizeDelta = 0)
    {
        Len += delta;
        DataLen += delta;
        TrueSize += trueSizeDelta;
    }

    // ---- GRO merging (skb_gro_receive) ----

    /// <summary>skb_gro_receive when the headers end inside or at the end of the linear part and the head is a
    /// page fragment: the head (from <paramref name="offset"/> on) becomes a frag of <paramref name="lp"/>,
    /// followed by this skb's own frags. Afterwards this skb owns nothing and is freed as an empty shell
    /// (NAPI_GRO_FREE_STOLEN_HEAD). Returns the bytes moved, or -1 when lp has no room for them.</summary>
    public int GroStealHeadInto(Skb lp, int offset)
    {
        PagePool? headPool = HeadPool;
        if (!HeadFrag || headPool is null || offset > HeadLen) return -1;
        if (lp.NrFrags + 1 + NrFrags > MaxFrags) return -1;
        int moved = Len - offset;
        ref SkbFrag f = ref lp._frags[lp.NrFrags++];
        f.Pool = headPool;
        f.Index = HeadIndex;
        f.Offset = Data + offset;
        f.Size = HeadLen - offset;
        for (int i = 0; i < NrFrags; i++)
        {
            lp._frags[lp.NrFrags++] = _frags[i];
            _frags[i] = default;
        }
        lp.Len += moved;
        lp.DataLen += moved;
        lp.TrueSize += TrueSize;
        NrFrags = 0;
        ClearHead();
        Len = DataLen = 0;
        return moved;
    }

    /// <summary>skb_gro_receive when all headers sit in the linear part and the payload is in frags
    /// (headlen &lt;= offset): the frags move to <paramref name="lp"/>, the first trimmed by what of the headers
    /// it holds. This skb keeps its head and is freed normally (NAPI_GRO_FREE). Returns the bytes moved, or -1.</summary>
    public int GroGiveFragsTo(Skb lp, int offset)
    {
        int headLen = HeadLen;
        if (offset < headLen || NrFrags == 0) return -1;
        if (lp.NrFrags + NrFrags > MaxFrags) return -1;
        int eat = offset - headLen;
        if (eat > _frags[0].Size) return -1;
        int moved = 0;
        for (int i = 0; i < NrFrags; i++)
        {
            SkbFrag f = _frags[i];
            if (i == 0)
            {
                f.Offset += eat;
                f.Size -= eat;
            }
            lp._frags[lp.NrFrags++] = f;
            moved += f.Size;
            _frags[i] = default;
        }
        lp.Len += moved;
        lp.DataLen += moved;
        NrFrags = 0;
        Len -= DataLen;
        DataLen = 0;
        return moved;
    }

    /// <summary>The frag_list fallback of skb_gro_receive: drop the first <paramref name="offset"/> bytes
    /// (headers) so the skb holds only payload and can be chained on a frag_list. False if the headers run past
    /// the first frag.</summary>
    public bool GroPullHeaders(int offset)
    {
        int headLen = HeadLen;
        if (offset > headLen)
        {
            int eat = offset - headLen;
            if (NrFrags == 0 || eat > _frags[0].Size) return false;
            _frags[0].Offset += eat;
            _frags[0].Size -= eat;
            DataLen -= eat;
            Len -= eat;
            offset = headLen;
        }
        return Pull(offset);
    }

    // ---- copying ----

    /// <summary>skb_copy_bits: copy <c>to.Length</c> bytes starting at <paramref name="offset"/> (from skb->data)
    /// across the linear part, the frags and the frag_list. False if the range is outside the packet.</summary>
    public bool CopyBits(int offset, Span<byte> to)
    {
        if (offset < 0 || offset > Len - to.Length) return false;
        int headLen = HeadLen;
        if (offset < headLen)
        {
            int n = Math.Min(headLen - offset, to.Length);
            HeadPool!.Slice(HeadIndex, Data + offset, n).CopyTo(to);
            to = to.Slice(n);
            offset = 0;
        }
        else offset -= headLen;

        for (int i = 0; i < NrFrags && to.Length > 0; i++)
        {
            ref SkbFrag f = ref _frags[i];
            if (offset >= f.Size) { offset -= f.Size; continue; }
            int n = Math.Min(f.Size - offset, to.Length);
            f.Pool!.Slice(f.Index, f.Offset + offset, n).CopyTo(to);
            to = to.Slice(n);
            offset = 0;
        }

        for (Skb? m = FragList; m != null && to.Length > 0; m = m.Next)
        {
            if (offset >= m.Len) { offset -= m.Len; continue; }
            int n = Math.Min(m.Len - offset, to.Length);
            if (!m.CopyBits(offset, to.Slice(0, n))) return false;
            to = to.Slice(n);
            offset = 0;
        }
        return to.Length == 0;
    }

    /// <summary>Copy the whole packet (from skb->data) to <paramref name="destination"/>; false if it is too small.</summary>
    public bool CopyTo(Span<byte> destination)
        => destination.Length >= Len && CopyBits(0, destination.Slice(0, Len));

    // ---- lifetime ----

    /// <summary>kfree_skb / consume_skb: drop the references on the head and frag buffers, free the frag_list
    /// members, and return this skb to its pool. The caller must have unlinked it from any list.</summary>
    public void Free() => Free(Thread.CurrentThread);

    /// <summary><see cref="Free()"/> for a caller that knows it runs on <paramref name="current"/> (the NAPI
    /// context looks its thread up once per poll, not per packet): one lookup serves every pool owner check.</summary>
    internal void Free(Thread current)
    {
        if (InPool) throw new InvalidOperationException("double free of an skb");
        HeadPool?.Return(HeadIndex, current);
        if (NrFrags != 0) ReleaseFrags(0, current);
        if (FragList != null) FreeFragList(current);
        ResetFields();
        Owner.Recycle(this, current);
    }

    /// <summary>Checks the length bookkeeping; for tests and debug assertions.</summary>
    public bool Validate(out string? problem)
    {
        problem = null;
        int frags = 0;
        for (int i = 0; i < NrFrags; i++)
        {
            if (_frags[i].Pool is null || _frags[i].Size < 0) { problem = $"frag {i} empty"; return false; }
            frags += _frags[i].Size;
        }
        int list = 0;
        for (Skb? m = FragList; m != null; m = m.Next)
        {
            if (!m.Validate(out var inner)) { problem = "frag_list member: " + inner; return false; }
            list += m.Len;
        }
        if (DataLen != frags + list) problem = $"data_len {DataLen} != frags {frags} + frag_list {list}";
        else if (HeadLen < 0) problem = $"headlen {HeadLen} < 0";
        else if (Data < 0 || Tail > End) problem = $"data {Data} tail {Tail} end {End} out of the head";
        else if (Len != HeadLen + DataLen) problem = "len != headlen + data_len";
        return problem is null;
    }

    internal void InitHead(PagePool pool, int index, int data, int len)
    {
        InPool = false;
        SetHead(pool, index);
        End = pool.BufferSize;
        Data = data;
        Len = len;
        DataLen = 0;
        TrueSize = pool.BufferSize;
        HeadFrag = true;
    }

    /// <summary>Share <paramref name="src"/>'s head, frags and lengths (the data part of skb_clone); takes a
    /// reference on each buffer. The frag_list is handled by the caller.</summary>
    internal void ShareDataOf(Skb src)
    {
        InitHead(src.HeadPool!, src.HeadIndex, src.Data, src.Len);
        src.HeadPool!.AddRef(src.HeadIndex);
        End = src.End;
        TrueSize = src.TrueSize;
        HeadFrag = src.HeadFrag;
        for (int i = 0; i < src.NrFrags; i++)
        {
            ref SkbFrag f = ref src._frags[i];
            f.Pool!.AddRef(f.Index);
            _frags[i] = f;
        }
        NrFrags = src.NrFrags;
        // Until the frag_list clones are linked, data_len also counts them, which Free does not mind.
        DataLen = src.DataLen;
    }

    /// <summary>__copy_skb_header: every metadata field, not the data.</summary>
    internal void CopyMetaFrom(Skb src)
    {
        MacHeader = src.MacHeader;
        NetworkHeader = src.NetworkHeader;
        TransportHeader = src.TransportHeader;
        Hash = src.Hash;
        HashType = src.HashType;
        Mark = src.Mark;
        TimestampNs = src.TimestampNs;
        QueueMapping = src.QueueMapping;
        Protocol = src.Protocol;
        PktType = src.PktType;
        Ifindex = src.Ifindex;
        VlanTci = src.VlanTci;
        VlanProto = src.VlanProto;
        IpSummed = src.IpSummed;
        Csum = src.Csum;
        CsumLevel = src.CsumLevel;
        Gro = src.Gro;
        Gro.Last = null;
        IpOpt = src.IpOpt;
        GsoSize = src.GsoSize;
        GsoSegs = src.GsoSegs;
        GsoType = src.GsoType;
        CsumStart = src.CsumStart;
        CsumOffset = src.CsumOffset;
        Encapsulation = src.Encapsulation;
        InnerProtocol = src.InnerProtocol;
        InnerMacHeader = src.InnerMacHeader;
        InnerNetworkHeader = src.InnerNetworkHeader;
        InnerTransportHeader = src.InnerTransportHeader;
        Conntrack = src.Conntrack;
        CtInfo = src.CtInfo;
        NfBridgePhysIn = src.NfBridgePhysIn;
        NfBridgePhysOut = src.NfBridgePhysOut;
        Dev = src.Dev;
        Dst = src.Dst;
        Id = src.Id;
        TraceId = src.TraceId;
        Priority = src.Priority;
    }

    private void ReleaseFrags(int from) => ReleaseFrags(from, Thread.CurrentThread);

    private void ReleaseFrags(int from, Thread current)
    {
        for (int i = from; i < NrFrags; i++)
        {
            ref SkbFrag f = ref _frags[i];
            f.Pool!.Return(f.Index, current);
            f = default;
        }
        if (from < NrFrags) NrFrags = from;
    }

    private void FreeFragList() => FreeFragList(Thread.CurrentThread);

    private void FreeFragList(Thread current)
    {
        Skb? m = FragList;
        FragList = null;
        _fragListTail = null;
        while (m != null)
        {
            Skb? next = m.Next;
            m.Next = null;
            m.Free(current);
            m = next;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe void SetHead(PagePool pool, int index)
    {
        if (!ReferenceEquals(_headPool, pool)) _headPool = pool;
        HeadIndex = index;
        _head = pool.BufferPointer(index);
        _headSize = pool.BufferSize;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe void ClearHead()
    {
        HeadIndex = -1;
        _head = null;
        _headSize = 0;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per packet, from Free
    private void ResetFields()
    {
        InPool = true;
        ClearHead();
        _m = default;
        FragList = _fragListTail = null;
        Next = Prev = null;
        MacHeader = NetworkHeader = TransportHeader = Unset;
        Gro = default;
        IpOpt = default;
        Conntrack = null;
        NfBridgePhysIn = NfBridgePhysOut = null;
        Dev = null;
        Dst = null;
    }
}
