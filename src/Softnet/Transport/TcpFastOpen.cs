using System.Buffers.Binary;
using System.Globalization;
using Softnet.Link;
using Softnet.Packets.Headers;
using Softnet.Telemetry;

namespace Softnet.Transport;

/// <summary>A TCP Fast Open cookie option (struct tcp_fastopen_cookie): absent (<see cref="Len"/> −1), a request
/// (0), or a cookie of 4 to 16 bytes, of which only an 8-byte one can match (its bytes as a little-endian
/// <see cref="Value"/>); <see cref="Exp"/> when carried in the experimental option (254, magic 0xF989).</summary>
public readonly struct FastOpenCookie
{
    private readonly int _lenPlus1;

    public FastOpenCookie(int len, ulong value, bool exp)
    {
        _lenPlus1 = len + 1;
        Value = value;
        Exp = exp;
    }

    public int Len => _lenPlus1 - 1;
    public ulong Value { get; }
    public bool Exp { get; }

    /// <summary>Bytes the option takes in a SYN-ACK, padded to a word (tcp_synack_options' need).</summary>
    public int OptionSpace => Len < 0 ? 0 : (Len + (Exp ? 4 : 2) + 3) & ~3;
}

/// <summary>
/// The server side of TCP Fast Open (net/ipv4/tcp_fastopen.c): tcp_try_fastopen's decision for a SYN to a listener,
/// the cookie (siphash of the SYN's source and destination addresses keyed by net.ipv4.tcp_fastopen_key,
/// __tcp_fastopen_cookie_gen_cipher) and its check against the primary and backup keys
/// (tcp_fastopen_cookie_gen_check).
/// </summary>
public static class TcpFastOpen
{
    public const int TfoServerEnable = 0x2, TfoServerCookieNotReqd = 0x200, TfoServerWoSockopt1 = 0x400;
    private const byte KindFastOpen = 34, KindExp = 254;
    private const ushort ExpMagic = 0xF989;

    /// <summary>tcp_parse_options' Fast Open part for a SYN: option 34, or 254 with the Fast Open magic; an odd
    /// cookie length is ignored, one outside 4..16 (not 0) makes the cookie invalid (−1); the last option wins. Stops
    /// at a malformed option as the kernel's walk does.</summary>
    public static FastOpenCookie Parse(ReadOnlySpan<byte> options)
    {
        var foc = default(FastOpenCookie);
        var r = new TcpOptionReader(options);
        while (r.MoveNext())
        {
            var v = r.Data;
            int len;
            bool exp;
            if (r.Kind == KindFastOpen) { len = r.Length - 2; exp = false; }
            else if (r.Kind == KindExp && r.Length >= 4 && BinaryPrimitives.ReadUInt16BigEndian(v) == ExpMagic) { len = r.Length - 4; v = v[2..]; exp = true; }
            else continue;
            if ((len & 1) != 0) continue;
            if (len is not 0 and (< 4 or > 16)) len = -1;
            foc = new FastOpenCookie(len, len == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(v) : 0, exp);
        }
        return foc;
    }

    /// <summary>The cookie for a SYN whose source and destination addresses, as they stand in its IP header, are
    /// <paramref name="addrs"/> (8 bytes for IPv4, 32 for IPv6): siphash over them, stored little-endian.</summary>
    public static ulong Cookie(ReadOnlySpan<byte> addrs, ulong k0, ulong k1) => SipHash.Hash24(addrs, k0, k1);

    /// <summary>proc_tcp_fastopen_key's text: "w0-w1-w2-w3[,backup]", each word hex; the key's bytes are the words
    /// little-endian, so siphash's k0 = w1:w0 and k1 = w3:w2. Null for text the sysctl would refuse.</summary>
    public static (ulong K0, ulong K1, (ulong K0, ulong K1)? Backup)? ParseKey(string text)
    {
        var keys = text.Trim().Split(',');
        if (keys.Length is 0 or > 2) return null;
        var parsed = new (ulong, ulong)[keys.Length];
        for (int k = 0; k < keys.Length; k++)
        {
            var w = keys[k].Split('-');
            if (w.Length != 4) return null;
            var x = new uint[4];
            for (int i = 0; i < 4; i++)
                if (!uint.TryParse(w[i], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out x[i])) return null;
            parsed[k] = ((ulong)x[1] << 32 | x[0], (ulong)x[3] << 32 | x[2]);
        }
        return (parsed[0].Item1, parsed[0].Item2, parsed.Length > 1 ? parsed[1] : null);
    }

