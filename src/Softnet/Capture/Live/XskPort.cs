using System.Buffers.Binary;
using Softnet.Xdp.Bpf;
using static Softnet.Capture.Live.LiveSyscalls;
using static Softnet.Capture.Live.XskSyscalls;

namespace Softnet.Capture.Live;

/// <summary>
/// A live port over AF_XDP (net/xdp/xsk.c): per device queue one XDP socket with its own UMEM of RingFrames*2 chunks
/// (half kept on the FILL ring for the kernel to receive into, half a free list for transmit), its four rings mapped
/// from the kernel, and one XDP program on the interface, <c>bpf_redirect_map(&amp;xsks, ctx-&gt;rx_queue_index,
/// XDP_PASS)</c> over an XSKMAP of the sockets, built here from raw instructions and attached by a BPF link (closing
/// the link detaches it). The kernel picks zero-copy when the driver supports it and copies otherwise (veth copies).
/// Received frames stay in the UMEM until <see cref="Release"/> puts their chunks back on the FILL ring.
/// </summary>
public sealed unsafe class XskPort : ILivePort
{
    /// <summary>One mapped ring: the kernel's producer, consumer and flags words and the descriptor array
    /// (struct xdp_ring_offset). Our side's index is cached so the shared word is written once per batch.</summary>
    private struct Ring
    {
        public nint Map;
        public nuint MapLen;
        public uint* Producer, Consumer, Flags;
        public byte* Desc;
        public uint Mask;
        public uint Cached;
    }

    private sealed class Queue
    {
        public int Fd = -1;
        public byte* Umem;
        public nuint UmemLen;
        public Ring Fill, Comp, Rx, Tx;
        public bool ZeroCopy;
        /// <summary>UMEM addresses of frames handed out by Receive and not yet released.</summary>
        public ulong[] Pending = [];
        public int PendingCount;
        /// <summary>Free TX chunks, and the length queued in each TX chunk (for TxBytes on completion).</summary>
        public ulong[] TxFree = [];
        public int TxFreeCount;
        public int[] TxLen = [];
        public uint TxPublished;
        public long RxPackets, RxBytes, TxPackets, TxBytes, TxRingFull, TxErrors;
    }

    private readonly Queue[] _q;
    private readonly int _frameSize, _ringFrames;
    private readonly ulong _chunkMask;
    private readonly byte[] _ifname;
    private readonly PollFd[] _pollFds;
    private readonly byte[] _nlBuf = new byte[16384];
    private readonly object _linkLock = new();
    private int _mapFd = -1, _progFd = -1, _linkFd = -1, _inetFd = -1, _nlFd = -1, _lockFd = -1;
    private bool _lastUp;
    private long _linkDownEvents;
    private bool _disposed;

    public LivePortKind Kind => LivePortKind.Xdp;
    public string Interface { get; }
    public int Ifindex { get; }
    public int Queues => _q.Length;
    /// <summary>How the redirect program is attached: "native" (the driver's XDP hook) or "generic" (skb mode).</summary>
    public string XdpMode { get; private set; } = "";
    /// <summary>True when the kernel bound every socket in zero-copy mode (XDP_OPTIONS); false when it copies.</summary>
    public bool ZeroCopy => _q.All(q => q.ZeroCopy);

    private XskPort(LivePortOptions o, int ifindex)
    {
        Interface = o.Interface;
        Ifindex = ifindex;
        _frameSize = o.FrameSize;
        _ringFrames = o.RingFrames;
        _chunkMask = ~(ulong)(o.FrameSize - 1);
        _q = new Queue[o.Queues];
        for (int i = 0; i < _q.Length; i++) _q[i] = new Queue();
        _pollFds = new PollFd[o.Queues + 1];
        _ifname = IfName(o.Interface);
    }

    /// <summary>Opens the port: the interface lock, one bound XDP socket per queue and the attached redirect program,
    /// all made inside <see cref="LivePortOptions.Netns"/>. Throws <see cref="LivePortException"/> saying what is
    /// missing.</summary>
    public static XskPort Open(LivePortOptions o) => Open(o, nativeFirst: true);

