using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Packets.Headers;

/// <summary>TCP option kinds (IANA).</summary>
public static class TcpOptionKinds
{
    public const byte EndOfList = 0;
    public const byte Nop = 1;
    public const byte Mss = 2;
    public const byte WindowScale = 3;
    public const byte SackPermitted = 4;
    public const byte Sack = 5;
    public const byte Timestamps = 8;
}

/// <summary>
/// Walks TCP options one at a time. Each option's length is checked against the option space before it is
/// exposed; a length below 2 or past the end stops the walk with <see cref="Error"/> set.
/// </summary>
public ref struct TcpOptionReader
{
    private readonly ReadOnlySpan<byte> _options;
    private int _pos;

    public TcpOptionReader(ReadOnlySpan<byte> options) => _options = options;

    public byte Kind { get; private set; }
    /// <summary>Total option length including kind and length bytes (1 for NOP and EOL).</summary>
    public int Length { get; private set; }
    /// <summary>Offset of the current option within the option space.</summary>
    public int Offset { get; private set; }
    public DropReason Error { get; private set; }
    /// <summary>The option's value bytes (after kind and length).</summary>
    public readonly ReadOnlySpan<byte> Data => Length > 2 ? _options.Slice(Offset + 2, Length - 2) : default;

    /// <summary>Moves to the next option (NOP and EOL included); false at the end or on a malformed option.</summary>
    public bool MoveNext()
    {
        if (_pos >= _options.Length) return false;
        byte kind = _options[_pos];
        Offset = _pos;
        Kind = kind;
        if (kind == TcpOptionKinds.EndOfList)
        {
            Length = 1;
            _pos = _options.Length; // nothing after EOL is an option
            return true;
        }
        if (kind == TcpOptionKinds.Nop)
        {
            Length = 1;
            _pos++;
            return true;
        }
        int remaining = _options.Length - _pos;
        if (remaining < 2 || _options[_pos + 1] < 2 || _options[_pos + 1] > remaining)
        {
            Error = DropReason.TcpOptionsMalformed;
            _pos = _options.Length;
            return false;
        }
        Length = _options[_pos + 1];
        _pos += Length;
        return true;
    }
}

/// <summary>Up to four SACK blocks (left, right edge pairs).</summary>
[InlineArray(8)]
public struct SackEdges
{
    private uint _e0;
}

/// <summary>
/// Parsed TCP options: the ones tcp_parse_options acts on. As in the kernel, an option whose length does
/// not match its kind is ignored rather than fatal; a length byte that overruns the option space is malformed.
/// </summary>
public struct TcpOptions
{
    public bool HasMss;
    public ushort Mss;
    public bool HasWindowScale;
    public byte WindowScale;
    public bool SackPermitted;
    public bool HasTimestamps;
    public uint TsVal;
    public uint TsEcr;
    /// <summary>Number of SACK blocks (0..4).</summary>
    public byte SackBlockCount;
    /// <summary>Options of kinds not listed above (or listed with a wrong length).</summary>
    public byte UnknownCount;
    public SackEdges SackEdges;

    public readonly uint SackLeft(int i) => SackEdges[2 * i];
    public readonly uint SackRight(int i) => SackEdges[2 * i + 1];

    /// <summary>tcp_parse_options over <see cref="TcpOptionReader"/>, with the aligned-timestamp fast path.</summary>
    public static bool TryParse(ReadOnlySpan<byte> options, out TcpOptions parsed, out DropReason reason)
    {
        parsed = default;
        // Fast path for the layout Linux sends on every established segment (NOP, NOP, timestamps),
        // the same shortcut as tcp_parse_aligned_timestamp.
        if (options.Length == 12 && BinaryPrimitives.ReadUInt32BigEndian(options) == 0x0101080Au)
        {
            parsed.HasTimestamps = true;
            parsed.TsVal = BinaryPrimitives.ReadUInt32BigEndian(options[4..]);
            parsed.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(options[8..]);
            reason = DropReason.None;
            return true;
        }
        var reader = new TcpOptionReader(options);
        while (reader.MoveNext())
        {
            int len = reader.Length;
            var v = reader.Data;
            switch (reader.Kind)
            {
                case TcpOptionKinds.EndOfList:
                case TcpOptionKinds.Nop:
                    break;
                case TcpOptionKinds.Mss when len == 4:
                    parsed.HasMss = true;
                    parsed.Mss = BinaryPrimitives.ReadUInt16BigEndian(v);
                    break;
                case TcpOptionKinds.WindowScale when len == 3:
                    parsed.HasWindowScale = true;
                    parsed.WindowScale = v[0];
                    break;
                case TcpOptionKinds.SackPermitted when len == 2:
                    parsed.SackPermitted = true;
                    break;
                case TcpOptionKinds.Timestamps when len == 10:
                    parsed.HasTimestamps = true;
                    parsed.TsVal = BinaryPrimitives.ReadUInt32BigEndian(v);
                    parsed.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(v[4..]);
                    break;
                case TcpOptionKinds.Sack when len >= 10 && ((len - 2) & 7) == 0:
                    int blocks = Math.Min((len - 2) >> 3, 4);
                    for (int b = 0; b < blocks; b++)
                    {
                        parsed.SackEdges[2 * b] = BinaryPrimitives.ReadUInt32BigEndian(v[(b * 8)..]);
                        parsed.SackEdges[2 * b + 1] = BinaryPrimitives.ReadUInt32BigEndian(v[(b * 8 + 4)..]);
                    }
                    parsed.SackBlockCount = (byte)blocks;
                    break;
                default:
                    if (parsed.UnknownCount < byte.MaxValue) parsed.UnknownCount++;
                    break;
            }
        }
        if (reader.Error != DropReason.None)
        {
            reason = reader.Error;
            return false;
        }
        reason = DropReason.None;
        return true;
    }
}