    /// <summary>
    /// tcp_try_fastopen for a SYN (<paramref name="tcp"/>, header and data) to a listener of <paramref name="ns"/>,
    /// <paramref name="addrs"/> its source and destination addresses: true when a Fast Open child takes the SYN
    /// (TCPFastOpenPassive). <paramref name="reply"/> is the cookie the SYN-ACK carries: the valid one for a cookie
    /// request or an invalid cookie (TCPFastOpenPassiveFail), the primary one when the backup key matched
    /// (TCPFastOpenPassiveAltKey), else none. Every listener has a Fast Open queue only with
    /// TFO_SERVER_WO_SOCKOPT1 (the readers set no TCP_FASTOPEN), as long as fewer children than the backlog are
    /// still in their handshake (tcp_fastopen_queue_check: else TCPFastOpenListenOverflow, before any cookie is looked at).
    /// </summary>
    internal static bool Try(Namespace ns, TcpListenSock listener, ReadOnlySpan<byte> tcp, ReadOnlySpan<byte> addrs, out FastOpenCookie reply)
    {
        reply = default;
        int doff = (tcp[12] >> 4) * 4;
        var foc = Parse(tcp[20..doff]);
        var mib = ns.Mib;
        if (foc.Len == 0) mib[SnmpCounter.TcpExtTCPFastOpenCookieReqd]++;
        int v = ns.TcpFastopen;
        bool synData = tcp.Length > doff;
        if ((v & TfoServerEnable) == 0 || !(synData || foc.Len >= 0) || (v & TfoServerWoSockopt1) == 0) return false;
        if (listener.FastOpenQlen >= listener.Backlog)
        {
            mib[SnmpCounter.TcpExtTCPFastOpenListenOverflow]++;
            return false;
        }
        if (synData && (v & TfoServerCookieNotReqd) != 0)
        {
            mib[SnmpCounter.TcpExtTCPFastOpenPassive]++;
            return true;
        }
        if (foc.Len < 0) return false;
        var key = ns.TcpFastopenKey;
        var valid = new FastOpenCookie(8, Cookie(addrs, key.K0, key.K1), foc.Exp);
        if (foc.Len == 0) { reply = valid; return false; }
        if (foc.Len == 8 && foc.Value == valid.Value)
        {
            mib[SnmpCounter.TcpExtTCPFastOpenPassive]++;
            return true;
        }
        if (foc.Len == 8 && key.Backup is { } b && foc.Value == Cookie(addrs, b.K0, b.K1))
        {
            reply = valid;
            mib[SnmpCounter.TcpExtTCPFastOpenPassiveAltKey]++;
            mib[SnmpCounter.TcpExtTCPFastOpenPassive]++;
            return true;
        }
        mib[SnmpCounter.TcpExtTCPFastOpenPassiveFail]++;
        reply = valid;
        return false;
    }

    /// <summary>tcp_options_write's Fast Open part: the option (34 with its length, or 254 with the magic) and the
    /// cookie, two NOPs after it when its length leaves half a word. Returns the bytes written.</summary>
    internal static int Write(Span<byte> t, in FastOpenCookie c)
    {
        if (c.Len < 0) return 0;
        int o;
        if (c.Exp)
        {
            t[0] = KindExp; t[1] = (byte)(4 + c.Len);
            BinaryPrimitives.WriteUInt16BigEndian(t[2..], ExpMagic);
            o = 4;
        }
        else
        {
            t[0] = KindFastOpen; t[1] = (byte)(2 + c.Len);
            o = 2;
        }
        BinaryPrimitives.WriteUInt64LittleEndian(t[o..], c.Value);
        o += c.Len;
        if ((o & 3) == 2) { t[o] = 1; t[o + 1] = 1; o += 2; }
        return o;
    }
}