    /// <summary>As <see cref="Open(LivePortOptions)"/>; <paramref name="nativeFirst"/> false goes straight to generic
    /// (skb) mode (the tests cover both paths on veth).</summary>
    internal static XskPort Open(LivePortOptions o, bool nativeFirst)
    {
        if (o.Queues < 1) throw new LivePortException($"Queues must be at least 1 (got {o.Queues})");
        if (o.RingFrames < 2 || (o.RingFrames & (o.RingFrames - 1)) != 0)
            throw new LivePortException($"RingFrames must be a power of two (AF_XDP rings are; got {o.RingFrames})");
        if (o.FrameSize < 2048 || o.FrameSize > Environment.SystemPageSize || (o.FrameSize & (o.FrameSize - 1)) != 0)
            throw new LivePortException($"FrameSize must be a power of two from 2048 to the page size {Environment.SystemPageSize} (aligned UMEM chunks; got {o.FrameSize})");
        if (!BpfSyscall.Supported) throw new LivePortException("AF_XDP ports need Linux on x86-64");
        if (o.Interface.Length is 0 or > 15) throw new LivePortException($"'{o.Interface}' is not an interface name (1 to 15 characters)");

        using var scope = new NetnsScope(o.Netns);
        int ifindex = (int)if_nametoindex(o.Interface);
        if (ifindex == 0) throw new LivePortException($"no interface '{o.Interface}' in {(o.Netns is null ? "this network namespace" : $"network namespace '{o.Netns}'")}", Enodev);
        var port = new XskPort(o, ifindex);
        try
        {
            port._lockFd = LiveInterfaceLock.Take(o.Netns, o.Interface);
            port._inetFd = socket(AfInet, SockDgram | SockCloexec, 0);
            port._nlFd = OpenLinkEvents();
            port._lastUp = IfUpRunning(port._inetFd, port._ifname);
            for (int i = 0; i < port._q.Length; i++) port.OpenQueue(i);
            port.AttachProgram(nativeFirst);
            for (int i = 0; i < port._q.Length; i++) port._pollFds[i] = new PollFd { Fd = port._q[i].Fd, Events = PollIn };
            port._pollFds[^1] = new PollFd { Fd = port._nlFd, Events = PollIn };
            return port;
        }
        catch
        {
            port.Dispose();
            throw;
        }
    }

