using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Softnet.Capture;

/// <summary>How a capture file's bytes reach the reader.</summary>
public enum CaptureFileAccess
{
    /// <summary>Mapped, unless a probe of the first window finds that touching mapped pages costs more than copying
    /// them would; then copied (see <see cref="MappedCaptureInput"/>).</summary>
    Auto,

    /// <summary>Always through the sliding mapping.</summary>
    Map,

    /// <summary>Always copied with pread(2) into one small reused buffer.</summary>
    Copy,
}

/// <summary>
/// A capture file read through a sliding memory mapping: the reader parses records where the page cache holds them and
/// hands frames out as spans of the mapping, so the bytes are not copied into a user buffer first (as read(2) would)
/// and the port's "DMA" into the RX buffer is the one copy of a frame, as on a NIC. Only one window of the file is
/// mapped at a time, so a file larger than memory replays in bounded RSS: the window advances (munmap, mmap of the
/// next page-aligned stretch) when a record runs past it, and grows only for a record longer than the window.
/// </summary>
/// <remarks>
/// Each window is advised MADV_SEQUENTIAL (the kernel reads ahead aggressively and may drop pages behind) and
/// MADV_WILLNEED (start reading all of it in now), so a cold file streams from disk while earlier frames are parsed.
/// The mapping is of the length the file had when it was opened.
/// <para>A mapped page is not free: its first touch takes a page fault (fault-around maps 16 pages at once), and on a
/// virtual machine that shadows page tables (as this project's CI VM does) each newly mapped 4 KiB page of a file held
/// in small folios costs ~1.3 us, ten times a read(2) copy of it out of the kernel's huge-page direct map. So in
/// <see cref="CaptureFileAccess.Auto"/> the first window of a large file is probed (one byte a page of its first MiB,
/// pages the parser reads next anyway); when a page costs more than <see cref="SlowPageNs"/> the rest of the file is
/// copied with pread(2) into one reused L2-sized buffer instead, the streaming reader's way.</para>
/// </remarks>
internal sealed unsafe class MappedCaptureInput : CaptureInput
{
    /// <summary>First-touch cost of a mapped page above which copying is cheaper: pread copies 4 KiB in ~0.2-0.4 us.</summary>
    public const double SlowPageNs = 500;

    private const int ProbeBytes = 1 << 20;
    private const int CopyBufferBytes = 256 << 10;

    private readonly FileStream _fs;
    private readonly MemoryMappedFile _map;
    private readonly long _length;
    private readonly int _windowBytes;
    private readonly int _page;
    private CaptureFileAccess _access;
    private MemoryMappedViewAccessor? _view;
    private byte[]? _copy;
    private long _peak;

    private MappedCaptureInput(FileStream fs, MemoryMappedFile map, long length, int windowBytes, CaptureFileAccess access)
    {
        _fs = fs;
        _map = map;
        _length = length;
        _page = Environment.SystemPageSize;
        // At least a few pages, whole pages, and within an int (spans are int-indexed).
        _windowBytes = (int)Math.Clamp((long)windowBytes / _page * _page, 4L * _page, 1L << 30);
        // Small files are mapped whatever a page costs: the probe would cost as much as it could save.
        _access = access == CaptureFileAccess.Auto && length < 4L * ProbeBytes ? CaptureFileAccess.Map : access;
        ColdBytes = _access != CaptureFileAccess.Copy;
    }

    /// <summary>Maps <paramref name="fs"/> (which it then owns) or returns null when the stream cannot be mapped: not a
    /// regular file (a pipe, a FIFO, a terminal), or empty.</summary>
    public static MappedCaptureInput? TryCreate(FileStream fs, int windowBytes, CaptureFileAccess access = CaptureFileAccess.Auto)
    {
        if (!fs.CanSeek) return null;
        long length;
        try { length = fs.Length; }
        catch (IOException) { return null; }
        if (length <= 0) return null;
        MemoryMappedFile map;
        try
        {
            map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null; // /proc files, character devices and the like: read them as streams
        }
        return new MappedCaptureInput(fs, map, length, windowBytes, access);
    }

    /// <summary>The window size in effect (whole pages).</summary>
    public int WindowBytes => _windowBytes;

    /// <summary>File length at open.</summary>
    public long Length => _length;

    public override long PeakHeldBytes => _peak;

