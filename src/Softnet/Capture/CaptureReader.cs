using System.Buffers.Binary;

namespace Softnet.Capture;

/// <summary>Opens a capture file as pcap or pcapng, chosen by its first four bytes.</summary>
public static class CaptureReader
{
    /// <summary>Opens <paramref name="path"/>; the format comes from the magic, not the extension. A regular file is
    /// read through a sliding mapping of <paramref name="windowBytes"/> (frames are spans of the page cache, RSS stays
    /// bounded) unless <paramref name="access"/> asks for copies or, left at Auto, mapped pages prove dearer than
    /// copies on this machine; a pipe or FIFO is streamed.</summary>
    public static ICaptureReader Open(string path, int windowBytes = CaptureInput.DefaultWindowBytes, CaptureFileAccess access = CaptureFileAccess.Auto)
        => Open(CaptureInput.OpenFile(path, windowBytes, access));

    /// <summary>Opens a stream (need not be seekable: the magic is read once and kept in the buffer).</summary>
    public static ICaptureReader Open(Stream s, bool ownsStream = true) => Open(new StreamCaptureInput(s, ownsStream));

    private static ICaptureReader Open(CaptureInput input)
    {
        try
        {
            if (!input.Ensure(4))
                throw new CaptureFormatException($"not a capture file: only {input.Available} bytes", 0, "file magic");
            uint le = BinaryPrimitives.ReadUInt32LittleEndian(input.Peek(4));
            uint be = BinaryPrimitives.ReverseEndianness(le);
            if (le == PcapngReader.ShbType) return new PcapngReader(input);
            if (le is PcapReader.MagicMicro or PcapReader.MagicNano || be is PcapReader.MagicMicro or PcapReader.MagicNano)
                return new PcapReader(input);
            throw new CaptureFormatException($"not a pcap or pcapng file (magic 0x{be:x8})", 0, "file magic");
        }
        catch
        {
            // The format readers dispose the input themselves when their header is bad; doing it twice is harmless.
            input.Dispose();
            throw;
        }
    }
}

/// <summary>How a file reader holds the file: through a mapping, or copies in a buffer (and how much of it at most).</summary>
/// <param name="Mapped">Read through the sliding memory mapping (false: copied, by pread or out of a stream).</param>
/// <param name="PeakHeldBytes">Most bytes of the file the reader held at once: the largest mapping window, or the
/// largest buffer.</param>
public readonly record struct CaptureInputInfo(bool Mapped, long PeakHeldBytes);
