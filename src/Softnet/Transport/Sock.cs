using System.Text;
using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Transport;

/// <summary>
/// A socket a scenario opens (ns/NAME/sockets, one per line) together with the application that reads it: struct
/// sock's receive side (sk_rcvbuf, sk_rmem_alloc, sk_drops) and a reader that keeps up: it runs once the softirq work
/// of each arriving frame is done (<see cref="NetStack"/>), as a reader woken by sk_data_ready on an idle CPU would.
/// </summary>
public abstract class Sock
{
    /// <summary>SOCK_MIN_RCVBUF: TCP_SKB_MIN_TRUESIZE, 2048 bytes plus an aligned struct sk_buff (SO_RCVBUF 1 reads back
    /// 2304 on 6.18; twice that is SOCK_MIN_SNDBUF).</summary>
    public const int SockMinRcvbuf = 2048 + 256;

    protected Sock(Namespace ns, string line, SockAddr local, int? rcvbuf, int cpu)
    {
        Namespace = ns;
        Line = line;
        Local = local;
        // sock_setsockopt(SO_RCVBUF) → __sock_set_rcvbuf: capped at net.core.rmem_max, doubled for overhead, locked.
        if (rcvbuf is int v)
        {
            RcvBuf = Math.Max(Math.Min(v, ns.RmemMax) * 2, SockMinRcvbuf);
            RcvBufLocked = true;
        }
        else RcvBuf = DefaultRcvBuf;
        Cpu = cpu;
    }

    public Namespace Namespace { get; }
    /// <summary>The line of the sockets file (comment stripped, trimmed): sockets.txt repeats it.</summary>
    public string Line { get; }
    public SockAddr Local { get; }
    /// <summary>sk_rcvbuf, bytes of truesize the receive queue may hold.</summary>
    public int RcvBuf { get; protected set; }
    /// <summary>SOCK_RCVBUF_LOCK: the application set SO_RCVBUF, so TCP does not tune it.</summary>
    public bool RcvBufLocked { get; protected set; }
    /// <summary>The CPU the reader runs on (-1: not pinned).</summary>
    public int Cpu { get; }
    /// <summary>sk_rxhash: the flow hash of the last skb received (sock_rps_save_rxhash), which RFS records with the
    /// reader's CPU when the reader runs.</summary>
    public uint RxHash;
    /// <summary>sk_rmem_alloc: truesize of what is queued and not yet read.</summary>
    public int RmemAlloc;
    /// <summary>sk_drops.</summary>
    public long Drops;

    /// <summary>sock_init_data: net.core.rmem_default for a socket that never set SO_RCVBUF.</summary>
    protected virtual int DefaultRcvBuf => Namespace.RmemDefault;

    /// <summary>What the reader got: datagrams or connections, payload bytes, and the replay-clock times of its first
    /// and last read with data (the receiver's throughput in the report, as iperf3's server prints it).</summary>
    public readonly record struct ReadStats(long Items, long Bytes, long FirstNs, long LastNs)
    {
        public double Seconds => LastNs > FirstNs ? (LastNs - FirstNs) / 1e9 : 0;
        public double BitsPerSecond => Seconds > 0 ? Bytes * 8 / Seconds : 0;
    }

    private long _readItems, _readBytes, _firstReadNs = -1, _lastReadNs;

    /// <summary>The reader got <paramref name="bytes"/> (one datagram, or a connection's read) at <paramref name="nowNs"/>.</summary>
    protected void NoteRead(long items, long bytes, long nowNs)
    {
        _readItems += items;
        _readBytes += bytes;
        if (_firstReadNs < 0) _firstReadNs = nowNs;
        _lastReadNs = nowNs;
    }

    /// <summary>The reader's totals so far.</summary>
    public virtual ReadStats Stats => new(_readItems, _readBytes, Math.Max(_firstReadNs, 0), _lastReadNs);

    /// <summary>Next socket in the same hash slot.</summary>
    internal Sock? NextInSlot;
    /// <summary>On the stack's list of sockets with data for their reader.</summary>
    internal bool ReaderWoken;

    /// <summary>Wake-ups of a pinned reader (sk_data_ready with the reader not already woken), and those issued on the
    /// reader's own CPU: schedstat's ttwu_count and ttwu_local for this reader. A local wake-up comes from softirq
    /// work on the reader's CPU, which runs before the reader does: the reader then reads what that work queued in one
    /// go. A remote one (an IPI) runs the reader beside the softirq, a read for what each wake-up brought.</summary>
    public readonly record struct WakeStats(long Wakeups, long Local)
    {
        public double LocalShare => Wakeups > 0 ? (double)Local / Wakeups : 0;
        public static WakeStats operator +(WakeStats a, WakeStats b) => new(a.Wakeups + b.Wakeups, a.Local + b.Local);
    }

    private WakeStats _wakes;

    /// <summary>This reader's wake-ups so far (a listening socket's: its connections' too).</summary>
    public virtual WakeStats Wakes => _wakes;

    internal void NoteWake(bool local) => _wakes = new(_wakes.Wakeups + 1, _wakes.Local + (local ? 1 : 0));

    /// <summary>The application's turn: it reads what is queued (and, for TCP, closes on EOF).</summary>
    public abstract void Read(NetStack stack);

    /// <summary>Bytes a read would copy now (what a reader's CPU cost is reckoned from).</summary>
    public virtual long ReadableBytes => RmemAlloc;

    /// <summary>sockets.txt's lines for this socket: <see cref="Line"/>, then one indented line per datagram or
    /// connection.</summary>
    public abstract void WriteDump(StringBuilder sb);

    /// <summary>
    /// The truesize a received segment charges to sk_rmem_alloc. A frame that came over a veth was built by its
    /// sender in one kmalloc'd head (an AF_PACKET send: LL_RESERVED_SPACE 16 bytes of headroom before the frame,
    /// SKB_DATA_ALIGN, the 320-byte skb_shared_info, rounded to the kmalloc size class) plus a 256-byte struct
    /// sk_buff: 2304 for a full 1514-byte frame, as the kernel shows. Other skbs charge their own truesize.
    /// </summary>
    public static int ChargeSize(Device dev, Skb skb)
    {
        if (dev.Kind.Name != "veth" || skb.IsNonlinear) return skb.TrueSize;
        int frame = skb.Len + 14;
        int size = ((16 + frame + 63) & ~63) + 320;
        int bucket = size <= 96 ? 96 : size <= 128 ? 128 : size <= 192 ? 192 : (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)size);
        return bucket + 256;
    }

    /// <summary>The first 16 hex digits of a SHA-256, as sockets.txt prints them.</summary>
    public static string Hex16(ulong sha) => sha.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
}
