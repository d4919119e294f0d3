using Softnet.Link;
using Softnet.Packets;

namespace Softnet.Neigh;

/// <summary>NUD states a scenario replay models (the DELAY/PROBE re-confirmation of stale entries is not).</summary>
public enum NudState : byte
{
    Incomplete,
    Reachable,
    Stale,
    Failed,
    Permanent,
    /// <summary>NUD_DELAY: a STALE entry was used; confirmation is awaited for delay_first_probe_time (nd_tbl only).</summary>
    Delay,
    /// <summary>NUD_PROBE: unicast solicitations to the known address (nd_tbl only).</summary>
    Probe,
}

/// <summary>One ARP cache entry (struct neighbour) with its queue of packets waiting for resolution.</summary>
public sealed class Neighbour
{
    public required Device Device { get; init; }
    public required uint Address { get; init; }
    /// <summary>An nd_tbl entry (IPv6 neighbour discovery): its address is <see cref="Address6"/>.</summary>
    public bool IsV6 { get; init; }
    public UInt128 Address6 { get; init; }
    public byte[] Mac = new byte[6];
    public NudState State;
    /// <summary>Probes sent while INCOMPLETE, and when the next is due.</summary>
    public int Probes;
    /// <summary>When the entry last changed (neigh->updated), for locktime.</summary>
    public long UpdatedNs;
    public long NextProbeNs;
    /// <summary>arp_queue: skbs (data at the IP header, the output device's Ethernet header still to push).</summary>
    internal readonly Queue<PendingPacket> Queue = new();
    internal int QueuedBytes;

    /// <summary>The cached hardware header (neigh->hh): filled by the first output through the entry
    /// (neigh_resolve_output → neigh_hh_init). br_netfilter's bridged DNAT takes its fast path only with it.</summary>
    public bool HhCached;

    public bool Valid => State is NudState.Reachable or NudState.Stale or NudState.Permanent or NudState.Delay or NudState.Probe;

    /// <summary>NUD_CONNECTED: PERMANENT or REACHABLE (NOARP is not modeled).</summary>
    public bool Connected => State is NudState.Reachable or NudState.Permanent;
}

/// <summary>A datagram waiting in a neighbour queue.</summary>
internal readonly record struct PendingPacket(Skb Skb, Device InputDevice, bool Forwarded);

/// <summary>The namespace's ARP table (arp_tbl), keyed by device and IPv4 address, and its ND table (nd_tbl) by IPv6 address.</summary>
public sealed class NeighbourTable
{
    private readonly Dictionary<(Device, uint), Neighbour> _entries = new();
    private readonly Dictionary<(Device, UInt128), Neighbour> _entries6 = new();

    /// <summary>neigh_params: retrans_time 1 s, mcast_probes 3 (broadcast requests while INCOMPLETE).</summary>
    public const long RetransNs = 1_000_000_000L;
    public const int McastProbes = 3;
    /// <summary>unres_qlen_bytes default (SK_WMEM_MAX).</summary>
    public const int UnresQlenBytes = 212992;
    /// <summary>arp locktime default (1 s): a different address replaces an entry only this long after its last update.</summary>
    public const long LocktimeNs = 1_000_000_000L;
    /// <summary>delay_first_probe_time (5 s) and ucast_probes (3).</summary>
    public const long DelayProbeNs = 5_000_000_000L;
    public const int UcastProbes = 3;

    public Neighbour? Find(Device dev, uint address) => _entries.TryGetValue((dev, address), out var n) ? n : null;

    public Neighbour Create(Device dev, uint address, NudState state)
    {
        var n = new Neighbour { Device = dev, Address = address, State = state };
        _entries[(dev, address)] = n;
        return n;
    }

    public Dictionary<(Device, uint), Neighbour>.ValueCollection Entries => _entries.Values;

    /// <summary>The nd_tbl entry of <paramref name="address"/> on <paramref name="dev"/>.</summary>
    public Neighbour? Find6(Device dev, UInt128 address) => _entries6.TryGetValue((dev, address), out var n) ? n : null;

    public Neighbour Create6(Device dev, UInt128 address, NudState state)
    {
        var n = new Neighbour { Device = dev, Address = 0, IsV6 = true, Address6 = address, State = state };
        _entries6[(dev, address)] = n;
        return n;
    }

    public Dictionary<(Device, UInt128), Neighbour>.ValueCollection Entries6 => _entries6.Values;
}
