namespace Softnet.Xdp.Bpf.Helpers;

/// <summary>
/// bpf_trace_printk(fmt, fmt_size, a, b, c) (kernel/trace/bpf_trace.c): the format is checked as
/// bpf_bprintf_prepare does (NUL-terminated within fmt_size, printable ASCII, at most three conversions among
/// %d %i %u %x %X with l/ll, %p, %s, %c and %%, optional [0 +-] flags and a width), formatted into 512 bytes as
/// bstr_printf does, and written as the trace_pipe line the bpf_trace_printk event makes:
/// <c>COMM-PID [CPU] FLAGS SECONDS.MICROS: bpf_trace_printk: MESSAGE</c>. Returns the message length, or -EINVAL.
/// %p prints the BPF address as 16 hex digits (the kernel prints a hashed pointer, which nothing can reproduce).
/// </summary>
internal static class BpfTracePrintk
{
    private const int MaxArgs = 3, BufSize = 512;

    public static ulong Call(ref BpfMemory mem, ulong fmtAddr, ulong fmtSize, ulong a1, ulong a2, ulong a3)
    {
        uint size = (uint)fmtSize;
        if (size == 0 || size > int.MaxValue || !mem.TryMap(fmtAddr, (int)size, false, out var fmtAll)) return Fail();
        int nul = fmtAll.IndexOf((byte)0);
        if (nul < 0) return Fail();
        var fmt = fmtAll[..nul];
        if (!Validate(fmt)) return Fail();
        var run = mem.Run;
        Span<char> buf = run is null ? stackalloc char[BufSize] : run.TraceBuffer.AsSpan(0, BufSize);
        int len = Format(in mem, fmt, a1, a2, a3, buf, out int written);
        if (run?.TraceWriter is { } w) WriteLine(run, w, buf[..written]);
        return (ulong)len;
    }

    private static ulong Fail() => unchecked((ulong)-(long)BpfXdpHelpers.EINVAL);

