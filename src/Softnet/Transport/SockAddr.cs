using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Softnet.Transport;

/// <summary>
/// A transport endpoint: an IPv4 or IPv6 address and a port, as a socket binds it and as recvfrom reports a peer
/// (sockaddr_in / sockaddr_in6). IPv4 addresses are held in the low 32 bits in host order.
/// </summary>
public readonly record struct SockAddr(bool V6, UInt128 Address, ushort Port)
{
    public static SockAddr FromV4(uint address, ushort port) => new(false, address, port);

    /// <summary>The IPv4 address (host order); meaningless for IPv6.</summary>
    public uint V4 => (uint)Address;

    /// <summary>INADDR_ANY or in6addr_any.</summary>
    public bool IsWildcard => Address == UInt128.Zero;

    /// <summary>An IPv4 peer as an IPv6 socket sees it (::ffff:a.b.c.d), for a dual-stack socket's recvfrom.</summary>
    public SockAddr AsV4Mapped() => V6 ? this : new SockAddr(true, ((UInt128)0xFFFF << 32) | V4, Port);

    /// <summary>"a.b.c.d:port", or "[v6]:port" with the address as inet_ntop writes it.</summary>
    public override string ToString()
    {
        if (!V6)
        {
            uint a = V4;
            return string.Create(CultureInfo.InvariantCulture, $"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}:{Port}");
        }
        Span<byte> b = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(b, Address);
        return string.Create(CultureInfo.InvariantCulture, $"[{new IPAddress(b)}]:{Port}");
    }

    /// <summary>Parses "A.B.C.D:PORT" or "[V6]:PORT" (PORT 1-65535); the reason on failure.</summary>
    public static bool TryParse(string text, out SockAddr addr, out string error)
    {
        addr = default;
        string host, port;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf("]:", StringComparison.Ordinal);
            if (close < 0) { error = $"'{text}': an IPv6 endpoint is [ADDR]:PORT"; return false; }
            host = text[1..close];
            port = text[(close + 2)..];
        }
        else
        {
            int colon = text.LastIndexOf(':');
            if (colon < 0) { error = $"'{text}': an endpoint is ADDR:PORT (IPv6 as [ADDR]:PORT)"; return false; }
            host = text[..colon];
            port = text[(colon + 1)..];
        }
        if (!ushort.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p) || p == 0)
        {
            error = $"'{text}': the port must be 1-65535 (a scenario socket binds a fixed port)";
            return false;
        }
        if (!IPAddress.TryParse(host, out var ip) || (text.StartsWith('[') != (ip.AddressFamily == AddressFamily.InterNetworkV6))
            || host.Contains('%'))
        {
            error = $"'{text}': '{host}' is not an IPv4 address (IPv6 goes in brackets)";
            return false;
        }
        Span<byte> bytes = stackalloc byte[16];
        ip.TryWriteBytes(bytes, out int n);
        addr = n == 4
            ? FromV4(BinaryPrimitives.ReadUInt32BigEndian(bytes), p)
            : new SockAddr(true, BinaryPrimitives.ReadUInt128BigEndian(bytes), p);
        error = "";
        return true;
    }
}
