using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>
/// One 802.1Q / 802.1ad tag as it sits after its TPID: the 16-bit TCI (PCP, DEI, VID) followed by the
/// EtherType (or next TPID) it encapsulates. The TPID itself is the EtherType field of the header before.
/// </summary>
public readonly ref struct VlanView
{
    public const int HeaderLength = 4;

    private readonly ReadOnlySpan<byte> _data;

    private VlanView(ReadOnlySpan<byte> data) => _data = data;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> data, out VlanView view, out DropReason reason)
    {
        if (data.Length < HeaderLength)
        {
            view = default;
            reason = DropReason.VlanTruncated;
            return false;
        }
        view = new VlanView(data);
        reason = DropReason.None;
        return true;
    }

    public ushort Tci => BinaryPrimitives.ReadUInt16BigEndian(_data);
    /// <summary>Priority code point (3 bits).</summary>
    public byte Pcp => (byte)(_data[0] >> 5);
    /// <summary>Drop eligible indicator (formerly CFI).</summary>
    public bool Dei => (_data[0] & 0x10) != 0;
    /// <summary>VLAN identifier (12 bits).</summary>
    public ushort Vid => (ushort)(Tci & 0x0FFF);
    /// <summary>The EtherType (or inner TPID) that follows this tag.</summary>
    public ushort EtherType => BinaryPrimitives.ReadUInt16BigEndian(_data[2..]);
    public ReadOnlySpan<byte> Payload => _data[HeaderLength..];

    /// <summary>Writes a tag (TCI + encapsulated EtherType); the caller writes the TPID before it.</summary>
    public static void Write(Span<byte> dst, byte pcp, bool dei, ushort vid, ushort etherType)
    {
        BinaryPrimitives.WriteUInt16BigEndian(dst, (ushort)(pcp << 13 | (dei ? 0x1000 : 0) | (vid & 0x0FFF)));
        BinaryPrimitives.WriteUInt16BigEndian(dst[2..], etherType);
    }
}

/// <summary>
/// A stack of VLAN tags after an Ethernet header (QinQ and deeper), walked the way the kernel's
/// __vlan_get_protocol does, up to <see cref="MaxDepth"/> tags. A stack deeper than that leaves
/// <see cref="InnerEtherType"/> at the next TPID, which callers treat as an unknown protocol.
/// </summary>
public readonly ref struct VlanStackView
{
    public const int MaxDepth = 4;

    private readonly ReadOnlySpan<byte> _frame;
    private readonly int _tagsOffset;
    private readonly ushort _outerTpid;

    /// <summary>Number of tags found (0..MaxDepth).</summary>
    public int Count { get; }

    /// <summary>The EtherType after the last tag walked.</summary>
    public ushort InnerEtherType { get; }

    /// <summary>Offset in the frame of the header after the last tag.</summary>
    public int PayloadOffset => _tagsOffset + Count * VlanView.HeaderLength;

    private VlanStackView(ReadOnlySpan<byte> frame, int tagsOffset, ushort outerTpid, int count, ushort inner)
    {
        _frame = frame;
        _tagsOffset = tagsOffset;
        _outerTpid = outerTpid;
        Count = count;
        InnerEtherType = inner;
    }

    /// <summary>Walks the tags of an Ethernet frame (which must hold its 14-byte header).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> frame, out VlanStackView view, out DropReason reason)
    {
        if (frame.Length < EthernetView.HeaderLength)
        {
            view = default;
            reason = DropReason.EthTruncated;
            return false;
        }
        return TryParse(frame, EthernetView.HeaderLength, BinaryPrimitives.ReadUInt16BigEndian(frame[12..]), out view, out reason);
    }

    /// <summary>
    /// Walks the tags that start at <paramref name="tagsOffset"/>, introduced by <paramref name="type"/> (the
    /// protocol field of the header before: Ethernet, Linux SLL/SLL2); with no TPID there the stack is empty.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TryParse(ReadOnlySpan<byte> frame, int tagsOffset, ushort type, out VlanStackView view, out DropReason reason)
    {
        ushort outer = type;
        int off = tagsOffset;
        bool ok = TrySkip(frame, ref off, ref type, out int count);
        // On a truncated tag the tags before it stay readable (PayloadOffset is where it starts).
        view = new VlanStackView(frame, tagsOffset, outer, count, type);
        reason = ok ? DropReason.None : DropReason.VlanTruncated;
        return ok;
    }

    /// <summary>
    /// The walk itself, for the per-packet paths that need only where the tags end: moves <paramref name="offset"/>
    /// past up to <see cref="MaxDepth"/> tags and leaves <paramref name="type"/> at the EtherType after them.
    /// False on a truncated tag (<paramref name="offset"/> then at its start).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool TrySkip(ReadOnlySpan<byte> frame, ref int offset, ref ushort type, out int count)
    {
        count = 0;
        while (EtherTypes.IsVlanTpid(type) && count < MaxDepth)
        {
            if (frame.Length - offset < VlanView.HeaderLength) return false;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]);
            offset += VlanView.HeaderLength;
            count++;
        }
        return true;
    }

    /// <summary>The TPID that introduced tag <paramref name="index"/> (0 = outermost).</summary>
    public ushort Tpid(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        return index == 0 ? _outerTpid : BinaryPrimitives.ReadUInt16BigEndian(_frame[(_tagsOffset + index * VlanView.HeaderLength - 2)..]);
    }

    /// <summary>VLAN id of tag <paramref name="index"/> (0 = outermost).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Vid(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        return (ushort)(BinaryPrimitives.ReadUInt16BigEndian(_frame[(_tagsOffset + index * VlanView.HeaderLength)..]) & 0x0FFF);
    }

    /// <summary>Tag <paramref name="index"/> (0 = outermost).</summary>
    public VlanView this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
            VlanView.TryParse(_frame[(_tagsOffset + index * VlanView.HeaderLength)..], out var v, out _);
            return v;
        }
    }
}