    /// <summary>Socket, UMEM registration, the four rings (sizes, XDP_MMAP_OFFSETS, mmap), the FILL ring stocked with
    /// the RX half of the chunks, then bind to (ifindex, queue) with need_wakeup (xsk_bind).</summary>
    private void OpenQueue(int qi)
    {
        var q = _q[qi];
        q.Fd = socket(AfXdp, SockRaw | SockCloexec, 0);
        if (q.Fd < 0)
        {
            int e = Errno;
            throw new LivePortException(e == Eperm
                ? "an AF_XDP socket needs CAP_NET_RAW (run as root)"
                : $"socket(AF_XDP): {Describe(e)}{(e == 97 ? " (kernel built without CONFIG_XDP_SOCKETS)" : "")}", e);
        }

        q.UmemLen = (nuint)((long)_ringFrames * 2 * _frameSize);
        nint umem = mmap(0, q.UmemLen, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapPopulate, -1, 0);
        if (umem == -1) throw new LivePortException($"mmap of a {q.UmemLen}-byte UMEM: {Describe(Errno)}", Errno);
        q.Umem = (byte*)umem;

        // struct xdp_umem_reg as its first version (addr, len, chunk_size, headroom): no flags, no TX metadata.
        ulong* reg = stackalloc ulong[3];
        reg[0] = (ulong)umem;
        reg[1] = q.UmemLen;
        ((uint*)reg)[4] = (uint)_frameSize;
        ((uint*)reg)[5] = 0;
        if (setsockopt(q.Fd, SolXdp, XdpUmemReg, reg, 24) != 0)
        {
            int e = Errno;
            throw new LivePortException(e is Enobufs or Eperm
                ? $"XDP_UMEM_REG of {q.UmemLen} bytes refused ({Describe(e)}): pinning the UMEM needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK"
                : $"XDP_UMEM_REG: {Describe(e)}", e);
        }
        SetInt(q.Fd, SolXdp, XdpUmemFillRing, _ringFrames, "XDP_UMEM_FILL_RING");
        SetInt(q.Fd, SolXdp, XdpUmemCompletionRing, _ringFrames, "XDP_UMEM_COMPLETION_RING");
        SetInt(q.Fd, SolXdp, XdpRxRing, _ringFrames, "XDP_RX_RING");
        SetInt(q.Fd, SolXdp, XdpTxRing, _ringFrames, "XDP_TX_RING");

        // struct xdp_mmap_offsets: rx, tx, fr, cr, each { producer, consumer, desc, flags }.
        ulong* off = stackalloc ulong[16];
        int olen = 128;
        if (getsockopt(q.Fd, SolXdp, XdpMmapOffsets, off, &olen) != 0 || olen < 128)
            throw new LivePortException($"XDP_MMAP_OFFSETS: {Describe(Errno)}", Errno);
        q.Rx = MapRing(q.Fd, off + 0, XdpPgoffRxRing, 16, "RX");
        q.Tx = MapRing(q.Fd, off + 4, XdpPgoffTxRing, 16, "TX");
        q.Fill = MapRing(q.Fd, off + 8, XdpUmemPgoffFillRing, 8, "FILL");
        q.Comp = MapRing(q.Fd, off + 12, XdpUmemPgoffCompletionRing, 8, "COMPLETION");

        // Chunks 0..RingFrames-1 receive: all on the FILL ring now. The rest transmit.
        for (int i = 0; i < _ringFrames; i++) ((ulong*)q.Fill.Desc)[i] = (ulong)i * (ulong)_frameSize;
        q.Fill.Cached = (uint)_ringFrames;
        Volatile.Write(ref *q.Fill.Producer, q.Fill.Cached);
        q.Pending = new ulong[_ringFrames];
        q.TxFree = new ulong[_ringFrames];
        q.TxLen = new int[_ringFrames];
        for (int i = 0; i < _ringFrames; i++) q.TxFree[i] = (ulong)(2 * _ringFrames - 1 - i) * (ulong)_frameSize;
        q.TxFreeCount = _ringFrames;
        q.Rx.Cached = Volatile.Read(ref *q.Rx.Consumer);
        q.Comp.Cached = Volatile.Read(ref *q.Comp.Consumer);
        q.Tx.Cached = q.TxPublished = Volatile.Read(ref *q.Tx.Producer);

        // struct sockaddr_xdp { family, flags, ifindex, queue_id, shared_umem_fd }. No XDP_COPY/XDP_ZEROCOPY: the
        // kernel tries zero-copy where the driver implements it and falls back to copy (xp_assign_dev).
        byte* sa = stackalloc byte[16];
        new Span<byte>(sa, 16).Clear();
        *(ushort*)sa = AfXdp;
        *(ushort*)(sa + 2) = XdpUseNeedWakeup;
        *(uint*)(sa + 4) = (uint)Ifindex;
        *(uint*)(sa + 8) = (uint)qi;
        // A socket closed a moment ago (our own previous port, say) keeps its queue until the kernel's deferred pool
        // release runs (xp_put_pool → xp_release_deferred on a workqueue), so EBUSY is retried briefly; we hold the
        // interface lock, so no other Softnet is the one bound.
        int err = 0;
        for (int attempt = 0; attempt < 100; attempt++)
        {
            if (bind(q.Fd, sa, 16) == 0) { err = 0; break; }
            err = Errno;
            if (err != Ebusy) break;
            Thread.Sleep(10);
        }
        if (err != 0)
        {
            int e = err;
            throw new LivePortException(e == 22
                ? $"binding AF_XDP to {Interface} queue {qi} refused (EINVAL): the device has fewer queues than {_q.Length}? (ethtool -l / numrxqueues)"
                : e == Ebusy ? $"{Interface} queue {qi} already has an AF_XDP socket bound (EBUSY)"
                : $"bind AF_XDP {Interface} queue {qi}: {Describe(e)}", e);
        }
        uint opts = 0;
        int optlen = 4;
        if (getsockopt(q.Fd, SolXdp, XdpOptions, &opts, &optlen) == 0) q.ZeroCopy = (opts & XdpOptionsZerocopy) != 0;
    }

