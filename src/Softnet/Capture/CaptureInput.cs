using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Softnet.Capture;

/// <summary>
/// The bytes a capture reader parses, handed out by reference: records are spans of whatever holds the file's bytes
/// (the mapping of the file, or one reusable buffer that pread or a pipe's reads fill), so a frame costs no allocation
/// and, from a mapped file, no copy at all until the port's "DMA" into its RX buffer. The reader sees one window of the file at a time:
/// <see cref="Peek"/> is valid from <see cref="Ensure"/> until the next <see cref="Ensure"/> or <see cref="Skip"/>.
/// </summary>
/// <remarks>The hot path (a record already inside the window) is the inlined test in <see cref="Ensure"/>; moving the
/// window is the subclass's <see cref="Fill"/>.</remarks>
internal abstract unsafe class CaptureInput : IDisposable
{
    /// <summary>Window of a mapped file: large enough that moving it (an munmap and an mmap) is rare, small enough that a
    /// file larger than memory replays in bounded RSS.</summary>
    public const int DefaultWindowBytes = 32 << 20;

    protected byte* Window;   // the bytes at hand; Window[WinStart..WinEnd) are not yet consumed
    protected int WinStart;
    protected int WinEnd;
    protected long Consumed;  // file offset of Window[WinStart]

    /// <summary>Opens a file: a regular, non-empty file through <see cref="MappedCaptureInput"/> (mapped, or copied by
    /// pread when <paramref name="access"/> says so or mapping does not pay), anything else streamed.</summary>
    public static CaptureInput OpenFile(string path, int windowBytes = DefaultWindowBytes, CaptureFileAccess access = CaptureFileAccess.Auto)
    {
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        try
        {
            if (MappedCaptureInput.TryCreate(fs, windowBytes, access) is { } mapped) return mapped;
        }
        catch
        {
            fs.Dispose();
            throw;
        }
        return new StreamCaptureInput(fs, ownsStream: true);
    }

    /// <summary>File offset of the next unconsumed byte.</summary>
    public long Position => Consumed;

    /// <summary>Bytes of the file not yet consumed that the input can tell of: after a failed <see cref="Ensure"/>, all
    /// that is left of the file (the truncation messages quote it).</summary>
    public abstract int Available { get; }

    /// <summary>True when the file is read through a mapping rather than copied out of a stream.</summary>
    public abstract bool Mapped { get; }

    /// <summary>Largest number of bytes the input held at once (the mapping window, or the stream buffer).</summary>
    public abstract long PeakHeldBytes { get; }

    /// <summary>
    /// Makes <paramref name="count"/> bytes available at the read position. False when the file ends first; then
    /// <see cref="Available"/> tells how many there were.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Ensure(int count) => WinEnd - WinStart >= count || Fill(count);

    /// <summary>Moves or grows the window so that <paramref name="count"/> bytes from <see cref="Position"/> are in it.</summary>
    protected abstract bool Fill(int count);

    /// <summary>The next <paramref name="count"/> bytes; only valid after <see cref="Ensure"/> said true.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<byte> Peek(int count) => new(Window + WinStart, count);

    /// <summary>The read position when <paramref name="count"/> bytes from it are inside the window; null when the window
    /// has to move first (<see cref="Ensure"/> moves it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* Here(int count) => WinEnd - WinStart >= count ? Window + WinStart : null;

    /// <summary>Where the byte <paramref name="ahead"/> bytes past the read position lies, when it is inside the window
    /// (a prefetch hint for a reader that parses a batch); null past the window.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* PointerAhead(int ahead) => (uint)ahead < (uint)(WinEnd - WinStart) ? Window + WinStart + ahead : null;

    /// <summary>Bytes ahead of the read position <see cref="PrefetchAhead"/> keeps in flight: enough lines that a miss started
    /// there lands before the parser (and the port's copy) gets to it, at memory latency times the rate they consume.</summary>
    public const int PrefetchDistance = 8192;

