using Softnet.Packets;
using static Softnet.Capture.Live.LiveSyscalls;
using static Softnet.Capture.Live.PacketSyscalls;

namespace Softnet.Capture.Live;

/// <summary>
/// A live port over AF_PACKET (net/packet/af_packet.c): per queue one SOCK_RAW socket for ETH_P_ALL bound to the
/// interface, with a TPACKET_V3 RX ring (the kernel packs frames into blocks and hands a block over when it is full or
/// its retire timer fires, prb_retire_current_block) and a TPACKET_V3 TX ring (fixed-size slots, tpacket_snd) mapped
/// together. Queues &gt; 1 join one PACKET_FANOUT_HASH group so a flow always lands on the same queue
/// (fanout_demux_hash). Our own transmissions are not looped back into the RX ring (PACKET_IGNORE_OUTGOING, and for
/// the fanout hook PACKET_FANOUT_FLAG_IGNORE_OUTGOING, since the group's hook replaces the sockets' own).
/// </summary>
public sealed unsafe class PacketPort : ILivePort
{
    /// <summary>Frames per RX/TX block (tp_block_size / tp_frame_size) before rounding to a page multiple.</summary>
    private const int FramesPerBlock = 32;
    /// <summary>tp_retire_blk_tov: a block not yet full is handed over after this long, so a quiet link still
    /// delivers its frames promptly.</summary>
    private const int RetireBlockMs = 2;

    private sealed class Queue
    {
        public int Fd = -1;
        public nint Map;
        public nuint MapLength;
        public byte* Rx;
        public byte* Tx;
        public int RxBlocks, TxFrames;
        // RX: the block being read, the next frame in it and how many remain; blocks [ReleaseFrom, Current) are
        // fully taken and go back to the kernel on Release.
        public int Current, ReleaseFrom, Pending;
        public byte* NextFrame;
        public int Remaining;
        public bool Open;
        // TX: the next slot to fill.
        public int TxHead;
        // Counters (the kernel's accumulate: PACKET_STATISTICS resets on read).
        public long RxPackets, RxBytes, KernelDrops, KernelFreezes, TxPackets, TxBytes, TxRingFull, TxErrors;
    }

    private readonly Queue[] _queues;
    private readonly PollFd[] _pollFds;
    private readonly byte[] _ifname;
    private readonly int _blockSize, _frameSize;
    private int _lockFd = -1;
    private long _linkDownEvents;
    private bool _disposed;

    public LivePortKind Kind => LivePortKind.Packet;
    public string Interface { get; }
    public int Ifindex { get; private set; }
    public int Queues => _queues.Length;
    /// <summary>The fanout group id the queues share (0 with one queue).</summary>
    public int FanoutGroup { get; private set; }

    private PacketPort(LivePortOptions o, int blockSize)
    {
        Interface = o.Interface;
        _frameSize = o.FrameSize;
        _blockSize = blockSize;
        _queues = new Queue[o.Queues];
        for (int i = 0; i < _queues.Length; i++) _queues[i] = new Queue();
        _pollFds = new PollFd[o.Queues];
        _ifname = IfName(o.Interface);
    }

    /// <summary>The interface's lock file (<see cref="LiveInterfaceLock"/>).</summary>
    public static string LockPath(string? netns, string ifname) => LiveInterfaceLock.PathOf(netns, ifname);

    /// <summary>Opens the port: takes the interface's lock, makes and maps the queue sockets inside the namespace,
    /// binds them and joins them into a fanout group. Throws <see cref="LivePortException"/> with the cause.</summary>
    public static PacketPort Open(LivePortOptions o)
    {
        if (!OperatingSystem.IsLinux()) throw new LivePortException("AF_PACKET ports need Linux");
        if (o.Queues < 1 || o.Queues > 64) throw new LivePortException($"queues must be 1..64 (got {o.Queues})");
        if (o.FrameSize < 128 || (o.FrameSize & 15) != 0)
            throw new LivePortException($"frame size must be a multiple of 16 of at least 128 (TPACKET_ALIGNMENT; got {o.FrameSize})");
        if (o.RingFrames < 1) throw new LivePortException($"ring frames must be positive (got {o.RingFrames})");
        if (!MakeIfReq(o.Interface, out _)) throw new LivePortException($"'{o.Interface}' is not a valid interface name");

        // A block is a page multiple (alloc_pg_vec allocates whole pages) holding FramesPerBlock slots.
        int page = Environment.SystemPageSize;
        int blockSize = (o.FrameSize * FramesPerBlock + page - 1) / page * page;
        var port = new PacketPort(o, blockSize);
        try
        {
            port.TakeLock(o.Netns);
            using (new NetnsScope(o.Netns))
                for (int q = 0; q < port._queues.Length; q++) port._queues[q].Fd = port.MakeSocket(o);
            port.Ifindex = port.ResolveIfindex(o.Netns);
            for (int q = 0; q < port._queues.Length; q++) port.SetUpQueue(q, o);
            return port;
        }
        catch
        {
            port.Dispose();
            throw;
        }
    }

