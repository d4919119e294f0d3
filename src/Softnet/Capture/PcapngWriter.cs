using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Softnet.Capture;

/// <summary>
/// pcapng writer: one little-endian section, one IDB per interface (if_name, if_tsresol) and an EPB per
/// frame. Each interface keeps the clock its <see cref="CaptureInterface.TicksPerSecond"/> names: a power
/// of ten (1e9 writes if_tsresol=9) or a power of two; 1e6, the pcapng default, writes no option.
/// </summary>
public sealed class PcapngWriter : ICaptureWriter
{
    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private readonly CaptureInterface[] _interfaces;
    private readonly long[] _nsPerTick; // > 0: ticks = ns / v; < 0: ticks = ns * -v; 0: binary clock
    private readonly int[] _binaryShift;
    private readonly byte[] _hdr = new byte[28];

    public PcapngWriter(Stream stream, IReadOnlyList<CaptureInterface> interfaces, bool ownsStream = true)
    {
        if (interfaces.Count == 0) throw new ArgumentException("pcapng needs at least one interface", nameof(interfaces));
        _stream = stream;
        _ownsStream = ownsStream;
        _interfaces = [.. interfaces];
        _nsPerTick = new long[_interfaces.Length];
        _binaryShift = new int[_interfaces.Length];

        // SHB: byte-order magic, version 1.0, section length unknown (-1), no options.
        Span<byte> shb = stackalloc byte[28];
        BinaryPrimitives.WriteUInt32LittleEndian(shb, PcapngReader.ShbType);
        BinaryPrimitives.WriteUInt32LittleEndian(shb[4..], 28);
        BinaryPrimitives.WriteUInt32LittleEndian(shb[8..], PcapngReader.ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(shb[12..], 1);
        BinaryPrimitives.WriteUInt16LittleEndian(shb[14..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(shb[16..], -1);
        BinaryPrimitives.WriteUInt32LittleEndian(shb[24..], 28);
        _stream.Write(shb);

        for (int i = 0; i < _interfaces.Length; i++)
            WriteIdb(i, _interfaces[i]);
    }

    /// <summary>Creates a pcapng file with the given interfaces.</summary>
    public static PcapngWriter Create(string path, IReadOnlyList<CaptureInterface> interfaces)
        => new(new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, 1 << 16), interfaces);

    /// <summary>Creates a pcapng file with one nanosecond interface of <paramref name="linkType"/>.</summary>
    public static PcapngWriter Create(string path, LinkType linkType)
        => Create(path, [new CaptureInterface(linkType, PcapReader.DefaultMaxRecord, null, 1_000_000_000)]);

    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    private void WriteIdb(int index, CaptureInterface ifc)
    {
        byte tsresol;
        long tps = ifc.TicksPerSecond;
        if (tps <= 0) throw new ArgumentException($"interface {index}: TicksPerSecond {tps} must be positive");
        if ((tps & (tps - 1)) == 0 && tps > 1 && !IsPowerOf10(tps, out _))
        {
            int shift = BitOperations.Log2((ulong)tps);
            tsresol = (byte)(0x80 | shift);
            _binaryShift[index] = shift;
        }
        else if (IsPowerOf10(tps, out int exp))
        {
            tsresol = (byte)exp;
            _nsPerTick[index] = exp <= 9 ? 1_000_000_000L / tps : -(tps / 1_000_000_000L);
        }
        else throw new ArgumentException($"interface {index}: TicksPerSecond {tps} is neither a power of 10 nor of 2");

        byte[] name = ifc.Name is null ? [] : Encoding.UTF8.GetBytes(ifc.Name);
        if (name.Length > ushort.MaxValue - 3) throw new ArgumentException($"interface {index}: name too long");
        int optLen = (name.Length > 0 ? 4 + Pad4(name.Length) : 0) + (exp6(tsresol) ? 0 : 8) + 4;
        int total = 8 + 8 + optLen + 4;
        var b = new byte[total];
        BinaryPrimitives.WriteUInt32LittleEndian(b, PcapngReader.IdbType);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)total);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), (ushort)ifc.LinkType);
        BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan(12), ifc.SnapLength);
        int o = 16;
        if (name.Length > 0)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o), 2); // if_name
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o + 2), (ushort)name.Length);
            name.CopyTo(b, o + 4);
            o += 4 + Pad4(name.Length);
        }
        if (!exp6(tsresol))
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o), 9); // if_tsresol
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o + 2), 1);
            b[o + 4] = tsresol;
            o += 8;
        }
        o += 4; // opt_endofopt: zeros
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o), (uint)total);
        _stream.Write(b);

        static bool exp6(byte r) => r == 6;
    }

    private static bool IsPowerOf10(long v, out int exp)
    {
        exp = 0;
        while (v > 1 && v % 10 == 0) { v /= 10; exp++; }
        return v == 1;
    }

    private static int Pad4(int n) => (n + 3) & ~3;

    public void Write(long timestampNs, ReadOnlySpan<byte> frame, int originalLength = -1, int interfaceId = 0)
    {
        if ((uint)interfaceId >= (uint)_interfaces.Length)
            throw new ArgumentOutOfRangeException(nameof(interfaceId), $"interface {interfaceId} was not declared ({_interfaces.Length} interfaces)");
        int snap = _interfaces[interfaceId].SnapLength;
        int orig = originalLength < 0 ? frame.Length : originalLength;
        if (snap > 0 && frame.Length > snap) frame = frame[..snap];

        long per = _nsPerTick[interfaceId];
        ulong ticks = per > 0 ? (ulong)timestampNs / (ulong)per
            : per < 0 ? unchecked((ulong)timestampNs * (ulong)-per)
            : (ulong)(((UInt128)(ulong)timestampNs << _binaryShift[interfaceId]) / 1_000_000_000UL);

        int padded = Pad4(frame.Length);
        int total = 32 + padded;
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr, PcapngReader.EpbType);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(4), (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(8), (uint)interfaceId);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(12), (uint)(ticks >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(16), (uint)ticks);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(20), (uint)frame.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(_hdr.AsSpan(24), (uint)orig);
        _stream.Write(_hdr);
        _stream.Write(frame);
        // Zero padding to a 4-byte boundary, then the trailing copy of the total length.
        Span<byte> tail = stackalloc byte[8];
        tail.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(tail[(padded - frame.Length)..], (uint)total);
        _stream.Write(tail[..(padded - frame.Length + 4)]);
    }

    /// <summary>As <see cref="Write(long, ReadOnlySpan{byte}, int, int)"/>, with an opt_comment on the EPB (what
    /// tshark shows as frame.comment): a packet's trace journey, a note. Comments longer than an option holds are cut.</summary>
    public void Write(long timestampNs, ReadOnlySpan<byte> frame, string comment, int originalLength = -1, int interfaceId = 0)
    {
        if ((uint)interfaceId >= (uint)_interfaces.Length)
            throw new ArgumentOutOfRangeException(nameof(interfaceId), $"interface {interfaceId} was not declared ({_interfaces.Length} interfaces)");
        int snap = _interfaces[interfaceId].SnapLength;
        int orig = originalLength < 0 ? frame.Length : originalLength;
        if (snap > 0 && frame.Length > snap) frame = frame[..snap];
        byte[] text = Encoding.UTF8.GetBytes(comment);
        int textLen = Math.Min(text.Length, ushort.MaxValue - 3);
        long per = _nsPerTick[interfaceId];
        ulong ticks = per > 0 ? (ulong)timestampNs / (ulong)per
            : per < 0 ? unchecked((ulong)timestampNs * (ulong)-per)
            : (ulong)(((UInt128)(ulong)timestampNs << _binaryShift[interfaceId]) / 1_000_000_000UL);
        int padded = Pad4(frame.Length);
        int options = 4 + Pad4(textLen) + 4; // opt_comment, opt_endofopt
        int total = 32 + padded + options;
        var b = new byte[total];
        BinaryPrimitives.WriteUInt32LittleEndian(b, PcapngReader.EpbType);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), (uint)interfaceId);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), (uint)(ticks >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)ticks);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(20), (uint)frame.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), (uint)orig);
        frame.CopyTo(b.AsSpan(28));
        int o = 28 + padded;
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o), 1); // opt_comment
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o + 2), (ushort)textLen);
        text.AsSpan(0, textLen).CopyTo(b.AsSpan(o + 4));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(total - 4), (uint)total);
        _stream.Write(b);
    }

    public void Flush() => _stream.Flush();

    public void Dispose()
    {
        _stream.Flush();
        if (_ownsStream) _stream.Dispose();
    }
}
