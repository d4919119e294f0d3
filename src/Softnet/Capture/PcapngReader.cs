using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace Softnet.Capture;

/// <summary>
/// pcapng reader (draft-ietf-opsawg-pcapng): SHB in either byte order and any number of sections,
/// IDB with if_name / if_tsresol / if_tsoffset, EPB, SPB and the obsolete OPB; other blocks are skipped.
/// Streams through one reusable buffer.
/// </summary>
/// <remarks>
/// Interface ids in a file restart at 0 in every section. <see cref="Interfaces"/> keeps every IDB
/// seen so far, in file order, and <see cref="FrameMeta.InterfaceId"/> indexes that list (as Wireshark
/// numbers interfaces), so in a one-section file it is exactly the EPB's interface id.
/// </remarks>
public sealed class PcapngReader : ICaptureReader
{
    internal const uint ShbType = 0x0A0D0D0A;
    internal const uint IdbType = 0x00000001;
    internal const uint OpbType = 0x00000002;
    internal const uint SpbType = 0x00000003;
    internal const uint EpbType = 0x00000006;
    internal const uint ByteOrderMagic = 0x1A2B3C4D;

    /// <summary>Largest block read whole (packet blocks, IDB, SHB); larger unknown blocks are skipped in pieces.</summary>
    public const int MaxBlockLength = 16 << 20;

    private readonly CaptureInput _in;
    private readonly List<CaptureInterface> _interfaces = [];
    // Per interface of the current section: timestamp conversion and snaplen.
    private readonly List<TsConv> _conv = [];
    private bool _bigEndian;
    // The current section is in this host's byte order and nothing has failed: TryRead reads its EPBs straight off the window.
    private bool _native;
    private bool _checkedOnly; // tests: every block through the checked path
    private int _sectionBase; // index in _interfaces of the current section's interface 0
    private int _sections;
    private long _blocks;
    private CaptureFormatException? _failed;

    /// <summary>Opens a pcapng stream; the first section header is read and checked here.</summary>
    public PcapngReader(Stream stream, bool ownsStream = true) : this(new StreamCaptureInput(stream, ownsStream)) { }

    internal PcapngReader(CaptureInput input)
    {
        _in = input;
        try
        {
            if (!_in.Ensure(12))
                throw new CaptureFormatException($"pcapng section header truncated ({_in.Available} of 12 bytes)", 0, "pcapng SHB");
            if (BinaryPrimitives.ReadUInt32LittleEndian(_in.Peek(4)) != ShbType)
                throw new CaptureFormatException($"not a pcapng file (first block type 0x{BinaryPrimitives.ReadUInt32BigEndian(_in.Peek(4)):x8})", 0, "pcapng SHB");
            ReadSectionHeader();
        }
        catch
        {
            _in.Dispose();
            throw;
        }
    }

    /// <summary>Opens a pcapng file.</summary>
    public static PcapngReader Open(string path) => new(CaptureInput.OpenFile(path));

    public IReadOnlyList<CaptureInterface> Interfaces => _interfaces;

    public long Position => _in.Position;

    /// <summary>How the file is held (mapped or streamed) and the most of it held at once.</summary>
    public CaptureInputInfo Input => new(_in.Mapped, _in.PeakHeldBytes);

    /// <summary>Byte order of the current section.</summary>
    public bool BigEndian => _bigEndian;

    /// <summary>Sections seen so far.</summary>
    public int Sections => _sections;

    public unsafe bool TryRead(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        // The usual block: an EPB of the host's byte order, whole inside the window, from an interface the section
        // described. It is read off the window without spans, with the checked path's tests (the lengths, the trailer,
        // the captured length within the block, the interface id); anything else takes that path.
        if (_native)
        {
            _in.PrefetchAhead();
            byte* b = _in.Here(EpbMinLength);
            if (b != null && Unsafe.ReadUnaligned<uint>(b) == EpbType)
            {
                uint len = Unsafe.ReadUnaligned<uint>(b + 4), iface = Unsafe.ReadUnaligned<uint>(b + 8);
                var conv = CollectionsMarshal.AsSpan(_conv);
                if (len >= EpbMinLength && (len & 3) == 0 && len <= MaxBlockLength && iface < (uint)conv.Length
                    && _in.Here((int)len) != null && Unsafe.ReadUnaligned<uint>(b + len - 4) == len)
                {
                    uint cap = Unsafe.ReadUnaligned<uint>(b + 20);
                    if (cap <= len - EpbMinLength)
                    {
                        ulong ticks = ((ulong)Unsafe.ReadUnaligned<uint>(b + 12) << 32) | Unsafe.ReadUnaligned<uint>(b + 16);
                        ref readonly TsConv c = ref conv[(int)iface];
                        meta = PacketMeta(in c, ticks, Unsafe.ReadUnaligned<uint>(b + 24), iface);
                        data = new ReadOnlySpan<byte>(b + 28, (int)cap);
                        _in.Advance((int)len);
                        _blocks++;
                        return true;
                    }
                }
            }
        }
        return TryReadChecked(out meta, out data);
    }

