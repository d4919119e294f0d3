using System.Buffers.Binary;
using Softnet.Netfilter.Conntrack;

namespace Softnet.Tests.Support;

/// <summary>SCTP packets (RFC 9260: common header, chunks padded to 4 bytes, CRC32c) for conntrack tests; shared with
/// the kernel comparisons, which send the same bytes to the kernel.</summary>
internal static class SctpPackets
{
    public readonly record struct Chunk(byte Type, byte Flags, byte[] Body);

    public const byte Data = 0, Init = 1, InitAck = 2, Sack = 3, Heartbeat = 4, HeartbeatAck = 5, Abort = 6, Shutdown = 7,
        ShutdownAck = 8, Error = 9, CookieEcho = 10, CookieAck = 11, ShutdownComplete = 14;

    /// <summary>The common header and <paramref name="chunks"/>, the checksum filled in (or <paramref name="badCrc"/>: off by one).</summary>
    public static byte[] Packet(ushort sport, ushort dport, uint vtag, Chunk[] chunks, bool badCrc = false)
    {
        int len = 12 + chunks.Sum(c => (4 + c.Body.Length + 3) & ~3);
        var b = new byte[len];
        BinaryPrimitives.WriteUInt16BigEndian(b, sport);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), vtag);
        int off = 12;
        foreach (var c in chunks)
        {
            b[off] = c.Type;
            b[off + 1] = c.Flags;
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(off + 2), (ushort)(4 + c.Body.Length));
            c.Body.CopyTo(b, off + 4);
            off += (4 + c.Body.Length + 3) & ~3;
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), SctpTracker.Crc32c(b) + (badCrc ? 1u : 0u));
        return b;
    }

    public static byte[] Packet(ushort sport, ushort dport, uint vtag, params Chunk[] chunks) => Packet(sport, dport, vtag, chunks, false);

    /// <summary>An INIT or INIT_ACK: initiate tag, a_rwnd, streams, initial TSN (and, for INIT_ACK, a state cookie parameter).</summary>
    public static Chunk InitChunk(byte type, uint tag, uint tsn = 1)
    {
        var body = new byte[type == InitAck ? 16 + 12 : 16];
        BinaryPrimitives.WriteUInt32BigEndian(body, tag);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4), 106496);
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(8), 10);
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(10), 10);
        BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(12), tsn);
        if (type == InitAck)
        {
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(16), 7); // State Cookie
            BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(18), 12);
            BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(20), 0x636F6F6B69650001);
        }
        return new Chunk(type, 0, body);
    }

    /// <summary>A DATA chunk (unordered off, B and E set) with <paramref name="payload"/> bytes of '0'..'9'.</summary>
    public static Chunk DataChunk(uint tsn, int payload = 16)
    {
        var body = new byte[12 + payload];
        BinaryPrimitives.WriteUInt32BigEndian(body, tsn);
        for (int i = 0; i < payload; i++) body[12 + i] = (byte)('0' + i % 10);
        return new Chunk(Data, 0x03, body);
    }

    /// <summary>A HEARTBEAT or HEARTBEAT_ACK with a heartbeat info parameter.</summary>
    public static Chunk HeartbeatChunk(byte type)
    {
        var body = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(body, 1);
        BinaryPrimitives.WriteUInt16BigEndian(body.AsSpan(2), 12);
        BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(4), 0x6862696E666F0001);
        return new Chunk(type, 0, body);
    }

    public static Chunk Plain(byte type, byte flags = 0, int body = 0) => new(type, flags, new byte[body]);

    /// <summary>SHUTDOWN: the cumulative TSN ack.</summary>
    public static Chunk ShutdownChunk(uint cumTsn)
    {
        var body = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(body, cumTsn);
        return new Chunk(Shutdown, 0, body);
    }

    /// <summary>A COOKIE_ECHO carrying the cookie the INIT_ACK gave.</summary>
    public static Chunk CookieEchoChunk()
    {
        var body = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(body, 0x636F6F6B69650001);
        return new Chunk(CookieEcho, 0, body);
    }
}