    private static bool Validate(ReadOnlySpan<byte> fmt)
    {
        int specs = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            byte c = fmt[i];
            if (c >= 0x80 || (c < 0x20 && !IsSpace(c)) || c == 0x7f) return false;
            if (c != '%') continue;
            if (At(fmt, i + 1) == '%')
            {
                i++;
                continue;
            }
            if (specs++ >= MaxArgs) return false;
            i = SkipFlagsAndWidth(fmt, i + 1);
            byte conv = At(fmt, i);
            if (conv == 'p')
            {
                // Only the plain pointer form: followed by the end, a space or punctuation.
                byte next = At(fmt, i + 1);
                if (!(next == 0 || IsSpace(next) || IsPunct(next))) return false;
                continue;
            }
            if (conv is (byte)'s' or (byte)'c') continue;
            if (conv == 'l') conv = At(fmt, ++i);
            if (conv == 'l') conv = At(fmt, ++i);
            if (conv is not ((byte)'d' or (byte)'i' or (byte)'u' or (byte)'x' or (byte)'X')) return false;
        }
        return true;
    }

    private static byte At(ReadOnlySpan<byte> s, int i) => i < s.Length ? s[i] : (byte)0;
    private static bool IsSpace(byte c) => c is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\v' or (byte)'\f' or (byte)'\r';
    private static bool IsPunct(byte c) => c > 0x20 && c < 0x7f && !char.IsAsciiLetterOrDigit((char)c);

    private static int SkipFlagsAndWidth(ReadOnlySpan<byte> fmt, int i)
    {
        while (At(fmt, i) is (byte)'0' or (byte)'+' or (byte)'-' or (byte)' ') i++;
        while (At(fmt, i) is >= (byte)'0' and <= (byte)'9') i++;
        return i;
    }

    // Formats into out (at most BufSize-1 characters kept, as bstr_printf into a 512-byte buffer) and returns the
    // full length the message would have.
    private static int Format(in BpfMemory mem, scoped ReadOnlySpan<byte> fmt, ulong a1, ulong a2, ulong a3, scoped Span<char> output, out int written)
    {
        var o = new Out(output[..(BufSize - 1)]);
        int arg = 0;
        Span<char> num = stackalloc char[24];
        for (int i = 0; i < fmt.Length; i++)
        {
            byte c = fmt[i];
            if (c != '%')
            {
                o.Put((char)c);
                continue;
            }
            if (At(fmt, i + 1) == '%')
            {
                o.Put('%');
                i++;
                continue;
            }
            ulong v = arg switch { 0 => a1, 1 => a2, _ => a3 };
            arg++;
            i++;
            bool left = false, zero = false, plus = false, space = false;
            for (; ; i++)
            {
                byte f = At(fmt, i);
                if (f == '-') left = true;
                else if (f == '0') zero = true;
                else if (f == '+') plus = true;
                else if (f == ' ') space = true;
                else break;
            }
            int width = 0;
            while (At(fmt, i) is >= (byte)'0' and <= (byte)'9') width = Math.Min(width * 10 + (fmt[i++] - '0'), BufSize);
            byte conv = At(fmt, i);
            int n;
            switch (conv)
            {
                case (byte)'p':
                    n = Hex(v, 16, false, num);
                    o.Pad(num[..n], width, left, false);
                    continue;
                case (byte)'c':
                    num[0] = (char)(byte)v;
                    o.Pad(num[..1], width, left, false);
                    continue;
                case (byte)'s':
                    PutString(in mem, ref o, v, width, left);
                    continue;
            }
            int bytes = 4;
            if (conv == 'l') { bytes = 8; conv = At(fmt, ++i); }
            if (conv == 'l') conv = At(fmt, ++i);
            if (bytes == 4) v = conv is (byte)'d' or (byte)'i' ? (ulong)(long)(int)v : (uint)v;
            switch (conv)
            {
                case (byte)'d':
                case (byte)'i':
                {
                    long s = (long)v;
                    char sign = s < 0 ? '-' : plus ? '+' : space ? ' ' : '\0';
                    ulong mag = s < 0 ? (ulong)(-(s + 1)) + 1 : (ulong)s;
                    int k = 0;
                    if (sign != '\0') num[k++] = sign;
                    mag.TryFormat(num[k..], out int d);
                    o.Pad(num[..(k + d)], width, left, zero, k);
                    break;
                }
                case (byte)'u':
                    v.TryFormat(num, out n);
                    o.Pad(num[..n], width, left, zero);
                    break;
                default: // x, X
                    n = Hex(v, 0, conv == 'X', num);
                    o.Pad(num[..n], width, left, zero);
                    break;
            }
        }
        written = o.Written;
        return o.Total;
    }

    private static int Hex(ulong v, int digits, bool upper, Span<char> dst)
    {
        v.TryFormat(dst, out int n, upper ? "X" : "x");
        if (n >= digits) return n;
        int pad = digits - n;
        dst[..n].CopyTo(dst[pad..]);
        dst[..pad].Fill('0');
        return digits;
    }

    private static void PutString(in BpfMemory mem, scoped ref Out o, ulong addr, int width, bool left)
    {
        // The string is copied as strncpy_from_kernel_nofault does: up to its NUL, at most what the buffer holds;
        // an unreadable pointer prints nothing.
        int len = 0;
        while (len < BufSize && mem.TryMap(addr + (ulong)len, 1, false, out var b) && b[0] != 0) len++;
        if (!left) for (int k = len; k < width; k++) o.Put(' ');
        for (int k = 0; k < len; k++)
        {
            mem.TryMap(addr + (ulong)k, 1, false, out var b);
            o.Put((char)b[0]);
        }
        if (left) for (int k = len; k < width; k++) o.Put(' ');
    }

    private static void WriteLine(BpfRunContext run, TextWriter w, ReadOnlySpan<char> msg)
    {
        // trace_pipe's line: "%16s-%-7d [%03d] %s %5llu.%06llu: " then the event and its "%s" and a newline.
        ulong now = run.NowNs();
        Span<char> head = stackalloc char[96];
        var h = new Out(head);
        var task = run.TraceTask.AsSpan();
        for (int k = task.Length; k < 16; k++) h.Put(' ');
        for (int k = 0; k < task.Length && k < 32; k++) h.Put(task[k]);
        h.Put('-');
        Span<char> num = stackalloc char[24];
        run.TracePid.TryFormat(num, out int n);
        h.Pad(num[..n], 7, true, false);
        h.Put(' ');
        h.Put('[');
        run.Cpu.TryFormat(num, out n, "D3");
        h.Pad(num[..n], 0, false, false);
        foreach (char c in "] ..s1. ") h.Put(c);
        (now / 1_000_000_000).TryFormat(num, out n);
        h.Pad(num[..n], 5, false, false);
        h.Put('.');
        (now % 1_000_000_000 / 1000).TryFormat(num, out n, "D6");
        h.Pad(num[..n], 0, false, false);
        foreach (char c in ": bpf_trace_printk: ") h.Put(c);
        w.Write(head[..h.Written]);
        w.Write(msg);
        w.Write('\n');
    }

    /// <summary>A bounded output buffer that counts what would have been written past its end.</summary>
    private ref struct Out(Span<char> buf)
    {
        private readonly Span<char> _buf = buf;
        public int Written;
        public int Total;

        public void Put(char c)
        {
            if (Written < _buf.Length) _buf[Written++] = c;
            Total++;
        }

        /// <summary>Writes <paramref name="s"/> padded to <paramref name="width"/>; zero padding goes after the first
        /// <paramref name="signLen"/> characters (the sign).</summary>
        public void Pad(scoped ReadOnlySpan<char> s, int width, bool left, bool zero, int signLen = 0)
        {
            int pad = Math.Max(0, width - s.Length);
            if (left)
            {
                foreach (char c in s) Put(c);
                for (int k = 0; k < pad; k++) Put(' ');
                return;
            }
            if (zero)
            {
                foreach (char c in s[..signLen]) Put(c);
                for (int k = 0; k < pad; k++) Put('0');
                foreach (char c in s[signLen..]) Put(c);
                return;
            }
            for (int k = 0; k < pad; k++) Put(' ');
            foreach (char c in s) Put(c);
        }
    }
}
