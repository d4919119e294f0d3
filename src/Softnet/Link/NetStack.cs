using Softnet.Capture;
using Softnet.Neigh;
using Softnet.Netfilter;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Link;

/// <summary>
/// The core of the receive path above the NIC for a set of namespaces (net/core/dev.c): the backlog that
/// netif_rx feeds (frames crossing a veth, passed up by a bridge, looped back), __netif_receive_skb_core with
/// its rx_handler (bridge ports) and protocol demux by EtherType, and dev_queue_xmit. One skb travels the whole
/// way: the NIC path's skb, or one this stack allocates from its own pools for frames it generates.
/// <para>Single-threaded (deterministic replay): the backlog is one FIFO, so the path never recurses. With RPS/RFS
/// set on a device (<see cref="RpsSteering"/>), what netif_rx steers to another CPU waits in that CPU's backlog instead
/// and goes up when that CPU's round polls it (<see cref="ReceiveQueued"/>).</para>
/// </summary>
public sealed class NetStack
{
    private readonly IReadOnlyList<Namespace> _namespaces;
    private readonly Queue<BacklogEntry> _backlog = new();
    private PacketContext[] _nf = new PacketContext[16];
    private readonly Stack<int> _nfFree = new();
    private int _nfUsed;
    private readonly byte[] _scratch = new byte[256 * 1024];
    private long _now;
    private long _nextId;

    /// <summary>A frame of the queue, with the CPU that queued it (null without steering): it goes up there.</summary>
    /// <param name="Bucket">The receiving namespace's conntrack bucket asked for at netif_rx (-1: none): its first entry
    /// is asked for when the frame leaves the queue, the bucket having landed by then.</param>
    private readonly record struct BacklogEntry(Device Dev, Skb Skb, int NfSlot, Napi.SoftnetCpu? Cpu = null, int Bucket = -1);

    public NetStack(IReadOnlyList<Namespace> namespaces, int localBuffers = 256)
    {
        _namespaces = namespaces;
        // Frames this stack makes (ARP, ICMP errors, resets) and frames handed in as bytes: small buffers for the
        // common case, a few 64 KB ones for GSO-sized frames.
        LocalPages = new PagePool(localBuffers, 2048, 256, "local_skbs");
        LocalSkbs = new SkbPool(localBuffers + 64 + 256, "local_skb_cache");
        foreach (var ns in namespaces) ns.Netfilter.Clock = Clock;
    }

    /// <summary>Per-stage CPU time of sampled packets.</summary>
    public StageClock Clock { get; } = new();

    public IReadOnlyList<Namespace> Namespaces => _namespaces;
    public PagePool LocalPages { get; }
    /// <summary>A few 64 KB buffers for GSO-sized frames, made on first use.</summary>
    public PagePool LargePages => _large ??= new PagePool(32, 65536 + 1024, 256, "local_large");
    private PagePool? _large;
    public SkbPool LocalSkbs { get; }
    /// <summary>The replay clock (ns): the current frame's arrival time.</summary>
    public long Now => _now;
    /// <summary>IP ID of generated ICMP errors (the kernel's is random per destination).</summary>
    public ushort IcmpErrorIpId { get; set; }
    /// <summary>Frames lost because a local pool was exhausted.</summary>
    public long AllocFailed { get; private set; }

    /// <summary>inet_peer per (namespace, address), shared by ip_error, icmp_send and ip_rt_send_redirect.</summary>
    internal readonly Dictionary<(Namespace, uint), Ip.InetPeer> InetPeers = new();

    /// <summary>IPv6 inet_peer tokens per (namespace, address) (net->ipv6.peers: icmpv6_xrlim_allow).</summary>
    internal readonly Dictionary<(Namespace, UInt128), (long Tokens, long LastMs)> InetPeers6 = new();

    // ---------------- entry points ----------------

    /// <summary>A frame arrives on <paramref name="dev"/> from outside the scenario (the NIC path): its skb, data at
    /// the MAC header. The stack owns it from here.</summary>
    public void Receive(Device dev, Skb skb, long timestampNs)
    {
        AdvanceClock(timestampNs);
        if (skb.Id == 0) skb.Id = ++_nextId;
        skb.TimestampNs = timestampNs;
        // The device's own receive (the kernel harness's veth: netif_rx) may steer the frame to another CPU.
        if (RpsSteering?.TrySteerWire(dev, skb) != true && EnqueueLocal(dev, skb, -1)) _wireFrame = true;
        FinishFrame();
    }

