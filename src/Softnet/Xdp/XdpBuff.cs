namespace Softnet.Xdp;

/// <summary>XDP verdicts (enum xdp_action in include/uapi/linux/bpf.h, same values).</summary>
public enum XdpAction
{
    Aborted = 0,
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

/// <summary>
/// The xdp_buff an XDP program sees: one RX buffer with headroom in front of the frame. data_meta sits
/// just before data (empty until the program grows it); data_end bounds the frame. Offsets are relative
/// to the start of the whole buffer (data_hard_start).
/// </summary>
public ref struct XdpBuff
{
    private readonly Span<byte> _buffer;

    /// <summary>Offset of the packet data from data_hard_start.</summary>
    public int Data { get; private set; }

    /// <summary>Offset one past the last byte of packet data.</summary>
    public int DataEnd { get; private set; }

    /// <summary>Offset of metadata; equal to <see cref="Data"/> when there is none.</summary>
    public int DataMeta { get; private set; }

    /// <summary>The RX queue the frame arrived on (xdp_rxq_info.queue_index).</summary>
    public int RxQueue { get; }

    /// <summary>Reserved tailroom the frame may not grow into (skb_shared_info in the kernel).</summary>
    public int Tailroom { get; }

    public XdpBuff(Span<byte> buffer, int data, int length, int rxQueue, int tailroom = 0)
    {
        _buffer = buffer;
        Data = data;
        DataMeta = data;
        DataEnd = data + length;
        RxQueue = rxQueue;
        Tailroom = tailroom;
    }

    /// <summary>The whole RX buffer from data_hard_start (the eBPF interpreter's packet region).</summary>
    internal readonly Span<byte> Buffer => _buffer;

    /// <summary>Free room in front of the metadata (and data) for the program to grow into.</summary>
    public readonly int Headroom => DataMeta;
    public readonly int Length => DataEnd - Data;
    public readonly Span<byte> Packet => _buffer[Data..DataEnd];
    public readonly Span<byte> Meta => _buffer[DataMeta..Data];

    /// <summary>Where the frame may grow to: the buffer end less the reserved tailroom (xdp_data_hard_end).</summary>
    public readonly int HardEnd => _buffer.Length - Tailroom;

    /// <summary>Sets the bounds after an eBPF program's helpers moved them (the interpreter's context table).</summary>
    internal void SetBounds(int dataMeta, int data, int dataEnd)
    {
        DataMeta = dataMeta;
        Data = data;
        DataEnd = dataEnd;
    }

    /// <summary>bpf_xdp_adjust_head: negative delta grows the packet into the headroom. False when out of range.</summary>
    public bool AdjustHead(int delta)
    {
        int meta = DataMeta, data = Data;
        if (XdpAdjust.Head(_buffer, ref meta, ref data, DataEnd, delta) != 0) return false;
        DataMeta = meta;
        Data = data;
        return true;
    }

    /// <summary>bpf_xdp_adjust_tail: grow (zero-filled) or shrink the end of the packet.</summary>
    public bool AdjustTail(int delta)
    {
        int end = DataEnd;
        if (XdpAdjust.Tail(_buffer, Data, ref end, HardEnd, delta) != 0) return false;
        DataEnd = end;
        return true;
    }

    /// <summary>bpf_xdp_adjust_meta: negative delta grows the metadata area in front of data (4-aligned, up to 252 bytes).</summary>
    public bool AdjustMeta(int delta)
    {
        int meta = DataMeta;
        if (XdpAdjust.Meta(ref meta, Data, delta) != 0) return false;
        DataMeta = meta;
        return true;
    }
}

/// <summary>
/// The bounds arithmetic of bpf_xdp_adjust_head / _tail / _meta (net/core/filter.c), shared by <see cref="XdpBuff"/>
/// and the eBPF helpers. Offsets are from data_hard_start; the results are 0 or the kernel's negative errno.
/// </summary>
public static class XdpAdjust
{
    /// <summary>sizeof(struct xdp_frame) on x86-64: the start of the headroom is kept for it (xdp_convert_buff_to_frame
    /// writes it there on XDP_TX/REDIRECT), so neither data nor data_meta may move into it.</summary>
    public const int XdpFrameSize = 40;
    /// <summary>SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64: tailroom every XDP buffer reserves.</summary>
    public const int SkbSharedInfoSize = 320;
    /// <summary>XDP_PACKET_HEADROOM.</summary>
    public const int PacketHeadroom = 256;
    /// <summary>The most metadata xdp_metalen_invalid allows: what skb_shared_info.meta_len (a u8) holds.</summary>
    public const int MaxMetaLen = 255;
    public const int EthHlen = 14;
    public const int EINVAL = 22, EACCES = 13;

