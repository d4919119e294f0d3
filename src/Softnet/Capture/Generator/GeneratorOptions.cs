using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Softnet.Capture.Generator;

/// <summary>Transport of an iperf3-style test (-u selects UDP).</summary>
public enum TrafficProtocol
{
    Tcp,
    Udp,
}

/// <summary>
/// One iperf3 client run as it appears on the wire (iperf3 -c SERVER -P Streams [-u] [-n Bytes | -t Duration]
/// [-b Rate] [-M/-l Mss]). Several of these can run side by side in one <see cref="TrafficGenerator"/>.
/// </summary>
public sealed record GeneratorOptions
{
    /// <summary>Parallel streams (iperf3 -P), 1..128.</summary>
    public int Streams { get; init; } = 1;

    public TrafficProtocol Protocol { get; init; } = TrafficProtocol.Tcp;

    /// <summary>
    /// TCP: payload bytes per full segment (default 1448 for IPv4, 1428 for IPv6: a 1500-byte MTU less the
    /// IP header, the 20-byte TCP header and the 12 bytes of timestamp option). UDP: the datagram payload
    /// (iperf3 -l); iperf3 defaults it to the MSS of its control connection, which on a 1500-byte MTU is the
    /// same 1448 / 1428 (DEFAULT_UDP_BLKSIZE 1460 is only its fallback), so the default here matches.
    /// </summary>
    public int? Mss { get; init; }

    /// <summary>TCP: bytes per application write (iperf3 -l, default 128 KiB); the "0123456789" pattern restarts
    /// at every write and the segment holding the end of a write carries PSH. Ignored for UDP.</summary>
    public int? BlockSize { get; init; }

    /// <summary>Total payload bytes of the test, split across the streams (iperf3 -n).</summary>
    public long? Bytes { get; init; }

    /// <summary>How long the data phase lasts (iperf3 -t). When neither this nor <see cref="Bytes"/> is set the
    /// test runs for 1 s (iperf3 defaults to 10 s; 1 s keeps generated files manageable).</summary>
    public TimeSpan? Duration { get; init; }

    /// <summary>Aggregate data rate of the test over all its streams (unset: 1 Gbit/s; max: line rate).
    /// Bit rates count whole frames plus 24 bytes of preamble, IFG and FCS.</summary>
    public Rate? Rate { get; init; }

    /// <summary>Speed of the link that serialises frames in each direction.</summary>
    public double LinkBitsPerSecond { get; init; } = 10e9;

    public bool Ipv6 { get; init; }

    /// <summary>VLAN id for an 802.1Q tag on every frame; null for untagged.</summary>
    public int? Vlan { get; init; }

    /// <summary>Same options and seed give byte-identical output. Ports, ISNs, IP IDs, timestamp offsets and
    /// flow labels come from it.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>
    /// The capture answers a Softnet namespace that listens on the server address with this TCP key
    /// (<see cref="Softnet.Transport.TcpSecure"/>): the server's initial sequence numbers and timestamp offsets are the
    /// ones that socket picks for each SYN, and only the client's frames are written (the server's are what the
    /// scenario's socket sends itself). Null: a self-contained two-sided capture.
    /// </summary>
    public ulong? ServerKey { get; init; }

    /// <summary>With <see cref="ServerKey"/>: the client's address as the server sees it when a source NAT on the way
    /// rewrites it (MASQUERADE keeping the port, as a pod's traffic leaves its node), so the ISN answered is the one
    /// the listener picks for the translated tuple. Null: the client's own address.</summary>
    public System.Net.IPAddress? ClientSeenByServer { get; init; }

    /// <summary>Capture time of the first frame, nanoseconds since the Unix epoch (default 2024-01-01T00:00:00Z).</summary>
    public long StartTimestampNs { get; init; } = DefaultStartTimestampNs;

    /// <summary>Round-trip time between the client and the server; spaces the handshake and teardown.</summary>
    public TimeSpan Rtt { get; init; } = TimeSpan.FromMicroseconds(100);

    /// <summary>Time from the end of the second segment on the wire to the receiver's ACK.</summary>
    public TimeSpan AckDelay { get; init; } = TimeSpan.FromMicroseconds(8);

    /// <summary>Client address; default 10.0.0.1 or fd00::1.</summary>
    public IPAddress? Client { get; init; }

    /// <summary>Server address; default 10.0.0.2 or fd00::2.</summary>
    public IPAddress? Server { get; init; }

    public int ServerPort { get; init; } = 5201;

    public PhysicalAddress ClientMac { get; init; } = PhysicalAddress.Parse("02-00-00-00-00-01");

