namespace Softnet.Transport;

/// <summary>
/// SYN cookies (net/ipv4/syncookies.c): when a listener's request queue is over its backlog, the SYN-ACK's sequence
/// number carries the connection instead of a request sock: a keyed hash of the four-tuple, the client's ISN, a
/// minute counter and an index into a table of MSS values; with timestamps, the SYN-ACK's TSval carries the window
/// scale and SACK-permitted in its low six bits. The returning ACK rebuilds the connection from them. The kernel's
/// key is random per boot; Softnet's is the namespace's TCP key.
/// </summary>
public static class TcpSyncookies
{
    private const int CookieBits = 24;
    private const uint CookieMask = (1u << CookieBits) - 1;
    /// <summary>MAX_SYNCOOKIE_AGE: a cookie is good for the minute it was made and the next.</summary>
    private const uint MaxAge = 2;
    /// <summary>TCP_SYNCOOKIE_VALID: cookies are checked only this long after the listener last sent one.</summary>
    public const long ValidNs = MaxAge * 60_000_000_000L;
    private const int TsBits = 6;
    private const uint TsWscaleMask = 0xF, TsSack = 1 << 4;

    /// <summary>msstab: the MSS values a cookie can say.</summary>
    private static readonly ushort[] MssTable = [536, 1300, 1440, 1460];

    /// <summary>tcp_cookie_time: minutes of the clock.</summary>
    private static uint Count(long nowNs) => (uint)((ulong)nowNs / 60_000_000_000UL);

    private static uint Hash(ulong key, uint saddr, uint daddr, ushort sport, ushort dport, uint count, int c)
    {
        // cookie_hash: two keys (c selects one); any keyed PRF does, the values are not comparable with the kernel's.
        ulong k = key ^ (c == 0 ? 0x636f6f6b69653030UL : 0x636f6f6b69653131UL);
        return (uint)TcpSecure.Mix3(k, saddr, daddr, ((uint)sport << 16) | dport, count);
    }

    /// <summary>__cookie_v4_init_sequence for a SYN from saddr:sport to daddr:dport with ISN <paramref name="seq"/>:
    /// the cookie, and the peer's MSS rounded down to the table.</summary>
    public static uint InitSequence(ulong key, uint saddr, uint daddr, ushort sport, ushort dport, uint seq, ref int mss, long nowNs)
    {
        int ind = MssTable.Length - 1;
        while (ind > 0 && mss < MssTable[ind]) ind--;
        mss = MssTable[ind];
        uint count = Count(nowNs);
        return Hash(key, saddr, daddr, sport, dport, 0, 0) + seq + (count << CookieBits)
               + ((Hash(key, saddr, daddr, sport, dport, count, 1) + (uint)ind) & CookieMask);
    }

    /// <summary>__cookie_v4_check for an ACK from saddr:sport (its seq and ack): the MSS the cookie carries, or 0.</summary>
    public static int Check(ulong key, uint saddr, uint daddr, ushort sport, ushort dport, uint seq, uint ack, long nowNs)
    {
        uint cookie = ack - 1;
        uint sseq = seq - 1;
        uint count = Count(nowNs);
        cookie -= Hash(key, saddr, daddr, sport, dport, 0, 0) + sseq;
        uint diff = (count - (cookie >> CookieBits)) & (uint.MaxValue >> CookieBits);
        if (diff >= MaxAge) return 0;
        uint ind = (cookie - Hash(key, saddr, daddr, sport, dport, count - diff, 1)) & CookieMask;
        return ind < MssTable.Length ? MssTable[ind] : 0;
    }

    /// <summary>msstab of net/ipv6/syncookies.c: IPv6 MTUs (1280, 1480, 1500, 9000) less 60.</summary>
    private static readonly ushort[] MssTable6 = [1220, 1420, 1440, 8940];

    /// <summary>cookie_v6_hash: the IPv6 addresses' 128 bits, the ports and the minute count.</summary>
    private static uint Hash6(ulong key, UInt128 saddr, UInt128 daddr, ushort sport, ushort dport, uint count, int c)
    {
        ulong k = key ^ (c == 0 ? 0x636f6f6b36653030UL : 0x636f6f6b36653131UL);
        ulong a = TcpSecure.Fold(saddr), b = TcpSecure.Fold(daddr);
        ulong h = TcpSecure.Mix3(k, (uint)a, (uint)(a >> 32), (uint)b, (uint)(b >> 32));
        return (uint)TcpSecure.Mix3(h, ((uint)sport << 16) | dport, count, 0, 0);
    }

    /// <summary>__cookie_v6_init_sequence: as the IPv4 cookie, with IPv6's hash input and MSS table.</summary>
    public static uint InitSequence6(ulong key, UInt128 saddr, UInt128 daddr, ushort sport, ushort dport, uint seq, ref int mss, long nowNs)
    {
        int ind = MssTable6.Length - 1;
        while (ind > 0 && mss < MssTable6[ind]) ind--;
        mss = MssTable6[ind];
        uint count = Count(nowNs);
        return Hash6(key, saddr, daddr, sport, dport, 0, 0) + seq + (count << CookieBits)
               + ((Hash6(key, saddr, daddr, sport, dport, count, 1) + (uint)ind) & CookieMask);
    }

    /// <summary>__cookie_v6_check: the MSS an ACK's cookie carries, or 0.</summary>
    public static int Check6(ulong key, UInt128 saddr, UInt128 daddr, ushort sport, ushort dport, uint seq, uint ack, long nowNs)
    {
        uint cookie = ack - 1 - (Hash6(key, saddr, daddr, sport, dport, 0, 0) + (seq - 1));
        uint count = Count(nowNs);
        uint diff = (count - (cookie >> CookieBits)) & (uint.MaxValue >> CookieBits);
        if (diff >= MaxAge) return 0;
        uint ind = (cookie - Hash6(key, saddr, daddr, sport, dport, count - diff, 1)) & CookieMask;
        return ind < MssTable6.Length ? MssTable6[ind] : 0;
    }

    /// <summary>cookie_init_timestamp: the millisecond clock with the options in its low six bits, never ahead of
    /// the clock (before the timestamp offset is added).</summary>
    public static uint InitTimestamp(long nowNs, bool wscaleOk, byte sndWscale, bool sackOk)
    {
        uint now = TcpSecure.ClockMs(nowNs);
        uint options = wscaleOk ? sndWscale : TsWscaleMask;
        if (sackOk) options |= TsSack;
        uint ts = (now >> TsBits << TsBits) | options;
        if (ts > now) ts -= 1u << TsBits;
        return ts;
    }

    /// <summary>cookie_timestamp_decode from the echoed TSval (offset removed): window scale and SACK.</summary>
    public static (bool WscaleOk, byte SndWscale, bool SackOk) DecodeTimestamp(uint ecr)
    {
        bool sack = (ecr & TsSack) != 0;
        uint ws = ecr & TsWscaleMask;
        return ws == TsWscaleMask ? (false, (byte)0, sack) : (true, (byte)ws, sack);
    }
}
