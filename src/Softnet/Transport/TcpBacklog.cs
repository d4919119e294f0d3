using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Packets;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>
/// The socket backlog (struct sock's sk_backlog) of a connection whose reader holds the socket (lock_sock in
/// tcp_recvmsg; <see cref="SocketReaderCpus"/> in deterministic mode): softirq cannot touch the socket then, so
/// tcp_v4_rcv hands the segment to tcp_add_backlog, and the reader processes the backlog itself, on its CPU, when it
/// flushes (__sk_flush_backlog inside tcp_recvmsg_locked) or releases (release_sock → __release_sock) the socket. The
/// backlog is a singly linked list of skbs through <see cref="Skb.Next"/>, as in the kernel.
/// </summary>
public sealed partial class TcpSock
{
    /// <summary>lock_sock's owner mark: the engine time the reader took the socket (long.MaxValue: nobody holds it).</summary>
    internal long LockedAtNs = long.MaxValue;

    private Skb? _backlogHead, _backlogTail;
    /// <summary>sk_backlog.len: truesize queued since the last __release_sock (not lowered while it runs).</summary>
    private int _backlogLen;
    // TCP_SKB_CB and header fields of the backlog's tail as coalescing left them (the kernel rewrites the tail skb's
    // control block and header; the members here stay separate skbs, see Skb.BacklogCoalesced).
    private uint _tailEndSeq, _tailAckSeq;
    private int _tailFlags, _tailDoff, _tailFrags, _tailRoom;
    private byte _tailTos;
    private readonly byte[] _tailOpts = new byte[40];
    private bool _ackHeld;

    /// <summary>MAX_SKB_FRAGS (CONFIG_MAX_SKB_FRAGS default).</summary>
    private const int MaxSkbFrags = 17;
    /// <summary>SKB_DATA_ALIGN(sizeof(struct sk_buff)) and SKB_DATA_ALIGN(sizeof(struct skb_shared_info)).</summary>
    private const int SkbStructSize = 256, SharedInfoSize = 320;
    /// <summary>sk_sndbuf as tcp_wmem[1] sets it (Softnet models no send buffer).</summary>
    private const int SndBufDefault = 16384;

    // The header's flags as one int: byte 13's (TcpFlags) and, above them, byte 12's AE bit, which the enum's byte lacks.
    private const int FlagFin = (int)TcpFlags.Fin, FlagSyn = (int)TcpFlags.Syn, FlagRst = (int)TcpFlags.Rst, FlagAck = (int)TcpFlags.Ack,
        FlagUrg = (int)TcpFlags.Urg, FlagEce = (int)TcpFlags.Ece, FlagCwr = (int)TcpFlags.Cwr, FlagAe = 0x100;

    /// <summary>The backlog holds segments.</summary>
    internal bool HasBacklog => _backlogHead != null;