    public PhysicalAddress ServerMac { get; init; } = PhysicalAddress.Parse("02-00-00-00-00-02");

    public const long DefaultStartTimestampNs = 1_704_067_200_000_000_000;

    /// <summary>TCP segment payload or UDP datagram payload in effect.</summary>
    public int EffectiveMss => Mss ?? (Ipv6 ? 1428 : 1448);

    /// <summary>Application write size in effect (TCP: <see cref="BlockSize"/> or 128 KiB; UDP: the datagram payload).</summary>
    public int EffectiveBlockSize => Protocol == TrafficProtocol.Udp ? EffectiveMss : BlockSize ?? 128 * 1024;

    public IPAddress EffectiveClient => Client ?? IPAddress.Parse(Ipv6 ? "fd00::1" : "10.0.0.1");

    public IPAddress EffectiveServer => Server ?? IPAddress.Parse(Ipv6 ? "fd00::2" : "10.0.0.2");

    public Rate EffectiveRate => Rate ?? Capture.Rate.FromBits(1e9);

    /// <summary>The data-phase limit: bytes if given, else the duration (1 s when neither is set).</summary>
    public TimeSpan? EffectiveDuration => Duration ?? (Bytes is null ? TimeSpan.FromSeconds(1) : null);

    /// <summary>
    /// The small mix `softnet replay` uses without a capture: 4 TCP streams of 2 MiB each to port 5201 and,
    /// beside them, one UDP stream of 1 MiB at 100 Mbit/s to port 5202; seed 1.
    /// </summary>
    public static IReadOnlyList<GeneratorOptions> DefaultScenario { get; } =
    [
        new GeneratorOptions { Streams = 4, Bytes = 4 * 2 * 1024 * 1024, Rate = Capture.Rate.FromBits(2e9), Seed = 1 },
        new GeneratorOptions
        {
            Protocol = TrafficProtocol.Udp, Bytes = 1024 * 1024, Rate = Capture.Rate.FromBits(100e6), Seed = 1,
            ServerPort = 5202, StartTimestampNs = DefaultStartTimestampNs + 50_000,
        },
    ];

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option that cannot work.</summary>
    public void Validate()
    {
        if (Streams is < 1 or > 128) throw new ArgumentException($"streams must be 1..128 (iperf3's limit), got {Streams}");
        int l3 = Ipv6 ? 40 : 20;
        int mss = EffectiveMss;
        if (Protocol == TrafficProtocol.Tcp)
        {
            if (mss < 1 || mss + 32 + (Ipv6 ? 0 : l3) > 65535)
                throw new ArgumentException($"mss {mss} does not fit a TCP segment in one IP packet");
            if (EffectiveBlockSize < 1) throw new ArgumentException($"block size must be positive, got {EffectiveBlockSize}");
        }
        else if (mss < 1 || mss + 8 + (Ipv6 ? 0 : l3) > 65535)
            throw new ArgumentException($"UDP datagram size {mss} does not fit one IP packet");
        if (Bytes is < 0) throw new ArgumentException($"bytes must not be negative, got {Bytes}");
        if (Duration is { } d && d <= TimeSpan.Zero) throw new ArgumentException($"duration must be positive, got {d}");
        var r = EffectiveRate;
        if (!r.IsMax && !(r.BitsPerSecond > 0 || r.PacketsPerSecond > 0)) throw new ArgumentException($"rate must be positive, got {r}");
        if (!(LinkBitsPerSecond > 0)) throw new ArgumentException($"link speed must be positive, got {LinkBitsPerSecond}");
        if (Vlan is < 0 or > 4094) throw new ArgumentException($"VLAN id must be 0..4094, got {Vlan}");
        if (ServerPort is < 1 or > 65535) throw new ArgumentException($"server port must be 1..65535, got {ServerPort}");
        var family = Ipv6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork;
        if (EffectiveClient.AddressFamily != family || EffectiveServer.AddressFamily != family)
            throw new ArgumentException($"client and server addresses must be {(Ipv6 ? "IPv6" : "IPv4")}");
        if (ClientMac.GetAddressBytes().Length != 6 || ServerMac.GetAddressBytes().Length != 6)
            throw new ArgumentException("MAC addresses must be 6 bytes");
        if (ServerKey is not null && Ipv6) throw new ArgumentException("--server-key answers an IPv4 Softnet server only");
        if (Rtt < TimeSpan.Zero || AckDelay < TimeSpan.Zero) throw new ArgumentException("RTT and ACK delay must not be negative");
    }
}
