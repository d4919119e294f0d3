namespace Softnet.Capture;

/// <summary>
/// The one reusable buffer a capture reader streams through. Records are handed out as slices of it,
/// so a frame costs no allocation and no copy; the buffer grows only while real data fills it, so a
/// bogus length field can never make it larger than about twice the bytes the file actually has.
/// </summary>
internal sealed class CaptureInput : IDisposable
{
    private const int InitialSize = 1 << 16;

    private readonly Stream _stream;
    private readonly bool _ownsStream;
    private byte[] _buf;
    private int _start;
    private int _end;
    private long _consumed; // file offset of _buf[_start]
    private bool _eof;

    public CaptureInput(Stream stream, bool ownsStream, ReadOnlySpan<byte> prefix = default)
    {
        _stream = stream;
        _ownsStream = ownsStream;
        _buf = new byte[Math.Max(InitialSize, prefix.Length)];
        prefix.CopyTo(_buf);
        _end = prefix.Length;
    }

    /// <summary>File offset of the next unconsumed byte.</summary>
    public long Position => _consumed;

    /// <summary>Bytes buffered and not yet consumed.</summary>
    public int Available => _end - _start;

    /// <summary>
    /// Makes <paramref name="count"/> bytes available at the read position. False when the stream ends
    /// first; then <see cref="Available"/> tells how many there were.
    /// </summary>
    public bool Ensure(int count)
    {
        while (_end - _start < count)
        {
            if (_eof) return false;
            if (_start > 0 && (_end == _buf.Length || _buf.Length - _start < count))
            {
                // Slide the unconsumed tail to the front so the record ends up contiguous.
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buf.Length)
            {
                // Grow by doubling, never past what is requested: data already read justifies it.
                int size = (int)Math.Min(Math.Max(count, 0), Math.Min((long)_buf.Length * 2, Array.MaxLength));
                if (size <= _buf.Length) return false;
                Array.Resize(ref _buf, size);
            }
            int n = _stream.Read(_buf, _end, _buf.Length - _end);
            if (n <= 0) { _eof = true; return false; }
            _end += n;
        }
        return true;
    }

    /// <summary>The next <paramref name="count"/> bytes; only valid after <see cref="Ensure"/> said true.</summary>
    public ReadOnlySpan<byte> Peek(int count) => new(_buf, _start, count);

    /// <summary>Consumes <paramref name="count"/> buffered bytes.</summary>
    public void Advance(int count)
    {
        _start += count;
        _consumed += count;
    }

    /// <summary>Consumes <paramref name="count"/> bytes without keeping them (large unknown blocks). False at EOF.</summary>
    public bool Skip(long count)
    {
        while (count > 0)
        {
            int have = _end - _start;
            if (have == 0)
            {
                _start = _end = 0;
                if (_eof) return false;
                int n = _stream.Read(_buf, 0, _buf.Length);
                if (n <= 0) { _eof = true; return false; }
                _end = n;
                have = n;
            }
            int take = (int)Math.Min(have, count);
            Advance(take);
            count -= take;
        }
        return true;
    }

    public void Dispose()
    {
        if (_ownsStream) _stream.Dispose();
    }
}
