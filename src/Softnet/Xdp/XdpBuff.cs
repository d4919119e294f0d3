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

    /// <summary>bpf_xdp_adjust_head: negative delta grows the packet into the headroom. False when out of range.</summary>
    public bool AdjustHead(int delta)
    {
        int metaLen = Data - DataMeta;
        int data = Data + delta;
        // Metadata moves with data; at least an Ethernet header must remain.
        if (data - metaLen < 0 || data > DataEnd - 14) return false;
        if (metaLen > 0) _buffer.Slice(DataMeta, metaLen).CopyTo(_buffer[(data - metaLen)..]);
        DataMeta = data - metaLen;
        Data = data;
        return true;
    }

    /// <summary>bpf_xdp_adjust_tail: grow or shrink the end of the packet.</summary>
    public bool AdjustTail(int delta)
    {
        int end = DataEnd + delta;
        if (end < Data + 14 || end > _buffer.Length - Tailroom) return false;
        DataEnd = end;
        return true;
    }

    /// <summary>bpf_xdp_adjust_meta: negative delta grows the metadata area in front of data (at most 32 bytes, 4-aligned).</summary>
    public bool AdjustMeta(int delta)
    {
        int meta = DataMeta + delta;
        int metaLen = Data - meta;
        if (meta < 0 || metaLen < 0 || metaLen > 32 || (metaLen & 3) != 0) return false;
        DataMeta = meta;
        return true;
    }
}

/// <summary>An XDP program: C# code run on every frame of a queue before an skb exists.</summary>
public delegate XdpAction XdpProgram(ref XdpBuff ctx);

/// <summary>Per-queue verdict counters (ethtool -S rx_xdp_* style).</summary>
public sealed class XdpCounters
{
    public long Pass, Drop, Tx, Redirect, Aborted, Invalid;

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