    /// <summary>A frame from a CPU's backlog goes up on the CPU polling it (process_backlog → __netif_receive_skb),
    /// at <paramref name="nowNs"/> on the stack's clock; what it sends through netif_rx follows on that CPU.</summary>
    internal void ReceiveQueued(Device dev, Skb skb, int nfSlot, long nowNs)
    {
        AdvanceClock(nowNs);
        Clock.Begin(Stage.Link, StageFrames.LinkBacklog);
        ReceiveSkb(dev, skb, nfSlot);
        Clock.End();
        if (nfSlot >= 0) ReleaseNf(nfSlot);
        FinishFrame();
    }

    /// <summary>A frame netif_rx could not queue (enqueue_to_backlog over netdev_max_backlog or the flow limit).</summary>
    internal void DropQueued(Device dev, Skb skb, int nfSlot, DropReason reason)
    {
        if (nfSlot >= 0) ReleaseNf(nfSlot);
        Drop(dev.Namespace, skb, reason);
    }

    /// <summary>The rest of a frame's softirq work: the queue it filled, the readers it woke, the conntrack slab.</summary>
    private void FinishFrame()
    {
        Drain();
        if (_woken.Count > 0 && !DeferReaders) RunReaders();
        // Nothing is in flight now (unless frames wait in other CPUs' backlogs): conntrack entries deleted on the way
        // can go back to the slab.
        if (RpsSteering is { AnyQueued: true }) return;
        for (int i = 0; i < _namespaces.Count; i++)
        {
            _namespaces[i].Netfilter.Conntrack.Quiesce();
            _namespaces[i].Netfilter6?.Conntrack6.Quiesce();
        }
    }

    /// <summary>Runs timers due up to <paramref name="nowNs"/> (ARP retransmits, resolution failure).</summary>
    public void AdvanceClock(long nowNs)
    {
        long target = Math.Max(_now, nowNs);
        // Neighbour and reassembly timers in expiry order across kinds (what each sends is stamped with its time).
        for (int guard = 0; guard < 1_000_000; guard++)
        {
            long t = Math.Min(NeighTimerDue, Math.Min(DefragTimerDue, Defrag6TimerDue));
            if (Addrconf6 is { } ac) t = Math.Min(t, ac.Due);
            if (t > nowNs) break;
            Addrconf6?.Run(this, t);
            NeighTimers.Run(this, t);
            Ip.Ipv4Defrag.RunTimers(this, t);
            Ip.Ipv6Defrag.RunTimers(this, t);
        }
        if (_tcpTimers.Count > 0) RunTcpTimers(nowNs);
        _now = target;
    }

    /// <summary>IPv6 bring-up (MLD, DAD, router solicitation) once a device was brought up through it, else null.</summary>
    public Ip.Ipv6Addrconf? Addrconf6 { get; internal set; }

    /// <summary>The earliest neighbour timer (long.MaxValue: none armed); the timer scan runs only once it is due.</summary>
    internal long NeighTimerDue = long.MaxValue;

    internal void ArmNeighTimer(long ns)
    {
        if (ns < NeighTimerDue) NeighTimerDue = ns;
    }

    /// <summary>The earliest reassembly queue expiry of any namespace (long.MaxValue: none).</summary>
    internal long DefragTimerDue = long.MaxValue;

    internal void ArmDefragTimer(long ns)
    {
        if (ns < DefragTimerDue) DefragTimerDue = ns;
    }

    /// <summary>The earliest IPv6 reassembly queue expiry of any namespace (long.MaxValue: none).</summary>
    internal long Defrag6TimerDue = long.MaxValue;

    internal void ArmDefrag6Timer(long ns)
    {
        if (ns < Defrag6TimerDue) Defrag6TimerDue = ns;
    }

    /// <summary>A timer runs at its own expiry time: what it sends is stamped with it.</summary>
    internal void SetClock(long ns) => _now = ns;