    private Ring MapRing(int fd, ulong* off, long pgoff, int entry, string name)
    {
        var r = new Ring { MapLen = (nuint)(off[2] + (ulong)_ringFrames * (ulong)entry) };
        r.Map = mmap(0, r.MapLen, ProtRead | ProtWrite, MapShared | MapPopulate, fd, pgoff);
        if (r.Map == -1) throw new LivePortException($"mmap of the {name} ring: {Describe(Errno)}", Errno);
        byte* b = (byte*)r.Map;
        r.Producer = (uint*)(b + off[0]);
        r.Consumer = (uint*)(b + off[1]);
        r.Desc = b + off[2];
        r.Flags = (uint*)(b + off[3]);
        r.Mask = (uint)_ringFrames - 1;
        return r;
    }

    /// <summary>The XSKMAP (queue → socket fd) and the program: r2 = ctx->rx_queue_index; r1 = &amp;xsks; r3 = XDP_PASS;
    /// return bpf_redirect_map(r1, r2, r3). A queue with no socket in the map passes the frame to the stack. Native
    /// attach first, generic (skb) mode when the driver has no XDP hook.</summary>
    private void AttachProgram(bool nativeFirst)
    {
        try
        {
            _mapFd = BpfSyscall.CreateMap(BpfSyscall.MapTypeXskmap, 4, 4, (uint)_q.Length, name: "softnet_xsks");
            Span<byte> key = stackalloc byte[4], val = stackalloc byte[4];
            for (int i = 0; i < _q.Length; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(key, i);
                BinaryPrimitives.WriteInt32LittleEndian(val, _q[i].Fd);
                BpfSyscall.UpdateElem(_mapFd, key, val);
            }
            ulong[] prog =
            [
                new BpfInsn(BpfOp.BPF_LDX | BpfOp.BPF_MEM | BpfOp.BPF_W, 2, 1, 16, 0).ToUInt64(),        // r2 = ctx->rx_queue_index
                new BpfInsn(BpfOp.BPF_LD | BpfOp.BPF_IMM | BpfOp.BPF_DW, 1, BpfOp.BPF_PSEUDO_MAP_FD, 0, _mapFd).ToUInt64(),
                new BpfInsn(0, 0, 0, 0, 0).ToUInt64(),                                                    // r1 = map (lddw)
                new BpfInsn(BpfOp.BPF_ALU64 | BpfOp.BPF_MOV | BpfOp.BPF_K, 3, 0, 0, 2).ToUInt64(),         // r3 = XDP_PASS
                new BpfInsn(BpfOp.BPF_JMP | BpfOp.BPF_CALL, 0, 0, 0, 51).ToUInt64(),                       // bpf_redirect_map
                new BpfInsn(BpfOp.BPF_JMP | BpfOp.BPF_EXIT, 0, 0, 0, 0).ToUInt64(),
            ];
            _progFd = BpfSyscall.LoadProgram(BpfSyscall.ProgTypeXdp, prog, name: "softnet_xsk", expectedAttachType: BpfSyscall.AttachXdp);
        }
        catch (BpfSyscallException e) when (e.Errno == Eperm)
        {
            throw new LivePortException($"loading the XDP redirect program needs CAP_BPF and CAP_NET_ADMIN (run as root): {e.Message}", e.Errno);
        }
        catch (BpfSyscallException e)
        {
            throw new LivePortException($"building the XDP redirect program: {e.Message}", e.Errno);
        }

        try
        {
            if (!nativeFirst) throw new BpfSyscallException("BPF_LINK_CREATE", 95 /* EOPNOTSUPP: generic asked for */, "");
            _linkFd = BpfSyscall.LinkCreateXdp(_progFd, Ifindex, BpfSyscall.XdpFlagsDrvMode);
            XdpMode = "native";
        }
        catch (BpfSyscallException e) when (e.Errno != Eperm && e.Errno != Ebusy)
        {
            try
            {
                _linkFd = BpfSyscall.LinkCreateXdp(_progFd, Ifindex, BpfSyscall.XdpFlagsSkbMode);
                XdpMode = "generic";
            }
            catch (BpfSyscallException e2)
            {
                throw LinkError(e2);
            }
        }
        catch (BpfSyscallException e)
        {
            throw LinkError(e);
        }
    }