    /// <summary>
    /// tcp_add_backlog for <paramref name="skb"/> (data at the IP header; <paramref name="tcp"/> its TCP header and
    /// payload): coalesced into the tail when the headers allow and skb_try_coalesce would (TCPBacklogCoalesce, even
    /// over the limit), else queued unless sk_rcvqueues_full says the queues are over the limit (TCPBacklogDrop).
    /// </summary>
    internal void AddBacklog(Skb skb, ReadOnlySpan<byte> pkt, ReadOnlySpan<byte> tcp, int truesize)
    {
        var mib = Namespace.Mib;
        int doff = (tcp[12] >> 4) * 4;
        int flags = ((tcp[12] & 1) << 8) | tcp[13];
        int len = tcp.Length - doff;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]);
        uint endSeq = seq + (uint)len + (uint)(flags & FlagSyn) / FlagSyn + (uint)(flags & FlagFin);
        uint ackSeq = BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]);
        byte tos = pkt[1];
        int ipHdr = pkt.Length - tcp.Length;
        if (_backlogTail is not null
            && _tailEndSeq == seq && _tailTos == tos
            && ((_tailFlags | flags) & (FlagSyn | FlagRst | FlagUrg)) == 0
            && (_tailFlags & flags & FlagAck) != 0
            && ((_tailFlags ^ flags) & (FlagEce | FlagCwr | FlagAe)) == 0
            && _tailDoff == doff && tcp[20..doff].SequenceEqual(_tailOpts.AsSpan(0, doff - 20))
            && TryCoalesce(skb, ipHdr + doff, len, truesize, out int delta))
        {
            _tailEndSeq = endSeq;
            if (!Before(ackSeq, _tailAckSeq)) _tailAckSeq = ackSeq;
            _tailFlags |= flags;
            _backlogLen += delta;
            mib[SnmpCounter.TcpExtTCPBacklogCoalesce]++;
            skb.BacklogCharge = delta;
            skb.BacklogCoalesced = true;
            Link(skb);
            return;
        }
        // sk_rcvqueues_full against tcp_add_backlog's limit: the backlog and receive queue together, this skb not
        // counted, so one large skb always gets in.
        long limit = 2L * RcvBuf + SndBufDefault / 2 + 64 * 1024;
        if ((long)_backlogLen + RmemAlloc > limit)
        {
            mib[SnmpCounter.TcpExtTCPBacklogDrop]++;
            InetProtocol.DropDelivered(Namespace, skb, DropReason.SocketBacklog);
            return;
        }
        _backlogLen += truesize;
        skb.BacklogCharge = truesize;
        skb.BacklogCoalesced = false;
        _tailEndSeq = endSeq;
        _tailAckSeq = ackSeq;
        _tailFlags = flags;
        _tailTos = tos;
        _tailDoff = doff;
        tcp[20..doff].CopyTo(_tailOpts);
        _tailFrags = skb.NrFrags;
        _tailRoom = skb.HeadShared ? -1 : skb.Tailroom;
        Link(skb);
    }

    private void Link(Skb skb)
    {
        skb.Next = null;
        if (_backlogTail is null) _backlogHead = skb;
        else _backlogTail.Next = skb;
        _backlogTail = skb;
    }

    /// <summary>skb_try_coalesce of <paramref name="from"/> (headers of <paramref name="hdr"/> bytes pulled) into the
    /// tail as it stands: its tailroom takes a small payload by copy; else the payload's frags, and a page-fragment
    /// head, become the tail's frags while they fit in MAX_SKB_FRAGS. A tail whose head is shared takes nothing
    /// (tailroom -1).</summary>
    private bool TryCoalesce(Skb from, int hdr, int len, int truesize, out int delta)
    {
        delta = 0;
        if (_tailRoom < 0) return false;
        if (len <= _tailRoom && !from.HeadShared)
        {
            _tailRoom -= len;
            return true;
        }
        if (from.FragList is not null) return false;
        int headLen = from.HeadLen - hdr;
        if (headLen > 0)
        {
            if (_tailFrags + from.NrFrags >= MaxSkbFrags) return false;
            // skb_head_is_locked: only a page-fragment head no clone shares can become a frag.
            if (!from.HeadFrag || from.HeadShared) return false;
            delta = truesize - SkbStructSize;
            _tailFrags += from.NrFrags + 1;
        }
        else
        {
            if (_tailFrags + from.NrFrags > MaxSkbFrags) return false;
            delta = truesize - (from.End + SkbStructSize + SharedInfoSize);
            _tailFrags += from.NrFrags;
        }
        // A tail with frags has no tailroom left (skb_tailroom of a non-linear skb).
        _tailRoom = 0;
        return true;
    }

    /// <summary>__release_sock's loop (also __sk_flush_backlog): the reader runs each queued skb through
    /// sk_backlog_rcv (tcp_v4_do_rcv), on its own CPU; a coalesced run of segments is one skb there, so it gets one
    /// ACK decision, after its last segment. sk_backlog.len is cleared once the backlog is empty.</summary>
    internal void ProcessBacklog(NetStack stack)
    {
        while (_backlogHead is { } skb)
        {
            _backlogHead = _backlogTail = null;
            while (skb is not null)
            {
                var next = skb.Next;
                skb.Next = null;
                // Hold the ACK while the next skb is part of the same coalesced one.
                _ackHeld = next is { BacklogCoalesced: true };
                TcpReceive.BacklogRcv(stack, this, skb, skb.BacklogCharge);
                skb = next;
            }
            _ackHeld = false;
        }
        _backlogLen = 0;
    }
}