    /// <summary>End of the replay: drains what is in flight.</summary>
    public void Finish()
    {
        Drain();
        if (_woken.Count > 0) RunReaders();
        // The kernel's delayed ACKs still pending at the end go out within the harness's settling time.
        if (_tcpTimers.Count > 0) RunTcpTimers(_now + FinishTimersNs);
    }

    /// <summary>How far past the last frame <see cref="Finish"/> runs TCP timers (delayed ACKs: at most 200 ms).</summary>
    public const long FinishTimersNs = 250_000_000;

    // ---------------- TCP timers (delayed ACK, retransmission) ----------------

    private readonly List<Transport.TcpSock> _tcpTimers = new();

    internal void ArmTcpTimer(Transport.TcpSock s)
    {
        if (!_tcpTimers.Contains(s)) _tcpTimers.Add(s);
    }

    /// <summary>Fires, in expiry order, every TCP timer (delayed ACK, SYN-ACK and FIN retransmission) due by
    /// <paramref name="until"/>, each at its own time.</summary>
    private void RunTcpTimers(long until)
    {
        while (true)
        {
            Transport.TcpSock? first = null;
            for (int i = _tcpTimers.Count - 1; i >= 0; i--)
            {
                var s = _tcpTimers[i];
                if (s.NextTimerNs == long.MaxValue) { _tcpTimers.RemoveAt(i); continue; }
                if (first == null || s.NextTimerNs < first.NextTimerNs) first = s;
            }
            if (first == null || first.NextTimerNs > until) return;
            if (first.NextTimerNs > _now) _now = first.NextTimerNs;
            first.RunTimers(this);
            Drain();
        }
    }

    // ---------------- socket readers ----------------

    private readonly List<Transport.Sock> _woken = new();

    /// <summary>Readers run only when <see cref="RunReaders"/> is called (an application that lags behind the
    /// softirq), not after every frame.</summary>
    public bool DeferReaders { get; set; }

    /// <summary>sk_data_ready: the socket's reader has something to read; it runs once this frame's softirq work is
    /// done.</summary>
    /// <summary>The rps_sock_flow_table readers record into when RFS is on (set by the steering stage).</summary>
    public Steering.RpsSockFlowTable? RpsSockFlows { get; set; }

    /// <summary>Readers with a CPU run as tasks on the engine's CPUs (deterministic mode), or null: every reader runs
    /// once the frame's softirq work is done.</summary>
    public Transport.SocketReaderCpus? ReaderCpus { get; set; }

    internal void WakeReader(Transport.Sock s)
    {
        if (s.Cpu >= 0 && !s.ReaderWoken) s.NoteWake(Napi.NapiEngine.ProcessorId == s.Cpu);
        if (ReaderCpus is { } cpus && cpus.TryWake(s, _now)) return;
        if (s.ReaderWoken) return;
        s.ReaderWoken = true;
        _woken.Add(s);
    }

    /// <summary>The reader of <paramref name="s"/> reads; recvmsg's sock_rps_record_flow tells RFS the CPU it ran on.</summary>
    internal void ReadNow(Transport.Sock s)
    {
        if (ReaderCpus is null && RpsSteering is { } st)
        {
            // A reader with a CPU reads there: what it sends is netif_rx'd on that CPU.
            var prev = st.RunOn(s.Cpu);
            s.Read(this);
            st.Return(prev);
        }
        else s.Read(this);
        if (RpsSockFlows is { } rfs && s.Cpu >= 0) rfs.Record(s.RxHash, s.Cpu);
    }

    /// <summary>The woken readers read (in wake order); what they send (a TCP FIN on close) goes through the stack
    /// before the next frame arrives.</summary>
    public void RunReaders()
    {
        while (_woken.Count > 0)
        {
            for (int i = 0; i < _woken.Count; i++)
            {
                var s = _woken[i];
                s.ReaderWoken = false;
                ReadNow(s);
            }
            _woken.Clear();
            Drain();
        }
    }

    // ---------------- backlog (netif_rx / process_backlog) ----------------

