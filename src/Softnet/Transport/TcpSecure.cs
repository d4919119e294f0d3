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

    /// <summary>secure_tcpv6_seq and secure_tcpv6_ts_off for an IPv6 connection (local <paramref name="saddr"/>:
    /// <paramref name="sport"/>, remote <paramref name="daddr"/>:<paramref name="dport"/>): the ISN keyed over the
    /// four-tuple plus the 64 ns clock, the TSval offset keyed over the two addresses alone (as the kernel's
    /// ts_secret hash is), each over the addresses' 128 bits.</summary>
    public static (uint Isn, uint TsOffset) SeqAndTsOff6(ulong key, UInt128 saddr, UInt128 daddr, ushort sport, ushort dport, long nowNs)
    {
        ulong a = Fold(saddr), b = Fold(daddr);
        ulong h = Mix3(key ^ 0x7463707636736571UL, (uint)a, (uint)(a >> 32), (uint)b, (uint)(b >> 32));
        uint isn = (uint)Mix3(h, ((uint)sport << 16) | dport, 0, 0, 0) + (uint)((ulong)nowNs >> 6);
        uint tsOff = (uint)Mix3(key ^ 0x7463707636747366UL, (uint)a, (uint)(a >> 32), (uint)b, (uint)(b >> 32));
        return (isn, tsOff);
    }

    /// <summary>An IPv6 address's 128 bits keyed down to 64 (the siphash input's role).</summary>
    internal static ulong Fold(UInt128 x) => Mix((ulong)(x >> 64)) ^ (ulong)x;

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