    /// <summary>An EPB's header (8), fixed fields (20) and trailing length (4).</summary>
    private const int EpbMinLength = 32;

    /// <summary>Every other block: the window moved, another byte order, another block type, a bad length, the end.</summary>
    private bool TryReadChecked(out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (_failed is not null) throw _failed;
        meta = default;
        data = default;
        while (true)
        {
            long at = _in.Position;
            _in.PrefetchAhead();
            if (!_in.Ensure(8))
            {
                if (_in.Available == 0) return false;
                throw Fail($"block header truncated ({_in.Available} of 8 bytes)", at, "pcapng block");
            }
            uint type = U32(_in.Peek(8));
            if (type == ShbType)
            {
                ReadSectionHeader();
                continue;
            }
            uint len = U32(_in.Peek(8)[4..]);
            string name = BlockName(type);
            if (len < 12 || len % 4 != 0)
                throw Fail($"block total length {len} is {(len % 4 != 0 ? "not a multiple of 4" : "below the minimum 12")}", at, name);
            bool known = type is IdbType or EpbType or SpbType or OpbType;
            if (!known)
            {
                // NRB, ISB, DSB, custom and anything newer: skip, checking only the trailing length.
                if (!_in.Skip(len - 4L))
                    throw Fail($"block truncated (declares {len} bytes)", at, name);
                if (!_in.Ensure(4))
                    throw Fail($"block truncated (declares {len} bytes)", at, name);
                uint trailer = U32(_in.Peek(4));
                if (trailer != len)
                    throw Fail($"trailing block length {trailer} differs from {len}", at, name);
                _in.Advance(4);
                _blocks++;
                continue;
            }
            if (len > MaxBlockLength)
                throw Fail($"block total length {len} exceeds the limit {MaxBlockLength}", at, name);
            int total = (int)len;
            if (!_in.Ensure(total))
                throw Fail($"block truncated ({_in.Available} of {len} bytes)", at, name);
            var block = _in.Peek(total);
            uint trail = U32(block[(total - 4)..]);
            if (trail != len)
                throw Fail($"trailing block length {trail} differs from {len}", at, name);
            var body = block[8..(total - 4)];
            bool got = type switch
            {
                IdbType => ReadIdb(body, at),
                EpbType => ReadEpb(body, at, out meta, out data),
                SpbType => ReadSpb(body, at, out meta, out data),
                _ => ReadOpb(body, at, out meta, out data),
            };
            _in.Advance(total);
            _blocks++;
            if (got) return true;
        }
    }

    private void ReadSectionHeader()
    {
        long at = _in.Position;
        const string name = "pcapng SHB";
        if (!_in.Ensure(12))
            throw Fail($"section header truncated ({_in.Available} of 12 bytes)", at, name);
        var h = _in.Peek(12);
        uint bom = BinaryPrimitives.ReadUInt32LittleEndian(h[8..]);
        if (bom == ByteOrderMagic) _bigEndian = false;
        else if (bom == BinaryPrimitives.ReverseEndianness(ByteOrderMagic)) _bigEndian = true;
        else throw Fail($"bad byte-order magic 0x{BinaryPrimitives.ReadUInt32BigEndian(h[8..]):x8}", at, name);
        _native = !_checkedOnly && _bigEndian != BitConverter.IsLittleEndian;
        uint len = U32(h[4..]);
        if (len < 28 || len % 4 != 0)
            throw Fail($"block total length {len} is {(len % 4 != 0 ? "not a multiple of 4" : "below the minimum 28")}", at, name);
        if (len > MaxBlockLength)
            throw Fail($"block total length {len} exceeds the limit {MaxBlockLength}", at, name);
        if (!_in.Ensure((int)len))
            throw Fail($"block truncated ({_in.Available} of {len} bytes)", at, name);
        var block = _in.Peek((int)len);
        uint trail = U32(block[((int)len - 4)..]);
        if (trail != len)
            throw Fail($"trailing block length {trail} differs from {len}", at, name);
        ushort major = U16(block[12..]);
        if (major != 1)
            throw Fail($"unsupported version {major}.{U16(block[14..])}", at, name);
        // A new section starts a new interface numbering.
        _sectionBase = _interfaces.Count;
        _conv.Clear();
        _sections++;
        _in.Advance((int)len);
        _blocks++;
    }