    /// <summary>net.core.netdev_max_backlog: enqueue_to_backlog refuses a frame while more than this many wait in
    /// input_pkt_queue (those netif_rx queued since process_backlog last spliced it into its process queue).</summary>
    public int NetdevMaxBacklog { get; set; } = 1000;
    /// <summary>Frames the netif_rx backlog refused (softnet_stat's dropped; SKB_DROP_REASON_CPU_BACKLOG).</summary>
    public long BacklogDropped { get; private set; }
    private BacklogQueueLimit _backlogLimit;

    /// <summary>RPS/RFS on netif_rx (null: every frame stays on this stack's own queue).</summary>
    public Steering.NetifRxSteering? RpsSteering { get; set; }

    /// <summary>netif_rx: queue a frame (data at the MAC header) for receive on <paramref name="dev"/>: on another
    /// CPU's backlog when the device's RPS/RFS settings steer it there, else on this stack's own queue.</summary>
    public void NetifRx(Device dev, Skb skb, int nfSlot = -1)
    {
        if (RpsSteering is { } st && st.TrySteer(dev, skb, nfSlot)) return;
        // A hint (no kernel counterpart): the frame goes up once the current one has unwound, through the receiving
        // namespace's hooks to nf_conntrack_in; its bucket is asked of memory now (a veth peer's, a decapsulated one's).
        int bucket = dev.Namespace.HasIptables ? dev.Namespace.Netfilter.Conntrack.PrefetchForFrame(skb.LinearData) : -1;
        EnqueueLocal(dev, skb, nfSlot, bucket);
    }

    /// <summary>enqueue_to_backlog on this stack's own queue, within netdev_max_backlog: false when refused (dropped).</summary>
    private bool EnqueueLocal(Device dev, Skb skb, int nfSlot, int bucket = -1)
    {
        if (!_backlogLimit.Admit(NetdevMaxBacklog))
        {
            // The frame never reaches __netif_receive_skb: it counts as received and dropped in its namespace, and in
            // softnet_stat's dropped column of the CPU whose backlog refused it (enqueue_to_backlog's sd->dropped).
            BacklogDropped++;
            RpsSteering?.Current?.AddDropped(1);
            if (nfSlot >= 0) ReleaseNf(nfSlot);
            dev.Namespace.Counters.Received++;
            Drop(dev.Namespace, skb, DropReason.CpuBacklog);
            return false;
        }
        _backlog.Enqueue(new BacklogEntry(dev, skb, nfSlot, RpsSteering?.Current, bucket));
        return true;
    }

    private bool _wireFrame;

    internal void Drain()
    {
        while (_backlogLimit.Next(_backlog.Count))
        {
            var e = _backlog.Dequeue();
            if (e.Bucket >= 0) e.Dev.Namespace.Netfilter.Conntrack.PrefetchEntry(e.Bucket);
            // The first frame of a Receive came from the NIC (ice's poll); the rest through netif_rx (process_backlog).
            bool wire = _wireFrame;
            Clock.Begin(Stage.Link, wire ? StageFrames.LinkWire : StageFrames.LinkBacklog);
            _wireFrame = false;
            if (RpsSteering is { } st && e.Cpu is { } cpu)
            {
                // A frame of the queue (not the NIC's own) counts in softnet_stat processed of the CPU that queued it,
                // and goes up there (a reader's ACK on the reader's CPU).
                if (!wire) cpu.AddProcessed(1);
                var prev = st.RunOn(cpu.Id);
                ReceiveSkb(e.Dev, e.Skb, e.NfSlot);
                st.Return(prev);
            }
            else ReceiveSkb(e.Dev, e.Skb, e.NfSlot);
            Clock.End();
            if (e.NfSlot >= 0) ReleaseNf(e.NfSlot);
        }
    }

    /// <summary>A netfilter context that travels with a frame through the backlog (br_netfilter's PREROUTING
    /// result and skb->_nfct for a frame the bridge passes up: ip_sabotage_in then skips the IP layer's hooks).</summary>
    public int TakeNf(in PacketContext ctx)
    {
        int slot;
        if (_nfFree.Count > 0) slot = _nfFree.Pop();
        else
        {
            if (_nfUsed == _nf.Length) Array.Resize(ref _nf, _nf.Length * 2);
            slot = _nfUsed++;
        }
        _nf[slot] = ctx;
        return slot;
    }

