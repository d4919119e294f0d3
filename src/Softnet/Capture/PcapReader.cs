using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Softnet.Capture;

/// <summary>
/// Classic libpcap file reader (the format of libpcap's sf-pcap.c): the four standard magics,
/// microsecond or nanosecond, either byte order, any link type. Streams through one reusable buffer.
/// </summary>
public sealed class PcapReader : ICaptureReader
{
    internal const uint MagicMicro = 0xa1b2c3d4;
    internal const uint MagicNano = 0xa1b23c4d;
    internal const int FileHeaderLength = 24;
    internal const int RecordHeaderLength = 16;

    /// <summary>libpcap's largest snapshot for ordinary link types; records past it are corruption.</summary>
    public const int DefaultMaxRecord = 262144;

    /// <summary>Upper bound on a record even when the header declares a larger snaplen.</summary>
    private const int HardMaxRecord = 64 << 20;

    private readonly CaptureInput _in;
    private readonly bool _bigEndian;
    private readonly bool _nanos;
    private readonly int _maxRecord;
    private readonly CaptureInterface[] _interfaces;
    private readonly LinkType _linkType;
    // Records in this host's byte order, and no failure yet: TryRead reads them straight off the window.
    private bool _native;
    private long _record; // 1-based number of the next record, for messages
    private CaptureFormatException? _failed;

    /// <summary>Opens a pcap stream; the file header is read and checked here.</summary>
    public PcapReader(Stream stream, bool ownsStream = true) : this(new StreamCaptureInput(stream, ownsStream)) { }

    internal PcapReader(CaptureInput input)
    {
        _in = input;
        try
        {
            if (!_in.Ensure(FileHeaderLength))
                throw new CaptureFormatException($"pcap file header truncated ({_in.Available} of {FileHeaderLength} bytes)", 0, "pcap file header");
            var h = _in.Peek(FileHeaderLength);
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(h);
            switch (magic)
            {
                case MagicMicro: break;
                case MagicNano: _nanos = true; break;
                default:
                    magic = BinaryPrimitives.ReverseEndianness(magic);
                    _bigEndian = true;
                    if (magic == MagicNano) _nanos = true;
                    else if (magic != MagicMicro)
                        throw new CaptureFormatException($"not a pcap file (magic 0x{BinaryPrimitives.ReadUInt32BigEndian(h):x8})", 0, "pcap file header");
                    break;
            }
            uint snap = U32(h[16..]);
            uint linkRaw = U32(h[20..]);
            // libpcap keeps FCS flags in the top bits of this field (LT_LINKTYPE masks them off).
            var link = (LinkType)(linkRaw & 0x03FFFFFF);
            SnapLength = snap > int.MaxValue ? int.MaxValue : (int)snap;
            _maxRecord = (int)Math.Max(DefaultMaxRecord, Math.Min(snap, HardMaxRecord));
            _interfaces = [new CaptureInterface(link, SnapLength, null, _nanos ? 1_000_000_000 : 1_000_000)];
            _linkType = link;
            _native = _bigEndian != BitConverter.IsLittleEndian;
            VersionMajor = U16(h[4..]);
            VersionMinor = U16(h[6..]);
            _in.Advance(FileHeaderLength);
            _record = 1;
        }
        catch
        {
            _in.Dispose();
            throw;
        }
    }

    /// <summary>Opens a pcap file (mapped when it is a regular file, see <see cref="CaptureReader.Open(string, int, CaptureFileAccess)"/>).</summary>
    public static PcapReader Open(string path) => new(CaptureInput.OpenFile(path));

    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    public long Position => _in.Position;

    /// <summary>How the file is held (mapped or streamed) and the most of it held at once.</summary>
    public CaptureInputInfo Input => new(_in.Mapped, _in.PeakHeldBytes);

    /// <summary>Link type from the file header.</summary>
    public LinkType LinkType => _interfaces[0].LinkType;

    /// <summary>Snapshot length from the file header.</summary>
    public int SnapLength { get; }

    /// <summary>True for the 0xa1b23c4d magic.</summary>
    public bool Nanosecond => _nanos;

    /// <summary>True when the file was written big-endian.</summary>
    public bool BigEndian => _bigEndian;

    public ushort VersionMajor { get; }
    public ushort VersionMinor { get; }

    /// <summary>Frames returned so far.</summary>
    public long FramesRead => _record - 1;

    public unsafe bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        // The usual record: in the host's byte order, header and data inside the window. Read off the window without
        // spans (a span local costs the frame's zeroing and a re-check per field), one length test each.
        if (_native)
        {
            _in.PrefetchAhead();
            byte* h = _in.Here(RecordHeaderLength);
            if (h != null)
            {
                uint incl = Unsafe.ReadUnaligned<uint>(h + 8);
                int total = RecordHeaderLength + (int)incl;
                if (incl <= (uint)_maxRecord && _in.Here(total) != null)
                {
                    meta = Meta(Unsafe.ReadUnaligned<uint>(h), Unsafe.ReadUnaligned<uint>(h + 4), Unsafe.ReadUnaligned<uint>(h + 12));
                    data = new ReadOnlySpan<byte>(h + RecordHeaderLength, (int)incl);
                    _in.Advance(total);
                    _record++;
                    return true;
                }
            }
        }
        return TryReadChecked(out meta, out data);
    }

    /// <summary>Every other record: the window moved, the other byte order, a bad length, the end of the file.</summary>
    private bool TryReadChecked(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (_failed is not null) throw _failed;
        meta = default;
        data = default;
        long at = _in.Position;
        _in.PrefetchAhead();
        if (!_in.Ensure(RecordHeaderLength))
        {
            if (_in.Available == 0) return false;
            throw Fail($"pcap record #{_record} header truncated ({_in.Available} of {RecordHeaderLength} bytes)", at);
        }
        var h = _in.Peek(RecordHeaderLength);
        uint sec = U32(h), frac = U32(h[4..]), incl = U32(h[8..]), orig = U32(h[12..]);
        if (incl > (uint)_maxRecord)
            throw Fail($"pcap record #{_record} captured length {incl} exceeds the limit {_maxRecord}", at);
        int total = RecordHeaderLength + (int)incl;
        if (!_in.Ensure(total))
            throw Fail($"pcap record #{_record} data truncated ({_in.Available - RecordHeaderLength} of {incl} bytes)", at);
        data = _in.Peek(total)[RecordHeaderLength..];
        meta = Meta(sec, frac, orig);
        _in.Advance(total);
        _record++;
        return true;
    }

    /// <summary>A record's metadata from its header's timestamp (seconds and the fraction) and original length.</summary>
    private FrameMeta Meta(uint sec, uint frac, uint orig)
        => new(sec * 1_000_000_000L + (_nanos ? frac : frac * 1000L), orig > int.MaxValue ? int.MaxValue : (int)orig, _linkType, 0);

    /// <summary>Reads every record through the checked path (tests compare it with the window fast path).</summary>
    internal void UseCheckedPath() => _native = false;

    private CaptureFormatException Fail(string message, long offset)
    {
        _native = false; // every later call rethrows
        return _failed = new CaptureFormatException(message, offset, $"pcap record #{_record}");
    }

    private uint U32(ReadOnlySpan<byte> s)
        => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);

    private ushort U16(ReadOnlySpan<byte> s)
        => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);

    public void Dispose() => _in.Dispose();
}