    /// <summary>True while the file is read through the mapping (false once copying, or when opened to copy).</summary>
    public override bool Mapped => _access != CaptureFileAccess.Copy;

    public override int Available => (int)Math.Min(int.MaxValue, _length - Consumed);

    protected override bool Fill(int count)
    {
        if (count < 0 || _length - Consumed < count) return false;
        if (_access == CaptureFileAccess.Copy) return FillCopy(count);
        // The window starts at the page holding the read position, so what is left of the current record stays in it.
        long start = Consumed / _page * _page;
        int lead = (int)(Consumed - start);
        long size = Math.Min(_length - start, Math.Max(_windowBytes, (long)lead + count));
        Unmap();
        MemoryMappedViewAccessor view;
        try
        {
            view = _map.CreateViewAccessor(start, size, MemoryMappedFileAccess.Read);
        }
        catch (IOException)
        {
            // Out of address space, or a file system that refuses mmap after all: read on by copies.
            _access = CaptureFileAccess.Copy;
            ColdBytes = false;
            return FillCopy(count);
        }
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _view = view;
        byte* data = p + view.PointerOffset;
        Advise(p, (nuint)(view.PointerOffset + size));
        Window = data;
        WinStart = lead;
        WinEnd = (int)size;
        if (size > _peak) _peak = size;
        if (_access == CaptureFileAccess.Auto)
        {
            _access = CaptureFileAccess.Map;
            if (FirstTouchNsPerPage(data + lead, (int)Math.Min(ProbeBytes, size - lead)) > SlowPageNs)
            {
                Unmap();
                _access = CaptureFileAccess.Copy;
                ColdBytes = false;
                return FillCopy(count);
            }
        }
        return true;
    }

    /// <summary>Touches one byte in each page of <paramref name="length"/> bytes at <paramref name="p"/>; the mean
    /// time per page.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private double FirstTouchNsPerPage(byte* p, int length)
    {
        int pages = 0;
        int sum = 0;
        long t0 = Stopwatch.GetTimestamp();
        for (int off = 0; off < length; off += _page, pages++) sum += Volatile.Read(ref p[off]);
        long ticks = Stopwatch.GetTimestamp() - t0;
        GC.KeepAlive(sum);
        return pages == 0 ? 0 : ticks * (1e9 / Stopwatch.Frequency) / pages;
    }

    // Copy mode: the bytes from the read position into the front of one pinned buffer (the unconsumed tail of the last
    // fill is read again: at most a record).
    private bool FillCopy(int count)
    {
        int want = (int)Math.Min(_length - Consumed, Math.Max(CopyBufferBytes, count));
        if (_copy is null || _copy.Length < want)
            _copy = GC.AllocateUninitializedArray<byte>(Math.Max(CopyBufferBytes, want), pinned: true);
        if (_copy.Length > _peak) _peak = _copy.Length;
        var buf = _copy.AsSpan(0, want);
        int got = 0;
        while (got < want)
        {
            int n = RandomAccess.Read(_fs.SafeFileHandle, buf[got..], Consumed + got);
            if (n <= 0) break; // the file shrank since it was opened
            got += n;
        }
        Window = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_copy));
        WinStart = 0;
        WinEnd = got;
        return got >= count;
    }

    public override bool Skip(long count)
    {
        if (count <= 0) return true;
        long left = _length - Consumed;
        if (count <= WinEnd - WinStart)
        {
            Advance((int)count);
            return true;
        }
        // Past the window: the next Ensure maps (or reads) from the new position.
        WinStart = WinEnd = 0;
        if (count > left)
        {
            Consumed = _length;
            return false;
        }
        Consumed += count;
        return true;
    }

    private void Unmap()
    {
        if (_view is null) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _view = null;
        Window = null;
        WinStart = WinEnd = 0;
    }

    private static void Advise(byte* p, nuint length)
    {
        if (!OperatingSystem.IsLinux()) return;
        // Hints only: a kernel that refuses them reads the file all the same.
        _ = madvise(p, length, MadvSequential);
        _ = madvise(p, length, MadvWillNeed);
    }

    private const int MadvSequential = 2;
    private const int MadvWillNeed = 3;

    [DllImport("libc")] private static extern int madvise(void* addr, nuint length, int advice);

    public override void Dispose()
    {
        Unmap();
        _map.Dispose();
        _fs.Dispose();
    }
}