    public ref PacketContext NfSlot(int slot) => ref _nf[slot];

    private void ReleaseNf(int slot)
    {
        _nf[slot] = default;
        _nfFree.Push(slot);
    }

    // ---------------- receive (__netif_receive_skb_core) ----------------

    private void ReceiveSkb(Device dev, Skb skb, int nfSlot)
    {
        var ns = dev.Namespace;
        var c = ns.Counters;
        c.Received++;
        if (skb.TraceId != 0) PacketTracer.Current?.DeviceRx(skb, dev);
        if (!dev.Up) { Drop(ns, skb, DropReason.DeviceDown); return; }
        WriteTap(dev.RxTap, skb);
        dev.RxPackets++;
        dev.RxBytes += skb.Len;
        if (skb.Len < 14 || !skb.MayPull(14)) { Drop(ns, skb, DropReason.EthTruncated); return; }
        EthTypeTrans(dev, skb);
        if (dev.Master is { } master && master.Kind.PortReceive(this, master, dev, skb) == RxHandlerResult.Consumed) return;
        Deliver(dev, skb, nfSlot);
    }

    /// <summary>eth_type_trans: pkt_type from the destination MAC, protocol from the EtherType, data moved to the
    /// network header.</summary>
    public static void EthTypeTrans(Device dev, Skb skb)
    {
        EthernetView.TryParse(skb.LinearData, out var eth, out _);
        skb.Dev = dev;
        skb.ResetMacHeader();
        if (eth.IsMulticast)
            skb.PktType = eth.IsBroadcast ? PacketType.Broadcast : PacketType.Multicast;
        else
            skb.PktType = eth.Destination.SequenceEqual(dev.Mac) ? PacketType.Host : PacketType.OtherHost;
        skb.Protocol = eth.EtherType;
        skb.Pull(14);
        skb.ResetNetworkHeader();
    }

    public static readonly byte[] Broadcast = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

    /// <summary>The ptype demux: the handler registered for the frame's EtherType.</summary>
    internal void Deliver(Device dev, Skb skb, int nfSlot)
    {
        var handler = PacketHandler.Find(skb.Protocol);
        if (handler == null) { Drop(dev.Namespace, skb, DropReason.UnhandledProtocol); return; }
        Clock.Begin(handler.Stage, skb.Protocol == EtherTypes.Ipv6 ? StageFrames.Ipv6 : 0);
        handler.Receive(this, dev, skb, nfSlot);
        Clock.End();
    }

    // ---------------- transmit (dev_queue_xmit) ----------------

    /// <summary>dev_queue_xmit: the tx tap sees the frame (data at the MAC header), then the device's xmit.
    /// Returns a drop reason or None; the skb is gone either way.</summary>
    public DropReason Transmit(Device dev, Skb skb)
    {
        // dev_xmit_recursion: a virtual device whose transmit leads back into transmit (a tunnel routed through
        // another tunnel that routes back) is cut at XMIT_RECURSION_LIMIT, "Dead loop on virtual device".
        if (_xmitDepth >= XmitRecursionLimit)
        {
            dev.TxDropped++;
            skb.Free();
            return DropReason.RecursionLimit;
        }
        _xmitDepth++;
        Clock.Begin(Stage.Egress);
        int traceId = skb.TraceId;
        try
        {
            var r = TransmitCore(dev, skb);
            if (traceId != 0 && r != DropReason.None && r != Ip.Ipv4Output.Queued) PacketTracer.Current?.Drop(traceId, dev.Namespace, r);
            return r;
        }
        finally
        {
            Clock.End();
            _xmitDepth--;
        }
    }

    private const int XmitRecursionLimit = 8;
    private int _xmitDepth;

    private DropReason TransmitCore(Device dev, Skb skb)
    {
        if (!dev.Up) { dev.TxDropped++; skb.Free(); return DropReason.DeviceDown; }
        WriteTap(dev.TxTap, skb);
        dev.TxPackets++;
        dev.TxBytes += skb.Len;
        skb.Dev = dev;
        if (skb.TraceId != 0) PacketTracer.Current?.DeviceTx(skb, dev);
        return dev.Kind.Xmit(this, dev, skb);
    }

