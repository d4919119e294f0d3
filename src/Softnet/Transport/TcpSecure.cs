namespace Softnet.Transport;

/// <summary>
/// secure_tcp_seq_and_ts_off: one keyed 64-bit hash of a connection's four-tuple gives both its initial sequence
/// number (low half, plus the real-time clock in 64 ns ticks, RFC 6528) and its timestamp offset (high half, added to
/// the millisecond TCP clock). The kernel's key is random per boot; a scenario's is fixed (0 unless set), so a
/// replay is reproducible and a capture can be made to answer it.
/// </summary>
public static class TcpSecure
{
    /// <summary>ISN and TSval offset of the connection to local <paramref name="saddr"/>:<paramref name="sport"/>
    /// from <paramref name="daddr"/>:<paramref name="dport"/> (the server's view: source is the local end) whose SYN
    /// arrived at <paramref name="nowNs"/> (replay clock, ns since the epoch).</summary>
    public static (uint Isn, uint TsOffset) SeqAndTsOff(ulong key, uint saddr, uint daddr, ushort sport, ushort dport, long nowNs)
    {
        ulong h = Hash(key, saddr, daddr, ((uint)sport << 16) | dport);
        return ((uint)h + (uint)((ulong)nowNs >> 6), (uint)(h >> 32));
    }

    /// <summary>tcp_clock_ms: the millisecond clock timestamps count in.</summary>
    public static uint ClockMs(long nowNs) => (uint)((ulong)nowNs / 1_000_000);

    /// <summary>TSval of a segment sent at <paramref name="nowNs"/> on a connection with <paramref name="tsOffset"/>.</summary>
    public static uint TsVal(long nowNs, uint tsOffset) => ClockMs(nowNs) + tsOffset;

    /// <summary>A keyed mix of three words (SipHash's role in the kernel; any keyed PRF does, the values are not
    /// comparable with the kernel's anyway).</summary>
    private static ulong Hash(ulong key, uint a, uint b, uint c)
    {
        ulong x = key ^ 0x736f6d6570736575UL;
        x = Mix(x ^ a);
        x = Mix(x ^ ((ulong)b << 32 | c));
        return Mix(x ^ key);
    }

    /// <summary>The same keyed mix over four words (the SYN cookie's hashes).</summary>
    internal static ulong Mix3(ulong key, uint a, uint b, uint c, uint d)
    {
        ulong x = key ^ 0x736f6d6570736575UL;
        x = Mix(x ^ a);
        x = Mix(x ^ ((ulong)b << 32 | c));
        x = Mix(x ^ d);
        return Mix(x ^ key);
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