    private bool ReadIdb(ReadOnlySpan<byte> body, long at)
    {
        const string name = "pcapng IDB";
        if (body.Length < 8)
            throw Fail($"interface description body {body.Length} bytes is below 8", at, name);
        var link = (LinkType)U16(body);
        uint snap = U32(body[4..]);
        string? ifName = null;
        byte tsresol = 6;
        long tsoffset = 0;
        var opts = body[8..];
        while (opts.Length >= 4)
        {
            ushort code = U16(opts), olen = U16(opts[2..]);
            if (code == 0) break;
            int padded = (olen + 3) & ~3;
            if (4 + padded > opts.Length)
                throw Fail($"option {code} length {olen} runs past the block", at, name);
            var val = opts.Slice(4, olen);
            switch (code)
            {
                case 2: ifName = Encoding.UTF8.GetString(val).TrimEnd('\0'); break;
                case 9 when olen >= 1: tsresol = val[0]; break;
                case 14 when olen >= 8: tsoffset = (long)U64(val); break;
            }
            opts = opts[(4 + padded)..];
        }
        if (!TsConv.TryCreate(tsresol, tsoffset, out var conv))
            throw Fail($"if_tsresol 0x{tsresol:x2} is beyond the supported range", at, name);
        conv.SnapLength = snap;
        conv.LinkType = link;
        _conv.Add(conv);
        _interfaces.Add(new CaptureInterface(link, snap > int.MaxValue ? int.MaxValue : (int)snap, ifName, conv.TicksPerSecond));
        return false;
    }

    // EPB and the obsolete OPB share a layout after the interface id: 32 bits of id in an EPB, 16 in an OPB
    // (followed by a 16-bit drops count).
    private bool ReadEpb(ReadOnlySpan<byte> body, long at, out FrameMeta meta, out ReadOnlySpan<byte> data)
        => ReadPacketBlock(body, at, "pcapng EPB", "enhanced packet", body.Length >= 4 ? U32(body) : 0u, out meta, out data);

    private bool ReadOpb(ReadOnlySpan<byte> body, long at, out FrameMeta meta, out ReadOnlySpan<byte> data)
        => ReadPacketBlock(body, at, "pcapng OPB", "packet block", body.Length >= 2 ? U16(body) : 0u, out meta, out data);

    private bool ReadPacketBlock(ReadOnlySpan<byte> body, long at, string name, string what, uint iface, out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        if (body.Length < 20)
            throw Fail($"{what} body {body.Length} bytes is below 20", at, name);
        ulong ticks = ((ulong)U32(body[4..]) << 32) | U32(body[8..]);
        uint cap = U32(body[12..]), orig = U32(body[16..]);
        if (cap > body.Length - 20)
            throw Fail($"captured length {cap} runs past the block", at, name);
        var conv = Interface(iface, at, name);
        data = body.Slice(20, (int)cap);
        meta = PacketMeta(in conv, ticks, orig, iface);
        return true;
    }

    private bool ReadSpb(ReadOnlySpan<byte> body, long at, out FrameMeta meta, out ReadOnlySpan<byte> data)
    {
        const string name = "pcapng SPB";
        if (body.Length < 4)
            throw Fail($"simple packet body {body.Length} bytes is below 4", at, name);
        var conv = Interface(0, at, name);
        uint orig = U32(body);
        // The SPB has no captured-length field: the interface's snaplen and the block size bound it.
        ulong cap = Math.Min(orig, (ulong)(body.Length - 4));
        if (conv.SnapLength != 0) cap = Math.Min(cap, conv.SnapLength);
        data = body.Slice(4, (int)cap);
        // No timestamp in an SPB.
        meta = new FrameMeta(0, Clamp(orig), conv.LinkType, _sectionBase);
        return true;
    }