    private LivePortException LinkError(BpfSyscallException e) => new(e.Errno switch
    {
        Eperm => $"attaching XDP to {Interface} needs CAP_NET_ADMIN (run as root): {e.Message}",
        Ebusy => $"{Interface} already has an XDP program attached (another program or Softnet; `ip link show {Interface}`): {e.Message}",
        _ => $"attaching the XDP program to {Interface}: {e.Message}",
    }, e.Errno);

    public int Receive(int queue, Span<LiveFrame> batch)
    {
        var q = _q[queue];
        uint cons = q.Rx.Cached;
        uint avail = Volatile.Read(ref *q.Rx.Producer) - cons; // acquire: the descriptors below are written
        int n = (int)Math.Min(avail, (uint)Math.Min(batch.Length, q.Pending.Length - q.PendingCount));
        if (n == 0) return 0;
        long now = MonotonicNs();
        long bytes = 0;
        for (int i = 0; i < n; i++)
        {
            byte* d = q.Rx.Desc + ((cons + (uint)i) & q.Rx.Mask) * 16;
            ulong addr = *(ulong*)d;
            uint len = *(uint*)(d + 8);
            batch[i] = new LiveFrame((long)addr, (int)len, now);
            q.Pending[q.PendingCount++] = addr;
            bytes += len;
        }
        // The descriptors are copied out; the chunks stay ours until Release, so the RX slots go back at once.
        q.Rx.Cached = cons + (uint)n;
        Volatile.Write(ref *q.Rx.Consumer, q.Rx.Cached);
        q.RxPackets += n;
        q.RxBytes += bytes;
        return n;
    }

    public ReadOnlySpan<byte> Bytes(int queue, in LiveFrame frame)
    {
        var q = _q[queue];
        if ((ulong)frame.Offset + (ulong)(uint)frame.Length > q.UmemLen) return default;
        return new ReadOnlySpan<byte>(q.Umem + frame.Offset, frame.Length);
    }

    public void Release(int queue)
    {
        var q = _q[queue];
        int n = q.PendingCount;
        if (n == 0) return;
        // The FILL ring holds every RX chunk, so it always has room for those handed out.
        uint prod = q.Fill.Cached;
        for (int i = 0; i < n; i++)
            ((ulong*)q.Fill.Desc)[(prod + (uint)i) & q.Fill.Mask] = q.Pending[i] & _chunkMask;
        q.Fill.Cached = prod + (uint)n;
        Volatile.Write(ref *q.Fill.Producer, q.Fill.Cached); // release: the addresses above are visible first
        q.PendingCount = 0;
        Interlocked.MemoryBarrier();
        if ((Volatile.Read(ref *q.Fill.Flags) & XdpRingNeedWakeup) != 0)
            recvfrom(q.Fd, null, 0, MsgDontwait, null, null);
    }

    public IReadOnlyList<int> ReadinessFds => [.. _pollFds.Take(_nlFd >= 0 ? _pollFds.Length : _q.Length).Select(p => p.Fd)];

    public bool WaitReceive(int timeoutMs)
    {
        for (int i = 0; i < _q.Length; i++)
            if (Volatile.Read(ref *_q[i].Rx.Producer) != _q[i].Rx.Cached) return true;
        long deadline = Environment.TickCount64 + Math.Max(0, timeoutMs);
        while (true)
        {
            int left = timeoutMs < 0 ? -1 : (int)Math.Max(0, deadline - Environment.TickCount64);
            int r;
            fixed (PollFd* p = _pollFds)
            {
                for (int i = 0; i < _pollFds.Length; i++) p[i].Revents = 0;
                r = poll(p, (nuint)(_nlFd >= 0 ? _pollFds.Length : _q.Length), left);
            }
            if (r <= 0) return false; // timeout, or EINTR
            if (_nlFd >= 0 && _pollFds[^1].Revents != 0) DrainLinkEvents();
            for (int i = 0; i < _q.Length; i++)
                if ((_pollFds[i].Revents & PollIn) != 0) return true;
            if (left == 0) return false;
        }
    }