    /// <summary>bpf_xdp_adjust_head: data moves by <paramref name="delta"/>, the metadata moves with it.</summary>
    public static int Head(Span<byte> buffer, ref int dataMeta, ref int data, int dataEnd, int delta)
    {
        int metaLen = data - dataMeta;
        long newData = (long)data + delta;
        if (newData < XdpFrameSize + metaLen || newData > dataEnd - EthHlen) return -EINVAL;
        if (metaLen > 0) buffer.Slice(dataMeta, metaLen).CopyTo(buffer[(dataMeta + delta)..]);
        dataMeta += delta;
        data = (int)newData;
        return 0;
    }

    /// <summary>bpf_xdp_adjust_tail (linear buffer): at least ETH_HLEN stays, growth stops at the hard end and is
    /// zeroed (the buffer may hold an earlier frame's bytes).</summary>
    public static int Tail(Span<byte> buffer, int data, ref int dataEnd, int hardEnd, int delta)
    {
        long newEnd = (long)dataEnd + delta;
        if (newEnd > hardEnd) return -EINVAL;
        if (newEnd < data + EthHlen) return -EINVAL;
        if (delta > 0) buffer.Slice(dataEnd, delta).Clear();
        dataEnd = (int)newEnd;
        return 0;
    }

    /// <summary>bpf_xdp_adjust_meta: data_meta moves; the area must stay out of the xdp_frame room, end at data, and
    /// be a multiple of 4 that skb_shared_info.meta_len can hold (-EACCES otherwise, xdp_metalen_invalid).</summary>
    public static int Meta(ref int dataMeta, int data, int delta)
    {
        long meta = (long)dataMeta + delta;
        if (meta < XdpFrameSize || meta > data) return -EINVAL;
        long metaLen = data - meta;
        if ((metaLen & 3) != 0 || metaLen > MaxMetaLen) return -EACCES;
        dataMeta = (int)meta;
        return 0;
    }
}

/// <summary>An XDP program: C# code run on every frame of a queue before an skb exists.</summary>
public delegate XdpAction XdpProgram(ref XdpBuff ctx);

/// <summary>Per-queue verdict counters (ethtool -S rx_xdp_* style).</summary>
public sealed class XdpCounters
{
    public long Pass, Drop, Tx, Redirect, Aborted, Invalid;

    /// <summary>XDP_TX frames the transmit side refused, and XDP_REDIRECT frames with no target or refused by it
    /// (xdp_do_redirect failing); both are also in <see cref="Tx"/> / <see cref="Redirect"/>.</summary>
    public long TxErrors, RedirectErrors;

    public void Count(XdpAction action)
    {
        switch (action)
        {
            case XdpAction.Pass: Pass++; break;
            case XdpAction.Drop: Drop++; break;
            case XdpAction.Tx: Tx++; break;
            case XdpAction.Redirect: Redirect++; break;
            case XdpAction.Aborted: Aborted++; break;
            default: Invalid++; break;
        }
    }

    public long Total => Pass + Drop + Tx + Redirect + Aborted + Invalid;
}

/// <summary>Programs every user finds useful, ready to attach.</summary>
public static class XdpPrograms
{
    public static XdpAction PassAll(ref XdpBuff ctx) => XdpAction.Pass;

    public static XdpAction DropAll(ref XdpBuff ctx) => XdpAction.Drop;
}