    /// <summary>Set by inputs whose bytes come cold from memory (a mapping); a stream's buffer was just written by read(2).</summary>
    protected bool ColdBytes;
    private long _prefetchedTo; // file offset up to which every line has been prefetched

    /// <summary>
    /// Prefetches every cache line from where the last call stopped to <see cref="PrefetchDistance"/> bytes past the read
    /// position (within the window). The parser's loads form a chain (each record's length gives the next record's
    /// place), so without this every record header would be a full memory miss; issued by address, the misses overlap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PrefetchAhead()
    {
        if (!ColdBytes || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        long target = Math.Min(Consumed + PrefetchDistance, Consumed + (WinEnd - WinStart));
        long from = Math.Max(_prefetchedTo, Consumed);
        if (from >= target) return;
        byte* p = Window + WinStart + (from - Consumed);
        byte* end = Window + WinStart + (target - Consumed);
        for (; p < end; p += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
        _prefetchedTo = target;
    }

    /// <summary>Consumes <paramref name="count"/> bytes already made available.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Advance(int count)
    {
        WinStart += count;
        Consumed += count;
    }

    /// <summary>Consumes <paramref name="count"/> bytes without keeping them (large unknown blocks). False at EOF.</summary>
    public abstract bool Skip(long count);

    public abstract void Dispose();
}

/// <summary>
/// A stream (a pipe, stdin, a socket, a MemoryStream) read through one reusable, pinned buffer; the buffer grows only
/// while real data fills it, so a bogus length field can never make it larger than about twice the bytes the stream has.
/// </summary>
internal sealed unsafe class StreamCaptureInput : CaptureInput
{
    private const int InitialSize = 1 << 16;

    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private byte[] _buf;
    private bool _eof;

    public StreamCaptureInput(Stream stream, bool ownsStream)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        _buf = NewBuffer(InitialSize);
    }

    // Pinned (on the pinned object heap) so the window can be a plain pointer shared with the mapped input.
    private static byte[] NewBuffer(int size) => GC.AllocateUninitializedArray<byte>(size, pinned: true);

    public override int Available => WinEnd - WinStart;

    public override bool Mapped => false;

    public override long PeakHeldBytes => _buf.Length;

    protected override bool Fill(int count)
    {
        while (WinEnd - WinStart < count)
        {
            if (_eof) return false;
            if (WinStart > 0 && (WinEnd == _buf.Length || _buf.Length - WinStart < count))
            {
                // Slide the unconsumed tail to the front so the record ends up contiguous.
                Buffer.BlockCopy(_buf, WinStart, _buf, 0, WinEnd - WinStart);
                WinEnd -= WinStart;
                WinStart = 0;
            }
            if (WinEnd == _buf.Length)
            {
                // Grow by doubling, never past what is requested: data already read justifies it.
                int size = (int)Math.Min(Math.Max(count, 0), Math.Min((long)_buf.Length * 2, Array.MaxLength));
                if (size <= _buf.Length) return false;
                var bigger = NewBuffer(size);
                Buffer.BlockCopy(_buf, 0, bigger, 0, WinEnd);
                _buf = bigger;
            }
            Window = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_buf));
            int n = _stream.Read(_buf, WinEnd, _buf.Length - WinEnd);
            if (n <= 0) { _eof = true; return false; }
            WinEnd += n;
        }
        return true;
    }

    public override bool Skip(long count)
    {
        while (count > 0)
        {
            int have = WinEnd - WinStart;
            if (have == 0)
            {
                WinStart = WinEnd = 0;
                if (_eof) return false;
                Window = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_buf));
                int n = _stream.Read(_buf, 0, _buf.Length);
                if (n <= 0) { _eof = true; return false; }
                WinEnd = n;
                have = n;
            }
            int take = (int)Math.Min(have, count);
            Advance(take);
            count -= take;
        }
        return true;
    }

    public override void Dispose()
    {
        if (_ownsStream) _stream.Dispose();
    }
}