    public bool Transmit(int queue, ReadOnlySpan<byte> frame)
    {
        var q = _q[queue];
        if (frame.Length == 0 || frame.Length > _frameSize) { q.TxErrors++; return false; }
        if (q.TxFreeCount == 0) ReapCompletions(q);
        if (q.TxFreeCount == 0 || q.Tx.Cached - Volatile.Read(ref *q.Tx.Consumer) >= (uint)_ringFrames)
        {
            q.TxRingFull++;
            return false;
        }
        ulong addr = q.TxFree[--q.TxFreeCount];
        frame.CopyTo(new Span<byte>(q.Umem + addr, frame.Length));
        q.TxLen[(int)(addr / (ulong)_frameSize) - _ringFrames] = frame.Length;
        byte* d = q.Tx.Desc + (q.Tx.Cached & q.Tx.Mask) * 16;
        *(ulong*)d = addr;
        *(uint*)(d + 8) = (uint)frame.Length;
        *(uint*)(d + 12) = 0;
        q.Tx.Cached++;
        return true;
    }

    public void FlushTransmit(int queue)
    {
        var q = _q[queue];
        if (q.Tx.Cached != q.TxPublished)
        {
            Volatile.Write(ref *q.Tx.Producer, q.Tx.Cached);
            q.TxPublished = q.Tx.Cached;
        }
        Interlocked.MemoryBarrier(); // the producer store before the flags load (need_wakeup protocol)
        // A copy-mode sendto sends at most 32 frames (xsk_generic_xmit's budget) and answers EAGAIN while more are
        // left, so kick until the kernel has taken everything or stops making progress.
        for (int kicks = 0; kicks < _ringFrames / 16 + 4; kicks++)
        {
            if (Volatile.Read(ref *q.Tx.Consumer) == q.Tx.Cached) break;
            if ((Volatile.Read(ref *q.Tx.Flags) & XdpRingNeedWakeup) == 0) break;
            if (sendto(q.Fd, null, 0, MsgDontwait, null, 0) < 0)
            {
                int e = Errno;
                if (e is Eagain or Ebusy or Enobufs) { ReapCompletions(q); continue; }
                if (e is not (Enetdown or Enxio)) q.TxErrors++;
                break;
            }
        }
        ReapCompletions(q);
    }

    /// <summary>Takes sent chunks off the COMPLETION ring back onto the TX free list.</summary>
    private void ReapCompletions(Queue q)
    {
        uint cons = q.Comp.Cached;
        uint prod = Volatile.Read(ref *q.Comp.Producer);
        if (prod == cons) return;
        long bytes = 0;
        for (uint i = cons; i != prod; i++)
        {
            ulong addr = ((ulong*)q.Comp.Desc)[i & q.Comp.Mask] & _chunkMask;
            q.TxFree[q.TxFreeCount++] = addr;
            bytes += q.TxLen[(int)(addr / (ulong)_frameSize) - _ringFrames];
        }
        q.Comp.Cached = prod;
        Volatile.Write(ref *q.Comp.Consumer, prod);
        q.TxPackets += prod - cons;
        q.TxBytes += bytes;
    }

    public bool LinkUp
    {
        get
        {
            DrainLinkEvents();
            return IfUpRunning(_inetFd, _ifname);
        }
    }