    private TsConv Interface(uint id, long at, string name)
    {
        if (id >= (uint)_conv.Count)
            throw Fail($"interface id {id} has no IDB in this section ({_conv.Count} interfaces)", at, name);
        return _conv[(int)id];
    }

    private static int Clamp(uint v) => v > int.MaxValue ? int.MaxValue : (int)v;

    /// <summary>An EPB's or OPB's metadata: its timestamp on the interface's clock, its original length, the interface.</summary>
    private FrameMeta PacketMeta(in TsConv conv, ulong ticks, uint orig, uint iface)
        => new(conv.ToNs(ticks), Clamp(orig), conv.LinkType, _sectionBase + (int)iface);

    private static string BlockName(uint type) => type switch
    {
        IdbType => "pcapng IDB",
        EpbType => "pcapng EPB",
        SpbType => "pcapng SPB",
        OpbType => "pcapng OPB",
        4 => "pcapng NRB",
        5 => "pcapng ISB",
        0x0A => "pcapng DSB",
        0x00000BAD or 0x40000BAD => "pcapng custom block",
        _ => $"pcapng block type 0x{type:x8}",
    };

    /// <summary>Reads every block through the checked path (tests compare it with the window fast path).</summary>
    internal void UseCheckedPath()
    {
        _checkedOnly = true;
        _native = false;
    }

    private CaptureFormatException Fail(string message, long offset, string block)
    {
        _native = false; // every later call rethrows
        return _failed = new CaptureFormatException($"{block}: {message}", offset, block);
    }

    private uint U32(ReadOnlySpan<byte> s)
        => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(s) : BinaryPrimitives.ReadUInt32LittleEndian(s);

    private ushort U16(ReadOnlySpan<byte> s)
        => _bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(s) : BinaryPrimitives.ReadUInt16LittleEndian(s);

    private ulong U64(ReadOnlySpan<byte> s)
        => _bigEndian ? BinaryPrimitives.ReadUInt64BigEndian(s) : BinaryPrimitives.ReadUInt64LittleEndian(s);

    public void Dispose() => _in.Dispose();

    /// <summary>Ticks of one interface's clock to nanoseconds since the epoch.</summary>
    private struct TsConv
    {
        private ulong _mul;      // ns per tick when the clock is at most 1 GHz decimal
        private ulong _div;      // ticks per ns when the clock is a faster decimal
        private int _shift;      // binary clocks: ns = ticks * 1e9 >> shift
        private bool _binary;
        private long _offsetNs;
        public long TicksPerSecond;
        public uint SnapLength;
        /// <summary>The interface's link type, as its <see cref="CaptureInterface"/> has it (what every packet block reads).</summary>
        public LinkType LinkType;

        public static bool TryCreate(byte tsresol, long offsetSeconds, out TsConv c)
        {
            c = default;
            int exp = tsresol & 0x7F;
            c._offsetNs = unchecked(offsetSeconds * 1_000_000_000L);
            if ((tsresol & 0x80) != 0)
            {
                if (exp > 62) return false;
                c._binary = true;
                c._shift = exp;
                c.TicksPerSecond = 1L << exp;
                return true;
            }
            if (exp > 18) return false;
            long tps = 1;
            for (int i = 0; i < exp; i++) tps *= 10;
            c.TicksPerSecond = tps;
            if (exp <= 9) c._mul = (ulong)(1_000_000_000L / tps);
            else c._div = (ulong)(tps / 1_000_000_000L);
            return true;
        }

        public readonly long ToNs(ulong ticks)
        {
            ulong ns;
            if (_binary)
            {
                // 128-bit product so a 64-bit tick count times 1e9 cannot wrap.
                ulong hi = Math.BigMul(ticks, 1_000_000_000UL, out ulong lo);
                ns = _shift == 0 ? lo : (lo >> _shift) | (_shift == 64 ? 0 : hi << (64 - _shift));
            }
            else if (_div != 0) ns = ticks / _div;
            else ns = unchecked(ticks * _mul);
            return unchecked((long)ns + _offsetNs);
        }
    }
}