    private void TakeLock(string? netns) => _lockFd = LiveInterfaceLock.Take(netns, Interface);

    private static string Where(string? netns) => string.IsNullOrEmpty(netns) ? "host namespace" : $"namespace '{netns}'";

    /// <summary>The socket is made with protocol 0 so it hears nothing until bound to the interface.</summary>
    private int MakeSocket(LivePortOptions o)
    {
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            int e = Errno;
            throw new LivePortException(e is EPERM or EACCES
                ? $"opening an AF_PACKET socket needs CAP_NET_RAW (run as root or grant the capability)"
                : $"socket(AF_PACKET) in {Where(o.Netns)}: errno {e}", e);
        }
        return fd;
    }

    private int ResolveIfindex(string? netns)
    {
        MakeIfReq(Interface, out var req);
        // SIOCGIFINDEX answers from the socket's namespace (the one it was made in).
        if (ioctl(_queues[0].Fd, SIOCGIFINDEX, &req) != 0)
        {
            int e = Errno;
            throw new LivePortException(e == ENODEV
                ? $"no interface '{Interface}' in {Where(netns)}"
                : $"SIOCGIFINDEX {Interface}: errno {e}", e);
        }
        return req.Value;
    }

    private void SetUpQueue(int qi, LivePortOptions o)
    {
        var q = _queues[qi];
        int fd = q.Fd;
        Check(SetInt(fd, SOL_PACKET, PACKET_VERSION, TPACKET_V3), "PACKET_VERSION TPACKET_V3");
        // A malformed TX slot is skipped (marked available) instead of stopping the ring at it; like the version,
        // it can only be set before the rings exist (EBUSY after).
        Check(SetInt(fd, SOL_PACKET, PACKET_LOSS, 1), "PACKET_LOSS");
        // A virtio_net_hdr before each frame tells where a checksum is still to be done (CHECKSUM_PARTIAL frames a
        // veth peer's stack sends, TP_STATUS_CSUMNOTREADY): Receive completes it as the sending NIC would have.
        // The TX ring then expects one before each frame too (all zero: nothing to offload).
        Check(SetInt(fd, SOL_PACKET, PACKET_VNET_HDR, 1), "PACKET_VNET_HDR");

        int framesPerBlock = _blockSize / _frameSize;
        q.RxBlocks = Math.Max(2, (o.RingFrames + framesPerBlock - 1) / framesPerBlock);
        int txBlocks = Math.Max(1, (o.RingFrames + framesPerBlock - 1) / framesPerBlock);
        q.TxFrames = txBlocks * framesPerBlock;
        var rx = new TpacketReq3
        {
            BlockSize = (uint)_blockSize, BlockNr = (uint)q.RxBlocks, FrameSize = (uint)_frameSize,
            FrameNr = (uint)(q.RxBlocks * framesPerBlock), RetireBlkTov = RetireBlockMs,
        };
        Check(setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof(TpacketReq3)), "PACKET_RX_RING");
        // packet_set_ring refuses a V3 TX ring with a retire timer, private area or feature word: slots only.
        var tx = new TpacketReq3
        {
            BlockSize = (uint)_blockSize, BlockNr = (uint)txBlocks, FrameSize = (uint)_frameSize, FrameNr = (uint)q.TxFrames,
        };
        Check(setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof(TpacketReq3)), "PACKET_TX_RING");

        // packet_mmap maps the RX ring's blocks first, then the TX ring's, in one mapping.
        q.MapLength = (nuint)((long)(q.RxBlocks + txBlocks) * _blockSize);
        q.Map = mmap(0, q.MapLength, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (q.Map == MAP_FAILED)
        {
            q.Map = 0;
            throw new LivePortException($"mmap of the packet rings ({q.MapLength} bytes): errno {Errno}", Errno);
        }
        q.Rx = (byte*)q.Map;
        q.Tx = q.Rx + (long)q.RxBlocks * _blockSize;

        Check(SetInt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1), "PACKET_QDISC_BYPASS");
        if (SetInt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1) != 0)
            throw new LivePortException($"PACKET_IGNORE_OUTGOING: errno {Errno} (needs Linux 4.20 or later)", Errno);

        var sll = new SockaddrLl { Family = AF_PACKET, Protocol = Htons(ETH_P_ALL), Ifindex = Ifindex };
        if (bind(fd, &sll, sizeof(SockaddrLl)) != 0)
            throw new LivePortException($"binding to '{Interface}' (ifindex {Ifindex}): errno {Errno}", Errno);

        if (_queues.Length > 1) JoinFanout(qi);
        _pollFds[qi] = new PollFd { Fd = fd, Events = POLLIN | POLLERR };
    }

    /// <summary>The first queue asks the kernel for an unused group id (PACKET_FANOUT_FLAG_UNIQUEID, which
    /// fanout_add drops from the group's flags), the others join that id with the same type and flags.</summary>
    private void JoinFanout(int qi)
    {
        int fd = _queues[qi].Fd;
        int typeFlags = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
        if (qi == 0)
        {
            Check(SetInt(fd, SOL_PACKET, PACKET_FANOUT, (typeFlags | PACKET_FANOUT_FLAG_UNIQUEID) << 16),
                "PACKET_FANOUT (unique id; PACKET_FANOUT_FLAG_IGNORE_OUTGOING needs Linux 6.2 or later)");
            int val = 0, len = sizeof(int);
            Check(getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &val, &len), "getsockopt PACKET_FANOUT");
            FanoutGroup = val & 0xffff;
        }
        else
            Check(SetInt(fd, SOL_PACKET, PACKET_FANOUT, FanoutGroup | (typeFlags << 16)), $"PACKET_FANOUT join group {FanoutGroup}");
    }

    private static void Check(int rc, string what)
    {
        if (rc != 0) throw new LivePortException($"{what}: errno {Errno}", Errno);
    }

    private static uint ReadStatus(byte* p) => Volatile.Read(ref *(uint*)p);

    private static void WriteStatus(byte* p, uint v) => Volatile.Write(ref *(uint*)p, v);

    public int Receive(int queue, Span<LiveFrame> batch)
    {
        var q = _queues[queue];
        int n = 0;
        while (n < batch.Length)
        {
            if (!q.Open)
            {
                // A block the kernel has not handed over yet, or one taken whole but not released (the ring has
                // come round to it): nothing more until then.
                if (q.Pending == q.RxBlocks) break;
                byte* block = q.Rx + (long)q.Current * _blockSize;
                if ((ReadStatus(block + BlockStatusOffset) & TP_STATUS_USER) == 0) break;
                q.Remaining = (int)*(uint*)(block + BlockNumPktsOffset);
                q.NextFrame = block + *(uint*)(block + BlockFirstPktOffset);
                q.Open = true;
            }
            if (q.Remaining == 0)
            {
                q.Open = false;
                q.Pending++;
                q.Current = q.Current + 1 == q.RxBlocks ? 0 : q.Current + 1;
                continue;
            }
            byte* h = q.NextFrame;
            int len = (int)*(uint*)(h + HdrSnaplen);
            long ts = *(uint*)(h + HdrSec) * 1_000_000_000L + *(uint*)(h + HdrNsec);
            int mac = *(ushort*)(h + HdrMac);
            byte* vnet = h + mac - VnetHdrLen;
            if ((vnet[0] & VIRTIO_NET_HDR_F_NEEDS_CSUM) != 0 && len == (int)*(uint*)(h + HdrLen))
                FinishChecksum(h + mac, len, *(ushort*)(vnet + VnetCsumStart), *(ushort*)(vnet + VnetCsumOffset));
            if ((*(uint*)(h + HdrStatus) & TP_STATUS_VLAN_VALID) != 0 && len >= 12 && mac - 4 >= Tpacket3HdrWithAddr)
            {
                PutBackVlanTag(h, mac);
                mac -= 4;
                len += 4;
            }
            batch[n++] = new LiveFrame(h + mac - q.Rx, len, ts);
            q.RxPackets++;
            q.RxBytes += len;
            q.NextFrame = h + *(uint*)(h + HdrNextOffset);
            q.Remaining--;
        }
        // A block whose last frame was just taken is finished now, not on the next call.
        if (q.Open && q.Remaining == 0)
        {
            q.Open = false;
            q.Pending++;
            q.Current = q.Current + 1 == q.RxBlocks ? 0 : q.Current + 1;
        }
        return n;
    }

    /// <summary>
    /// A frame whose transport checksum holds only the pseudo-header sum (CHECKSUM_PARTIAL, as a veth peer's stack
    /// sends it): sum from csum_start to the end and store the folded complement at csum_offset, as
    /// skb_checksum_help does before a device without checksum offload sends it (0 goes out as 0xffff).
    /// </summary>
    private static void FinishChecksum(byte* frame, int len, int start, int offset)
    {
        if (start + offset + 2 > len) return;
        var field = new Span<byte>(frame + start + offset, 2);
        ushort sum = Checksum.Compute(new ReadOnlySpan<byte>(frame + start, len - start));
        if (sum == 0) sum = 0xffff;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(field, sum);
    }

    /// <summary>
    /// The receive path (skb_vlan_untag in __netif_receive_skb_core, or the driver's VLAN offload) takes an 802.1Q
    /// tag out of the frame before the packet hooks see it; tpacket_rcv reports it in tp_vlan_tci/tp_vlan_tpid. The
    /// frame is given back as it was on the wire by moving the two MAC addresses 4 bytes down into the alignment gap
    /// before tp_mac and writing the tag after them, in place in the block we own (as libpcap does on its copy).
    /// </summary>
    private static void PutBackVlanTag(byte* h, int mac)
    {
        byte* frame = h + mac;
        Buffer.MemoryCopy(frame, frame - 4, 12, 12);
        uint status = *(uint*)(h + HdrStatus);
        ushort tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? *(ushort*)(h + HdrVlanTpid) : (ushort)0x8100;
        ushort tci = (ushort)*(uint*)(h + HdrVlanTci);
        frame[8] = (byte)(tpid >> 8);
        frame[9] = (byte)tpid;
        frame[10] = (byte)(tci >> 8);
        frame[11] = (byte)tci;
    }

    public ReadOnlySpan<byte> Bytes(int queue, in LiveFrame frame)
        => new(_queues[queue].Rx + frame.Offset, frame.Length);

    public void Release(int queue)
    {
        var q = _queues[queue];
        // Blocks go back in ring order, as the kernel fills them (prb_lookup_block waits on the next one).
        for (; q.Pending > 0; q.Pending--)
        {
            WriteStatus(q.Rx + (long)q.ReleaseFrom * _blockSize + BlockStatusOffset, TP_STATUS_KERNEL);
            q.ReleaseFrom = q.ReleaseFrom + 1 == q.RxBlocks ? 0 : q.ReleaseFrom + 1;
        }
    }

    public IReadOnlyList<int> ReadinessFds => [.. _pollFds.Select(p => p.Fd)];

    public bool WaitReceive(int timeoutMs)
    {
        // A block already handed over needs no system call.
        foreach (var q in _queues)
            if (q.Open || (q.Pending < q.RxBlocks
                && (ReadStatus(q.Rx + (long)q.Current * _blockSize + BlockStatusOffset) & TP_STATUS_USER) != 0))
                return true;
        int rc;
        fixed (PollFd* fds = _pollFds)
        {
            for (int i = 0; i < _pollFds.Length; i++) fds[i].Revents = 0;
            rc = poll(fds, (nuint)_pollFds.Length, timeoutMs);
        }
        if (rc <= 0) return false;
        bool readable = false;
        for (int i = 0; i < _pollFds.Length; i++)
        {
            if ((_pollFds[i].Revents & POLLERR) != 0) TakeSocketError(_pollFds[i].Fd);
            if ((_pollFds[i].Revents & POLLIN) != 0) readable = true;
        }
        return readable;
    }

    /// <summary>Reads (and so clears) sk_err: ENETDOWN is packet_notifier's word that the device went down and the
    /// socket's hook was unregistered (it is registered again on NETDEV_UP).</summary>
    private void TakeSocketError(int fd)
    {
        int err = 0, len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ENETDOWN)
            Interlocked.Increment(ref _linkDownEvents);
    }

    public bool Transmit(int queue, ReadOnlySpan<byte> frame)
    {
        var q = _queues[queue];
        if (frame.Length < 14 || frame.Length > _frameSize - Tpacket3HdrLen - VnetHdrLen)
        {
            q.TxErrors++;
            return false;
        }
        int framesPerBlock = _blockSize / _frameSize;
        int slot = q.TxHead;
        byte* h = q.Tx + (long)(slot / framesPerBlock) * _blockSize + (long)(slot % framesPerBlock) * _frameSize;
        uint status = ReadStatus(h + HdrStatus);
        if (status != TP_STATUS_AVAILABLE)
        {
            if ((status & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING)) != 0)
            {
                q.TxRingFull++;
                return false;
            }
            // TP_STATUS_WRONG_FORMAT left by the kernel: the slot's frame was refused; count it and reuse the slot.
            q.TxErrors++;
        }
        new Span<byte>(h + Tpacket3HdrLen, VnetHdrLen).Clear();
        frame.CopyTo(new Span<byte>(h + Tpacket3HdrLen + VnetHdrLen, frame.Length));
        *(uint*)(h + HdrNextOffset) = 0;
        *(uint*)(h + HdrLen) = (uint)(VnetHdrLen + frame.Length);
        *(uint*)(h + HdrSnaplen) = (uint)(VnetHdrLen + frame.Length);
        WriteStatus(h + HdrStatus, TP_STATUS_SEND_REQUEST);
        q.TxHead = slot + 1 == q.TxFrames ? 0 : slot + 1;
        q.TxPackets++;
        q.TxBytes += frame.Length;
        return true;
    }

    public void FlushTransmit(int queue)
    {
        var q = _queues[queue];
        // tpacket_snd walks every slot marked SEND_REQUEST from its head; a slot is free again once its skb is
        // freed (tpacket_destruct_skb marks it TP_STATUS_AVAILABLE), which Transmit checks before reuse.
        if (send(q.Fd, null, 0, MSG_DONTWAIT) < 0)
        {
            int e = Errno;
            if (e == ENETDOWN || e == ENXIO) TakeSocketError(q.Fd);
            else if (e != EAGAIN && e != EINTR && e != ENOBUFS) q.TxErrors++;
        }
    }

    public bool LinkUp => IfUpRunning(_queues[0].Fd, _ifname);

    public LivePortStats ReadStats()
    {
        var s = new LivePortStats();
        foreach (var q in _queues)
        {
            var st = default(TpacketStatsV3);
            int len = sizeof(TpacketStatsV3);
            if (getsockopt(q.Fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
            {
                // packet_getsockopt reports tp_packets with the drops included; zeroes both after reading.
                q.KernelDrops += st.Drops;
                q.KernelFreezes += st.FreezeQCnt;
            }
            s.RxPackets += q.RxPackets;
            s.RxBytes += q.RxBytes;
            s.KernelRxDropped += q.KernelDrops;
            s.KernelRxRingFull += q.KernelFreezes;
            s.TxPackets += q.TxPackets;
            s.TxBytes += q.TxBytes;
            s.TxRingFull += q.TxRingFull;
            s.TxErrors += q.TxErrors;
        }
        s.LinkDownEvents = Interlocked.Read(ref _linkDownEvents);
        return s;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var q in _queues)
        {
            if (q.Map != 0) munmap(q.Map, q.MapLength);
            q.Map = 0;
            if (q.Fd >= 0) close(q.Fd);
            q.Fd = -1;
        }
        if (_lockFd >= 0) close(_lockFd);
        _lockFd = -1;
        GC.SuppressFinalize(this);
    }

    ~PacketPort() => Dispose();
}