    /// <summary>Reads the queued RTM_NEWLINK messages for our ifindex and counts each up-with-carrier → not transition.
    /// The kernel keeps the sockets bound and the XDP link attached across down/up (xsk_notifier acts only on
    /// NETDEV_UNREGISTER), so nothing else has to be redone.</summary>
    private void DrainLinkEvents()
    {
        if (_nlFd < 0) return;
        lock (_linkLock)
        {
            fixed (byte* buf = _nlBuf)
            {
                while (true)
                {
                    nint r = recvfrom(_nlFd, buf, (nuint)_nlBuf.Length, MsgDontwait, null, null);
                    if (r < 0)
                    {
                        if (Errno == Enobufs)
                        {
                            // Events were lost to an overrun: the state now decides.
                            bool up = IfUpRunning(_inetFd, _ifname);
                            if (_lastUp && !up) _linkDownEvents++;
                            _lastUp = up;
                            continue;
                        }
                        return;
                    }
                    for (int off = 0; off + 16 <= r;)
                    {
                        uint len = *(uint*)(buf + off);
                        ushort type = *(ushort*)(buf + off + 4);
                        if (len < 16 || off + len > r) break;
                        if ((type == 16 /* RTM_NEWLINK */ || type == 17 /* RTM_DELLINK */) && len >= 32
                            && *(int*)(buf + off + 20) == Ifindex)
                        {
                            uint flags = *(uint*)(buf + off + 24);
                            bool up = type == 16 && (flags & (IffUp | IffRunning)) == (IffUp | IffRunning);
                            if (_lastUp && !up) _linkDownEvents++;
                            _lastUp = up;
                        }
                        off += (int)((len + 3) & ~3u);
                    }
                }
            }
        }
    }

    public LivePortStats ReadStats()
    {
        DrainLinkEvents();
        var s = new LivePortStats();
        ulong* x = stackalloc ulong[6];
        foreach (var q in _q)
        {
            s.RxPackets += q.RxPackets;
            s.RxBytes += q.RxBytes;
            s.TxPackets += q.TxPackets;
            s.TxBytes += q.TxBytes;
            s.TxRingFull += q.TxRingFull;
            s.TxErrors += q.TxErrors;
            // struct xdp_statistics (cumulative, not reset on read): rx_dropped, rx_invalid_descs, tx_invalid_descs,
            // rx_ring_full, rx_fill_ring_empty_descs, tx_ring_empty_descs. In copy mode an empty FILL ring counts in
            // both rx_dropped and rx_fill_ring_empty_descs (__xsk_rcv, xp_alloc), so only the first is summed.
            new Span<ulong>(x, 6).Clear();
            int len = 48;
            if (q.Fd >= 0 && getsockopt(q.Fd, SolXdp, XdpStatistics, x, &len) == 0)
            {
                s.KernelRxDropped += (long)(x[0] + x[3]);
                s.KernelRxRingFull += (long)x[3];
                s.TxErrors += (long)x[2];
            }
        }
        s.LinkDownEvents = _linkDownEvents;
        return s;
    }

    /// <summary>The raw XDP_STATISTICS of one queue's socket (for tests and diagnostics).</summary>
    public (ulong RxDropped, ulong RxInvalid, ulong TxInvalid, ulong RxRingFull, ulong FillEmpty, ulong TxRingEmpty) KernelStats(int queue)
    {
        ulong* x = stackalloc ulong[6];
        new Span<ulong>(x, 6).Clear();
        int len = 48;
        getsockopt(_q[queue].Fd, SolXdp, XdpStatistics, x, &len);
        return (x[0], x[1], x[2], x[3], x[4], x[5]);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // The link first: the program stops redirecting before the sockets go.
        if (_linkFd >= 0) close(_linkFd);
        if (_progFd >= 0) close(_progFd);
        if (_mapFd >= 0) close(_mapFd);
        foreach (var q in _q)
        {
            if (q.Fd >= 0) close(q.Fd);
            q.Fd = -1;
            Unmap(ref q.Rx);
            Unmap(ref q.Tx);
            Unmap(ref q.Fill);
            Unmap(ref q.Comp);
            if (q.Umem != null) munmap((nint)q.Umem, q.UmemLen);
            q.Umem = null;
        }
        if (_nlFd >= 0) close(_nlFd);
        if (_inetFd >= 0) close(_inetFd);
        if (_lockFd >= 0) close(_lockFd); // releases the flock
        _linkFd = _progFd = _mapFd = _nlFd = _inetFd = _lockFd = -1;
    }

    private static void Unmap(ref Ring r)
    {
        if (r.Map != 0 && r.Map != -1) munmap(r.Map, r.MapLen);
        r.Map = 0;
    }
}