    /// <summary>skb_scrub_packet: what a frame loses when it crosses to another device (and, with
    /// <paramref name="xnet"/>, another namespace: the mark and the conntrack reference).</summary>
    public static void ScrubPacket(Skb skb, bool xnet)
    {
        skb.PktType = PacketType.Host;
        skb.Priority = 0;
        skb.Dst = null;
        skb.Conntrack = null;
        skb.CtInfo = 0;
        skb.NfBridgePhysIn = skb.NfBridgePhysOut = null;
        if (!xnet) return;
        skb.Mark = 0;
    }

    // ---------------- skbs ----------------

    /// <summary>alloc_skb for a frame of <paramref name="size"/> bytes with headroom for link headers.</summary>
    public Skb? AllocSkb(int size)
    {
        var pool = size <= LocalPages.DataSize ? LocalPages : LargePages;
        if (size > pool.DataSize) { AllocFailed++; return null; }
        var skb = LocalSkbs.Alloc(pool);
        if (skb == null) AllocFailed++;
        return skb;
    }

    /// <summary>An skb of <paramref name="size"/> bytes for a frame this stack writes in place (data at its start).</summary>
    public Skb? NewFrame(int size)
    {
        var skb = AllocSkb(size);
        if (skb == null) return null;
        skb.Put(size);
        skb.Id = ++_nextId;
        skb.TimestampNs = _now;
        return skb;
    }

    /// <summary>An skb holding <paramref name="frame"/> (a generated frame, data at its start).</summary>
    public Skb? SkbFrom(ReadOnlySpan<byte> frame)
    {
        var skb = AllocSkb(frame.Length);
        if (skb == null) return null;
        frame.CopyTo(skb.Put(frame.Length));
        if (skb.Id == 0) skb.Id = ++_nextId;
        skb.TimestampNs = _now;
        return skb;
    }

    /// <summary>skb_clone for a flooded copy; the receiving path unshares the head before changing it.</summary>
    public Skb? Clone(Skb skb)
    {
        var c = LocalSkbs.Clone(skb);
        if (c == null) AllocFailed++;
        return c;
    }

    /// <summary>The frame's bytes from data on, linear: the skb's own memory when it is linear, else a copy in
    /// the stack's scratch buffer (valid until the next call).</summary>
    public ReadOnlySpan<byte> Linearize(Skb skb)
    {
        if (!skb.IsNonlinear) return skb.LinearData;
        int n = Math.Min(skb.Len, _scratch.Length);
        skb.CopyBits(0, _scratch.AsSpan(0, n));
        return _scratch.AsSpan(0, n);
    }

    private void WriteTap(ICaptureWriter? tap, Skb skb)
    {
        if (tap == null) return;
        tap.Write(_now, Linearize(skb));
    }

    /// <summary>Pushes an Ethernet header (dev_hard_header / neigh_hh_output): data moves to the new MAC header.</summary>
    public static void PushEthernet(Skb skb, ReadOnlySpan<byte> dst, ReadOnlySpan<byte> src, ushort type)
    {
        EthernetView.Write(skb.Push(14), dst.IsEmpty ? 0 : EthernetView.ReadMac(dst), src.IsEmpty ? 0 : EthernetView.ReadMac(src), type);
        skb.ResetMacHeader();
        skb.Protocol = type;
    }

    /// <summary>The linear bytes from the network header to the tail, wherever data points (the IPv4 datagram
    /// netfilter reads and NAT rewrites; headers are linear, a GSO skb's payload may continue in frags).</summary>
    public static Span<byte> L3(Skb skb) => skb.HeadBuffer.Slice(skb.NetworkHeader, skb.Tail - skb.NetworkHeader);

    /// <summary>kfree_skb_reason: counted in the namespace, then freed.</summary>
    public static void Drop(Namespace ns, Skb skb, DropReason reason)
    {
        ns.Counters.Drops.Add(reason);
        if (skb.TraceId != 0) PacketTracer.Current?.Drop(skb.TraceId, ns, reason);
        skb.Free();
    }
}
