using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Softnet.Capture;

/// <summary>
/// A capture file read through a sliding memory mapping: the reader parses records where the page cache holds them and
/// hands frames out as spans of the mapping, so the bytes are not copied into a user buffer first (as read(2) would)
/// and the port's "DMA" into the RX buffer is the one copy of a frame, as on a NIC. Only one window of the file is
/// mapped at a time, so a file larger than memory replays in bounded RSS: the window advances (munmap, mmap of the
/// next page-aligned stretch) when a record runs past it, and grows only for a record longer than the window.
/// </summary>
/// <remarks>Each window is advised MADV_SEQUENTIAL (the kernel reads ahead aggressively and may drop pages behind) and
/// MADV_WILLNEED (start reading all of it in now), so a cold file streams from disk while earlier frames are parsed.
/// The mapping is of the length the file had when it was opened.</remarks>
internal sealed unsafe class MappedCaptureInput : CaptureInput
{
    private readonly FileStream _fs;
    private readonly MemoryMappedFile _map;
    private readonly long _length;
    private readonly int _windowBytes;
    private readonly int _page;
    private MemoryMappedViewAccessor? _view;
    private long _peak;

    private MappedCaptureInput(FileStream fs, MemoryMappedFile map, long length, int windowBytes)
    {
        _fs = fs;
        _map = map;
        _length = length;
        _page = Environment.SystemPageSize;
        // At least a few pages, whole pages, and within an int (spans are int-indexed).
        _windowBytes = (int)Math.Clamp((long)windowBytes / _page * _page, 4L * _page, 1L << 30);
        ColdBytes = true;
    }

    /// <summary>Maps <paramref name="fs"/> (which it then owns) or returns null when the stream cannot be mapped: not a
    /// regular file (a pipe, a FIFO, a terminal), or empty.</summary>
    public static MappedCaptureInput? TryCreate(FileStream fs, int windowBytes)
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
        return new MappedCaptureInput(fs, map, length, windowBytes);
    }

    /// <summary>The window size in effect (whole pages).</summary>
    public int WindowBytes => _windowBytes;

    /// <summary>File length at open.</summary>
    public long Length => _length;

    /// <summary>Bytes mapped now.</summary>
    public long MappedBytes => _view is null ? 0 : WinEnd;

    public override long PeakHeldBytes => _peak;

    public override bool Mapped => true;

    public override int Available => (int)Math.Min(int.MaxValue, _length - Consumed);

    protected override bool Fill(int count)
    {
        if (count < 0 || _length - Consumed < count) return false;
        // The window starts at the page holding the read position, so what is left of the current record stays in it.
        long start = Consumed / _page * _page;
        int lead = (int)(Consumed - start);
        long size = Math.Min(_length - start, Math.Max(_windowBytes, (long)lead + count));
        Unmap();
        var view = _map.CreateViewAccessor(start, size, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _view = view;
        byte* data = p + view.PointerOffset;
        Advise(p, (nuint)(view.PointerOffset + size));
        Window = data;
        WinStart = lead;
        WinEnd = (int)size;
        if (size > _peak) _peak = size;
        return true;
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
        // Past the window: the next Ensure maps from the new position.
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
